//! The HTTP client under the upstream service: HTTP/2 through [`Http2Pool`] where the config
//! asks for it (every request, or only watches: `streams`, the default) and the apiserver offers
//! it, HTTP/1.1 through hyper's pooled client otherwise. Protocol upgrades (exec, attach,
//! port-forward) always take HTTP/1.1, the only version they exist in.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use rustls::pki_types::ServerName;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use super::UpstreamError;
use super::http2::{Http2Pool, Sent, Target};
use crate::body::{self, Body, BoxError};
use crate::config::{UpstreamProtocol, UpstreamTimeouts};
use crate::request::RequestInfo;
use crate::request::headers;

type Http1 = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// Sends requests to the apiserver over the configured protocol.
#[derive(Clone)]
pub struct Client {
    http1: Http1,
    http2: Option<Arc<Http2Pool>>,
    /// HTTP/2 only for watches.
    watches_only: bool,
}

impl Client {
    /// A client with connections of its own for `config`'s apiserver.
    pub fn new(
        config: &kube::Config,
        protocol: UpstreamProtocol,
        timeouts: UpstreamTimeouts,
    ) -> Result<Self, UpstreamError> {
        let http2 = match protocol {
            UpstreamProtocol::Streams | UpstreamProtocol::Http2 => {
                http2_target(config)?.map(|target| Arc::new(Http2Pool::new(target, timeouts)))
            }
            UpstreamProtocol::Http1 => None,
        };
        let http1 = http1_client(config, timeouts.connect)?;
        Ok(Self { http1, http2, watches_only: protocol == UpstreamProtocol::Streams })
    }
}

impl Service<Request<Body>> for Client {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Both are pools that take requests at any time.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let http1 = self.http1.clone();
        let multiplexed = !self.watches_only || is_watch(request.method(), request.uri());
        let http2 = self
            .http2
            .clone()
            .filter(|pool| multiplexed && !headers::is_upgrade(request.headers()) && !pool.http1_only());
        Box::pin(async move {
            let request = match http2 {
                Some(pool) => match pool.send(request).await? {
                    Sent::Answered(response) => return Ok(response),
                    Sent::Http1Only(request) => request,
                },
                None => request,
            };
            http1.oneshot(request).await
        })
    }
}

/// Whether `method uri` asks for a watch, as the apiserver reads it: `?watch=true`, or the
/// deprecated path form `/api/v1/watch/…`, `/apis/G/V/watch/…`.
pub(super) fn is_watch(method: &http::Method, uri: &http::Uri) -> bool {
    method == http::Method::GET
        && RequestInfo::parse(method, uri.path(), uri.query()).is_ok_and(|info| info.verb == "watch")
}

/// hyper's pooled HTTP/1.1 client over kube's TLS connector (ALPN `http/1.1` only).
fn http1_client(config: &kube::Config, connect_timeout: Duration) -> Result<Http1, UpstreamError> {
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    connector.set_nodelay(true);
    // Connecting is bounded here (TCP) and with the TLS handshake by the response timeout;
    // reading is not, because watches and exec streams live long.
    connector.set_connect_timeout(Some(connect_timeout));
    let https = config.rustls_https_connector_with_connector(connector)?;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build::<_, Body>(https);
    let client = client.map_response(|response| response.map(body::boxed)).map_err(Into::<BoxError>::into);
    Ok(BoxCloneSyncService::new(client))
}

/// Where HTTP/2 goes and with which TLS settings; `None` for a plain-HTTP apiserver, which
/// offers no ALPN to negotiate HTTP/2 with.
fn http2_target(config: &kube::Config) -> Result<Option<Target>, UpstreamError> {
    let url = &config.cluster_url;
    if url.scheme_str() != Some("https") {
        return Ok(None);
    }
    let host = url.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let name = config.tls_server_name.clone().unwrap_or_else(|| host.clone());
    let server_name = ServerName::try_from(name).map_err(|_| UpstreamError::ServerName)?;
    let mut tls = config.rustls_client_config()?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Target { host, port: url.port_u16().unwrap_or(443), server_name, tls: Arc::new(tls) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_are_told_by_the_query_or_the_old_watch_path_as_the_apiserver_reads_them() {
        for (uri, watch) in [
            ("/api/v1/namespaces/a/pods?watch=true", true),
            ("/api/v1/pods?labelSelector=x&watch=1", true),
            ("/api/v1/watch/namespaces/a/pods", true),
            ("/api/v1/watch/pods?labelSelector=x", true),
            ("/apis/apps/v1/watch/namespaces/a/deployments/web", true),
            ("/api/v1/pods?watch=false", false),
            ("/api/v1/pods", false),
            ("/api/v1/namespaces/a/pods/watch", false),
        ] {
            assert_eq!(is_watch(&http::Method::GET, &uri.parse().unwrap()), watch, "{uri}");
        }
        assert!(!is_watch(&http::Method::DELETE, &"/api/v1/pods?watch=true".parse().unwrap()));
    }
}
