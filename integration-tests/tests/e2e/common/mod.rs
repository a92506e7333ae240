//! Shared helpers for the end-to-end tests: the running real-apiserver harness, a Canopy
//! process per test, kubeconfigs, and clients (the machine's kubectl, the harness-built kubectl,
//! raw HTTPS).

pub mod reconciler;
pub mod tenants;
pub mod tree;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The harness started by `integration-tests/up.sh`, read from its run directory's `env` file.
pub struct Harness {
    env: HashMap<String, String>,
}

impl Harness {
    /// The harness every test shares: `CANOPY_HARNESS_DIR`, or `integration-tests/.run`.
    pub fn shared() -> &'static Harness {
        static SHARED: OnceLock<Harness> = OnceLock::new();
        SHARED.get_or_init(|| {
            let dir = std::env::var_os("CANOPY_HARNESS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("integration-tests/.run"));
            Harness::at(&dir)
        })
    }

    /// Reads the harness whose run directory is `dir`; panics with the command to run if none is up.
    pub fn at(dir: &Path) -> Harness {
        let text = std::fs::read_to_string(dir.join("env")).unwrap_or_else(|e| {
            panic!("no harness at {}: {e}; start one with integration-tests/up.sh {}", dir.display(), dir.display())
        });
        assert!(dir.join("ready").exists(), "harness at {} is not ready", dir.display());
        Harness { env: parse_env(&text) }
    }

    pub fn var(&self, key: &str) -> &str {
        self.env.get(key).unwrap_or_else(|| panic!("harness env has no {key}"))
    }

    /// The bearer token of a harness user (`admin`, `alice`, …, `nobody`).
    pub fn token(&self, user: &str) -> &str {
        self.var(&format!("TOKEN_{}", user.to_uppercase()))
    }

    /// Both kubectls: the one built from the harness's Kubernetes release and the machine's own.
    pub fn kubectls(&self) -> Vec<PathBuf> {
        let mut all = vec![PathBuf::from(self.var("KUBECTL"))];
        if let Some(machine) = which("kubectl") {
            all.push(machine);
        }
        all
    }
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(v);
            (k.trim().to_owned(), v.replace("'\\''", "'"))
        })
        .collect()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// A free loopback port, bound and released. Picked below the kernel's ephemeral range, as the
