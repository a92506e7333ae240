//! Secrets by type, the requests Canopy must look at before answering (design invariant 5), in
//! views whose ceiling names secret types:
//!
//! - GET of one Secret: a hidden type answers 404 exactly as a missing secret would.
//! - DELETE, update or patch of one Secret: looked up first; a hidden one is 404 and stays as it
//!   is. Deleting a collection is refused, since it would reach hidden secrets.
//! - create, update and patch of a Secret, a Pod (and its `ephemeralcontainers`), a pod-bearing
//!   object or a ServiceAccount (whose pull secrets its pods get): judged by the write driver
//!   ([`super::write`]) on the object the apiserver *would* store, so every patch type and
//!   server-side apply are judged on their result, not their syntax. A Secret of another type is refused with 403 naming the type; a pod spec naming a
//!   secret that is missing, unreadable or of another type is refused with 403 naming the field.
//!   A pod spec naming a ConfigMap the caller may not read is refused the same way (a missing one
//!   is left to the kubelet to wait for, as without Canopy).
//!
//! Every upstream call here is made as the caller (impersonated, through the same inner service
//! the tenancy layer forwards with), not as Canopy: a secret the caller may not read upstream is
//! exactly one a pod of theirs must not mount, so upstream RBAC keeps deciding, and Canopy needs
//! no read access to tenants' secrets.

use futures_util::future::BoxFuture;
use http::{Request, Response};
use serde_json::Value;
use tower::{Service, ServiceExt};

use super::as_caller::{self, encode_segment, read, read_json};
use super::precondition::Verb;
use super::secret_refs::{SecretRef, Unknown, configmap_refs, names_secrets, secret_refs};
use super::write::{Proposed, Stored, Upstream, Write, WriteGate};
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::mask::secrets::{SecretFilter, secret_type};
use crate::request::RequestInfo;
use crate::status::Status;
use crate::tree::Ceiling;

/// A read or delete of one Secret, answered by [`SecretGate::serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Get,
    Delete,
}

/// What a request about secrets or pods needs: a lookup Canopy answers itself, or a write the
/// write driver judges with the gate.
pub enum SecretCheck {
    Lookup(SecretGate, Lookup),
    Write(SecretGate),
}

/// A request about secrets or pods that is checked against the view's secret types.
pub struct SecretGate {
    filter: SecretFilter,
    identity: Identity,
    /// `(physical, virtual)` namespace of the request.
    namespace: (String, String),
    /// The object named in the path, if any.
    name: String,
    /// The request is about a Secret (not a pod-bearing object).
    secret: bool,
    view: String,
}

impl SecretGate {
    /// The check of `info` in a view with `ceiling` (at `view`), if the request needs one.
    pub fn of(
        ceiling: &Ceiling,
        view: &str,
        info: &RequestInfo,
        identity: &Identity,
        namespace: &Option<(String, String)>,
    ) -> Result<Option<SecretCheck>, Status> {
        let Some(namespace) = namespace.clone() else { return Ok(None) };
        let Some(filter) = SecretFilter::of(ceiling) else { return Ok(None) };
        let secrets = info.api_group.is_empty() && info.resource == "secrets" && info.subresource.is_empty();
        let pods = names_secrets(&info.api_group, &info.resource)
            && (info.subresource.is_empty() || (info.resource == "pods" && info.subresource == "ephemeralcontainers"));
        let lookup = match info.verb.as_str() {
            "get" if secrets => Some(Lookup::Get),
            "delete" if secrets => Some(Lookup::Delete),
            "deletecollection" if secrets => {
                return Err(Status::forbidden(format!(
                    "secrets is forbidden: deleting a collection of secrets is not allowed in view {view}, which limits secret types; delete them by name"
                )));
            }
            "create" | "update" | "patch" if secrets || pods => None,
            _ => return Ok(None),
        };
        let gate = SecretGate {
            filter,
            identity: identity.clone(),
            namespace,
            name: info.name.clone(),
            secret: secrets,
            view: view.to_owned(),
        };
        Ok(Some(match lookup {
            Some(lookup) => SecretCheck::Lookup(gate, lookup),
            None => SecretCheck::Write(gate),
        }))
    }

