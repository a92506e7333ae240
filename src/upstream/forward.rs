//! The innermost service: sends an authenticated request to the apiserver as its caller and
//! relays the answer, streaming both bodies and tunnelling protocol upgrades.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use tower::{Service, ServiceExt};

use super::http2::Http2Error;
use super::timeout::{Unbounded, is_timeout};
use super::watch_end::end_with_error_event;
use super::{AsCanopy, StreamEnd, Tunnels, UpstreamService, impersonation_headers};
use crate::auth::Identity;
use crate::body::{self, Body, BoxError};
use crate::metrics::Metrics;
use crate::request::{RequestInfo, headers};
use crate::server::body_deadline::BodyTimedOut;
use crate::status::Status;

/// Forwards requests upstream with impersonation headers.
#[derive(Clone)]
pub struct Forward {
    // Shared: the pipeline is cloned for every request, and this service several times in it.
    shared: Arc<Shared>,
}

struct Shared {
    upstream: UpstreamService,
    tunnels: Tunnels,
    metrics: Metrics,
}

impl Forward {
    pub fn new(upstream: UpstreamService, tunnels: Tunnels, metrics: Metrics) -> Self {
        Self { shared: Arc::new(Shared { upstream, tunnels, metrics }) }
    }
}

impl Service<Request<Body>> for Forward {
    type Response = Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Status>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        // The upstream is a connection pool; readiness is awaited per call below.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            let Shared { upstream, tunnels, metrics } = &*shared;
            let info = request.extensions().get::<RequestInfo>();
            let finite = info.is_some_and(answer_is_finite);
            let watch = info.is_some_and(|info| info.verb == "watch");
            let unbounded = info.is_some_and(RequestInfo::is_proxy);
            let client_upgrade = headers::is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
            let end = request.extensions().get::<StreamEnd>().cloned();
            let (parts, body) = request.into_parts();
            let identity = parts
                .extensions
                .get::<Identity>()
                .ok_or_else(|| Status::internal("request reached forwarding without an identity"))?;
            let mut outgoing = Request::new(body);
            *outgoing.method_mut() = parts.method;
            *outgoing.uri_mut() = path_and_query(parts.uri)?;
            *outgoing.headers_mut() = parts.headers;
            if unbounded {
                outgoing.extensions_mut().insert(Unbounded);
            }
            headers::strip_request(outgoing.headers_mut());
            if parts.extensions.get::<AsCanopy>().is_none() {
                impersonation_headers(identity, outgoing.headers_mut())
                    .map_err(|e| Status::bad_request(e.to_string()))?;
            }

            let mut response = upstream.clone().oneshot(outgoing).await.map_err(|error| {
                metrics.upstream_error(error_kind(&error));
                tracing::warn!(error = %error_chain(&*error), "upstream request failed");
                if let Some(timed_out) = body_timed_out(&*error) {
                    timed_out.status()
                } else if is_timeout(&*error) {
                    Status::timeout("the upstream apiserver did not answer in time")
                } else {
                    Status::service_unavailable("the upstream apiserver is unavailable")
                }
            })?;

            let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
            headers::strip_response(response.headers_mut(), switching);
            match (switching, client_upgrade) {
                (true, Some(client)) => {
                    tunnels.spawn(client, hyper::upgrade::on(&mut response), end);
                    Ok(response.map(|_| body::empty()))
                }
                (true, None) => {
                    Err(Status::bad_gateway("the upstream switched protocols on a request that did not ask to"))
                }
                (false, _) if finite => Ok(response.map(|incoming| body::boxed(body::Coalesced::new(incoming)))),
                (false, _) if watch && response.status().is_success() => {
                    let (parts, incoming) = response.into_parts();
                    let body = end_with_error_event(&parts.headers, incoming);
                    Ok(Response::from_parts(parts, body))
                }
                (false, _) => Ok(response.map(body::boxed)),
            }
        })
    }
}

/// The part of `uri` that travels upstream (the upstream client sets scheme and authority).
fn path_and_query(uri: Uri) -> Result<Uri, Status> {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(uri.into_parts().path_and_query.unwrap_or_else(|| PathAndQuery::from_static("/")));
    Uri::from_parts(parts).map_err(|_| Status::bad_request("invalid request URI"))
}

/// Whether the answer ends on its own and the client only acts on it whole, so it may be
/// relayed in large frames: lists and gets, but not watches, followed logs or proxied services.
fn answer_is_finite(info: &RequestInfo) -> bool {
    info.is_resource_request
        && matches!(info.verb.as_str(), "list" | "get")
        && !matches!(info.subresource.as_str(), "log" | "proxy")
}

fn error_kind(error: &BoxError) -> &'static str {
    if is_timeout(&**error) {
        return "timeout";
    }
    if let Some(error) = error.downcast_ref::<Http2Error>() {
        return if error.is_connect() { "connect" } else { "request" };
    }
    match error.downcast_ref::<hyper_util::client::legacy::Error>() {
        Some(e) if e.is_connect() => "connect",
        Some(_) => "request",
        None => "client",
    }
}

/// The client's body arriving too slowly, if that is what failed the request (its body streams
/// upstream as it arrives).
fn body_timed_out<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimedOut> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(timed_out) = error.downcast_ref::<BodyTimedOut>() {
            return Some(timed_out);
        }
        current = error.source();
    }
    None
}

/// The error and its sources on one line, for logs.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_path_and_query_travel() {
        let uri = path_and_query("https://canopy.example:8443/api/v1/pods?watch=1".parse().unwrap()).unwrap();
        assert_eq!(uri.to_string(), "/api/v1/pods?watch=1");
        assert_eq!(uri.authority(), None);
        let uri = path_and_query("/apis/apps/v1".parse().unwrap()).unwrap();
        assert_eq!(uri.to_string(), "/apis/apps/v1");
    }
}
