//! Write masks on requests (design invariant 4): a create, update or patch of a masked resource
//! is judged before it is sent, with the pure judgements of [`crate::mask::write`].
//!
//! - create: the body may not set a guarded field (the apiserver's defaults, such as the
//!   tolerations every pod gets, are not the tenant's doing, so the body is judged, not the
//!   stored result);
//! - update and every patch type: the stored object is read as the caller; a full update lacking
//!   read-masked fields gets their stored values back (the tenant edited a view); a JSON patch
//!   may not name a read-masked field; then the write is sent as a dry run and the object the
//!   apiserver would store is compared with the stored one on every guarded field;
//! - `pods/binding` is refused: it sets `spec.nodeName` without a body Canopy could judge.
//!
//! Only then does the real write go upstream; a refused write changes nothing. A create sent in
//! protobuf (kubectl's typed commands, client-go) is judged by two dry runs instead (see
//! [`MaskGate::check_encoded_create`]); updates and patches of masked objects must be JSON or
//! YAML (415 otherwise), since their bodies must be read to keep hidden values.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use tower::{Service, ServiceExt};

use super::as_caller::{self, Tried, try_write};
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::mask::Mask;
use crate::request::RequestInfo;
use crate::status::Status;
use crate::transform;

/// What is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Create,
    Update,
    Patch,
}

/// A write to a masked resource, judged before it is sent.
pub struct MaskGate {
    mask: Arc<Mask>,
    write: Write,
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
        if !crate::mask::covers_subresource(&info.subresource) {
            return Ok(None);
        }
        let write = match info.verb.as_str() {
            "create" => Write::Create,
            "update" => Write::Update,
            "patch" => Write::Patch,
            _ => return Ok(None),
        };
        Ok(Some(MaskGate { mask: Arc::clone(mask), write, identity: identity.clone(), object }))
    }

    /// Judges `request` (already rewritten for upstream) and returns it to be sent, its body
    /// restored where the view hid stored values.
    pub async fn check<S>(self, inner: S, request: Request<Body>) -> Result<Request<Body>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
        S::Future: Send,
    {
        let (mut parts, body) = request.into_parts();
        let content_type =
            parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = transform::read_bytes(body).await?;
        if content_type.contains("protobuf") {
            if self.write != Write::Create {
                return Err(Status::unsupported_media_type(format!(
                    "{} has masked fields in view {}: send updates and patches as JSON or YAML",
                    self.object, self.mask.view
                )));
            }
            self.check_encoded_create(inner, &parts, bytes.clone()).await?;
            return Ok(Request::from_parts(parts, body::full(bytes)));
        }
        let mut document = transform::parse_document(&bytes)?;
        let forbidden = |why: String| Status::forbidden(format!("{} is forbidden: {why}", self.object));
        if self.write == Write::Create {
            if let Some(why) = self.mask.create_violation(&document) {
                return Err(forbidden(why));
            }
            return Ok(Request::from_parts(parts, body::full(bytes)));
        }
        let found = inner.clone().oneshot(as_caller::get(&self.identity, parts.uri.path())?).await?;
        match found.status() {
            status if status.is_success() => {}
            // An update or server-side apply that creates the object: judged as a create.
            StatusCode::NOT_FOUND => {
                let applies = content_type.contains("apply-patch");
                if (self.write == Write::Update || applies)
                    && let Some(why) = self.mask.create_violation(&document)
                {
                    return Err(forbidden(why));
                }
                return Ok(Request::from_parts(parts, body::full(bytes)));
            }
            status => {
                return Err(forbidden(format!(
                    "reading it to check masked fields answered {status}; writes to masked objects need read access"
                )));
            }
        }
        let stored = as_caller::read_json(found.into_body()).await?;
        let bytes = match self.write {
            Write::Update => {
                self.mask.restore(&stored, &mut document);
                let restored = serde_json::to_vec(&document).map_err(|e| Status::internal(e.to_string()))?;
                parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(restored.len()));
                parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                bytes::Bytes::from(restored)
            }
            _ => {
                if content_type.contains("json-patch")
                    && let Some(why) = self.mask.json_patch_violation(&stored, &document)
                {
                    return Err(forbidden(why));
                }
                bytes
            }
        };
        // A refused dry run is refused for real too, and the caller then sees why.
        if let Tried::Object(result) = try_write(inner.clone(), &self.identity, &parts, bytes.clone()).await?
            && let Some(why) = self.mask.change_violation(&stored, &result)
        {
            return Err(forbidden(why));
        }
        Ok(Request::from_parts(parts, body::full(bytes)))
    }

    /// A create in protobuf, which Canopy cannot read: the object it would create (a dry run) is
    /// compared with the object created without its guarded fields (a second dry run, in JSON),
    /// so values the apiserver's defaults put there are not taken for the tenant's.
    async fn check_encoded_create<S>(
        &self,
        inner: S,
        parts: &http::request::Parts,
        bytes: bytes::Bytes,
    ) -> Result<(), Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
        S::Future: Send,
    {
        let Tried::Object(result) = try_write(inner.clone(), &self.identity, parts, bytes).await? else {
            // The real create is refused the same way, and the caller then sees why.
            return Ok(());
        };
        let bare =
            serde_json::to_vec(&self.mask.without_guarded(&result)).map_err(|e| Status::internal(e.to_string()))?;
        let mut json_parts = parts.clone();
        json_parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let defaults = match try_write(inner, &self.identity, &json_parts, bytes::Bytes::from(bare)).await? {
            Tried::Object(defaults) => defaults,
            Tried::Refused(answer) => {
                return Err(Status::forbidden(format!(
                    "{} is forbidden: Canopy could not tell whether the create sets fields masked in view {} ({}); send it as JSON",
                    self.object,
                    self.mask.view,
                    answer.status()
                )));
            }
        };
        match self.mask.set_beyond_defaults(&defaults, &result) {
            Some(why) => Err(Status::forbidden(format!("{} is forbidden: {why}", self.object))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::MaskPath;

    fn gate(subresource: &str, verb: &str) -> Result<Option<Write>, Status> {
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
        Ok(MaskGate::of(&mask, &info, &Identity::new("bob", Vec::<String>::new()))?.map(|g| g.write))
    }

    #[test]
    fn writes_of_the_object_and_its_status_are_gated() {
        assert_eq!(gate("", "create"), Ok(Some(Write::Create)));
        assert_eq!(gate("", "update"), Ok(Some(Write::Update)));
        assert_eq!(gate("status", "patch"), Ok(Some(Write::Patch)));
        assert_eq!(gate("ephemeralcontainers", "patch"), Ok(Some(Write::Patch)));
        assert_eq!(gate("", "get"), Ok(None));
        assert_eq!(gate("", "delete"), Ok(None));
        assert_eq!(gate("exec", "create"), Ok(None), "exec is a POST but writes nothing");
        assert_eq!(gate("binding", "create").unwrap_err().code, StatusCode::FORBIDDEN);
    }
}
