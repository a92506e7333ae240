//! Canopy's configuration in two stages: [`raw`] is the file as written (serde, unknown keys
//! rejected); [`Config`] is the validated form the rest of the program uses. Every error names
//! the file and the config path at fault, and nothing is bound to a port before it passes.

pub mod raw;
pub mod raw_tree;
pub mod reference;
pub mod reload;
pub mod schema;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use raw::RawConfig;
pub use raw::UpstreamProtocol;

use crate::tree::Tree;

/// A configuration error, naming the file and the config path at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    /// The file is not YAML/JSON of the expected shape.
    #[error("{file}: {at}: {message}")]
    Parse { file: PathBuf, at: String, message: String },
    /// A value has the right shape but is not acceptable.
    #[error("{file}: {at}: {message}")]
    Invalid { file: PathBuf, at: String, message: String },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub file: PathBuf,
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub authentication: AuthConfig,
    pub sidecar: SidecarConfig,
    /// The compiled tenancy tree.
    pub tree: Arc<Tree>,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// Base URL tenants use, e.g. `https://127.0.0.1:6443`.
    pub public_url: String,
    pub tls: TlsSource,
    pub client_ca_file: Option<PathBuf>,
    pub shutdown_grace: Duration,
    /// Threads serving requests; `None`: one per CPU.
    pub worker_threads: Option<usize>,
    pub limits: LimitsConfig,
}

/// What clients may hold (`server.limits`); see [`raw::RawLimits`] for each bound.
#[derive(Debug, Clone, Copy)]
pub struct LimitsConfig {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub http2_max_concurrent_streams: u32,
    pub max_header_bytes: u32,
    pub max_request_body_bytes: u32,
    pub max_buffered_body_bytes: u64,
    pub body_read_timeout: Duration,
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// Operator-provided PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// Generated at start, signed by a CA kept in `dir`.
    Generated { dir: PathBuf, extra_sans: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub protocol: UpstreamProtocol,
    pub timeouts: UpstreamTimeouts,
}

/// How long Canopy waits for the apiserver (`upstream.*Seconds`; see [`raw::RawUpstream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    pub response: Duration,
    pub keep_alive_interval: Duration,
    pub keep_alive_timeout: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        let seconds = Duration::from_secs;
        Self {
            connect: seconds(raw::default_connect_timeout()),
            response: seconds(raw::default_response_timeout()),
            keep_alive_interval: seconds(raw::default_keep_alive_interval()),
            keep_alive_timeout: seconds(raw::default_keep_alive_timeout()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub token_file: Option<PathBuf>,
    pub token_review: Option<TokenReviewConfig>,
    /// Client-certificate CommonNames trusted to send front-proxy headers.
    pub front_proxy_names: Vec<String>,
}

/// `canopy sidecar`'s listener and default credential.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    /// Always a loopback address.
    pub listen: SocketAddr,
    pub token_file: PathBuf,
}

#[derive(Debug, Clone, Copy)]
pub struct TokenReviewConfig {
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub max_entries: usize,
    pub max_refused_entries: usize,
    pub unknown_tokens_per_second: f64,
    pub unknown_token_burst: u32,
    /// Bound on one TokenReview's round trip.
    pub timeout: Duration,
}

impl Config {
    /// Reads and validates `file`.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(file).map_err(|source| ConfigError::Read { file: file.to_owned(), source })?;
        Self::from_str(file, &text)
    }

