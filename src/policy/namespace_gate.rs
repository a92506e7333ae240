//! Changes to a namespace of the view, under the rule its creation follows
//! ([`NamespaceKeys`]): a tenant who may manage namespaces may add, change or remove the labels
//! and annotations the ceiling lists, and nothing else — not Canopy's tree labels, not the
//! platform's `namespaceLabels`, not `kubernetes.io/metadata.name`, not `spec.finalizers`.
//! Judged by the write driver ([`super::write`]) on the namespace the apiserver would store,
//! compared with the stored one, so every patch type and server-side apply count alike.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use super::precondition::Verb;
use super::write::{Proposed, Stored, Upstream, Write, WriteGate};
use crate::request::RequestInfo;
use crate::rewrite::json::METADATA_NAME;
use crate::status::Status;
use crate::tree::{NodeId, Tree};

/// Which metadata keys tenants may set on the namespaces of one node: at creation and on every
/// later write alike.
pub struct NamespaceKeys<'a> {
    pub tree: &'a Tree,
    /// The node whose ceiling governs (the view at creation, the owner afterwards).
    pub node: NodeId,
}

impl NamespaceKeys<'_> {
    /// Whether a tenant may set label `key`: the ceiling lists it, and neither Canopy nor the
    /// platform sets it.
    pub fn label(&self, key: &str) -> bool {
        self.tree.nodes[self.node].ceiling.namespace_labels.allows(key) && !self.canopys(key)
    }

    /// Whether a tenant may set annotation `key`.
    pub fn annotation(&self, key: &str) -> bool {
        self.tree.nodes[self.node].ceiling.namespace_annotations.allows(key)
    }

    /// Labels Canopy or the platform set: the tree's, the platform's and the apiserver's name
    /// label (which the apiserver resets on every write, so sending it changes nothing).
    pub fn canopys(&self, key: &str) -> bool {
        key == METADATA_NAME
            || self.tree.is_tree_label(key)
            || self.tree.nodes.iter().any(|node| node.namespace_labels.contains_key(key))
    }

    /// The refusal of `key` (a `what`: label or annotation) on namespace `name`.
    pub fn refusal(&self, name: &str, what: &str, key: &str) -> Status {
        let list = if what == "label" { "labels" } else { "annotations" };
        let owner = if self.canopys(key) { ", and Canopy or the platform sets it" } else { "" };
        Status::forbidden(format!(
            "namespaces \"{name}\" is forbidden: the {what} {key:?} is not one tenants may set in {} \
             (allow.namespaces.{list} of the tree){owner}",
            self.tree.nodes[self.node].path
        ))
    }
}

/// A patch or update of a namespace of the view.
pub struct NamespaceGate {
    tree: Arc<Tree>,
    owner: NodeId,
    /// The namespace's name in the view.
    name: String,
}

impl NamespaceGate {
    /// The gate for `info`, if it writes a namespace owned by `owner`.
    pub fn of(tree: &Arc<Tree>, owner: NodeId, info: &RequestInfo) -> Option<Self> {
        let writes = matches!(info.verb.as_str(), "patch" | "update");
        (info.api_group.is_empty() && info.resource == "namespaces" && info.subresource.is_empty() && writes)
            .then(|| Self { tree: Arc::clone(tree), owner, name: info.namespace.clone() })
    }

    fn keys(&self) -> NamespaceKeys<'_> {
        NamespaceKeys { tree: &self.tree, node: self.owner }
    }
}

impl WriteGate for NamespaceGate {
    fn needs_stored(&self, _verb: Verb) -> bool {
        true
    }

    /// An update sends the namespace as the view shows it: the tree labels the view hides are
    /// kept as stored, and ownership as the apiserver keeps it.
    fn prepare(&self, write: &mut Write, stored: &Stored) -> Result<(), Status> {
        if let (Verb::Update, Some(sent), Stored::Found(stored)) = (write.verb, &mut write.sent, stored) {
            let hidden: Map<String, Value> = labels(stored, "labels")
                .into_iter()
                .flatten()
                .filter(|(key, _)| self.tree.is_tree_label(key))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            if let Some(metadata) = sent.get_mut("metadata").and_then(Value::as_object_mut) {
                metadata.remove("managedFields");
                let sent_labels = metadata.entry("labels").or_insert_with(|| Value::Object(Map::new()));
                if let Some(sent_labels) = sent_labels.as_object_mut() {
                    sent_labels.extend(hidden);
                }
            }
        }
        Ok(())
    }

    fn judge<'a>(&'a self, _upstream: Upstream, proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
        let judged = match proposed.stored {
            Stored::Found(stored) => self.judge_change(stored, proposed.result),
            _ => Err(Status::not_found(format!("namespaces \"{}\" not found", self.name))),
        };
        Box::pin(async move { judged })
    }
}

