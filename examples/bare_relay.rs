//! The floor of Canopy's stack, for `bench/`: a bare relay built from the same parts (tokio on one
//! thread, hyper, rustls on both sides, Canopy's upstream client and connection pool) that does
//! nothing else. It drops the caller's credentials and sends each request upstream as one fixed
//! identity, through `Impersonate-*` headers like Canopy, so the apiserver does the same work per
//! request. No authentication, policy, audit, metrics or rewriting: what this relay costs per
//! request, any proxy on this stack costs at least.
//!
//! ```text
//! cargo run --release --example bare_relay -- --listen 127.0.0.1:7443 \
//!     --kubeconfig canopy.kubeconfig --user admin --group system:masters
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use canopy::body::{self, Body, BoxError};
use canopy::config::UpstreamProtocol;
use canopy::upstream::{Upstream, UpstreamService};
use clap::Parser;
use http::{HeaderValue, Request, Uri, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

#[derive(Parser)]
struct Args {
    /// Loopback address to serve on.
    #[arg(long)]
    listen: SocketAddr,
    /// Kubeconfig for the upstream apiserver (Canopy's own credentials).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// User every request is sent as.
    #[arg(long)]
    user: String,
    /// Groups every request is sent with.
    #[arg(long)]
    group: Vec<String>,
    /// HTTP version spoken to the apiserver, as Canopy's `upstream.protocol` (`streams`, its
    /// default: watches over HTTP/2, every other request over pooled HTTP/1.1).
    #[arg(long, value_enum, default_value = "streams")]
    upstream_protocol: Protocol,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Protocol {
    Streams,
    Http2,
    Http1,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let protocol = match args.upstream_protocol {
        Protocol::Streams => UpstreamProtocol::Streams,
        Protocol::Http2 => UpstreamProtocol::Http2,
        Protocol::Http1 => UpstreamProtocol::Http1,
    };
    let upstream = Upstream::from_kube_config(config, protocol, Default::default())?.http;
    let identity = Arc::new(Identity::new(&args.user, &args.group)?);
    let acceptor = TlsAcceptor::from(Arc::new(self_signed()?));
    let listener = TcpListener::bind(args.listen).await?;
    loop {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let (acceptor, upstream, identity) = (acceptor.clone(), upstream.clone(), identity.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = hyper::service::service_fn(move |request| relay(request, upstream.clone(), identity.clone()));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

/// The impersonation headers, built once.
struct Identity {
    user: HeaderValue,
    groups: Vec<HeaderValue>,
}

impl Identity {
    fn new(user: &str, groups: &[String]) -> anyhow::Result<Self> {
        let groups = groups.iter().map(|g| HeaderValue::from_str(g)).collect::<Result<_, _>>()?;
        Ok(Self { user: HeaderValue::from_str(user)?, groups })
    }
}

async fn relay(
    request: Request<Incoming>,
    upstream: UpstreamService,
    identity: Arc<Identity>,
) -> Result<http::Response<Body>, BoxError> {
    let (mut parts, incoming) = request.into_parts();
    // The upstream layer sets the authority; only the path and query travel.
    parts.uri = parts.uri.path_and_query().map_or(Ok(Uri::from_static("/")), |pq| pq.as_str().parse())?;
    parts.headers.remove(header::AUTHORIZATION);
    parts.headers.insert("impersonate-user", identity.user.clone());
    for group in &identity.groups {
        parts.headers.append("impersonate-group", group.clone());
    }
    upstream.oneshot(Request::from_parts(parts, body::boxed(incoming))).await
}

/// A serving certificate for 127.0.0.1; clients of this bench tool do not verify it.
fn self_signed() -> anyhow::Result<rustls::ServerConfig> {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .map_err(anyhow::Error::msg)
        .context("serving key")?;
    let mut tls =
        rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(vec![cert.cert.der().clone()], key)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}