/// harness picks its own, so no outbound connection's automatic local port can take it before it
/// is used; another test's pick still can, which `Canopy::spawn` recovers from by starting again.
pub fn free_port() -> u16 {
    const LOWEST: u16 = 20_000;
    let below = ephemeral_low();
    if below > LOWEST + 1000 {
        for _ in 0..100 {
            let random = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
            let port = LOWEST + (random % u64::from(below - LOWEST)) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The first port of the kernel's ephemeral range, or 0 when unknown.
fn ephemeral_low() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    range.split_whitespace().next().and_then(|low| low.parse().ok()).unwrap_or(0)
}

/// Settings for one Canopy process.
#[derive(Clone, Default)]
pub struct Options {
    /// Verify client certificates against the harness's client CA.
    pub client_ca: bool,
    /// Contents of a static token file.
    pub static_tokens: Option<String>,
    /// Shutdown grace period.
    pub grace_seconds: Option<u64>,
    /// Serve the tenancy tree of `proxy-config/example.yaml`.
    pub example_tree: bool,
    /// Client-certificate CommonNames trusted as front proxies (needs `client_ca`).
    pub front_proxy_names: Vec<String>,
    /// `server.workerThreads`.
    pub worker_threads: Option<u32>,
    /// `server.limits`, as YAML lines indented under it (`    maxConnections: 2\n`).
    pub limits: Option<String>,
    /// More of `authentication.tokenReview`, as YAML lines indented under it.
    pub token_review: Option<String>,
    /// `upstream.protocol` (`http2`, `http1`); absent: the default.
    pub upstream_protocol: Option<&'static str>,
    /// `upstream.kubeconfig`; absent: the harness's kubeconfig for Canopy.
    pub upstream_kubeconfig: Option<PathBuf>,
    /// More of `upstream`, as YAML lines indented under it (`  responseTimeoutSeconds: 2\n`).
    pub upstream: Option<String>,
}

/// The `tree:` section of `proxy-config/example.yaml`.
pub fn example_tree() -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy-config/example.yaml")).unwrap();
    let start = text.find("\ntree:\n").expect("example.yaml has a tree section");
    text[start + 1..].to_owned()
}

/// A running `canopy serve`, killed on drop.
pub struct Canopy {
    child: Child,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub admin: String,
    pub config: PathBuf,
    pub ca_file: PathBuf,
    pub stderr_log: PathBuf,
}

impl Canopy {
    pub fn start(harness: &Harness) -> Canopy {
        Self::start_with(harness, Options::default())
    }

    pub fn start_with(harness: &Harness, options: Options) -> Canopy {
        Self::spawn(harness, options, None)
    }

    /// A running `canopy sidecar` whose token file holds `token`; `url` is its plain-HTTP
    /// loopback address and `dir/token` the token file (rewrite it to rotate the token).
    pub fn start_sidecar(harness: &Harness, options: Options, token: &str) -> Canopy {
        Self::spawn(harness, options, Some(token))
    }

    /// Starts Canopy on freshly picked ports, again on new ones when a port was taken between
    /// `free_port` releasing it and Canopy binding it (an outbound connection's ephemeral port can
    /// land there), so a parallel test can never make another fail at start-up.
    fn spawn(harness: &Harness, options: Options, sidecar_token: Option<&str>) -> Canopy {
        const ATTEMPTS: u32 = 5;
        let mut attempt = 1;
        loop {
            match Self::try_spawn(harness, &options, sidecar_token) {
                Ok(canopy) => return canopy,
                Err(log) if attempt < ATTEMPTS && log.contains("Address already in use") => attempt += 1,
                Err(log) => panic!("canopy exited at start-up (attempt {attempt}); log:\n{log}"),
            }
        }
    }

    /// One start: `Err(log)` when the process exits before it is live.
    fn try_spawn(harness: &Harness, options: &Options, sidecar_token: Option<&str>) -> Result<Canopy, String> {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let mut config = format!(
            "server:\n  listen: 127.0.0.1:{port}\n  adminListen: 127.0.0.1:{admin_port}\n  tls:\n    generatedDir: tls\n  shutdownGraceSeconds: {}\n",
            options.grace_seconds.unwrap_or(5)
        );
        if options.client_ca {
            config.push_str(&format!("  clientCaFile: {}\n", harness.var("CLIENT_CA_CERT")));
        }
        if let Some(threads) = options.worker_threads {
            config.push_str(&format!("  workerThreads: {threads}\n"));
        }
        if let Some(limits) = &options.limits {
            config.push_str(&format!("  limits:\n{limits}"));
        }
        let upstream_kubeconfig = match &options.upstream_kubeconfig {
            Some(path) => path.display().to_string(),
            None => harness.var("CANOPY_UPSTREAM_KUBECONFIG").to_owned(),
        };
        config.push_str(&format!("upstream:\n  kubeconfig: {upstream_kubeconfig}\n"));
        if let Some(protocol) = options.upstream_protocol {
            config.push_str(&format!("  protocol: {protocol}\n"));
        }
        config.push_str(options.upstream.as_deref().unwrap_or_default());
        config.push_str("authentication:\n  tokenReview:\n    cacheTtlSeconds: 60\n");
        config.push_str(options.token_review.as_deref().unwrap_or_default());
        if let Some(tokens) = &options.static_tokens {
            std::fs::write(dir.path().join("tokens.csv"), tokens).unwrap();
            config.push_str("  tokenFile: tokens.csv\n");
        }
        if !options.front_proxy_names.is_empty() {
            config.push_str(&format!("  frontProxyNames: {:?}\n", options.front_proxy_names));
        }
        let sidecar_port = sidecar_token.map(|token| {
            let port = free_port();
            std::fs::write(dir.path().join("token"), token).unwrap();
            config.push_str(&format!("sidecar:\n  listen: 127.0.0.1:{port}\n  tokenFile: token\n"));
            port
        });
        if options.example_tree {
            tree::assert_held();
            config.push_str(&example_tree());
        }
        let config_path = dir.path().join("canopy.yaml");
        std::fs::write(&config_path, config).unwrap();
        let stderr_log = dir.path().join("canopy.log");
        let child = Command::new(env!("CARGO_BIN_EXE_canopy"))
            .args([if sidecar_token.is_some() { "sidecar" } else { "serve" }, "--config"])
            .arg(&config_path)
            .env("CANOPY_LOG", "info,canopy=debug")
            .stdout(std::fs::File::create(dir.path().join("audit.log")).unwrap())
            .stderr(std::fs::File::create(&stderr_log).unwrap())
            .spawn()
            .unwrap();
        let mut canopy = Canopy {
            child,
            ca_file: dir.path().join("tls/ca.crt"),
            dir,
            url: match sidecar_port {
                Some(sidecar_port) => format!("http://127.0.0.1:{sidecar_port}"),
                None => format!("https://127.0.0.1:{port}"),
            },
            admin: format!("127.0.0.1:{admin_port}"),
            config: config_path,
            stderr_log,
        };
        // Only our own process's "serving" line proves the admin port is ours: until both ports
        // are bound, `/livez` there could be answered by whoever holds it.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if canopy.child.try_wait().unwrap().is_some() {
                return Err(canopy.log());
            }
            if canopy.log().contains(&format!("admin={}", canopy.admin))
                && canopy.admin_get("/livez").is_ok_and(|(code, _)| code == 200)
            {
                return Ok(canopy);
            }
            assert!(Instant::now() < deadline, "canopy never became live; log:\n{}", canopy.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The audit lines written so far, parsed.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// A plain-HTTP GET on the admin port: (code, body).
    pub fn admin_get(&self, path: &str) -> std::io::Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.admin)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Ok((code, body))
    }

    /// Writes a kubeconfig for `user` with `token` via `canopy kubeconfig`, returns its path.
    pub fn kubeconfig(&self, user: &str, token: &str) -> PathBuf {
        self.kubeconfig_in_view(user, token, None)
    }

    /// A kubeconfig whose server URL selects `view` (`acme/web`).
    pub fn kubeconfig_in_view(&self, user: &str, token: &str, view: Option<&str>) -> PathBuf {
        let mut command = Command::new(env!("CARGO_BIN_EXE_canopy"));
        command.args(["kubeconfig", "--config"]).arg(&self.config).args(["--user", user, "--token", token]);
        if let Some(view) = view {
            command.args(["--view", view]);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "canopy kubeconfig: {}", String::from_utf8_lossy(&output.stderr));
        let name = view.map_or_else(|| user.to_owned(), |v| format!("{user}@{}", v.replace('/', "-")));
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        std::fs::write(&path, &output.stdout).unwrap();
        path
    }

    /// A reqwest client trusting Canopy's CA.
    pub fn http(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&self.ca_file).unwrap()).unwrap();
        reqwest::Client::builder().add_root_certificate(ca).build().unwrap()
    }

    /// The process id of this Canopy.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Canopy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kubectl` with `kubeconfig`; returns the output (never panics on a non-zero exit).
