//! The tenant-facing listener: TLS handshakes, HTTP/1.1 and HTTP/2 by ALPN (with upgrades), the
//! verified client certificate's identity attached to each request, and graceful shutdown —
//! stop accepting, let requests drain, then close what is still open after the grace period.
//! The accept loop and the per-connection serving are shared with the sidecar's plain listener
//! ([`super::plain`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Extensions, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::ProxyService;
use crate::auth::{FrontProxy, FrontProxyNames, PeerIdentity, identity_from_der};
use crate::body;
use crate::upstream::Tunnels;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TLS connections on `tcp` until `shutdown` resolves, then lets requests and tunnels
/// drain for at most `grace` before closing what is left. A client certificate whose CommonName
/// is in `front_proxies` marks its connection [`FrontProxy`].
pub async fn serve(
    tcp: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    front_proxies: FrontProxyNames,
    service: ProxyService,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    tunnels: Tunnels,
) {
    let acceptor = TlsAcceptor::from(tls);
    accept_loop(tcp, shutdown, grace, tunnels, move |stream, connection| {
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
    watcher: Watcher,
}

impl Connection {
    /// Serves HTTP on `io` until the client closes or the drain ends it; `tag` adds what the
    /// listener knows about the connection to each request's extensions.
    pub async fn serve<I>(
        self,
        io: I,
        service: ProxyService,
        tag: impl Fn(&mut Extensions) + Clone + Send + Sync + 'static,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let per_request = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut request = request.map(body::boxed);
            tag(request.extensions_mut());
            service.clone().oneshot(request)
        });
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(io), per_request).into_owned();
        if let Err(error) = self.watcher.watch(connection).await {
            tracing::debug!(peer = %self.peer, %error, "connection ended with an error");
        }
    }
}

/// Accepts on `tcp` and spawns `handle` per connection until `shutdown` resolves; then drains
/// connections and tunnels for at most `grace` and closes the rest.
pub(super) async fn accept_loop<F, Fut>(
    tcp: TcpListener,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    tunnels: Tunnels,
    mut handle: F,
) where
    F: FnMut(TcpStream, Connection) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Many watches share one HTTP/2 connection (kubectl, client-go informers).
    builder.http2().max_concurrent_streams(1000);
    tokio::pin!(shutdown);
    loop {
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
                let connection = Connection { peer, builder: builder.clone(), watcher: graceful.watcher() };
                tokio::spawn(handle(stream, connection));
            }
            _ = &mut shutdown => break,
        }
    }
    drop(tcp);
    tracing::info!(connections = graceful.count(), "stopped accepting; draining");
    let drained = async {
        graceful.shutdown().await;
        tunnels.drained().await;
    };
    tokio::select! {
        _ = drained => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    tunnels.close_all();
}
