//! Namespace names as a view shows them. Physical `acme-web-dev` is `dev` in view `acme/web` and
//! `web-dev` in view `acme`: the virtual name is the namespace's canonical name
//! (`prefix(owner) + local`) without the view's prefix, so translation is exact and reversible.
//! An alias adopts an existing physical namespace under a local name; it translates through its
//! canonical name. A physical name outside the view has no virtual name at all. A controller's
//! view names the namespaces it reaches as they are: no prefix, no aliases.

use crate::tree::{NodeId, Reach, Tree};

/// What a view reads in place of a namespace of the tree outside it, in fields and in prose; not
/// a DNS label, so it never names a namespace.
pub const HIDDEN_NAMESPACE: &str = "<another namespace>";

/// Translation between virtual and physical namespace names for one view.
#[derive(Clone, Copy)]
pub struct ViewNames<'a> {
    tree: &'a Tree,
    view: NodeId,
}

impl<'a> ViewNames<'a> {
    pub fn new(tree: &'a Tree, view: NodeId) -> Self {
        Self { tree, view }
    }

    fn prefix(&self) -> &str {
        &self.tree.nodes[self.view].prefix
    }

    /// The physical name of `virtual_name` in this view, if the view owns such a namespace.
    pub fn to_physical(&self, virtual_name: &str) -> Option<String> {
        if self.tree.nodes[self.view].reach.is_some() {
            return self.owns(virtual_name).then(|| virtual_name.to_owned());
        }
        let canonical = format!("{}{virtual_name}", self.prefix());
        let physical = self.tree.alias_of(&canonical).map_or(canonical, str::to_owned);
        self.owns(&physical).then_some(physical)
    }

    /// The virtual name of `physical`, if the view owns it.
    pub fn to_virtual(&self, physical: &str) -> Option<String> {
        if !self.owns(physical) {
            return None;
        }
        if self.tree.nodes[self.view].reach.is_some() {
            return Some(physical.to_owned());
        }
        let canonical = self.tree.canonical_of(physical).unwrap_or(physical);
        canonical.strip_prefix(self.prefix()).filter(|v| !v.is_empty()).map(str::to_owned)
    }

    /// What a field shows for `physical` in this view: its virtual name, [`HIDDEN_NAMESPACE`] for
    /// a namespace the view may not read ([`Self::hidden`]), `None` (shown as it is) for one no
    /// tenant could own (the platform's `kube-system`).
    pub fn in_field(&self, physical: &str) -> Option<String> {
        self.to_virtual(physical).or_else(|| self.hidden(physical).then(|| HIDDEN_NAMESPACE.to_owned()))
    }

    /// Whether a field naming `physical` hides it: a namespace outside the view that the config
    /// gives a node, by declaration or by its prefix. Whether it exists plays no part, so what
    /// a view reads of a name it wrote itself (`globex-main`, `globex-nope`) does not tell
    /// whether another tenant has such a namespace.
    pub fn hidden(&self, physical: &str) -> bool {
        crate::tree::is_dns_label(physical) && !self.owns(physical) && self.tree.namespace_area(physical).is_some()
    }

    /// Whether `physical` belongs to the view's subtree.
    pub fn owns(&self, physical: &str) -> bool {
        let within = |node| self.tree.owner(physical).is_some_and(|owner| self.tree.is_within(owner, node));
        match self.tree.nodes[self.view].reach {
            None => within(self.view),
            Some(Reach::All) => crate::tree::is_dns_label(physical),
            Some(Reach::Subtree(node)) => within(node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw_tree::RawTree;

    fn tree() -> Tree {
        let raw: RawTree = serde_saphyr::from_str(
            "nodes:\n  - name: acme\n    namespaces: [ops]\n    children:\n      - name: web\n        namespaces: [dev]\n        aliases: {legacy: old-web}\n  - name: globex\n    namespaces: [main]\n",
        )
        .unwrap();
        Tree::compile(&raw, "tree").unwrap()
    }

    #[test]
    fn names_are_relative_to_the_view_and_reversible() {
        let tree = tree();
        let acme = ViewNames::new(&tree, tree.node("acme").unwrap());
        let web = ViewNames::new(&tree, tree.node("acme/web").unwrap());
        assert_eq!(web.to_physical("dev").as_deref(), Some("acme-web-dev"));
        assert_eq!(acme.to_physical("web-dev").as_deref(), Some("acme-web-dev"));
        assert_eq!(web.to_virtual("acme-web-dev").as_deref(), Some("dev"));
        assert_eq!(acme.to_virtual("acme-web-dev").as_deref(), Some("web-dev"));
        assert_eq!(acme.to_virtual("acme-ops").as_deref(), Some("ops"));
        for (view, names) in [(acme, ["ops", "web-dev", "web-legacy"]), (web, ["dev", "legacy", "legacy"])] {
            for name in names {
                let physical = view.to_physical(name).unwrap();
                assert_eq!(view.to_virtual(&physical).as_deref(), Some(name));
            }
        }
    }

    #[test]
    fn aliases_translate_through_their_canonical_name() {
        let tree = tree();
        let web = ViewNames::new(&tree, tree.node("acme/web").unwrap());
        assert_eq!(web.to_physical("legacy").as_deref(), Some("old-web"));
        assert_eq!(web.to_virtual("old-web").as_deref(), Some("legacy"));
    }

    #[test]
    fn names_outside_the_view_do_not_exist() {
        let tree = tree();
        let web = ViewNames::new(&tree, tree.node("acme/web").unwrap());
        assert_eq!(web.to_physical("ops"), None);
        assert_eq!(web.to_virtual("acme-ops"), None);
        assert_eq!(web.to_virtual("globex-main"), None);
        assert_eq!(web.to_virtual("kube-system"), None);
        assert_eq!(web.to_physical("../globex-main"), None);
        assert_eq!(web.to_physical(""), None);
    }
}
