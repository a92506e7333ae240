//! Bodies between a view and upstream: namespace names in request bodies become physical, and
//! in responses — objects, lists, Tables, Status errors and watch events — virtual again.
//! Every answer in a view is Canopy's own: upstream is asked for JSON ([`negotiate`]) and what
//! leaves is JSON Canopy produced or YAML rendered from it ([`render`]).
//! Watches are translated one event (line) at a time as they stream, with a bounded line
//! length; lists one item at a time as they stream ([`list`]); other responses whole, bounded in
//! size.

pub mod event;
mod item;
pub mod lines;
pub mod list;
pub mod negotiate;
pub mod protobuf_meta;
pub mod reading;
pub mod render;
mod tokens;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use serde_json::Value;

use crate::body::{self, Body, BoxError};
use crate::discovery::openapi_v2_protobuf::{self, MEDIA_TYPES as OPENAPI_V2_PROTOBUF};
use crate::mask::read::ReadMask;
use crate::mask::secrets::SecretFilter;
use crate::rewrite::json::{
    hide_tree_labels, map_messages, map_namespace_names, map_namespaces, map_prose, map_status_message,
};
use crate::rewrite::{HIDDEN_NAMESPACE, ViewNames};
use crate::server::body_deadline::BodyTimedOut;
use crate::status::Status;
use crate::tree::{Ceiling, NodeId, Tree};

/// Largest request body Canopy ever reads (objects are far smaller; etcd's limit is 1.5 MiB);
/// `server.limits.maxRequestBodyBytes` sets the limit in force, at most this.
pub const MAX_REQUEST_BODY: usize = 8 << 20;
/// Largest non-watch response Canopy translates.
pub const MAX_RESPONSE_BODY: usize = 256 << 20;
/// Largest single watch event.
pub const MAX_EVENT: usize = 16 << 20;

/// Marks a request whose body holds [`HIDDEN_NAMESPACE`]: the gates restore or refuse it.
#[derive(Debug, Clone, Copy)]
pub struct CarriesHidden;

/// How a response is translated back into a view.
#[derive(Clone)]
pub struct Translation {
    pub tree: Arc<Tree>,
    pub view: NodeId,
    /// `(physical, virtual)` namespace of the request, for Status messages.
    pub namespace: Option<(String, String)>,
    /// The response is a watch stream.
    pub watch: bool,
    /// The response is about Namespace objects, whose names are translated too.
    pub namespaces: bool,
    /// The response is about secrets in a view that limits their types.
    pub secrets: Option<SecretFilter>,
    /// Read masks on the resource.
    pub mask: Option<ReadMask>,
}

impl Translation {
    /// The translation of a request's answers into `view` with read masks `mask`, outside any
    /// namespace: what unit tests read answers through.
    #[cfg(test)]
    pub(crate) fn of_view(tree: &Arc<Tree>, view: NodeId, mask: Option<ReadMask>) -> Self {
        Translation {
            tree: Arc::clone(tree),
            view,
            namespace: None,
            watch: false,
            namespaces: false,
            secrets: None,
            mask,
        }
    }

