//! A SelfSubjectRulesReview (`kubectl auth can-i --list`) as Canopy's deny rules leave it. Each
//! group, resource and verb a rule lists is asked of the same [`verdict`] a
//! SelfSubjectAccessReview gets, so the list and `can-i` cannot disagree: a verb refused outright
//! is dropped from the rule; what rules naming objects or choosing them by label keep from an
//! allowed verb cannot be said in RBAC's terms, so the review says it in `status.evaluationError`
//! and marks itself `incomplete`, which kubectl prints as a warning. Rules listing `*` groups or
//! resources stay as they are.

use serde_json::{Value, json};

use super::review::{Verdict, strings, verdict};
use crate::auth::Identity;
use crate::tree::{NodeId, Tree};

/// An object name no deny rule is expected to name, asked about to tell a rule naming objects
/// from one refusing the verb outright.
const PROBE: &str = "canopy-rules-review-any-object";

/// The verbs a rule's `*` stands for.
const VERBS: [&str; 8] = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

/// Narrows `review`'s resource rules to what the tree allows `identity` in `view`, in the
/// namespace the review asked about (its virtual name: the answer does not repeat it).
pub fn deny_rules(tree: &Tree, view: NodeId, identity: &Identity, namespace: &str, review: &mut Value) {
    let Some(Value::Array(rules)) = review.pointer_mut("/status/resourceRules") else { return };
    let mut excepted: Vec<String> = Vec::new();
    let mut kept = Vec::new();
    for rule in rules.drain(..) {
        let (groups, resources) = (strings(rule.get("apiGroups")), strings(rule.get("resources")));
        if groups.iter().chain(&resources).any(|x| x == "*") {
            kept.push(rule);
            continue;
        }
        let mut verbs = strings(rule.get("verbs"));
        if verbs.iter().any(|v| v == "*") {
            verbs = VERBS.map(str::to_owned).to_vec();
        }
        let names = match strings(rule.get("resourceNames")) {
            names if names.is_empty() => vec![String::new()],
            names => names,
        };
        let mut split = Vec::new();
        for group in &groups {
            for resource in &resources {
                let (base, subresource) = resource.split_once('/').unwrap_or((resource, ""));
                let mut allowed = Vec::new();
                let mut except: Vec<(String, Vec<&str>)> = Vec::new();
                let ask = |verb: &str, name: &str| {
                    let attributes = json!({"verb": verb, "group": group, "resource": base,
                        "subresource": subresource, "namespace": namespace, "name": name});
                    verdict(tree, view, identity, &json!({"spec": {"resourceAttributes": attributes}}))
                };
                for verb in &verbs {
                    let mut refused = false;
                    let mut note = |exception: Option<String>| {
                        let Some(exception) = exception else { return };
                        match except.iter_mut().find(|(known, _)| *known == exception) {
                            Some((_, verbs)) => verbs.push(verb),
                            None => except.push((exception, vec![verb])),
                        }
                    };
                    for name in &names {
                        match ask(verb, name) {
                            // A rule naming objects refuses the verb where no object is named;
                            // another object's answer tells whether it refuses more.
                            (Verdict::Denied(reason), _) if name.is_empty() => match ask(verb, PROBE) {
                                (Verdict::Denied(_), _) => refused = true,
                                (_, exception) => {
                                    let rule = reason.find("denied by").map_or(reason.as_str(), |at| &reason[at..]);
                                    note(Some(format!("except the objects a rule names ({rule})")));
                                    note(exception);
                                }
                            },
                            (Verdict::Denied(_), _) => refused = true,
                            (_, exception) => note(exception),
                        }
                    }
                    if !refused {
                        allowed.push(verb.as_str());
                    }
                }
                let shown = if group.is_empty() { resource.clone() } else { format!("{resource}.{group}") };
                for (exception, verbs) in except {
                    let verbs: Vec<&str> = verbs.into_iter().filter(|v| allowed.contains(v)).collect();
                    excepted.push(format!("{shown} {}: {exception}", verbs.join(",")));
                }
                if !allowed.is_empty() {
                    let mut narrowed = rule.clone();
                    narrowed["apiGroups"] = json!([group]);
                    narrowed["resources"] = json!([resource]);
                    narrowed["verbs"] = json!(allowed);
                    split.push(narrowed);
                }
            }
        }
        // A rule nothing narrowed stays whole, as upstream wrote it.
        let untouched = split.len() == groups.len() * resources.len()
            && split.iter().all(|r| r["verbs"].as_array().map_or(0, Vec::len) == verbs.len());
        match untouched {
            true => kept.push(rule),
            false => kept.extend(split),
        }
    }
    *rules = kept;
    if excepted.is_empty() {
        return;
    }
    let Some(status) = review.get_mut("status").and_then(Value::as_object_mut) else { return };
    let canopy = format!("Canopy: {}", excepted.join("; "));
    let error = match status.get("evaluationError").and_then(Value::as_str).filter(|e| !e.is_empty()) {
        Some(upstream) => format!("{upstream}; {canopy}"),
        None => canopy,
    };
    status.insert("evaluationError".into(), error.into());
    status.insert("incomplete".into(), true.into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::example;

    #[test]
    fn can_i_list_drops_what_deny_rules_refuse_and_warns_of_what_they_keep() {
        let tree = example();
        let bob = Identity::new("bob", ["system:authenticated"]);
        let mut review = json!({"status": {"resourceRules": [
            {"verbs": ["get", "create", "update"], "apiGroups": [""], "resources": ["configmaps"]},
            {"verbs": ["get", "patch"], "apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"]},
            {"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
        ]}});
        deny_rules(&tree, tree.node("acme/web").unwrap(), &bob, "dev", &mut review);
        let rules = review["status"]["resourceRules"].as_array().unwrap();
        // Nothing refused outright: every rule stays as upstream wrote it.
        assert_eq!(rules.len(), 4, "{rules:?}");
        assert_eq!(rules[0]["verbs"], json!(["get", "create", "update"]));
        assert_eq!(rules[2]["verbs"], json!(["*"]));
        let error = review["status"]["evaluationError"].as_str().unwrap();
        assert_eq!(review["status"]["incomplete"], true);
        assert!(
            error.contains("configmaps create,update: except objects labelled platform.canopy.dev/protected=true (tree.nodes[0].deny[1]: the platform team protects it)"),
            "{error}"
        );
        assert!(
            error.contains("deployments.apps patch: except the objects a rule names (denied by tree.nodes[0].deny[0]: the platform team runs the queue worker)"),
            "{error}"
        );
    }

    #[test]
    fn a_verb_the_view_refuses_outright_leaves_the_list() {
        let tree = example();
        let carol = Identity::new("carol", ["system:authenticated"]);
        // acme/data's ceiling reads only: as can-i says, a write there is refused whatever RBAC allows.
        let mut review = json!({"status": {"resourceRules": [
            {"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["configmaps", "secrets"]},
        ]}});
        deny_rules(&tree, tree.node("acme/data").unwrap(), &carol, "warehouse", &mut review);
        let rules = review["status"]["resourceRules"].as_array().unwrap();
        assert!(rules.iter().all(|r| r["verbs"] == json!(["get"])), "{rules:?}");
        assert_eq!(rules.len(), 2);
    }
}
