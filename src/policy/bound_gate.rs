//! Value bounds on writes (issue 20): a create, update or patch of any type — server-side apply
//! included — is judged on the object the apiserver would store (the write driver's one dry run,
//! [`super::write`]), so no patch semantics are implemented twice. Each bound in force where the
//! object lives ([`crate::tree::bounds`]) checks the fields its path selects; a write breaking
//! any is refused before anything is committed, with a `422 Invalid` whose `details.causes` name
//! each field at fault and the bound's config path, as the apiserver's own validation (and a
//! ValidatingAdmissionPolicy) answers. Writes of `scale` are judged on the Scale they would
//! store, whose `spec.replicas` is the workload's.
//!
//! Values are judged as stored (physical namespace names), so a bound means the same through
//! every view; a refusal quotes them as the caller would read the object — translated into the
//! view as its answers are, read masks applied — never as stored, and the bound's own words
//! only as the view may read them ([`Translation::prose`]).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::precondition::Verb;
use super::write::{Proposed, Stored, Upstream, WriteGate};
use crate::request::RequestInfo;
use crate::status::Status;
use crate::transform::Translation;
use crate::tree::bounds::{Bound, OnResource, Violation, Wording};
use crate::tree::{NodeId, Tree};

/// A write to a resource with bounds.
pub struct BoundGate {
    bounds: Arc<OnResource>,
    resource: String,
    group: String,
    /// How the request's answers are translated into its view: refusals read the object so.
    view: Translation,
}

impl BoundGate {
    /// The gate for `info` under the bounds in force at `governing`, if the request writes an
    /// object some bound holds for; `view` translates the request's answers.
    pub fn of(tree: &Tree, governing: NodeId, info: &RequestInfo, view: &Translation) -> Option<Self> {
        let writes = matches!(info.verb.as_str(), "create" | "update" | "patch");
        let whole = crate::mask::covers_subresource(&info.subresource) || info.subresource == "scale";
        if !writes || !whole {
            return None;
        }
        let bounds = tree.nodes[governing].bounds.on(&info.api_group, &info.resource)?;
        Some(BoundGate { bounds, resource: info.resource.clone(), group: info.api_group.clone(), view: view.clone() })
    }

    /// The refusal of `result` for `violations`, in the view's names.
    fn refusal(&self, result: &Value, violations: &[(&Bound, Violation)]) -> Status {
        let mut seen = result.clone();
        if !self.view.apply(&mut seen) {
            seen = Value::Null;
        }
        let prose = |text: &str| self.view.prose(text);
        let wording = Wording { object: &seen, prose: &prose };
        let causes = violations
            .iter()
            .map(|(bound, violation)| (violation.field(), bound.message(violation, result, &wording)))
            .collect();
        let text = |pointer: &str| result.pointer(pointer).and_then(Value::as_str).unwrap_or("");
        // Object names are the same in every view (bounds never hold for namespaces).
        let name = text("/metadata/name");
        let kind = match text("/kind") {
            "" => self.resource.as_str(),
            kind => kind,
        };
        let group = match text("/apiVersion").rsplit_once('/') {
            Some((group, _)) => group.to_owned(),
            None if text("/apiVersion").is_empty() => self.group.clone(),
            None => String::new(),
        };
        Status::invalid_fields(kind, &group, name, causes)
    }

    /// Refuses `result`, the object the write would store, where it breaks a bound; `stored`
    /// is the object before the write.
    pub fn check(&self, result: &Value, stored: Option<&Value>) -> Result<(), Status> {
        let violations = self.bounds.violations(result, stored);
        match violations.is_empty() {
            true => Ok(()),
            false => Err(self.refusal(result, &violations)),
        }
    }
}

impl WriteGate for BoundGate {
    fn needs_stored(&self, verb: Verb) -> bool {
        verb != Verb::Create && self.bounds.immutable()
    }

    fn judge<'a>(&'a self, _upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
        let judged = (|| {
            let stored = match proposed.stored {
                Stored::Found(stored) => Some(stored),
                Stored::Unreadable(status) if self.bounds.immutable() => {
                    return Err(Status::forbidden(format!(
                        "reading the object to check its immutable fields answered {status}; such writes need read access"
                    )));
                }
                _ => None,
            };
            self.check(proposed.result, stored)
        })();
        Box::pin(async move { judged })
    }
}

