//! Who may do what where, for the platform team: `canopy who-can` and `canopy access-matrix`.
//! Both answer the way Canopy decides at request time — the tree first ([`gate`]: the view's
//! confinement and ceiling, through the same [`decide`] every request and every
//! SelfSubjectAccessReview goes through), then, for what Canopy forwards as the caller, the
//! apiserver itself.
//!
//! **Upstream: one impersonated SelfSubjectAccessReview per question, not a reading of RBAC
//! objects.** Canopy forwards each allowed request with the caller's identity in
//! `Impersonate-*` headers; the proxy answers a tenant's `kubectl auth can-i` by forwarding the
//! review the same way. Asking the same review with the same headers ([`upstream`]) meets
//! exactly the authorizer chain a real request meets: RBAC with aggregated ClusterRoles,
//! wildcards and resourceNames, any webhook or Node authorizer, and impersonation's own rules.
//! Listing RoleBindings and ClusterRoleBindings instead would re-implement RBAC's evaluation
//! (and drift from it), would miss every other authorizer, and would need cluster-wide reads of
//! all bindings, which Canopy's least-privilege identity deliberately lacks; impersonation it
//! already holds. Upstream's reason names the binding and role that allowed a request
//! (`RBAC: allowed by RoleBinding "…" of ClusterRole "edit" to User "bob"`), so nothing is lost.
//!
//! **Candidates come from the tree.** Only members reach tenant namespaces through Canopy
//! (everyone else has no view), so `who-can` asks about exactly the members whose nodes cover
//! the namespace; subjects that RBAC names but the tree does not can use the apiserver directly,
//! never Canopy, and `kubectl auth can-i --as` against the apiserver is the tool for them. A
//! member is asked about with the identity an authenticator would give it: a user with
//! `system:authenticated` (groups a real login adds are not known here), a ServiceAccount with
//! its ServiceAccount groups, a group through [`GROUP_PROBE_USER`].
//!
//! The decisions are pure functions here and in [`who_can`] and [`matrix`]; [`upstream`] is the
//! only I/O and [`command`] wires the two.

#[cfg(test)]
mod agreement;
pub mod command;
pub mod matrix;
pub mod resources;
mod table;
pub mod upstream;
pub mod who_can;

use serde::Serialize;
use serde_json::Value;

use crate::auth::Identity;
use crate::policy::{decide, exceptions, review};
use crate::request::RequestInfo;
use crate::tree::{NodeId, Tree};

/// The user a group member is asked about as: impersonation needs a user, and this one is bound
/// to nothing, so whatever upstream allows comes from the group.
pub const GROUP_PROBE_USER: &str = "canopy:who-can:group-member";

