//! Deny rules: requests refused at a node and below it whatever RBAC and the ceiling allow.
//! A node holds its ancestors' rules, then its own, so none below can lift one; the pure
//! [`crate::policy::decide`] applies them, and so every answer that goes through it — the
//! request path, `kubectl auth can-i`, `who-can`, `access-matrix` — says the same.

use std::collections::BTreeSet;

use super::{Member, OwnedNamespace, TreeError};
use crate::auth::Identity;
use crate::config::raw_tree::{RawDeny, RawSubjectKind};
use crate::request::RequestInfo;

/// A compiled deny rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    /// The rule's config path (`tree.nodes[0].deny[1]`), named in every refusal.
    pub at: String,
    subjects: Vec<Member>,
    groups: BTreeSet<String>,
    resources: BTreeSet<String>,
    verbs: BTreeSet<String>,
    names: Vec<String>,
    /// Physical names; empty: every namespace.
    namespaces: Vec<String>,
    reason: Option<String>,
}

impl DenyRule {
    /// Compiles `raw`, declared at `at` on the node with `prefix` and `declared` namespaces.
    pub fn compile(raw: &RawDeny, prefix: &str, declared: &[OwnedNamespace], at: &str) -> Result<Self, TreeError> {
        let err = |path: &str, message: &str| TreeError { at: format!("{at}.{path}"), message: message.to_owned() };
        for (field, values) in [("apiGroups", &raw.api_groups), ("resources", &raw.resources), ("verbs", &raw.verbs)] {
            if values.is_empty() {
                return Err(err(field, "must name at least one (or \"*\")"));
            }
        }
        // A local name of this node, or a descendant's name relative to it (`web-dev`).
        let physical = |local: &str| {
            declared
                .iter()
                .find(|ns| ns.local == local)
                .map_or_else(|| format!("{prefix}{local}"), |ns| ns.physical.clone())
        };
        let mut namespaces = Vec::new();
        for (i, local) in raw.namespaces.iter().enumerate() {
            if !super::is_dns_label(local) {
                return Err(err(&format!("namespaces[{i}]"), &format!("{local:?} is not a DNS label")));
            }
            namespaces.push(physical(local));
        }
        let mut subjects = Vec::new();
        for (i, subject) in raw.subjects.iter().enumerate() {
            let namespace = match (subject.kind, &subject.namespace) {
                (RawSubjectKind::ServiceAccount, Some(local)) => Some(physical(local)),
                (RawSubjectKind::ServiceAccount, None) => {
                    return Err(err(&format!("subjects[{i}].namespace"), "a ServiceAccount needs its namespace"));
                }
                (_, Some(_)) => {
                    return Err(err(&format!("subjects[{i}].namespace"), "only ServiceAccounts have a namespace"));
                }
                (_, None) => None,
            };
            if subject.name.is_empty() {
                return Err(err(&format!("subjects[{i}].name"), "must not be empty"));
            }
            subjects.push(Member { kind: subject.kind, name: subject.name.clone(), namespace, role: String::new() });
        }
        Ok(DenyRule {
            at: at.to_owned(),
            subjects,
            groups: raw.api_groups.iter().cloned().collect(),
            resources: raw.resources.iter().cloned().collect(),
            verbs: raw.verbs.iter().cloned().collect(),
            names: raw.resource_names.clone(),
            namespaces,
            reason: raw.reason.clone(),
        })
    }

    /// Whether the rule refuses `info` from `identity` in physical namespace `namespace`
    /// (`None`: across namespaces, or a cluster-scoped resource).
    pub fn refuses(&self, identity: &Identity, info: &RequestInfo, namespace: Option<&str>) -> bool {
        let any = |set: &BTreeSet<String>, value: &str| set.contains("*") || set.contains(value);
        let resource = match info.subresource.as_str() {
            "" => any(&self.resources, &info.resource),
            sub => any(&self.resources, &info.resource) || self.resources.contains(&format!("{}/{sub}", info.resource)),
        };
        let name = info.name.is_empty()
            || self.names.is_empty()
            || self.names.iter().any(|n| n.strip_suffix('*').map_or(*n == info.name, |p| info.name.starts_with(p)));
        let namespaced =
            self.namespaces.is_empty() || namespace.is_some_and(|ns| self.namespaces.iter().any(|n| n == ns));
        // A collection verb reaches the objects the single-object one would: it is refused with it.
        let verb = any(&self.verbs, &info.verb)
            || (info.verb == "deletecollection" && any(&self.verbs, "delete"))
            || (matches!(info.verb.as_str(), "list" | "watch") && any(&self.verbs, "get"));
        (self.subjects.is_empty() || self.subjects.iter().any(|s| s.matches(identity)))
            && any(&self.groups, &info.api_group)
            && resource
            && verb
            && name
            && namespaced
    }

    /// Why a request it refuses is refused.
    pub fn message(&self) -> String {
        match &self.reason {
            Some(reason) => format!("denied by {}: {reason}", self.at),
            None => format!("denied by {}", self.at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn rule(yaml: &str) -> DenyRule {
        let raw: RawDeny = serde_saphyr::from_str(yaml).unwrap();
        DenyRule::compile(&raw, "acme-web-", &[], "tree.nodes[0].deny[0]").unwrap()
    }

    fn info(method: Method, path: &str) -> RequestInfo {
        RequestInfo::parse(&method, path, None).unwrap()
    }

    #[test]
    fn a_named_object_is_kept_from_writers_and_its_subresources_too() {
        let rule = rule(
            "{apiGroups: [apps], resources: [deployments], verbs: [update, patch, delete], resourceNames: [queue*]}",
        );
        let bob = Identity::new("bob", ["g"]);
        let ns = Some("acme-web-dev");
        let path = "/apis/apps/v1/namespaces/dev/deployments/queueworker";
        assert!(rule.refuses(&bob, &info(Method::PATCH, path), ns));
        assert!(rule.refuses(&bob, &info(Method::PUT, &format!("{path}/scale")), ns));
        assert!(!rule.refuses(&bob, &info(Method::GET, path), ns));
        assert!(!rule.refuses(&bob, &info(Method::PATCH, "/apis/apps/v1/namespaces/dev/deployments/web"), ns));
        assert!(rule.refuses(&bob, &info(Method::DELETE, "/apis/apps/v1/namespaces/dev/deployments"), ns));
        assert_eq!(rule.message(), "denied by tree.nodes[0].deny[0]");
    }

    #[test]
    fn subjects_and_namespaces_narrow_a_rule() {
        let rule =
            rule("{subjects: [{kind: Group, name: interns}], resources: [secrets], verbs: ['*'], namespaces: [prod]}");
        let intern = Identity::new("i", ["interns"]);
        let get = info(Method::GET, "/api/v1/namespaces/prod/secrets/s");
        assert!(rule.refuses(&intern, &get, Some("acme-web-prod")));
        assert!(!rule.refuses(&intern, &get, Some("acme-web-dev")));
        assert!(!rule.refuses(&intern, &get, None));
        assert!(!rule.refuses(&Identity::new("bob", ["staff"]), &get, Some("acme-web-prod")));
    }

    #[test]
    fn a_rule_that_names_nothing_is_refused_at_load() {
        let raw: RawDeny = serde_saphyr::from_str("{resources: [], verbs: [get]}").unwrap();
        let error = DenyRule::compile(&raw, "", &[], "tree.nodes[1].deny[2]").unwrap_err();
        assert_eq!(error.at, "tree.nodes[1].deny[2].resources");
    }
}
