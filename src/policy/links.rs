//! Linked copies are read-only for tenants. In a namespace where the tree links objects of a
//! kind (see [`Tree::links_into`]), writes of that kind are looked at before they go upstream:
//!
//! - update or patch under a copy's name: refused, whether or not the copy exists yet (a
//!   server-side apply would create it); of any other object Canopy labelled as a copy (one
//!   whose link was just dropped from the config), refused too.
//! - create under a copy's name: refused, so no tenant object can stand in for a copy.
//! - delete: refused when the stored object is a copy (Canopy's label on it). A tenant's own
//!   object that held a link's name before the link existed may go; the copy takes its place.
//! - deletecollection: refused when a copy matches the caller's selectors; otherwise sent with
//!   copies excluded by label, so one created meanwhile is not hit either.
//!
//! Every refusal is a 403 Status naming the copy and its source as the view sees it (see
//! [`crate::rewrite::links`]). Lookups go upstream as the caller (the inner service
//! impersonates), like [`super::secret_gate`]'s: Canopy learns nothing the caller could not read.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tower::{Service, ServiceExt};

use crate::auth::Identity;
use crate::body::{self, Body};
use crate::request::RequestInfo;
use crate::request::query::{Query, and_label_selector, encode_pairs};
use crate::rewrite::ViewNames;
use crate::rewrite::links::source_in_view;
use crate::rewrite::protobuf;
use crate::status::Status;
use crate::transform;
use crate::tree::links::{LinkKind, source_annotation, source_key};
use crate::tree::{NodeId, Tree};

/// Largest upstream answer read here (one object or a one-item list).
const MAX_ANSWER: usize = 16 << 20;

/// What a guarded request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    /// Update or patch of one object.
    Change,
    Delete,
    DeleteCollection,
}

/// A write of a linkable kind in a namespace that holds copies of that kind.
pub struct LinkGuard {
    action: Action,
    kind: LinkKind,
    identity: Identity,
    /// `(physical, virtual)` namespace of the request.
    namespace: (String, String),
    /// The object named in the path, if any.
    name: String,
    /// Copy names linked into the namespace, each with its source's upstream annotation.
    targets: Vec<(String, String)>,
    /// `link.<domain>/source`.
    key: String,
    tree: Arc<Tree>,
    view: NodeId,
}

impl LinkGuard {
    /// The guard for `info` in `view`, if the request writes a kind that is linked into its
    /// namespace.
    pub fn of(
        tree: &Arc<Tree>,
        view: NodeId,
        info: &RequestInfo,
        identity: &Identity,
        namespace: &Option<(String, String)>,
    ) -> Option<Self> {
        let namespace = namespace.clone()?;
        if !info.api_group.is_empty() || !info.subresource.is_empty() {
            return None;
        }
        let kind = LinkKind::of_resource(&info.resource)?;
        let action = match info.verb.as_str() {
            "create" => Action::Create,
            "update" | "patch" => Action::Change,
            "delete" => Action::Delete,
            "deletecollection" => Action::DeleteCollection,
            _ => return None,
        };
        let targets = targets(tree, &namespace.0, kind);
        if targets.is_empty() {
            return None;
        }
        Some(LinkGuard {
            action,
            kind,
            identity: identity.clone(),
            namespace,
            name: info.name.clone(),
            targets,
            key: source_key(&tree.domain),
            tree: Arc::clone(tree),
            view,
        })
    }

