//! From the written tree to a [`Tree`], checking everything once: DNS names, unique siblings,
//! prefixes that cannot be confused, namespaces owned once and never hiding under a child's
//! prefix, known roles, and ceilings that only narrow going down.

use std::collections::HashMap;
use std::sync::Arc;

use super::{
    Ceiling, ClusterEntry, Member, Node, NodeId, OwnedNamespace, Tree, TreeError, is_dns_label, is_dns_subdomain,
};
use crate::config::raw_tree::{RawNode, RawSubjectKind, RawTree};
use crate::mask::MaskRule;

const BUILTIN_ROLES: [&str; 3] = ["admin", "edit", "view"];

impl Tree {
    /// Compiles and validates `raw`; `at` is its config path (`tree`).
    pub fn compile(raw: &RawTree, at: &str) -> Result<Tree, TreeError> {
        let err = |at: String, message: String| TreeError { at, message };
        if !is_dns_subdomain(&raw.domain) {
            return Err(err(format!("{at}.domain"), format!("{:?} is not a DNS subdomain", raw.domain)));
        }
        let mut tree = Tree { domain: raw.domain.clone(), ..Tree::default() };
        for (name, role) in &raw.roles {
            if BUILTIN_ROLES.contains(&name.as_str()) || !is_dns_label(name) {
                return Err(err(
                    format!("{at}.roles.{name}"),
                    "custom role names must be DNS labels other than admin, edit, view".into(),
                ));
            }
            let allow = crate::config::raw_tree::RawAllow { resources: role.rules.clone(), ..Default::default() };
            let ceiling = Ceiling::compile(&allow).map_err(|(p, m)| err(format!("{at}.roles.{name}.{p}"), m))?;
            tree.roles.insert(name.clone(), ceiling.resources);
        }
        let mut siblings = HashMap::new();
        for (i, node) in raw.nodes.iter().enumerate() {
            tree.add(node, None, &format!("{at}.nodes[{i}]"), &mut siblings)?;
        }
        tree.check_prefixes(at)?;
        tree.check_links()?;
        tree.add_controllers(&raw.controllers, &format!("{at}.controllers"))?;
        Ok(tree)
    }