    /// Answers the `lookup` `request` (already rewritten for upstream) through `inner`; the
    /// answer is upstream's, in physical names.
    pub async fn serve<S>(self, lookup: Lookup, inner: S, request: Request<Body>) -> Result<Response<Body>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
        S::Future: Send,
    {
        match lookup {
            Lookup::Get => {
                let response = inner.oneshot(request).await?;
                if !response.status().is_success() {
                    return Ok(response);
                }
                let (parts, body) = response.into_parts();
                let bytes = read(body).await?;
                let mut document: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Status::bad_gateway(format!("the upstream answer is not JSON: {e}")))?;
                if !self.filter.admit_one(&mut document) {
                    return Err(self.not_found());
                }
                Ok(Response::from_parts(parts, body::full(bytes)))
            }
            Lookup::Delete => {
                self.refuse_hidden(inner.clone()).await?;
                inner.oneshot(request).await
            }
        }
    }

    /// 404 when the secret named in the path exists with a type the view does not allow.
    async fn refuse_hidden<S>(&self, inner: S) -> Result<(), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
    {
        let found = inner.oneshot(self.lookup(&self.name)?).await?;
        if found.status().is_success() {
            let secret = read_json(found.into_body()).await?;
            if !self.filter.allows(secret_type(&secret)) {
                return Err(self.not_found());
            }
        }
        Ok(())
    }

    /// Refuses `object` (the dry-run result) if it is a Secret of another type or a pod spec
    /// naming a secret the view may not use.
    async fn judge<S>(&self, inner: S, object: &Value) -> Result<(), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone,
    {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind == "Secret" {
            let secret = secret_type(object);
            if !self.filter.allows(secret) {
                let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&self.name);
                return Err(Status::forbidden(format!(
                    "secrets {name:?} is forbidden: secret type {secret:?} is not allowed in view {}",
                    self.view
                )));
            }
            return Ok(());
        }
        let mut checked: Vec<&str> = Vec::new();
        let refs = secret_refs(object).map_err(|Unknown(field)| {
            let object_name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&self.name);
            Status::forbidden(format!(
                "{kind} {object_name:?} is forbidden: {field} is a volume source Canopy cannot check for the secrets it names, so it is not allowed in view {}",
                self.view
            ))
        })?;
        for SecretRef { name, field } in &refs {
            if checked.contains(&name.as_str()) {
                continue;
            }
            let found = inner.clone().oneshot(self.lookup(name)?).await?;
            let status = found.status();
            let why = if status.is_success() {
                let secret = read_json(found.into_body()).await?;
                let secret = secret_type(&secret);
                if self.filter.allows(secret) {
                    checked.push(name);
                    continue;
                }
                // Said as "does not exist": the type of a hidden secret is not revealed.
                format!("which does not exist in namespace {:?}", self.namespace.1)
            } else if status == http::StatusCode::NOT_FOUND {
                format!("which does not exist in namespace {:?}", self.namespace.1)
            } else if status == http::StatusCode::FORBIDDEN {
                format!("which User {:?} may not read", self.identity.user)
            } else {
                return Err(Status::bad_gateway(format!("looking up secret {name:?} answered {status}")));
            };
            let object_name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&self.name);
            return Err(Status::forbidden(format!(
                "{kind} {object_name:?} is forbidden: {field} names secret {name:?}, {why}; pods may reference only existing secrets of the types allowed in view {}",
                self.view
            )));
        }
        // ConfigMaps: only those the caller may not read are refused; a missing one is the
        // kubelet's to wait for, as before.
        let mut checked: Vec<&str> = Vec::new();
        let configmaps = configmap_refs(object);
        for SecretRef { name, field } in &configmaps {
            if checked.contains(&name.as_str()) {
                continue;
            }
            let found = inner.clone().oneshot(self.get("configmaps", name)?).await?;
            if found.status() == http::StatusCode::FORBIDDEN {
                let object_name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(&self.name);
                return Err(Status::forbidden(format!(
                    "{kind} {object_name:?} is forbidden: {field} names ConfigMap {name:?}, which User {:?} may not read",
                    self.identity.user
                )));
            }
            checked.push(name);
        }
        Ok(())
    }

    /// GET of secret `name` in the request's namespace, as the caller.
    fn lookup(&self, name: &str) -> Result<Request<Body>, Status> {
        self.get("secrets", name)
    }

    /// GET of the core `resource` named `name` in the request's namespace, as the caller.
    fn get(&self, resource: &str, name: &str) -> Result<Request<Body>, Status> {
        let uri =
            format!("/api/v1/namespaces/{}/{resource}/{}", encode_segment(&self.namespace.0), encode_segment(name));
        as_caller::get(&self.identity, &uri)
    }

    fn not_found(&self) -> Status {
        Status::not_found(format!("secrets {:?} not found", self.name))
    }
}

