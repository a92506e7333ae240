//! Property (issue 20): for random trees — ceilings, subresources and deny rules at two levels —
//! and random requests, what the request path decides is what `kubectl auth can-i` (a
//! SelfSubjectAccessReview, [`review::verdict`]) and `who-can` / `access-matrix` ([`gate`]) report:
//! refused with the same message, or let through except for the same objects deny rules choose
//! by label. The access tools ask about a resource, not an object, so for a request naming an
//! object they may only be stricter.

use http::Method;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Ask, Gate, Pending};
use crate::auth::Identity;
use crate::config::raw_tree::RawTree;
use crate::policy::review::{self, Verdict};
use crate::policy::{decide, exceptions, resolve_view};
use crate::request::{RequestInfo, ViewPath};
use crate::tree::Tree;

/// `(group, resource, namespaced)`.
const RESOURCES: [(&str, &str, bool); 6] = [
    ("", "pods", true),
    ("", "configmaps", true),
    ("apps", "deployments", true),
    ("", "secrets", true),
    ("", "nodes", false),
    ("storage.k8s.io", "storageclasses", false),
];
const VERBS: [&str; 8] = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];
const SUBRESOURCES: [&str; 3] = ["log", "exec", "status"];

/// A subset of `items`, chosen by the bits of `mask`.
fn pick<'a>(items: &[&'a str], mask: u32) -> Vec<&'a str> {
    items.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, item)| *item).collect()
}

/// A ceiling: namespaced rules, readable cluster resources and subresources, from `bits`; a
/// child's is its parent's `bits` narrowed by its own, so the tree stays monotone.
fn allow(bits: &[u32; 6]) -> Value {
    let rules: Vec<Value> = RESOURCES[..4]
        .iter()
        .zip(bits)
        .filter(|(_, verbs)| **verbs & 0xff != 0)
        .map(|((group, resource, _), verbs)| json!({"apiGroups": [group], "resources": [resource], "verbs": pick(&VERBS, *verbs)}))
        .collect();
    let cluster: Vec<Value> = RESOURCES[4..]
        .iter()
        .enumerate()
        .filter(|(i, _)| bits[4] & (1 << i) != 0)
        .map(|(_, (group, resource, _))| json!({"apiGroups": [group], "resources": [resource]}))
        .collect();
    json!({"resources": rules, "clusterResources": cluster, "subresources": pick(&SUBRESOURCES[..2], bits[5])})
}

/// A deny rule from `bits`: subjects, groups × resources, verbs, names, namespaces.
fn deny(bits: u32, local_namespace: &str) -> Value {
    let (group, resource, _) = RESOURCES[(bits as usize) % RESOURCES.len()];
    let resources = match (bits >> 3) & 3 {
        0 => json!(["*"]),
        1 => json!([format!("{resource}/log")]),
        _ => json!([resource]),
    };
    let verbs = match pick(&VERBS, bits >> 5) {
        verbs if verbs.is_empty() => vec!["*"],
        verbs => verbs,
    };
    let mut rule = json!({"apiGroups": [if bits & (1 << 13) != 0 { "*" } else { group }], "resources": resources, "verbs": verbs, "reason": "kept"});
    if bits & (1 << 14) != 0 {
        rule["subjects"] = json!([{"kind": "User", "name": "u2"}]);
    }
    if bits & (1 << 15) != 0 {
        rule["resourceNames"] = json!(["keep", "pre*"]);
    }
    if bits & (1 << 16) != 0 {
        rule["namespaces"] = json!([local_namespace]);
    }
    if bits & (1 << 17) != 0 {
        rule["labelSelector"] = json!({"matchLabels": {"kept": "yes"}});
    }
    rule
}

/// A two-level tree: `t` (namespace `a`, admin `u1`) above `t/c` (namespace `b`, editor `u2`).
fn tree(root: [u32; 6], child: Option<[u32; 6]>, root_denies: Vec<u32>, child_denies: Vec<u32>) -> Tree {
    let narrowed = child.map(|child| {
        let mut bits = root;
        bits.iter_mut().zip(child).for_each(|(bit, narrow)| *bit &= narrow);
        allow(&bits)
    });
    let mut child_node = json!({
        "name": "c", "namespaces": ["b"], "members": [{"kind": "User", "name": "u2", "role": "edit"}],
        "deny": child_denies.iter().map(|bits| deny(*bits, "b")).collect::<Vec<_>>(),
    });
    if let Some(narrowed) = narrowed {
        child_node["allow"] = narrowed;
    }
    let raw = json!({"nodes": [{
        "name": "t", "namespaces": ["a"], "members": [{"kind": "User", "name": "u1", "role": "admin"}],
        "allow": allow(&root),
        "deny": root_denies.iter().map(|bits| deny(*bits, "a")).collect::<Vec<_>>(),
        "children": [child_node],
    }]});
    let raw: RawTree = serde_json::from_value(raw).expect("the generated tree is well-formed");
    Tree::compile(&raw, "tree").expect("the generated tree compiles")
}

