//! The tenant-facing listener: TLS handshakes, HTTP/1.1 and HTTP/2 by ALPN (with upgrades), the
//! verified client certificate's identity attached to each request, and graceful shutdown —
//! stop accepting, let requests drain, then close what is still open after the grace period.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::ProxyService;
use crate::auth::{PeerIdentity, identity_from_der};
use crate::body;
use crate::upstream::Tunnels;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `tcp` until `shutdown` resolves, then lets requests and tunnels drain
/// for at most `grace` before closing what is left.
pub async fn serve(
    tcp: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    service: ProxyService,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    tunnels: Tunnels,
) {
    let acceptor = TlsAcceptor::from(tls);
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
                let acceptor = acceptor.clone();
                let service = service.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                    };
                    let identity = tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).and_then(|cert| identity_from_der(cert));
                    let peer_identity = PeerIdentity(identity);
                    let per_request = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let mut request = request.map(body::boxed);
                        request.extensions_mut().insert(peer_identity.clone());
                        service.clone().oneshot(request)
                    });
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), per_request).into_owned();
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
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