    /// Translates one JSON document into the view; false when the document is hidden from it
    /// as a whole (a watch event about a secret of another type, which is then dropped).
    pub fn apply(&self, value: &mut Value) -> bool {
        let names = ViewNames::new(&self.tree, self.view);
        // Namespaces answered about namespaces are the view's (its subtree selector chose them),
        // also those created after this request's snapshot of the tree: their names drop the
        // view's prefix as every name of the view does.
        let prefix = self.tree.nodes[self.view].prefix.as_str();
        // A namespace of the tree outside the view shows as a placeholder, which a write brings
        // back as stored only where it was shown ([`crate::rewrite::hidden`]).
        let to_virtual = |physical: &str| {
            let fallback = || physical.strip_prefix(prefix).filter(|v| !v.is_empty()).map(str::to_owned);
            names
                .to_virtual(physical)
                .or_else(|| if self.namespaces { fallback() } else { None })
                .or_else(|| names.hidden(physical).then(|| HIDDEN_NAMESPACE.to_owned()))
        };
        map_namespaces(value, &to_virtual);
        if self.namespaces {
            map_namespace_names(value, &to_virtual);
            hide_tree_labels(value, &format!("tree.{}/", self.tree.domain));
        }
        if let Some((physical, virtual_name)) = &self.namespace {
            map_status_message(value, physical, virtual_name);
        }
        let in_prose = |physical: &str| self.in_prose(physical);
        map_messages(value, &in_prose);
        if let Some(object) = value.get_mut("object") {
            map_messages(object, &in_prose);
        }
        if let Some(Value::Array(items)) = value.get_mut("items") {
            items.iter_mut().for_each(|item| map_messages(item, &in_prose));
        }
        crate::rewrite::links::present(value, &self.tree, self.view);
        // Secrets are judged on whole objects first; the mask then strips and cuts Tables back.
        if !self.secrets.as_ref().is_none_or(|filter| filter.admit(value)) {
            return false;
        }
        if let Some(mask) = &self.mask {
            mask.apply(value);
        }
        true
    }

    /// A namespace named in prose: the view's by its virtual name, no other tenant's at all.
    fn in_prose(&self, physical: &str) -> Option<String> {
        ViewNames::new(&self.tree, self.view)
            .to_virtual(physical)
            .or_else(|| self.tree.owner(physical).map(|_| HIDDEN_NAMESPACE.to_owned()))
    }

    /// Canopy's own words that may name physical namespaces (a bound's constraint and reason,
    /// from the config) as the view may read them: namespaces as prose shows them, and `None`
    /// when a node's physical prefix (`acme-web-`) still shows, as in a pattern over names.
    /// A controller's view reads physical names anyway.
    pub fn prose(&self, text: &str) -> Option<String> {
        let mut text = text.to_owned();
        map_prose(&mut text, &|physical: &str| self.in_prose(physical));
        if self.tree.nodes[self.view].reach.is_some() {
            return Some(text);
        }
        let shows_prefix = self.tree.nodes.iter().any(|node| !node.prefix.is_empty() && text.contains(&node.prefix));
        (!shows_prefix).then_some(text)
    }

    /// One document translated; empty when it is hidden.
    pub fn apply_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
        let mut value: Value = serde_json::from_slice(bytes)?;
        if !self.apply(&mut value) {
            return Ok(Vec::new());
        }
        Ok(serde_json::to_vec(&value)?)
    }
}

/// Whether a request's body is Kubernetes protobuf.
pub fn is_protobuf(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/vnd.kubernetes.protobuf"))
}

/// Rewrites namespace names in a request body Canopy has read ([`reading::canonical`]: JSON,
/// or protobuf) with `map`, marking it [`CarriesHidden`] when it holds the placeholder.
pub async fn request(
    request: Request<Body>,
    map: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Request<Body>, Status> {
    let protobuf = is_protobuf(request.headers());
    let (mut parts, body) = request.into_parts();
    let bytes = read_bytes(body).await?;
    if bytes.is_empty() {
        return Ok(Request::from_parts(parts, body::empty()));
    }
    if protobuf {
        if memchr::memmem::find(&bytes, HIDDEN_NAMESPACE.as_bytes()).is_some() {
            parts.extensions.insert(CarriesHidden);
        }
        let rewritten =
            crate::rewrite::protobuf::map_namespace(&bytes, map).map_err(|e| Status::bad_request(e.to_string()))?;
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
        return Ok(Request::from_parts(parts, body::full(rewritten)));
    }
    let mut document = parse_document(&bytes)?;
    if crate::rewrite::hidden::carries(&document) {
        parts.extensions.insert(CarriesHidden);
    }
    // The object's own namespace is read in view terms: a name the view does not know (a physical
    // name included) matches no namespace, so the apiserver answers the mismatch as it would.
    if let Some(Value::String(namespace)) = document.pointer_mut("/metadata/namespace")
        && !namespace.is_empty()
        && map(namespace).is_none()
    {
        *namespace = crate::rewrite::selector::NO_NAMESPACE.to_owned();
    }
    with_document(parts, document, map)
}

/// An access review's (bounded) body as JSON, whether sent as JSON, YAML or protobuf (the content
/// type in `headers` then becomes JSON, as the body will be sent).
pub async fn read_review(body: Body, headers: &mut http::HeaderMap) -> Result<Value, Status> {
    let bytes = read_bytes(body).await?;
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("protobuf")) {
        let review =
            crate::rewrite::protobuf::review_to_json(&bytes).map_err(|e| Status::bad_request(e.to_string()))?;
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(review);
    }
    parse_document(&bytes)
}

