//! The real apiserver: a pooled hyper client built from kube's `Config` (kubeconfig or
//! in-cluster), so Canopy authenticates upstream exactly as kube-rs would — client certificates,
//! static or refreshed bearer tokens, custom CAs — and the [`Forward`] service that sends each
//! authenticated request there as the caller.

mod forward;
mod impersonate;
mod list_namespaces;
mod namespace_index;
mod tunnel;

pub use forward::Forward;
pub use impersonate::{AsCanopy, HeaderError, impersonation_headers};
pub use list_namespaces::{LiveError, list_namespaces};
pub use namespace_index::NamespaceIndex;
pub use tunnel::{StreamEnd, Tunnels};

use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::body::{Body, BoxError};
use crate::config::UpstreamConfig;

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
}

/// The HTTP service that reaches the apiserver with Canopy's own credentials.
pub type UpstreamService = BoxCloneSyncService<Request<Body>, Response<Incoming>, BoxError>;

/// Connections to the real apiserver.
#[derive(Clone)]
pub struct Upstream {
    /// Raw HTTP, for forwarding tenant requests.
    pub http: UpstreamService,
    /// A kube-rs client on the same credentials, for Canopy's own API calls.
    pub kube: kube::Client,
    config: kube::Config,
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
        Self::from_kube_config(kube_config)
    }

    /// Builds the clients from a kube `Config`.
    pub fn from_kube_config(config: kube::Config) -> Result<Self, UpstreamError> {
        let http = http_service(&config)?;
        let kube = kube::Client::try_from(config.clone())?;
        Ok(Self { http, kube, config })
    }

    /// The same upstream with a connection pool of its own for `http`, for a serving thread:
    /// connections then live on the thread whose requests use them.
    pub fn with_own_connections(&self) -> Result<Self, UpstreamError> {
        Ok(Self { http: http_service(&self.config)?, ..self.clone() })
    }
}

/// A pooled HTTP client to the apiserver with `config`'s TLS and credentials.
fn http_service(config: &kube::Config) -> Result<UpstreamService, UpstreamError> {
    let mut connector = HttpConnector::new();
    connector.enforce_http(false);
    connector.set_nodelay(true);
    // Connecting is bounded; reading is not, because watches and exec streams live long.
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let https = config.rustls_https_connector_with_connector(connector)?;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build::<_, Body>(https);
    let http = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(Into::<BoxError>::into)
        .service(client);
    Ok(BoxCloneSyncService::new(http))
}