/// A request: who, in which view, and what.
#[derive(Debug, Clone)]
struct Asked {
    user: &'static str,
    view: Option<&'static str>,
    verb: &'static str,
    resource: usize,
    subresource: Option<&'static str>,
    namespace: &'static str,
    name: &'static str,
}

fn asked() -> impl Strategy<Value = Asked> {
    (
        prop::sample::select(vec!["u1", "u2", "stranger"]),
        prop::sample::select(vec![None, Some("t"), Some("t/c")]),
        prop::sample::select(VERBS.to_vec()),
        0..RESOURCES.len(),
        prop::sample::select(vec![None, None, Some("log"), Some("exec"), Some("status")]),
        prop::sample::select(vec!["a", "b", "c-b", "zz", ""]),
        prop::sample::select(vec!["keep", "prefixed", "other"]),
    )
        .prop_map(|(user, view, verb, resource, subresource, namespace, name)| Asked {
            user,
            view,
            verb,
            resource,
            subresource,
            namespace,
            name,
        })
}

impl Asked {
    fn namespace(&self) -> &'static str {
        if RESOURCES[self.resource].2 { self.namespace } else { "" }
    }

    /// Whether the request names one object (`get`, `update`, `patch`, `delete`, or any
    /// subresource); the others reach a collection.
    fn named(&self) -> bool {
        self.subresource.is_some() || matches!(self.verb, "get" | "update" | "patch" | "delete")
    }

    /// The HTTP request a client sends for it, as the request path reads it.
    fn request_info(&self) -> RequestInfo {
        let (group, resource, _) = RESOURCES[self.resource];
        let mut path = match group {
            "" => "/api/v1".to_owned(),
            group => format!("/apis/{group}/v1"),
        };
        if !self.namespace().is_empty() {
            path += &format!("/namespaces/{}", self.namespace());
        }
        path += &format!("/{resource}");
        if self.named() {
            path += &format!("/{}", self.name);
        }
        if let Some(subresource) = self.subresource {
            path += &format!("/{subresource}");
        }
        let (method, query) = match self.verb {
            "get" | "list" => (Method::GET, None),
            "watch" => (Method::GET, Some("watch=true")),
            "create" => (Method::POST, None),
            "update" => (Method::PUT, None),
            "patch" => (Method::PATCH, None),
            _ => (Method::DELETE, None),
        };
        RequestInfo::parse(&method, &path, query).expect("a well-formed request")
    }

    /// The SelfSubjectAccessReview `kubectl auth can-i` sends about the same request.
    fn review(&self, info: &RequestInfo) -> Value {
        json!({"spec": {"resourceAttributes": {
            "verb": info.verb, "group": info.api_group, "version": "v1", "resource": info.resource,
            "subresource": info.subresource, "namespace": self.namespace(), "name": info.name,
        }}})
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn the_request_path_can_i_who_can_and_access_matrix_decide_alike(
        root in prop::array::uniform6(any::<u32>()),
        child in prop::option::of(prop::array::uniform6(any::<u32>())),
        root_denies in prop::collection::vec(any::<u32>(), 0..3),
        child_denies in prop::collection::vec(any::<u32>(), 0..3),
        asked in asked(),
    ) {
        let tree = tree(root, child, root_denies, child_denies);
        let identity = Identity::new(asked.user, ["system:authenticated"]);
        let Ok(view) = resolve_view(&tree, &identity, &ViewPath(asked.view.map(str::to_owned))) else {
            // No view: every tool refuses the user everything before deciding anything.
            return Ok(());
        };
        let info = asked.request_info();
        let request = decide(&tree, view, &identity, &info).map(|plan| exceptions(&plan)).map_err(|status| status.message);

        let can_i = match review::verdict(&tree, view, &identity, &asked.review(&info)) {
            (Verdict::Denied(message), _) => Err(message),
            (_, except) => Ok(except),
        };
        prop_assert_eq!(&request, &can_i, "can-i for {:?}", info);

        let ask = Ask {
            verb: info.verb.clone(),
            group: info.api_group.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            namespace: info.namespace.clone(),
        };
        let pending = Pending::new(&tree, view, &identity, ask);
        let matrix = match pending.gate {
            Gate::Refused(message) => Err(message),
            Gate::AsCanopy(_) | Gate::AsCaller(_) => Ok(pending.except),
        };
        if info.name.is_empty() {
            prop_assert_eq!(&request, &matrix, "who-can and access-matrix for {:?}", info);
        } else {
            // About every object of the resource: refused if any could be.
            prop_assert!(matrix.is_err() || request.is_ok(), "matrix allows what the request path refuses: {:?}", info);
        }
    }
}
