//! Wiring for the `canopy` commands: load config, connect upstream, bind, serve (TLS, or plain
//! loopback HTTP as a sidecar), drain. This is the program's edge, so errors here are `anyhow`
//! with context for the operator.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::admin::Admin;
use crate::audit::AuditSink;
use crate::auth::{Authenticator, FrontProxyNames, PodToken, StaticTokens, TokenReviewer};
use crate::config::Config;
use crate::discovery::scopes::DiscoveredScopes;
use crate::metrics::Metrics;
use crate::reconcile::{Reconciler, ReconcilerOptions};
use crate::server::body_limit::BodyLimitLayer;
use crate::server::limits::ConnectionLimits;
use crate::server::{ProxyService, listener, plain, proxy_stack, threads, tls};
use crate::tree::{ResourceScopes, Tree};
use crate::upstream::{Tunnels, Upstream};

/// `canopy serve`: runs until SIGTERM or SIGINT, then drains.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let upstream = Upstream::connect(&config.upstream).await?;
    let scopes = discovered_scopes(&config, &upstream).await?;
    let metrics = Metrics::new();
    let authenticator = authenticator(&config, &upstream, &metrics)?;
    let tls = listener::Tls {
        config: Arc::new(tls::server_config(&config.server)?),
        front_proxies: FrontProxyNames::new(config.authentication.front_proxy_names.iter().cloned()),
    };

    // Everything that can be wrong with the configuration has been checked; only now bind.
    let tcp = bind("server.listen", config.server.listen).await?;
    let admin_tcp = bind("server.adminListen", config.server.admin_listen).await?;
    tracing::info!(listen = %tcp.local_addr()?, admin = %admin_tcp.local_addr()?, "serving");
    let grace = config.server.shutdown_grace;
    let bound = Bound { tcp, admin: admin_tcp, scopes };
    // Connection slots are counted over all serving threads.
    let limits = ConnectionLimits::new(&config.server.limits, metrics.open_connections.clone());
    run(&config, upstream, metrics, authenticator, bound, Reconcile::Yes, move |tcp, service, tunnels, stop| {
        listener::serve(tcp, tls.clone(), service, stop, grace, tunnels, limits.clone())
    })
    .await
}

/// `canopy sidecar`: the same pipeline on plain HTTP on loopback, for a frontend in the same pod;
/// requests without a credential of their own act as the pod's token. The tree is materialized
/// by the `canopy serve` deployment, so the sidecar runs no reconciler and needs no more than
/// impersonation and TokenReview upstream.
pub async fn sidecar(config: Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.authentication.token_review.is_some() || config.authentication.token_file.is_some(),
        "{}: sidecar.tokenFile: its token can only be checked with authentication.tokenReview enabled \
         or an authentication.tokenFile",
        config.file.display()
    );
    let upstream = Upstream::connect(&config.upstream).await?;
    let scopes = discovered_scopes(&config, &upstream).await?;
    let pod_token = PodToken::load(&config.sidecar.token_file).await.context("sidecar.tokenFile")?;
    let metrics = Metrics::new();
    let authenticator = authenticator(&config, &upstream, &metrics)?.with_default_token(pod_token);

    let tcp = bind("sidecar.listen", config.sidecar.listen).await?;
    let admin_tcp = bind("server.adminListen", config.server.admin_listen).await?;
    tracing::info!(listen = %tcp.local_addr()?, admin = %admin_tcp.local_addr()?, "serving as a sidecar");
    let grace = config.server.shutdown_grace;
    let bound = Bound { tcp, admin: admin_tcp, scopes };
    let limits = ConnectionLimits::new(&config.server.limits, metrics.open_connections.clone());
    run(&config, upstream, metrics, authenticator, bound, Reconcile::No, move |tcp, service, tunnels, stop| {
        plain::serve(tcp, service, stop, grace, tunnels, limits.clone())
    })
    .await
}

/// Whether this process materializes the tree upstream.
#[derive(PartialEq)]
enum Reconcile {
    Yes,
    No,
}

/// The configured ways to authenticate, shared by `serve` and `sidecar`.
fn authenticator(config: &Config, upstream: &Upstream, metrics: &Metrics) -> anyhow::Result<Authenticator> {
    let static_tokens = match &config.authentication.token_file {
        Some(path) => Some(StaticTokens::load(path).context("authentication.tokenFile")?),
        None => None,
    };
    let token_review = config
        .authentication
        .token_review
        .map(|review| TokenReviewer::new(upstream.kube.clone(), review, metrics.token_review.clone()));
    Ok(Authenticator::new(static_tokens, token_review))
}

async fn bind(setting: &str, address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| format!("{setting}: cannot bind {address}"))
}

/// Follows upstream discovery for resource scopes, and checks the tree's `clusterResources`
/// against its first reading: an entry naming a namespaced resource (a custom one, which the
/// built-in table checked at load cannot know) stops the start with its config path.
async fn discovered_scopes(config: &Config, upstream: &Upstream) -> anyhow::Result<Arc<DiscoveredScopes>> {
    let scopes = DiscoveredScopes::start(upstream.kube.clone()).await;
    if let Some(table) = scopes.table() {
        config.tree.check_cluster_resources(&table).map_err(|e| anyhow::anyhow!("{}: {e}", config.file.display()))?;
    }
    Ok(scopes)
}

/// The sockets a command bound: the tenant-facing (or sidecar) listener and the admin port, and
/// the scopes discovery reports, checked before binding.
struct Bound {
    tcp: TcpListener,
    admin: TcpListener,
    scopes: Arc<DiscoveredScopes>,
}

