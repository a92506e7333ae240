//! The one body type that flows through Canopy's tower stack, and helpers to build it.
//!
//! Request and response bodies are boxed streams so that every layer can be written against one
//! type while bodies still stream chunk by chunk; only [`Coalesced`], for finite answers, joins
//! small chunks into 64 KB frames so they leave in few large writes. `Body` is a newtype rather
//! than an alias of `UnsyncBoxBody<Bytes, BoxError>` so that no trait object appears in a type
//! parameter: such types trip rustc's higher-ranked `Send` checks in async blocks.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

/// Errors carried by bodies and by the upstream client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body of bytes.
pub struct Body(UnsyncBoxBody<Bytes, BoxError>);

impl Body {
    /// Boxes any body whose error converts into [`BoxError`].
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self(body.map_err(Into::into).boxed_unsync())
    }
}

impl Default for Body {
    fn default() -> Self {
        empty()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Body")
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// A body holding `bytes` in full.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Body::new(Full::new(bytes.into()))
}

/// A body with no bytes.
pub fn empty() -> Body {
    Body::new(Empty::<Bytes>::new())
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Body::new(body)
}

/// A body that keeps `G` alive until it is dropped (a request counted in flight, a gauge held up).
pub struct Holding<G> {
    inner: Body,
    _guard: G,
}

impl<G> Holding<G> {
    pub fn new(inner: Body, guard: G) -> Self {
        Self { inner, _guard: guard }
    }
}

impl<G: Unpin> http_body::Body for Holding<G> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Most bytes [`Coalesced`] joins into one frame: four full TLS records.
const COALESCE_LIMIT: usize = 64 << 10;

/// A finite body handed on in frames of [`COALESCE_LIMIT`] bytes (the last one shorter), so that
/// a large answer leaves in few large writes whatever the size of the frames it arrives in.
///
/// The apiserver sends its answers in chunks of about 2 KB: relayed as they come, a 2 MB list
/// costs a thousand TLS records and `writev` calls. Only for answers whose end the client waits
/// for anyway (lists, gets): it holds back up to 64 KB, so it must never wrap a watch, a followed
/// log or anything else that streams.
pub struct Coalesced<B> {
    inner: B,
    /// Data taken but not yet handed on.
    joined: BytesMut,
    /// A trailers frame, the end or an error met after data, handed on after it.
    held: Option<Option<Result<Frame<Bytes>, BoxError>>>,
}

impl<B> Coalesced<B> {
    pub fn new(inner: B) -> Self {
        Self { inner, joined: BytesMut::new(), held: None }
    }
}

impl<B> http_body::Body for Coalesced<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(held) = this.held.take() {
            return Poll::Ready(held);
        }
        while this.joined.len() < COALESCE_LIMIT {
            let end = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if this.joined.is_empty() && data.len() >= COALESCE_LIMIT => {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => {
                        this.joined.extend_from_slice(&data);
                        continue;
                    }
                    Err(trailers) => Some(Ok(trailers)),
                },
                Some(Err(error)) => Some(Err(error.into())),
                None => None,
            };
            if this.joined.is_empty() {
                return Poll::Ready(end);
            }
            this.held = Some(end);
            break;
        }
        Poll::Ready(Some(Ok(Frame::data(this.joined.split().freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.joined.is_empty()
            && match &self.held {
                Some(held) => held.is_none(),
                None => self.inner.is_end_stream(),
            }
    }

    fn size_hint(&self) -> SizeHint {
        let joined = self.joined.len() as u64;
        match &self.held {
            Some(None) => SizeHint::with_exact(0),
            Some(Some(_)) => SizeHint::default(),
            None => {
                let inner = self.inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + joined);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + joined);
                }
                hint
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body_util::StreamBody;

    fn frames(sizes: &[usize]) -> impl http_body::Body<Data = Bytes, Error = BoxError> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> =
            sizes.iter().map(|&n| Ok(Frame::data(Bytes::from(vec![b'x'; n])))).collect();
        StreamBody::new(stream::iter(frames))
    }

    async fn sizes_out(body: impl http_body::Body<Data = Bytes, Error = BoxError> + Unpin) -> Vec<usize> {
        let mut body = Coalesced::new(body);
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            out.push(frame.unwrap().into_data().unwrap().len());
        }
        out
    }

    #[tokio::test]
    async fn small_frames_leave_in_large_ones() {
        // 33 frames of 2,000 bytes pass the limit of 65,536.
        assert_eq!(sizes_out(frames(&[2_000; 100])).await, [66_000, 66_000, 66_000, 2_000]);
        assert_eq!(sizes_out(frames(&[100_000, 10, 10])).await, [100_000, 20]);
        assert!(sizes_out(frames(&[])).await.is_empty());
    }

    #[tokio::test]
    async fn an_error_follows_the_data_before_it() {
        let items: Vec<Result<Frame<Bytes>, BoxError>> =
            vec![Ok(Frame::data(Bytes::from_static(b"abc"))), Err("upstream reset".into())];
        let mut body = Coalesced::new(StreamBody::new(stream::iter(items)));
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "abc");
        assert!(body.frame().await.unwrap().is_err());
    }
}
