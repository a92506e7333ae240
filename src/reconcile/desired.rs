//! What a tree asks of the apiserver, as a pure function of the tree and the namespaces that
//! already carry its labels: declared namespaces with exactly Canopy's labels, a ClusterRole per
//! custom role, and a RoleBinding per member in every namespace of the member's subtree.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::config::raw_tree::RawSubjectKind;
use crate::tree::{Member, NodeId, Rule, Tree};

/// Label key marking objects Canopy manages (the same as the tree's namespace label).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGER: &str = "canopy";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Longest subject part of a RoleBinding name before it is shortened with a hash.
const SUBJECT_MAX: usize = 48;

/// A namespace as listed upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingNamespace {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Everything Canopy keeps upstream for one tree.
#[derive(Debug, Default)]
pub struct Desired {
    /// Declared namespaces and exactly Canopy's labels on each.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// ClusterRoles of custom roles, by name.
    pub cluster_roles: BTreeMap<String, ClusterRole>,
    /// Members' RoleBindings, by (namespace, name).
    pub role_bindings: BTreeMap<(String, String), RoleBinding>,
}

/// The desired state for `tree`. `existing` are the namespaces upstream that carry the tree's
/// labels; those not declared in the tree (created by tenants) belong to the subtrees their
/// labels name, declared ones to the node that declares them, whatever their labels say now.
pub fn desired(tree: &Tree, existing: &[ExistingNamespace]) -> Desired {
    let mut out = Desired::default();
    for (name, rules) in &tree.roles {
        out.cluster_roles.insert(cluster_role_name(name), cluster_role(tree, name, rules));
    }
    for (id, node) in tree.nodes.iter().enumerate() {
        for ns in &node.namespaces {
            out.namespaces.insert(ns.physical.clone(), tree.labels(id).for_owned_namespace());
        }
    }
    // Parents come first, so a subject bound identically at two levels keeps the upper binding.
    for (id, node) in tree.nodes.iter().enumerate() {
        if node.members.is_empty() {
            continue;
        }
        let namespaces = subtree_namespaces(tree, id, existing);
        for member in &node.members {
            let binding = role_binding(tree, id, member);
            for ns in &namespaces {
                let name = binding.metadata.name.clone().unwrap_or_default();
                out.role_bindings.entry((ns.clone(), name)).or_insert_with(|| {
                    let mut binding = binding.clone();
                    binding.metadata.namespace = Some(ns.clone());
                    binding
                });
            }
        }
    }
    out
}

/// Every namespace of subtree(`node`): declared below it, or labelled into it.
fn subtree_namespaces(tree: &Tree, node: NodeId, existing: &[ExistingNamespace]) -> BTreeSet<String> {
    let mut namespaces: BTreeSet<String> =
        tree.subtree(node).flat_map(|n| tree.nodes[n].namespaces.iter().map(|ns| ns.physical.clone())).collect();
    let key = tree.labels(node).subtree_selector();
    namespaces.extend(
        existing
            .iter()
            .filter(|ns| tree.declared(&ns.name).is_none() && ns.labels.contains_key(&key))
            .map(|ns| ns.name.clone()),
    );
    namespaces
}

/// `tree.<domain>/node`: on namespaces, the owning node; on RoleBindings, the node that declares
/// the member. Its presence scopes Canopy's lists and deletions to one tree domain.
pub fn node_key(domain: &str) -> String {
    format!("tree.{domain}/node")
}

/// `tree.<domain>/role`: on the ClusterRoles of custom roles, the role's name.
pub fn role_key(domain: &str) -> String {
    format!("tree.{domain}/role")
}

/// Selects every namespace labelled by the tree of `domain`.
pub fn namespace_selector(domain: &str) -> String {
    node_key(domain)
}

/// Selects every RoleBinding Canopy manages for `domain`.
pub fn binding_selector(domain: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{}", node_key(domain))
}

/// Selects every custom-role ClusterRole Canopy manages for `domain`.
pub fn cluster_role_selector(domain: &str) -> String {
    format!("{MANAGED_BY}={MANAGER},{}", role_key(domain))
}

/// Whether `key` is one of the labels Canopy sets on namespaces for `domain`.
pub fn is_canopy_namespace_label(domain: &str, key: &str) -> bool {
    key == MANAGED_BY || key == node_key(domain) || key.ends_with(&format!(".tree.{domain}/depth"))
}

/// The ClusterRole a member's role binds: built-in ones by name, custom ones as Canopy's copy.
pub fn role_ref_name(role: &str) -> String {
    match role {
        "admin" | "edit" | "view" => role.to_owned(),
        custom => cluster_role_name(custom),
    }
}

