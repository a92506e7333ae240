//! Merged watches: one upstream watch per namespace, events relayed as they arrive (translated as
//! a plain watch's are, [`Events`], which also reads an event's resourceVersion off its tape, so
//! an event is read once; only bookmarks are parsed whole), bookmarks merged so that a
//! client resuming from one loses nothing. The merged watch ends when any namespace's watch ends
//! (the client then resumes, as after any upstream timeout).

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderValue, Request, Response, header};
use http_body_util::StreamBody;
use serde::Deserialize;
use serde_json::Value;
use tower::Service;

use super::{Answer, FanOut, call, first_forbidden};
use crate::body::{self, Body, BoxError};
use crate::status::Status;
use crate::transform::event::Events;
use crate::transform::{MAX_EVENT, Translation, lines::split_lines};

/// How long a watch over no namespace at all stays open when the client names no timeout.
const EMPTY_WATCH: Duration = Duration::from_secs(300);
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

pub async fn serve<S>(fan: FanOut, inner: S) -> Result<Response<Body>, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
{
    let opened =
        futures_util::future::join_all(fan.namespaces.iter().map(|ns| call(inner.clone(), &fan, ns, &fan.query))).await;
    let mut bodies = Vec::new();
    let mut refusals = Vec::new();
    for answer in opened {
        match answer? {
            Answer::Ok(response) => bodies.push(response.into_body()),
            Answer::Refused(failure) => refusals.push(failure),
            Answer::Failed(failure) => return Ok(fan.relay(failure)),
        }
    }
    if bodies.is_empty() {
        if let Some(refusal) = first_forbidden(refusals) {
            return Ok(fan.relay(refusal));
        }
        let timeout = fan.param("timeoutSeconds").and_then(|t| t.parse().ok()).map(Duration::from_secs);
        return Ok(json_response(idle(timeout.unwrap_or(EMPTY_WATCH))));
    }
    Ok(json_response(merge(bodies, fan.translation)))
}

fn json_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A watch with no events that ends after `timeout`.
fn idle(timeout: Duration) -> Body {
    let end = stream::once(tokio::time::sleep(timeout))
        .filter_map(|()| async { None::<Result<http_body::Frame<Bytes>, BoxError>> });
    body::boxed(StreamBody::new(end))
}

/// The events of every body in one stream.
fn merge(bodies: Vec<Body>, translation: Translation) -> Body {
    let count = bodies.len();
    // Each stream ends with a `None` so the merge sees the first one to end.
    let tagged = bodies.into_iter().enumerate().map(|(k, body)| {
        split_lines(body, MAX_EVENT).map(move |line| (k, Some(line))).chain(stream::once(async move { (k, None) }))
    });
    let lines = stream::select_all(tagged.map(StreamExt::boxed));
    let relay = Relay { bookmarks: Bookmarks::new(count), events: Events::new(&translation), translation };
    let out = stream::unfold((lines, relay, false), |(mut lines, mut relay, done)| async move {
        if done {
            return None;
        }
        loop {
            let (k, line) = match lines.next().await {
                Some((_, None)) | None => return None,
                Some((_, Some(Err(error)))) => return Some((Err(error), (lines, relay, true))),
                Some((k, Some(Ok(line)))) => (k, line),
            };
            match relay.event(k, &line) {
                Ok(Some(bytes)) => return Some((Ok(http_body::Frame::data(bytes)), (lines, relay, false))),
                Ok(None) => continue,
                Err(error) => return Some((Err(error), (lines, relay, true))),
            }
        }
    });
    body::boxed(StreamBody::new(out))
}

/// What the merge keeps between events.
struct Relay {
    bookmarks: Bookmarks,
    translation: Translation,
    events: Events,
}

/// What names the place in its stream of an event that is not a plain event of an object (a
/// bookmark, an error): its type and its object's resourceVersion, read without building it.
#[derive(Deserialize)]
struct EventHead<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    object: Option<ObjectHead<'a>>,
}

#[derive(Deserialize)]
struct ObjectHead<'a> {
    #[serde(default, borrow)]
    metadata: Option<MetadataHead<'a>>,
}

#[derive(Deserialize)]
struct MetadataHead<'a> {
    #[serde(default, rename = "resourceVersion", borrow)]
    resource_version: Option<Cow<'a, str>>,
}

impl Relay {
    /// What to send for one event of stream `k`: the event translated, a merged bookmark, or
    /// nothing.
    fn event(&mut self, k: usize, line: &[u8]) -> Result<Option<Bytes>, BoxError> {
        let (mut out, rv) = match self.events.translate_plain(&self.translation, line) {
            Some(translated) => translated?,
            None => {
                let head: EventHead = serde_json::from_slice(line)?;
                let rv = head.object.and_then(|o| o.metadata).and_then(|m| m.resource_version);
                let rv = rv.and_then(|rv| rv.parse().ok());
                if head.kind == "BOOKMARK" {
                    return bookmark(k, line, rv, &mut self.bookmarks);
                }
                (self.translation.apply_bytes(line)?, rv)
            }
        };
        if let Some(rv) = rv {
            self.bookmarks.progress(k, rv);
        }
        // An event about an object hidden from the view (a secret of another type) is dropped.
        if out.is_empty() {
            return Ok(None);
        }
        out.push(b'\n');
        Ok(Some(Bytes::from(out)))
    }
}

