//! `canopy tree --live`: the namespaces that exist upstream (read once by
//! [`crate::upstream::list_namespaces`]) sorted against the tree — declared ones present or
//! missing, and namespaces that carry the tree's labels without being declared (tenants create
//! those) under the node that owns them. [`Live::classify`] and the rendering in `render.rs` are
//! pure, so what the command shows is tested without an apiserver.

use std::collections::{BTreeMap, HashMap};

use super::{LiveNamespaces, NodeId, Tree};

/// A namespace as it exists upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNamespace {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Being deleted.
    pub terminating: bool,
}

/// The tenant-created namespaces as read once, for commands that decide like the proxy without
/// following upstream as it does (`who-can`, `access-matrix`).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Physical name → owner label, of every namespace carrying the tree's owner label.
    owners: BTreeMap<String, String>,
}

impl Snapshot {
    /// The namespaces of `namespaces` that carry `tree`'s owner label.
    pub fn new(tree: &Tree, namespaces: &[LiveNamespace]) -> Self {
        let key = tree.owner_key();
        let owners = namespaces.iter().filter_map(|ns| Some((ns.name.clone(), ns.labels.get(&key)?.clone()))).collect();
        Snapshot { owners }
    }
}

impl LiveNamespaces for Snapshot {
    fn owner_of(&self, physical: &str) -> Option<String> {
        self.owners.get(physical).cloned()
    }

    fn all(&self) -> Vec<(String, String)> {
        self.owners.iter().map(|(name, owner)| (name.clone(), owner.clone())).collect()
    }
}

/// What a declared namespace looks like upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Exists with its owner's labels.
    Present,
    /// Exists without its owner's labels (the reconciler has not labelled it yet).
    Unlabelled,
    /// Exists and is being deleted.
    Terminating,
    /// Does not exist (the reconciler has not created it yet, or is not running).
    Missing,
}

/// The upstream namespaces sorted against a tree.
#[derive(Debug, Default)]
pub struct Live<'a> {
    /// State of each declared namespace, by physical name.
    pub declared: HashMap<&'a str, State>,
    /// Undeclared namespaces labelled into each node's subtree, owned by that node (the deepest
    /// node whose depth label they carry), sorted by name.
    pub undeclared: HashMap<NodeId, Vec<&'a LiveNamespace>>,
    /// Undeclared namespaces with the tree's labels but no node of this tree to own them (a node
    /// removed from the config), sorted by name.
    pub orphans: Vec<&'a LiveNamespace>,
}

impl<'a> Live<'a> {
    /// Sorts `namespaces` against `tree`.
    pub fn classify(tree: &'a Tree, namespaces: &'a [LiveNamespace]) -> Self {
        let mut live = Live::default();
        let by_name: HashMap<&str, &LiveNamespace> = namespaces.iter().map(|ns| (ns.name.as_str(), ns)).collect();
        for (id, node) in tree.nodes.iter().enumerate() {
            let depth_key = tree.labels(id).depth_key();
            for ns in &node.namespaces {
                let state = match by_name.get(ns.physical.as_str()) {
                    None => State::Missing,
                    Some(found) if found.terminating => State::Terminating,
                    Some(found) if found.labels.get(&depth_key).map(String::as_str) == Some("0") => State::Present,
                    Some(_) => State::Unlabelled,
                };
                live.declared.insert(ns.physical.as_str(), state);
            }
        }
        let depth_keys: Vec<String> = (0..tree.nodes.len()).map(|id| tree.labels(id).depth_key()).collect();
        let node_key = format!("tree.{}/node", tree.domain);
        let depth_suffix = format!(".tree.{}/depth", tree.domain);
        let mut sorted: Vec<&LiveNamespace> = namespaces.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        for ns in sorted {
            if tree.declared(&ns.name).is_some() {
                continue;
            }
            // The deepest node whose depth label the namespace carries: lists, watches and the
            // reconciler count it into that node's subtree and every one above.
            let owner = (0..tree.nodes.len())
                .filter(|&id| tree.nodes[id].reach.is_none() && ns.labels.contains_key(&depth_keys[id]))
                .max_by_key(|&id| tree.nodes[id].depth);
            match owner {
                Some(id) => live.undeclared.entry(id).or_default().push(ns),
                None if ns.labels.keys().any(|k| *k == node_key || k.ends_with(&depth_suffix)) => live.orphans.push(ns),
                None => {}
            }
        }
        live
    }

