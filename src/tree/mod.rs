//! The tenancy tree, compiled once from the configuration and then shared read-only: every
//! request is decided against one immutable snapshot (design invariant 9).
//!
//! Nodes have paths (`acme`, `acme/web`); each owns physical namespaces named
//! `prefix(node) + local`, where a top-level node's prefix defaults to `<name>-` and a child's is
//! `prefix(parent) + name + "-"`. Compilation checks names, prefixes, duplicate namespaces,
//! roles, that no child's ceiling exceeds its parent's, deny rules and value bounds, and links (see
//! [`links`]), naming the config path at fault. Controllers ([`controllers`]) are views after the
//! tenants' nodes.

pub mod bounds;
pub mod ceiling;
mod compile;
pub mod controllers;
pub mod deny;
mod dns;
pub mod key_patterns;
mod labels;
pub mod links;
pub mod live;
mod platform_labels;
mod render;
pub mod selector;

pub use ceiling::{Ceiling, Rule};
pub use controllers::{Controller, Reach};
pub use dns::{is_dns_label, is_dns_subdomain};
pub use labels::Labels;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::auth::Identity;
use crate::config::raw_tree::RawSubjectKind;
use crate::mask::MaskRule;
use crate::request::scope::{self, ScopeTable};

/// Index of a node in [`Tree::nodes`].
pub type NodeId = usize;

/// Why a tree was refused: the config path at fault and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct TreeError {
    pub at: String,
    pub message: String,
}

/// Namespaces that exist upstream with the tree's owner label but are not declared in the
/// config (created by tenants through Canopy).
pub trait LiveNamespaces: Send + Sync + std::fmt::Debug {
    /// The owner label (a node's prefix without its trailing `-`) of `physical`, if labelled.
    fn owner_of(&self, physical: &str) -> Option<String>;
    /// Every labelled namespace with its owner label.
    fn all(&self) -> Vec<(String, String)>;
}

/// What the upstream apiserver's discovery says of each resource's scope, kept fresh.
pub trait ResourceScopes: Send + Sync + std::fmt::Debug {
    /// The newest reading; `None` until discovery has answered.
    fn table(&self) -> Option<Arc<ScopeTable>>;
}

/// Scopes read once, as the platform commands read discovery once per run.
#[derive(Debug)]
pub struct ScopesReadOnce(pub Arc<ScopeTable>);

impl ResourceScopes for ScopesReadOnce {
    fn table(&self) -> Option<Arc<ScopeTable>> {
        Some(Arc::clone(&self.0))
    }
}

/// A `clusterResources` entry's resource as written, for checks against discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEntry {
    /// Config path of the resource (`tree.nodes[0].allow.clusterResources[1].resources[0]`).
    pub at: String,
    pub groups: Vec<String>,
    pub resource: String,
}

/// A compiled tree.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// Tenant-created namespaces; `None` where nothing upstream is followed (tests, tools).
    pub live: Option<Arc<dyn LiveNamespaces>>,
    /// Resource scopes from discovery; `None` where nothing upstream is followed (tests, tools),
    /// and the built-in table of [`crate::request::scope`] answers alone.
    pub scopes: Option<Arc<dyn ResourceScopes>>,
    /// Every `clusterResources` resource of the config, with its path.
    pub cluster_entries: Vec<ClusterEntry>,
    /// Label domain.
    pub domain: String,
    /// Nodes, parents before children.
    pub nodes: Vec<Node>,
    /// Custom roles by name.
    pub roles: BTreeMap<String, Vec<Rule>>,
    /// Controllers, whose views follow the tenants' nodes in [`Tree::nodes`].
    pub controllers: Vec<Controller>,
    by_path: HashMap<String, NodeId>,
    by_physical: HashMap<String, (NodeId, usize)>,
    /// Aliases: canonical name (`prefix(owner) + local`) → physical, and back.
    alias_by_canonical: HashMap<String, String>,
    canonical_by_alias: HashMap<String, String>,
}