/// The merged bookmark to send for stream `k`'s bookmark `line` at `rv`, if one is due.
fn bookmark(k: usize, line: &[u8], rv: Option<u64>, bookmarks: &mut Bookmarks) -> Result<Option<Bytes>, BoxError> {
    let mut event: Value = serde_json::from_slice(line)?;
    let initial_end = event
        .pointer(&format!("/object/metadata/annotations/{}", INITIAL_EVENTS_END.replace('/', "~1")))
        .and_then(Value::as_str)
        == Some("true");
    let Some(merged) = rv.and_then(|rv| bookmarks.bookmark(k, rv, initial_end)) else { return Ok(None) };
    if let Some(metadata) = event.pointer_mut("/object/metadata").and_then(Value::as_object_mut) {
        metadata.insert("resourceVersion".into(), Value::String(merged.rv.to_string()));
        if !merged.initial_end
            && let Some(annotations) = metadata.get_mut("annotations").and_then(Value::as_object_mut)
        {
            annotations.remove(INITIAL_EVENTS_END);
        }
    }
    Ok(Some(to_line(&event)?))
}

fn to_line(event: &Value) -> Result<Bytes, BoxError> {
    let mut out = serde_json::to_vec(event)?;
    out.push(b'\n');
    Ok(Bytes::from(out))
}

/// A bookmark to send: every stream has reached `rv`.
#[derive(Debug, PartialEq, Eq)]
struct Merged {
    rv: u64,
    initial_end: bool,
}

/// Per-stream progress, for merging bookmarks.
struct Bookmarks {
    /// Highest resourceVersion each stream is known to have reached.
    reached: Vec<Option<u64>>,
    /// Streams that have ended their initial events (`sendInitialEvents`).
    initial_ended: Vec<bool>,
    sent_initial_end: bool,
    last_sent: u64,
}

impl Bookmarks {
    fn new(count: usize) -> Self {
        Self { reached: vec![None; count], initial_ended: vec![false; count], sent_initial_end: false, last_sent: 0 }
    }

    fn progress(&mut self, k: usize, rv: u64) {
        self.reached[k] = Some(self.reached[k].map_or(rv, |r| r.max(rv)));
    }

    /// Records stream `k`'s bookmark; returns the merged bookmark to send, if one is due.
    fn bookmark(&mut self, k: usize, rv: u64, initial_end: bool) -> Option<Merged> {
        self.progress(k, rv);
        self.initial_ended[k] |= initial_end;
        let lowest = self.reached.iter().copied().collect::<Option<Vec<u64>>>()?.into_iter().min()?;
        if !self.sent_initial_end && self.initial_ended.iter().all(|&e| e) {
            self.sent_initial_end = true;
            self.last_sent = lowest;
            return Some(Merged { rv: lowest, initial_end: true });
        }
        // Until initial events have ended everywhere, a plain bookmark could be taken for the end.
        let initial_pending = self.initial_ended.iter().any(|&e| e) && !self.sent_initial_end;
        (!initial_pending && lowest > self.last_sent).then(|| {
            self.last_sent = lowest;
            Merged { rv: lowest, initial_end: false }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fuzz::example_tree;

    fn relay(streams: usize) -> Relay {
        let tree = example_tree().expect("the example tree");
        let view = tree.node("acme/web").expect("a node of the example");
        let translation =
            Translation { tree, view, namespace: None, watch: true, namespaces: false, secrets: None, mask: None };
        Relay { bookmarks: Bookmarks::new(streams), events: Events::new(&translation), translation }
    }

    fn line(kind: &str, namespace: &str, rv: &str) -> Vec<u8> {
        let object =
            json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace, "resourceVersion": rv}});
        json!({"type": kind, "object": object}).to_string().into_bytes()
    }

    #[test]
    fn events_are_translated_and_bookmarks_merged() {
        let mut relay = relay(2);
        let out = relay.event(0, &line("ADDED", "acme-web-dev", "5")).unwrap().expect("an event");
        let event: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(event["object"]["metadata"]["namespace"], "dev");
        assert!(out.ends_with(b"\n"));
        // Stream 1 has said nothing yet: no bookmark is due; once it has, the lowest is sent.
        assert_eq!(relay.event(0, &line("BOOKMARK", "acme-web-dev", "9")).unwrap(), None);
        let out = relay.event(1, &line("BOOKMARK", "acme-web-prod", "7")).unwrap().expect("a bookmark");
        let bookmark: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(bookmark["object"]["metadata"]["resourceVersion"], "7");
        assert!(relay.event(0, b"{\"type\":").is_err());
    }

    #[test]
    fn a_bookmark_waits_for_every_stream_and_takes_the_lowest() {
        let mut b = Bookmarks::new(2);
        assert_eq!(b.bookmark(0, 10, false), None);
        assert_eq!(b.bookmark(1, 7, false), Some(Merged { rv: 7, initial_end: false }));
        assert_eq!(b.bookmark(1, 7, false), None);
        b.progress(1, 12);
        assert_eq!(b.bookmark(0, 11, false), Some(Merged { rv: 11, initial_end: false }));
    }

    #[test]
    fn initial_events_end_once_every_stream_has_ended_them() {
        let mut b = Bookmarks::new(2);
        assert_eq!(b.bookmark(0, 5, true), None);
        assert_eq!(b.bookmark(1, 4, false), None);
        assert_eq!(b.bookmark(1, 6, true), Some(Merged { rv: 5, initial_end: true }));
        assert_eq!(b.bookmark(0, 9, false), Some(Merged { rv: 6, initial_end: false }));
    }
}
