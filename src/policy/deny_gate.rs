//! Deny rules that choose objects by label (issue 20). A request about one object that such a
//! rule reaches ([`DenyRule::refuses_labelled`], found by [`super::decide`]) is judged on that object's labels, read from
//! upstream as the caller, never from the request:
//!
//! - create, update and patch of the object or its `status`: by the write driver, on the stored
//!   object and on the object the apiserver would store; either one matching refuses, so a write
//!   can neither lift the rule by relabelling nor bring a chosen object into being. The commit
//!   carries the judged resourceVersion ([`super::write`]).
//! - delete and eviction: the stored object is judged and the delete (the eviction's delete
//!   options) sent with a precondition on the resourceVersion judged, so an object relabelled
//!   meanwhile is not deleted (`409`).
//! - get of the object or its `status`: judged on the answer itself.
//! - update and patch of the object's other subresources (`scale`), which carry its
//!   resourceVersion: by the write driver, on the object read after the dry run, which must be
//!   the state the dry run was based on; the commit is pinned to that state.
//! - the object's other subresources (`log`, `exec`, `attach`, `portforward`, `proxy`): the
//!   object is read and judged first. The API gives these acts no precondition, so an object
//!   labelled between that read and the act is not seen.
//!
//! Lists, watches and deletecollections never get here: the rule refuses them unless their own
//! selector excludes its objects ([`DenyRule::refuses`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header};
use serde_json::Value;
use tower::{Service, ServiceExt};

use super::as_caller::{self, encode_segment, read, read_json};
use super::precondition::Verb;
use super::write::{Proposed, Stored, Upstream, Write, WriteGate};
use super::{AsCanopy, Plan};
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::request::RequestInfo;
use crate::rewrite::protobuf;
use crate::status::Status;
use crate::transform;
use crate::tree::deny::DenyRule;
use crate::tree::{NodeId, Tree};

/// How a request the rules reach is judged.
pub enum DenyCheck {
    /// Create, update or patch of the object or its status: by the write driver.
    Write(DenyGate),
    /// Get of the object or its status: on the answer.
    Answer(DenyGate),
    /// Delete or eviction: on the stored object, sent with a precondition.
    Delete(DenyGate),
    /// Anything else naming an object: on the object, first.
    Lookup(DenyGate),
}

/// A request about one object, under the deny rules that choose objects by label.
pub struct DenyGate {
    rules: Vec<Arc<DenyRule>>,
    identity: Identity,
    info: RequestInfo,
    /// The view's path, named in refusals.
    view: String,
    /// Physical path of the object the request is about (for a subresource, its object's).
    object: String,
}

impl DenyGate {
    /// The check of `info` in `view` under the label rules [`super::decide`] found in `plan`,
    /// if any.
    pub fn of(tree: &Tree, view: NodeId, info: &RequestInfo, identity: &Identity, plan: &Plan) -> Option<DenyCheck> {
        if plan.labelled.is_empty() {
            return None;
        }
        let physical = plan.namespace.as_ref().map(|(physical, _)| physical.as_str());
        let gate = DenyGate {
            rules: plan.labelled.clone(),
            identity: identity.clone(),
            info: info.clone(),
            view: tree.nodes[view].path.clone(),
            object: object_path(info, physical),
        };
        let whole = gate.whole();
        Some(match info.verb.as_str() {
            "create" | "update" | "patch" if whole => DenyCheck::Write(gate),
            // Its other subresources (`scale`) share its resourceVersion: their writes are
            // judged on the object and committed pinned to the version judged.
            "update" | "patch" => DenyCheck::Write(gate),
            "get" if whole => DenyCheck::Answer(gate),
            "delete" if info.subresource.is_empty() => DenyCheck::Delete(gate),
            "create" if info.subresource == "eviction" => DenyCheck::Delete(gate),
            _ => DenyCheck::Lookup(gate),
        })
    }

    /// Refuses the request if the object it is about is one the rules choose.
    pub async fn check<S>(&self, inner: S, as_canopy: Option<AsCanopy>) -> Result<(), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
    {
        match self.stored(inner, as_canopy).await? {
            Some(object) => self.judge(&object),
            None => Ok(()),
        }
    }

