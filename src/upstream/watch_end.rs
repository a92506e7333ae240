//! A watch whose upstream stream breaks (the apiserver killed, its connection dropped or its
//! keep-alive ping unanswered) ends the way the apiserver ends a watch it cannot continue: with
//! an `ERROR` event holding a `Status` (`503 ServiceUnavailable`, or `504 Timeout` when the
//! apiserver stopped answering), then a clean end. Informers list again on such an event; a
//! stream that was merely cut would leave them resuming from a place the apiserver may no longer
//! hold. Events are handed on whole (only the unfinished tail of a frame is held, at most
//! [`MAX_EVENT`] bytes), so the error event never follows half an event. JSON streams are framed
//! by newlines, protobuf streams by a four-byte length; other encodings are passed on as they are.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body::Frame;

use super::timeout::is_timeout;
use crate::body::{self, Body, BoxError};
use crate::status::Status;
use crate::transform::{MAX_EVENT, protobuf_meta};

/// How a watch stream separates its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// One JSON document per line.
    Json,
    /// Each event after its length as four big-endian bytes.
    Protobuf { header: [u8; 4], have: usize, remaining: usize },
}

impl Encoding {
    /// The framing of a watch answered with `headers`; `None` for one Canopy does not frame.
    fn of(headers: &HeaderMap) -> Option<Self> {
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?.to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            Some(Self::Json)
        } else if content_type.starts_with(protobuf_meta::MEDIA_TYPE) {
            Some(Self::Protobuf { header: [0; 4], have: 0, remaining: 0 })
        } else {
            None
        }
    }

    /// Reads `data`, the next bytes of the stream; returns the offset just past the last event
    /// that ends in it.
    fn feed(&mut self, data: &[u8]) -> Option<usize> {
        match self {
            Self::Json => memchr::memrchr(b'\n', data).map(|at| at + 1),
            Self::Protobuf { header, have, remaining } => {
                let (mut at, mut last) = (0, None);
                while at < data.len() {
                    if *have < 4 {
                        let take = (4 - *have).min(data.len() - at);
                        header[*have..*have + take].copy_from_slice(&data[at..at + take]);
                        (*have, at) = (*have + take, at + take);
                        if *have == 4 {
                            *remaining = u32::from_be_bytes(*header) as usize;
                        }
                    } else {
                        let take = (*remaining).min(data.len() - at);
                        (*remaining, at) = (*remaining - take, at + take);
                    }
                    if *have == 4 && *remaining == 0 {
                        *have = 0;
                        last = Some(at);
                    }
                }
                last
            }
        }
    }

    /// The `ERROR` event that tells the client the watch ended because of `status`.
    fn error_event(&self, status: &Status) -> Bytes {
        let mut json = br#"{"type":"ERROR","object":"#.to_vec();
        json.extend_from_slice(&status.to_json());
        json.extend_from_slice(b"}");
        if *self == Self::Json {
            json.push(b'\n');
            return Bytes::from(json);
        }
        // A Status always encodes; should it not, the stream ends without the event.
        serde_json::from_slice(&json)
            .ok()
            .and_then(|event| protobuf_meta::encode_event(&event).ok())
            .map(Bytes::from)
            .unwrap_or_default()
    }
}

/// The Status a watch ends with after its upstream stream failed with `error`.
fn ending(error: &BoxError) -> Status {
    if is_timeout(&**error) {
        Status::timeout("the upstream apiserver stopped answering; this watch ended, list again")
    } else {
        Status::service_unavailable("the connection to the upstream apiserver was lost; this watch ended, list again")
    }
}

/// A successful watch answer's body, ending with an `ERROR` event if its upstream stream fails;
/// `body` unchanged when the encoding is not one Canopy frames.
pub fn end_with_error_event(headers: &HeaderMap, body: Body) -> Body {
    match Encoding::of(headers) {
        Some(encoding) => body::boxed(WatchEnd { inner: body, encoding, held: BytesMut::new(), done: false }),
        None => body,
    }
}

struct WatchEnd {
    inner: Body,
    encoding: Encoding,
    /// The unfinished event at the end of what arrived so far.
    held: BytesMut,
    done: bool,
}

