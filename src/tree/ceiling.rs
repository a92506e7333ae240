//! Ceilings: what a subtree may ever do. A child's ceiling must lie within its parent's
//! (design invariant 2), checked once at load; the effective ceiling of a node is then simply its
//! own, or its parent's when it declares none.

use std::collections::BTreeSet;

use crate::config::raw_tree::{RawAllow, RawClusterRule, RawRule};

/// The subresources a ceiling can grant.
pub const SUBRESOURCES: [&str; 5] = ["exec", "attach", "portforward", "log", "proxy"];

/// One rule: groups × resources × verbs, `*` matching anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub groups: BTreeSet<String>,
    pub resources: BTreeSet<String>,
    pub verbs: BTreeSet<String>,
}

impl Rule {
    fn matches(&self, group: &str, resource: &str, verb: &str) -> bool {
        let has = |set: &BTreeSet<String>, v: &str| set.contains("*") || set.contains(v);
        has(&self.groups, group) && has(&self.resources, resource) && has(&self.verbs, verb)
    }
}

/// A subtree's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    /// Namespaced resources × verbs.
    pub resources: Vec<Rule>,
    /// Readable cluster-scoped resources (`verbs` are always get, list, watch).
    pub cluster_read: Vec<Rule>,
    pub subresources: BTreeSet<String>,
    pub namespace_create: bool,
    pub namespace_quota: u32,
}

impl Ceiling {
    /// The ceiling of a top-level node that declares none: every namespaced resource and verb,
    /// every subresource, no cluster-scoped reads, no namespace creation.
    pub fn top_default() -> Self {
        let star = || BTreeSet::from(["*".to_owned()]);
        Ceiling {
            resources: vec![Rule { groups: star(), resources: star(), verbs: star() }],
            cluster_read: Vec::new(),
            subresources: SUBRESOURCES.iter().map(|s| s.to_string()).collect(),
            namespace_create: false,
            namespace_quota: 0,
        }
    }

    /// Compiles a written `allow`, or explains which entry is wrong.
    pub fn compile(raw: &RawAllow) -> Result<Self, (String, String)> {
        for (i, sub) in raw.subresources.iter().enumerate() {
            if !SUBRESOURCES.contains(&sub.as_str()) {
                return Err((
                    format!("subresources[{i}]"),
                    format!("unknown subresource {sub:?}; known: {}", SUBRESOURCES.join(", ")),
                ));
            }
        }
        Ok(Ceiling {
            resources: raw.resources.iter().map(rule).collect(),
            cluster_read: raw.cluster_resources.iter().map(cluster_rule).collect(),
            subresources: raw.subresources.iter().cloned().collect(),
            namespace_create: raw.namespaces.create,
            namespace_quota: raw.namespaces.quota,
        })
    }

    /// May `verb` be used on the namespaced `group/resource`?
    pub fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        self.resources.iter().any(|r| r.matches(group, resource, verb))
    }

    /// May the cluster-scoped `group/resource` be read?
    pub fn allows_cluster_read(&self, group: &str, resource: &str) -> bool {
        self.cluster_read.iter().any(|r| r.matches(group, resource, "get"))
    }

    /// Why `self` is not within `parent`, naming the first excess (relative config path, reason).
    pub fn excess_over(&self, parent: &Ceiling) -> Option<(String, String)> {
        for (i, rule) in self.resources.iter().enumerate() {
            if let Some(what) = first_uncovered(rule, |g, r, v| parent.allows(g, r, v)) {
                return Some((format!("resources[{i}]"), format!("grants {what}, which the parent does not allow")));
            }
        }
        for (i, rule) in self.cluster_read.iter().enumerate() {
            if let Some(what) = first_uncovered(rule, |g, r, _| parent.allows_cluster_read(g, r)) {
                return Some((
                    format!("clusterResources[{i}]"),
                    format!("reads {what}, which the parent does not allow"),
                ));
            }
        }
        if let Some(sub) = self.subresources.difference(&parent.subresources).next() {
            return Some(("subresources".into(), format!("grants {sub}, which the parent does not allow")));
        }
        if self.namespace_create && !parent.namespace_create {
            return Some(("namespaces.create".into(), "allows namespace creation, which the parent does not".into()));
        }
        if self.namespace_create && self.namespace_quota > parent.namespace_quota {
            return Some((
                "namespaces.quota".into(),
                format!("quota {} exceeds the parent's {}", self.namespace_quota, parent.namespace_quota),
            ));
        }
        None
    }
}

