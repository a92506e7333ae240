//! References stay in the tree (design invariant 6), applied to writes. Create, update and patch
//! of Roles, RoleBindings, Pods and pod-bearing objects, PersistentVolumeClaims and Ingresses are
//! judged by the write driver ([`super::write`]) on the object the apiserver *would* store
//! ([`super::references`]), so every patch type and server-side apply are judged on their
//! result. What the tree alone cannot answer is looked up: a RoleBinding's Role and a pod spec's
//! ServiceAccount as the caller (what the caller cannot read upstream, it may not reference,
//! and Canopy needs no read access to tenants' namespaces), a StorageClass or IngressClass as
//! Canopy (cluster-scoped platform objects that tenants' upstream RBAC rarely lets them read).
//!
//! When the apiserver refuses the dry run itself (a binding to a Role that does not exist or to
//! a ClusterRole the caller does not hold, a pod whose ServiceAccount is missing), an object sent
//! whole (create, update, server-side apply) is judged as sent: the caller then reads Canopy's
//! reason, in the view's names, rather than the apiserver's, which names physical namespaces.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use serde_json::Value;
use tower::{Service, ServiceExt};

use super::AsCanopy;
use super::as_caller::{encode_segment, read_json};
use super::references::{self, Lookup};
use super::write::{Proposed, Upstream, Write, WriteGate};
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::request::RequestInfo;
use crate::status::Status;
use crate::tree::{NodeId, Tree};

/// The object a write sends, as JSON (kubectl sends the objects of its `create role` and
/// `create rolebinding` as protobuf).
fn sent_object(write: &Write) -> Option<Value> {
    match &write.sent {
        Some(sent) => Some(sent.clone()),
        None => crate::rewrite::protobuf::references_to_json(&write.bytes).ok(),
    }
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
            }
        })
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

impl WriteGate for ReferenceGate {
    fn judge<'a>(&'a self, upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(self.judge(upstream, proposed.result))
    }

    /// An object sent whole that the apiserver refused as missing or forbidden (a binding to a
    /// Role that does not exist, a pod whose ServiceAccount is missing) is judged as sent: the
    /// caller reads Canopy's reason, in the view's names, not the apiserver's.
    fn explain<'a>(
        &'a self,
        upstream: Upstream,
        write: &'a Write,
        refused: StatusCode,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            let missing = matches!(refused, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND);
            match sent_object(write) {
                Some(sent) if missing && write.verb.sends_whole_object() => self.judge(upstream, &sent).await,
                _ => Ok(()),
            }
        })
    }
}
