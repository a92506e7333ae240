//! Bounded request bodies: one body may be at most `maxRequestBodyBytes` (413
//! `RequestEntityTooLarge` as the apiserver answers, at once when the declared length says so,
//! else when the bytes pass it), and all bodies in flight together at most
//! `maxBufferedBodyBytes`. A request takes its share of that budget — its declared length, or the
//! largest body when it declares none — before its body is read, and gives it back with its
//! response; a request that finds no room within [`BUDGET_WAIT`] gets 429 with `Retry-After`,
//! so memory stays bounded however many clients send at once. A body must also arrive within
//! `bodyReadTimeoutSeconds` ([`super::body_deadline`]), so no client holds its share for ever.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Response, header};
use http_body_util::Limited;
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use super::body_deadline::with_deadline;
use crate::body::Body;
use crate::config::LimitsConfig;
use crate::status::Status;

/// How long a request waits for room in the body budget before it is refused.
const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// Bounds request bodies; one budget shared by every serving thread's pipeline.
#[derive(Clone)]
pub struct BodyLimitLayer {
    max_body: u32,
    read_timeout: Duration,
    budget: Arc<Semaphore>,
}

impl BodyLimitLayer {
    pub fn new(config: &LimitsConfig) -> Self {
        // Config validation keeps the budget within what a semaphore counts.
        let budget = usize::try_from(config.max_buffered_body_bytes).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        Self {
            max_body: config.max_request_body_bytes,
            read_timeout: config.body_read_timeout,
            budget: Arc::new(Semaphore::new(budget)),
        }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit { max_body: self.max_body, read_timeout: self.read_timeout, budget: Arc::clone(&self.budget), inner }
    }
}

/// See [`BodyLimitLayer`].
#[derive(Clone)]
pub struct BodyLimit<S> {
    max_body: u32,
    read_timeout: Duration,
    budget: Arc<Semaphore>,
    inner: S,
}

impl<S> Service<Request<Body>> for BodyLimit<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // No body, or a tunnel's stream rather than a body.
        if http_body::Body::is_end_stream(request.body()) || request.method() == Method::CONNECT {
            return Box::pin(self.inner.call(request));
        }
        let max = self.max_body;
        let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > u64::from(max)) {
            return Box::pin(std::future::ready(Err(too_large(max))));
        }
        let share = declared.map_or(max, |length| length as u32);
        // From the request's head: waiting for room counts too.
        let read_timeout = self.read_timeout;
        let request = request.map(|body| with_deadline(Body::new(Limited::new(body, max as usize)), read_timeout));
        let budget = Arc::clone(&self.budget);
        // The clone is the one that was polled ready; see tower's "cloning services" guidance.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let _share = match tokio::time::timeout(BUDGET_WAIT, budget.acquire_many_owned(share)).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    return Err(Status::too_many_requests(
                        "too many request bodies are being read right now; try again",
                        BUDGET_WAIT,
                    ));
                }
            };
            inner.call(request).await
        })
    }
}

/// 413, as the apiserver words it.
pub fn too_large(max: u32) -> Status {
    Status::too_large(format!("Request entity too large: limit is {max}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn limits(max_body: u32, budget: u64) -> LimitsConfig {
        let text =
            format!("server:\n  limits:\n    maxRequestBodyBytes: {max_body}\n    maxBufferedBodyBytes: {budget}\n");
        Config::from_str(std::path::Path::new("c.yaml"), &text).unwrap().server.limits
    }

    /// A service that reads the whole body (as Canopy's judging layers do) and answers its size,
    /// after `hold` (paused time), keeping its share of the budget that long.
    fn reading(
        hold: Duration,
    ) -> impl Service<Request<Body>, Response = Response<Body>, Error = Status, Future: Send> + Clone + Send + 'static
    {
        tower::service_fn(move |request: Request<Body>| async move {
            let bytes = crate::transform::read_bytes(request.into_body()).await?;
            tokio::time::sleep(hold).await;
            Ok(Response::new(crate::body::full(bytes.len().to_string())))
        })
    }

    fn post(bytes: usize, declared: bool) -> Request<Body> {
        let mut builder = Request::post("/api/v1/namespaces/a/configmaps");
        if declared {
            builder = builder.header(header::CONTENT_LENGTH, bytes);
        }
        // A stream, so the body's length is not known from its type.
        let chunks = futures_util::stream::iter(vec![Ok::<_, crate::body::BoxError>(http_body::Frame::data(
            bytes::Bytes::from(vec![b'x'; bytes]),
        ))]);
        builder.body(Body::new(http_body_util::StreamBody::new(chunks))).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_over_the_limit_are_413() {
        let service = BodyLimitLayer::new(&limits(2048, 4096)).layer(reading(Duration::ZERO));
        let ok = service.clone().oneshot(post(2048, true)).await.unwrap();
        assert_eq!(ok.into_body().collect().await.unwrap().to_bytes(), "2048");
        let declared = service.clone().oneshot(post(2049, true)).await.unwrap_err();
        assert_eq!((declared.code.as_u16(), declared.reason), (413, "RequestEntityTooLarge"));
        assert_eq!(declared.message, "Request entity too large: limit is 2048");
        let undeclared = service.oneshot(post(5000, false)).await.unwrap_err();
        assert_eq!(undeclared.code.as_u16(), 413, "{undeclared}");
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_beyond_the_budget_wait_then_get_429() {
        // Room for two bodies of 2 KiB; each request holds its share for 5 s.
        let service = BodyLimitLayer::new(&limits(2048, 4096)).layer(reading(Duration::from_secs(5)));
        let (a, b, c) = tokio::join!(
            service.clone().oneshot(post(2048, true)),
            service.clone().oneshot(post(2048, false)),
            service.clone().oneshot(post(2048, true)),
        );
        assert!(a.is_ok() && b.is_ok());
        let refused = c.unwrap_err();
        assert_eq!((refused.code.as_u16(), refused.reason), (429, "TooManyRequests"));
        assert_eq!(refused.into_response().headers()[header::RETRY_AFTER], "1");
        // Once they are answered, there is room again.
        assert!(service.oneshot(post(2048, true)).await.is_ok());
    }
}
