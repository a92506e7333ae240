//! One reconcile pass: read what carries the tree's labels, compute [`desired`], then make the
//! apiserver match — creating what is missing, server-side applying what drifted, deleting
//! Canopy's RoleBindings, ClusterRoles and link copies that are no longer wanted. Objects without
//! Canopy's labels are never changed: a name already taken by one is reported and left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ReconcileError;
use super::desired::{self, Desired, ExistingNamespace};
use super::lease::{self, Leadership};
use crate::tree::Tree;

/// Field manager of Canopy's server-side applies.
pub const FIELD_MANAGER: &str = "canopy";

/// What a pass changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
}

/// One pass over `tree`, writing only while `leadership` holds.
pub async fn pass(client: &Client, tree: &Tree, leadership: &Leadership) -> Result<Summary, ReconcileError> {
    let mut pass = Pass { client, leadership, domain: &tree.domain, summary: Summary::default(), failed: 0 };
    let listed = pass.list::<Namespace>(Api::all(client.clone()), desired::namespace_selector(&tree.domain)).await?;
    let existing: Vec<ExistingNamespace> =
        listed.iter().map(|ns| ExistingNamespace { name: ns.name_any(), labels: ns.labels().clone() }).collect();
    let mut terminating: BTreeSet<String> =
        listed.iter().filter(|ns| is_terminating(ns)).map(|ns| ns.name_any()).collect();
    let listed: BTreeMap<String, Namespace> = listed.into_iter().map(|ns| (ns.name_any(), ns)).collect();
    let desired = desired::desired(tree, &existing);

    for (name, labels) in &desired.namespaces {
        if let Some(ns) = pass.namespace(name, labels, listed.get(name)).await?
            && is_terminating(&ns)
        {
            terminating.insert(name.clone());
        }
    }
    pass.cluster_roles(&desired).await?;
    pass.role_bindings(&desired, &terminating).await?;
    pass.prune_cluster_roles(&desired).await?;
    pass.links(tree, &existing, &terminating).await?;
    match pass.failed {
        0 => Ok(pass.summary),
        failed => Err(ReconcileError::Incomplete { failed }),
    }
}

fn is_terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

/// One pass's clients and tally; the links' part of a pass is in [`super::links`].
pub(super) struct Pass<'a> {
    pub(super) client: &'a Client,
    leadership: &'a Leadership,
    pub(super) domain: &'a str,
    pub(super) summary: Summary,
    pub(super) failed: usize,
}

