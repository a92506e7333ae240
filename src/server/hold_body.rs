//! The request body outlives the answer. A layer that refuses a request before reading its body
//! drops the body; over HTTP/2 that resets the stream with `CANCEL` while the answer is still on
//! its way, and clients report a framing error instead of the Status (curl: "Stream error in
//! the HTTP/2 framing layer"). RFC 9113 §8.1 lets a server answer early and then reset with
//! `NO_ERROR`, which h2 does when the request body is dropped *after* the answer ended. So a
//! body dropped unread is kept, and dropped with the answer's body once that is sent.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use http_body::{Frame, SizeHint};
use tower::{Layer, Service};

use crate::body::{Body, BoxError};

/// Where a request body dropped unread waits for the end of the answer.
type Kept = Arc<Mutex<Option<Body>>>;

/// Keeps each request body until the answer's body is done.
#[derive(Clone, Copy, Default)]
pub struct HoldRequestBodyLayer;

impl<S> Layer<S> for HoldRequestBodyLayer {
    type Service = HoldRequestBody<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HoldRequestBody { inner }
    }
}

/// See [`HoldRequestBodyLayer`].
#[derive(Clone)]
pub struct HoldRequestBody<S> {
    inner: S,
}

impl<S, E> Service<Request<Body>> for HoldRequestBody<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = E>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = E;
    type Future = BoxFuture<'static, Result<Response<Body>, E>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if http_body::Body::is_end_stream(request.body()) {
            return self.inner.call(request).boxed();
        }
        let kept: Kept = Arc::default();
        let request = request.map(|body| Body::new(Watched { body: Some(body), kept: Arc::clone(&kept) }));
        self.inner
            .call(request)
            .map(move |answer| answer.map(|response| response.map(|body| Body::new(Holding { body, _kept: kept }))))
            .boxed()
    }
}

/// A request body that, dropped before its end, leaves itself in `kept`.
struct Watched {
    body: Option<Body>,
    kept: Kept,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.body.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map(http_body::Body::size_hint).unwrap_or_default()
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(body) = self.body.take().filter(|body| !http_body::Body::is_end_stream(body))
            && let Ok(mut kept) = self.kept.lock()
        {
            *kept = Some(body);
        }
    }
}

/// An answer's body that holds the kept request body until it is dropped itself.
struct Holding {
    body: Body,
    _kept: Kept,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;
    use futures_util::stream;
    use http_body_util::{BodyExt, StreamBody};
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_body_dropped_unread_lives_as_long_as_the_answer() {
        let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
        // A request body whose drop is observed: it holds the sender.
        let frames = stream::unfold(Some(sender), |sender| async move {
            std::future::pending::<()>().await;
            Some((Ok::<_, BoxError>(Frame::data(Bytes::new())), sender))
        });
        let request = Request::new(Body::new(StreamBody::new(frames)));
        let refuse = tower::service_fn(|request: Request<Body>| async move {
            drop(request);
            Ok::<_, std::convert::Infallible>(Response::new(body::full("refused")))
        });
        let response = HoldRequestBodyLayer.layer(refuse).oneshot(request).await.unwrap();
        let mut receiver = receiver;
        assert!(receiver.try_recv().is_err(), "the request body must still be alive");
        let text = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(text, "refused");
        assert!(matches!(receiver.try_recv(), Err(tokio::sync::oneshot::error::TryRecvError::Closed)));
    }
}