    /// Judges the object `request` deletes (or evicts) and pins the act to the state judged.
    pub async fn guard_delete<S>(&self, inner: S, request: Request<Body>) -> Result<Request<Body>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
    {
        let as_canopy = request.extensions().get::<AsCanopy>().copied();
        let Some(stored) = self.stored(inner, as_canopy).await? else {
            // Absent: the apiserver answers the delete as it would.
            return Ok(request);
        };
        self.judge(&stored)?;
        let judged = stored.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
        let evicts = self.info.subresource == "eviction";
        let (mut parts, body) = request.into_parts();
        let bytes = read(body).await?;
        let pinned = match transform::is_protobuf(&parts.headers) {
            true if evicts => {
                let malformed = |_| Status::bad_request("malformed protobuf Eviction");
                match protobuf::eviction_precondition(&bytes).map_err(malformed)? {
                    Some(asked) if asked != judged => return Err(stale(&self.info, &asked, judged)),
                    _ => protobuf::eviction_with_precondition(&bytes, judged).map_err(malformed)?,
                }
            }
            true => {
                return Err(Status::unsupported_media_type(
                    "delete options in protobuf cannot be read here; send them as JSON",
                ));
            }
            false => {
                let mut document = match bytes.is_empty() {
                    true => Value::Object(Default::default()),
                    false => transform::parse_document(&bytes)?,
                };
                let options = match evicts {
                    true => document
                        .as_object_mut()
                        .map(|e| e.entry("deleteOptions").or_insert(Value::Object(Default::default()))),
                    false => Some(&mut document),
                };
                self.pin(options.and_then(Value::as_object_mut), judged)?;
                parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                serde_json::to_vec(&document).map_err(|e| Status::internal(e.to_string()))?
            }
        };
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(pinned.len()));
        Ok(Request::from_parts(parts, body::full(pinned)))
    }

    /// Sets `preconditions.resourceVersion` in delete `options` to `judged`; `409` if the caller
    /// asked for another.
    fn pin(&self, options: Option<&mut serde_json::Map<String, Value>>, judged: &str) -> Result<(), Status> {
        let options = options.ok_or_else(|| Status::bad_request("the delete options are not an object"))?;
        let preconditions = options.entry("preconditions").or_insert_with(|| Value::Object(Default::default()));
        let Some(preconditions) = preconditions.as_object_mut() else {
            return Err(Status::bad_request("preconditions is not an object"));
        };
        match preconditions.get("resourceVersion").and_then(Value::as_str) {
            Some(asked) if asked != judged => Err(stale(&self.info, asked, judged)),
            _ => {
                preconditions.insert("resourceVersion".into(), Value::from(judged));
                Ok(())
            }
        }
    }

    /// Refuses `answer` (to a get of the object) if it shows an object the rules choose; a
    /// Table row without its object is judged on the object read anew.
    pub async fn judge_answer<S>(
        &self,
        inner: S,
        as_canopy: Option<AsCanopy>,
        answer: Response<Body>,
    ) -> Result<Response<Body>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
    {
        if !answer.status().is_success() {
            return Ok(answer);
        }
        let (parts, body) = answer.into_parts();
        let bytes = read(body).await?;
        let document: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Status::bad_gateway(format!("the upstream answer is not JSON: {e}")))?;
        match document.get("kind").and_then(Value::as_str) {
            Some("Table") => {
                let rows = document.get("rows").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
                let objects: Option<Vec<&Value>> =
                    rows.iter().map(|row| row.get("object").filter(|o| o.get("metadata").is_some())).collect();
                match objects {
                    Some(objects) => objects.into_iter().try_for_each(|object| self.judge(object))?,
                    None => self.check(inner, as_canopy).await?,
                }
            }
            _ => self.judge(&document)?,
        }
        Ok(Response::from_parts(parts, body::full(bytes)))
    }

    /// The object the request is about, read as the request is sent; `None`: it does not exist.
    async fn stored<S>(&self, inner: S, as_canopy: Option<AsCanopy>) -> Result<Option<Value>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
    {
        let mut lookup = as_caller::get(&self.identity, &self.object)?;
        if let Some(as_canopy) = as_canopy {
            lookup.extensions_mut().insert(as_canopy);
        }
        let found = inner.oneshot(lookup).await?;
        match found.status() {
            status if status.is_success() => Ok(Some(read_json(found.into_body()).await?)),
            StatusCode::NOT_FOUND => Ok(None),
            status => Err(self.unreadable(status)),
        }
    }

    /// Whether the request is about the object itself or its `status`, which carry its labels.
    fn whole(&self) -> bool {
        matches!(self.info.subresource.as_str(), "" | "status")
    }

    /// Judges the object a write of another subresource (`scale`) is about, read after the dry
    /// run: that subresource carries the object's resourceVersion, so the object judged must
    /// be the one the dry run was based on (`base`), and the commit, pinned to `base`, meets a
    /// `409` if the object is relabelled afterwards.
    async fn judge_object(&self, upstream: Upstream, as_canopy: Option<AsCanopy>, base: &str) -> Result<(), Status> {
        let Some(object) = self.stored(upstream, as_canopy).await? else {
            return Err(moved(&self.info));
        };
        self.judge(&object)?;
        match object.pointer("/metadata/resourceVersion").and_then(Value::as_str) {
            Some(judged) if judged == base => Ok(()),
            _ => Err(moved(&self.info)),
        }
    }

    /// Refuses `object` if a rule chooses it.
    fn judge(&self, object: &Value) -> Result<(), Status> {
        let labels = labels(object);
        match self.rules.iter().find(|rule| rule.chooses(&labels)) {
            Some(rule) => Err(super::denied(&self.view, &self.identity, &self.info, rule)),
            None => Ok(()),
        }
    }

    /// The object's labels cannot be read, so whether a rule chooses it cannot be told.
    fn unreadable(&self, status: StatusCode) -> Status {
        let rule = self.rules.first().map(|rule| rule.at.as_str()).unwrap_or_default();
        Status::forbidden(format!(
            "{} {:?} is forbidden: {rule} chooses objects by label, and reading its labels as User {:?} was answered {status}",
            self.info.resource, self.info.name, self.identity.user
        ))
        .about(&self.info.name, &self.info.api_group, &self.info.resource)
    }
}

