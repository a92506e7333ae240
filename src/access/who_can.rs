//! `canopy who-can VERB RESOURCE`: the members who may do it, and those the tree or RBAC refuses.
//!
//! A member of node N reaches a namespace when the namespace's owner lies in subtree(N). Its
//! request is decided in a view: the `--view` the question is asked in when the member may use
//! it (N is that view or above it), else N itself (N lies below the view, and the member uses
//! its own node's view). Without `--view`, N itself — the widest ceiling the member can stand in.
//! A subject bound at several nodes is asked about once, in its highest view and, there, with
//! the membership nearest to it, as Canopy picks it at request time.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::resources::Target;
use super::{Ask, By, GROUP_PROBE_USER, Gate, Pending, Verdict, identity, table, verdicts};
use crate::auth::Identity;
use crate::config::raw_tree::RawSubjectKind;
use crate::rewrite::ViewNames;
use crate::tree::{Member, NodeId, Tree};

/// A member and the view its request would be made in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'t> {
    pub member: &'t Member,
    /// Where the member is bound.
    pub via: NodeId,
    pub view: NodeId,
    pub identity: Identity,
}

/// The members who reach `physical` (for a cluster-scoped resource, `None`: who may use a
/// view at, above or below `frame`), each once, in the view its request would be made in.
pub fn candidates<'t>(tree: &'t Tree, frame: Option<NodeId>, physical: Option<&str>) -> Vec<Candidate<'t>> {
    let owner = physical.map(|p| tree.owner(p));
    let mut found: Vec<Candidate<'t>> = Vec::new();
    for (id, node) in tree.nodes.iter().enumerate() {
        if let Some(owner) = owner
            && !owner.is_some_and(|o| tree.is_within(o, id))
        {
            continue;
        }
        let view = match frame {
            None => id,
            Some(frame) if tree.is_within(frame, id) => frame,
            Some(frame) if tree.is_within(id, frame) => id,
            Some(_) => continue,
        };
        for member in &node.members {
            let candidate = Candidate { member, via: id, view, identity: member_identity(member) };
            match found.iter_mut().find(|c| same_subject(c.member, member)) {
                None => found.push(candidate),
                Some(seen) => {
                    let depth = |n: NodeId| tree.nodes[n].depth;
                    let higher = depth(view) < depth(seen.view);
                    let nearer = depth(view) == depth(seen.view) && depth(id) > depth(seen.via);
                    if higher || nearer {
                        *seen = candidate;
                    }
                }
            }
        }
    }
    found
}

fn same_subject(a: &Member, b: &Member) -> bool {
    (a.kind, &a.name, &a.namespace) == (b.kind, &b.name, &b.namespace)
}

/// The identity a member's requests carry (see the module docs of [`super`]).
pub fn member_identity(member: &Member) -> Identity {
    match member.kind {
        RawSubjectKind::User => identity(&member.name, &[]),
        RawSubjectKind::Group => identity(GROUP_PROBE_USER, std::slice::from_ref(&member.name)),
        RawSubjectKind::ServiceAccount => {
            let namespace = member.namespace.as_deref().unwrap_or_default();
            identity(&format!("system:serviceaccount:{namespace}:{}", member.name), &[])
        }
    }
}

/// Who a row is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Who {
    pub subject: String,
    pub kind: String,
    /// As the question's view names it (physical without one); absent for cluster-scoped ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Where the member is bound.
    pub via: String,
    /// The view its request is decided in.
    pub view: String,
    pub role: String,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub who: Who,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The rows of `planned`, given upstream's answers to its questions in order.
pub fn rows(planned: Vec<(Who, Pending)>, answers: &[Value]) -> Vec<Row> {
    let (who, pending): (Vec<Who>, Vec<Pending>) = planned.into_iter().unzip();
    who.into_iter().zip(verdicts(&pending, answers)).map(|(who, verdict)| Row { who, verdict }).collect()
}

/// Every candidate's question about `verb` on `target` in `physical` (None: cluster-scoped).
pub fn plan(
    tree: &Tree,
    frame: Option<NodeId>,
    physical: Option<&str>,
    verb: &str,
    target: &Target<'_>,
) -> Vec<(Who, Pending)> {
    let shown = physical.map(|p| match frame {
        Some(frame) => ViewNames::new(tree, frame).to_virtual(p).unwrap_or_else(|| p.to_owned()),
        None => p.to_owned(),
    });
    candidates(tree, frame, physical)
        .into_iter()
        .map(|c| {
            let namespace = physical.and_then(|p| ViewNames::new(tree, c.view).to_virtual(p)).unwrap_or_default();
            let ask = Ask {
                verb: verb.to_owned(),
                group: target.resource.group.clone(),
                resource: target.resource.resource.clone(),
                subresource: target.subresource.clone(),
                namespace,
            };
            let mut pending = Pending::new(tree, c.view, &c.identity, ask);
            // Upstream's reason names the namespace as the question does, like the NAMESPACE column.
            if let (Gate::AsCaller(Some((_, named))), Some(shown)) = (&mut pending.gate, &shown) {
                named.clone_from(shown);
            }
            let subject = match (&c.member.kind, &c.member.namespace) {
                (RawSubjectKind::ServiceAccount, Some(ns)) => format!("{ns}/{}", c.member.name),
                _ => c.member.name.clone(),
            };
            let who = Who {
                subject,
                kind: format!("{:?}", c.member.kind),
                namespace: shown.clone(),
                via: tree.nodes[c.via].path.clone(),
                view: tree.nodes[c.view].path.clone(),
                role: c.member.role.clone(),
            };
            (who, pending)
        })
        .collect()
}

