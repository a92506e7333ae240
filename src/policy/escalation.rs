//! Escalation (design invariant 6): a Role, or a custom role a RoleBinding names, may grant no
//! more than the view's ceiling. Each RBAC rule's API groups × resources × verbs must lie within
//! the ceiling's namespaced rules exactly as a request through Canopy is checked: a
//! `resource/subresource` needs its resource, and every subresource but those its resource's verbs
//! cover (status, scale) needs the ceiling's grant by name too; RBAC's `*` resource reaches every
//! subresource, so it needs all of them. Pure functions over the rules.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::tree::ceiling::SUBRESOURCES;
use crate::tree::{Ceiling, Rule};

/// The first thing a list of rules grants beyond a ceiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excess {
    /// Index of the rule in its list.
    pub index: usize,
    /// What it grants, e.g. `create on policy/poddisruptionbudgets`.
    pub what: String,
}

/// The rules of a Role (its `rules` field, as the apiserver returns it) as ceiling rules;
/// `nonResourceURLs` and `resourceNames` only narrow what a rule grants, so they are left out.
pub fn rules_of(role: &Value) -> Vec<Rule> {
    let set = |rule: &Value, key: &str| -> BTreeSet<String> {
        rule.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    role.get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|rule| Rule {
            groups: set(rule, "apiGroups"),
            resources: set(rule, "resources"),
            verbs: set(rule, "verbs"),
        })
        .collect()
}

/// The first rule of `rules` granting something `ceiling` does not allow, and what.
pub fn first_excess(ceiling: &Ceiling, rules: &[Rule]) -> Option<Excess> {
    rules.iter().enumerate().find_map(|(index, rule)| {
        let what = rule.groups.iter().find_map(|group| {
            rule.resources
                .iter()
                .find_map(|resource| rule.verbs.iter().find_map(|verb| beyond(ceiling, group, resource, verb)))
        })?;
        Some(Excess { index, what })
    })
}

/// What `verb` on `group`/`resource` (RBAC's form, `resource/subresource` or `*`) grants beyond
/// `ceiling`, if anything.
fn beyond(ceiling: &Ceiling, group: &str, resource: &str, verb: &str) -> Option<String> {
    let named = if group.is_empty() { resource.to_owned() } else { format!("{group}/{resource}") };
    let (base, subresource) = match resource.split_once('/') {
        Some((base, sub)) => (base, Some(sub)),
        // `*` matches subresources too.
        None if resource == "*" => ("*", Some("*")),
        None => (resource, None),
    };
    if !ceiling.allows(group, base, verb) {
        return Some(format!("{verb} on {named}"));
    }
    let needed: Vec<&str> = match subresource {
        Some("*") => SUBRESOURCES.to_vec(),
        Some(sub) => vec![sub],
        None => Vec::new(),
    };
    let missing = needed.into_iter().find(|sub| !ceiling.allows_subresource(sub))?;
    Some(format!("{verb} on {named} (subresource {missing})"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::raw_tree::{RawAllow, RawRule};

    /// acme's ceiling in the example tree.
    fn acme() -> Ceiling {
        let groups = ["", "apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io"];
        let raw = RawAllow {
            resources: vec![RawRule {
                api_groups: groups.map(String::from).to_vec(),
                resources: vec!["*".into()],
                verbs: vec!["*".into()],
            }],
            subresources: ["exec", "attach", "portforward", "log"].map(String::from).to_vec(),
            ..Default::default()
        };
        Ceiling::compile(&raw).unwrap()
    }

    fn excess(rules: Value) -> Option<Excess> {
        first_excess(&acme(), &rules_of(&json!({ "rules": rules })))
    }

    #[test]
    fn rules_within_the_ceiling_pass() {
        let rules = json!([
            {"apiGroups": [""], "resources": ["pods", "pods/log", "pods/exec", "configmaps"], "verbs": ["get", "create"]},
            {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["*"], "resourceNames": ["web"]},
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind", "escalate"]},
            {"apiGroups": [], "resources": [], "verbs": []}
        ]);
        assert_eq!(excess(rules), None);
    }

    #[test]
    fn the_first_excess_names_its_rule_and_grant() {
        let rules = json!([
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
            {"apiGroups": ["", "policy"], "resources": ["poddisruptionbudgets"], "verbs": ["get", "create"]}
        ]);
        assert_eq!(excess(rules), Some(Excess { index: 1, what: "create on policy/poddisruptionbudgets".into() }));
        // A wildcard group is covered only by a wildcard.
        let any = json!([{"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}]);
        assert_eq!(excess(any).unwrap().what, "get on */pods");
    }

    #[test]
    fn subresources_need_the_ceilings_grant() {
        let proxy = json!([{"apiGroups": [""], "resources": ["pods/proxy"], "verbs": ["get"]}]);
        assert_eq!(excess(proxy).unwrap().what, "get on pods/proxy (subresource proxy)");
        // `*` reaches every subresource, proxy included, which acme does not grant.
        let star = json!([{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]}]);
        assert_eq!(excess(star).unwrap().what, "get on apps/* (subresource proxy)");
        let status = json!([{"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update"]}]);
        assert_eq!(excess(status), None);
        // Everything passes the default ceiling of a top-level node.
        let all = json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]});
        assert_eq!(first_excess(&Ceiling::top_default(), &rules_of(&all)), None);
    }
}