/// One node.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// `acme/web`.
    pub path: String,
    pub parent: Option<NodeId>,
    pub children: Vec<NodeId>,
    /// 1 for top-level nodes.
    pub depth: usize,
    /// Physical prefix of this node's namespaces, e.g. `acme-web-`.
    pub prefix: String,
    pub namespaces: Vec<OwnedNamespace>,
    pub members: Vec<Member>,
    /// Effective ceiling (own, or the parent's).
    pub ceiling: Ceiling,
    /// Mask rules in force here: the ancestors', then the node's own.
    pub masks: Vec<Arc<MaskRule>>,
    /// Objects copied into every namespace of the subtree.
    pub links: Vec<links::Link>,
    /// Labels the platform sets on the node's namespaces: the ancestors', then its own.
    pub namespace_labels: BTreeMap<String, String>,
    /// Deny rules in force here: the ancestors', then the node's own.
    pub denies: deny::Denies,
    /// Value bounds in force here: the ancestors', then the node's own (pod bounds with their
    /// pod-template twins).
    pub bounds: bounds::Bounds,
    /// `None` for a node of the tree; for a controller's view (see [`controllers`]), the
    /// namespaces it reaches under their physical names.
    pub reach: Option<Reach>,
}

/// A namespace declared in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedNamespace {
    /// Name at the owning node.
    pub local: String,
    pub physical: String,
}

/// A subject bound at a node with a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub kind: RawSubjectKind,
    pub name: String,
    /// Physical namespace of a ServiceAccount.
    pub namespace: Option<String>,
    pub role: String,
}

impl Member {
    /// Whether `identity` is this subject.
    pub fn matches(&self, identity: &Identity) -> bool {
        match self.kind {
            RawSubjectKind::User => identity.user == self.name,
            RawSubjectKind::Group => identity.groups.contains(&self.name),
            RawSubjectKind::ServiceAccount => self
                .namespace
                .as_ref()
                .is_some_and(|ns| identity.user == format!("system:serviceaccount:{ns}:{}", self.name)),
        }
    }
}

impl Tree {
    /// The node at `path` (`acme/web`).
    pub fn node(&self, path: &str) -> Option<NodeId> {
        self.by_path.get(path).copied()
    }

    /// Whether `node` is `ancestor` or lies below it.
    pub fn is_within(&self, mut node: NodeId, ancestor: NodeId) -> bool {
        loop {
            if node == ancestor {
                return true;
            }
            match self.nodes[node].parent {
                Some(parent) => node = parent,
                None => return false,
            }
        }
    }

    /// `node` and every node below it.
    pub fn subtree(&self, node: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        (node..self.nodes.len()).filter(move |&n| self.is_within(n, node))
    }

    /// Physical names of the namespaces `node`'s subtree owns, declared or tenant-created, sorted.
    pub fn subtree_namespaces(&self, node: NodeId) -> Vec<String> {
        let mut names: Vec<String> =
            self.subtree(node).flat_map(|n| self.nodes[n].namespaces.iter().map(|ns| ns.physical.clone())).collect();
        if let Some(live) = &self.live {
            names.extend(
                live.all()
                    .into_iter()
                    .filter(|(name, _)| self.declared(name).is_none())
                    .filter(|(name, _)| self.created_owner(name).is_some_and(|owner| self.is_within(owner, node)))
                    .map(|(name, _)| name),
            );
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The node owning `physical` when it is a tenant-created namespace: labelled for a node of
    /// this tree, and named with that node's prefix (a label alone never moves a namespace).
    pub fn created_owner(&self, physical: &str) -> Option<NodeId> {
        let owner = self.live.as_ref()?.owner_of(physical)?;
        self.labelled_owner(physical, &owner)
    }

    /// The node owning the undeclared namespace `physical`, whose owner label says `owner`:
    /// that node, if `physical` carries its prefix.
    pub fn labelled_owner(&self, physical: &str, owner: &str) -> Option<NodeId> {
        let node = self.nodes.iter().position(|n| n.reach.is_none() && n.prefix.trim_end_matches('-') == owner)?;
        physical.strip_prefix(&self.nodes[node].prefix).filter(|local| !local.is_empty())?;
        Some(node)
    }

    /// The node that owns `physical`: the one declaring it, or the one that created it.
    pub fn owner(&self, physical: &str) -> Option<NodeId> {
        self.declared(physical).map(|(node, _)| node).or_else(|| self.created_owner(physical))
    }

    /// The nodes where `identity` is a member, with the role it holds there.
    pub fn memberships<'a>(&'a self, identity: &'a Identity) -> impl Iterator<Item = (NodeId, &'a Member)> + 'a {
        self.nodes
            .iter()
            .enumerate()
            .flat_map(move |(id, node)| node.members.iter().filter(|m| m.matches(identity)).map(move |m| (id, m)))
    }

