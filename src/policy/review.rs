//! Access reviews that tell the truth about Canopy: a SelfSubjectAccessReview is first decided
//! against the tree (a request Canopy would refuse is answered `denied` by Canopy itself, with
//! its reason) and only then by upstream RBAC; a SelfSubjectRulesReview's rules are cut down to
//! the view's ceiling. Together `kubectl auth can-i` and `can-i --list` match what Canopy allows.

use std::collections::BTreeSet;

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

use super::decide;
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::request::RequestInfo;
use crate::tree::ceiling::COVERED;
use crate::tree::{Ceiling, NodeId, Rule, Tree};

/// The reviews a tenant may create in a view: of itself, and — for in-cluster apps that
/// authenticate and authorize their own callers — of tokens and of other subjects.
pub const REVIEWS: [(&str, &str); 6] = [
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
];

/// The review a request creates, if Canopy answers it in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    /// A SelfSubjectAccessReview.
    Access,
    /// A SelfSubjectRulesReview.
    Rules,
    /// A SubjectAccessReview or LocalSubjectAccessReview: another subject's access, in the view.
    Subject,
    /// A TokenReview.
    Token,
}

impl Review {
    pub fn of(info: &RequestInfo) -> Option<Self> {
        if info.verb != "create" || !info.subresource.is_empty() {
            return None;
        }
        match (info.api_group.as_str(), info.resource.as_str()) {
            ("authorization.k8s.io", "selfsubjectaccessreviews") => Some(Review::Access),
            ("authorization.k8s.io", "selfsubjectrulesreviews") => Some(Review::Rules),
            ("authorization.k8s.io", "subjectaccessreviews" | "localsubjectaccessreviews") => Some(Review::Subject),
            ("authentication.k8s.io", "tokenreviews") => Some(Review::Token),
            _ => None,
        }
    }
}

/// What Canopy makes of the request a SelfSubjectAccessReview describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Canopy would refuse it (writes of linked copies included, known by name), for this reason.
    Denied(String),
    /// Canopy would answer it as itself (namespaces of the view): allowed, for this reason.
    Allowed(&'static str),
    /// A list or watch across the view's namespaces: allowed when upstream allows it in each.
    Across(Box<RequestInfo>),
    /// Upstream RBAC decides, about the namespace the review names (non-resource URLs too).
    Upstream,
}

/// The verdict on the request `review` describes, and what an answer allowing it must still
/// except ([`super::exceptions`]: objects deny rules choose by label). A cluster-scoped resource
/// is judged as the request for it would be, without the namespace kubectl fills in from its
/// context.
pub fn verdict(tree: &Tree, view: NodeId, identity: &Identity, review: &Value) -> (Verdict, Option<String>) {
    let Some(attributes) = review.pointer("/spec/resourceAttributes") else { return (Verdict::Upstream, None) };
    let field = |key: &str| attributes.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let mut info = RequestInfo {
        is_resource_request: true,
        verb: field("verb"),
        api_group: field("group"),
        api_version: field("version"),
        resource: field("resource"),
        subresource: field("subresource"),
        namespace: field("namespace"),
        name: field("name"),
        // Kubernetes 1.31+ asks with the selector a list would carry.
        label_selector: attributes
            .pointer("/labelSelector/rawSelector")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        ..RequestInfo::default()
    };
    if tree.is_cluster_scoped(&info.api_group, &info.resource) {
        info.namespace.clear();
    }
    match decide(tree, view, identity, &info) {
        Err(status) => (Verdict::Denied(status.message), None),
        Ok(plan) => {
            let verdict = match super::links::review_denial(tree, view, &info) {
                Some(reason) => return (Verdict::Denied(reason), None),
                None if plan.as_canopy => Verdict::Allowed(plan.rule),
                None if plan.across => Verdict::Across(Box::new(info)),
                None => Verdict::Upstream,
            };
            (verdict, super::exceptions(&plan))
        }
    }
}

/// The review answered by Canopy: allowed, for `reason`, `except` what deny rules keep.
pub fn allowed(review: Value, reason: &str, except: Option<&str>) -> Response<Body> {
    let reason = match except {
        Some(except) => format!("Canopy: {reason}, {except}"),
        None => format!("Canopy: {reason}"),
    };
    answered(review, json!({ "allowed": true, "reason": reason }))
}

/// An upstream answer allowing a review's request, with what Canopy's deny rules still keep
/// from it added to its reason (upstream's own words kept).
pub fn add_exception(review: &mut Value, except: &str) {
    if review.pointer("/status/allowed") != Some(&Value::Bool(true)) {
        return;
    }
    let Some(status) = review.get_mut("status").and_then(Value::as_object_mut) else { return };
    let reason = match status.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
        Some(upstream) => format!("{upstream}; Canopy: {except}"),
        None => format!("Canopy: {except}"),
    };
    status.insert("reason".into(), reason.into());
}

/// The review answered by Canopy: denied, for `reason`.
pub fn denied(review: Value, reason: &str) -> Response<Body> {
    answered(review, json!({ "allowed": false, "denied": true, "reason": format!("Canopy: {reason}") }))
}

