//! Write masks on requests (design invariant 4): a create, update or patch of a masked resource
//! is judged by the write driver ([`super::write`]) with the pure judgements of
//! [`crate::mask::write`]:
//!
//! - create: the body may not set a guarded field (the apiserver's defaults, such as the
//!   tolerations every pod gets, are not the tenant's doing, so the body is judged, not the
//!   stored result);
//! - update and every patch type: a full update lacking read-masked fields gets their stored
//!   values back (the tenant edited a view); a JSON patch may not name a read-masked field; the
//!   object the apiserver would store is compared with the stored one on every guarded field;
//! - `pods/binding` is refused: it sets `spec.nodeName` without a body Canopy could judge.
//!
//! A create sent in protobuf (kubectl's typed commands, client-go) is judged by a second dry run
//! (see [`MaskGate::judge_encoded_create`]); updates of masked objects must be JSON or YAML (415
//! otherwise), since their bodies must be read to keep hidden values.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::{HeaderValue, header};
use serde_json::Value;

use super::as_caller::{Tried, try_write};
use super::precondition::{Patch, Verb};
use super::write::{Proposed, Stored, Upstream, Write, WriteGate};
use crate::auth::Identity;
use crate::mask::Mask;
use crate::request::RequestInfo;
use crate::status::Status;

/// A write to a masked resource.
pub struct MaskGate {
    mask: Arc<Mask>,
    identity: Identity,
    /// `pods "web"`, for messages.
    object: String,
}

impl MaskGate {
    /// The gate for `info` under `mask`, if the request writes the masked object.
    pub fn of(mask: &Arc<Mask>, info: &RequestInfo, identity: &Identity) -> Result<Option<Self>, Status> {
        let mut object = if info.api_group.is_empty() {
            info.resource.clone()
        } else {
            format!("{}.{}", info.resource, info.api_group)
        };
        if !info.name.is_empty() {
            object = format!("{object} {:?}", info.name);
        }
        if info.subresource == "binding" && info.verb == "create" {
            return Err(Status::forbidden(format!(
                "{object} is forbidden: binding sets spec.nodeName, which masks guard in view {}",
                mask.view
            )));
        }
        let writes = matches!(info.verb.as_str(), "create" | "update" | "patch");
        if !writes || !crate::mask::covers_subresource(&info.subresource) {
            return Ok(None);
        }
        Ok(Some(MaskGate { mask: Arc::clone(mask), identity: identity.clone(), object }))
    }

    fn forbidden(&self, why: String) -> Status {
        Status::forbidden(format!("{} is forbidden: {why}", self.object))
    }

    /// A create in protobuf, which Canopy cannot read: the object it would create (`result`) is
    /// compared with the object created without its guarded fields (a second dry run, in JSON),
    /// so values the apiserver's defaults put there are not taken for the tenant's.
    async fn judge_encoded_create(&self, upstream: Upstream, write: &Write, result: &Value) -> Result<(), Status> {
        let bare =
            serde_json::to_vec(&self.mask.without_guarded(result)).map_err(|e| Status::internal(e.to_string()))?;
        let mut json_parts = write.parts.clone();
        json_parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let defaults = match try_write(upstream, &self.identity, &json_parts, bytes::Bytes::from(bare)).await? {
            Tried::Object(defaults) => defaults,
            Tried::Refused(answer) => {
                return Err(self.forbidden(format!(
                    "Canopy could not tell whether the create sets fields masked in view {} ({}); send it as JSON",
                    self.mask.view,
                    answer.status()
                )));
            }
        };
        match self.mask.set_beyond_defaults(&defaults, result) {
            Some(why) => Err(self.forbidden(why)),
            None => Ok(()),
        }
    }
}

impl WriteGate for MaskGate {
    fn needs_stored(&self, verb: Verb) -> bool {
        verb != Verb::Create
    }

    fn prepare(&self, write: &mut Write, stored: &Stored) -> Result<(), Status> {
        let Some(sent) = write.sent.as_mut() else {
            if write.verb != Verb::Create {
                return Err(Status::unsupported_media_type(format!(
                    "{} has masked fields in view {}: send updates and patches as JSON or YAML",
                    self.object, self.mask.view
                )));
            }
            return Ok(());
        };
        let why = match (write.verb, stored) {
            // An update or server-side apply that creates the object is judged as a create.
            (Verb::Create, _) | (Verb::Update | Verb::Patch(Patch::Apply), Stored::Absent) => {
                self.mask.create_violation(sent)
            }
            (Verb::Update, Stored::Found(stored)) => {
                self.mask.restore(stored, sent);
                None
            }
            (Verb::Patch(Patch::Json), Stored::Found(stored)) => self.mask.json_patch_violation(stored, sent),
            _ => None,
        };
        why.map_or(Ok(()), |why| Err(self.forbidden(why)))
    }

    fn judge<'a>(&'a self, upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async move {
            match proposed.stored {
                Stored::Found(stored) => match self.mask.change_violation(stored, proposed.result) {
                    Some(why) => Err(self.forbidden(why)),
                    None => Ok(()),
                },
                Stored::Unreadable(status) => Err(self.forbidden(format!(
                    "reading it to check masked fields answered {status}; writes to masked objects need read access"
                ))),
                Stored::Absent | Stored::NotRead if proposed.write.sent.is_none() => {
                    self.judge_encoded_create(upstream, proposed.write, proposed.result).await
                }
                Stored::Absent | Stored::NotRead => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::MaskPath;

    fn gate(subresource: &str, verb: &str) -> Result<bool, Status> {
        let mask = Arc::new(Mask {
            read: vec![Arc::new(MaskPath::compile("$.spec.nodeName").unwrap())],
            write: vec![],
            view: "acme/web".into(),
        });
        let info = RequestInfo {
            resource: "pods".into(),
            subresource: subresource.into(),
            verb: verb.into(),
            name: "p".into(),
            ..Default::default()
        };
        Ok(MaskGate::of(&mask, &info, &Identity::new("bob", Vec::<String>::new()))?.is_some())
    }

    #[test]
    fn writes_of_the_object_and_its_status_are_gated() {
        assert_eq!(gate("", "create"), Ok(true));
        assert_eq!(gate("", "update"), Ok(true));
        assert_eq!(gate("status", "patch"), Ok(true));
        assert_eq!(gate("ephemeralcontainers", "patch"), Ok(true));
        assert_eq!(gate("", "get"), Ok(false));
        assert_eq!(gate("", "delete"), Ok(false));
        assert_eq!(gate("exec", "create"), Ok(false), "exec is a POST but writes nothing");
        assert_eq!(gate("binding", "create").unwrap_err().code, http::StatusCode::FORBIDDEN);
    }
}
