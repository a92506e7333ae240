//! The shape every tenancy phase shares: a [`Phase`] answers a request through the service
//! below it, and [`PhaseLayer`] makes it a tower layer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::Body;
use crate::status::Status;

/// The service below a phase: the later phases and, last, upstream.
pub trait Inner:
    Service<Request<Body>, Response = Response<Body>, Error = Status, Future: Send> + Clone + Send + 'static
{
}

impl<S> Inner for S where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status, Future: Send> + Clone + Send + 'static
{
}

/// One phase of the tenancy pipeline.
pub trait Phase: Clone + Send + Sync + 'static {
    /// Answers `request` through `inner`, which is ready for one call; the phase may clone it
    /// for the requests it makes on the caller's behalf.
    fn serve<S: Inner>(
        &self,
        request: Request<Body>,
        inner: S,
    ) -> impl Future<Output = Result<Response<Body>, Status>> + Send;
}

/// A [`Phase`] as a tower layer.
#[derive(Clone, Default)]
pub struct PhaseLayer<P>(pub P);

impl<P: Phase, S> Layer<S> for PhaseLayer<P> {
    type Service = PhaseService<P, S>;

    fn layer(&self, inner: S) -> Self::Service {
        PhaseService { phase: self.0.clone(), inner }
    }
}

/// See [`PhaseLayer`].
#[derive(Clone)]
pub struct PhaseService<P, S> {
    phase: P,
    inner: S,
}

impl<P: Phase, S: Inner> Service<Request<Body>> for PhaseService<P, S> {
    type Response = Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The service polled ready goes with this call; a clone stays for the next one.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let phase = self.phase.clone();
        Box::pin(async move { phase.serve(request, inner).await })
    }
}