impl WriteGate for DenyGate {
    fn needs_stored(&self, verb: Verb) -> bool {
        verb != Verb::Create
    }

    /// A write to an object the rules choose is refused before anything is tried. Another
    /// subresource stored (a `Scale`) has no labels of its own: its object is judged later.
    fn prepare(&self, _write: &mut Write, stored: &Stored) -> Result<(), Status> {
        match stored {
            Stored::Found(object) if self.whole() => self.judge(object),
            Stored::Unreadable(status) => Err(self.unreadable(*status)),
            Stored::Found(_) | Stored::NotRead | Stored::Absent => Ok(()),
        }
    }

    fn judge<'a>(&'a self, upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            if self.whole() {
                return self.judge(proposed.result);
            }
            let as_canopy = proposed.write.parts.extensions.get::<AsCanopy>().copied();
            let base = proposed.result.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
            self.judge_object(upstream, as_canopy, base).await
        })
    }
}

/// `metadata.labels` of `object`.
fn labels(object: &Value) -> BTreeMap<String, String> {
    let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
    labels.into_iter().flatten().filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned()))).collect()
}

/// The physical path of the object `info` is about, in `namespace` (physical).
fn object_path(info: &RequestInfo, namespace: Option<&str>) -> String {
    let version = match info.api_group.as_str() {
        "" => format!("/api/{}", info.api_version),
        group => format!("/apis/{group}/{}", info.api_version),
    };
    let (resource, name) = (encode_segment(&info.resource), encode_segment(&info.name));
    match (info.resource.as_str(), namespace) {
        ("namespaces", Some(namespace)) => format!("{version}/namespaces/{}", encode_segment(namespace)),
        (_, Some(namespace)) => format!("{version}/namespaces/{}/{resource}/{name}", encode_segment(namespace)),
        (_, None) => format!("{version}/{resource}/{name}"),
    }
}

/// The object changed between the dry run of a subresource write and its judgement: the
/// caller retries on the new state, as after any conflict.
fn moved(info: &RequestInfo) -> Status {
    Status::from_code(
        StatusCode::CONFLICT,
        format!(
            "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
            info.resource, info.name
        ),
    )
}

