//! The real apiserver: a pooled client built from kube's `Config` (kubeconfig or in-cluster), so
//! Canopy authenticates upstream exactly as kube-rs would — client certificates, static or
//! refreshed bearer tokens, custom CAs — multiplexing requests and watches over a few HTTP/2
//! connections (or HTTP/1.1 when configured or offered only that), and the [`Forward`] service
//! that sends each authenticated request there as the caller.

mod client;
mod forward;
mod http2;
mod impersonate;
mod list_namespaces;
mod liveness;
mod namespace_index;
mod ping_timeout;
mod timeout;
mod tunnel;
mod watch_end;

pub use forward::Forward;
pub use impersonate::{AsCanopy, HeaderError, impersonation_headers};
pub use list_namespaces::{LiveError, list_namespaces};
pub use namespace_index::NamespaceIndex;
pub use tunnel::{StreamEnd, Tunnels};

use http::{Request, Response};
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::body::{Body, BoxError};
use crate::config::{UpstreamConfig, UpstreamProtocol, UpstreamTimeouts};

/// Why the upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The kubeconfig could not be read or has no usable context.
    #[error("upstream.kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// No kubeconfig given and none could be inferred.
    #[error("upstream: no kubeconfig given and none found: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    /// The TLS or auth settings in the kubeconfig are unusable.
    #[error("upstream: {0}")]
    Client(#[from] kube::Error),
    /// The apiserver's host is not a name its certificate could be checked against.
    #[error("upstream: the apiserver's host is not a valid TLS server name")]
    ServerName,
}

/// The HTTP service that reaches the apiserver with Canopy's own credentials.
pub type UpstreamService = BoxCloneSyncService<Request<Body>, Response<Body>, BoxError>;

/// Connections to the real apiserver.
#[derive(Clone)]
pub struct Upstream {
    /// Raw HTTP, for forwarding tenant requests.
    pub http: UpstreamService,
    /// A kube-rs client on the same credentials, for Canopy's own API calls ([`kube_client`]).
    pub kube: kube::Client,
    config: kube::Config,
    protocol: UpstreamProtocol,
    timeouts: UpstreamTimeouts,
}

impl Upstream {
    /// Connects as `config` says.
    pub async fn connect(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let kube_config = match &config.kubeconfig {
            Some(path) => {
                let options = KubeConfigOptions { context: config.context.clone(), ..Default::default() };
                kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
            }
            None => kube::Config::infer().await?,
        };
        Self::from_kube_config(kube_config, config.protocol, config.timeouts)
    }

    /// Builds the clients from a kube `Config`; tenant requests go over `protocol`, waiting for
    /// the apiserver as long as `timeouts` say.
    pub fn from_kube_config(
        config: kube::Config,
        protocol: UpstreamProtocol,
        timeouts: UpstreamTimeouts,
    ) -> Result<Self, UpstreamError> {
        let http = http_service(&config, protocol, timeouts)?;
        Ok(Self { http, kube: kube_client(&config, protocol, timeouts)?, config, protocol, timeouts })
    }

    /// The same upstream with a connection pool of its own for `http`, for a serving thread:
    /// connections then live on the thread whose requests use them.
    pub fn with_own_connections(&self) -> Result<Self, UpstreamError> {
        Ok(Self { http: http_service(&self.config, self.protocol, self.timeouts)?, ..self.clone() })
    }
}

/// Canopy's own kube-rs client, on `config`'s TLS and credentials. Its calls wait on no tenant,
/// so in `streams` mode they go over HTTP/2 too: its watches and the bursts of writes that
/// materialize the tree share one multiplexed connection instead of a keep-alive pool that grows
/// with the burst.
fn kube_client(
    config: &kube::Config,
    protocol: UpstreamProtocol,
    timeouts: UpstreamTimeouts,
) -> Result<kube::Client, UpstreamError> {
    let protocol = match protocol {
        UpstreamProtocol::Streams => UpstreamProtocol::Http2,
        other => other,
    };
    let service = ServiceBuilder::new()
        .map_request(|request: Request<kube::client::Body>| request.map(crate::body::boxed))
        .service(http_service(config, protocol, timeouts)?);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

/// A pooled HTTP client to the apiserver with `config`'s TLS and credentials.
fn http_service(
    config: &kube::Config,
    protocol: UpstreamProtocol,
    timeouts: UpstreamTimeouts,
) -> Result<UpstreamService, UpstreamError> {
    let http = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(Into::<BoxError>::into)
        // Around the client only: refreshing Canopy's own credentials is not the apiserver's time.
        .layer_fn(|client| timeout::ResponseTimeout::new(client, timeouts.response))
        .service(client::Client::new(config, protocol, timeouts)?);
    // Outermost, so that its probes go out as any request does, with Canopy's credentials.
    Ok(BoxCloneSyncService::new(liveness::Liveness::new(BoxCloneSyncService::new(http), timeouts)))
}