/// The answer to a `who-can` question.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub verb: String,
    pub resource: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// As asked (`-n`); absent when every namespace of the view was asked about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Allowed first, then by namespace and subject.
    pub subjects: Vec<Row>,
}

impl Report {
    pub fn new(
        verb: &str,
        resource: String,
        view: Option<String>,
        namespace: Option<String>,
        mut rows: Vec<Row>,
    ) -> Self {
        let key = |r: &Row| (!r.verdict.allowed, r.who.namespace.clone(), r.who.subject.clone(), r.who.kind.clone());
        rows.sort_by_key(key);
        Report { verb: verb.to_owned(), resource, view, namespace, subjects: rows }
    }

    /// A table, then who is allowed in one line.
    pub fn render(&self) -> String {
        let mut out = format!("who can {} {}", self.verb, self.resource);
        if let Some(namespace) = &self.namespace {
            out.push_str(&format!(" in namespace {namespace}"));
        }
        if let Some(view) = &self.view {
            out.push_str(&format!(" (view {view})"));
        }
        out.push_str(" through Canopy:\n");
        let many = self.namespace.is_none() && self.subjects.iter().any(|r| r.who.namespace.is_some());
        let mut header = vec!["SUBJECT", "KIND"];
        if many {
            header.push("NAMESPACE");
        }
        header.extend(["VIA", "VIEW", "ROLE", "ALLOWED", "WHY"]);
        let rows: Vec<Vec<String>> = self
            .subjects
            .iter()
            .map(|r| {
                let who = &r.who;
                let mut row = vec![who.subject.clone(), who.kind.clone()];
                if many {
                    row.push(who.namespace.clone().unwrap_or_default());
                }
                let by = match r.verdict.by {
                    By::Canopy => "Canopy",
                    By::Upstream => "upstream",
                };
                let allowed = if r.verdict.allowed { "yes" } else { "no" };
                let why = match &r.verdict.except {
                    Some(except) => format!("{by}: {}; Canopy: {except}", r.verdict.reason),
                    None => format!("{by}: {}", r.verdict.reason),
                };
                row.extend([who.via.clone(), who.view.clone(), who.role.clone(), allowed.into(), why]);
                row
            })
            .collect();
        if rows.is_empty() {
            out.push_str("no member of the tree reaches it\n");
            return out;
        }
        out.push_str(&table::render(&header, &rows));
        let allowed: BTreeSet<&str> =
            self.subjects.iter().filter(|r| r.verdict.allowed).map(|r| r.who.subject.as_str()).collect();
        let names: Vec<&str> = allowed.into_iter().collect();
        out.push_str(&format!("allowed: {}\n", if names.is_empty() { "nobody".to_owned() } else { names.join(", ") }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::resources::{resolve, tests::sample};
    use crate::config::raw_tree::RawTree;
    use crate::policy::tests::example;

    fn subjects(found: &[Candidate<'_>], tree: &Tree) -> Vec<String> {
        found.iter().map(|c| format!("{}@{}", c.member.name, tree.nodes[c.view].path)).collect()
    }

    #[test]
    fn members_above_and_at_the_namespace_owner_reach_it() {
        let tree = example();
        let web = tree.node("acme/web");
        assert_eq!(subjects(&candidates(&tree, web, Some("acme-web-dev")), &tree), ["alice@acme/web", "bob@acme/web"]);
        assert_eq!(subjects(&candidates(&tree, None, Some("acme-web-dev")), &tree), ["alice@acme", "bob@acme/web"]);
        // From view acme, bob still reaches web-dev, through his own view.
        let acme = tree.node("acme");
        assert_eq!(subjects(&candidates(&tree, acme, Some("acme-web-dev")), &tree), ["alice@acme", "bob@acme/web"]);
        assert_eq!(subjects(&candidates(&tree, None, Some("globex-main")), &tree), ["dave@globex"]);
        assert!(candidates(&tree, None, Some("kube-system")).is_empty());
        // Cluster-scoped: whoever may use a view at, above or below the frame.
        assert_eq!(
            subjects(&candidates(&tree, tree.node("acme/data"), None), &tree),
            ["alice@acme/data", "carol@acme/data"]
        );
        assert_eq!(subjects(&candidates(&tree, None, None), &tree).len(), 4);
    }

    #[test]
    fn a_subject_bound_twice_is_asked_about_once_with_the_nearest_role() {
        let raw: RawTree = serde_saphyr::from_str(
            "nodes:\n  - name: acme\n    members: [{kind: User, name: alice, role: admin}, {kind: Group, name: ops, role: view}]\n    children:\n      - name: web\n        namespaces: [dev]\n        members: [{kind: User, name: alice, role: edit}, {kind: ServiceAccount, name: ci, namespace: dev, role: edit}]\n",
        )
        .unwrap();
        let tree = Tree::compile(&raw, "tree").unwrap();
        let found = candidates(&tree, tree.node("acme/web"), Some("acme-web-dev"));
        let roles: Vec<(&str, &str)> = found.iter().map(|c| (c.member.name.as_str(), c.member.role.as_str())).collect();
        assert_eq!(roles, [("alice", "edit"), ("ops", "view"), ("ci", "edit")]);
        // Without a view, alice stands as high as she can: at acme, as admin.
        let found = candidates(&tree, None, Some("acme-web-dev"));
        assert_eq!((found[0].member.role.as_str(), tree.nodes[found[0].view].path.as_str()), ("admin", "acme"));
        assert_eq!(found[1].identity.user, GROUP_PROBE_USER);
        assert_eq!(found[1].identity.groups, ["ops", "system:authenticated"]);
        assert_eq!(found[2].identity.user, "system:serviceaccount:acme-web-dev:ci");
    }

    #[test]
    fn the_ceiling_refuses_a_resource_rbac_would_allow() {
        let tree = example();
        let resources = sample();
        let target = resolve(&resources, "deployments.apps").unwrap();
        let planned = plan(&tree, tree.node("acme/web"), Some("acme-web-dev"), "create", &target);
        assert!(planned.iter().all(|(who, p)| who.namespace.as_deref() == Some("dev") && p.question.is_some()));
        assert_eq!(planned[0].1.question.as_ref().unwrap().ask.namespace, "acme-web-dev");
        let mut pdb = target.resource.clone();
        pdb.group = "policy".into();
        pdb.resource = "poddisruptionbudgets".into();
        let target = Target { resource: &pdb, subresource: String::new() };
        let planned = plan(&tree, tree.node("acme/web"), Some("acme-web-dev"), "create", &target);
        assert!(planned.iter().all(|(_, pending)| matches!(pending.gate, Gate::Refused(_))), "{planned:?}");
        let rows = rows(planned, &[]);
        assert!(rows.iter().all(|r| (r.verdict.allowed, r.verdict.by) == (false, By::Canopy)), "{rows:?}");
        let (view, namespace) = (Some("acme/web".to_owned()), Some("dev".to_owned()));
        let report = Report::new("create", "poddisruptionbudgets.policy".into(), view, namespace, rows);
        let text = report.render();
        assert!(text.starts_with("who can create poddisruptionbudgets.policy in namespace dev (view acme/web) through Canopy:\nSUBJECT  KIND  VIA       VIEW      ROLE   ALLOWED  WHY\n"), "{text}");
        assert!(
            text.contains(
                "alice    User  acme      acme/web  admin  no       Canopy: poddisruptionbudgets.policy is forbidden"
            ),
            "{text}"
        );
        assert!(text.ends_with("allowed: nobody\n"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["subjects"][0]["by"], "canopy");
        assert_eq!(json["subjects"][1]["subject"], "bob");
        assert_eq!(json["subjects"][1]["allowed"], false);
    }

    #[test]
    fn who_can_names_the_objects_a_label_rule_keeps_from_those_allowed() {
        let tree = example();
        let resources = sample();
        let target = resolve(&resources, "configmaps").unwrap();
        let planned = plan(&tree, tree.node("acme/web"), Some("acme-web-dev"), "delete", &target);
        let allowed: Vec<Value> = planned.iter().map(|_| serde_json::json!({"status": {"allowed": true}})).collect();
        let rows = rows(planned, &allowed);
        let report = Report::new("delete", "configmaps".into(), None, Some("dev".into()), rows);
        let text = report.render();
        let bob = text.lines().find(|l| l.starts_with("bob ")).unwrap();
        assert!(
            bob.contains("yes") && bob.ends_with("upstream: allowed upstream; Canopy: except objects labelled platform.canopy.dev/protected=true (tree.nodes[0].deny[1]: the platform team protects it)"),
            "{text}"
        );
    }
}