/// `canopy:role:<name>`.
pub fn cluster_role_name(role: &str) -> String {
    format!("canopy:role:{role}")
}

/// `canopy:<role>:<kind>:<subject>`, the subject cleaned to `[a-z0-9.:-]` and at most
/// [`SUBJECT_MAX`] characters; a subject that had to change ends in a hash of the original, so
/// distinct subjects keep distinct names.
pub fn binding_name(member: &Member) -> String {
    let (kind, subject) = match member.kind {
        RawSubjectKind::User => ("user", member.name.clone()),
        RawSubjectKind::Group => ("group", member.name.clone()),
        RawSubjectKind::ServiceAccount => {
            ("sa", format!("{}:{}", member.namespace.as_deref().unwrap_or_default(), member.name))
        }
    };
    format!("canopy:{}:{kind}:{}", member.role, clean_subject(&subject))
}

fn clean_subject(subject: &str) -> String {
    let clean: String = subject
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | ':' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    if clean == subject && clean.len() <= SUBJECT_MAX {
        return clean;
    }
    let digest = Sha256::digest(subject.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let head: String = clean.chars().take(SUBJECT_MAX - hash.len() - 1).collect();
    format!("{head}-{hash}")
}

fn labels(pairs: [(String, String); 2]) -> Option<BTreeMap<String, String>> {
    Some(pairs.into_iter().collect())
}

fn role_binding(tree: &Tree, node: NodeId, member: &Member) -> RoleBinding {
    let subject = match member.kind {
        RawSubjectKind::User | RawSubjectKind::Group => Subject {
            kind: format!("{:?}", member.kind),
            api_group: Some(RBAC_GROUP.to_owned()),
            name: member.name.clone(),
            namespace: None,
        },
        RawSubjectKind::ServiceAccount => Subject {
            kind: "ServiceAccount".to_owned(),
            api_group: None,
            name: member.name.clone(),
            namespace: member.namespace.clone(),
        },
    };
    let owner = tree.nodes[node].prefix.trim_end_matches('-').to_owned();
    RoleBinding {
        metadata: ObjectMeta {
            name: Some(binding_name(member)),
            labels: labels([(MANAGED_BY.to_owned(), MANAGER.to_owned()), (node_key(&tree.domain), owner)]),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.to_owned()),
            kind: "ClusterRole".to_owned(),
            name: role_ref_name(&member.role),
        },
        subjects: Some(vec![subject]),
    }
}

fn cluster_role(tree: &Tree, name: &str, rules: &[Rule]) -> ClusterRole {
    let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>();
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(cluster_role_name(name)),
            labels: labels([(MANAGED_BY.to_owned(), MANAGER.to_owned()), (role_key(&tree.domain), name.to_owned())]),
            ..ObjectMeta::default()
        },
        rules: Some(
            rules
                .iter()
                .map(|rule| PolicyRule {
                    api_groups: Some(list(&rule.groups)),
                    resources: Some(list(&rule.resources)),
                    verbs: list(&rule.verbs),
                    ..PolicyRule::default()
                })
                .collect(),
        ),
        aggregation_rule: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw_tree::RawTree;

    const TREE: &str = r#"
roles:
  reader:
    rules: [{resources: [pods], verbs: [get, list]}]
nodes:
  - name: acme
    namespaces: [main]
    members:
      - {kind: User, name: alice, role: admin}
      - {kind: ServiceAccount, name: deployer, namespace: main, role: edit}
    children:
      - name: web
        namespaces: [dev]
        members:
          - {kind: User, name: bob, role: edit}
          - {kind: User, name: alice, role: admin}
          - {kind: Group, name: "Ops Team", role: reader}
  - name: globex
    namespaces: [app]