pub fn kubectl(bin: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    kubectl_stdin(bin, kubeconfig, args, None)
}

/// Runs `kubectl` with `stdin` as its standard input.
pub fn kubectl_stdin(bin: &Path, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    kubectl_env(bin, kubeconfig, &[], args, stdin)
}

/// Runs `kubectl` with extra environment variables and optional standard input.
pub fn kubectl_env(bin: &Path, kubeconfig: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        // Discovery is cached by server address: users of one Canopy see different clusters.
        .env("KUBECACHEDIR", kubeconfig.with_extension("kubectl-cache"))
        .envs(env.iter().copied())
        .env_remove("KUBECONFIG")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Runs the harness's `clients` (client-go's own code paths, see `cmd/clients`) with `kubeconfig`.
pub fn client_go(kubeconfig: &Path, args: &[&str]) -> Output {
    let kubectl = Path::new(Harness::shared().var("KUBECTL"));
    Command::new(kubectl.with_file_name("clients")).args(args).env("KUBECONFIG", kubeconfig).output().unwrap()
}

/// What a port-forward on `local_port` answers to `ping` (the fake kubelet's pods answer
/// `pong:<what they got>`), once it answers, within 20 s.
pub fn port_forward_reply(local_port: u16) -> String {
    use std::io::{Read, Write};
    let mut reply = String::new();
    eventually(Duration::from_secs(20), "port-forward to answer", || {
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", local_port)) else { return false };
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        reply.clear();
        conn.write_all(b"ping").is_ok() && conn.read_to_string(&mut reply).is_ok() && !reply.is_empty()
    });
    reply
}

/// Asserts success and returns stdout.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts failure and returns stderr.
pub fn fails(output: Output) -> String {
    assert!(!output.status.success(), "command unexpectedly succeeded: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A name unique to this test run, for namespaces and objects.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Creates a namespace directly as admin (not through Canopy).
pub fn admin_namespace(harness: &Harness, prefix: &str) -> String {
    let name = unique(prefix);
    ok(kubectl(&harness.kubectls()[0], Path::new(harness.var("ADMIN_KUBECONFIG")), &["create", "namespace", &name]));
    name
}

/// Waits until `check` holds, at most `limit`.
pub fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client certificate from the harness's client CA: CN `user`, O `group`.
pub fn client_identity(harness: &Harness, user: &str, group: Option<&str>) -> reqwest::Identity {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(harness.var("CLIENT_CA_KEY")).unwrap()).unwrap();
    let issuer =
        Issuer::from_ca_cert_pem(&std::fs::read_to_string(harness.var("CLIENT_CA_CERT")).unwrap(), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, user);
    if let Some(group) = group {
        params.distinguished_name.push(DnType::OrganizationName, group);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    reqwest::Identity::from_pem(format!("{}{}", cert.pem(), key.serialize_pem()).as_bytes()).unwrap()
}

/// Deletes the `physical` namespaces it holds as the admin when dropped, and waits until they
/// are gone, so the example tree's namespace lists hold for the next test (declare it after the
/// [`tree::changing`] guard, so it drops first).
pub struct NamespaceCleanup(pub Vec<String>);

impl Drop for NamespaceCleanup {
    fn drop(&mut self) {
        let admin = PathBuf::from(Harness::shared().var("ADMIN_KUBECONFIG"));
        for ns in &self.0 {
            let _ = kubectl(
                tenants::kubectl_bin(),
                &admin,
                &["delete", "namespace", ns, "--ignore-not-found", "--wait=false"],
            );
        }
        for ns in &self.0 {
            eventually(Duration::from_secs(60), "namespace deletion", || {
                !kubectl(tenants::kubectl_bin(), &admin, &["get", "namespace", ns]).status.success()
            });
        }
    }
}