/// Starts hot reload, the admin listener and (for `serve`) the reconciler on this thread, and
/// `listen` on `tcp` on each serving thread with a pipeline of its own; when SIGTERM or SIGINT
/// comes, tells them to stop, waits until they have drained, and stops the rest.
async fn run<L, F>(
    config: &Config,
    upstream: Upstream,
    metrics: Metrics,
    authenticator: Authenticator,
    bound: Bound,
    reconcile: Reconcile,
    listen: L,
) -> anyhow::Result<()>
where
    L: Fn(TcpListener, ProxyService, Tunnels, Stopping) -> F + Clone + Send + 'static,
    F: Future<Output = ()>,
{
    let Bound { tcp, admin: admin_tcp, scopes } = bound;
    let tunnels = Tunnels::new(metrics.clone());
    // Each request reads the newest tree from this channel; reloads publish into it.
    let (publish_tree, trees) = tokio::sync::watch::channel(following_upstream(&config.tree, &upstream, scopes));
    let loaded_text = tokio::fs::read(&config.file).await.unwrap_or_default();
    let reload = tokio::spawn(crate::config::reload::watch_tree(config.file.clone(), loaded_text, publish_tree));
    let audit = AuditSink::stdout().context("cannot start the audit writer")?;
    let threads =
        config.server.worker_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    // One body budget for the process, shared by every serving thread.
    let bodies = BodyLimitLayer::new(&config.server.limits);
    // One pipeline per serving thread, each with upstream connections of its own.
    let services = (0..threads)
        .map(|_| {
            let upstream = upstream.with_own_connections()?;
            let audit = Some(audit.clone());
            let (authenticator, trees, tunnels, metrics) =
                (authenticator.clone(), trees.clone(), tunnels.clone(), metrics.clone());
            Ok(proxy_stack(authenticator, trees, &upstream, tunnels, metrics, audit, bodies.clone()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The reconciler materializes the tree upstream; replicas elect one writer through a Lease.
    let (stop_reconciler, reconciler_stopped) = tokio::sync::oneshot::channel::<()>();
    let reconciler = (reconcile == Reconcile::Yes && !config.tree.nodes.is_empty()).then(|| {
        let reconciler = Reconciler::new(upstream.kube.clone(), trees, ReconcilerOptions::default());
        tokio::spawn(reconciler.run(async move {
            let _ = reconciler_stopped.await;
        }))
    });
    let admin = Admin { metrics, upstream: upstream.http.clone() };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = tokio::spawn(admin.serve(admin_tcp, async move {
        let _ = admin_stopped.await;
    }));

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let serving = threads::serve_on_threads(services, tcp, stopped, move |service, tcp, stop| {
        listen(tcp, service, tunnels.clone(), Box::pin(threads::stopping(stop)))
    });
    let served = serving.await.context("cannot start the serving threads");
    signal.abort();
    let _ = stop_admin.send(());
    let _ = stop_reconciler.send(());
    reload.abort();
    let _ = admin_task.await;
    if let Some(task) = reconciler {
        let _ = task.await;
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves when a serving thread is to stop accepting and drain.
type Stopping = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// `tree` with the scopes discovery reports and an index of the namespaces tenants created (none
/// to follow without a tree).
fn following_upstream(tree: &Arc<Tree>, upstream: &Upstream, scopes: Arc<DiscoveredScopes>) -> Arc<Tree> {
    let mut tree = (**tree).clone();
    tree.scopes = Some(scopes);
    if !tree.nodes.is_empty() {
        let index = crate::upstream::NamespaceIndex::start(upstream.kube.clone(), tree.owner_key());
        tree.live = Some(Arc::new(index));
    }
    Arc::new(tree)
}

/// `canopy kubeconfig`: a kubeconfig for `user` that points at this Canopy, in `view` if given.
pub fn kubeconfig(config: &Config, user: &str, token: Option<String>, view: Option<&str>) -> anyhow::Result<String> {
    let server = match view {
        Some(view) => {
            anyhow::ensure!(
                config.tree.node(view).is_some(),
                "view {view:?} is not a node of the tree in {}",
                config.file.display()
            );
            format!("{}/v/{view}", config.server.public_url)
        }
        None => config.server.public_url.clone(),
    };
    let token = match token {
        Some(token) => Some(token),
        None => match &config.authentication.token_file {
            Some(path) => StaticTokens::load(path)?.token_of(user).map(str::to_owned),
            None => None,
        },
    };
    let ca = tls::trust_anchor_pem(&config.server)?;
    let namespace = default_namespace(&config.tree, user, view);
    let rendered = crate::kubeconfig::render(&server, &ca, user, token.as_deref(), namespace.as_deref());
    Ok(serde_json::to_string_pretty(&rendered)?)
}

/// The namespace a kubeconfig's context names, so clients that assume `default` (which no view
/// holds) work in the view's first declared namespace: that of `view`, or of the user's single
/// home node.
fn default_namespace(tree: &Tree, user: &str, view: Option<&str>) -> Option<String> {
    let identity = crate::auth::Identity::new(user, Vec::<String>::new());
    let path = crate::request::ViewPath(view.map(str::to_owned));
    let node = crate::policy::resolve_view(tree, &identity, &path).ok()?;
    let physical = tree.subtree_namespaces(node).into_iter().next()?;
    crate::rewrite::ViewNames::new(tree, node).to_virtual(&physical)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("interrupt received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
