//! Canopy's labels on namespaces, HNC style: one `<ancestor>.tree.<domain>/depth` label per
//! ancestor (the owner included, at depth 0), so the namespaces of any subtree are one
//! server-side label selector away — correct for lists and for watches, with no fixed lists.

use std::collections::BTreeMap;

use super::{NodeId, Tree};

/// Label key marking objects Canopy manages.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGER: &str = "canopy";

/// The labels of one node.
pub struct Labels<'a> {
    pub(super) tree: &'a Tree,
    pub(super) node: NodeId,
}

impl Labels<'_> {
    /// `acme-web.tree.canopy.dev/depth`: present on every namespace in this node's subtree.
    pub fn depth_key(&self) -> String {
        format!("{}.tree.{}/depth", self.tree.nodes[self.node].prefix.trim_end_matches('-'), self.tree.domain)
    }

    /// `tree.canopy.dev/node`: the owning node, by its prefix.
    pub fn owner_key(&self) -> String {
        self.tree.owner_key()
    }

    /// The server-side selector for namespaces of this node's subtree.
    pub fn subtree_selector(&self) -> String {
        self.depth_key()
    }

    /// Every label a namespace owned by this node carries: the platform's, then Canopy's.
    pub fn for_owned_namespace(&self) -> BTreeMap<String, String> {
        let mut labels = self.tree.nodes[self.node].namespace_labels.clone();
        let own_depth = self.tree.nodes[self.node].depth;
        let mut current = Some(self.node);
        while let Some(n) = current {
            let key = self.tree.labels(n).depth_key();
            labels.insert(key, (own_depth - self.tree.nodes[n].depth).to_string());
            current = self.tree.nodes[n].parent;
        }
        labels.insert(self.owner_key(), self.tree.nodes[self.node].prefix.trim_end_matches('-').to_owned());
        labels.insert(MANAGED_BY.to_owned(), MANAGER.to_owned());
        labels
    }
}
