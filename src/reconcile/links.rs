//! Linked objects upstream: every namespace of a node's subtree — declared, or created by
//! tenants — holds a copy of each object the node (or an ancestor) links, with the source's data
//! (and, for a Secret, its type) but none of its metadata: no managedFields, resourceVersion,
//! uid, ownerReferences, labels or annotations, only Canopy's managed-by label and
//! `link.<domain>/source` (see [`crate::tree::links`]). [`desired_copies`] is a pure function of
//! the tree, the labelled namespaces and the sources as read; [`Pass::links`] makes the
//! apiserver match: creates what is missing, replaces what differs, deletes Canopy's copies that
//! are no longer wanted — of a link dropped from the config, in a namespace that left the
//! subtree, of a source that no longer exists or no longer has the declared type. A source that
//! cannot be read leaves its copies as they are. [`watch_sources`] wakes the reconciler as soon
//! as a source changes, so copies follow within the debounce of one pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::pin::pin;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::ReconcileError;
use super::apply::{FIELD_MANAGER, Pass};
use super::desired::{ExistingNamespace, MANAGED_BY, MANAGER};
use crate::tree::links::{Link, LinkKind, parse_source_annotation, source_annotation, source_key, source_label};
use crate::tree::{NodeId, Tree};

/// The type a Secret has when it names none.
const DEFAULT_SECRET_TYPE: &str = "Opaque";

/// A source object: kind, namespace, name.
type SourceRef = (LinkKind, String, String);

/// The sources of a tree's links as read upstream.
#[derive(Debug, Default)]
struct Sources {
    configmaps: BTreeMap<(String, String), ConfigMap>,
    secrets: BTreeMap<(String, String), Secret>,
    /// Sources that could not be read: their copies are left as they are.
    unreadable: BTreeSet<SourceRef>,
}

/// The copies a tree asks for, by (namespace, name).
#[derive(Debug, Default)]
struct Copies {
    configmaps: BTreeMap<(String, String), ConfigMap>,
    secrets: BTreeMap<(String, String), Secret>,
}

/// Every source the tree links, once.
fn sources_of(tree: &Tree) -> BTreeSet<SourceRef> {
    tree.nodes.iter().flat_map(|n| &n.links).map(|l| (l.kind, l.namespace.clone(), l.name.clone())).collect()
}

/// The copies `tree` asks for, given the namespaces upstream that carry its labels (`existing`)
/// and the sources as read: one per link and namespace of the link's subtree (see
/// [`Tree::links_into`]), where the source exists with the declared type.
fn desired_copies(tree: &Tree, existing: &[ExistingNamespace], sources: &Sources) -> Copies {
    let owner_key = tree.owner_key();
    // Owned as the proxy sees it (`Tree::owner`), so copies are where tenants are kept off them.
    let owner = |ns: &ExistingNamespace| {
        tree.declared(&ns.name)
            .map(|(node, _)| node)
            .or_else(|| tree.labelled_owner(&ns.name, ns.labels.get(&owner_key)?))
    };
    let declared =
        tree.nodes.iter().enumerate().flat_map(|(id, n)| n.namespaces.iter().map(move |ns| (ns.physical.as_str(), id)));
    let created = existing.iter().filter_map(|ns| Some((ns.name.as_str(), owner(ns)?)));
    let namespaces: BTreeMap<&str, NodeId> = created.chain(declared).collect();
    let mut copies = Copies::default();
    for (namespace, owner) in namespaces {
        for (_, link) in tree.links_into(namespace, owner) {
            let source = (link.namespace.clone(), link.name.clone());
            let key = (namespace.to_owned(), link.copy_name.clone());
            let metadata = copy_metadata(&tree.domain, link, namespace);
            match link.kind {
                LinkKind::ConfigMap => {
                    if let Some(source) = sources.configmaps.get(&source) {
                        copies.configmaps.insert(key, copy_configmap(source, metadata));
                    }
                }
                LinkKind::Secret => {
                    if let Some(source) = sources.secrets.get(&source)
                        && link.secret_type.as_deref() == Some(secret_type(source))
                    {
                        copies.secrets.insert(key, copy_secret(source, metadata));
                    }
                }
            }
        }
    }
    copies
}

