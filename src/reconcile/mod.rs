//! The reconciler: materializes the tree upstream. Every declared namespace exists with exactly
//! Canopy's labels for its owner (server-side apply, field manager `canopy`, so other labels stay);
//! each member has a RoleBinding in every namespace of its subtree — declared, or labelled into it
//! by Canopy's proxy when a tenant created it; each custom role has a ClusterRole
//! `canopy:role:<name>`. RoleBindings and ClusterRoles Canopy labelled for the tree's domain and
//! no longer wants are deleted; nothing without Canopy's labels is ever changed. Namespaces are
//! never deleted, nor stripped of labels when undeclared: they hold tenant data, and tenants create
//! namespaces of their own.
//!
//! Linked objects get a read-only copy in every namespace of their node's subtree ([`links`]).
//!
//! One replica writes at a time, elected through the Lease `canopy-reconciler` ([`lease`]).
//! Rather than a kube-runtime `Controller` per kind, a whole pass runs on every tree reload, on
//! every change kube-runtime watchers see to Canopy-labelled namespaces, RoleBindings,
//! ClusterRoles and link copies (so deletions and edits are repaired at once) and to linked
//! sources, and every `resync`. Passes are
//! cheap — three labelled lists, then writes only where something differs — and one pass over the
//! whole desired state is simpler to reason about than per-object queues that must agree on it.
//! A failed pass is logged and retried with exponential backoff.

mod apply;
pub mod desired;
mod lease;
mod links;

pub use apply::{FIELD_MANAGER, Summary};
pub use desired::{Desired, ExistingNamespace, binding_name, cluster_role_name, desired};
pub use lease::LEASE_NAME;

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::tree::Tree;

/// Wait after a watch event before a pass, so a burst of changes makes one pass.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// First retry delay after a failed pass; doubled per failure up to `resync`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Why a pass did not complete; the pass is retried.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Reading the current state failed (upstream unreachable, or missing RBAC).
    #[error("cannot list {kind} with selector {selector:?}: {source}")]
    List {
        kind: String,
        selector: String,
        #[source]
        source: kube::Error,
    },
    /// Some writes failed; each was logged.
    #[error("{failed} writes failed")]
    Incomplete { failed: usize },
    /// Leadership lapsed during the pass, which stopped writing.
    #[error("no longer the leader")]
    NotLeader,
}

/// How a [`Reconciler`] runs.
#[derive(Debug, Clone)]
pub struct ReconcilerOptions {
    /// Namespace of the Lease `canopy-reconciler`.
    pub lease_namespace: String,
    /// This replica's name in the Lease; unique per replica.
    pub identity: String,
    /// Interval of full passes when nothing else triggers one.
    pub resync: Duration,
}

impl Default for ReconcilerOptions {
    fn default() -> Self {
        Self {
            lease_namespace: "kube-system".to_owned(),
            identity: default_identity(),
            resync: Duration::from_secs(30),
        }
    }
}

/// `<hostname>_<random>`: the pod name in a cluster, made unique across restarts.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "canopy".to_owned());
    let mut random = std::hash::RandomState::new().build_hasher();
    random.write_u32(std::process::id());
    format!("{host}_{:08x}", random.finish() as u32)
}

/// Keeps the upstream cluster in line with the latest tree.
pub struct Reconciler {
    client: Client,
    trees: watch::Receiver<Arc<Tree>>,
    options: ReconcilerOptions,
}

impl Reconciler {
    /// `trees` carries every reloaded tree; the current value is reconciled first.
    pub fn new(client: Client, trees: watch::Receiver<Arc<Tree>>, options: ReconcilerOptions) -> Self {
        Self { client, trees, options }
    }

    /// Campaigns for the lease and reconciles while leading, until `shutdown` resolves; then
    /// releases the lease so another replica takes over without waiting for it to expire.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let cancel = CancellationToken::new();
        let (leader_tx, mut leadership) = watch::channel(None);
        let elector = lease::Elector::new(self.client.clone(), &self.options.lease_namespace, self.options.identity);
        let elector = tokio::spawn(elector.run(leader_tx, cancel.clone()));
        let trigger = Arc::new(Notify::new());
        let drift = tokio::spawn(watch_for_drift(self.client.clone(), trigger.clone(), cancel.clone()));
        let sources = self.trees.clone();
        let sources = tokio::spawn(links::watch_sources(self.client.clone(), sources, trigger.clone(), cancel.clone()));