/// Why a question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The configuration has no tenancy tree, so Canopy decides nothing itself.
    #[error(
        "{0}: the configuration has no tenancy tree, so Canopy forwards every caller as themselves; ask the apiserver (kubectl auth can-i --as)"
    )]
    NoTree(String),
    /// `--view` names no node.
    #[error("--view {0:?} is not a node of the tree")]
    UnknownView(String),
    /// `-n` names a namespace outside `--view`.
    #[error("-n {namespace:?}: view {view} has no such namespace")]
    NamespaceNotInView { namespace: String, view: String },
    /// `-n` (without `--view`) names a physical namespace no node owns.
    #[error("-n {0:?}: no node of the tree owns this namespace, so no tenant reaches it through Canopy")]
    NamespaceOwnedByNoNode(String),
    /// `-n` given for a cluster-scoped resource.
    #[error("{0} is cluster-scoped: drop -n")]
    ClusterScoped(String),
    /// The resource argument names nothing the apiserver serves.
    #[error("the server doesn't have a resource type {0:?}")]
    UnknownResource(String),
    /// The resource argument matches resources of several API groups.
    #[error("{name:?} is ambiguous, name the group: {candidates}")]
    AmbiguousResource { name: String, candidates: String },
    /// The verb is not one the resource serves.
    #[error("{resource} does not support the verb {verb:?}; it supports: {supported}")]
    UnsupportedVerb { verb: String, resource: String, supported: String },
    /// `--user` or `--groups` cannot be sent as impersonation headers.
    #[error("--user/--groups: {0}")]
    Identity(#[from] crate::upstream::HeaderError),
    /// No upstream client could be built.
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
    /// The upstream namespaces could not be read.
    #[error(transparent)]
    Live(#[from] crate::upstream::LiveError),
    /// Discovery failed.
    #[error("upstream: discovery failed: {0}")]
    Discovery(#[source] kube::Error),
    /// A SelfSubjectAccessReview failed (Canopy's identity may lack `impersonate`).
    #[error("upstream: access review as {user:?} failed: {source}")]
    Review { user: String, source: kube::Error },
    /// The apiserver did not answer in time.
    #[error("upstream: no answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// A request shape asked about.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ask {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    /// As the view names it; empty for cluster-scoped requests.
    pub namespace: String,
}

/// Who had the last word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// The tree: refused, or decided and sent as Canopy itself.
    Canopy,
    /// The apiserver, asked as the caller.
    Upstream,
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub allowed: bool,
    pub by: By,
    pub reason: String,
    /// Allowed, but not for the objects deny rules choose by label: which ones, and the rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub except: Option<String>,
}

/// A review to ask upstream: `ask`, its namespace physical, as `identity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub identity: Identity,
    pub ask: Ask,
}

/// A question decided as far as the tree decides it, and the review upstream must answer if
/// Canopy would forward the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub gate: Gate,
    pub question: Option<Question>,
    /// What an allowed answer still excepts ([`crate::policy::exceptions`]).
    pub except: Option<String>,
}

impl Pending {
    /// `ask` (its namespace as `view` names it) from `identity` in `view`.
    pub fn new(tree: &Tree, view: NodeId, identity: &Identity, ask: Ask) -> Self {
        let (gate, except) = gate(tree, view, identity, &ask);
        let question = match &gate {
            Gate::AsCaller(namespace) => {
                let physical = namespace.as_ref().map(|(physical, _)| physical.clone()).unwrap_or_default();
                Some(Question { identity: identity.clone(), ask: Ask { namespace: physical, ..ask } })
            }
            Gate::Refused(_) | Gate::AsCanopy(_) => None,
        };
        Pending { gate, question, except }
    }

    /// Refused before anything is decided, for `reason`.
    pub fn refused(reason: String) -> Self {
        Pending { gate: Gate::Refused(reason), question: None, except: None }
    }

    /// The verdict, given upstream's answer to the review a forwarded request needs.
    pub fn verdict(&self, review: Option<&Value>) -> Verdict {
        let mut verdict = self.gate.verdict(review);
        if verdict.allowed {
            verdict.except = self.except.clone();
        }
        verdict
    }
}

/// The reviews `pending` needs upstream, in order.
pub fn questions(pending: &[Pending]) -> Vec<Question> {
    pending.iter().filter_map(|p| p.question.clone()).collect()
}

/// The verdicts of `pending`, given upstream's `answers` to its [`questions`] in order.
pub fn verdicts(pending: &[Pending], answers: &[Value]) -> Vec<Verdict> {
    let mut answers = answers.iter();
    pending.iter().map(|p| p.verdict(p.question.as_ref().and_then(|_| answers.next()))).collect()
}

/// What Canopy does with a request before the apiserver has a say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Refused, with the message the caller would read.
    Refused(String),
    /// Decided by the tree and sent as Canopy itself (reads and creation of the view's
    /// namespaces), so the caller's own RBAC plays no part.
    AsCanopy(&'static str),
    /// Forwarded as the caller: the apiserver decides. The namespace as `(physical, virtual)`.
    AsCaller(Option<(String, String)>),
}

