//! Namespaces tenants created through Canopy: not declared in the config, they are known by the
//! tree's owner label. A kube-runtime reflector keeps the labelled namespaces in memory, so
//! deciding whether a view owns one costs a map lookup, and a namespace deleted upstream stops
//! being reachable as soon as the watch reports it.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::tree::LiveNamespaces;

/// The namespaces carrying a tree's owner label.
#[derive(Clone)]
pub struct NamespaceIndex {
    store: Store<Namespace>,
    owner_key: String,
}

impl std::fmt::Debug for NamespaceIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceIndex").field("owner_key", &self.owner_key).finish_non_exhaustive()
    }
}

impl NamespaceIndex {
    /// Starts following the namespaces labelled with `owner_key` (as Canopy itself); the task
    /// runs for the life of the process, retrying with backoff.
    pub fn start(client: kube::Client, owner_key: String) -> Self {
        let (store, writer) = reflector::store();
        let api: Api<Namespace> = Api::all(client);
        let stream = watcher(api, watcher::Config::default().labels(&owner_key)).default_backoff();
        tokio::spawn(reflector::reflector(writer, stream).for_each(|event| async move {
            if let Err(error) = event {
                tracing::warn!(%error, "watching tenant-created namespaces");
            }
        }));
        Self { store, owner_key }
    }
}

impl LiveNamespaces for NamespaceIndex {
    fn owner_of(&self, physical: &str) -> Option<String> {
        let namespace = self.store.get(&ObjectRef::new(physical))?;
        namespace.metadata.labels.as_ref()?.get(&self.owner_key).cloned()
    }

    fn all(&self) -> Vec<(String, String)> {
        self.store
            .state()
            .iter()
            .filter_map(|ns| {
                let owner = ns.metadata.labels.as_ref()?.get(&self.owner_key)?.clone();
                Some((ns.metadata.name.clone()?, owner))
            })
            .collect()
    }
}
