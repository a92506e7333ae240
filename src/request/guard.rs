//! The layer that refuses requests trying to choose their own upstream identity (client
//! `Impersonate-*` headers, or a `Connection` header naming one); see [`super::headers`].

use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tower::{Layer, Service};

use super::headers::refuse_identity_headers;
use crate::body::Body;
use crate::status::Status;

/// Adds the identity-header guard in front of a service.
#[derive(Clone, Copy, Default)]
pub struct IdentityGuardLayer;

impl<S> Layer<S> for IdentityGuardLayer {
    type Service = IdentityGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        IdentityGuard { inner }
    }
}

/// See [`IdentityGuardLayer`].
#[derive(Clone)]
pub struct IdentityGuard<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for IdentityGuard<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = Either<Ready<Result<Response<Body>, Status>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        match refuse_identity_headers(request.headers()) {
            Ok(()) => Either::Right(self.inner.call(request)),
            Err(status) => Either::Left(ready(Err(status))),
        }
    }
}