    /// Refuses `request` (already rewritten for upstream) if it would touch a copy, or returns
    /// it to be sent on, asking upstream through `inner` as the caller where needed.
    pub async fn check<S>(self, inner: S, request: Request<Body>) -> Result<Request<Body>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone,
    {
        match self.action {
            Action::Create => {
                let (parts, body) = request.into_parts();
                let bytes = transform::read_bytes(body).await?;
                let name = if parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("protobuf"))
                {
                    protobuf::object_name(&bytes).map_err(|e| Status::bad_request(e.to_string()))?
                } else if bytes.is_empty() {
                    String::new()
                } else {
                    let document = transform::parse_document(&bytes)?;
                    document.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned()
                };
                if let Some(source) = self.target(&name) {
                    return Err(self.reserved(&name, source));
                }
                Ok(Request::from_parts(parts, body::full(bytes)))
            }
            Action::Change => {
                if let Some(source) = self.target(&self.name) {
                    return Err(self.read_only(&self.name, Some(source)));
                }
                self.refuse_copy(inner).await?;
                Ok(request)
            }
            Action::Delete => {
                self.refuse_copy(inner).await?;
                Ok(request)
            }
            Action::DeleteCollection => {
                let (mut parts, body) = request.into_parts();
                let mut query: Vec<(String, String)> = Query::parse(parts.uri.query().unwrap_or(""))?.into_pairs();
                let mut probe: Vec<(String, String)> =
                    query.iter().filter(|(k, _)| k == "labelSelector" || k == "fieldSelector").cloned().collect();
                and_label_selector(&mut probe, &self.key);
                probe.push(("limit".into(), "1".into()));
                let path = format!("{}?{}", self.collection(), encode_pairs(&probe));
                let found = inner.oneshot(self.get(&path)?).await?;
                if found.status().is_success() {
                    let list = read_json(found.into_body()).await?;
                    if let Some(copy) = list.pointer("/items/0") {
                        let name = copy.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
                        return Err(self.read_only(name, self.source_of(copy)));
                    }
                }
                // Whatever is created between the check and the deletion, copies stay.
                and_label_selector(&mut query, &format!("!{}", self.key));
                parts.uri = format!("{}?{}", parts.uri.path(), encode_pairs(&query))
                    .parse()
                    .map_err(|_| Status::bad_request("invalid request URI"))?;
                Ok(Request::from_parts(parts, body))
            }
        }
    }

    /// The upstream source annotation of the copy named `name`, if `name` is a copy's.
    fn target(&self, name: &str) -> Option<&str> {
        self.targets.iter().find(|(copy, _)| copy == name).map(|(_, source)| source.as_str())
    }

    /// 403 when the stored object is a copy.
    async fn refuse_copy<S>(&self, inner: S) -> Result<(), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
    {
        let path = format!("{}/{}", self.collection(), encode_segment(&self.name));
        let found = inner.oneshot(self.get(&path)?).await?;
        let status = found.status();
        if status.is_success() {
            let object = read_json(found.into_body()).await?;
            if object.pointer("/metadata/labels").and_then(|l| l.get(&self.key)).is_some() {
                return Err(self.read_only(&self.name, self.source_of(&object)));
            }
            return Ok(());
        }
        // Absent or unreadable: the write itself meets the same answer.
        if status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN {
            return Ok(());
        }
        Err(Status::bad_gateway(format!(
            "cannot tell whether {} {:?} is a linked copy: looking it up answered {status}",
            self.kind.resource(),
            self.name
        )))
    }

    /// The source annotation of a stored copy.
    fn source_of<'a>(&self, object: &'a Value) -> Option<&'a str> {
        object.pointer("/metadata/annotations").and_then(|a| a.get(&self.key)).and_then(Value::as_str)
    }

    fn read_only(&self, name: &str, source: Option<&str>) -> Status {
        let source = match source {
            Some(source) => {
                format!("the linked {} {}", self.kind.name(), source_in_view(&self.tree, self.view, source))
            }
            None => format!("a linked {}", self.kind.name()),
        };
        Status::forbidden(format!(
            "{} {name:?} is forbidden: it is a read-only copy of {source}, kept in sync by Canopy in view {}",
            self.kind.resource(),
            self.tree.nodes[self.view].path
        ))
    }

    fn reserved(&self, name: &str, source: &str) -> Status {
        Status::forbidden(format!(
            "{} {name:?} is forbidden: the name is reserved in namespace {:?} for the read-only copy of the linked {} {}",
            self.kind.resource(),
            self.namespace.1,
            self.kind.name(),
            source_in_view(&self.tree, self.view, source)
        ))
    }

    /// The path of the kind's collection in the request's namespace.
    fn collection(&self) -> String {
        format!("/api/v1/namespaces/{}/{}", encode_segment(&self.namespace.0), self.kind.resource())
    }

    /// A GET of `path`, as the caller.
    fn get(&self, path: &str) -> Result<Request<Body>, Status> {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::ACCEPT, "application/json")
            .body(body::empty())
            .map_err(|_| Status::bad_request(format!("invalid {} name", self.kind.resource())))?;
        request.extensions_mut().insert(self.identity.clone());
        Ok(request)
    }
}

