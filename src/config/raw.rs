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
    /// Bounds on what one client may hold: connections, time to send headers, header and body
    /// sizes, bodies buffered at once.
    #[serde(default)]
    pub limits: RawLimits,
}

/// `server.limits:` — what clients may hold, so a slow or abusive one is closed and never starves
/// the others. The defaults follow kube-apiserver where it has a limit.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Limits")]
pub struct RawLimits {
    /// How long a client may take to send a request's headers, and a new connection to start
    /// its first request. An HTTP/1.1 connection waiting for its next request counts as reading
    /// headers, so it is also how long such a connection may sit idle.
    #[serde(default = "default_header_read_timeout")]
    #[schemars(range(min = 1))]
    pub header_read_timeout_seconds: u64,
    /// How long an HTTP/2 connection with no request in flight is kept before it is closed
    /// (GOAWAY); HTTP/2 clients are also pinged at this interval and closed if they do not answer.
    #[serde(default = "default_idle_timeout")]
    #[schemars(range(min = 1))]
    pub idle_timeout_seconds: u64,
    /// Client connections open at once, over all serving threads; beyond it new connections wait
    /// to be accepted until one closes.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1))]
    pub max_connections: u32,
    /// Requests in flight at once on one HTTP/2 connection (informers multiplex their watches).
    #[serde(default = "default_http2_max_streams")]
    #[schemars(range(min = 1))]
    pub http2_max_concurrent_streams: u32,
    /// Largest request head: HTTP/1.1 request line and headers, or an HTTP/2 header list
    /// (8 KiB to 16 MiB).
    #[serde(default = "default_max_header_bytes")]
    #[schemars(range(min = 8192, max = 16777216))]
    pub max_header_bytes: u32,
    /// Largest request body; larger ones are refused with 413 (kube-apiserver's limit is 3 MiB;
    /// at most 8 MiB, the most Canopy reads).
    #[serde(default = "default_max_request_body")]
    #[schemars(range(min = 1024, max = 8388608))]
    pub max_request_body_bytes: u32,
    /// Request body bytes held at once over all requests; a request whose body does not fit
    /// waits a second for room, then is refused with 429 and `Retry-After`. At least
    /// `maxRequestBodyBytes`.
    #[serde(default = "default_max_buffered_body_bytes")]
    pub max_buffered_body_bytes: u64,
    /// How long a client may take to send a whole request body, from its headers; past it the
    /// request is answered `408` and its share of `maxBufferedBodyBytes` given back, so a body
    /// trickled a byte at a time cannot hold it (kube-apiserver reads bodies within its own
    /// `--request-timeout`, 60 s by default).
    #[serde(default = "default_body_read_timeout")]
    #[schemars(range(min = 1))]
    pub body_read_timeout_seconds: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            header_read_timeout_seconds: default_header_read_timeout(),
            idle_timeout_seconds: default_idle_timeout(),
            max_connections: default_max_connections(),
            http2_max_concurrent_streams: default_http2_max_streams(),
            max_header_bytes: default_max_header_bytes(),
            max_request_body_bytes: default_max_request_body(),
            max_buffered_body_bytes: default_max_buffered_body_bytes(),
            body_read_timeout_seconds: default_body_read_timeout(),
        }
    }
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
            limits: RawLimits::default(),
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
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Upstream")]
pub struct RawUpstream {
    /// Kubeconfig for the real apiserver; absent: `KUBECONFIG`, `~/.kube/config` or in-cluster.
    pub kubeconfig: Option<String>,
    /// Context within that kubeconfig; absent: its current context.
    pub context: Option<String>,
    /// How tenant requests reach the apiserver. `http2`: requests and watches share a few
    /// connections per serving thread, each carrying as many streams as the apiserver allows
    /// (falling back to HTTP/1.1 if the apiserver does not offer HTTP/2); `http1`: one connection
    /// per request in flight and per open watch. Upgrades (exec, attach, port-forward) always use
    /// HTTP/1.1.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// How long connecting to the apiserver (TCP, and TLS on HTTP/2 connections) may take; a
    /// request that cannot connect is answered `503 ServiceUnavailable`.
    #[serde(default = "default_connect_timeout")]
    #[schemars(range(min = 1))]
    pub connect_timeout_seconds: u64,
    /// How long the apiserver may take to start its answer (the response headers, which it
    /// sends at once for a watch too) before the request is answered `504 Timeout`. Not for
    /// `proxy` subresources, whose answers come from workloads at their own pace.
    /// kube-apiserver answers its own requests within `--request-timeout`, 60 s by default.
    #[serde(default = "default_response_timeout")]
    #[schemars(range(min = 1))]
    pub response_timeout_seconds: u64,
    /// An HTTP/2 connection to the apiserver on which nothing arrived for this long is pinged,
    /// idle or not, so that a paused or vanished apiserver is noticed even by idle watches.
    /// HTTP/1.1 has no pings: while watches over HTTP/1.1 are open (`protocol: http1`, or an
    /// apiserver without HTTP/2), the apiserver is asked `GET /version` at most this often instead.
    #[serde(default = "default_keep_alive_interval")]
    #[schemars(range(min = 1))]
    pub keep_alive_interval_seconds: u64,
    /// How long such a ping may go unanswered before the connection is dropped: requests on it
    /// are answered `504 Timeout` and its watches end with an `ERROR` event, so clients list again.
    /// When a `GET /version` goes unanswered this long, the HTTP/1.1 watches that received
    /// nothing meanwhile end the same way.
    #[serde(default = "default_keep_alive_timeout")]
    #[schemars(range(min = 1))]
    pub keep_alive_timeout_seconds: u64,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            protocol: UpstreamProtocol::default(),
            connect_timeout_seconds: default_connect_timeout(),
            response_timeout_seconds: default_response_timeout(),
            keep_alive_interval_seconds: default_keep_alive_interval(),
            keep_alive_timeout_seconds: default_keep_alive_timeout(),
        }
    }
}