impl WriteGate for SecretGate {
    fn needs_stored(&self, _verb: Verb) -> bool {
        self.secret && !self.name.is_empty()
    }

    /// Updating or patching a hidden secret: it does not exist for the caller (and the
    /// apiserver's "type is immutable" answer would name its type).
    fn prepare(&self, _write: &mut Write, stored: &Stored) -> Result<(), Status> {
        match stored {
            Stored::Found(secret) if self.secret && !self.filter.allows(secret_type(secret)) => Err(self.not_found()),
            _ => Ok(()),
        }
    }

    fn judge<'a>(&'a self, upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(self.judge(upstream, proposed.result))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// What [`SecretGate::of`] decided, in one word.
    #[derive(Debug, PartialEq, Eq)]
    enum Check {
        Get,
        Delete,
        Write,
    }

    fn gate(
        ceiling: &Ceiling,
        group: &str,
        resource: &str,
        subresource: &str,
        verb: &str,
    ) -> Result<Option<Check>, Status> {
        let info = RequestInfo {
            api_group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            verb: verb.into(),
            name: "x".into(),
            ..Default::default()
        };
        let namespace = Some(("acme-web-dev".to_owned(), "dev".to_owned()));
        let identity = Identity::new("bob", Vec::<String>::new());
        Ok(SecretGate::of(ceiling, "acme/web", &info, &identity, &namespace)?.map(|check| match check {
            SecretCheck::Lookup(_, Lookup::Get) => Check::Get,
            SecretCheck::Lookup(_, Lookup::Delete) => Check::Delete,
            SecretCheck::Write(_) => Check::Write,
        }))
    }

    #[test]
    fn only_secret_reads_and_writes_of_secrets_and_pod_specs_are_gated() {
        let open = Ceiling::top_default();
        assert_eq!(gate(&open, "", "secrets", "", "get"), Ok(None), "no secret types named: nothing changes");
        let mut ceiling = Ceiling::top_default();
        ceiling.secret_types = Some(Arc::new(vec!["Opaque".into()]));
        assert_eq!(gate(&ceiling, "", "secrets", "", "get"), Ok(Some(Check::Get)));
        assert_eq!(gate(&ceiling, "", "secrets", "", "delete"), Ok(Some(Check::Delete)));
        assert_eq!(gate(&ceiling, "", "secrets", "", "patch"), Ok(Some(Check::Write)));
        assert_eq!(gate(&ceiling, "", "secrets", "", "list"), Ok(None), "lists are filtered, not gated");
        assert_eq!(
            gate(&ceiling, "", "secrets", "", "deletecollection").unwrap_err().code,
            http::StatusCode::FORBIDDEN
        );
        assert_eq!(gate(&ceiling, "", "pods", "", "create"), Ok(Some(Check::Write)));
        assert_eq!(gate(&ceiling, "", "pods", "ephemeralcontainers", "patch"), Ok(Some(Check::Write)));
        assert_eq!(gate(&ceiling, "", "pods", "status", "update"), Ok(None));
        assert_eq!(gate(&ceiling, "apps", "deployments", "scale", "patch"), Ok(None));
        assert_eq!(gate(&ceiling, "batch", "cronjobs", "", "update"), Ok(Some(Check::Write)));
        assert_eq!(gate(&ceiling, "", "configmaps", "", "create"), Ok(None));
        assert_eq!(gate(&ceiling, "", "serviceaccounts", "", "patch"), Ok(Some(Check::Write)));
        assert_eq!(gate(&ceiling, "", "pods", "", "get"), Ok(None));
    }
}
