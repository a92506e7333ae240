//! The configuration file as written: plain serde structs, unknown keys rejected, defaults filled.
//! Nothing here is checked beyond its shape; `config::Config::from_raw` does that once.

use schemars::JsonSchema;
use serde::Deserialize;

/// Canopy's configuration file: one YAML document; unknown keys are errors.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "CanopyConfig", title = "Canopy configuration")]
pub struct RawConfig {
    /// Listener, TLS and shutdown settings.
    #[serde(default)]
    pub server: RawServer,
    /// Where the real apiserver is and how Canopy authenticates to it.
    #[serde(default)]
    pub upstream: RawUpstream,
    /// How callers prove who they are.
    #[serde(default)]
    pub authentication: RawAuthentication,
    /// `canopy sidecar`: plain HTTP on loopback for a frontend in the same pod.
    #[serde(default)]
    pub sidecar: RawSidecar,
    /// The tenancy tree.
    #[serde(default)]
    pub tree: super::raw_tree::RawTree,
}

/// `server:` — listeners, serving certificate and shutdown.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Server")]
pub struct RawServer {
    /// `host:port` of the tenant-facing TLS listener.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `host:port` of the plain-HTTP admin listener (`/livez`, `/readyz`, `/metrics`).
    #[serde(default = "default_admin_listen")]
    pub admin_listen: String,
    /// The URL tenants use to reach Canopy, written into generated kubeconfigs.
    pub public_url: Option<String>,
    /// Serving certificate.
    #[serde(default)]
    pub tls: RawTls,
    /// CA bundle whose client certificates are accepted as identities (CN user, O groups).
    pub client_ca_file: Option<String>,
    /// How long open connections may drain after SIGTERM before they are closed.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Threads that serve requests (1–1024). Absent: one per CPU Canopy may use. Each has a
    /// runtime, a share of the listening socket and upstream connections of its own, so a
    /// request never wakes another thread; reload, the reconciler and the admin port run on
    /// the main thread besides them.
    #[schemars(range(min = 1, max = 1024))]
    pub worker_threads: Option<u32>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            public_url: None,
            tls: RawTls::default(),
            client_ca_file: None,
            shutdown_grace_seconds: default_grace(),
            worker_threads: None,
        }
    }
}

/// `server.tls:` — the serving certificate, from files or generated at start.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Tls")]
pub struct RawTls {
    /// PEM certificate chain; with `keyFile`. Absent: generated at start.
    pub cert_file: Option<String>,
    /// PEM private key for `certFile`.
    pub key_file: Option<String>,
    /// Where a generated CA is kept (`ca.crt`, `ca.key`) so it survives restarts.
    pub generated_dir: Option<String>,
    /// Extra DNS names or IPs for a generated serving certificate.
    #[serde(default)]
    pub extra_sans: Vec<String>,
}

/// `upstream:` — the real apiserver and Canopy's own credentials there.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Upstream")]
pub struct RawUpstream {
    /// Kubeconfig for the real apiserver; absent: `KUBECONFIG`, `~/.kube/config` or in-cluster.
    pub kubeconfig: Option<String>,
    /// Context within that kubeconfig; absent: its current context.
    pub context: Option<String>,
}

/// `authentication:` — how callers prove who they are.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Authentication")]
pub struct RawAuthentication {
    /// Static token file (`token,user,uid,"group1,group2"`), for development.
    pub token_file: Option<String>,
    /// Bearer tokens checked by TokenReview against the upstream.
    #[serde(default)]
    pub token_review: RawTokenReview,
    /// CommonNames of client certificates (from `server.clientCaFile`) trusted as front proxies:
    /// their requests may name the end user in `X-Remote-User`, `X-Remote-Group` and
    /// `X-Remote-Extra-*` headers. Anyone else sending those headers is refused.
    #[serde(default)]
    pub front_proxy_names: Vec<String>,
}

/// `sidecar:` — `canopy sidecar`, a `kubectl proxy`-like listener for a frontend in the same pod.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Sidecar")]
pub struct RawSidecar {
    /// `host:port` of the plain-HTTP listener; a loopback address only (`127.0.0.1`, `::1`), since
    /// every caller that reaches it may act as the pod or name any end user.
    #[serde(default = "default_sidecar_listen")]
    pub listen: String,
    /// Token whose identity requests without a credential or front-proxy headers get; re-read
    /// as the kubelet rotates it.
    #[serde(default = "default_sidecar_token_file")]
    pub token_file: String,
}

impl Default for RawSidecar {
    fn default() -> Self {
        Self { listen: default_sidecar_listen(), token_file: default_sidecar_token_file() }
    }
}

/// `authentication.tokenReview:` — bearer tokens checked with the upstream, verdicts cached.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "TokenReview")]
pub struct RawTokenReview {
    /// Whether bearer tokens are checked with TokenReview at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How long an accepted token is trusted without asking again.
    #[serde(default = "default_ttl")]
    pub cache_ttl_seconds: u64,
    /// How long a refused token is refused without asking again.
    #[serde(default = "default_negative_ttl")]
    pub negative_cache_ttl_seconds: u64,
    /// Bound on cached tokens.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
}

impl Default for RawTokenReview {
    fn default() -> Self {
        Self {
            enabled: true,
            cache_ttl_seconds: default_ttl(),
            negative_cache_ttl_seconds: default_negative_ttl(),
            max_entries: default_max_entries(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:6443".into()
}
fn default_admin_listen() -> String {
    "127.0.0.1:6444".into()
}
fn default_sidecar_listen() -> String {
    "127.0.0.1:8001".into()
}
fn default_sidecar_token_file() -> String {
    "/var/run/secrets/kubernetes.io/serviceaccount/token".into()
}
fn default_grace() -> u64 {
    30
}
fn yes() -> bool {
    true
}
fn default_ttl() -> u64 {
    120
}
fn default_negative_ttl() -> u64 {
    10
}
fn default_max_entries() -> usize {
    10_000
}