fn copy_metadata(domain: &str, link: &Link, namespace: &str) -> ObjectMeta {
    let key = source_key(domain);
    ObjectMeta {
        name: Some(link.copy_name.clone()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (MANAGED_BY.to_owned(), MANAGER.to_owned()),
            (key.clone(), source_label(Some(&link.namespace), &link.name)),
        ])),
        annotations: Some(BTreeMap::from([(key, source_annotation(Some(&link.namespace), &link.name))])),
        ..ObjectMeta::default()
    }
}

fn copy_configmap(source: &ConfigMap, metadata: ObjectMeta) -> ConfigMap {
    ConfigMap { metadata, data: source.data.clone(), binary_data: source.binary_data.clone(), immutable: None }
}

fn copy_secret(source: &Secret, metadata: ObjectMeta) -> Secret {
    Secret {
        metadata,
        data: source.data.clone(),
        type_: Some(secret_type(source).to_owned()),
        string_data: None,
        immutable: None,
    }
}

fn secret_type(secret: &Secret) -> &str {
    secret.type_.as_deref().filter(|t| !t.is_empty()).unwrap_or(DEFAULT_SECRET_TYPE)
}

/// What a copy holds, for comparing it with the desired one.
trait Linked:
    Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Serialize + DeserializeOwned + Debug
{
    /// The link kind of this type.
    const KIND: LinkKind;
    /// Same data (and type).
    fn same_content(&self, other: &Self) -> bool;
    /// Whether `self` can be updated into `other` (a Secret's type is immutable).
    fn same_type(&self, other: &Self) -> bool;
}

impl Linked for ConfigMap {
    const KIND: LinkKind = LinkKind::ConfigMap;
    fn same_content(&self, other: &Self) -> bool {
        self.data == other.data && self.binary_data == other.binary_data
    }
    fn same_type(&self, _: &Self) -> bool {
        true
    }
}

impl Linked for Secret {
    const KIND: LinkKind = LinkKind::Secret;
    fn same_content(&self, other: &Self) -> bool {
        self.data == other.data
    }
    fn same_type(&self, other: &Self) -> bool {
        secret_type(self) == secret_type(other)
    }
}

/// Whether `have` already is `want`: content, labels and annotations.
fn up_to_date<K: Linked>(have: &K, want: &K) -> bool {
    have.same_content(want)
        && have.meta().labels == want.meta().labels
        && have.meta().annotations == want.meta().annotations
}