    fn add(
        &mut self,
        raw: &RawNode,
        parent: Option<NodeId>,
        at: &str,
        siblings: &mut HashMap<String, String>,
    ) -> Result<(), TreeError> {
        let err = |suffix: &str, message: String| TreeError { at: format!("{at}{suffix}"), message };
        if !is_dns_label(&raw.name) {
            return Err(err(".name", format!("{:?} is not a DNS label (lower-case letters, digits, '-')", raw.name)));
        }
        if crate::request::view::API_ROOTS.contains(&raw.name.as_str()) {
            return Err(err(".name", format!("{:?} is reserved: view URLs would be ambiguous", raw.name)));
        }
        if let Some(first) = siblings.insert(raw.name.clone(), at.to_owned()) {
            return Err(err(".name", format!("{:?} is already used by its sibling at {first}", raw.name)));
        }
        let (path, prefix, depth, inherited) = match parent {
            None => {
                let prefix = raw.prefix.clone().unwrap_or_else(|| format!("{}-", raw.name));
                if !prefix.is_empty() && !is_dns_label(prefix.trim_end_matches('-')) {
                    return Err(err(".prefix", format!("{prefix:?} must be a DNS label, optionally ending in '-'")));
                }
                (raw.name.clone(), prefix, 1, Ceiling::top_default())
            }
            Some(p) => {
                if raw.prefix.is_some() {
                    return Err(err(".prefix", "only top-level nodes may set a prefix".into()));
                }
                let parent = &self.nodes[p];
                (
                    format!("{}/{}", parent.path, raw.name),
                    format!("{}{}-", parent.prefix, raw.name),
                    parent.depth + 1,
                    parent.ceiling.clone(),
                )
            }
        };
        let ceiling = match &raw.allow {
            None => inherited,
            // The platform itself (the root) limits nothing; below it, ceilings only narrow.
            Some(allow) => {
                let own =
                    Ceiling::compile(allow).map_err(|(p, m)| err(&format!(".allow.{p}"), m))?.inheriting(&inherited);
                for (i, entry) in allow.cluster_resources.iter().enumerate() {
                    self.cluster_entries.extend(entry.resources.iter().enumerate().map(|(j, resource)| ClusterEntry {
                        at: format!("{at}.allow.clusterResources[{i}].resources[{j}]"),
                        groups: entry.api_groups.clone(),
                        resource: resource.clone(),
                    }));
                }
                if let (Some(_), Some((p, why))) = (parent, own.excess_over(&inherited)) {
                    return Err(err(&format!(".allow.{p}"), format!("node {path} {why}")));
                }
                own
            }
        };
        let links = super::links::compile(&raw.links, &ceiling, &path, at)?;
        let id = self.nodes.len();
        let mut namespaces = Vec::new();
        for (i, local) in raw.namespaces.iter().enumerate() {
            namespaces.push(self.own(id, local, format!("{prefix}{local}"), &format!("{at}.namespaces[{i}]"))?);
        }
        for (local, physical) in &raw.aliases {
            namespaces.push(self.own(id, local, physical.clone(), &format!("{at}.aliases.{local}"))?);
            let canonical = format!("{prefix}{local}");
            self.alias_by_canonical.insert(canonical.clone(), physical.clone());
            self.canonical_by_alias.insert(physical.clone(), canonical);
        }
        let mut members = Vec::new();
        for (i, m) in raw.members.iter().enumerate() {
            let at_member = format!("{at}.members[{i}]");
            if !BUILTIN_ROLES.contains(&m.role.as_str()) && !self.roles.contains_key(&m.role) {
                return Err(TreeError {
                    at: format!("{at_member}.role"),
                    message: format!("unknown role {:?}", m.role),
                });
            }
            let namespace = match (m.kind, &m.namespace) {
                (RawSubjectKind::ServiceAccount, Some(local)) => {
                    match namespaces.iter().find(|ns| ns.local == *local) {
                        Some(ns) => Some(ns.physical.clone()),
                        None => {
                            return Err(TreeError {
                                at: format!("{at_member}.namespace"),
                                message: format!("{local:?} is not a namespace of node {path}"),
                            });
                        }
                    }
                }
                (RawSubjectKind::ServiceAccount, None) => {
                    return Err(TreeError {
                        at: format!("{at_member}.namespace"),
                        message: "a ServiceAccount member needs its namespace".into(),
                    });
                }
                (_, Some(_)) => {
                    return Err(TreeError {
                        at: format!("{at_member}.namespace"),
                        message: "only ServiceAccount members have a namespace".into(),
                    });
                }
                (_, None) => None,
            };
            if m.name.is_empty() {
                return Err(TreeError { at: format!("{at_member}.name"), message: "must not be empty".into() });
            }
            members.push(Member { kind: m.kind, name: m.name.clone(), namespace, role: m.role.clone() });
        }
        let mut masks = parent.map(|p| self.nodes[p].masks.clone()).unwrap_or_default();
        for (i, mask) in raw.masks.iter().enumerate() {
            let known_role = |role: &str| BUILTIN_ROLES.contains(&role) || self.roles.contains_key(role);
            let rule = MaskRule::compile(mask, &known_role).map_err(|(p, m)| err(&format!(".masks[{i}].{p}"), m))?;
            masks.extend(rule.on_pod_templates().into_iter().map(Arc::new));
            masks.push(Arc::new(rule));
        }
        let mut denies = parent.map(|p| self.nodes[p].denies.clone()).unwrap_or_default();
        for (i, raw_deny) in raw.deny.iter().enumerate() {
            denies.push(Arc::new(super::deny::DenyRule::compile(
                raw_deny,
                &prefix,
                &namespaces,
                &format!("{at}.deny[{i}]"),
            )?));
        }
        let mut bounds = parent.map(|p| self.nodes[p].bounds.all().to_vec()).unwrap_or_default();
        for (i, raw_bound) in raw.bounds.iter().enumerate() {
            let compiled = super::bounds::Bound::compile(raw_bound, &format!("{at}.bounds[{i}]"))?;
            bounds.extend(compiled.into_iter().map(Arc::new));
        }
        let inherited = parent.map(|p| self.nodes[p].namespace_labels.clone()).unwrap_or_default();
        let namespace_labels = super::platform_labels::compile(&inherited, &raw.namespace_labels, &self.domain)
            .map_err(|(p, m)| err(&format!(".{p}"), m))?;
        self.by_path.insert(path.clone(), id);
        self.nodes.push(Node {
            name: raw.name.clone(),
            path,
            parent,
            children: Vec::new(),
            depth,
            prefix,
            namespaces,
            members,
            ceiling,
            masks,
            links,
            namespace_labels,
            denies,
            bounds: super::bounds::Bounds::new(bounds),
            reach: None,
        });
        if let Some(p) = parent {
            self.nodes[p].children.push(id);
        }
        let mut child_names = HashMap::new();
        for (i, child) in raw.children.iter().enumerate() {
            self.add(child, Some(id), &format!("{at}.children[{i}]"), &mut child_names)?;
        }
        Ok(())
    }

