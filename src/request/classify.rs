//! The layer that classifies each request once ([`RequestInfo`]) and stores the result in its
//! extensions for every later layer; paths that could be read two ways are refused with 400.

use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tower::{Layer, Service};

use super::RequestInfo;
use crate::body::Body;
use crate::status::Status;

/// Adds classification in front of a service.
#[derive(Clone, Copy, Default)]
pub struct ClassifyLayer;

impl<S> Layer<S> for ClassifyLayer {
    type Service = Classify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Classify { inner }
    }
}

/// See [`ClassifyLayer`].
#[derive(Clone)]
pub struct Classify<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for Classify<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = Either<Ready<Result<Response<Body>, Status>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let uri = request.uri();
        match RequestInfo::parse(request.method(), uri.path(), uri.query()) {
            Ok(info) => {
                request.extensions_mut().insert(info);
                Either::Right(self.inner.call(request))
            }
            Err(error) => Either::Left(ready(Err(Status::bad_request(error.to_string())))),
        }
    }
}
