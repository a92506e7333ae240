//! References stay in the tree (design invariant 6), applied to writes. Create, update and patch
//! of Roles, RoleBindings, Pods and pod-bearing objects, PersistentVolumeClaims and Ingresses are
//! first sent as a dry run as the caller, and the object the apiserver *would* store is judged
//! ([`super::references`]), so every patch type and server-side apply are judged on their
//! result. What the tree alone cannot answer is looked up: a RoleBinding's Role and a pod spec's
//! ServiceAccount as the caller (what the caller cannot read upstream, it may not reference,
//! and Canopy needs no read access to tenants' namespaces), a StorageClass or IngressClass as
//! Canopy (cluster-scoped platform objects that tenants' upstream RBAC rarely lets them read).
//! Only then is the write sent for real; a refused write changes nothing upstream.
//!
//! When the apiserver refuses the dry run itself (a binding to a Role that does not exist or to
//! a ClusterRole the caller does not hold, a pod whose ServiceAccount is missing), an object sent
//! whole (create, update, server-side apply) is judged as sent: the caller then reads Canopy's
//! reason, in the view's names, rather than the apiserver's, which names physical namespaces.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use serde_json::Value;
use tower::{Service, ServiceExt};

use super::AsCanopy;
use super::as_caller::{Tried, encode_segment, read_json, try_write};
use super::references::{self, Lookup};
use super::secret_gate::SecretGate;
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::request::RequestInfo;
use crate::status::Status;
use crate::transform::{self, Translation};
use crate::tree::{NodeId, Tree};

/// Whether the body of a write is the object as the caller wants it stored: create, update and
/// server-side apply (whose configuration names everything it sets), not other patch types.
fn sends_whole_object(parts: &http::request::Parts) -> bool {
    let apply = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/apply-patch"));
    parts.method == Method::POST || parts.method == Method::PUT || (parts.method == Method::PATCH && apply)
}

/// The object a write sends, as JSON (kubectl sends the objects of its `create role` and
/// `create rolebinding` as protobuf).
fn sent_object(parts: &http::request::Parts, bytes: &[u8]) -> Option<Value> {
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.contains("protobuf") {
        return crate::rewrite::protobuf::references_to_json(bytes).ok();
    }
    transform::parse_document(bytes).ok()
}

/// A write whose references are checked before it is sent.
pub struct ReferenceGate {
    tree: Arc<Tree>,
    view: NodeId,
    identity: Identity,
    /// `(physical, virtual)` namespace of the request.
    namespace: (String, String),
    /// The object named in the path, if any.
    name: String,
    /// The view's secret-type checks of the same write (pod specs in views that limit secret
    /// types), made on the same dry run.
    secrets: Option<SecretGate>,
}

impl ReferenceGate {
    /// The gate for `info` in `view`, if the request is a write whose references are checked.
    pub fn of(
        tree: &Arc<Tree>,
        view: NodeId,
        info: &RequestInfo,
        identity: &Identity,
        namespace: &Option<(String, String)>,
    ) -> Option<Self> {
        let namespace = namespace.clone()?;
        let write = matches!(info.verb.as_str(), "create" | "update" | "patch");
        (write && info.subresource.is_empty() && references::is_checked(&info.api_group, &info.resource)).then(|| {
            ReferenceGate {
                tree: Arc::clone(tree),
                view,
                identity: identity.clone(),
                namespace,
                name: info.name.clone(),
                secrets: None,
            }
        })
    }

