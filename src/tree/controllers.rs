//! Controllers: cluster-wide principals that are not tenants (an ingress controller's
//! ServiceAccount, a backup operator). Each is compiled into a view of its own — a node after the
//! tenants' that owns no namespaces, has no members and whose names map to themselves — so every
//! filter of the request path applies to it unchanged: its ceiling, secret types and masks,
//! revocation on reload, audit, discovery. It reaches every namespace of the cluster or a
//! subtree's, under their physical names, and answers to its own ceiling alone: the tenants'
//! ceilings and deny rules are about tenants.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Ceiling, ClusterEntry, Member, Node, NodeId, Tree, TreeError, is_dns_label};
use crate::auth::Identity;
use crate::config::raw_tree::{RawController, RawReach, RawSubjectKind};
use crate::mask::MaskRule;

/// What a controller's view reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every namespace of the cluster.
    All,
    /// The namespaces of this node's subtree.
    Subtree(NodeId),
}

/// A controller's subjects and its view.
#[derive(Debug, Clone)]
pub struct Controller {
    /// Subjects as deny rules hold them: members without a role.
    pub subjects: Vec<Member>,
    pub view: NodeId,
}

impl Tree {
    /// Compiles `raw` (at `at`, `tree.controllers`) into views after the tenants' nodes.
    pub(super) fn add_controllers(&mut self, raw: &[RawController], at: &str) -> Result<(), TreeError> {
        let mut names = BTreeMap::new();
        for (i, controller) in raw.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let err = |suffix: &str, message: String| TreeError { at: format!("{at}.{suffix}"), message };
            if !is_dns_label(&controller.name) {
                return Err(err("name", format!("{:?} is not a DNS label", controller.name)));
            }
            if let Some(first) = names.insert(controller.name.clone(), at.clone()) {
                return Err(err(
                    "name",
                    format!("{:?} is already the name of the controller at {first}", controller.name),
                ));
            }
            let reach = match &controller.namespaces {
                RawReach::All => Reach::All,
                RawReach::Subtree(path) => Reach::Subtree(
                    self.node(path)
                        .ok_or_else(|| err("namespaces.subtree", format!("no node has the path {path:?}")))?,
                ),
            };
            let ceiling = Ceiling::compile(&controller.allow)
                .map_err(|(p, m)| err(&format!("allow.{p}"), m))?
                .inheriting(&Ceiling::top_default());
            if ceiling.namespace_create {
                return Err(err("allow.namespaces.create", "controllers never create namespaces".into()));
            }
            for (j, entry) in controller.allow.cluster_resources.iter().enumerate() {
                self.cluster_entries.extend(entry.resources.iter().enumerate().map(|(k, resource)| ClusterEntry {
                    at: format!("{at}.allow.clusterResources[{j}].resources[{k}]"),
                    groups: entry.api_groups.clone(),
                    resource: resource.clone(),
                }));
            }
            let mut masks = Vec::new();
            for (j, mask) in controller.masks.iter().enumerate() {
                // A controller holds no role, so a mask naming roles could never apply.
                let rule = MaskRule::compile(mask, &|_| false).map_err(|(p, m)| err(&format!("masks[{j}].{p}"), m))?;
                masks.extend(rule.on_pod_templates().into_iter().map(Arc::new));
                masks.push(Arc::new(rule));
            }
            let subjects = self.controller_subjects(controller, &at)?;
            let view = self.nodes.len();
            self.nodes.push(Node {
                name: controller.name.clone(),
                path: format!("controller:{}", controller.name),
                parent: None,
                children: Vec::new(),
                depth: 0,
                // Names map to themselves: every `prefix + name` of the request path is the name.
                prefix: String::new(),
                namespaces: Vec::new(),
                members: Vec::new(),
                ceiling,
                masks,
                links: Vec::new(),
                namespace_labels: BTreeMap::new(),
                denies: super::deny::Denies::default(),
                bounds: super::bounds::Bounds::default(),
                reach: Some(reach),
            });
            self.controllers.push(Controller { subjects, view });
        }
        Ok(())
    }

    /// The subjects of `controller`, refusing any that is a member of a node or a subject of an
    /// earlier controller: one principal, one kind of view.
    fn controller_subjects(&self, controller: &RawController, at: &str) -> Result<Vec<Member>, TreeError> {
        let mut subjects = Vec::new();
        if controller.subjects.is_empty() {
            return Err(TreeError { at: format!("{at}.subjects"), message: "must name at least one subject".into() });
        }
        for (j, raw) in controller.subjects.iter().enumerate() {
            let err = |suffix: &str, message: String| TreeError { at: format!("{at}.subjects[{j}]{suffix}"), message };
            let namespace = match (raw.kind, &raw.namespace) {
                (RawSubjectKind::ServiceAccount, Some(ns)) if is_dns_label(ns) => Some(ns.clone()),
                (RawSubjectKind::ServiceAccount, Some(ns)) => {
                    return Err(err(".namespace", format!("{ns:?} is not a namespace name")));
                }
                (RawSubjectKind::ServiceAccount, None) => {
                    return Err(err(".namespace", "a ServiceAccount needs its namespace".into()));
                }
                (_, Some(_)) => return Err(err(".namespace", "only ServiceAccounts have a namespace".into())),
                (_, None) => None,
            };
            if raw.name.is_empty() {
                return Err(err(".name", "must not be empty".into()));
            }
            let subject = Member { kind: raw.kind, name: raw.name.clone(), namespace, role: String::new() };
            let same =
                |m: &Member| m.kind == subject.kind && m.name == subject.name && m.namespace == subject.namespace;
            if let Some(node) = self.nodes.iter().find(|n| n.members.iter().any(same)) {
                return Err(err(
                    "",
                    format!("is a member of node {}: a principal is either a tenant or a controller", node.path),
                ));
            }
            if let Some(other) = self.controllers.iter().find(|c| c.subjects.iter().any(same)) {
                return Err(err("", format!("is already a subject of {}", self.nodes[other.view].path)));
            }
            subjects.push(subject);
        }
        Ok(subjects)
    }

    /// The views of the controllers `identity` acts as (one, unless groups make it several).
    pub fn controller_views(&self, identity: &Identity) -> BTreeSet<NodeId> {
        self.controllers.iter().filter(|c| c.subjects.iter().any(|s| s.matches(identity))).map(|c| c.view).collect()
    }

    /// The node a request in `view` about physical namespace `physical` answers to (its ceiling,
    /// secret types, masks and deny rules): a tenant view, the namespace's owner, which lies
    /// within it; a controller's view, itself.
    pub fn answering(&self, view: NodeId, physical: Option<&str>) -> NodeId {
        match self.nodes[view].reach {
            Some(_) => view,
            None => physical.and_then(|p| self.owner(p)).unwrap_or(view),
        }
    }

    /// Physical names of the namespaces `view` reaches across namespaces (`-A`), sorted: a
    /// tenant view's subtree, a controller's subtree; none for a controller reaching all, whose
    /// requests across namespaces go upstream as one.
    pub fn view_namespaces(&self, view: NodeId) -> Vec<String> {
        match self.nodes[view].reach {
            None => self.subtree_namespaces(view),
            Some(Reach::Subtree(node)) => self.subtree_namespaces(node),
            Some(Reach::All) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw_tree::RawTree;

    const TREE: &str = r#"
nodes:
  - name: acme
    members: [{kind: User, name: alice, role: admin}]
    children: [{name: web, namespaces: [dev]}]
  - name: globex
    namespaces: [main]
controllers:
  - name: ingress
    subjects: [{kind: ServiceAccount, name: ingress-nginx, namespace: ingress-nginx}, {kind: Group, name: ingress}]
    namespaces: all
    allow:
      resources: [{resources: [secrets, services], verbs: [get, list, watch]}]
      secretTypes: [kubernetes.io/tls]
  - name: backup
    subjects: [{kind: User, name: velero}]
    namespaces: {subtree: acme}
    allow: {resources: [{apiGroups: ["*"], resources: ["*"], verbs: [get, list, watch]}]}
"#;

    fn compile(yaml: &str) -> Result<Tree, TreeError> {
        let raw: RawTree = serde_saphyr::from_str(yaml).unwrap();
        Tree::compile(&raw, "tree")
    }

    #[test]
    fn controllers_are_views_after_the_tenants_with_their_own_ceiling() {
        let tree = compile(TREE).unwrap();
        let sa = Identity::new("system:serviceaccount:ingress-nginx:ingress-nginx", Vec::<String>::new());
        let ingress = *tree.controller_views(&sa).first().unwrap();
        assert_eq!(tree.nodes[ingress].path, "controller:ingress");
        assert_eq!(tree.nodes[ingress].reach, Some(Reach::All));
        assert!(tree.nodes[ingress].ceiling.allows_secret_type("kubernetes.io/tls"));
        assert!(!tree.nodes[ingress].ceiling.allows_secret_type("Opaque"));
        // Groups match as members' do; nobody else acts as a controller.
        let in_group = Identity::new("someone", vec!["ingress".to_owned()]);
        assert_eq!(tree.controller_views(&in_group).into_iter().collect::<Vec<_>>(), vec![ingress]);
        assert!(tree.controller_views(&Identity::new("alice", Vec::<String>::new())).is_empty());
        // A controller answers to itself, a tenant view to the namespace's owner.
        assert_eq!(tree.answering(ingress, Some("acme-web-dev")), ingress);
        let acme = tree.node("acme").unwrap();
        assert_eq!(tree.answering(acme, Some("acme-web-dev")), tree.node("acme/web").unwrap());
        // Controllers are not nodes of the tree: no path, no members, outside every subtree.
        assert_eq!(tree.node("controller:ingress"), None);
        assert_eq!(tree.subtree(acme).count(), 2);
        assert!(tree.memberships(&sa).next().is_none());
    }

    #[test]
    fn a_controller_reaches_all_namespaces_or_a_subtree_under_physical_names() {
        let tree = compile(TREE).unwrap();
        let ingress = *tree.controller_views(&Identity::new("x", vec!["ingress".to_owned()])).first().unwrap();
        let backup = *tree.controller_views(&Identity::new("velero", Vec::<String>::new())).first().unwrap();
        let (all, acme) =
            (crate::rewrite::ViewNames::new(&tree, ingress), crate::rewrite::ViewNames::new(&tree, backup));
        for name in ["acme-web-dev", "globex-main", "kube-system"] {
            assert_eq!(all.to_physical(name).as_deref(), Some(name));
            assert_eq!(all.to_virtual(name).as_deref(), Some(name));
        }
        assert_eq!(acme.to_physical("acme-web-dev").as_deref(), Some("acme-web-dev"));
        assert_eq!(acme.to_virtual("acme-web-dev").as_deref(), Some("acme-web-dev"));
        for outside in ["globex-main", "kube-system", "web-dev", "dev"] {
            assert_eq!(acme.to_physical(outside), None, "{outside}");
            assert_eq!(acme.to_virtual(outside), None, "{outside}");
        }
        assert_eq!(all.to_physical(""), None);
        assert_eq!(tree.view_namespaces(backup), vec!["acme-web-dev".to_owned()]);
        assert!(tree.view_namespaces(ingress).is_empty());
    }

    #[test]
    fn every_controller_error_names_its_path() {
        let cases = [
            ("name: ingress\n", "name: Ingress\n", "tree.controllers[0].name"),
            ("name: backup\n", "name: ingress\n", "tree.controllers[1].name"),
            ("{subtree: acme}", "{subtree: acme/db}", "tree.controllers[1].namespaces.subtree"),
            ("namespace: ingress-nginx}", "}", "tree.controllers[0].subjects[0].namespace"),
            (
                "{kind: User, name: velero}",
                "{kind: User, name: velero, namespace: x}",
                "tree.controllers[1].subjects[0].namespace",
            ),
            ("{kind: User, name: velero}", "{kind: User, name: alice}", "tree.controllers[1].subjects[0]"),
            ("{kind: User, name: velero}", "{kind: Group, name: ingress}", "tree.controllers[1].subjects[0]"),
            ("secretTypes: [kubernetes.io/tls]", "secretTypes: [\"*\"]", "tree.controllers[0].allow.secretTypes[0]"),
            (
                "verbs: [get, list, watch]}]}",
                "verbs: [get]}], namespaces: {create: true}}",
                "tree.controllers[1].allow.namespaces.create",
            ),
            (
                "namespaces: {subtree: acme}\n",
                "namespaces: {subtree: acme}\n    masks: [{resource: pods, roles: [view], read: [$.spec.nodeName]}]\n",
                "tree.controllers[1].masks[0].roles[0]",
            ),
        ];
        for (from, to, at) in cases {
            let yaml = TREE.replacen(from, to, 1);
            assert_ne!(yaml, TREE, "{from}");
            let err = compile(&yaml).map(|_| ()).unwrap_err();
            assert!(err.at.starts_with(at), "{to}: {err}");
        }
        let err = compile(&TREE.replace("{kind: User, name: velero}", "{kind: User, name: alice}")).unwrap_err();
        assert!(err.message.contains("member of node acme"), "{err}");
    }
}
