//! Records every answered request: verb (from the classified [`RequestInfo`]), code (of the
//! response or of the `Status` error) and time to headers; keeps the open-watch gauge up while a watch body streams.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response};
use http_body::Frame;
use prometheus_client::metrics::gauge::Gauge;
use tower::{Layer, Service};

use super::{Metrics, verb_label};
use crate::body::{self, Body, BoxError};
use crate::request::RequestInfo;
use crate::status::Status;

/// Adds request metrics around a service.
#[derive(Clone)]
pub struct MetricsLayer {
    // Shared: the service is cloned for every request.
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics: Arc::new(metrics) }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { metrics: self.metrics.clone(), inner }
    }
}

/// See [`MetricsLayer`].
#[derive(Clone)]
pub struct MetricsService<S> {
    metrics: Arc<Metrics>,
    inner: S,
}

impl<S> Service<Request<Body>> for MetricsService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Send,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let verb = verb_label(request.extensions().get::<RequestInfo>().map_or("unknown", |i| i.verb.as_str()));
        let metrics = Arc::clone(&self.metrics);
        let started = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let code = match &result {
                Ok(response) => response.status().as_u16(),
                Err(status) => status.code.as_u16(),
            };
            metrics.request(verb.clone(), code, started.elapsed().as_secs_f64());
            let response = result?;
            if verb == "watch" && response.status().is_success() {
                let gauge = metrics.open_watches.clone();
                return Ok(response.map(|b| body::boxed(GaugedBody::new(b, gauge))));
            }
            Ok(response)
        })
    }
}

/// A body that holds a gauge up from creation until it is dropped.
struct GaugedBody {
    inner: Body,
    gauge: Gauge,
}

impl GaugedBody {
    fn new(inner: Body, gauge: Gauge) -> Self {
        gauge.inc();
        Self { inner, gauge }
    }
}

impl Drop for GaugedBody {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl http_body::Body for GaugedBody {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
