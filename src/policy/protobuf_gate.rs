//! Protobuf bodies, which Canopy does not decode whole (design invariant 10): kubectl's typed
//! `create` commands and client-go send built-in objects this way. Canopy rewrites only the
//! object's own namespace in them (and RoleBinding subjects), so every other place an object
//! names a namespace (pod affinity `namespaces`, a NetworkPolicy's selector on the
//! `kubernetes.io/metadata.name` label, …) would reach the apiserver unread. Such a write is
//! therefore judged on what the apiserver makes of it: the dry-run result, read as JSON, may name
//! only namespaces of the view, under their physical names. A body that names a namespace in
//! view terms is refused with a pointer to JSON or YAML, whose names Canopy maps.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::write::{Proposed, Upstream, WriteGate};
use crate::rewrite::ViewNames;
use crate::rewrite::json::map_namespaces;
use crate::status::Status;
use crate::tree::{NodeId, Tree};

/// A write whose body is protobuf.
pub struct ProtobufGate {
    pub tree: Arc<Tree>,
    pub view: NodeId,
}

impl ProtobufGate {
    /// The first namespace `object` names that is not one of the view's physical names.
    fn foreign_namespace(&self, object: &Value) -> Option<String> {
        let names = ViewNames::new(&self.tree, self.view);
        let foreign: Mutex<Option<String>> = Mutex::new(None);
        let mut copy = object.clone();
        map_namespaces(&mut copy, &|name: &str| {
            if !name.is_empty() && !names.owns(name) {
                let mut first = foreign.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| name.to_owned());
            }
            None
        });
        foreign.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl WriteGate for ProtobufGate {
    fn judge<'a>(&'a self, _upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
        let refused = self.foreign_namespace(proposed.result).map(|name| {
            let kind = proposed.result.get("kind").and_then(Value::as_str).unwrap_or("object");
            let object = proposed.result.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            Status::forbidden(format!(
                "{kind} {object:?} is forbidden: its protobuf body names namespace {name:?}, which Canopy cannot \
                 read in view terms there; send it as JSON or YAML"
            ))
        });
        Box::pin(async move { refused.map_or(Ok(()), Err) })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_views_physical_names_pass() {
        let tree = Arc::new(crate::policy::tests::example());
        let gate = ProtobufGate { view: tree.node("acme/web").unwrap(), tree };
        let own = json!({"kind": "Deployment", "metadata": {"namespace": "acme-web-dev"}, "spec": {"template": {
            "spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"namespaces": ["acme-web-prod"], "topologyKey": "x"}]}}}}}});
        assert_eq!(gate.foreign_namespace(&own), None);
        let virtual_name = json!({"kind": "NetworkPolicy", "metadata": {"namespace": "acme-web-dev"},
            "spec": {"ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prod"}}}]}]}});
        assert_eq!(gate.foreign_namespace(&virtual_name), Some("prod".into()));
        let other_tenant = json!({"metadata": {"namespace": "acme-web-dev"}, "spec": {"namespaces": ["beta-main"]}});
        assert_eq!(gate.foreign_namespace(&other_tenant), Some("beta-main".into()));
    }
}