    /// How many declared namespaces exist upstream (in any state), and how many there are.
    pub fn declared_counts(&self) -> (usize, usize) {
        let present = self.declared.values().filter(|s| **s != State::Missing).count();
        (present, self.declared.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw_tree::RawTree;

    fn tree() -> Tree {
        let raw: RawTree = serde_saphyr::from_str(
            "nodes:\n  - name: acme\n    namespaces: [ops]\n    children:\n      - name: web\n        namespaces: [dev, prod, qa]\n",
        )
        .unwrap();
        Tree::compile(&raw, "tree").unwrap()
    }

    fn ns(name: &str, labels: &[(&str, &str)]) -> LiveNamespace {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        LiveNamespace { name: name.into(), labels, terminating: false }
    }

    #[test]
    fn declared_namespaces_are_present_unlabelled_terminating_or_missing() {
        let tree = tree();
        let web = tree.node("acme/web").unwrap();
        let labels: Vec<(String, String)> = tree.labels(web).for_owned_namespace().into_iter().collect();
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut gone = ns("acme-web-qa", &labels);
        gone.terminating = true;
        let live = [ns("acme-web-dev", &labels), ns("acme-ops", &[]), gone];
        let live = Live::classify(&tree, &live);
        assert_eq!(live.declared["acme-web-dev"], State::Present);
        assert_eq!(live.declared["acme-ops"], State::Unlabelled);
        assert_eq!(live.declared["acme-web-qa"], State::Terminating);
        assert_eq!(live.declared["acme-web-prod"], State::Missing);
        assert_eq!(live.declared_counts(), (3, 4));
    }

    #[test]
    fn a_snapshot_makes_tenant_created_namespaces_known() {
        let mut tree = tree();
        let web = tree.node("acme/web").unwrap();
        let labels: Vec<(String, String)> = tree.labels(web).for_owned_namespace().into_iter().collect();
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let namespaces = [ns("acme-web-feature", &labels), ns("kube-system", &[])];
        tree.live = Some(std::sync::Arc::new(Snapshot::new(&tree, &namespaces)));
        assert_eq!(tree.owner("acme-web-feature"), Some(web));
        assert_eq!(tree.owner("kube-system"), None);
        assert!(tree.subtree_namespaces(web).contains(&"acme-web-feature".to_owned()));
    }

    #[test]
    fn undeclared_namespaces_go_to_their_deepest_labelled_node() {
        let tree = tree();
        let (acme, web) = (tree.node("acme").unwrap(), tree.node("acme/web").unwrap());
        let namespaces = [
            ns("acme-web-feature", &[("acme.tree.canopy.dev/depth", "1"), ("acme-web.tree.canopy.dev/depth", "0")]),
            ns("acme-sandbox", &[("acme.tree.canopy.dev/depth", "0")]),
            ns("gone-x", &[("gone.tree.canopy.dev/depth", "0"), ("tree.canopy.dev/node", "gone")]),
            ns("other-domain", &[("acme.tree.example.com/depth", "0")]),
            ns("acme-unlabelled", &[]),
        ];
        let live = Live::classify(&tree, &namespaces);
        let names = |id| live.undeclared[&id].iter().map(|ns| ns.name.as_str()).collect::<Vec<_>>();
        assert_eq!(names(acme), ["acme-sandbox"]);
        assert_eq!(names(web), ["acme-web-feature"]);
        assert_eq!(live.orphans.iter().map(|ns| ns.name.as_str()).collect::<Vec<_>>(), ["gone-x"]);
    }
}