impl Pass<'_> {
    /// Makes the link copies upstream match `tree`; `existing` are the namespaces carrying its
    /// labels, `terminating` those being deleted (left alone).
    pub(super) async fn links(
        &mut self,
        tree: &Tree,
        existing: &[ExistingNamespace],
        terminating: &BTreeSet<String>,
    ) -> Result<(), ReconcileError> {
        let key = source_key(self.domain);
        let selector = format!("{MANAGED_BY}={MANAGER},{key}");
        // Listed even when the tree links nothing: copies of dropped links go.
        let configmaps = self.list(Api::<ConfigMap>::all(self.client.clone()), selector.clone()).await?;
        let secrets = self.list(Api::<Secret>::all(self.client.clone()), selector).await?;
        let sources = self.read_sources(tree).await;
        let desired = desired_copies(tree, existing, &sources);
        self.sync(&desired.configmaps, configmaps, &sources.unreadable, terminating, &key).await?;
        self.sync(&desired.secrets, secrets, &sources.unreadable, terminating, &key).await
    }

    /// Reads every source; a failed read is counted and its copies left alone.
    async fn read_sources(&mut self, tree: &Tree) -> Sources {
        let mut sources = Sources::default();
        for (kind, namespace, name) in sources_of(tree) {
            let at = (namespace.clone(), name.clone());
            let found = match kind {
                LinkKind::ConfigMap => read(self.client, &at).await.map(|s| {
                    s.map(|s| {
                        sources.configmaps.insert(at.clone(), s);
                    })
                }),
                LinkKind::Secret => read(self.client, &at).await.map(|s| {
                    s.map(|s| {
                        sources.secrets.insert(at.clone(), s);
                    })
                }),
            };
            match found {
                Ok(Some(_)) => {}
                Ok(None) => {
                    tracing::warn!(kind = kind.name(), %namespace, %name, "linked source does not exist; no copies")
                }
                Err(error) => {
                    tracing::warn!(kind = kind.name(), %namespace, %name, %error, "cannot read a linked source");
                    self.failed += 1;
                    sources.unreadable.insert((kind, namespace, name));
                }
            }
        }
        for link in tree.nodes.iter().flat_map(|n| &n.links) {
            if let Some(source) = sources.secrets.get(&(link.namespace.clone(), link.name.clone()))
                && link.secret_type.as_deref() != Some(secret_type(source))
            {
                tracing::warn!(
                    link = %link.at,
                    declared = link.secret_type.as_deref(),
                    actual = secret_type(source),
                    "linked Secret has another type than the config declares; no copies"
                );
            }
        }
        sources
    }

    /// Creates, replaces and deletes copies of one kind so that `current` becomes `desired`.
    async fn sync<K: Linked>(
        &mut self,
        desired: &BTreeMap<(String, String), K>,
        current: Vec<K>,
        unreadable: &BTreeSet<SourceRef>,
        terminating: &BTreeSet<String>,
        key: &str,
    ) -> Result<(), ReconcileError> {
        let current: BTreeMap<(String, String), K> =
            current.into_iter().map(|c| ((c.namespace().unwrap_or_default(), c.name_any()), c)).collect();
        for ((namespace, name), want) in desired {
            if terminating.contains(namespace) {
                continue;
            }
            let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
            match current.get(&(namespace.clone(), name.clone())) {
                None => self.ensure(&api, name, want, false).await?,
                Some(have) if !have.same_type(want) => {
                    self.delete(&api, Some(namespace), name).await?;
                    self.ensure(&api, name, want, false).await?;
                }
                Some(have) if !up_to_date(have, want) => self.replace(&api, have, want).await?,
                Some(_) => {}
            }
        }
        for ((namespace, name), have) in &current {
            if desired.contains_key(&(namespace.clone(), name.clone())) || terminating.contains(namespace) {
                continue;
            }
            let source = have.annotations().get(key).map(|a| parse_source_annotation(a));
            let unreadable = source.is_some_and(|(ns, source)| {
                unreadable.contains(&(K::KIND, ns.unwrap_or_default().to_owned(), source.to_owned()))
            });
            if !unreadable {
                self.delete(&Api::<K>::namespaced(self.client.clone(), namespace), Some(namespace), name).await?;
            }
        }
        Ok(())
    }

    /// Replaces the copy `have` with `want`, on `have`'s resourceVersion: labels or annotations
    /// someone added are dropped, and a concurrent change makes the write fail (retried).
    async fn replace<K: Linked>(&mut self, api: &Api<K>, have: &K, want: &K) -> Result<(), ReconcileError> {
        self.may_write()?;
        let mut want = want.clone();
        want.meta_mut().resource_version = have.meta().resource_version.clone();
        let name = have.name_any();
        let params = PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() };
        match api.replace(&name, &params, &want).await {
            Ok(_) => self.summary.updated += 1,
            Err(error) => self.failed("replace", K::KIND.name(), want.meta().namespace.as_deref(), &name, &error),
        }
        Ok(())
    }
}