/// `review` with `status`, as the apiserver answers a created review.
pub fn answered(mut review: Value, status: Value) -> Response<Body> {
    review["status"] = status;
    if let Some(metadata) = review.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("creationTimestamp");
    }
    let mut response = Response::new(body::full(serde_json::to_vec(&review).unwrap_or_default()));
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A service account's user name or group (`system:serviceaccount:<namespace>:<name>`,
/// `system:serviceaccounts:<namespace>`) with its namespace mapped by `map`; any other name as
/// it is. `None` when `map` knows no such namespace, or the name is not well formed.
pub fn map_account_name(name: &str, map: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(rest) = name.strip_prefix("system:serviceaccount:") {
        let (namespace, account) = rest.split_once(':')?;
        return Some(format!("system:serviceaccount:{}:{account}", map(namespace)?));
    }
    if let Some(namespace) = name.strip_prefix("system:serviceaccounts:") {
        return Some(format!("system:serviceaccounts:{}", map(namespace)?));
    }
    Some(name.to_owned())
}

/// The `user` and `groups` of a review's subject (`spec` of a SubjectAccessReview, `status.user`
/// of a TokenReview) with service-account namespaces mapped by `map`; the first name `map`
/// cannot place is the error.
pub fn map_subject(subject: &mut Value, user: &str, map: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    if let Some(Value::String(name)) = subject.get_mut(user) {
        *name = map_account_name(name, map).ok_or_else(|| name.clone())?;
    }
    for group in subject.get_mut("groups").and_then(Value::as_array_mut).into_iter().flatten() {
        if let Value::String(name) = group {
            *name = map_account_name(name, map).ok_or_else(|| name.clone())?;
        }
    }
    Ok(())
}

/// Upstream's words about a review name RoleBindings by physical namespace; the view's name
/// replaces it.
pub fn scrub_reason(review: &mut Value, physical: &str, virtual_name: &str) {
    for key in ["reason", "evaluationError"] {
        if let Some(Value::String(text)) = review.pointer_mut(&format!("/status/{key}")) {
            *text = text.replace(physical, virtual_name);
        }
    }
}

/// A SelfSubjectRulesReview's resource rules intersected with `ceiling`.
pub fn narrow_rules(ceiling: &Ceiling, review: &mut Value) {
    let Some(Value::Array(rules)) = review.pointer_mut("/status/resourceRules") else { return };
    let narrowed: Vec<Value> = rules.iter().flat_map(|rule| narrow(ceiling, rule)).collect();
    *rules = narrowed;
}

pub(super) fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// `rule` within each ceiling rule; reviews of oneself stay as upstream says.
fn narrow(ceiling: &Ceiling, rule: &Value) -> Vec<Value> {
    let (groups, resources, verbs) =
        (strings(rule.get("apiGroups")), strings(rule.get("resources")), strings(rule.get("verbs")));
    if groups.iter().any(|g| g == "authorization.k8s.io" || g == "authentication.k8s.io")
        && resources.iter().all(|r| r.starts_with("selfsubject"))
    {
        return vec![rule.clone()];
    }
    ceiling
        .resources
        .iter()
        .filter_map(|limit| {
            let groups = meet(&groups, &limit.groups);
            let resources = meet_resources(&resources, limit, &ceiling.subresources);
            let verbs = meet(&verbs, &limit.verbs);
            if groups.is_empty() || resources.is_empty() || verbs.is_empty() {
                return None;
            }
            let mut narrowed = rule.clone();
            narrowed["apiGroups"] = groups.into();
            narrowed["resources"] = resources.into();
            narrowed["verbs"] = verbs.into();
            Some(narrowed)
        })
        .collect()
}

/// `a ∩ b`, where `*` in either matches everything.
fn meet(a: &[String], b: &BTreeSet<String>) -> Vec<String> {
    if a.iter().any(|x| x == "*") {
        return b.iter().cloned().collect();
    }
    a.iter().filter(|x| b.contains("*") || b.contains(*x)).cloned().collect()
}