    /// Parses and validates `text`, read from `file`.
    pub fn from_str(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let parse_error = |at: String, message: String| ConfigError::Parse { file: file.to_owned(), at, message };
        // YAML is parsed into a JSON value first so that serde_path_to_error can name the exact
        // config path of a shape error.
        let value: serde_json::Value = if text.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_saphyr::from_str(text).map_err(|e| parse_error("(document)".into(), e.to_string()))?
        };
        let raw: RawConfig = serde_path_to_error::deserialize(value)
            .map_err(|e| parse_error(e.path().to_string(), e.inner().to_string()))?;
        Self::from_raw(file, raw)
    }

    fn from_raw(file: &Path, raw: RawConfig) -> Result<Self, ConfigError> {
        let invalid =
            |at: &str, message: String| ConfigError::Invalid { file: file.to_owned(), at: at.to_owned(), message };
        let base = file.parent().unwrap_or(Path::new("."));
        let resolve = |p: &str| base.join(p);

        let listen: SocketAddr = raw
            .server
            .listen
            .parse()
            .map_err(|e| invalid("server.listen", format!("{:?} is not host:port: {e}", raw.server.listen)))?;
        let admin_listen: SocketAddr = raw.server.admin_listen.parse().map_err(|e| {
            invalid("server.adminListen", format!("{:?} is not host:port: {e}", raw.server.admin_listen))
        })?;
        let public_url = match raw.server.public_url {
            Some(url) => {
                let parsed: http::Uri =
                    url.parse().map_err(|e| invalid("server.publicUrl", format!("{url:?}: {e}")))?;
                if parsed.scheme_str() != Some("https") || parsed.host().is_none() {
                    return Err(invalid("server.publicUrl", format!("{url:?} must be an https:// URL")));
                }
                url.trim_end_matches('/').to_owned()
            }
            None => format!("https://{listen}"),
        };
        let tls = match (raw.server.tls.cert_file, raw.server.tls.key_file) {
            (Some(cert), Some(key)) => TlsSource::Files { cert: resolve(&cert), key: resolve(&key) },
            (None, None) => TlsSource::Generated {
                dir: resolve(raw.server.tls.generated_dir.as_deref().unwrap_or(".canopy")),
                extra_sans: raw.server.tls.extra_sans,
            },
            (Some(_), None) => return Err(invalid("server.tls.keyFile", "certFile is set, keyFile is missing".into())),
            (None, Some(_)) => {
                return Err(invalid("server.tls.certFile", "keyFile is set, certFile is missing".into()));
            }
        };
        let token_review = raw.authentication.token_review;
        if token_review.enabled {
            for (at, value) in [
                ("maxEntries", token_review.max_entries),
                ("negativeMaxEntries", token_review.negative_max_entries),
                ("unknownTokensPerSecond", token_review.unknown_tokens_per_second as usize),
                ("unknownTokenBurst", token_review.unknown_token_burst as usize),
            ] {
                if value == 0 {
                    return Err(invalid(&format!("authentication.tokenReview.{at}"), "must be at least 1".into()));
                }
            }
        }
        let upstream = &raw.upstream;
        for (at, value) in [
            ("connectTimeoutSeconds", upstream.connect_timeout_seconds),
            ("responseTimeoutSeconds", upstream.response_timeout_seconds),
            ("keepAliveIntervalSeconds", upstream.keep_alive_interval_seconds),
            ("keepAliveTimeoutSeconds", upstream.keep_alive_timeout_seconds),
        ] {
            if value == 0 {
                return Err(invalid(&format!("upstream.{at}"), "must be at least 1".into()));
            }
        }
        let timeouts = UpstreamTimeouts {
            connect: Duration::from_secs(upstream.connect_timeout_seconds),
            response: Duration::from_secs(upstream.response_timeout_seconds),
            keep_alive_interval: Duration::from_secs(upstream.keep_alive_interval_seconds),
            keep_alive_timeout: Duration::from_secs(upstream.keep_alive_timeout_seconds),
        };
        let limits =
            limits(&raw.server.limits).map_err(|(at, message)| invalid(&format!("server.limits.{at}"), message))?;
        let front_proxy_names = raw.authentication.front_proxy_names;
        if let Some(index) = front_proxy_names.iter().position(|name| name.trim().is_empty()) {
            return Err(invalid(&format!("authentication.frontProxyNames[{index}]"), "must not be empty".into()));
        }
        if !front_proxy_names.is_empty() && raw.server.client_ca_file.is_none() {
            return Err(invalid(
                "authentication.frontProxyNames",
                "front proxies are recognised by their client certificate: set server.clientCaFile".into(),
            ));
        }
        let sidecar_listen: SocketAddr = raw
            .sidecar
            .listen
            .parse()
            .map_err(|e| invalid("sidecar.listen", format!("{:?} is not host:port: {e}", raw.sidecar.listen)))?;
        // Every caller that reaches the sidecar acts as the pod or names any end user.
        if !sidecar_listen.ip().is_loopback() {
            return Err(invalid(
                "sidecar.listen",
                format!(
                    "{sidecar_listen} is not a loopback address: the sidecar trusts every caller that reaches \
                     it, so it listens on 127.0.0.1 or ::1 only"
                ),
            ));
        }
        let worker_threads = match raw.server.worker_threads {
            Some(n @ 1..=1024) => Some(n as usize),
            Some(n) => return Err(invalid("server.workerThreads", format!("{n} is not between 1 and 1024"))),
            None => None,
        };
        let tree = Tree::compile(&raw.tree, "tree").map_err(|e| invalid(&e.at, e.message))?;
        Ok(Config {
            file: file.to_owned(),
            tree: Arc::new(tree),
            server: ServerConfig {
                listen,
                admin_listen,
                public_url,
                tls,
                client_ca_file: raw.server.client_ca_file.as_deref().map(resolve),
                shutdown_grace: Duration::from_secs(raw.server.shutdown_grace_seconds),
                worker_threads,
                limits,
            },
            upstream: UpstreamConfig {
                kubeconfig: raw.upstream.kubeconfig.as_deref().map(resolve),
                context: raw.upstream.context,
                protocol: raw.upstream.protocol,
                timeouts,
            },
            authentication: AuthConfig {
                token_file: raw.authentication.token_file.as_deref().map(resolve),
                token_review: token_review.enabled.then(|| TokenReviewConfig {
                    ttl: Duration::from_secs(token_review.cache_ttl_seconds),
                    negative_ttl: Duration::from_secs(token_review.negative_cache_ttl_seconds),
                    max_entries: token_review.max_entries,
                    max_refused_entries: token_review.negative_max_entries,
                    unknown_tokens_per_second: f64::from(token_review.unknown_tokens_per_second),
                    unknown_token_burst: token_review.unknown_token_burst,
                    timeout: Duration::from_secs(token_review.timeout_seconds),
                }),
                front_proxy_names,
            },
            sidecar: SidecarConfig { listen: sidecar_listen, token_file: resolve(&raw.sidecar.token_file) },
        })
    }
}