/// The object `name` in `namespace`, if it exists.
async fn read<K: Linked>(client: &Client, (namespace, name): &(String, String)) -> Result<Option<K>, kube::Error> {
    Api::<K>::namespaced(client.clone(), namespace).get_opt(name).await
}

/// Wakes the reconciler whenever a linked source changes or appears or goes, following the
/// sources of the newest tree in `trees`.
pub(super) async fn watch_sources(
    client: Client,
    mut trees: watch::Receiver<Arc<Tree>>,
    trigger: Arc<Notify>,
    cancel: CancellationToken,
) {
    loop {
        let sources = sources_of(&trees.borrow_and_update());
        let watching = !sources.is_empty();
        let changes = futures_util::stream::select_all(sources.iter().map(|s| source_changes(&client, s)));
        let mut changes = pin!(changes);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = trees.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if sources_of(&trees.borrow()) != sources {
                        break;
                    }
                },
                change = changes.next(), if watching => match change {
                    Some(Ok(true)) => trigger.notify_one(),
                    Some(Ok(false)) => {}
                    Some(Err(error)) => tracing::warn!(%error, "watching linked sources failed; retrying"),
                    // The watches retry forever; ending is only possible once cancelled.
                    None => return,
                },
            }
        }
    }
}

/// Whether each metadata watch event about one source is a change.
fn source_changes(
    client: &Client,
    (kind, namespace, name): &SourceRef,
) -> BoxStream<'static, Result<bool, watcher::Error>> {
    // Metadata only: the event is the news, the pass reads the source itself.
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    match kind {
        LinkKind::ConfigMap => {
            let api = Api::<PartialObjectMeta<ConfigMap>>::namespaced(client.clone(), namespace);
            watcher(api, config).default_backoff().map(is_change).boxed()
        }
        LinkKind::Secret => {
            let api = Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), namespace);
            watcher(api, config).default_backoff().map(is_change).boxed()
        }
    }
}