/// `upstream.protocol:` — the HTTP version spoken to the apiserver.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// Watches multiplexed over HTTP/2, every request that ends over pooled HTTP/1.1
    /// keep-alive connections: idle watches cost a stream, not a connection, and gets and lists
    /// keep HTTP/1.1's lower CPU per request (bench/RESULTS.md).
    #[default]
    Streams,
    /// HTTP/2 for everything but upgrades (and apiservers without HTTP/2).
    Http2,
    /// HTTP/1.1 only: a connection per request in flight.
    Http1,
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
    /// Bound on accepted tokens cached; the least recently used goes first.
    #[serde(default = "default_max_entries")]
    #[schemars(range(min = 1))]
    pub max_entries: usize,
    /// Bound on refused tokens cached, apart from the accepted ones so refusals never push
    /// those out.
    #[serde(default = "default_negative_max_entries")]
    #[schemars(range(min = 1))]
    pub negative_max_entries: usize,
    /// Reviews of tokens Canopy does not know yet, per second, that one client address may cause
    /// (IPv6: one /64); beyond it the client gets 429 with `Retry-After`. Trusted front proxies
    /// are not limited.
    #[serde(default = "default_unknown_token_rate")]
    #[schemars(range(min = 1))]
    pub unknown_tokens_per_second: u32,
    /// Reviews of unknown tokens one client address may cause at once before the rate applies.
    #[serde(default = "default_unknown_token_burst")]
    #[schemars(range(min = 1))]
    pub unknown_token_burst: u32,
    /// How long a review may take before the request it authenticates is answered 503 (the
    /// token is not cached either way, so the next request asks again).
    #[serde(default = "default_review_timeout")]
    #[schemars(range(min = 1))]
    pub timeout_seconds: u64,
}

impl Default for RawTokenReview {
    fn default() -> Self {
        Self {
            enabled: true,
            cache_ttl_seconds: default_ttl(),
            negative_cache_ttl_seconds: default_negative_ttl(),
            max_entries: default_max_entries(),
            negative_max_entries: default_negative_max_entries(),
            unknown_tokens_per_second: default_unknown_token_rate(),
            unknown_token_burst: default_unknown_token_burst(),
            timeout_seconds: default_review_timeout(),
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
fn default_negative_max_entries() -> usize {
    1_000
}
fn default_unknown_token_rate() -> u32 {
    10
}
fn default_unknown_token_burst() -> u32 {
    40
}
fn default_review_timeout() -> u64 {
    10
}
pub(super) fn default_connect_timeout() -> u64 {
    5
}
pub(super) fn default_response_timeout() -> u64 {
    60
}
pub(super) fn default_keep_alive_interval() -> u64 {
    30
}
pub(super) fn default_keep_alive_timeout() -> u64 {
    10
}
fn default_body_read_timeout() -> u64 {
    60
}
fn default_header_read_timeout() -> u64 {
    10
}
fn default_idle_timeout() -> u64 {
    90
}
fn default_max_connections() -> u32 {
    8_192
}
fn default_http2_max_streams() -> u32 {
    1_000
}
fn default_max_header_bytes() -> u32 {
    64 << 10
}
fn default_max_request_body() -> u32 {
    3 << 20
}
fn default_max_buffered_body_bytes() -> u64 {
    64 << 20
}