/// A delete whose own precondition names another state than the one judged, worded as the
/// apiserver words a failed precondition.
fn stale(info: &RequestInfo, asked: &str, judged: &str) -> Status {
    Status::from_code(
        StatusCode::CONFLICT,
        format!(
            "Operation cannot be fulfilled on {} {:?}: the ResourceVersion in the precondition ({asked}) does not match the ResourceVersion in record ({judged}). The object might have been modified",
            info.resource, info.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::json;

    use super::*;

    #[test]
    fn an_object_is_read_at_its_own_path_whatever_subresource_is_asked() {
        let info =
            RequestInfo::parse(&http::Method::PUT, "/apis/apps/v1/namespaces/dev/deployments/web/scale", None).unwrap();
        assert_eq!(
            object_path(&info, Some("acme-web-dev")),
            "/apis/apps/v1/namespaces/acme%2Dweb%2Ddev/deployments/web"
        );
        let info = RequestInfo::parse(&http::Method::GET, "/api/v1/nodes/n.1/proxy/x", None).unwrap();
        assert_eq!(object_path(&info, None), "/api/v1/nodes/n%2E1");
    }

    /// The gate of bob's `method` on `uri` (in view acme, whose `dev` is `acme-dev`) under the
    /// label rule `rule`, and an apiserver answering every read of the object with `object`.
    fn gate_and_upstream(rule: &str, method: http::Method, uri: &str, object: Value) -> (DenyGate, Upstream) {
        let raw: crate::config::raw_tree::RawDeny = serde_saphyr::from_str(rule).unwrap();
        let rule = DenyRule::compile(&raw, "acme-", &[], "tree.nodes[0].deny[1]").unwrap();
        let info = RequestInfo::parse(&method, uri, None).unwrap();
        let path = object_path(&info, Some("acme-dev"));
        let gate = DenyGate {
            rules: vec![Arc::new(rule)],
            identity: Identity::new("bob", ["g"]),
            object: path.clone(),
            info,
            view: "acme".into(),
        };
        let upstream = tower::util::BoxCloneService::new(tower::service_fn(move |request: Request<Body>| {
            assert_eq!(request.uri().path(), path);
            let answer = Response::new(body::full(serde_json::to_vec(&object).unwrap()));
            async move { Ok(answer) }
        }));
        (gate, upstream)
    }

    /// An apiserver holding ConfigMap `c` at resourceVersion 7 with `labels`, under a rule
    /// refusing deletes of protected ones.
    fn configmap(labels: Value) -> (DenyGate, Upstream) {
        let object = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "7", "labels": labels}});
        let rule = "{resources: [configmaps], verbs: [delete], labelSelector: {matchLabels: {protected: 'true'}}}";
        gate_and_upstream(rule, http::Method::DELETE, "/api/v1/namespaces/dev/configmaps/c", object)
    }

    fn delete(options: &str, content_type: &str) -> Request<Body> {
        Request::delete("/api/v1/namespaces/acme-dev/configmaps/c")
            .header(header::CONTENT_TYPE, content_type)
            .body(body::full(options.as_bytes().to_vec()))
            .unwrap()
    }

    #[tokio::test]
    async fn a_delete_is_sent_pinned_to_the_object_judged() {
        let (gate, upstream) = configmap(json!({"app": "web"}));
        let request = gate.guard_delete(upstream, delete(r#"{"propagationPolicy":"Foreground"}"#, "application/json"));
        let sent = read(request.await.unwrap().into_body()).await.unwrap();
        let sent: Value = serde_json::from_slice(&sent).unwrap();
        assert_eq!(sent, json!({"propagationPolicy": "Foreground", "preconditions": {"resourceVersion": "7"}}));
    }

    #[tokio::test]
    async fn a_delete_of_a_chosen_object_or_of_another_state_than_judged_is_refused() {
        let (gate, upstream) = configmap(json!({"protected": "true"}));
        let refused = gate.guard_delete(upstream, delete("", "application/json")).await.unwrap_err();
        assert_eq!(refused.code, StatusCode::FORBIDDEN);
        assert!(refused.message.contains("denied by tree.nodes[0].deny[1]"), "{}", refused.message);
        let (gate, upstream) = configmap(json!({}));
        let stale = delete(r#"{"preconditions":{"resourceVersion":"6"}}"#, "application/json");
        assert_eq!(gate.guard_delete(upstream.clone(), stale).await.unwrap_err().code, StatusCode::CONFLICT);
        let protobuf = delete("k8s\0", "application/vnd.kubernetes.protobuf");
        assert_eq!(gate.guard_delete(upstream, protobuf).await.unwrap_err().code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    /// An apiserver holding Pod `p` at resourceVersion 7 with `labels`, under a rule refusing
    /// evictions of protected ones.
    fn pod(labels: Value) -> (DenyGate, Upstream) {
        let object = json!({"kind": "Pod", "metadata": {"name": "p", "resourceVersion": "7", "labels": labels}});
        let rule = "{resources: [pods/eviction], verbs: [create], labelSelector: {matchLabels: {protected: 'true'}}}";
        gate_and_upstream(rule, http::Method::POST, "/api/v1/namespaces/dev/pods/p/eviction", object)
    }

    #[tokio::test]
    async fn an_eviction_is_judged_on_its_pod_and_sent_pinned_to_the_state_judged() {
        let (gate, upstream) = pod(json!({"app": "web"}));
        let eviction = r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p"}}"#;
        let request = gate.guard_delete(upstream.clone(), delete(eviction, "application/json"));
        let sent: Value = serde_json::from_slice(&read(request.await.unwrap().into_body()).await.unwrap()).unwrap();
        assert_eq!(sent["deleteOptions"], json!({"preconditions": {"resourceVersion": "7"}}));
        // In protobuf (kubectl drain): the precondition is appended to the Eviction.
        let protobuf = [&b"k8s\0"[..], &[0x12, 0x05, 0x0a, 0x03, 0x0a, 0x01, b'p']].concat();
        let request = Request::post("/").header(header::CONTENT_TYPE, "application/vnd.kubernetes.protobuf");
        let request = request.body(body::full(protobuf)).unwrap();
        let sent = read(gate.guard_delete(upstream.clone(), request).await.unwrap().into_body()).await.unwrap();
        assert_eq!(protobuf::eviction_precondition(&sent), Ok(Some("7".into())));
        // Asked for another state: 409. A protected pod: 403.
        let stale = r#"{"kind":"Eviction","deleteOptions":{"preconditions":{"resourceVersion":"6"}}}"#;
        assert_eq!(
            gate.guard_delete(upstream, delete(stale, "application/json")).await.unwrap_err().code,
            StatusCode::CONFLICT
        );
        let (gate, upstream) = pod(json!({"protected": "true"}));
        let refused = gate.guard_delete(upstream, delete(eviction, "application/json")).await.unwrap_err();
        assert_eq!(refused.code, StatusCode::FORBIDDEN);
    }

    /// Judges bob's scale patch of Deployment `web` against a dry-run `Scale` at `base`, with
    /// the Deployment stored at resourceVersion 7 with `labels`.
    async fn judge_scale(labels: Value, base: &str) -> Result<(), Status> {
        let rule = "{apiGroups: [apps], resources: [deployments], verbs: [patch], labelSelector: {matchExpressions: [{key: open, operator: DoesNotExist}]}}";
        let object =
            json!({"kind": "Deployment", "metadata": {"name": "web", "resourceVersion": "7", "labels": labels}});
        let uri = "/apis/apps/v1/namespaces/dev/deployments/web/scale";
        let (gate, upstream) = gate_and_upstream(rule, http::Method::PATCH, uri, object);
        let (parts, ()) =
            Request::patch("/apis/apps/v1/namespaces/acme-dev/deployments/web/scale").body(()).unwrap().into_parts();
        let verb = Verb::Patch(super::super::precondition::Patch::Merge);
        let mut write = Write { parts, verb, bytes: Bytes::new(), sent: None };
        // The Scale has no labels: judged as one, it would be chosen by the rule.
        let scale = json!({"kind": "Scale", "metadata": {"name": "web", "resourceVersion": base}});
        let stored = Stored::Found(scale.clone());
        gate.prepare(&mut write, &stored)?;
        WriteGate::judge(&gate, upstream, Proposed { write: &write, stored: &stored, result: &scale }).await
    }

    #[tokio::test]
    async fn a_scale_write_is_judged_on_its_objects_labels_at_the_version_the_dry_run_was_based_on() {
        assert_eq!(judge_scale(json!({"open": "1"}), "7").await, Ok(()));
        let refused = judge_scale(json!({}), "7").await.unwrap_err();
        assert_eq!(refused.code, StatusCode::FORBIDDEN);
        assert!(refused.message.contains("denied by tree.nodes[0].deny[1]"), "{}", refused.message);
        // Relabelled between the dry run and the read: judged again by the caller's retry.
        assert_eq!(judge_scale(json!({"open": "1"}), "6").await.unwrap_err().code, StatusCode::CONFLICT);
    }

    #[test]
    fn labels_that_are_not_strings_are_not_labels() {
        let object = json!({"metadata": {"labels": {"a": "1", "b": 2}}});
        assert_eq!(labels(&object), BTreeMap::from([("a".to_owned(), "1".to_owned())]));
        assert!(labels(&json!({"kind": "Scale"})).is_empty());
    }
}
