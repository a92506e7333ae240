//! Newline-delimited JSON (watch streams) as a stream of lines: each complete line is yielded as
//! soon as it arrives; a line longer than the bound ends the stream with an error instead of
//! growing a buffer without limit. A line that arrives whole within a frame is a slice of that
//! frame; only a line cut across frames is copied, into a buffer let go once the line is
//! complete, so that an idle stream holds no buffer sized by its last event.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyStream, StreamBody};

use crate::body::{self, Body, BoxError};

/// The non-blank lines of `body`, without their newline.
pub fn split_lines(body: Body, max_line: usize) -> impl Stream<Item = Result<Bytes, BoxError>> + Send {
    struct State {
        frames: BodyStream<Body>,
        /// What is left of the last frame past the lines taken from it; never an empty slice
        /// that would keep the frame's memory.
        frame: Bytes,
        /// The start of a line cut across frames.
        partial: BytesMut,
        done: bool,
    }
    impl State {
        /// Ends the stream with `error`, letting go of what it held.
        fn fail(mut self, error: BoxError) -> Option<(Result<Bytes, BoxError>, State)> {
            self.done = true;
            (self.frame, self.partial) = (Bytes::new(), BytesMut::new());
            Some((Err(error), self))
        }
    }
    let state = State { frames: BodyStream::new(body), frame: Bytes::new(), partial: BytesMut::new(), done: false };
    futures_util::stream::unfold(state, move |mut state| async move {
        loop {
            if let Some(at) = memchr::memchr(b'\n', &state.frame) {
                let mut line = state.frame.split_to(at + 1);
                line.truncate(at);
                if state.frame.is_empty() {
                    state.frame = Bytes::new();
                }
                if !state.partial.is_empty() {
                    state.partial.extend_from_slice(&line);
                    line = std::mem::take(&mut state.partial).freeze();
                }
                if line.len() > max_line {
                    return state.fail(too_long(max_line));
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some((Ok(line), state));
            }
            if !state.frame.is_empty() {
                state.partial.extend_from_slice(&std::mem::take(&mut state.frame));
            }
            if state.partial.len() > max_line {
                return state.fail(too_long(max_line));
            }
            if state.done {
                if state.partial.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                return Some((Ok(std::mem::take(&mut state.partial).freeze()), state));
            }
            match state.frames.next().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        state.frame = data;
                    }
                }
                Some(Err(error)) => return state.fail(error),
                None => state.done = true,
            }
        }
    })
}

fn too_long(max_line: usize) -> BoxError {
    BoxError::from(format!("a watch event exceeds {max_line} bytes"))
}

/// `body` with every line replaced by `f(line)` followed by a newline; a line `f` maps to
/// nothing is dropped.
pub fn translate_lines<F>(body: Body, max_line: usize, f: F) -> Body
where
    F: FnMut(&[u8]) -> Result<Vec<u8>, BoxError> + Send + 'static,
{
    let mut f = f;
    let stream = split_lines(body, max_line).filter_map(move |line| {
        let out = line.and_then(|line| f(&line)).map(|mut out| {
            (!out.is_empty()).then(|| {
                out.push(b'\n');
                http_body::Frame::data(Bytes::from(out))
            })
        });
        futures_util::future::ready(out.transpose())
    });
    body::boxed(StreamBody::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn chunks(parts: &[&'static str]) -> Body {
        let frames = parts
            .iter()
            .map(|p| Ok::<_, BoxError>(http_body::Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect::<Vec<_>>();
        body::boxed(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn lines_split_across_chunks_are_joined() {
        let body = translate_lines(chunks(&["{\"a\":", "1}\n{\"b\"", ":2}"]), 1024, |l| Ok(l.to_ascii_uppercase()));
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"{\"A\":1}\n{\"B\":2}\n");
    }

    #[tokio::test]
    async fn lines_cut_at_every_byte_are_found_once_each() {
        let text: &'static str = "{\"a\":1}\n\n  \n{\"b\":[2,3]}\n{\"c\":\"d\"}";
        let bytes: Vec<&'static str> = (0..text.len()).map(|i| &text[i..i + 1]).collect();
        let body = translate_lines(chunks(&bytes), 1024, |l| Ok(l.to_vec()));
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"{\"a\":1}\n{\"b\":[2,3]}\n{\"c\":\"d\"}\n");
    }

    #[tokio::test]
    async fn lines_mapped_to_nothing_are_dropped() {
        let body = translate_lines(chunks(&["a\nb\nc\n"]), 1024, |l| Ok(if l == b"b" { vec![] } else { l.to_vec() }));
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"a\nc\n");
    }

    /// A frame's bytes that tell when the frame is let go.
    struct Owned(&'static [u8], std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl AsRef<[u8]> for Owned {
        fn as_ref(&self) -> &[u8] {
            self.0
        }
    }

    impl Drop for Owned {
        fn drop(&mut self) {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn lines_whole_in_a_frame_are_not_copied_and_an_idle_stream_keeps_no_frame() {
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let texts: [&'static str; 2] = ["{\"a\":1}\n{\"b\":", "2}\n"];
        let frames = texts.map(|text| Owned(text.as_bytes(), dropped.clone()));
        let frames = frames.map(|f| Ok::<_, BoxError>(http_body::Frame::data(Bytes::from_owner(f))));
        // The stream then stays open, idle, as a watch does.
        let frames = futures_util::stream::iter(frames).chain(futures_util::stream::pending());
        let mut lines = std::pin::pin!(split_lines(body::boxed(StreamBody::new(frames)), 1024));
        let first = lines.next().await.unwrap().unwrap();
        assert_eq!((&first[..], first.as_ptr()), (&b"{\"a\":1}"[..], texts[0].as_ptr()), "a slice of its frame");
        drop(first);
        assert_eq!(&lines.next().await.unwrap().unwrap()[..], b"{\"b\":2}");
        assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 2, "both frames let go");
    }

    #[tokio::test]
    async fn an_overlong_line_ends_the_stream() {
        let body = translate_lines(chunks(&["0123456789", "0123456789"]), 8, |l| Ok(l.to_vec()));
        assert!(body.collect().await.is_err());
        let body = translate_lines(chunks(&["0123456789\n"]), 8, |l| Ok(l.to_vec()));
        assert!(body.collect().await.is_err(), "a line longer than the bound, even whole in one frame");
    }
}