        let mut shutdown = pin!(shutdown);
        let resync = self.options.resync;
        let (mut trees_open, mut elector_open) = (true, true);
        let mut failures: u32 = 0;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                changed = self.trees.changed(), if trees_open => match changed {
                    Ok(()) => next = Instant::now(),
                    Err(_) => trees_open = false,
                },
                changed = leadership.changed(), if elector_open => match changed {
                    Ok(()) if lease::leading(&leadership) => next = Instant::now(),
                    Ok(()) => {}
                    Err(_) => elector_open = false,
                },
                // While backing off, drift caused by the failing pass must not cut the wait short.
                () = trigger.notified() => if failures == 0 {
                    next = next.min(Instant::now() + DEBOUNCE);
                },
                () = tokio::time::sleep_until(next) => {
                    next = Instant::now() + resync;
                    if !lease::leading(&leadership) {
                        continue;
                    }
                    let tree = self.trees.borrow_and_update().clone();
                    let result = tokio::select! {
                        () = &mut shutdown => break,
                        result = apply::pass(&self.client, &tree, &leadership) => result,
                    };
                    match result {
                        Ok(summary) => {
                            failures = 0;
                            if summary != Summary::default() {
                                tracing::info!(
                                    created = summary.created,
                                    updated = summary.updated,
                                    deleted = summary.deleted,
                                    "reconciled"
                                );
                            }
                        }
                        Err(ReconcileError::NotLeader) => tracing::info!("stopped reconciling: lease lost"),
                        Err(error) => {
                            failures = failures.saturating_add(1);
                            let delay = backoff(failures, resync);
                            tracing::warn!(%error, retry_in = ?delay, "reconcile pass failed");
                            next = Instant::now() + delay;
                        }
                    }
                },
            }
        }
        cancel.cancel();
        let _ = drift.await;
        let _ = sources.await;
        let _ = elector.await;
    }
}

/// `FIRST_RETRY * 2^(failures - 1)`, at most `cap`.
fn backoff(failures: u32, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
    FIRST_RETRY.saturating_mul(factor).min(cap)
}

/// Wakes the reconciler whenever a Canopy-labelled namespace, RoleBinding, ClusterRole or link
/// copy changes or disappears.
async fn watch_for_drift(client: Client, trigger: Arc<Notify>, cancel: CancellationToken) {
    let selector = format!("{}={}", desired::MANAGED_BY, desired::MANAGER);
    let changes = futures_util::stream::select_all([
        changes::<Namespace>(&client, &selector),
        changes::<RoleBinding>(&client, &selector),
        changes::<ClusterRole>(&client, &selector),
        changes::<ConfigMap>(&client, &selector),
        changes::<Secret>(&client, &selector),
    ]);
    let mut changes = pin!(changes);
    loop {
        let change = tokio::select! {
            () = cancel.cancelled() => return,
            change = changes.next() => change,
        };
        match change {
            Some(Ok(true)) => trigger.notify_one(),
            Some(Ok(false)) => {}
            Some(Err(error)) => tracing::warn!(%error, "reconciler watch failed; retrying"),
            None => return,
        }
    }
}

/// Whether each watch event is a change (the replays of a relist are not, its end is).
fn changes<K>(client: &Client, selector: &str) -> BoxStream<'static, Result<bool, watcher::Error>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    // Metadata only: the event is the news, the pass reads the objects itself.
    let api = Api::<PartialObjectMeta<K>>::all(client.clone());
    watcher(api, watcher::Config::default().labels(selector))
        .default_backoff()
        .map(|event| {
            event.map(|e| matches!(e, watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone))
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_resync() {
        let cap = Duration::from_secs(30);
        let delays: Vec<u64> = (1..=7).map(|n| backoff(n, cap).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(200, cap), cap);
    }

    #[test]
    fn identities_differ_per_reconciler() {
        assert_ne!(default_identity(), default_identity());
    }
}
