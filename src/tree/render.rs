//! `canopy tree`: the tree as text, like `kubectl hns tree` — nodes, their namespaces, members,
//! links and effective ceilings, for the platform team to read what a configuration means. With `--live`,
//! the same tree set beside the namespaces that exist upstream (see [`live`](super::live)): each
//! declared namespace marked present or missing, undeclared ones listed under their owner. Both
//! are pure functions of their inputs.

use std::fmt::Write;

use super::links::Link;
use super::live::{Live, LiveNamespace, State};
use super::{Ceiling, NodeId, Tree};

impl Tree {
    /// The whole tree, one node per line followed by indented details.
    pub fn render(&self) -> String {
        self.render_with(None)
    }

    /// The tree beside `namespaces`, the namespaces that exist upstream.
    pub fn render_live(&self, namespaces: &[LiveNamespace]) -> String {
        let live = Live::classify(self, namespaces);
        let mut out = self.render_with(Some(&live));
        if !live.orphans.is_empty() {
            let names: Vec<String> = live
                .orphans
                .iter()
                .map(|ns| match ns.labels.get(&format!("tree.{}/node", self.domain)) {
                    Some(node) => format!("{} (labelled for {node:?})", ns.name),
                    None => ns.name.clone(),
                })
                .collect();
            let _ = writeln!(out, "labelled for no node of this tree: {}", names.join(", "));
        }
        let (present, declared) = live.declared_counts();
        let undeclared: usize = live.undeclared.values().map(Vec::len).sum();
        let _ = writeln!(
            out,
            "live: {present} of {declared} declared namespaces exist, {undeclared} undeclared in the tree, {} orphaned",
            live.orphans.len()
        );
        out
    }

    fn render_with(&self, live: Option<&Live<'_>>) -> String {
        let mut out = String::new();
        let tops: Vec<NodeId> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].parent.is_none() && self.nodes[n].reach.is_none())
            .collect();
        for (i, &top) in tops.iter().enumerate() {
            self.render_node(&mut out, live, top, "", i + 1 == tops.len(), true);
        }
        if out.is_empty() {
            out.push_str("(no tenants: Canopy forwards every caller as themselves)\n");
        }
        out
    }

    fn render_node(&self, out: &mut String, live: Option<&Live<'_>>, id: NodeId, indent: &str, last: bool, top: bool) {
        let node = &self.nodes[id];
        let (branch, next_indent) = match (top, last) {
            (true, _) => ("", String::new()),
            (false, true) => ("└── ", format!("{indent}    ")),
            (false, false) => ("├── ", format!("{indent}│   ")),
        };
        let _ = writeln!(out, "{indent}{branch}{}  (prefix {:?})", node.name, node.prefix);
        let detail =
            if node.children.is_empty() { format!("{next_indent}    ") } else { format!("{next_indent}│   ") };
        if !node.namespaces.is_empty() {
            let names: Vec<String> = node
                .namespaces
                .iter()
                .map(|ns| {
                    let mut name = if ns.physical == format!("{}{}", node.prefix, ns.local) {
                        ns.physical.clone()
                    } else {
                        format!("{} (alias {})", ns.physical, ns.local)
                    };
                    if let Some(state) = live.and_then(|l| l.declared.get(ns.physical.as_str())) {
                        let _ = write!(name, " [{}]", describe_state(*state));
                    }
                    name
                })
                .collect();
            let _ = writeln!(out, "{detail}namespaces: {}", names.join(", "));
        }
        if let Some(undeclared) = live.and_then(|l| l.undeclared.get(&id)) {
            let names: Vec<String> = undeclared
                .iter()
                .map(|ns| if ns.terminating { format!("{} [terminating]", ns.name) } else { ns.name.clone() })
                .collect();
            let _ = writeln!(out, "{detail}undeclared: {}", names.join(", "));
        }
        if !node.members.is_empty() {
            let members: Vec<String> =
                node.members.iter().map(|m| format!("{:?} {} as {}", m.kind, m.name, m.role)).collect();
            let _ = writeln!(out, "{detail}members: {}", members.join(", "));
        }
        if !node.links.is_empty() {
            let links: Vec<String> = node.links.iter().map(describe_link).collect();
            let _ = writeln!(out, "{detail}links: {}", links.join(", "));
        }
        let _ = writeln!(out, "{detail}allow: {}", describe(&node.ceiling));
        for (i, &child) in node.children.iter().enumerate() {
            self.render_node(out, live, child, &next_indent, i + 1 == node.children.len(), false);
        }
    }
}

fn describe_state(state: State) -> &'static str {
    match state {
        State::Present => "present",
        State::Unlabelled => "present, not labelled",
        State::Terminating => "terminating",
        State::Missing => "missing",
    }
}

/// `ConfigMap platform/ca-bundle`, `Secret platform/registry as pull (kubernetes.io/dockerconfigjson)`.
fn describe_link(link: &Link) -> String {
    let mut text = format!("{} {}/{}", link.kind.name(), link.namespace, link.name);
    if link.copy_name != link.name {
        let _ = write!(text, " as {}", link.copy_name);
    }
    if let Some(kind) = &link.secret_type {
        let _ = write!(text, " ({kind})");
    }
    text
}