impl http_body::Body for WatchEnd {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        while !this.done {
            let failed = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => match this.encoding.feed(&data) {
                        Some(end) => {
                            let events = if this.held.is_empty() {
                                data.slice(..end)
                            } else {
                                this.held.extend_from_slice(&data[..end]);
                                this.held.split().freeze()
                            };
                            this.held.extend_from_slice(&data[end..]);
                            return Poll::Ready(Some(Ok(Frame::data(events))));
                        }
                        None if this.held.len() + data.len() > MAX_EVENT => {
                            BoxError::from(format!("a watch event exceeds {MAX_EVENT} bytes"))
                        }
                        None => {
                            this.held.extend_from_slice(&data);
                            continue;
                        }
                    },
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Some(Err(error)) => error,
                None => {
                    // A clean end: whatever is held goes on as upstream sent it.
                    this.done = true;
                    if this.held.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(this.held.split().freeze()))));
                }
            };
            tracing::debug!(error = %failed, "an upstream watch failed; it ends with an ERROR event");
            this.done = true;
            this.held.clear();
            return Poll::Ready(Some(Ok(Frame::data(this.encoding.error_event(&ending(&failed))))));
        }
        Poll::Ready(None)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use http::HeaderValue;
    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::upstream::timeout::TimedOut;

    fn headers(content_type: &'static str) -> HeaderMap {
        HeaderMap::from_iter([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))])
    }

    /// A body of `chunks`, then `end` (an error, or a clean end when `None`).
    fn upstream(chunks: Vec<Vec<u8>>, end: Option<BoxError>) -> Body {
        let frames = chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c)))).chain(end.map(Err));
        body::boxed(StreamBody::new(stream::iter(frames.collect::<Vec<Result<_, BoxError>>>())))
    }

    async fn collected(body: Body) -> Vec<u8> {
        body.collect().await.expect("no error leaves").to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_broken_json_watch_ends_with_an_error_event_after_its_last_whole_event() {
        let text = b"{\"type\":\"ADDED\",\"object\":{}}\n{\"type\":\"MODIFIED\",\"obj".to_vec();
        // Cut at every byte: the whole event always arrives, the half one never does.
        for cut in 0..text.len() {
            let chunks = vec![text[..cut].to_vec(), text[cut..].to_vec()];
            let body = end_with_error_event(&headers("application/json"), upstream(chunks, Some("reset".into())));
            let out = String::from_utf8(collected(body).await).unwrap();
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 2, "{out}");
            assert_eq!(lines[0], "{\"type\":\"ADDED\",\"object\":{}}");
            let event: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
            assert_eq!(event["type"], "ERROR");
            assert_eq!(
                (event["object"]["kind"].as_str(), event["object"]["code"].as_u64()),
                (Some("Status"), Some(503))
            );
        }
    }

    #[tokio::test]
    async fn a_watch_whose_apiserver_stopped_answering_ends_with_a_timeout() {
        let error: BoxError = Box::new(TimedOut(std::time::Duration::from_secs(10)));
        let body = end_with_error_event(&headers("application/json;stream=watch"), upstream(vec![], Some(error)));
        let event: serde_json::Value = serde_json::from_slice(&collected(body).await).unwrap();
        assert_eq!(
            (event["object"]["reason"].as_str(), event["object"]["code"].as_u64()),
            (Some("Timeout"), Some(504))
        );
    }

    #[tokio::test]
    async fn a_broken_protobuf_watch_ends_with_a_framed_error_event() {
        let event = |n: u8| [&4u32.to_be_bytes()[..], &[n; 4]].concat();
        let stream = [event(1), event(2), event(3)[..6].to_vec()].concat();
        for cut in 0..stream.len() {
            let chunks = vec![stream[..cut].to_vec(), stream[cut..].to_vec()];
            let body =
                end_with_error_event(&headers(protobuf_meta::WATCH_MEDIA_TYPE), upstream(chunks, Some("x".into())));
            let out = collected(body).await;
            assert_eq!(out[..16], [event(1), event(2)].concat());
            let length = u32::from_be_bytes(out[16..20].try_into().unwrap()) as usize;
            assert_eq!(out.len(), 20 + length, "one framed event follows");
            assert_eq!(out[20..27], *b"\x0a\x05ERROR");
        }
    }

    #[tokio::test]
    async fn a_watch_that_ends_cleanly_is_passed_on_unchanged() {
        let chunks = vec![b"{\"a\":1}\n{\"b\"".to_vec(), b":2}\n".to_vec()];
        let body = end_with_error_event(&headers("application/json"), upstream(chunks, None));
        assert_eq!(collected(body).await, b"{\"a\":1}\n{\"b\":2}\n");
        let body = end_with_error_event(&headers("application/cbor-seq"), upstream(vec![b"x".to_vec()], None));
        assert_eq!(collected(body).await, b"x");
    }
}