impl Pass<'_> {
    pub(super) async fn list<K>(&self, api: Api<K>, selector: String) -> Result<Vec<K>, ReconcileError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        let params = ListParams::default().labels(&selector);
        match api.list(&params).await {
            Ok(list) => Ok(list.items),
            Err(source) => Err(ReconcileError::List { kind: K::kind(&()).into_owned(), selector, source }),
        }
    }

    /// Every write starts here: a replica that is not (or no longer) the leader stops the pass.
    pub(super) fn may_write(&self) -> Result<(), ReconcileError> {
        if lease::leading(self.leadership) { Ok(()) } else { Err(ReconcileError::NotLeader) }
    }

    pub(super) fn failed(
        &mut self,
        action: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        error: &kube::Error,
    ) {
        tracing::warn!(action, kind, namespace, name, %error, "reconcile write failed");
        self.failed += 1;
    }

    /// Makes `name` exist with exactly Canopy's `labels` for the tree's domain; other labels stay.
    async fn namespace(
        &mut self,
        name: &str,
        labels: &BTreeMap<String, String>,
        current: Option<&Namespace>,
    ) -> Result<Option<Namespace>, ReconcileError> {
        if let Some(ns) = current
            && self.canopy_labels(ns) == *labels
        {
            return Ok(Some(ns.clone()));
        }
        self.may_write()?;
        let api: Api<Namespace> = Api::all(self.client.clone());
        let want = Namespace {
            metadata: ObjectMeta { name: Some(name.to_owned()), labels: Some(labels.clone()), ..ObjectMeta::default() },
            ..Namespace::default()
        };
        let applied = match api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&want)).await {
            Ok(ns) => ns,
            Err(error) => {
                self.failed("apply", "Namespace", None, name, &error);
                return Ok(None);
            }
        };
        if current.is_some() {
            self.summary.updated += 1
        } else {
            self.summary.created += 1
        }
        // Tree labels set by another manager (a namespace adopted from elsewhere) would place it
        // in a second subtree; apply cannot remove what it does not own, a merge patch can.
        let stray: serde_json::Map<String, serde_json::Value> = self
            .canopy_labels(&applied)
            .into_keys()
            .filter(|key| !labels.contains_key(key))
            .map(|key| (key, serde_json::Value::Null))
            .collect();
        if stray.is_empty() {
            return Ok(Some(applied));
        }
        self.may_write()?;
        let patch = serde_json::json!({ "metadata": { "labels": stray } });
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(ns) => Ok(Some(ns)),
            Err(error) => {
                self.failed("remove stray labels", "Namespace", None, name, &error);
                Ok(Some(applied))
            }
        }
    }

    fn canopy_labels(&self, ns: &Namespace) -> BTreeMap<String, String> {
        ns.labels()
            .iter()
            .filter(|(key, _)| desired::is_canopy_namespace_label(self.domain, key))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    async fn cluster_roles(&mut self, desired: &Desired) -> Result<(), ReconcileError> {
        let api: Api<ClusterRole> = Api::all(self.client.clone());
        let existing = self.list(api.clone(), desired::cluster_role_selector(self.domain)).await?;
        let existing: BTreeMap<String, ClusterRole> = existing.into_iter().map(|r| (r.name_any(), r)).collect();
        for (name, want) in &desired.cluster_roles {
            let current = existing.get(name);
            let same = current.is_some_and(|c| c.rules == want.rules && has_labels(&c.metadata, &want.metadata));
            if !same {
                self.ensure(&api, name, want, current.is_some()).await?;
            }
        }
        Ok(())
    }

    async fn prune_cluster_roles(&mut self, desired: &Desired) -> Result<(), ReconcileError> {
        let api: Api<ClusterRole> = Api::all(self.client.clone());
        for role in self.list(api.clone(), desired::cluster_role_selector(self.domain)).await? {
            let name = role.name_any();
            if !desired.cluster_roles.contains_key(&name) {
                self.delete(&api, None, &name).await?;
            }
        }
        Ok(())
    }

    async fn role_bindings(&mut self, desired: &Desired, terminating: &BTreeSet<String>) -> Result<(), ReconcileError> {
        let all: Api<RoleBinding> = Api::all(self.client.clone());
        let existing = self.list(all, desired::binding_selector(self.domain)).await?;
        let existing: BTreeMap<(String, String), RoleBinding> =
            existing.into_iter().map(|b| ((b.namespace().unwrap_or_default(), b.name_any()), b)).collect();
        for ((ns, name), want) in &desired.role_bindings {
            if terminating.contains(ns) {
                continue;
            }
            let api: Api<RoleBinding> = Api::namespaced(self.client.clone(), ns);
            let current = existing.get(&(ns.clone(), name.clone()));
            match current {
                Some(c) if c.role_ref == want.role_ref => {
                    if c.subjects != want.subjects || !has_labels(&c.metadata, &want.metadata) {
                        self.ensure(&api, name, want, true).await?;
                    }
                }
                // roleRef is immutable: replace the binding.
                Some(_) => {
                    self.delete(&api, Some(ns), name).await?;
                    self.ensure(&api, name, want, false).await?;
                }
                None => self.ensure(&api, name, want, false).await?,
            }
        }
        for (ns, name) in existing.keys() {
            if !desired.role_bindings.contains_key(&(ns.clone(), name.clone())) {
                self.delete(&Api::<RoleBinding>::namespaced(self.client.clone(), ns), Some(ns), name).await?;
            }
        }
        Ok(())
    }

    /// Creates `want`, or server-side applies it over Canopy's own object when `managed`.
    pub(super) async fn ensure<K>(
        &mut self,
        api: &Api<K>,
        name: &str,
        want: &K,
        managed: bool,
    ) -> Result<(), ReconcileError>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    {
        self.may_write()?;
        let kind = K::kind(&());
        let namespace = want.meta().namespace.as_deref();
        if managed {
            match api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(want)).await {
                Ok(_) => self.summary.updated += 1,
                Err(error) => self.failed("apply", &kind, namespace, name, &error),
            }
            return Ok(());
        }
        match api
            .create(&PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..Default::default() }, want)
            .await
        {
            Ok(_) => self.summary.created += 1,
            // Someone else's object holds the name; it is not Canopy's to change.
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                tracing::warn!(%kind, namespace, name, "name taken by an object Canopy does not manage; left alone");
            }
            Err(error) => self.failed("create", &kind, namespace, name, &error),
        }
        Ok(())
    }

    pub(super) async fn delete<K>(
        &mut self,
        api: &Api<K>,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ReconcileError>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        self.may_write()?;
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => self.summary.deleted += 1,
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(error) => self.failed("delete", &K::kind(&()), namespace, name, &error),
        }
        Ok(())
    }
}

/// Whether `current` carries every label of `want`.
fn has_labels(current: &ObjectMeta, want: &ObjectMeta) -> bool {
    let empty = BTreeMap::new();
    let have = current.labels.as_ref().unwrap_or(&empty);
    want.labels.iter().flatten().all(|(k, v)| have.get(k) == Some(v))
}
