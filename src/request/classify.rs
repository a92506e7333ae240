//! The layer that classifies each request once — the view its URL names ([`super::ViewPath`]) and
//! what it asks for ([`RequestInfo`]) — and stores both in its extensions for every later layer.
//! Paths and queries that could be read two ways are refused with 400; the query goes on in
//! Canopy's canonical encoding ([`Query`]), so upstream executes what Canopy classified.

use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tower::{Layer, Service};

use super::RequestInfo;
use super::query::Query;
use super::view::split_view;
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
        let uri = request.uri().clone();
        let (view, path) = split_view(uri.path());
        let parsed = Query::parse(uri.query().unwrap_or(""));
        let info = match RequestInfo::classify(request.method(), path, parsed.as_ref().unwrap_or(&Query::default())) {
            Ok(info) => info,
            Err(error) => return Either::Left(ready(Err(Status::bad_request(error.to_string())))),
        };
        // Later layers and upstream see the path inside the view, and the query as Canopy read
        // it; a proxied target's query is the target's own and travels as sent.
        let query = match (uri.query(), parsed) {
            (Some(raw), _) if info.is_proxy() => Some(raw.to_owned()),
            (_, Err(error)) => return Either::Left(ready(Err(error.into()))),
            (_, Ok(query)) if query.is_empty() => None,
            (_, Ok(query)) => Some(query.encode()),
        };
        if view.0.is_some() || query.as_deref() != uri.query() {
            let inner_uri = match query {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            };
            match inner_uri.parse() {
                Ok(inner) => *request.uri_mut() = inner,
                Err(_) => return Either::Left(ready(Err(Status::bad_request("invalid request URI")))),
            }
        }
        crate::audit::AuditSlot::on(&request, |r| r.request(&info));
        request.extensions_mut().insert(info);
        request.extensions_mut().insert(view);
        Either::Right(self.inner.call(request))
    }
}