    /// Also makes the secret-type checks of `secrets` on the dry-run result.
    pub fn with_secrets(mut self, secrets: Option<SecretGate>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Answers `request` (already rewritten for upstream) through `inner`.
    pub async fn serve<S>(
        self,
        inner: S,
        request: Request<Body>,
        translation: Translation,
    ) -> Result<Response<Body>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
        S::Future: Send,
    {
        let (parts, body) = request.into_parts();
        let bytes = transform::read_bytes(body).await?;
        let object = match try_write(inner.clone(), &self.identity, &parts, bytes.clone()).await? {
            Tried::Object(object) => object,
            Tried::Refused(answer) => {
                let refused = matches!(answer.status(), StatusCode::FORBIDDEN | StatusCode::NOT_FOUND);
                if refused
                    && sends_whole_object(&parts)
                    && let Some(sent) = sent_object(&parts, &bytes)
                {
                    self.judge(inner.clone(), &sent).await?;
                }
                return Ok(transform::response(answer, translation));
            }
        };
        if let Some(secrets) = &self.secrets {
            secrets.judge(inner.clone(), &object).await?;
        }
        self.judge(inner.clone(), &object).await?;
        let request = Request::from_parts(parts, body::full(bytes));
        Ok(transform::response(inner.oneshot(request).await?, translation))
    }

    /// Refuses `object` with 403 if it names something outside the view or missing upstream.
    async fn judge<S>(&self, inner: S, object: &Value) -> Result<(), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone,
    {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("object");
        let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&self.name);
        let refuse = |why: String| Status::forbidden(format!("{kind} {name:?} is forbidden: {why}"));
        for lookup in references::judge(&self.tree, self.view, object).map_err(refuse)? {
            if let Some(why) = self.look_up(inner.clone(), &lookup).await? {
                return Err(refuse(why));
            }
        }
        Ok(())
    }

    /// Why `lookup` refuses the write, if it does.
    async fn look_up<S>(&self, inner: S, lookup: &Lookup) -> Result<Option<String>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
    {
        let (physical, virtual_name) = (encode_segment(&self.namespace.0), &self.namespace.1);
        let user = &self.identity.user;
        match lookup {
            Lookup::Role(role) => {
                let path =
                    format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{physical}/roles/{}", encode_segment(role));
                Ok(match self.get(inner, &path, false).await? {
                    (_, Some(found)) => {
                        let node = &self.tree.nodes[self.view];
                        references::bound_role_excess(&node.ceiling, &node.path, role, &found)
                    }
                    (StatusCode::NOT_FOUND, _) => {
                        Some(format!("roleRef names Role {role:?}, which does not exist in namespace {virtual_name:?}"))
                    }
                    (StatusCode::FORBIDDEN, _) => {
                        Some(format!("roleRef names Role {role:?}, which User {user:?} may not read"))
                    }
                    (status, _) => {
                        return Err(Status::bad_gateway(format!("looking up Role {role:?} answered {status}")));
                    }
                })
            }
            Lookup::ServiceAccount { name, field } => {
                let path = format!("/api/v1/namespaces/{physical}/serviceaccounts/{}", encode_segment(name));
                Ok(match self.get(inner, &path, false).await? {
                    (_, Some(_)) => None,
                    (StatusCode::NOT_FOUND, _) => Some(format!(
                        "{field} names ServiceAccount {name:?}, which does not exist in namespace {virtual_name:?}"
                    )),
                    (StatusCode::FORBIDDEN, _) => {
                        Some(format!("{field} names ServiceAccount {name:?}, which User {user:?} may not read"))
                    }
                    (status, _) => {
                        return Err(Status::bad_gateway(format!(
                            "looking up ServiceAccount {name:?} answered {status}"
                        )));
                    }
                })
            }
            Lookup::Class { class, name, field } => {
                let kind = class.kind();
                Ok(match self.get(inner, &format!("{}/{}", class.path(), encode_segment(name)), true).await? {
                    (_, Some(_)) => None,
                    (StatusCode::NOT_FOUND, _) => Some(format!("{field} names {kind} {name:?}, which does not exist")),
                    (status, _) => {
                        // Canopy's own RBAC lets it read classes; anything else is the platform's to fix.
                        return Err(Status::internal(format!(
                            "Canopy cannot check that {kind} {name:?} exists: the upstream answered {status}"
                        )));
                    }
                })
            }
        }
    }

    /// GET of `path` as the caller (or as Canopy): the answer's status, and the object if found.
    async fn get<S>(&self, inner: S, path: &str, as_canopy: bool) -> Result<(StatusCode, Option<Value>), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
    {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::ACCEPT, "application/json")
            .body(body::empty())
            .map_err(|_| Status::bad_request(format!("invalid reference {path:?}")))?;
        request.extensions_mut().insert(self.identity.clone());
        if as_canopy {
            request.extensions_mut().insert(AsCanopy);
        }
        let found = inner.oneshot(request).await?;
        let status = found.status();
        if !status.is_success() {
            return Ok((status, None));
        }
        Ok((status, Some(read_json(found.into_body()).await?)))
    }
}