/// A whole (bounded) request body.
pub async fn read_bytes(body: Body) -> Result<Bytes, Status> {
    Ok(Limited::new(body, MAX_REQUEST_BODY)
        .collect()
        .await
        .map_err(|e| {
            if let Some(timed_out) = e.downcast_ref::<BodyTimedOut>() {
                return timed_out.status();
            }
            match e.downcast_ref::<http_body_util::LengthLimitError>() {
                // From this limit or the configured one (`server::body_limit`) beneath it.
                Some(_) => Status::too_large("Request entity too large: the body is larger than this server accepts"),
                None => Status::bad_request(format!("cannot read the request body: {e}")),
            }
        })?
        .to_bytes())
}

/// A JSON document, duplicate keys refused (bodies in a view are Canopy's JSON by the time
/// anything judges them, see [`reading`]).
pub fn parse_document(bytes: &[u8]) -> Result<Value, Status> {
    crate::decode::json(bytes).map_err(|e| Status::bad_request(format!("the request body is not JSON: {e}")))
}

/// A request with `document` as its JSON body, namespace names mapped by `map`.
pub fn with_document(
    mut parts: http::request::Parts,
    mut document: Value,
    map: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Request<Body>, Status> {
    map_namespaces(&mut document, map);
    let rewritten = serde_json::to_vec(&document).map_err(|e| Status::internal(e.to_string()))?;
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
    Ok(Request::from_parts(parts, body::full(rewritten)))
}

/// How Canopy rewrites a document it serves.
pub enum DocumentMap {
    /// Applied to the JSON document.
    Json(Box<dyn FnOnce(&mut Value) + Send>),
    /// The OpenAPI v2 document in protobuf, filtered on the wire for a view with this ceiling.
    OpenApiV2Protobuf(Ceiling),
}

/// A successful response with `map` applied to its document, whatever upstream labelled it
/// (it serves the OpenAPI v3 index as `text/plain`); validators and caching headers are dropped,
/// since they describe the upstream's document, not this one.
pub fn map_document(response: Response<Body>, map: DocumentMap) -> Response<Body> {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    for name in [header::CONTENT_LENGTH, header::ETAG, header::LAST_MODIFIED, header::EXPIRES] {
        parts.headers.remove(name);
    }
    let label = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    // The label keeps what kind of JSON it is (`as=APIGroupDiscoveryList`: clients read it).
    let content_type = match &map {
        DocumentMap::Json(_) if render::is_json(&parts.headers) => None,
        DocumentMap::Json(_) => Some("application/json"),
        DocumentMap::OpenApiV2Protobuf(_) => Some(OPENAPI_V2_PROTOBUF[1]),
    };
    if let Some(content_type) = content_type {
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    let mapped = async move {
        let bytes = Limited::new(body, MAX_RESPONSE_BODY).collect().await?.to_bytes();
        let mapped = match map {
            DocumentMap::Json(f) => {
                let mut value: Value = serde_json::from_slice(&bytes)?;
                f(&mut value);
                serde_json::to_vec(&value)?
            }
            // Only what Canopy asked for is read as protobuf; anything else is never passed on.
            DocumentMap::OpenApiV2Protobuf(ceiling) if OPENAPI_V2_PROTOBUF.iter().any(|t| label.starts_with(t)) => {
                openapi_v2_protobuf::filter(&ceiling, &bytes)?
            }
            DocumentMap::OpenApiV2Protobuf(_) => return Err(format!("upstream answered in {label}").into()),
        };
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(mapped)))
    };
    Response::from_parts(parts, body::boxed(StreamBody::new(futures_util::stream::once(mapped))))
}