/// The first group/resource/verb of `rule` that `allowed` refuses, as text. A `*` in the child
/// is covered only by a `*` in the parent.
fn first_uncovered(rule: &Rule, allowed: impl Fn(&str, &str, &str) -> bool) -> Option<String> {
    for g in &rule.groups {
        for r in &rule.resources {
            for v in &rule.verbs {
                if !allowed(g, r, v) {
                    let gr = if g.is_empty() { r.clone() } else { format!("{g}/{r}") };
                    return Some(format!("{v} on {gr}"));
                }
            }
        }
    }
    None
}

fn rule(raw: &RawRule) -> Rule {
    Rule {
        groups: raw.api_groups.iter().cloned().collect(),
        resources: raw.resources.iter().cloned().collect(),
        verbs: raw.verbs.iter().cloned().collect(),
    }
}

fn cluster_rule(raw: &RawClusterRule) -> Rule {
    Rule {
        groups: raw.api_groups.iter().cloned().collect(),
        resources: raw.resources.iter().cloned().collect(),
        verbs: ["get", "list", "watch"].map(String::from).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw_tree::RawNamespaceAllow;

    fn allow(rules: &[(&[&str], &[&str], &[&str])]) -> Ceiling {
        let raw = RawAllow {
            resources: rules
                .iter()
                .map(|(g, r, v)| RawRule {
                    api_groups: g.iter().map(|s| s.to_string()).collect(),
                    resources: r.iter().map(|s| s.to_string()).collect(),
                    verbs: v.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            ..Default::default()
        };
        Ceiling::compile(&raw).unwrap()
    }

    #[test]
    fn wildcards_match_anything() {
        let c = allow(&[(&[""], &["*"], &["get", "list"])]);
        assert!(c.allows("", "pods", "get"));
        assert!(!c.allows("", "pods", "delete"));
        assert!(!c.allows("apps", "deployments", "get"));
    }

    #[test]
    fn a_child_may_not_exceed_its_parent() {
        let parent = allow(&[(&["", "apps"], &["pods", "deployments"], &["get", "list"])]);
        assert_eq!(allow(&[(&[""], &["pods"], &["get"])]).excess_over(&parent), None);
        let (at, why) = allow(&[(&["apps"], &["deployments"], &["delete"])]).excess_over(&parent).unwrap();
        assert_eq!(at, "resources[0]");
        assert_eq!(why, "grants delete on apps/deployments, which the parent does not allow");
        // A child's wildcard is only covered by a parent's wildcard.
        assert!(allow(&[(&[""], &["*"], &["get"])]).excess_over(&parent).is_some());
        assert_eq!(allow(&[(&[""], &["*"], &["get"])]).excess_over(&Ceiling::top_default()), None);
    }

    #[test]
    fn namespace_quota_is_monotone() {
        let mut parent = allow(&[]);
        parent.namespace_create = true;
        parent.namespace_quota = 3;
        let mut child = allow(&[]);
        child.namespace_create = true;
        child.namespace_quota = 5;
        assert_eq!(child.excess_over(&parent).unwrap().0, "namespaces.quota");
        let raw = RawAllow { namespaces: RawNamespaceAllow { create: true, quota: 2 }, ..Default::default() };
        assert_eq!(Ceiling::compile(&raw).unwrap().excess_over(&parent), None);
    }

    #[test]
    fn unknown_subresources_are_refused() {
        let raw = RawAllow { subresources: vec!["exec".into(), "shell".into()], ..Default::default() };
        assert_eq!(Ceiling::compile(&raw).unwrap_err().0, "subresources[1]");
    }
}
