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

use super::AsCanopy;
use super::as_caller::{self, Tried, try_write};
use super::precondition::{Verb, commit_body};
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::status::Status;
use crate::transform;

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
    /// Answers `request` (rewritten for upstream, its body Canopy's reading) through `upstream`;
    /// the answer is upstream's, in physical names.
    pub async fn serve(self, upstream: Upstream, request: Request<Body>) -> Result<Response<Body>, Status> {
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
                true => self.stored(upstream.clone(), &original.parts).await?,
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
                    return Ok(answer);
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
            return Ok(response);
        }
        Err(Status::from_code(
            StatusCode::CONFLICT,
            "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again",
        ))
    }

    /// The stored object the write `parts` changes, read as the write is sent (as the caller,
    /// or as Canopy where Canopy writes for the caller).
    async fn stored(&self, upstream: Upstream, parts: &Parts) -> Result<Stored, Status> {
        let mut lookup = as_caller::get(&self.identity, parts.uri.path())?;
        if let Some(as_canopy) = parts.extensions.get::<AsCanopy>() {
            lookup.extensions_mut().insert(*as_canopy);
        }
        let found = upstream.oneshot(lookup).await?;
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use super::*;

    /// Refuses a would-be object labelled `bad`.
    struct NoBadLabel;

    impl WriteGate for NoBadLabel {
        fn needs_stored(&self, _verb: Verb) -> bool {
            true
        }

        fn judge<'a>(&'a self, _upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
            let bad = proposed.result.pointer("/metadata/labels/bad").is_some();
            Box::pin(async move { if bad { Err(Status::forbidden("bad")) } else { Ok(()) } })
        }
    }

    /// Each upstream call (`GET`, `DRY PATCH`, `PATCH`) with its body; commits answer `409`
    /// while `conflicts` remain.
    #[derive(Default)]
    struct Record {
        calls: Vec<(String, Value)>,
        conflicts: usize,
    }

    /// An apiserver holding one ConfigMap at resourceVersion 7 that takes the patch's labels.
    fn upstream(record: Arc<Mutex<Record>>) -> Upstream {
        BoxCloneService::new(tower::service_fn(move |request: Request<Body>| {
            let record = Arc::clone(&record);
            async move {
                let dry = request.uri().query().is_some_and(|q| q.contains("dryRun"));
                let method = format!("{}{}", if dry { "DRY " } else { "" }, request.method());
                let sent: Value =
                    serde_json::from_slice(&transform::read_bytes(request.into_body()).await?).unwrap_or(Value::Null);
                let mut object = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "7"}});
                if let Some(labels) = sent.pointer("/metadata/labels") {
                    object["metadata"]["labels"] = labels.clone();
                }
                let mut record = record.lock().unwrap();
                record.calls.push((method.clone(), sent));
                if method == "PATCH" && record.conflicts > 0 {
                    record.conflicts -= 1;
                    return Ok(Status::from_code(StatusCode::CONFLICT, "modified").into_response());
                }
                Ok(Response::new(body::full(serde_json::to_vec(&object).unwrap())))
            }
        }))
    }

    async fn patch(record: &Arc<Mutex<Record>>, labels: Value) -> Result<Response<Body>, Status> {
        let request = Request::patch("/api/v1/namespaces/acme-web-dev/configmaps/c")
            .header(header::CONTENT_TYPE, "application/merge-patch+json")
            .body(body::full(serde_json::to_vec(&json!({"metadata": {"labels": labels}})).unwrap()))
            .unwrap();
        let driver = WriteDriver { gates: vec![Box::new(NoBadLabel)], identity: Identity::new("bob", ["g"]) };
        driver.serve(upstream(Arc::clone(record)), request).await
    }

    fn methods(record: &Arc<Mutex<Record>>) -> Vec<String> {
        record.lock().unwrap().calls.iter().map(|(method, _)| method.clone()).collect()
    }

    #[tokio::test]
    async fn a_judged_write_costs_one_lookup_one_dry_run_and_its_commit() {
        let record = Arc::new(Mutex::new(Record::default()));
        let answer = patch(&record, json!({"ok": "1"})).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(methods(&record), ["GET", "DRY PATCH", "PATCH"]);
    }

    #[tokio::test]
    async fn the_commit_carries_the_resource_version_it_was_judged_at() {
        let record = Arc::new(Mutex::new(Record::default()));
        patch(&record, json!({"ok": "1"})).await.unwrap();
        let (_, commit) = record.lock().unwrap().calls.last().cloned().unwrap();
        assert_eq!(commit, json!({"metadata": {"labels": {"ok": "1"}, "resourceVersion": "7"}}));
    }

    #[tokio::test]
    async fn a_refused_dry_run_result_is_never_sent() {
        let record = Arc::new(Mutex::new(Record::default()));
        assert_eq!(patch(&record, json!({"bad": "1"})).await.unwrap_err().code, StatusCode::FORBIDDEN);
        assert_eq!(methods(&record), ["GET", "DRY PATCH"]);
    }

    #[tokio::test]
    async fn a_commit_meeting_a_concurrent_change_is_judged_again() {
        let record = Arc::new(Mutex::new(Record { conflicts: 1, ..Record::default() }));
        assert_eq!(patch(&record, json!({"ok": "1"})).await.unwrap().status(), StatusCode::OK);
        assert_eq!(methods(&record), ["GET", "DRY PATCH", "PATCH", "GET", "DRY PATCH", "PATCH"]);
        let record = Arc::new(Mutex::new(Record { conflicts: ATTEMPTS, ..Record::default() }));
        assert_eq!(patch(&record, json!({"ok": "1"})).await.unwrap_err().code, StatusCode::CONFLICT);
        assert_eq!(methods(&record).len(), 3 * ATTEMPTS);
    }
}