/// Translates a JSON response back into the view; other content types are left to
/// [`render::render`], which never lets them through in a view.
pub fn response(response: Response<Body>, translation: Translation) -> Response<Body> {
    if !render::is_json(response.headers()) {
        return response;
    }
    let watch = translation.watch && response.status().is_success();
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = if watch {
        event::translate_events(body, translation, MAX_EVENT)
    } else {
        list::translate(body, translation, MAX_EVENT, MAX_RESPONSE_BODY)
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content_type: &str) -> Response<Body> {
        Response::builder().header(header::CONTENT_TYPE, content_type).body(body::full(r#"{"kind":"x"}"#)).unwrap()
    }

    #[test]
    fn messages_name_no_namespace_outside_the_view() {
        let tree = Arc::new(crate::policy::tests::example());
        let view = tree.node("acme/web").unwrap();
        let translation = Translation::of_view(&tree, view, None);
        let mut status = serde_json::json!({"kind": "Status",
            "message": "cannot move acme-web-dev/x to acme-data-warehouse or globex-main; kube-system stays"});
        translation.apply(&mut status);
        assert_eq!(
            status["message"],
            "cannot move dev/x to <another namespace> or <another namespace>; kube-system stays"
        );
    }

    #[test]
    fn fields_name_no_namespace_outside_the_view() {
        let tree = Arc::new(crate::policy::tests::example());
        let view = tree.node("acme/web").unwrap();
        let translation = Translation::of_view(&tree, view, None);
        let mut binding = serde_json::json!({"kind": "RoleBinding", "metadata": {"namespace": "acme-web-dev"},
            "subjects": [
                {"kind": "ServiceAccount", "name": "a", "namespace": "globex-main"},
                {"kind": "ServiceAccount", "name": "b", "namespace": "acme-data-warehouse"},
                {"kind": "ServiceAccount", "name": "c", "namespace": "kube-system"},
                {"kind": "User", "name": "system:serviceaccount:acme-data-warehouse:d"}]});
        translation.apply(&mut binding);
        let namespaces: Vec<&Value> = (0..3).map(|i| &binding["subjects"][i]["namespace"]).collect();
        // Another tenant's and an ancestor's namespace are hidden; the platform's shows.
        assert_eq!(namespaces, [HIDDEN_NAMESPACE, HIDDEN_NAMESPACE, "kube-system"]);
        assert_eq!(binding["subjects"][3]["name"], format!("system:serviceaccount:{HIDDEN_NAMESPACE}:d"));
        assert_eq!(binding["metadata"]["namespace"], "dev");
        let mut table = serde_json::json!({"kind": "Table",
            "rows": [{"cells": ["b", "ClusterRole/view", "", "", "", "globex-main/a, acme-web-prod/e"]}]});
        translation.apply(&mut table);
        assert_eq!(table["rows"][0]["cells"][5], format!("{HIDDEN_NAMESPACE}/a, prod/e"));
    }

    #[test]
    fn mapped_documents_keep_the_kind_of_json_they_are() {
        let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        let mapped = map_document(answer(aggregated), DocumentMap::Json(Box::new(|_| {})));
        assert_eq!(mapped.headers()[header::CONTENT_TYPE], aggregated);
        // The OpenAPI v3 index arrives labelled as text; it leaves as the JSON it is.
        let mapped = map_document(answer("text/plain; charset=utf-8"), DocumentMap::Json(Box::new(|_| {})));
        assert_eq!(mapped.headers()[header::CONTENT_TYPE], "application/json");
    }
}