/// How Canopy treats `ask` from `identity` in `view` ([`decide`], exactly as for a request),
/// and what an allowed answer still excepts ([`crate::policy::exceptions`]).
pub fn gate(tree: &Tree, view: NodeId, identity: &Identity, ask: &Ask) -> (Gate, Option<String>) {
    let info = RequestInfo {
        is_resource_request: true,
        verb: ask.verb.clone(),
        api_group: ask.group.clone(),
        resource: ask.resource.clone(),
        subresource: ask.subresource.clone(),
        namespace: ask.namespace.clone(),
        ..RequestInfo::default()
    };
    match decide(tree, view, identity, &info) {
        Err(status) => (Gate::Refused(status.message), None),
        Ok(plan) => {
            let except = exceptions(&plan);
            match plan.as_canopy {
                true => (Gate::AsCanopy(plan.rule), except),
                false => (Gate::AsCaller(plan.namespace), except),
            }
        }
    }
}

impl Gate {
    /// The verdict, given upstream's answer to the review a forwarded request needs.
    pub fn verdict(&self, review: Option<&Value>) -> Verdict {
        match (self, review) {
            (Gate::Refused(reason), _) => {
                Verdict { allowed: false, by: By::Canopy, reason: reason.clone(), except: None }
            }
            (Gate::AsCanopy(rule), _) => {
                Verdict { allowed: true, by: By::Canopy, reason: format!("{rule} (sent as Canopy)"), except: None }
            }
            (Gate::AsCaller(namespace), Some(review)) => {
                let mut review = review.clone();
                if let Some((physical, virtual_name)) = namespace {
                    review::scrub_reason(&mut review, physical, virtual_name);
                }
                upstream_verdict(&review)
            }
            (Gate::AsCaller(_), None) => {
                Verdict { allowed: false, by: By::Upstream, reason: "upstream was not asked".into(), except: None }
            }
        }
    }
}