/// Copy names of `kind` linked into the namespace `physical`, with their sources' upstream
/// annotations.
fn targets(tree: &Tree, physical: &str, kind: LinkKind) -> Vec<(String, String)> {
    let Some(owner) = tree.owner(physical) else { return Vec::new() };
    tree.links_into(physical, owner)
        .into_iter()
        .filter(|(_, link)| link.kind == kind)
        .map(|(_, link)| (link.copy_name.clone(), source_annotation(Some(&link.namespace), &link.name)))
        .collect()
}

/// Why Canopy refuses the write an access review describes because it would change a copy
/// (names from the config only: a review holds no object to look at).
pub fn review_denial(tree: &Tree, view: NodeId, info: &RequestInfo) -> Option<String> {
    if !info.api_group.is_empty() || !info.subresource.is_empty() || info.name.is_empty() {
        return None;
    }
    if !matches!(info.verb.as_str(), "create" | "update" | "patch" | "delete") {
        return None;
    }
    let kind = LinkKind::of_resource(&info.resource)?;
    let physical = ViewNames::new(tree, view).to_physical(&info.namespace)?;
    let (_, source) = targets(tree, &physical, kind).into_iter().find(|(copy, _)| *copy == info.name)?;
    Some(format!(
        "{} {:?} is a read-only copy of the linked {} {}",
        kind.resource(),
        info.name,
        kind.name(),
        source_in_view(tree, view, &source)
    ))
}

/// Everything but RFC 3986's unreserved characters, which object names are made of.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment.
fn encode_segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, SEGMENT).to_string()
}