"#;

    fn tree() -> Tree {
        let raw: RawTree = serde_saphyr::from_str(TREE).unwrap();
        Tree::compile(&raw, "tree").unwrap()
    }

    fn bound(desired: &Desired, ns: &str) -> Vec<String> {
        desired.role_bindings.keys().filter(|(n, _)| n == ns).map(|(_, name)| name.clone()).collect()
    }

    #[test]
    fn declared_namespaces_carry_their_owners_labels() {
        let tree = tree();
        let desired = desired(&tree, &[]);
        assert_eq!(desired.namespaces.keys().collect::<Vec<_>>(), ["acme-main", "acme-web-dev", "globex-app"]);
        let web = tree.node("acme/web").unwrap();
        assert_eq!(desired.namespaces["acme-web-dev"], tree.labels(web).for_owned_namespace());
        for key in desired.namespaces["acme-web-dev"].keys() {
            assert!(is_canopy_namespace_label(&tree.domain, key), "{key}");
        }
        assert_eq!(node_key(&tree.domain), tree.labels(web).owner_key());
        assert_eq!(desired.namespaces["acme-web-dev"][MANAGED_BY], MANAGER);
        assert!(!is_canopy_namespace_label(&tree.domain, "acme.tree.other.dev/depth"));
    }

    #[test]
    fn members_are_bound_in_every_namespace_of_their_subtree() {
        let desired = desired(&tree(), &[]);
        assert_eq!(bound(&desired, "acme-main"), ["canopy:admin:user:alice", "canopy:edit:sa:acme-main:deployer"]);
        let dev = bound(&desired, "acme-web-dev");
        assert_eq!(dev.len(), 4, "{dev:?}");
        assert!(dev.contains(&"canopy:edit:user:bob".to_owned()));
        assert!(bound(&desired, "globex-app").is_empty());

        let sa = &desired.role_bindings[&("acme-web-dev".into(), "canopy:edit:sa:acme-main:deployer".into())];
        let subject = &sa.subjects.as_ref().unwrap()[0];
        assert_eq!((subject.kind.as_str(), subject.namespace.as_deref()), ("ServiceAccount", Some("acme-main")));
        assert_eq!(sa.metadata.namespace.as_deref(), Some("acme-web-dev"));
        assert_eq!(sa.role_ref.name, "edit");
        // Alice is bound at acme and again at acme/web: the upper binding is kept.
        let alice = &desired.role_bindings[&("acme-web-dev".into(), "canopy:admin:user:alice".into())];
        assert_eq!(alice.metadata.labels.as_ref().unwrap()["tree.canopy.dev/node"], "acme");
    }

    #[test]
    fn custom_roles_become_cluster_roles_bound_by_name() {
        let desired = desired(&tree(), &[]);
        let role = &desired.cluster_roles["canopy:role:reader"];
        let rule = &role.rules.as_ref().unwrap()[0];
        assert_eq!(rule.resources.as_deref(), Some(&["pods".to_owned()][..]));
        assert_eq!(rule.verbs, ["get", "list"]);
        assert_eq!(role.metadata.labels.as_ref().unwrap()["tree.canopy.dev/role"], "reader");
        let (_, group) =
            desired.role_bindings.iter().find(|((_, n), _)| n.starts_with("canopy:reader:group:")).unwrap();
        assert_eq!(group.role_ref.name, "canopy:role:reader");
        assert_eq!(group.subjects.as_ref().unwrap()[0].name, "Ops Team");
    }

    #[test]
    fn labelled_namespaces_join_the_subtree_their_labels_name() {
        let tree = tree();
        let web = tree.node("acme/web").unwrap();
        let created =
            ExistingNamespace { name: "acme-web-feature".into(), labels: tree.labels(web).for_owned_namespace() };
        // A declared namespace counts where the tree declares it, whatever its labels say.
        let mislabelled = ExistingNamespace { name: "globex-app".into(), labels: created.labels.clone() };
        let desired = desired(&tree, &[created, mislabelled]);
        assert_eq!(bound(&desired, "acme-web-feature").len(), 4);
        assert!(bound(&desired, "globex-app").is_empty());
        assert!(!desired.namespaces.contains_key("acme-web-feature"));
    }

    #[test]
    fn binding_names_are_clean_bounded_and_distinct() {
        let member =
            |name: &str| Member { kind: RawSubjectKind::User, name: name.into(), namespace: None, role: "view".into() };
        assert_eq!(binding_name(&member("alice")), "canopy:view:user:alice");
        let upper = binding_name(&member("Alice"));
        assert!(upper.starts_with("canopy:view:user:alice-") && upper != binding_name(&member("ALICE")));
        let odd = binding_name(&member("oidc:https://idp/alice@example.com"));
        assert!(!odd.contains('/') && !odd.contains('%') && !odd.contains('@'), "{odd}");
        let long = binding_name(&member(&"x".repeat(300)));
        assert!(long.len() <= "canopy:view:user:".len() + SUBJECT_MAX, "{long}");
    }

    #[test]
    fn selectors_scope_to_the_domain() {
        assert_eq!(binding_selector("canopy.dev"), "app.kubernetes.io/managed-by=canopy,tree.canopy.dev/node");
        assert_eq!(cluster_role_selector("x.io"), "app.kubernetes.io/managed-by=canopy,tree.x.io/role");
    }
}
