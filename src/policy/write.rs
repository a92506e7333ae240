//! The write driver: one judge, one commit (design invariant 11). A write that any gate judges
//! (write masks, secret types, references) is
//!
//! 1. read once: the body is Canopy's reading of it (see [`crate::transform::reading`]);
//! 2. looked up once: the stored object, read as the caller, if a gate needs it;
//! 3. prepared: each gate may refuse the body as sent or restore what the view hid;
//! 4. tried once: one dry run as the caller, whose result every gate judges;
//! 5. committed with a precondition on the resourceVersion the dry run was based on
//!    ([`super::precondition`]), so upstream stores exactly the judged state.
//!
//! A refused dry run is never followed by the write: the caller gets the apiserver's answer, or
//! a gate's clearer reason. A commit that meets a concurrent change (`409`) is judged again from
//! step 2, as the apiserver retries a patch itself; a few tries, then the `409` stands.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response, StatusCode, header, request::Parts};
use serde_json::Value;
use tower::ServiceExt;
use tower::util::BoxCloneService;

use super::as_caller::{self, Tried, try_write};
use super::precondition::{Verb, commit_body};
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::status::Status;
use crate::transform::{self, Translation};

/// The upstream service lookups, dry runs and the commit go through.
pub type Upstream = BoxCloneService<Request<Body>, Response<Body>, Status>;

/// How often a write meeting concurrent changes is judged again before its `409` stands.
const ATTEMPTS: usize = 5;

/// A write under judgement.
pub struct Write {
    /// The request's method, URI and headers.
    pub parts: Parts,
    pub verb: Verb,
    /// The body as it goes upstream.
    pub bytes: Bytes,
    /// Canopy's JSON reading of the body; `None` for protobuf and empty bodies.
    pub sent: Option<Value>,
}

/// The stored object a write changes, as the caller reads it.
pub enum Stored {
    /// No gate asked for it, or the write creates.
    NotRead,
    Found(Value),
    Absent,
    /// The caller may not read it (the status upstream answered).
    Unreadable(StatusCode),
}

/// What a gate judges: the write, the stored object, and what the apiserver would store.
pub struct Proposed<'a> {
    pub write: &'a Write,
    pub stored: &'a Stored,
    pub result: &'a Value,
}

/// One check of a write. Gates judge; only the driver talks to upstream on a write's behalf
/// beyond the lookups a judgement needs.
pub trait WriteGate: Send + Sync {
    /// Whether the gate needs the stored object for a write of `verb`.
    fn needs_stored(&self, _verb: Verb) -> bool {
        false
    }

    /// Before the dry run: refuses the write as sent, or edits `write.sent`.
    fn prepare(&self, _write: &mut Write, _stored: &Stored) -> Result<(), Status> {
        Ok(())
    }

    /// Refuses the write the apiserver would make of `proposed`.
    fn judge<'a>(&'a self, upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>>;

    /// When the apiserver refused the dry run with `refused`: a clearer refusal, if the gate has one.
    fn explain<'a>(
        &'a self,
        _upstream: Upstream,
        _write: &'a Write,
        _refused: StatusCode,
    ) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async { Ok(()) })
    }
}

/// Judges a write with its gates and commits it.
pub struct WriteDriver {
    pub gates: Vec<Box<dyn WriteGate>>,
    pub identity: Identity,
}

impl WriteDriver {
    /// Answers `request` (rewritten for upstream, its body Canopy's reading) through `upstream`.
    pub async fn serve(
        self,
        upstream: Upstream,
        request: Request<Body>,
        translation: Translation,
    ) -> Result<Response<Body>, Status> {
        let (parts, body) = request.into_parts();
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let verb = Verb::of(&parts.method, content_type)
            .ok_or_else(|| Status::unsupported_media_type(format!("{content_type:?} is not a patch type")))?;
        let bytes = transform::read_bytes(body).await?;
        let protobuf = content_type.contains("protobuf");
        let sent = match bytes.is_empty() || protobuf {
            true => None,
            false => Some(transform::parse_document(&bytes)?),
        };
        let original = Write { parts, verb, bytes, sent };
        let needs_stored = verb != Verb::Create && self.gates.iter().any(|g| g.needs_stored(verb));
        for _ in 0..ATTEMPTS {
            let stored = match needs_stored {
                true => self.stored(upstream.clone(), original.parts.uri.path()).await?,
                false => Stored::NotRead,
            };
            let mut write = Write {
                parts: original.parts.clone(),
                verb,
                bytes: original.bytes.clone(),
                sent: original.sent.clone(),
            };
            for gate in &self.gates {
                gate.prepare(&mut write, &stored)?;
            }
            if let Some(sent) = &write.sent {
                write.bytes = Bytes::from(serde_json::to_vec(sent).map_err(|e| Status::internal(e.to_string()))?);
            }
            let result = match try_write(upstream.clone(), &self.identity, &write.parts, write.bytes.clone()).await? {
                Tried::Object(result) => result,
                Tried::Refused(answer) => {
                    for gate in &self.gates {
                        gate.explain(upstream.clone(), &write, answer.status()).await?;
                    }
                    return Ok(transform::response(answer, translation));
                }
            };
            let base = resource_version(&result);
            // The stored object changed between the lookup and the dry run: judge again.
            if let Stored::Found(stored) = &stored
                && resource_version(stored) != base
            {
                continue;
            }
            for gate in &self.gates {
                gate.judge(upstream.clone(), Proposed { write: &write, stored: &stored, result: &result }).await?;
            }
            let commit = commit_body(write.verb, write.sent.as_ref(), &write.bytes, base)?;
            let mut parts = write.parts.clone();
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(commit.len()));
            let response = upstream.clone().oneshot(Request::from_parts(parts, body::full(commit))).await?;
            if response.status() == StatusCode::CONFLICT && !base.is_empty() {
                continue;
            }
            return Ok(transform::response(response, translation));
        }
        Err(Status::from_code(
            StatusCode::CONFLICT,
            "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again",
        ))
    }

    /// The stored object at `path`, read as the caller.
    async fn stored(&self, upstream: Upstream, path: &str) -> Result<Stored, Status> {
        let found = upstream.oneshot(as_caller::get(&self.identity, path)?).await?;
        Ok(match found.status() {
            status if status.is_success() => Stored::Found(as_caller::read_json(found.into_body()).await?),
            StatusCode::NOT_FOUND => Stored::Absent,
            status => Stored::Unreadable(status),
        })
    }
}

/// `metadata.resourceVersion` of `object` (empty when it has none: the write creates).
fn resource_version(object: &Value) -> &str {
    object.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("")
}
