//! Value bounds on writes (issue 20): a create, update or patch of any type — server-side apply
//! included — is judged on the object the apiserver would store (the write driver's one dry run,
//! [`super::write`]), so no patch semantics are implemented twice. Each bound in force where the
//! object lives ([`crate::tree::bounds`]) checks the fields its path selects; a write breaking
//! any is refused before anything is committed, with a `422 Invalid` whose `details.causes` name
//! each field at fault and the bound's config path, as the apiserver's own validation (and a
//! ValidatingAdmissionPolicy) answers. Writes of `scale` are judged on the Scale they would
//! store, whose `spec.replicas` is the workload's.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::precondition::Verb;
use super::write::{Proposed, Stored, Upstream, WriteGate};
use crate::request::RequestInfo;
use crate::status::Status;
use crate::tree::bounds::{Bound, Constraint};
use crate::tree::{NodeId, Tree};

/// A write to a resource with bounds.
pub struct BoundGate {
    bounds: Vec<Arc<Bound>>,
    resource: String,
    group: String,
}

impl BoundGate {
    /// The gate for `info` under the bounds in force at `governing`, if the request writes an
    /// object some bound holds for.
    pub fn of(tree: &Tree, governing: NodeId, info: &RequestInfo) -> Option<Self> {
        let writes = matches!(info.verb.as_str(), "create" | "update" | "patch");
        let whole = crate::mask::covers_subresource(&info.subresource) || info.subresource == "scale";
        if !writes || !whole {
            return None;
        }
        let bounds: Vec<Arc<Bound>> = tree.nodes[governing]
            .bounds
            .iter()
            .filter(|bound| bound.applies(&info.api_group, &info.resource))
            .cloned()
            .collect();
        (!bounds.is_empty()).then(|| BoundGate {
            bounds,
            resource: info.resource.clone(),
            group: info.api_group.clone(),
        })
    }

    fn immutable(&self) -> bool {
        self.bounds.iter().any(|bound| matches!(bound.constraint, Constraint::Immutable))
    }

    /// The refusal of `result` for breaking `causes`, in the view's names.
    fn refusal(&self, result: &Value, causes: Vec<(String, String)>) -> Status {
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
}

impl WriteGate for BoundGate {
    fn needs_stored(&self, verb: Verb) -> bool {
        verb != Verb::Create && self.immutable()
    }

    fn judge<'a>(&'a self, _upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
        let judged = (|| {
            let stored = match proposed.stored {
                Stored::Found(stored) => Some(stored),
                Stored::Unreadable(status) if self.immutable() => {
                    return Err(Status::forbidden(format!(
                        "reading the object to check its immutable fields answered {status}; such writes need read access"
                    )));
                }
                _ => None,
            };
            let result = proposed.result;
            let name = result.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            let causes: Vec<(String, String)> = self
                .bounds
                .iter()
                .filter(|bound| bound.names(name))
                .flat_map(|bound| bound.violations(result, stored))
                .map(|violation| (violation.field, violation.message))
                .collect();
            match causes.is_empty() {
                true => Ok(()),
                false => Err(self.refusal(result, causes)),
            }
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

    fn tree() -> Arc<Tree> {
        let raw: RawTree = serde_saphyr::from_str(
            "nodes: [{name: a, namespaces: [dev], bounds: [
               {resource: deployments.apps, names: [worker], path: $.spec.replicas, min: 2, max: 10, reason: capacity},
               {resource: pods, path: $.spec.hostNetwork, absent: true}]}]",
        )
        .unwrap();
        Arc::new(Tree::compile(&raw, "tree").unwrap())
    }

    fn gate(method: Method, path: &str) -> Option<BoundGate> {
        let tree = tree();
        let info = RequestInfo::parse(&method, path, None).unwrap();
        BoundGate::of(&tree, 0, &info)
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
}