/// A SelfSubjectAccessReview's status as a verdict.
fn upstream_verdict(review: &Value) -> Verdict {
    let status = |key: &str| review.pointer(&format!("/status/{key}"));
    let allowed = status("allowed").and_then(Value::as_bool).unwrap_or(false);
    let text = |key: &str| status(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    let reason = match (text("reason"), text("evaluationError")) {
        (Some(reason), _) => reason.to_owned(),
        (None, Some(error)) => format!("evaluation error: {error}"),
        (None, None) if allowed => "allowed upstream".to_owned(),
        (None, None) => "no upstream RBAC rule allows it".to_owned(),
    };
    Verdict { allowed, by: By::Upstream, reason, except: None }
}

/// The identity an authenticator gives `user` in `groups`: `system:authenticated` added, and a
/// ServiceAccount's groups for `system:serviceaccount:<namespace>:<name>`.
pub fn identity(user: &str, groups: &[String]) -> Identity {
    let mut all: Vec<String> = groups.to_vec();
    let mut add = |group: String| {
        if !all.contains(&group) {
            all.push(group);
        }
    };
    if let Some(namespace) = user.strip_prefix("system:serviceaccount:").and_then(|rest| rest.split(':').next()) {
        add("system:serviceaccounts".to_owned());
        add(format!("system:serviceaccounts:{namespace}"));
    }
    add("system:authenticated".to_owned());
    Identity::new(user, all)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::tests::example;

    fn ask(verb: &str, group: &str, resource: &str, namespace: &str) -> Ask {
        Ask {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            ..Ask::default()
        }
    }

    #[test]
    fn the_ceiling_refuses_before_upstream_is_asked() {
        let tree = example();
        let web = tree.node("acme/web").unwrap();
        let bob = identity("bob", &[]);
        let gate = gate(&tree, web, &bob, &ask("create", "policy", "poddisruptionbudgets", "dev")).0;
        let Gate::Refused(reason) = &gate else { panic!("{gate:?}") };
        assert!(reason.contains("\"poddisruptionbudgets\" in API group \"policy\""), "{reason}");
        assert_eq!(
            gate.verdict(None),
            Verdict { allowed: false, by: By::Canopy, reason: reason.clone(), except: None }
        );
        let forwarded = super::gate(&tree, web, &bob, &ask("create", "apps", "deployments", "dev")).0;
        assert_eq!(forwarded, Gate::AsCaller(Some(("acme-web-dev".into(), "dev".into()))));
    }

    #[test]
    fn namespace_reads_are_canopys_alone() {
        let tree = example();
        let data = tree.node("acme/data").unwrap();
        let carol = identity("carol", &[]);
        let gate = gate(&tree, data, &carol, &ask("list", "", "namespaces", "")).0;
        assert!(matches!(gate, Gate::AsCanopy(_)), "{gate:?}");
        let verdict = gate.verdict(None);
        assert!(verdict.allowed && verdict.by == By::Canopy, "{verdict:?}");
        let create = super::gate(&tree, data, &carol, &ask("create", "", "namespaces", "")).0;
        assert!(matches!(create, Gate::Refused(_)), "readers create no namespaces: {create:?}");
    }

    #[test]
    fn upstream_reasons_name_the_namespace_as_the_view_does() {
        let gate = Gate::AsCaller(Some(("acme-web-dev".into(), "dev".into())));
        let review = json!({"status": {"allowed": true, "reason": "RBAC: allowed by RoleBinding \"canopy:edit:user:bob/acme-web-dev\" of ClusterRole \"edit\" to User \"bob\""}});
        let verdict = gate.verdict(Some(&review));
        assert!(verdict.allowed && verdict.by == By::Upstream);
        assert_eq!(
            verdict.reason,
            "RBAC: allowed by RoleBinding \"canopy:edit:user:bob/dev\" of ClusterRole \"edit\" to User \"bob\""
        );
        let denied = gate.verdict(Some(&json!({"status": {"allowed": false}})));
        assert_eq!((denied.allowed, denied.reason.as_str()), (false, "no upstream RBAC rule allows it"));
        let failed = gate.verdict(Some(&json!({"status": {"allowed": false, "evaluationError": "boom"}})));
        assert_eq!(failed.reason, "evaluation error: boom");
    }

    #[test]
    fn only_forwarded_questions_go_upstream_and_answers_return_in_order() {
        let tree = example();
        let web = tree.node("acme/web").unwrap();
        let bob = identity("bob", &[]);
        let pending: Vec<Pending> =
            [("create", "policy", "poddisruptionbudgets"), ("create", "apps", "deployments"), ("get", "", "pods")]
                .iter()
                .map(|(verb, group, resource)| Pending::new(&tree, web, &bob, ask(verb, group, resource, "dev")))
                .collect();
        let asked = questions(&pending);
        assert_eq!(asked.len(), 2);
        assert_eq!(asked[0].ask.namespace, "acme-web-dev", "upstream is asked with the physical name");
        let answers = [json!({"status": {"allowed": true}}), json!({"status": {"allowed": false}})];
        let allowed: Vec<(bool, By)> = verdicts(&pending, &answers).iter().map(|v| (v.allowed, v.by)).collect();
        assert_eq!(allowed, [(false, By::Canopy), (true, By::Upstream), (false, By::Upstream)]);
    }

    #[test]
    fn identities_carry_the_groups_authenticators_add() {
        assert_eq!(identity("bob", &[]).groups, ["system:authenticated"]);
        assert_eq!(
            identity("bob", &["dev".into(), "system:authenticated".into()]).groups,
            ["dev", "system:authenticated"]
        );
        assert_eq!(
            identity("system:serviceaccount:acme-ops:deployer", &[]).groups,
            ["system:serviceaccounts", "system:serviceaccounts:acme-ops", "system:authenticated"]
        );
    }
}