#[cfg(test)]
mod tests {
    use http::Method;
    use serde_json::json;

    use super::*;
    use crate::config::raw_tree::RawTree;
    use crate::rewrite::HIDDEN_NAMESPACE;

    /// Node `a` (prefix `a-`) with `a/web` below it; `b` is another tenant.
    fn tree() -> Arc<Tree> {
        let raw: RawTree = serde_saphyr::from_str(
            "nodes:
               - name: a
                 namespaces: [dev]
                 masks: [{resource: pods, read: [$.spec.nodeName]}]
                 bounds:
                   - {resource: deployments.apps, names: [worker], path: $.spec.replicas, min: 2, max: 10, reason: capacity}
                   - {resource: pods, path: $.spec.hostNetwork, absent: true}
                   - {resource: rolebindings.rbac.authorization.k8s.io, path: '$.subjects[*].namespace',
                      enum: [a-dev, b-main], reason: service accounts of a-dev or b-main}
                   - {resource: rolebindings.rbac.authorization.k8s.io, path: '$.subjects[*].name',
                      regex: 'system:serviceaccount:a-web-.*|[a-z]+', reason: a-web-* accounts}
                   - {resource: pods, path: $.spec.nodeName, regex: 'n[0-9]+'}
                 children: [{name: web, namespaces: [dev, prod]}]
               - name: b
                 namespaces: [main, ops]",
        )
        .unwrap();
        Arc::new(Tree::compile(&raw, "tree").unwrap())
    }

    /// The gate of a write in view `view` (a node path) to a namespace of node `a` or below.
    fn gate_in(view: &str, method: Method, path: &str) -> Option<BoundGate> {
        let tree = tree();
        let info = RequestInfo::parse(&method, path, None).unwrap();
        let view = tree.node(view).unwrap();
        let mask = crate::mask::Mask::of(&tree.nodes[view].masks, "a", &info.api_group, &info.resource, None);
        let read = mask.map(|mask| {
            crate::mask::read::ReadMask::for_request(&mask, &info.resource, &info.verb, &mut Vec::new()).unwrap()
        });
        BoundGate::of(&tree, tree.node("a").unwrap(), &info, &Translation::of_view(&tree, view, read))
    }

    fn gate(method: Method, path: &str) -> Option<BoundGate> {
        gate_in("a", method, path)
    }

    /// The refusal's causes' messages, and its whole text.
    fn refused_in(view: &str, path: &str, result: Value) -> (Vec<String>, String) {
        let refused = judge(&gate_in(view, Method::POST, path).unwrap(), result).unwrap_err();
        let text = String::from_utf8(refused.to_json().to_vec()).unwrap();
        (refused.details.unwrap().causes.into_iter().map(|c| c.message).collect(), text)
    }

    fn judge(gate: &BoundGate, result: Value) -> Result<(), Status> {
        let write = crate::policy::write::Write {
            parts: http::Request::new(()).into_parts().0,
            verb: Verb::Create,
            bytes: bytes::Bytes::new(),
            sent: None,
        };
        let upstream: Upstream = tower::util::BoxCloneService::new(tower::service_fn(|_| async {
            Err::<http::Response<crate::body::Body>, Status>(Status::internal("no upstream"))
        }));
        let proposed = Proposed { write: &write, stored: &Stored::NotRead, result: &result };
        futures_util::FutureExt::now_or_never(gate.judge(upstream, proposed)).unwrap()
    }

    #[test]
    fn writes_of_bounded_resources_and_their_templates_are_gated() {
        let deployments = "/apis/apps/v1/namespaces/dev/deployments";
        assert!(gate(Method::POST, deployments).is_some());
        assert!(gate(Method::PUT, &format!("{deployments}/worker/scale")).is_some());
        assert!(gate(Method::PATCH, &format!("{deployments}/worker/status")).is_some());
        assert!(gate(Method::GET, &format!("{deployments}/worker")).is_none());
        assert!(gate(Method::DELETE, &format!("{deployments}/worker")).is_none());
        assert!(gate(Method::POST, "/apis/batch/v1/namespaces/dev/cronjobs").is_some(), "pod bound on templates");
        assert!(gate(Method::POST, "/api/v1/namespaces/dev/configmaps").is_none());
        assert!(gate(Method::POST, "/api/v1/namespaces/dev/pods/p/exec").is_none());
    }