async fn read_json(body: Body) -> Result<Value, Status> {
    let bytes = Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| Status::bad_gateway(format!("cannot read the upstream answer: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| Status::bad_gateway(format!("the upstream answer is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use http::HeaderValue;
    use serde_json::json;

    use super::*;
    use crate::config::raw_tree::RawTree;

    const TREE: &str = r#"
nodes:
  - name: acme
    links:
      - {kind: ConfigMap, namespace: platform, name: ca-bundle}
    children:
      - name: web
        namespaces: [dev]
      - name: data
        namespaces: [warehouse]
        links:
          - {kind: Secret, namespace: platform, name: creds, secretType: Opaque, as: db}
  - name: globex
    namespaces: [main]
"#;

    fn tree() -> Arc<Tree> {
        let raw: RawTree = serde_saphyr::from_str(TREE).unwrap();
        Arc::new(Tree::compile(&raw, "tree").unwrap())
    }

    fn info(method: Method, uri: &str) -> RequestInfo {
        let (path, query) = uri.split_once('?').map_or((uri, None), |(p, q)| (p, Some(q)));
        RequestInfo::parse(&method, path, query).unwrap()
    }

    /// The guard for `method uri` by bob in view acme/web, namespace `dev`.
    fn guard(method: Method, uri: &str) -> Option<LinkGuard> {
        let tree = tree();
        let view = tree.node("acme/web").unwrap();
        let namespace = Some(("acme-web-dev".to_owned(), "dev".to_owned()));
        LinkGuard::of(&tree, view, &info(method, uri), &Identity::new("bob", Vec::<String>::new()), &namespace)
    }

    /// The URIs an upstream was asked for.
    type Asked = Arc<Mutex<Vec<String>>>;

    /// An upstream answering every request with `code` and `answer`, recording the URIs asked.
    fn upstream(
        code: StatusCode,
        answer: Value,
    ) -> (impl Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone, Asked) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&asked);
        let service = tower::service_fn(move |request: Request<Body>| {
            assert_eq!(request.extensions().get::<Identity>().map(|i| i.user.as_str()), Some("bob"));
            seen.lock().unwrap().push(request.uri().to_string());
            let mut response = Response::new(body::full(answer.to_string()));
            *response.status_mut() = code;
            async move { Ok::<_, Status>(response) }
        });
        (service, asked)
    }

    fn request(method: Method, uri: &str, body: &str) -> Request<Body> {
        let mut request = Request::builder().method(method).uri(uri).body(body::full(body.to_owned())).unwrap();
        request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request
    }

    fn copy(name: &str) -> Value {
        json!({"kind": "ConfigMap", "metadata": {"name": name, "namespace": "acme-web-dev",
            "labels": {"link.canopy.dev/source": "platform.ca-bundle"},
            "annotations": {"link.canopy.dev/source": "platform/ca-bundle"}}})
    }

    #[test]
    fn only_writes_of_linked_kinds_where_copies_live_are_guarded() {
        let cm = "/api/v1/namespaces/dev/configmaps";
        assert!(guard(Method::PUT, &format!("{cm}/x")).is_some());
        assert!(guard(Method::POST, cm).is_some());
        assert!(guard(Method::DELETE, cm).is_some());
        assert!(guard(Method::GET, &format!("{cm}/x")).is_none());
        assert!(guard(Method::GET, cm).is_none());
        // Secrets are linked into acme/data only; pods are never linked.
        assert!(guard(Method::DELETE, "/api/v1/namespaces/dev/secrets/db").is_none());
        assert!(guard(Method::DELETE, "/api/v1/namespaces/dev/pods/p").is_none());
        let tree = tree();
        let globex = tree.node("globex").unwrap();
        let main = Some(("globex-main".to_owned(), "main".to_owned()));
        let bob = Identity::new("bob", Vec::<String>::new());
        assert!(
            LinkGuard::of(&tree, globex, &info(Method::PUT, "/api/v1/namespaces/main/configmaps/x"), &bob, &main)
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_copys_name_is_refused_for_update_patch_and_create() {
        let (inner, asked) = upstream(StatusCode::OK, json!({}));
        let uri = "/api/v1/namespaces/acme-web-dev/configmaps/ca-bundle";
        for method in [Method::PUT, Method::PATCH] {
            let guard = guard(method.clone(), "/api/v1/namespaces/dev/configmaps/ca-bundle").unwrap();
            let refused = guard.check(inner.clone(), request(method, uri, "{}")).await.unwrap_err();
            assert_eq!(refused.code, StatusCode::FORBIDDEN);
            assert_eq!(
                refused.message,
                "configmaps \"ca-bundle\" is forbidden: it is a read-only copy of the linked ConfigMap platform/ca-bundle, kept in sync by Canopy in view acme/web"
            );
        }
        assert!(asked.lock().unwrap().is_empty(), "refused by name, without a lookup");

        let create = |name: &str| {
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).to_string();
            (guard(Method::POST, "/api/v1/namespaces/dev/configmaps").unwrap(), request(Method::POST, uri, &body))
        };
        let (guard, post) = create("ca-bundle");
        let refused = guard.check(inner.clone(), post).await.unwrap_err();
        assert!(refused.message.contains("the name is reserved in namespace \"dev\""), "{}", refused.message);
        let (guard, post) = create("mine");
        let allowed = guard.check(inner, post).await.unwrap();
        let sent = allowed.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&sent).contains("\"mine\""), "the body goes on as it came");
    }

    #[tokio::test]
    async fn deleting_is_refused_for_copies_only() {
        let uri = "/api/v1/namespaces/acme-web-dev/configmaps/ca-bundle";
        let delete = || guard(Method::DELETE, "/api/v1/namespaces/dev/configmaps/ca-bundle").unwrap();
        let (inner, asked) = upstream(StatusCode::OK, copy("ca-bundle"));
        let refused = delete().check(inner, request(Method::DELETE, uri, "")).await.unwrap_err();
        assert!(refused.message.contains("read-only copy of the linked ConfigMap platform/ca-bundle"));
        assert_eq!(*asked.lock().unwrap(), [uri]);
        // A tenant's own object that held the name before the link: it may go.
        let (inner, _) = upstream(StatusCode::OK, json!({"kind": "ConfigMap", "metadata": {"name": "ca-bundle"}}));
        assert!(delete().check(inner, request(Method::DELETE, uri, "")).await.is_ok());
        let (inner, _) = upstream(StatusCode::NOT_FOUND, json!({"kind": "Status"}));
        assert!(delete().check(inner, request(Method::DELETE, uri, "")).await.is_ok());
        let (inner, _) = upstream(StatusCode::INTERNAL_SERVER_ERROR, json!({"kind": "Status"}));
        let failed = delete().check(inner, request(Method::DELETE, uri, "")).await.unwrap_err();
        assert_eq!(failed.code, StatusCode::BAD_GATEWAY);
        // A stale copy under another name (its link just dropped) is still Canopy's.
        let (inner, _) = upstream(StatusCode::OK, copy("old"));
        let old = guard(Method::PATCH, "/api/v1/namespaces/dev/configmaps/old").unwrap();
        assert!(old.check(inner, request(Method::PATCH, uri, "{}")).await.is_err());
    }

    #[tokio::test]
    async fn deleting_a_collection_spares_copies() {
        let uri = "/api/v1/namespaces/acme-web-dev/configmaps?labelSelector=app%3Dx";
        let collection = || guard(Method::DELETE, "/api/v1/namespaces/dev/configmaps?labelSelector=app%3Dx").unwrap();
        let (inner, asked) = upstream(StatusCode::OK, json!({"kind": "ConfigMapList", "items": [copy("ca-bundle")]}));
        let refused = collection().check(inner, request(Method::DELETE, uri, "")).await.unwrap_err();
        assert!(refused.message.starts_with("configmaps \"ca-bundle\" is forbidden: it is a read-only copy"));
        assert_eq!(
            *asked.lock().unwrap(),
            ["/api/v1/namespaces/acme-web-dev/configmaps?labelSelector=app%3Dx%2Clink%2Ecanopy%2Edev%2Fsource&limit=1"]
        );
        let (inner, _) = upstream(StatusCode::OK, json!({"kind": "ConfigMapList", "items": []}));
        let sent = collection().check(inner, request(Method::DELETE, uri, "")).await.unwrap();
        assert_eq!(
            sent.uri().to_string(),
            "/api/v1/namespaces/acme-web-dev/configmaps?labelSelector=app%3Dx%2C%21link%2Ecanopy%2Edev%2Fsource"
        );
    }

    #[test]
    fn access_reviews_deny_writes_of_copies() {
        let tree = tree();
        let web = tree.node("acme/web").unwrap();
        let review = |verb: &str, name: &str| {
            let info = RequestInfo {
                verb: verb.into(),
                resource: "configmaps".into(),
                namespace: "dev".into(),
                name: name.into(),
                ..RequestInfo::default()
            };
            review_denial(&tree, web, &info)
        };
        assert_eq!(
            review("update", "ca-bundle").as_deref(),
            Some("configmaps \"ca-bundle\" is a read-only copy of the linked ConfigMap platform/ca-bundle")
        );
        assert!(review("delete", "ca-bundle").is_some());
        assert!(review("get", "ca-bundle").is_none());
        assert!(review("update", "other").is_none());
    }
}
