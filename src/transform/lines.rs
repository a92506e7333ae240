//! Newline-delimited JSON (watch streams) as a stream of lines: each complete line is yielded as
//! soon as it arrives; a line longer than the bound ends the stream with an error instead of
//! growing a buffer without limit.

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyStream, StreamBody};

use crate::body::{self, Body, BoxError};

/// The non-blank lines of `body`, without their newline.
pub fn split_lines(body: Body, max_line: usize) -> impl Stream<Item = Result<Bytes, BoxError>> + Send {
    struct State {
        frames: BodyStream<Body>,
        buffer: BytesMut,
        /// How much of `buffer` holds no newline: a line arriving in pieces is searched once.
        searched: usize,
        done: bool,
    }
    let state = State { frames: BodyStream::new(body), buffer: BytesMut::new(), searched: 0, done: false };
    futures_util::stream::unfold(state, move |mut state| async move {
        loop {
            let found = memchr::memchr(b'\n', &state.buffer[state.searched..]).map(|at| state.searched + at);
            state.searched = found.unwrap_or(state.buffer.len());
            if let Some(end) = found {
                state.searched = 0;
                let mut line = state.buffer.split_to(end + 1);
                line.truncate(end);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some((Ok(line.freeze()), state));
            }
            if state.done {
                if state.buffer.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                state.searched = 0;
                return Some((Ok(state.buffer.split().freeze()), state));
            }
            if state.buffer.len() > max_line {
                state.done = true;
                state.buffer.clear();
                state.searched = 0;
                return Some((Err(BoxError::from(format!("a watch event exceeds {max_line} bytes"))), state));
            }
            match state.frames.next().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        state.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(error)) => {
                    state.done = true;
                    state.buffer.clear();
                    state.searched = 0;
                    return Some((Err(error), state));
                }
                None => state.done = true,
            }
        }
    })
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

    #[tokio::test]
    async fn an_overlong_line_ends_the_stream() {
        let body = translate_lines(chunks(&["0123456789", "0123456789"]), 8, |l| Ok(l.to_vec()));
        assert!(body.collect().await.is_err());
    }
}
