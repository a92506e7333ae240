//! Property tests of namespace-name translation, on the example tree and on a tree with an
//! alias, each with random tenant-created namespaces (some labelled for a node whose prefix
//! they lack, which must not move them).
//!
//! What holds, exactly:
//! - A physical name has a virtual name in a view exactly when the view's subtree owns it, and
//!   the virtual name leads back to it; a virtual name that leads to a physical one is that
//!   name's virtual name. Distinct owned names have distinct virtual names.
//! - A document whose namespace names are all owned by the view comes back unchanged from
//!   physical → virtual → physical, wherever the names sit (metadata, Namespace objects,
//!   ServiceAccount users and groups, Table cells, the last-applied annotation).
//! - A name the view does not own is never given a virtual name: [`map_namespaces`] leaves it as
//!   it is. Keeping such names out of responses altogether is confinement's work (a view only
//!   ever reads its own namespaces), not translation's.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::ViewNames;
use super::json::{map_namespace_names, map_namespaces};
use crate::config::raw_tree::RawTree;
use crate::tree::{LiveNamespaces, NodeId, Reach, Tree};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Tenant-created namespaces: name and owner label.
#[derive(Debug)]
struct Live(Vec<(String, String)>);

impl LiveNamespaces for Live {
    fn owner_of(&self, physical: &str) -> Option<String> {
        self.0.iter().find(|(name, _)| name == physical).map(|(_, owner)| owner.clone())
    }

    fn all(&self) -> Vec<(String, String)> {
        self.0.clone()
    }
}

/// The example tree (`which` even) or a small tree with an alias, following `live`.
fn tree(which: usize, live: Vec<(String, String)>) -> Tree {
    let mut tree = if which.is_multiple_of(2) {
        (*crate::fuzz::example_tree().unwrap()).clone()
    } else {
        let raw: RawTree = serde_saphyr::from_str(
            "nodes:\n  - name: acme\n    namespaces: [ops]\n    children:\n      - name: web\n        namespaces: [dev]\n        aliases: {legacy: old-web}\n  - name: globex\n    namespaces: [main]\n",
        )
        .unwrap();
        Tree::compile(&raw, "tree").unwrap()
    };
    tree.live = Some(Arc::new(Live(live)));
    tree
}

/// Tenant-created namespaces, named with a node's prefix or not, labelled for a node or not.
fn live() -> impl Strategy<Value = Vec<(String, String)>> {
    let prefix = proptest::sample::select(&["acme-", "acme-web-", "acme-data-", "globex-", "", "kube-"][..]);
    let owner = proptest::sample::select(&["acme", "acme-web", "acme-data", "globex", "nope"][..]);
    proptest::collection::vec(
        (prefix, "[a-z0-9]{0,5}", owner).prop_map(|(p, local, o)| (format!("{p}{local}"), o.to_owned())),
        0..6,
    )
}

/// Every physical name the tree knows of, declared or live, and a few it does not.
fn known_names(tree: &Tree) -> Vec<String> {
    let mut names: Vec<String> =
        tree.nodes.iter().flat_map(|n| n.namespaces.iter().map(|ns| ns.physical.clone())).collect();
    names.extend(tree.live.iter().flat_map(|live| live.all().into_iter().map(|(name, _)| name)));
    names.extend(["kube-system", "default", "dev", "web-dev", "acme-web", "old-web", ""].map(str::to_owned));
    names
}

/// A JSON document whose strings come from `pool` (in every form a name travels in), with
/// `Namespace` objects, Table cells and last-applied annotations among them.
fn document(pool: Vec<String>) -> impl Strategy<Value = Value> {
    let name = proptest::sample::select(pool);
    let text = prop_oneof![
        4 => name.clone(),
        1 => name.clone().prop_map(|n| format!("system:serviceaccount:{n}:builder")),
        1 => name.clone().prop_map(|n| format!("system:serviceaccounts:{n}")),
        1 => name.clone().prop_map(|n| format!("{n}/object")),
        1 => (name.clone(), name).prop_map(|(a, b)| format!("{a}, {b}")),
        1 => "[A-Z][a-z0-9]{0,4}",
        1 => Just("Namespace".to_owned()),
    ];
    let key =
        proptest::sample::select(&["namespace", "kind", "metadata", "name", "cells", "items", LAST_APPLIED, "x"][..]);
    text.prop_map(Value::String)
        .prop_recursive(4, 48, 5, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec((key.clone(), inner), 0..5).prop_map(|entries| Value::Object(
                    Map::from_iter(entries.into_iter().map(|(k, v)| (k.to_owned(), v)))
                )),
            ]
        })
        .prop_map(|mut document| {
            embed_last_applied(&mut document);
            document
        })
}