    /// `identity`'s membership at `node` or its nearest ancestor: membership at a node grants
    /// every view in its subtree, never above it.
    pub fn member_at(&self, identity: &Identity, node: NodeId) -> Option<&Member> {
        let mut current = Some(node);
        while let Some(n) = current {
            if let Some(member) = self.nodes[n].members.iter().find(|m| m.matches(identity)) {
                return Some(member);
            }
            current = self.nodes[n].parent;
        }
        None
    }

    /// The node that declares `physical` in the config, and the namespace's entry there.
    pub fn declared(&self, physical: &str) -> Option<(NodeId, &OwnedNamespace)> {
        self.by_physical.get(physical).map(|&(node, i)| (node, &self.nodes[node].namespaces[i]))
    }

    /// The physical namespace an alias's canonical name stands for.
    pub fn alias_of(&self, canonical: &str) -> Option<&str> {
        self.alias_by_canonical.get(canonical).map(String::as_str)
    }

    /// The canonical name (`prefix(owner) + local`) of an aliased physical namespace.
    pub fn canonical_of(&self, physical: &str) -> Option<&str> {
        self.canonical_by_alias.get(physical).map(String::as_str)
    }

    /// `tree.<domain>/node`: the label naming a namespace's owning node (by its prefix).
    pub fn owner_key(&self) -> String {
        format!("tree.{}/node", self.domain)
    }

    /// Whether `key` is one of Canopy's tree labels (`tree.<domain>/node`, `<node>.tree.<domain>/depth`).
    pub fn is_tree_label(&self, key: &str) -> bool {
        key.split_once('/').is_some_and(|(prefix, _)| {
            prefix.strip_suffix(&self.domain).is_some_and(|p| p == "tree." || p.ends_with(".tree."))
        })
    }

    /// Whether `group/resource` is cluster-scoped: as discovery says, or where it does not know
    /// the resource (or has not answered yet), as the built-in table says. Reads no more than
    /// memory.
    pub fn is_cluster_scoped(&self, group: &str, resource: &str) -> bool {
        self.scopes
            .as_ref()
            .and_then(|scopes| scopes.table())
            .and_then(|table| table.cluster_scoped(group, resource))
            .unwrap_or_else(|| scope::is_cluster_scoped(group, resource))
    }

    /// Checks that every `clusterResources` entry names cluster-scoped resources only, as
    /// discovery (`table`) says: compilation checked them against the built-in table, which
    /// cannot know custom resources.
    pub fn check_cluster_resources(&self, table: &ScopeTable) -> Result<(), TreeError> {
        for entry in &self.cluster_entries {
            if let Some(group) = entry.groups.iter().find(|g| table.namespaced(g, &entry.resource)) {
                return Err(TreeError {
                    at: entry.at.clone(),
                    message: ceiling::namespaced_entry(&entry.resource, group),
                });
            }
        }
        Ok(())
    }

    /// Canopy's label keys and values for namespaces of `node`.
    pub fn labels(&self, node: NodeId) -> Labels<'_> {
        Labels { tree: self, node }
    }
}
