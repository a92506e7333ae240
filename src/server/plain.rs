//! The sidecar's listener (`canopy sidecar`): plain HTTP/1.1 and HTTP/2 with prior knowledge on a
//! loopback address, like `kubectl proxy`, for a frontend in the same pod. Only processes of the
//! pod can connect, so every connection is a trusted front proxy ([`FrontProxy`]): its requests
//! may name the end user in `X-Remote-*` headers, and without them act as the sidecar's token.
//! Two checks keep that trust on loopback: peers that are not loopback addresses are dropped
//! (the config already refuses other listen addresses), and a request must be addressed to a
//! loopback host, so a web page in a browser on the same machine cannot reach the sidecar
//! through DNS rebinding (`kubectl proxy --accept-hosts` defends the same way).

use std::net::IpAddr;
use std::time::Duration;

use http::{Request, header};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use super::ProxyService;
use super::limits::ConnectionLimits;
use super::listener::accept_loop;
use crate::auth::FrontProxy;
use crate::body::Body;
use crate::status::Status;
use crate::upstream::Tunnels;

/// Serves `service` on `tcp` until `shutdown` resolves, then drains as the TLS listener does.
pub async fn serve(
    tcp: TcpListener,
    service: ProxyService,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    tunnels: Tunnels,
    limits: ConnectionLimits,
) {
    let service = loopback_hosts_only(service);
    accept_loop(tcp, shutdown, grace, tunnels, limits, move |stream, connection| {
        let service = service.clone();
        async move {
            if !connection.peer.ip().to_canonical().is_loopback() {
                return tracing::warn!(peer = %connection.peer, "sidecar connection from outside loopback dropped");
            }
            connection
                .serve(stream, service, |extensions| {
                    extensions.insert(FrontProxy);
                })
                .await;
        }
    })
    .await;
}

/// Answers 403 to requests not addressed to a loopback host, before the proxy stack sees them.
fn loopback_hosts_only(service: ProxyService) -> ProxyService {
    BoxCloneSyncService::new(tower::service_fn(move |request: Request<Body>| {
        let service = service.clone();
        async move {
            if addressed_to_loopback(&request) {
                return service.oneshot(request).await;
            }
            tracing::warn!(hosts = ?request_hosts(&request), "sidecar request for a host that is not loopback refused");
            Ok(Status::forbidden("the sidecar only answers requests addressed to localhost, 127.0.0.1 or [::1]")
                .into_response())
        }
    }))
}

/// The hosts the request names: the URI's authority (HTTP/2 `:authority`, or an HTTP/1.1
/// absolute-form target) and the `Host` header; an unparsable `Host` counts as a foreign host.
fn request_hosts<B>(request: &Request<B>) -> Vec<String> {
    let mut hosts: Vec<String> = request.uri().authority().map(|a| a.host().to_owned()).into_iter().collect();
    for value in request.headers().get_all(header::HOST) {
        let parsed = value.to_str().ok().and_then(|v| v.parse::<http::uri::Authority>().ok());
        hosts.push(parsed.map_or_else(String::new, |a| a.host().to_owned()));
    }
    hosts
}

fn addressed_to_loopback<B>(request: &Request<B>) -> bool {
    let hosts = request_hosts(request);
    !hosts.is_empty()
        && hosts.iter().all(|host| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(host: Option<&str>, uri: &str) -> Request<()> {
        let mut builder = Request::get(uri);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn loopback_hosts_are_accepted() {
        for host in ["127.0.0.1:8001", "localhost", "LOCALHOST:80", "[::1]:8001", "127.1.2.3"] {
            assert!(addressed_to_loopback(&with_host(Some(host), "/api")), "{host}");
        }
        assert!(addressed_to_loopback(&with_host(None, "http://[::1]:8001/api")), "HTTP/2 authority");
    }

    #[test]
    fn other_hosts_and_none_are_refused() {
        for host in ["attacker.invalid", "attacker.invalid:8001", "localhost.attacker.invalid", "10.0.0.1:8001"] {
            assert!(!addressed_to_loopback(&with_host(Some(host), "/api")), "{host}");
        }
        assert!(!addressed_to_loopback(&with_host(None, "/api")));
        assert!(!addressed_to_loopback(&with_host(Some("127.0.0.1"), "http://attacker.invalid/api")));
    }
}