/// Makes every object under a last-applied key the JSON text kubectl writes there.
fn embed_last_applied(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                embed_last_applied(inner);
                if key == LAST_APPLIED && inner.is_object() {
                    *inner = Value::String(format!("{inner}\n"));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(embed_last_applied),
        _ => {}
    }
}

/// Whether `physical` is in `view`, said without [`ViewNames`]: a tenant view's subtree, or what a
/// controller reaches (any namespace name, or a subtree).
fn in_view(tree: &Tree, view: NodeId, physical: &str) -> bool {
    let within = |node| tree.owner(physical).is_some_and(|owner| tree.is_within(owner, node));
    match tree.nodes[view].reach {
        None => within(view),
        Some(Reach::All) => crate::tree::is_dns_label(physical),
        Some(Reach::Subtree(node)) => within(node),
    }
}

/// A tree, a view in it, and the view's names.
fn setup(which: usize, live: Vec<(String, String)>, view: usize) -> (Tree, NodeId) {
    let tree = tree(which, live);
    let view = view % tree.nodes.len();
    (tree, view)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn physical_names_have_virtual_names_exactly_in_their_view(
        which in 0usize..2, live in live(), view in 0usize..8, extra in "[a-z-]{0,12}",
    ) {
        let (tree, view) = setup(which, live, view);
        let names = ViewNames::new(&tree, view);
        let mut seen = std::collections::HashMap::new();
        for physical in known_names(&tree).into_iter().chain([extra]) {
            let within = in_view(&tree, view, &physical);
            match names.to_virtual(&physical) {
                Some(virtual_name) => {
                    prop_assert!(within, "{} is not in view {}", physical, tree.nodes[view].path);
                    prop_assert_eq!(names.to_physical(&virtual_name), Some(physical.clone()));
                    if let Some(other) = seen.insert(virtual_name.clone(), physical.clone()) {
                        prop_assert_eq!(&other, &physical, "two names for {}", virtual_name);
                    }
                }
                None => prop_assert!(!within, "{} has no name in view {}", physical, tree.nodes[view].path),
            }
        }
    }

    #[test]
    fn virtual_names_lead_back_to_themselves(
        which in 0usize..2, live in live(), view in 0usize..8, virtual_name in "[a-z./-]{0,12}",
    ) {
        let (tree, view) = setup(which, live, view);
        let names = ViewNames::new(&tree, view);
        if let Some(physical) = names.to_physical(&virtual_name) {
            prop_assert!(names.owns(&physical));
            prop_assert_eq!(names.to_virtual(&physical), Some(virtual_name));
        }
    }

    #[test]
    fn documents_of_the_view_round_trip(
        (which, live, view, original) in (0usize..2, live(), 0usize..8).prop_flat_map(|(which, live, view)| {
            let (tree, view) = setup(which, live.clone(), view);
            let mut owned = tree.subtree_namespaces(view);
            owned.push("Other".to_owned());
            (Just(which), Just(live), Just(view), document(owned))
        }),
    ) {
        let (tree, view) = setup(which, live, view);
        let names = ViewNames::new(&tree, view);
        let mut document = original.clone();
        map_namespaces(&mut document, &|name: &str| names.to_virtual(name));
        map_namespace_names(&mut document, &|name: &str| names.to_virtual(name));
        map_namespaces(&mut document, &|name: &str| names.to_physical(name));
        map_namespace_names(&mut document, &|name: &str| names.to_physical(name));
        prop_assert_eq!(document, original);
    }

    #[test]
    fn names_outside_the_view_are_never_translated(
        (which, live, view, original) in (0usize..2, live(), 0usize..8).prop_flat_map(|(which, live, view)| {
            let (tree, view) = setup(which, live.clone(), view);
            let names = ViewNames::new(&tree, view);
            let mut foreign: Vec<String> = known_names(&tree).into_iter().filter(|n| !names.owns(n)).collect();
            foreign.push("Other".to_owned());
            (Just(which), Just(live), Just(view), document(foreign))
        }),
    ) {
        let (tree, view) = setup(which, live, view);
        let names = ViewNames::new(&tree, view);
        let mut document = original.clone();
        map_namespaces(&mut document, &|name: &str| names.to_virtual(name));
        map_namespace_names(&mut document, &|name: &str| names.to_virtual(name));
        prop_assert_eq!(document, original);
    }
}