    fn own(&mut self, node: NodeId, local: &str, physical: String, at: &str) -> Result<OwnedNamespace, TreeError> {
        let err = |message: String| TreeError { at: at.to_owned(), message };
        if !is_dns_label(local) {
            return Err(err(format!("{local:?} is not a DNS label")));
        }
        if !is_dns_label(&physical) {
            return Err(err(format!("physical name {physical:?} is not a DNS label of at most 63 characters")));
        }
        let index = self.nodes.get(node).map_or(0, |n| n.namespaces.len());
        if self.by_physical.contains_key(&physical) {
            return Err(err(format!("namespace {physical:?} is owned twice")));
        }
        // Index fixed up when the node is pushed; entries are only read after compile.
        self.by_physical.insert(physical.clone(), (node, index));
        Ok(OwnedNamespace { local: local.to_owned(), physical })
    }

    /// No node's prefix may start another node's prefix unless it is that node's ancestor, and
    /// no declared namespace may sit under a descendant's prefix: either would make a physical
    /// name's owner ambiguous.
    fn check_prefixes(&mut self, at: &str) -> Result<(), TreeError> {
        // Fix the namespace indexes recorded before each node existed.
        for (id, node) in self.nodes.iter().enumerate() {
            for (i, ns) in node.namespaces.iter().enumerate() {
                self.by_physical.insert(ns.physical.clone(), (id, i));
            }
        }
        for (a, na) in self.nodes.iter().enumerate() {
            for (b, nb) in self.nodes.iter().enumerate() {
                if a != b && nb.prefix.starts_with(&na.prefix) && !self.is_within(b, a) {
                    return Err(TreeError {
                        at: format!("{at} ({})", nb.path),
                        message: format!(
                            "prefix {:?} of node {} overlaps prefix {:?} of node {}",
                            nb.prefix, nb.path, na.prefix, na.path
                        ),
                    });
                }
            }
            for ns in &na.namespaces {
                for &child in &na.children {
                    let child_prefix = &self.nodes[child].prefix;
                    if ns.physical.starts_with(child_prefix.as_str()) {
                        return Err(TreeError {
                            at: format!("{at} ({})", na.path),
                            message: format!(
                                "namespace {:?} collides with the prefix {child_prefix:?} of child {}",
                                ns.physical, self.nodes[child].path
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;

    fn compile(yaml: &str) -> Result<Tree, TreeError> {
        let raw: RawTree = serde_saphyr::from_str(yaml).unwrap();
        Tree::compile(&raw, "tree")
    }

    const EXAMPLE: &str = r#"
nodes:
  - name: acme
    members: [{kind: User, name: alice, role: admin}]
    allow:
      resources: [{apiGroups: ["", apps], resources: ["*"], verbs: ["*"]}]
      subresources: [exec, log, portforward, attach]
      namespaces: {create: true, quota: 10}
    children:
      - name: web
        namespaces: [dev, prod]
        members: [{kind: User, name: bob, role: edit}]
      - name: data
        namespaces: [warehouse]
        members: [{kind: User, name: carol, role: view}]
        allow:
          resources: [{resources: ["*"], verbs: [get, list, watch]}]
          subresources: [log]
  - name: globex
    namespaces: [main]
    members: [{kind: User, name: dave, role: admin}]
"#;

    #[test]
    fn example_compiles_with_prefixes_and_ceilings() {
        let tree = compile(EXAMPLE).unwrap();
        let web = tree.node("acme/web").unwrap();
        assert_eq!(tree.nodes[web].prefix, "acme-web-");
        assert_eq!(tree.nodes[web].namespaces[1].physical, "acme-web-prod");
        assert_eq!(
            tree.declared("acme-data-warehouse").map(|(n, ns)| (n, ns.local.as_str())),
            Some((tree.node("acme/data").unwrap(), "warehouse"))
        );
        let data = tree.node("acme/data").unwrap();
        assert!(!tree.nodes[data].ceiling.subresources.contains("exec"));
        assert!(tree.nodes[web].ceiling.subresources.contains("exec"));
        let acme = tree.node("acme").unwrap();
        assert!(tree.is_within(web, acme) && !tree.is_within(acme, web));
        assert_eq!(tree.subtree(acme).count(), 3);
        let bob = Identity::new("bob", Vec::<String>::new());
        assert_eq!(tree.member_at(&bob, web).unwrap().role, "edit");
        assert!(tree.member_at(&bob, acme).is_none());
        let alice = Identity::new("alice", Vec::<String>::new());
        assert_eq!(tree.member_at(&alice, data).unwrap().role, "admin");
    }

    #[test]
    fn labels_name_every_ancestor() {
        let tree = compile(EXAMPLE).unwrap();
        let labels = tree.labels(tree.node("acme/web").unwrap()).for_owned_namespace();
        assert_eq!(labels["acme.tree.canopy.dev/depth"], "1");
        assert_eq!(labels["acme-web.tree.canopy.dev/depth"], "0");
        assert_eq!(labels["tree.canopy.dev/node"], "acme-web");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "canopy");
    }

    #[test]
    fn a_child_granting_more_than_its_parent_is_refused_with_its_path() {
        let err = compile(&EXAMPLE.replace("subresources: [log]", "subresources: [log, proxy]")).unwrap_err();
        assert_eq!(err.at, "tree.nodes[0].children[1].allow.subresources");
        assert!(err.message.contains("node acme/data grants proxy"), "{err}");
    }

    #[test]
    fn secret_types_narrow_down_the_tree_and_default_to_every_type() {
        let yaml = "nodes: [{name: a, allow: {secretTypes: [Opaque, kubernetes.io/tls]}, children: [{name: b}, {name: c, allow: {}}, {name: d, allow: {secretTypes: [Opaque, kubernetes.io/ssh-auth]}}]}]";
        let err = compile(yaml).unwrap_err();
        assert_eq!(err.at, "tree.nodes[0].children[2].allow.secretTypes[1]");
        assert!(err.message.contains("node a/d allows secret type kubernetes.io/ssh-auth"), "{err}");
        let tree = compile(&yaml.replace(", kubernetes.io/ssh-auth", "")).unwrap();
        for path in ["a/b", "a/c"] {
            let ceiling = &tree.nodes[tree.node(path).unwrap()].ceiling;
            assert!(ceiling.allows_secret_type("kubernetes.io/tls"), "{path}");
            assert!(!ceiling.allows_secret_type("kubernetes.io/ssh-auth"), "{path}");
        }
        let tree = compile(EXAMPLE).unwrap();
        assert!(tree.nodes[tree.node("globex").unwrap()].ceiling.secret_types.is_none());
    }

    #[test]
    fn bindable_roles_and_classes_narrow_down_the_tree() {
        let yaml = "nodes: [{name: a, allow: {bindableClusterRoles: [view, edit], storageClasses: [standard], ingressClasses: [public]}, children: [{name: b}, {name: c, allow: {bindableClusterRoles: [view], storageClasses: [fast]}}]}]";
        let err = compile(yaml).unwrap_err();
        assert_eq!(err.at, "tree.nodes[0].children[1].allow.storageClasses[0]");
        assert!(err.message.contains("node a/c allows storage class fast"), "{err}");
        let err = compile(&yaml.replace("[view]", "[admin]")).unwrap_err();
        assert_eq!(err.at, "tree.nodes[0].children[1].allow.bindableClusterRoles[0]");
        let tree = compile(&yaml.replace("[fast]", "[standard]")).unwrap();
        let (b, c) = (&tree.nodes[tree.node("a/b").unwrap()].ceiling, &tree.nodes[tree.node("a/c").unwrap()].ceiling);
        assert!(b.allows_binding("edit") && !c.allows_binding("edit") && c.allows_binding("view"));
        // c names no ingress classes: a's.
        assert!(c.allows_ingress_class("public") && !c.allows_ingress_class("internal"));
        // A top-level node may name any ClusterRole: the platform decides there.
        assert!(compile("nodes: [{name: a, allow: {bindableClusterRoles: [cluster-admin]}}]").is_ok());
    }

    #[test]
    fn cluster_resources_are_checked_against_discovery_with_their_paths() {
        let tree = compile(
            "nodes: [{name: a, allow: {clusterResources: [{resources: [nodes]}, {apiGroups: [example.com, other.com], resources: [gadgets, doohickeys]}]}}]",
        )
        .unwrap();
        let mut table = crate::request::scope::ScopeTable::default();
        table.insert("", "nodes", true);
        table.insert("example.com", "gadgets", true);
        assert_eq!(tree.check_cluster_resources(&table), Ok(()), "unknown to discovery: not refused");
        table.insert("other.com", "doohickeys", false);
        let err = tree.check_cluster_resources(&table).unwrap_err();
        assert_eq!(err.at, "tree.nodes[0].allow.clusterResources[1].resources[1]");
        assert!(err.message.contains("\"doohickeys\" (API group \"other.com\") is namespaced"), "{err}");
    }

    #[test]
    fn every_validation_names_its_path() {
        let cases = [
            ("nodes: [{name: Acme}]", "tree.nodes[0].name"),
            ("nodes: [{name: a}, {name: a}]", "tree.nodes[1].name"),
            ("nodes: [{name: a, namespaces: [x]}, {name: b, aliases: {y: a-x}}]", "tree.nodes[1].aliases.y"),
            ("nodes: [{name: a, members: [{kind: User, name: u, role: boss}]}]", "tree.nodes[0].members[0].role"),
            (
                "nodes: [{name: a, members: [{kind: ServiceAccount, name: s, role: view}]}]",
                "tree.nodes[0].members[0].namespace",
            ),
            ("nodes: [{name: a, children: [{name: b, prefix: x-}]}]", "tree.nodes[0].children[0].prefix"),
            ("nodes: [{name: a, namespaces: [b-x], children: [{name: b}]}]", "tree (a)"),
            ("nodes: [{name: a}, {name: a-b}, ]", "tree"),
        ];
        for (yaml, at) in cases {
            let err = compile(yaml).map(|_| ()).unwrap_err();
            assert!(err.at.starts_with(at), "{yaml}: {err}");
        }
        // Overlapping prefixes between unrelated nodes.
        let err = compile("nodes: [{name: a, children: [{name: b}]}, {name: x, prefix: a-b-c-}]").unwrap_err();
        assert!(err.message.contains("overlaps"), "{err}");
    }
}