fn describe(ceiling: &Ceiling) -> String {
    let rules: Vec<String> = ceiling
        .resources
        .iter()
        .map(|r| {
            let groups: Vec<&str> = r.groups.iter().map(|g| if g.is_empty() { "core" } else { g.as_str() }).collect();
            format!(
                "{}/{} [{}]",
                groups.join("|"),
                r.resources.iter().cloned().collect::<Vec<_>>().join("|"),
                r.verbs.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    let mut text = rules.join("; ");
    if !ceiling.cluster_read.is_empty() {
        let read: Vec<String> = ceiling.cluster_read.iter().flat_map(|r| r.resources.iter().cloned()).collect();
        let _ = write!(text, "; read {}", read.join(", "));
    }
    let subresources: Vec<&str> = ceiling.subresources.iter().map(String::as_str).collect();
    let _ =
        write!(text, "; subresources {}", if subresources.is_empty() { "none".into() } else { subresources.join(",") });
    if ceiling.namespace_create {
        let _ = write!(text, "; may create namespaces (quota {})", ceiling.namespace_quota);
    }
    if let Some(types) = &ceiling.secret_types {
        let _ = write!(text, "; secret types {}", types.join(","));
    }
    if let Some(roles) = &ceiling.bindable_cluster_roles {
        let _ = write!(text, "; bindable ClusterRoles {}", roles.join(","));
    }
    if let Some(classes) = &ceiling.storage_classes {
        let _ = write!(text, "; storage classes {}", classes.join(","));
    }
    if let Some(classes) = &ceiling.ingress_classes {
        let _ = write!(text, "; ingress classes {}", classes.join(","));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw_tree::RawTree;

    #[test]
    fn renders_nodes_namespaces_members_and_ceilings() {
        let raw: RawTree = serde_saphyr::from_str(
            "nodes:\n  - name: acme\n    members: [{kind: User, name: alice, role: admin}]\n    links: [{kind: ConfigMap, namespace: platform, name: ca}, {kind: Secret, namespace: platform, name: r, as: pull, secretType: Opaque}]\n    children:\n      - name: web\n        namespaces: [dev]\n      - name: data\n        allow: {resources: [{resources: [pods], verbs: [get]}], subresources: [log], secretTypes: [Opaque], bindableClusterRoles: [view], storageClasses: [standard]}\n",
        )
        .unwrap();
        let text = Tree::compile(&raw, "tree").unwrap().render();
        assert!(text.starts_with("acme  (prefix \"acme-\")\n"), "{text}");
        assert!(text.contains("├── web  (prefix \"acme-web-\")"), "{text}");
        assert!(text.contains("namespaces: acme-web-dev"), "{text}");
        assert!(text.contains("└── data"), "{text}");
        assert!(
            text.contains(
                "core/pods [get]; subresources log; secret types Opaque; bindable ClusterRoles view; storage classes standard"
            ),
            "{text}"
        );
        assert!(text.contains("members: User alice as admin"), "{text}");
        assert!(text.contains("│   links: ConfigMap platform/ca, Secret platform/r as pull (Opaque)\n"), "{text}");
        assert!(!text.contains("live:") && !text.contains("[present]"), "{text}");
    }

    #[test]
    fn live_rendering_marks_declared_and_lists_undeclared_namespaces() {
        let raw: RawTree = serde_saphyr::from_str(
            "nodes:\n  - name: acme\n    children:\n      - name: web\n        namespaces: [dev, prod]\n      - name: data\n        namespaces: [warehouse]\n",
        )
        .unwrap();
        let tree = Tree::compile(&raw, "tree").unwrap();
        let labelled = |name: &str, node: &str| LiveNamespace {
            name: name.into(),
            labels: tree.labels(tree.node(node).unwrap()).for_owned_namespace(),
            terminating: false,
        };
        let live = [
            labelled("acme-web-dev", "acme/web"),
            labelled("acme-scratch", "acme"),
            labelled("acme-data-tmp", "acme/data"),
            LiveNamespace { name: "kube-system".into(), labels: Default::default(), terminating: false },
        ];
        let text = tree.render_live(&live);
        let expected = "\
acme  (prefix \"acme-\")
│   undeclared: acme-scratch
│   allow: */* [*]; subresources attach,binding,ephemeralcontainers,eviction,exec,log,portforward,proxy,resize,token
├── web  (prefix \"acme-web-\")
│       namespaces: acme-web-dev [present], acme-web-prod [missing]
│       allow: */* [*]; subresources attach,binding,ephemeralcontainers,eviction,exec,log,portforward,proxy,resize,token
└── data  (prefix \"acme-data-\")
        namespaces: acme-data-warehouse [missing]
        undeclared: acme-data-tmp
        allow: */* [*]; subresources attach,binding,ephemeralcontainers,eviction,exec,log,portforward,proxy,resize,token
live: 1 of 3 declared namespaces exist, 2 undeclared in the tree, 0 orphaned
";
        assert_eq!(text, expected);
    }
}
