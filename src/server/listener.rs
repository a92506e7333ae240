//! The tenant-facing listener: TLS handshakes, HTTP/1.1 and HTTP/2 by ALPN (with upgrades), the
//! verified client certificate's identity and the client's address attached to each request,
//! connections held within [`ConnectionLimits`], and graceful shutdown — stop accepting, let
//! requests drain, then close what is still open after the grace period. The accept loop and
//! the per-connection serving are shared with the sidecar's plain listener ([`super::plain`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::TryFutureExt;
use http::{Extensions, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::ProxyService;
use super::limits::{Activity, ConnectionLimits, Slot};
use crate::auth::{ClientAddr, FrontProxy, FrontProxyNames, PeerIdentity, identity_from_der};
use crate::body::{self, Body};
use crate::upstream::Tunnels;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How connections are secured, and whose client certificates speak for front proxies.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    /// A client certificate whose CommonName is here marks its connection [`FrontProxy`].
    pub front_proxies: FrontProxyNames,
}

/// Accepts TLS connections on `tcp` until `shutdown` resolves, then lets requests and tunnels
/// drain for at most `grace` before closing what is left.
pub async fn serve(
    tcp: TcpListener,
    tls: Tls,
    service: ProxyService,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    tunnels: Tunnels,
    limits: ConnectionLimits,
) {
    let (acceptor, front_proxies) = (TlsAcceptor::from(tls.config), tls.front_proxies);
    accept_loop(tcp, shutdown, grace, tunnels, limits, move |stream, connection| {
        let (acceptor, service, front_proxies) = (acceptor.clone(), service.clone(), front_proxies.clone());
        async move {
            let peer = connection.peer;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| identity_from_der(cert));
            let front_proxy = identity.as_ref().is_some_and(|id| front_proxies.trusts(&id.user));
            let peer_identity = PeerIdentity(identity);
            connection
                .serve(tls, service, move |extensions| {
                    extensions.insert(peer_identity.clone());
                    if front_proxy {
                        extensions.insert(FrontProxy);
                    }
                })
                .await;
        }
    })
    .await;
}

/// One accepted connection, ready to be served as HTTP.
pub(super) struct Connection {
    pub peer: SocketAddr,
    builder: auto::Builder<TokioExecutor>,
    /// Cancelled when the listener drains.
    drain: CancellationToken,
    /// Time to the first request, then idle time allowed; see [`ConnectionLimits`].
    idle_timeouts: (Duration, Duration),
    /// Held for as long as the connection is served.
    _slot: Slot,
}

impl Connection {
    /// Serves HTTP on `io` until the client closes, the connection has been idle for the idle
    /// timeout, or the drain ends it; `tag` adds what the listener knows about the connection to
    /// each request's extensions.
    pub async fn serve<I>(
        self,
        io: I,
        service: ProxyService,
        tag: impl Fn(&mut Extensions) + Clone + Send + Sync + 'static,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (peer, activity) = (self.peer, Activity::new());
        let counted = activity.clone();
        let per_request = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(body::boxed);
            request.extensions_mut().insert(ClientAddr(peer));
            tag(request.extensions_mut());
            // In flight until the response body is dropped: a watch is activity however quiet.
            let in_flight = counted.start();
            service
                .clone()
                .oneshot(request)
                .map_ok(|response| response.map(|b| Body::new(body::Holding::new(b, in_flight))))
        });
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(io), per_request).into_owned();
        tokio::pin!(connection);
        let idle = activity.idle_for(self.idle_timeouts.0, self.idle_timeouts.1);
        tokio::pin!(idle);
        let mut closing = false;
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                _ = self.drain.cancelled(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = &mut idle, if !closing => {
                    tracing::debug!(%peer, "idle connection closed");
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        };
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// Accepts on `tcp` within `limits` and spawns `handle` per connection until `shutdown`
/// resolves; then drains connections and tunnels for at most `grace` and closes the rest.
pub(super) async fn accept_loop<F, Fut>(
    tcp: TcpListener,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    tunnels: Tunnels,
    limits: ConnectionLimits,
    mut handle: F,
) where
    F: FnMut(TcpStream, Connection) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (connections, drain) = (TaskTracker::new(), CancellationToken::new());
    let builder = limits.builder();
    tokio::pin!(shutdown);
    loop {
        // At the connection limit, new connections wait in the listen backlog until one closes.
        let slot = tokio::select! {
            slot = limits.slot() => slot,
            _ = &mut shutdown => break,
        };
        tokio::select! {
            accepted = tcp.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    peer,
                    builder: builder.clone(),
                    drain: drain.clone(),
                    idle_timeouts: limits.idle_timeouts(),
                    _slot: slot,
                };
                connections.spawn(handle(stream, connection));
            }
            _ = &mut shutdown => break,
        }
    }
    drop(tcp);
    tracing::info!(connections = connections.len(), "stopped accepting; draining");
    drain.cancel();
    connections.close();
    let drained = async {
        connections.wait().await;
        tunnels.drained().await;
    };
    tokio::select! {
        _ = drained => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    tunnels.close_all();
}