    #[test]
    fn a_refusal_names_each_field_and_the_bound() {
        let gate = gate(Method::POST, "/apis/apps/v1/namespaces/dev/deployments").unwrap();
        let worker = |replicas: u32, host: bool| {
            let mut worker = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"},
                   "spec": {"replicas": replicas, "template": {"spec": {}}}});
            if host {
                worker["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
            }
            worker
        };
        assert!(judge(&gate, worker(3, false)).is_ok());
        assert!(
            judge(&gate, json!({"kind": "Deployment", "metadata": {"name": "other"}, "spec": {"replicas": 1}})).is_ok()
        );
        let refused = judge(&gate, worker(11, true)).unwrap_err();
        assert_eq!(refused.code, http::StatusCode::UNPROCESSABLE_ENTITY);
        let details = refused.details.unwrap();
        assert_eq!(
            (details.kind.as_str(), details.group.as_str(), details.name.as_str()),
            ("Deployment", "apps", "worker")
        );
        let fields: Vec<&str> = details.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.replicas", "spec.template.spec.hostNetwork"]);
        assert!(details.causes[0].message.contains("tree.nodes[0].bounds[0]: capacity"), "{:?}", details.causes);
    }

    #[test]
    fn a_refusal_quotes_namespaces_in_the_views_names_and_never_another_tenants() {
        let bindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/web-dev/rolebindings";
        let binding = json!({"kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "a-web-dev"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "a-web-prod"},
                         {"kind": "User", "name": "system:serviceaccount:a-dev:default"}]});
        let (causes, text) = refused_in("a", bindings, binding.clone());
        assert_eq!(
            causes,
            [
                r#"Invalid value: "web-prod": must be one of "dev", "<another namespace>" (bound tree.nodes[0].bounds[2]: service accounts of dev or <another namespace>)"#,
                r#"Invalid value: "system:serviceaccount:dev:default": must be a string matching the bound's pattern (bound tree.nodes[0].bounds[3])"#,
            ]
        );
        assert!(!text.contains("a-") && !text.contains("b-main"), "{text}");
        // Through view a/web: its own names, and a's namespace is not its to see.
        let mut binding = binding;
        binding["subjects"].as_array_mut().unwrap().truncate(1);
        let (causes, text) = refused_in("a/web", bindings, binding);
        assert_eq!(
            causes,
            [
                r#"Invalid value: "prod": must be one of "<another namespace>", "<another namespace>" (bound tree.nodes[0].bounds[2]: service accounts of <another namespace> or <another namespace>)"#
            ]
        );
        assert!(!text.contains("a-") && !text.contains("b-main"), "{text}");
    }

    #[test]
    fn a_refusal_never_quotes_a_read_masked_value() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "a-dev"}, "spec": {"nodeName": "secret-node"}});
        let (causes, text) = refused_in("a", "/api/v1/namespaces/dev/pods", pod);
        assert_eq!(
            causes,
            [r#"Invalid value: <hidden>: must be a string matching "n[0-9]+" (bound tree.nodes[0].bounds[4])"#]
        );
        assert!(!text.contains("secret-node"), "{text}");
    }

    #[test]
    fn a_tenants_own_literal_reads_alike_whether_or_not_it_names_a_namespace() {
        // A name of the tree's the view does not own reads as the placeholder whether it names
        // another tenant's namespace (`b-ops`) or none (`b-nope`, `a-web-nope`): the refusal does
        // not tell which exists. A name no node could own stays as the caller wrote it.
        let bindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings";
        for (literal, quoted) in [
            ("b-ops", HIDDEN_NAMESPACE),
            ("b-nope", HIDDEN_NAMESPACE),
            ("a-web-nope", HIDDEN_NAMESPACE),
            ("nope", "nope"),
        ] {
            let binding = json!({"kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "a-web-dev"},
                "subjects": [{"kind": "ServiceAccount", "name": "s", "namespace": literal}]});
            let (causes, _) = refused_in("a/web", bindings, binding);
            assert!(causes[0].starts_with(&format!(r#"Invalid value: "{quoted}": "#)), "{literal}: {causes:?}");
        }
    }
}
