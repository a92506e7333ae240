//! The response timeout on requests to the apiserver: an answer whose headers have not arrived
//! within `upstream.responseTimeoutSeconds` (connecting included) fails with [`TimedOut`], which
//! [`super::Forward`] answers as `504 Timeout`. Only the start of an answer is timed, so watches,
//! followed logs and large lists then stream for as long as they last. Requests marked
//! [`Unbounded`] (proxied workloads, which answer at their own pace) are not timed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::Service;

use super::liveness::Unanswered;
use super::ping_timeout::PingTimedOut;
use crate::body::{Body, BoxError};

/// The apiserver did not start answering in time.
#[derive(Debug, thiserror::Error)]
#[error("the apiserver did not answer within {} s", .0.as_secs())]
pub struct TimedOut(pub Duration);

/// A request extension: the answer may take as long as it takes to start.
#[derive(Debug, Clone, Copy)]
pub struct Unbounded;

/// Fails requests whose answer does not start within `limit`.
#[derive(Clone)]
pub struct ResponseTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S> ResponseTimeout<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit }
    }
}

impl<S> Service<Request<Body>> for ResponseTimeout<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let unbounded = request.extensions().get::<Unbounded>().is_some();
        let answer = self.inner.call(request);
        if unbounded {
            return Box::pin(answer);
        }
        let limit = self.limit;
        Box::pin(async move { tokio::time::timeout(limit, answer).await.map_err(|_| TimedOut(limit))? })
    }
}

/// Whether `error`, or an error it came from, is the apiserver not answering in time: this
/// module's timeout, an HTTP/2 connection whose keep-alive ping went unanswered (as hyper
/// tells a request, or [`PingTimedOut`] a stream's body), or an HTTP/1.1 watch whose
/// apiserver left a liveness probe [`Unanswered`].
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<TimedOut>()
            || error.is::<PingTimedOut>()
            || error.is::<Unanswered>()
            || error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout)
        {
            return true;
        }
        current = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;
    use tower::util::BoxCloneSyncService;

    use super::*;
    use crate::body;

    /// A service that answers after `delay`.
    fn answering_after(delay: Duration) -> BoxCloneSyncService<Request<Body>, Response<Body>, BoxError> {
        BoxCloneSyncService::new(tower::service_fn(move |_: Request<Body>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, BoxError>(Response::new(body::empty()))
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_does_not_start_in_time_is_a_timeout() {
        let limit = Duration::from_secs(5);
        let slow = ResponseTimeout::new(answering_after(Duration::from_secs(6)), limit);
        let error = slow.oneshot(Request::new(body::empty())).await.unwrap_err();
        assert!(is_timeout(&*error), "{error}");
        let quick = ResponseTimeout::new(answering_after(Duration::from_secs(4)), limit);
        assert!(quick.oneshot(Request::new(body::empty())).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn unbounded_requests_are_not_timed() {
        let slow = ResponseTimeout::new(answering_after(Duration::from_secs(600)), Duration::from_secs(5));
        let mut request = Request::new(body::empty());
        request.extensions_mut().insert(Unbounded);
        assert!(slow.oneshot(request).await.is_ok());
    }

    #[test]
    fn other_errors_are_not_timeouts() {
        let error: BoxError = "connection refused".into();
        assert!(!is_timeout(&*error));
    }
}
