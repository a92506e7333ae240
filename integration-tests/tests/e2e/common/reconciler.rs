//! kube-rs clients of the harness and a reconciler running inside the test process, for the
//! suites that drive the reconciler directly.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use canopy::reconcile::{Reconciler, ReconcilerOptions};
use canopy::tree::Tree;
use kube::Client;
use tokio::sync::{oneshot, watch};

use super::Harness;

/// A kube-rs client from a kubeconfig file.
pub async fn client(kubeconfig: &str) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

/// The harness admin's client.
pub async fn admin() -> Client {
    client(Harness::shared().var("ADMIN_KUBECONFIG")).await
}

/// A reconciler running in this process with Canopy's upstream identity.
pub struct Running {
    pub trees: watch::Sender<Arc<Tree>>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    pub identity: String,
}

impl Running {
    pub async fn start(tree: Arc<Tree>, lease_namespace: &str, identity: &str) -> Running {
        // Reconciler logs, shown with a failing test's output.
        let filter =
            tracing_subscriber::EnvFilter::new(std::env::var("CANOPY_LOG").unwrap_or_else(|_| "canopy=info".into()));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        let client = client(Harness::shared().var("CANOPY_UPSTREAM_KUBECONFIG")).await;
        let (trees, rx) = watch::channel(tree);
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ReconcilerOptions {
            lease_namespace: lease_namespace.to_owned(),
            identity: identity.to_owned(),
            resync: Duration::from_secs(30),
        };
        let task = tokio::spawn(Reconciler::new(client, rx, options).run(async move {
            let _ = stopped.await;
        }));
        Running { trees, stop, task, identity: identity.to_owned() }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("reconciler did not stop").unwrap();
    }
}

/// Polls `check` until it holds, at most `limit`; returns how long it took.
pub async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}