/// A watch event that tells of a change (the replays of a relist do not, its end does).
fn is_change<K>(event: Result<watcher::Event<K>, watcher::Error>) -> Result<bool, watcher::Error> {
    event.map(|e| matches!(e, watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;
    use crate::config::raw_tree::RawTree;
    use crate::tree::links::tests::TREE;

    fn tree() -> Tree {
        let raw: RawTree = serde_saphyr::from_str(TREE).unwrap();
        Tree::compile(&raw, "tree").unwrap()
    }

    fn metadata(namespace: &str, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            uid: Some("uid-1".into()),
            resource_version: Some("42".into()),
            labels: Some(BTreeMap::from([("team".into(), "platform".into())])),
            annotations: Some(BTreeMap::from([("note".into(), "in acme-shared".into())])),
            owner_references: Some(vec![OwnerReference { name: "owner".into(), ..OwnerReference::default() }]),
            ..ObjectMeta::default()
        }
    }

    fn sources() -> Sources {
        let data = |v: &str| Some(BTreeMap::from([("k".to_owned(), v.to_owned())]));
        let mut sources = Sources::default();
        for (ns, name) in [("platform", "ca-bundle"), ("acme-shared", "settings")] {
            let source = ConfigMap { metadata: metadata(ns, name), data: data(name), ..ConfigMap::default() };
            sources.configmaps.insert((ns.into(), name.into()), source);
        }
        let secret = Secret {
            metadata: metadata("platform", "registry"),
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(BTreeMap::from([(".dockerconfigjson".to_owned(), ByteString(b"{}".to_vec()))])),
            ..Secret::default()
        };
        sources.secrets.insert(("platform".into(), "registry".into()), secret);
        sources
    }

    fn keys<V>(map: &BTreeMap<(String, String), V>) -> Vec<String> {
        map.keys().map(|(ns, name)| format!("{ns}/{name}")).collect()
    }

    #[test]
    fn every_namespace_of_the_subtree_gets_a_copy() {
        let tree = tree();
        let web = tree.node("acme/web").unwrap();
        // A namespace a tenant created under acme/web, and one labelled for web without its prefix.
        let created =
            ExistingNamespace { name: "acme-web-feature".into(), labels: tree.labels(web).for_owned_namespace() };
        let stray = ExistingNamespace { name: "elsewhere".into(), labels: created.labels.clone() };
        let copies = desired_copies(&tree, &[created, stray], &sources());
        assert_eq!(
            keys(&copies.configmaps),
            [
                "acme-data-warehouse/ca-bundle",
                "acme-shared/ca-bundle",
                "acme-web-dev/ca-bundle",
                "acme-web-dev/settings",
                "acme-web-feature/ca-bundle",
                "acme-web-feature/settings",
                "acme-web-prod/ca-bundle",
                "acme-web-prod/settings",
            ]
        );
        // The registry secret's type is not allowed in acme/data, nor is it copied onto its source.
        assert_eq!(
            keys(&copies.secrets),
            ["acme-shared/pull", "acme-web-dev/pull", "acme-web-feature/pull", "acme-web-prod/pull"]
        );
    }

    #[test]
    fn copies_carry_the_data_and_canopys_metadata_only() {
        let copies = desired_copies(&tree(), &[], &sources());
        let copy = &copies.configmaps[&("acme-web-dev".to_owned(), "settings".to_owned())];
        assert_eq!(copy.data.as_ref().unwrap()["k"], "settings");
        let expected = ObjectMeta {
            name: Some("settings".into()),
            namespace: Some("acme-web-dev".into()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".into(), "canopy".into()),
                ("link.t.dev/source".into(), "acme-shared.settings".into()),
            ])),
            annotations: Some(BTreeMap::from([("link.t.dev/source".into(), "acme-shared/settings".into())])),
            ..ObjectMeta::default()
        };
        assert_eq!(copy.metadata, expected);
        let pull = &copies.secrets[&("acme-web-dev".to_owned(), "pull".to_owned())];
        assert_eq!(pull.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
        assert_eq!(pull.metadata.annotations.as_ref().unwrap()["link.t.dev/source"], "platform/registry");
        assert!(pull.data.as_ref().unwrap().contains_key(".dockerconfigjson"));
    }

    #[test]
    fn missing_sources_and_sources_of_another_type_are_not_copied() {
        let tree = tree();
        let mut sources = sources();
        sources.configmaps.remove(&("platform".to_owned(), "ca-bundle".to_owned()));
        if let Some(secret) = sources.secrets.values_mut().next() {
            secret.type_ = Some("Opaque".into());
        }
        let copies = desired_copies(&tree, &[], &sources);
        assert!(copies.configmaps.keys().all(|(_, name)| name == "settings"), "{:?}", keys(&copies.configmaps));
        assert!(copies.secrets.is_empty());
        assert_eq!(
            sources_of(&tree).into_iter().map(|(k, ns, n)| format!("{}:{ns}/{n}", k.name())).collect::<Vec<_>>(),
            ["ConfigMap:acme-shared/settings", "ConfigMap:platform/ca-bundle", "Secret:platform/registry"]
        );
    }

    #[test]
    fn a_copy_is_up_to_date_only_with_the_same_content_and_labels() {
        let copies = desired_copies(&tree(), &[], &sources());
        let want = &copies.configmaps[&("acme-web-dev".to_owned(), "ca-bundle".to_owned())];
        let mut have = want.clone();
        have.metadata.resource_version = Some("7".into());
        assert!(up_to_date(&have, want));
        have.data = None;
        assert!(!up_to_date(&have, want));
        let mut relabelled = want.clone();
        relabelled.metadata.labels.as_mut().unwrap().insert("x".into(), "y".into());
        assert!(!up_to_date(&relabelled, want));
        let secret = &copies.secrets[&("acme-web-dev".to_owned(), "pull".to_owned())];
        let mut retyped = secret.clone();
        retyped.type_ = None;
        assert!(!retyped.same_type(secret) && retyped.same_content(secret));
    }
}
