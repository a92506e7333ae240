//! A request body answered unread is still read to its end. A layer that refuses a request
//! before reading its body drops the body; over HTTP/2 that resets the stream while the client is
//! still sending, and clients report a framing error instead of the Status (curl: "Stream error
//! in the HTTP/2 framing layer"); over HTTP/1.1 the connection cannot be reused. So a body
//! dropped before its end is drained in the background, bounded in bytes and time as the bodies
//! Canopy reads are, and both sides of the exchange end cleanly.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tower::{Layer, Service};

use crate::body::{Body, BoxError};

/// Most bytes drained from one body: the largest body Canopy reads.
const DRAIN_BYTES: usize = 8 << 20;
/// Longest a drain waits for the client.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Drains each request body that is dropped before its end.
#[derive(Clone, Copy, Default)]
pub struct DrainRequestBodyLayer;

impl<S> Layer<S> for DrainRequestBodyLayer {
    type Service = DrainRequestBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DrainRequestBody { inner }
    }
}

/// See [`DrainRequestBodyLayer`].
#[derive(Clone)]
pub struct DrainRequestBody<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for DrainRequestBody<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if http_body::Body::is_end_stream(request.body()) {
            return self.inner.call(request);
        }
        self.inner.call(request.map(|body| Body::new(Drained(Some(body)))))
    }
}

/// A request body that, dropped before its end, is drained by a background task.
struct Drained(Option<Body>);

impl http_body::Body for Drained {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.0.as_ref().map(http_body::Body::size_hint).unwrap_or_default()
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        let Some(body) = self.0.take().filter(|body| !http_body::Body::is_end_stream(body)) else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body));
        }
    }
}

/// Reads `body` to its end, at most [`DRAIN_BYTES`] within [`DRAIN_TIME`].
async fn drain(mut body: Body) {
    let read = async {
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, Bytes::len);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;
    use futures_util::{StreamExt, stream};
    use http::Response;
    use http_body_util::StreamBody;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_body_refused_unread_is_read_to_its_end() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<()>();
        // Three frames, each reported as it is read.
        let frames = stream::iter(0..3).map(move |_| {
            let _ = sender.send(());
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"xxxx")))
        });
        let request = Request::new(Body::new(StreamBody::new(frames)));
        let refuse = tower::service_fn(|request: Request<Body>| async move {
            drop(request);
            Ok::<_, std::convert::Infallible>(Response::new(body::full("refused")))
        });
        DrainRequestBodyLayer.layer(refuse).oneshot(request).await.unwrap();
        for _ in 0..3 {
            receiver.recv().await.expect("every frame is read");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_stops_at_its_time_limit() {
        let pending = stream::pending::<Result<Frame<Bytes>, BoxError>>();
        let drained = tokio::spawn(drain(Body::new(StreamBody::new(pending))));
        tokio::time::advance(DRAIN_TIME + Duration::from_secs(1)).await;
        drained.await.unwrap();
    }
}
