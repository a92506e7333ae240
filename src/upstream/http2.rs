//! HTTP/2 to the apiserver: a small pool of TLS connections that multiplex every request and
//! watch, each carrying at most as many streams as the server announces
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`, 1000 for kube-apiserver). hyper's own pooled client keeps
//! one HTTP/2 connection per host and queues requests beyond that limit, which would leave the
//! 1001st watch waiting forever; this pool opens another connection instead.
//!
//! A stream is held from the request until its response body is dropped, so an open watch keeps
//! its slot. When the server does not choose `h2` in ALPN the pool says so and the caller sends
//! the request over HTTP/1.1.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::client::conn::http2::{Connection as H2Connection, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::ping_timeout::{self, ConnectionBody, Ended};
use crate::body::{self, Body, Holding};
use crate::config::UpstreamTimeouts;

/// After a server turned HTTP/2 down in ALPN, how long HTTP/1.1 is used before asking again.
const HTTP1_RECHECK: Duration = Duration::from_secs(300);

/// Why a request could not be sent over HTTP/2.
#[derive(Debug, thiserror::Error)]
pub enum Http2Error {
    /// TCP or TLS to the apiserver failed.
    #[error("connecting to the apiserver: {0}")]
    Connect(#[source] std::io::Error),
    /// Connecting took longer than `upstream.connectTimeoutSeconds`.
    #[error("connecting to the apiserver timed out")]
    ConnectTimeout,
    /// The HTTP/2 handshake or the request failed.
    #[error("HTTP/2 to the apiserver: {0}")]
    Http(#[from] hyper::Error),
    /// Another request's attempt to connect failed while this one waited for it.
    #[error("connecting to the apiserver failed just now")]
    JustFailed,
}

impl Http2Error {
    /// Whether the apiserver could not be reached at all (as opposed to a request failing).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::ConnectTimeout | Self::JustFailed)
    }
}

/// What the pool did with a request.
pub enum Sent {
    /// The apiserver answered over HTTP/2.
    Answered(Response<Body>),
    /// The apiserver does not speak HTTP/2; the request, unsent, goes over HTTP/1.1.
    Http1Only(Request<Body>),
}

/// Where the apiserver is and how to reach it over TLS.
pub struct Target {
    /// Host and port to connect to.
    pub host: String,
    pub port: u16,
    /// The name its certificate is checked against.
    pub server_name: ServerName<'static>,
    /// Canopy's TLS settings for the apiserver (CA, client certificate), ALPN included.
    pub tls: Arc<rustls::ClientConfig>,
}

/// The pool of HTTP/2 connections of one serving thread.
pub struct Http2Pool {
    target: Target,
    // Connecting is bounded; connections are pinged when nothing arrived for a while, so a
    // paused or vanished apiserver is noticed even by idle watches, which then end.
    timeouts: UpstreamTimeouts,
    connections: Mutex<Vec<Arc<Connection>>>,
    // One connection is opened at a time: a burst of requests waits for it instead of each
    // opening its own.
    connecting: tokio::sync::Mutex<()>,
    // When connecting last failed: requests that queued behind that attempt fail with it instead
    // of each waiting out a connect timeout of its own against an apiserver that is down.
    failed_at: Mutex<Option<Instant>>,
    http1_since: Mutex<Option<Instant>>,
}

/// One HTTP/2 connection and how many of its streams are in use.
struct Connection {
    send: SendRequest<Body>,
    streams: AtomicUsize,
    limit: Arc<AtomicUsize>,
    /// How the connection ended, once it has: its streams' bodies fail accordingly.
    ended: tokio::sync::watch::Receiver<Option<Ended>>,
}

impl Http2Pool {
    pub fn new(target: Target, timeouts: UpstreamTimeouts) -> Self {
        Self {
            target,
            timeouts,
            connections: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
            failed_at: Mutex::default(),
            http1_since: Mutex::default(),
        }
    }

    /// Whether the server recently refused HTTP/2, so requests should go over HTTP/1.1 directly.
    pub fn http1_only(&self) -> bool {
        let mut since = self.http1_since.lock().unwrap_or_else(PoisonError::into_inner);
        match *since {
            Some(at) if at.elapsed() < HTTP1_RECHECK => true,
            Some(_) => {
                *since = None;
                false
            }
            None => false,
        }
    }

    /// Open connections.
    #[cfg(test)]
    fn connection_count(&self) -> usize {
        self.connections.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Sends `request` on a connection with a free stream, opening one when none has.
    pub async fn send(&self, mut request: Request<Body>) -> Result<Sent, Http2Error> {
        // The authority travels as `:authority`, from the URI. A `Host` header beside it that
        // names another host (the proxy's own, from a client) leaves kube-apiserver's HTTP/2
        // server never answering the stream.
        request.headers_mut().remove(http::header::HOST);
        // A connection that closed between being picked and sending hands the request back; it
        // then goes on another one. Three tries are enough: a fresh connection is only closed by
        // an apiserver that is going away.
        let mut tries = 0;
        loop {
            tries += 1;
            let Some(stream) = self.stream().await? else {
                return Ok(Sent::Http1Only(request));
            };
            match stream.connection.send.clone().try_send_request(request).await {
                Ok(response) => {
                    let ended = stream.connection.ended.clone();
                    let held = |incoming| {
                        body::boxed(Holding::new(
                            body::boxed(ConnectionBody::new(body::boxed(incoming), ended)),
                            stream,
                        ))
                    };
                    return Ok(Sent::Answered(response.map(held)));
                }
                Err(mut failed) => match failed.take_message() {
                    Some(unsent) if tries < 3 => request = unsent,
                    _ => return Err(failed.into_error().into()),
                },
            }
        }
    }

    /// A stream slot on an open connection, or on a new one; `None` if the server will not
    /// speak HTTP/2.
    async fn stream(&self) -> Result<Option<Stream>, Http2Error> {
        if let Some(stream) = self.reserve() {
            return Ok(Some(stream));
        }
        let waiting_since = Instant::now();
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(stream) = self.reserve() {
            return Ok(Some(stream));
        }
        let failed_at = *self.failed_at.lock().unwrap_or_else(PoisonError::into_inner);
        if failed_at.is_some_and(|at| at >= waiting_since) {
            return Err(Http2Error::JustFailed);
        }
        let connected = self.connect().await;
        if connected.is_err() {
            *self.failed_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
        let Some(connection) = connected? else {
            *self.http1_since.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            return Ok(None);
        };
        let connection = Arc::new(connection);
        connection.streams.fetch_add(1, Ordering::AcqRel);
        self.connections.lock().unwrap_or_else(PoisonError::into_inner).push(Arc::clone(&connection));
        Ok(Some(Stream { connection }))
    }

    /// Takes a free stream on the fullest open connection that has one, so that load gathers on
    /// few connections and the others go idle; forgets closed connections.
    fn reserve(&self) -> Option<Stream> {
        let mut connections = self.connections.lock().unwrap_or_else(PoisonError::into_inner);
        connections.retain(|connection| !connection.send.is_closed());
        let loads: Vec<(usize, usize)> =
            connections.iter().map(|c| (c.streams.load(Ordering::Acquire), c.limit.load(Ordering::Acquire))).collect();
        let chosen = pick(&loads)?;
        let connection = Arc::clone(&connections[chosen]);
        // Under the lock, so no one else takes the same last slot.
        connection.streams.fetch_add(1, Ordering::AcqRel);
        Some(Stream { connection })
    }

    /// Opens a TLS connection offering `h2` and `http/1.1`; `None` if the server chose HTTP/1.1.
    async fn connect(&self) -> Result<Option<Connection>, Http2Error> {
        let Target { host, port, server_name, tls } = &self.target;
        let handshake = async {
            let tcp = TcpStream::connect((host.as_str(), *port)).await?;
            tcp.set_nodelay(true)?;
            TlsConnector::from(Arc::clone(tls)).connect(server_name.clone(), tcp).await
        };
        let tls = tokio::time::timeout(self.timeouts.connect, handshake)
            .await
            .map_err(|_| Http2Error::ConnectTimeout)?
            .map_err(Http2Error::Connect)?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            tracing::info!(host = %host, "the apiserver does not offer HTTP/2; using HTTP/1.1");
            return Ok(None);
        }
        let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(self.timeouts.keep_alive_interval)
            .keep_alive_timeout(self.timeouts.keep_alive_timeout)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tls))
            .await?;
        let limit = Arc::new(AtomicUsize::new(connection.current_max_send_streams()));
        let (tell, ended) = ping_timeout::verdict();
        tokio::spawn(Driven { connection, limit: Arc::clone(&limit), tell });
        Ok(Some(Connection { send, streams: AtomicUsize::new(0), limit, ended }))
    }
}

/// The index of the connection to use among `(streams in use, stream limit)` pairs: the fullest
/// one with a free stream.
fn pick(loads: &[(usize, usize)]) -> Option<usize> {
    loads
        .iter()
        .enumerate()
        .filter(|(_, (used, limit))| used < limit)
        .max_by_key(|(_, (used, _))| *used)
        .map(|(index, _)| index)
}

/// A stream slot, given back when dropped (when the response body is).
struct Stream {
    connection: Arc<Connection>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.connection.streams.fetch_sub(1, Ordering::AcqRel);
    }
}

type Io = TokioIo<TlsStream<TcpStream>>;

/// Drives a connection, keeps `limit` at what the server currently announces and tells the
/// connection's streams how it ended.
struct Driven {
    connection: H2Connection<Io, Body, TokioExecutor>,
    limit: Arc<AtomicUsize>,
    tell: tokio::sync::watch::Sender<Option<Ended>>,
}

impl Future for Driven {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let polled = Pin::new(&mut self.connection).poll(cx);
        let limit = self.connection.current_max_send_streams();
        self.limit.store(limit, Ordering::Release);
        match polled {
            Poll::Ready(Err(error)) => {
                tracing::debug!(%error, "an HTTP/2 connection to the apiserver ended");
                self.tell.send_replace(Some(Ended::of(Err(&error))));
                Poll::Ready(())
            }
            Poll::Ready(Ok(_)) => {
                self.tell.send_replace(Some(Ended::Closed));
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    use tokio_rustls::TlsAcceptor;

    use super::*;
    use crate::upstream::watch_end::end_with_error_event;

    #[test]
    fn the_fullest_connection_with_room_is_picked() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[(3, 3)]), None);
        assert_eq!(pick(&[(1, 3), (2, 3), (3, 3)]), Some(1));
        assert_eq!(pick(&[(0, 1000), (999, 1000)]), Some(1));
        assert_eq!(pick(&[(0, 1000), (1000, 1000)]), Some(0));
    }

    /// A TLS server on loopback offering `alpn`, answering every request with a body that never
    /// ends (a watch), over HTTP/2 with at most two streams per connection, or over HTTP/1.1.
    async fn server(alpn: &[u8]) -> Target {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rcgen::KeyPair::generate().expect("key");
        let cert =
            rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params").self_signed(&key).expect("cert");
        let cert = CertificateDer::from(cert.der().to_vec());
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
            .expect("server tls");
        tls.alpn_protocols = vec![alpn.to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = tcp.local_addr().expect("address").port();
        let http2 = alpn == b"h2";
        tokio::spawn(async move {
            while let Ok((tcp, _)) = tcp.accept().await {
                let Ok(tls) = acceptor.accept(tcp).await else { continue };
                // A `Host` header is refused, as kube-apiserver in effect does over HTTP/2.
                let service = hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let forever = StreamBody::new(futures_util::stream::pending::<Result<Frame<Bytes>, Infallible>>());
                    let mut response = Response::new(forever);
                    let json = http::HeaderValue::from_static("application/json;stream=watch");
                    response.headers_mut().insert(http::header::CONTENT_TYPE, json);
                    if request.headers().contains_key(http::header::HOST) {
                        *response.status_mut() = http::StatusCode::BAD_REQUEST;
                    }
                    Ok::<_, Infallible>(response)
                });
                let io = TokioIo::new(tls);
                tokio::spawn(async move {
                    if http2 {
                        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                        let _ = builder.max_concurrent_streams(2).serve_connection(io, service).await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                    }
                });
            }
        });
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let server_name = ServerName::try_from("localhost").expect("name");
        Target { host: "127.0.0.1".into(), port, server_name, tls: Arc::new(tls) }
    }

    /// A loopback TCP relay to `target` that forwards nothing once `stalled` is set, as a paused
    /// apiserver whose kernel still holds its connections; its port is returned.
    async fn stalling_relay(target: u16, stalled: tokio::sync::watch::Receiver<bool>) -> u16 {
        async fn copy(
            mut from: OwnedReadHalf,
            mut to: OwnedWriteHalf,
            mut stalled: tokio::sync::watch::Receiver<bool>,
        ) {
            let mut buffer = vec![0; 16 << 10];
            while let Ok(n) = from.read(&mut buffer).await {
                if n == 0
                    || stalled.wait_for(|stalled| !stalled).await.is_err()
                    || to.write_all(&buffer[..n]).await.is_err()
                {
                    return;
                }
            }
        }
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = tcp.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((client, _)) = tcp.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else { continue };
                let ((client_read, client_write), (server_read, server_write)) =
                    (client.into_split(), server.into_split());
                tokio::spawn(copy(client_read, server_write, stalled.clone()));
                tokio::spawn(copy(server_read, client_write, stalled.clone()));
            }
        });
        port
    }

    /// A watch request as a client sent it to the proxy, with the proxy's `Host` header.
    fn watch(port: u16) -> Request<Body> {
        let uri = format!("https://localhost:{port}/api/v1/pods?watch=1");
        Request::get(uri).header(http::header::HOST, "canopy.example:8443").body(body::empty()).expect("request")
    }

    /// Streams held open fill a connection up to the limit the server announced, then the pool
    /// opens another; a stream given back is taken again before any new connection.
    #[tokio::test]
    async fn streams_beyond_the_servers_limit_open_another_connection() {
        let target = server(b"h2").await;
        let port = target.port;
        let pool = Http2Pool::new(target, UpstreamTimeouts::default());
        let mut watches = Vec::new();
        for _ in 0..5 {
            match pool.send(watch(port)).await.expect("send") {
                Sent::Answered(response) if response.status().is_success() => watches.push(response),
                Sent::Answered(response) => panic!("answered {}", response.status()),
                Sent::Http1Only(_) => panic!("the server speaks HTTP/2"),
            }
        }
        assert_eq!(pool.connection_count(), 3);
        watches.truncate(3);
        for _ in 0..2 {
            match pool.send(watch(port)).await.expect("send") {
                Sent::Answered(response) if response.status().is_success() => watches.push(response),
                Sent::Answered(response) => panic!("answered {}", response.status()),
                Sent::Http1Only(_) => panic!("the server speaks HTTP/2"),
            }
        }
        assert_eq!(pool.connection_count(), 3);
    }

    /// Regression: a ping that timed out dropped the connection and its watches failed with the
    /// broken pipe of a closed one, so they ended with a 503 where the reference promises 504.
    #[tokio::test]
    async fn a_watch_whose_ping_times_out_ends_with_a_504_error_event() {
        let mut target = server(b"h2").await;
        let (stall, stalled) = tokio::sync::watch::channel(false);
        target.port = stalling_relay(target.port, stalled).await;
        let port = target.port;
        let millis = Duration::from_millis;
        let timeouts = UpstreamTimeouts {
            keep_alive_interval: millis(200),
            keep_alive_timeout: millis(200),
            ..Default::default()
        };
        let pool = Http2Pool::new(target, timeouts);
        let Sent::Answered(response) = pool.send(watch(port)).await.expect("send") else { panic!("HTTP/2") };
        let (parts, incoming) = response.into_parts();
        stall.send_replace(true);
        let ended = end_with_error_event(&parts.headers, incoming).collect().await.expect("ends cleanly").to_bytes();
        let event: serde_json::Value = serde_json::from_slice(&ended).expect("an event");
        assert_eq!((event["type"].as_str(), event["object"]["code"].as_u64()), (Some("ERROR"), Some(504)), "{event}");
    }

    /// With the apiserver down, requests queued behind a failed connect fail with it, as
    /// connection errors, instead of each trying again.
    #[tokio::test]
    async fn requests_behind_a_failed_connect_fail_with_it() {
        let mut target = server(b"h2").await;
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        target.port = closed.local_addr().expect("address").port();
        drop(closed);
        let port = target.port;
        let pool = Http2Pool::new(target, UpstreamTimeouts::default());
        let (first, second) = tokio::join!(pool.send(watch(port)), pool.send(watch(port)));
        for result in [first, second] {
            assert!(result.is_err_and(|error| error.is_connect()));
        }
    }

    /// A server that chooses HTTP/1.1 in ALPN gets the request back for HTTP/1.1, and the pool
    /// sends the next ones there directly.
    #[tokio::test]
    async fn a_server_without_http2_gets_http1() {
        let target = server(b"http/1.1").await;
        let port = target.port;
        let pool = Http2Pool::new(target, UpstreamTimeouts::default());
        assert!(!pool.http1_only());
        assert!(matches!(pool.send(watch(port)).await.expect("send"), Sent::Http1Only(_)));
        assert!(pool.http1_only());
        assert_eq!(pool.connection_count(), 0);
    }
}