/// `server.limits` checked; an error names the field and what is wrong.
fn limits(raw: &raw::RawLimits) -> Result<LimitsConfig, (&'static str, String)> {
    let at_least = |at: &'static str, value: u64, min: u64| {
        if value < min { Err((at, format!("{value} is less than {min}"))) } else { Ok(()) }
    };
    at_least("headerReadTimeoutSeconds", raw.header_read_timeout_seconds, 1)?;
    at_least("idleTimeoutSeconds", raw.idle_timeout_seconds, 1)?;
    at_least("bodyReadTimeoutSeconds", raw.body_read_timeout_seconds, 1)?;
    at_least("maxConnections", raw.max_connections.into(), 1)?;
    at_least("http2MaxConcurrentStreams", raw.http2_max_concurrent_streams.into(), 1)?;
    // hyper cannot read a request head into less than 8 KiB.
    at_least("maxHeaderBytes", raw.max_header_bytes.into(), 8 << 10)?;
    if raw.max_header_bytes > 16 << 20 {
        return Err(("maxHeaderBytes", format!("{} is more than 16 MiB", raw.max_header_bytes)));
    }
    at_least("maxRequestBodyBytes", raw.max_request_body_bytes.into(), 1 << 10)?;
    if raw.max_request_body_bytes as usize > crate::transform::MAX_REQUEST_BODY {
        return Err((
            "maxRequestBodyBytes",
            format!(
                "{} is more than Canopy reads ({})",
                raw.max_request_body_bytes,
                crate::transform::MAX_REQUEST_BODY
            ),
        ));
    }
    if raw.max_buffered_body_bytes < raw.max_request_body_bytes.into() {
        return Err((
            "maxBufferedBodyBytes",
            format!(
                "{} is less than maxRequestBodyBytes: a body of the largest size could never be read",
                raw.max_buffered_body_bytes
            ),
        ));
    }
    Ok(LimitsConfig {
        header_read_timeout: Duration::from_secs(raw.header_read_timeout_seconds),
        idle_timeout: Duration::from_secs(raw.idle_timeout_seconds),
        max_connections: raw.max_connections as usize,
        http2_max_concurrent_streams: raw.http2_max_concurrent_streams,
        max_header_bytes: raw.max_header_bytes,
        max_request_body_bytes: raw.max_request_body_bytes,
        max_buffered_body_bytes: raw.max_buffered_body_bytes,
        body_read_timeout: Duration::from_secs(raw.body_read_timeout_seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_str(Path::new("/etc/canopy/config.yaml"), text)
    }

    #[test]
    fn empty_file_gives_defaults() {
        let config = load("").unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:6443");
        assert_eq!(config.server.public_url, "https://127.0.0.1:6443");
        assert!(config.authentication.token_review.is_some());
        assert_eq!(config.upstream.timeouts, UpstreamTimeouts::default());
        assert_eq!(config.upstream.timeouts.response, Duration::from_secs(60));
        assert!(
            matches!(config.server.tls, TlsSource::Generated { ref dir, .. } if dir == Path::new("/etc/canopy/.canopy"))
        );
    }

    #[test]
    fn unknown_key_names_its_path() {
        let err = load("server:\n  tls:\n    certFiles: x\n").unwrap_err().to_string();
        assert!(err.starts_with("/etc/canopy/config.yaml: server.tls.certFiles: unknown field `certFiles`"), "{err}");
    }

    #[test]
    fn bad_value_names_its_path() {
        let err = load("server:\n  listen: nowhere\n").unwrap_err().to_string();
        assert!(err.contains("server.listen"), "{err}");
        let err = load("authentication:\n  tokenReview:\n    cacheTtlSeconds: soon\n").unwrap_err().to_string();
        assert!(err.contains("authentication.tokenReview.cacheTtlSeconds"), "{err}");
        let err = load("server:\n  workerThreads: 0\n").unwrap_err().to_string();
        assert!(err.contains("server.workerThreads: 0 is not between 1 and 1024"), "{err}");
        assert_eq!(load("server:\n  workerThreads: 1\n").unwrap().server.worker_threads, Some(1));
        let err = load("upstream:\n  responseTimeoutSeconds: 0\n").unwrap_err().to_string();
        assert!(err.contains("upstream.responseTimeoutSeconds: must be at least 1"), "{err}");
    }

    #[test]
    fn limits_have_defaults_and_bounds() {
        let limits = load("").unwrap().server.limits;
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!((limits.max_request_body_bytes, limits.max_buffered_body_bytes), (3 << 20, 64 << 20));
        let err = load("server:\n  limits:\n    maxHeaderBytes: 100\n").unwrap_err().to_string();
        assert!(err.contains("server.limits.maxHeaderBytes: 100 is less than 8192"), "{err}");
        let err = load("server:\n  limits:\n    maxBufferedBodyBytes: 1024\n").unwrap_err().to_string();
        assert!(err.contains("server.limits.maxBufferedBodyBytes: 1024 is less than maxRequestBodyBytes"), "{err}");
        let err = load("server:\n  limits:\n    maxRequestBodyBytes: 9000000\n").unwrap_err().to_string();
        assert!(err.contains("server.limits.maxRequestBodyBytes: 9000000 is more than Canopy reads"), "{err}");
        let err = load("authentication:\n  tokenReview:\n    unknownTokenBurst: 0\n").unwrap_err().to_string();
        assert!(err.contains("authentication.tokenReview.unknownTokenBurst: must be at least 1"), "{err}");
    }

    #[test]
    fn half_a_key_pair_is_refused() {
        let err = load("server:\n  tls:\n    certFile: a.crt\n").unwrap_err().to_string();
        assert!(err.contains("server.tls.keyFile"), "{err}");
    }

    #[test]
    fn sidecar_listens_on_loopback_only() {
        let config = load("").unwrap();
        assert_eq!(config.sidecar.listen.to_string(), "127.0.0.1:8001");
        assert_eq!(config.sidecar.token_file, Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token"));
        assert!(load("sidecar:\n  listen: \"[::1]:9000\"\n").is_ok());
        for elsewhere in ["0.0.0.0:8001", "10.0.0.7:8001", "[::]:8001"] {
            let err = load(&format!("sidecar:\n  listen: \"{elsewhere}\"\n")).unwrap_err().to_string();
            assert!(err.starts_with("/etc/canopy/config.yaml: sidecar.listen: "), "{err}");
            assert!(err.contains("not a loopback address"), "{err}");
        }
    }

    #[test]
    fn front_proxy_names_need_the_client_ca() {
        let err = load("authentication:\n  frontProxyNames: [console]\n").unwrap_err().to_string();
        assert!(err.contains("authentication.frontProxyNames: "), "{err}");
        let config = load("server:\n  clientCaFile: ca.crt\nauthentication:\n  frontProxyNames: [console]\n").unwrap();
        assert_eq!(config.authentication.front_proxy_names, ["console"]);
        let err = load("server:\n  clientCaFile: ca.crt\nauthentication:\n  frontProxyNames: ['']\n").unwrap_err();
        assert!(err.to_string().contains("authentication.frontProxyNames[0]"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let config = load("upstream:\n  kubeconfig: admin.kubeconfig\n").unwrap();
        assert_eq!(config.upstream.kubeconfig.unwrap(), Path::new("/etc/canopy/admin.kubeconfig"));
    }
}
