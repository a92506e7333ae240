//! The precondition a judged write commits with (design invariant 11). The write goes upstream
//! carrying the resourceVersion its dry run was based on, so the apiserver stores exactly the
//! judged state or answers `409 Conflict`. Per verb, the precondition sits where the apiserver
//! itself checks it, and changes nothing else the request means:
//!
//! - update: `metadata.resourceVersion` of the object sent, the apiserver's own optimistic
//!   concurrency; an unconditional update becomes conditional on the judged state.
//! - merge and strategic-merge patches, server-side apply: `metadata.resourceVersion` in the patch
//!   or apply configuration. The patched object carries it, so the update checks it; the field
//!   manager strips it, so field ownership stays what the caller's request makes it.
//! - JSON patch: a final `add` of `/metadata/resourceVersion`, for the same reason. (A `test`
//!   operation would fail with `422`, which clients do not retry; the `409` they do.)
//! - create, and an update or apply that creates: none. Nothing stored shapes its result, and a
//!   concurrent create of the same name makes it fail as `AlreadyExists` or apply to an object
//!   that was judged itself.
//!
//! A caller's own resourceVersion is never overridden in effect: the dry run succeeded, so it
//! equals the base.

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::rewrite::protobuf;
use crate::status::Status;

/// A judged write, by what the apiserver does with its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Patch(Patch),
}

/// A patch type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patch {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl Verb {
    /// The write `method` makes with a body labelled `content_type`; `None`: not a write.
    pub fn of(method: &Method, content_type: &str) -> Option<Verb> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        Some(match *method {
            Method::POST => Verb::Create,
            Method::PUT => Verb::Update,
            Method::PATCH => Verb::Patch(match essence {
                "application/json-patch+json" => Patch::Json,
                "application/merge-patch+json" => Patch::Merge,
                "application/strategic-merge-patch+json" => Patch::Strategic,
                "application/apply-patch+yaml" => Patch::Apply,
                _ => return None,
            }),
            _ => return None,
        })
    }

    /// Whether the body is the object as the caller wants it stored (create, update, apply).
    pub fn sends_whole_object(self) -> bool {
        matches!(self, Verb::Create | Verb::Update | Verb::Patch(Patch::Apply))
    }
}

/// The body that commits a write judged on a dry run based on resourceVersion `base` (empty:
/// the write creates). `sent` is Canopy's JSON reading of `bytes`; `None` for protobuf.
pub fn commit_body(verb: Verb, sent: Option<&Value>, bytes: &Bytes, base: &str) -> Result<Bytes, Status> {
    if base.is_empty() || verb == Verb::Create {
        return Ok(bytes.clone());
    }
    let Some(sent) = sent else {
        // Only creates and updates come as protobuf.
        let body = protobuf::with_resource_version(bytes, base).map_err(|e| Status::bad_request(e.to_string()))?;
        return Ok(Bytes::from(body));
    };
    let mut body = sent.clone();
    match verb {
        Verb::Patch(Patch::Json) => {
            let Some(operations) = body.as_array_mut() else {
                return Err(Status::bad_request("a JSON patch must be a list of operations"));
            };
            operations.push(json!({"op": "add", "path": "/metadata/resourceVersion", "value": base}));
        }
        _ => {
            let Some(object) = body.as_object_mut() else {
                return Err(Status::bad_request("the request body must be an object"));
            };
            let metadata = object.entry("metadata").or_insert_with(|| json!({}));
            let Some(metadata) = metadata.as_object_mut() else {
                return Err(Status::bad_request("metadata must be an object"));
            };
            metadata.insert("resourceVersion".into(), base.into());
        }
    }
    serde_json::to_vec(&body).map(Bytes::from).map_err(|e| Status::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(verb: Verb, sent: Value, base: &str) -> Value {
        let bytes = Bytes::from(serde_json::to_vec(&sent).unwrap());
        serde_json::from_slice(&commit_body(verb, Some(&sent), &bytes, base).unwrap()).unwrap()
    }

    #[test]
    fn verbs_follow_method_and_patch_type() {
        assert_eq!(Verb::of(&Method::POST, ""), Some(Verb::Create));
        assert_eq!(Verb::of(&Method::PUT, "application/json"), Some(Verb::Update));
        assert_eq!(
            Verb::of(&Method::PATCH, "application/apply-patch+yaml; charset=utf-8"),
            Some(Verb::Patch(Patch::Apply))
        );
        assert_eq!(Verb::of(&Method::PATCH, "application/json"), None);
        assert_eq!(Verb::of(&Method::DELETE, ""), None);
    }

    #[test]
    fn an_unconditional_update_is_conditional_on_the_judged_state() {
        let body = commit(Verb::Update, json!({"metadata": {"name": "p"}, "spec": {}}), "41");
        assert_eq!(body, json!({"metadata": {"name": "p", "resourceVersion": "41"}, "spec": {}}));
    }

    #[test]
    fn patches_carry_the_base_where_the_apiserver_checks_it() {
        for patch in [Patch::Merge, Patch::Strategic, Patch::Apply] {
            let body = commit(Verb::Patch(patch), json!({"spec": {"replicas": 2}}), "7");
            assert_eq!(body, json!({"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 2}}), "{patch:?}");
        }
        let body = commit(Verb::Patch(Patch::Json), json!([{"op": "remove", "path": "/spec/x"}]), "7");
        assert_eq!(
            body,
            json!([
                {"op": "remove", "path": "/spec/x"},
                {"op": "add", "path": "/metadata/resourceVersion", "value": "7"}
            ])
        );
    }

    #[test]
    fn creates_and_writes_that_create_go_as_judged() {
        let sent = json!({"metadata": {"name": "p"}});
        assert_eq!(commit(Verb::Create, sent.clone(), "9"), sent);
        assert_eq!(commit(Verb::Patch(Patch::Apply), sent.clone(), ""), sent);
    }

    #[test]
    fn bodies_that_cannot_carry_a_precondition_are_refused() {
        let bytes = Bytes::from_static(b"[]");
        let refused = commit_body(Verb::Patch(Patch::Merge), Some(&json!([])), &bytes, "1").unwrap_err();
        assert_eq!(refused.code, 400);
        let refused = commit_body(Verb::Patch(Patch::Json), Some(&json!({})), &bytes, "1").unwrap_err();
        assert_eq!(refused.code, 400);
    }
}