impl NamespaceGate {
    fn judge_change(&self, stored: &Value, result: &Value) -> Result<(), Status> {
        let keys = self.keys();
        if let Some(key) = changed_keys(stored, result, "labels").into_iter().find(|key| !keys.label(key)) {
            return Err(keys.refusal(&self.name, "label", &key));
        }
        if let Some(key) = changed_keys(stored, result, "annotations").into_iter().find(|key| !keys.annotation(key)) {
            return Err(keys.refusal(&self.name, "annotation", &key));
        }
        if without_metadata_keys(stored) != without_metadata_keys(result) {
            return Err(Status::forbidden(format!(
                "namespaces \"{}\" is forbidden: tenants may change only the labels and annotations of a namespace",
                self.name
            )));
        }
        Ok(())
    }
}

/// `metadata.<field>` of `object` as a map.
fn labels<'a>(object: &'a Value, field: &str) -> Option<&'a Map<String, Value>> {
    object.get("metadata")?.get(field)?.as_object()
}

/// The keys of `metadata.<field>` added, removed or changed from `before` to `after`.
fn changed_keys(before: &Value, after: &Value, field: &str) -> BTreeSet<String> {
    let empty = Map::new();
    let (before, after) = (labels(before, field).unwrap_or(&empty), labels(after, field).unwrap_or(&empty));
    before.keys().chain(after.keys()).filter(|key| before.get(*key) != after.get(*key)).cloned().collect()
}

/// `object` without the metadata a tenant's write may change (labels, annotations) or the
/// apiserver changes on every write.
fn without_metadata_keys(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["labels", "annotations", "resourceVersion", "managedFields", "generation"] {
            metadata.remove(key);
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn gate() -> NamespaceGate {
        let tree = Arc::new(crate::policy::tests::example());
        let owner = tree.node("acme/web").unwrap();
        NamespaceGate { tree, owner, name: "dev".into() }
    }

    fn namespace(labels: Value, annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": "acme-web-dev", "resourceVersion": "7", "labels": labels, "annotations": annotations},
            "spec": {"finalizers": ["kubernetes"]}})
    }

    #[test]
    fn only_listed_keys_that_canopy_does_not_set_may_change() {
        let gate = gate();
        let stored = namespace(
            json!({"kubernetes.io/metadata.name": "acme-web-dev", "tree.canopy.dev/node": "acme-web", "team": "a"}),
            json!({}),
        );
        let mut allowed = stored.clone();
        allowed["metadata"]["labels"]["team"] = json!("b");
        let listed = gate.keys().label("team");
        assert_eq!(gate.judge_change(&stored, &allowed).is_ok(), listed);
        for key in ["tree.canopy.dev/node", "kubernetes.io/metadata.name", "pod-security.kubernetes.io/enforce"] {
            let mut changed = stored.clone();
            changed["metadata"]["labels"][key] = json!("other");
            let refused = gate.judge_change(&stored, &changed).unwrap_err();
            assert!(refused.message.contains(key), "{}", refused.message);
        }
        let mut removed = stored.clone();
        removed["metadata"]["labels"].as_object_mut().unwrap().remove("tree.canopy.dev/node");
        assert!(gate.judge_change(&stored, &removed).is_err());
    }

    #[test]
    fn nothing_but_labels_and_annotations_may_change() {
        let gate = gate();
        let stored = namespace(json!({}), json!({}));
        let mut finalizers = stored.clone();
        finalizers["spec"]["finalizers"] = json!([]);
        finalizers["metadata"]["resourceVersion"] = json!("8");
        assert!(gate.judge_change(&stored, &finalizers).unwrap_err().message.contains("only the labels"));
        let mut bumped = stored.clone();
        bumped["metadata"]["resourceVersion"] = json!("8");
        assert!(gate.judge_change(&stored, &bumped).is_ok());
    }

    #[test]
    fn an_update_keeps_the_tree_labels_the_view_hides() {
        let gate = gate();
        let stored = Stored::Found(namespace(json!({"tree.canopy.dev/node": "acme-web", "team": "a"}), json!({})));
        let sent = namespace(json!({"team": "b"}), json!({}));
        let parts = http::Request::put("/api/v1/namespaces/acme-web-dev").body(()).unwrap().into_parts().0;
        let mut write = Write { parts, verb: Verb::Update, bytes: Default::default(), sent: Some(sent) };
        gate.prepare(&mut write, &stored).unwrap();
        let labels = &write.sent.unwrap()["metadata"]["labels"];
        assert_eq!(labels, &json!({"tree.canopy.dev/node": "acme-web", "team": "b"}));
    }
}