/// Resources of `a` the ceiling rule covers: `pods/exec` needs `pods` and the exec subresource
/// (every subresource but those the resource's verbs cover needs its grant).
fn meet_resources(a: &[String], limit: &Rule, subresources: &BTreeSet<String>) -> Vec<String> {
    if a.iter().any(|x| x == "*") {
        return limit.resources.iter().cloned().collect();
    }
    a.iter()
        .filter(|resource| {
            let (parent, sub) = resource.split_once('/').map_or((resource.as_str(), None), |(p, s)| (p, Some(s)));
            let sub_ok = sub.is_none_or(|s| s == "*" || COVERED.contains(&s) || subresources.contains(s));
            sub_ok && (limit.resources.contains("*") || limit.resources.contains(parent))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_names_are_mapped_and_others_kept() {
        let map = |ns: &str| (ns == "dev").then(|| "acme-web-dev".to_owned());
        assert_eq!(
            map_account_name("system:serviceaccount:dev:app", &map).unwrap(),
            "system:serviceaccount:acme-web-dev:app"
        );
        assert_eq!(
            map_account_name("system:serviceaccounts:dev", &map).unwrap(),
            "system:serviceaccounts:acme-web-dev"
        );
        assert_eq!(map_account_name("system:serviceaccounts", &map).unwrap(), "system:serviceaccounts");
        assert_eq!(map_account_name("alice", &map).unwrap(), "alice");
        assert_eq!(map_account_name("system:serviceaccount:main:app", &map), None);
        assert_eq!(map_account_name("system:serviceaccount:dev", &map), None);
        let mut spec = json!({"user": "alice", "groups": ["system:serviceaccounts:main"]});
        assert_eq!(map_subject(&mut spec, "user", &map).unwrap_err(), "system:serviceaccounts:main");
    }
    use crate::policy::tests::example;

    #[test]
    fn rules_are_cut_to_the_ceiling() {
        let tree = example();
        let data = &tree.nodes[tree.node("acme/data").unwrap()].ceiling;
        let mut review = json!({"status": {"resourceRules": [
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            {"verbs": ["get", "create"], "apiGroups": [""], "resources": ["pods", "pods/exec", "pods/log"]},
            {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews"]},
        ]}});
        narrow_rules(data, &mut review);
        let rules = review["status"]["resourceRules"].as_array().unwrap();
        assert_eq!(
            rules[0],
            json!({"verbs": ["get", "list", "watch"], "apiGroups": ["", "apps", "batch"], "resources": ["*"]})
        );
        assert_eq!(rules[1], json!({"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "pods/log"]}));
        assert_eq!(rules[2]["resources"], json!(["selfsubjectaccessreviews"]));
        assert_eq!(rules.len(), 3);
    }

    #[test]
    fn canopy_answers_what_it_would_refuse_or_answer_itself() {
        let tree = example();
        let carol = Identity::new("carol", ["system:authenticated"]);
        let data = tree.node("acme/data").unwrap();
        let ask = |ns: &str, verb: &str, resource: &str, sub: &str| json!({"spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource, "subresource": sub}}});
        let denied = |review: &Value| match verdict(&tree, data, &carol, review).0 {
            Verdict::Denied(reason) => reason,
            other => panic!("{review}: {other:?}"),
        };
        assert_eq!(verdict(&tree, data, &carol, &ask("warehouse", "get", "pods", "")), (Verdict::Upstream, None));
        assert!(denied(&ask("warehouse", "create", "pods", "exec")).contains("exec"));
        denied(&ask("warehouse", "delete", "pods", ""));
        let elsewhere = denied(&ask("globex-main", "get", "pods", ""));
        assert!(elsewhere.contains("not found") && !elsewhere.contains("acme-"), "{elsewhere}");
        let non_resource = json!({"spec": {"nonResourceAttributes": {"path": "/x"}}});
        assert_eq!(verdict(&tree, data, &carol, &non_resource), (Verdict::Upstream, None));
    }

    #[test]
    fn can_i_names_the_objects_a_label_rule_keeps_from_an_allowed_write() {
        let tree = example();
        let bob = Identity::new("bob", ["system:authenticated"]);
        let web = tree.node("acme/web").unwrap();
        let ask = |verb: &str, resource: &str, name: &str| json!({"spec": {"resourceAttributes": {"namespace": "dev", "verb": verb, "group": "", "resource": resource, "name": name}}});
        let (decided, except) = verdict(&tree, web, &bob, &ask("delete", "configmaps", "settings"));
        assert_eq!(decided, Verdict::Upstream);
        let except = except.unwrap();
        assert!(
            except.contains(
                "labelled platform.canopy.dev/protected=true (tree.nodes[0].deny[1]: the platform team protects it)"
            ),
            "{except}"
        );
        assert_eq!(verdict(&tree, web, &bob, &ask("get", "configmaps", "settings")).1, None);
        let mut answer = json!({"status": {"allowed": true, "reason": "RBAC: allowed by RoleBinding \"edit\""}});
        add_exception(&mut answer, &except);
        assert_eq!(answer["status"]["reason"], format!("RBAC: allowed by RoleBinding \"edit\"; Canopy: {except}"));
        let mut refused = json!({"status": {"allowed": false}});
        add_exception(&mut refused, &except);
        assert_eq!(refused, json!({"status": {"allowed": false}}));
    }

    #[test]
    fn namespaces_are_judged_without_kubectls_context_namespace() {
        let tree = example();
        let carol = Identity::new("carol", ["system:authenticated"]);
        let data = tree.node("acme/data").unwrap();
        let ask = |ns: &str, verb: &str, resource: &str| json!({"spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource}}});
        assert!(matches!(verdict(&tree, data, &carol, &ask("default", "list", "namespaces")).0, Verdict::Allowed(_)));
        assert!(matches!(verdict(&tree, data, &carol, &ask("", "list", "pods")).0, Verdict::Across(_)));
        assert!(matches!(verdict(&tree, data, &carol, &ask("", "create", "pods")).0, Verdict::Denied(_)));
    }
}
