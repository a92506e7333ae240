//! Secrets by type, the read side (design invariant 5): in a view whose ceiling names secret
//! types, a Secret of another type is absent from every answer — objects, lists, Table rows and
//! watch events (dropped, not rewritten): rows a view hides, as masks hide its columns. A single
//! GET of one answers 404 (see `policy::secret_gate`).
//!
//! Tables: kubectl's default Table embeds only each row's metadata, which does not carry the
//! type, and a watch's Tables omit the column definitions after the first event, so the Type
//! cell cannot be found reliably. Canopy therefore asks upstream for `includeObject=Object` on
//! every secrets read, decides each row on its embedded object, then cuts the object back to what
//! the caller asked for (metadata by default, nothing for `None`). Metadata-only answers
//! (`PartialObjectMetadata`, as client-go's metadata informers and kube-rs's `list_metadata` ask)
//! are read from upstream as whole Secrets too ([`SecretFilter::metadata_only`]) and cut down to
//! metadata once judged. Documents whose type cannot be known (a metadata-only answer upstream
//! gave anyway, rows without an object) are treated as hidden: the filter fails closed.
//!
//! A namespace answers to the secret types of the node owning it, which may be narrower than
//! the view's; so across namespaces (`-A`) each item is judged by its own namespace's owner.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::read::cut_back;
use crate::request::RequestInfo;
use crate::rewrite::ViewNames;
use crate::tree::{Ceiling, NodeId, Tree};

/// The type a Secret has when it names none.
const DEFAULT_TYPE: &str = "Opaque";

/// Hides secrets of types outside a view's ceiling from one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFilter {
    allowed: Allowed,
    /// The caller's `includeObject` (Canopy asks upstream for `Object`).
    include_object: Option<String>,
    /// The caller asked for metadata alone; upstream is asked for whole Secrets.
    metadata_only: bool,
}

/// The secret types that may be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// These, in the namespace asked about.
    Types(Arc<Vec<String>>),
    /// Across namespaces: by the name the view shows a namespace, its owner's types (`None`:
    /// every type). A namespace not listed shows none.
    PerNamespace(Arc<HashMap<String, Option<Arc<Vec<String>>>>>),
}

impl SecretFilter {
    /// The filter for a request about secrets in a namespace (or a view) whose ceiling restricts
    /// their types; widens a read's `query` to `includeObject=Object` so Table rows can be decided.
    pub fn for_request(ceiling: &Ceiling, info: &RequestInfo, query: &mut Vec<(String, String)>) -> Option<Self> {
        if !is_secrets(info) {
            return None;
        }
        Some(Self::of(ceiling)?.widen(info, query))
    }

    /// The filter for a request about secrets across the namespaces of `view`'s subtree, if any
    /// of their owners restricts secret types; widens `query` as [`Self::for_request`] does.
    pub fn across(tree: &Tree, view: NodeId, info: &RequestInfo, query: &mut Vec<(String, String)>) -> Option<Self> {
        if !is_secrets(info) {
            return None;
        }
        let names = ViewNames::new(tree, view);
        let owners: HashMap<String, Option<Arc<Vec<String>>>> = tree
            .view_namespaces(view)
            .iter()
            .filter_map(|physical| {
                let types = tree.nodes[tree.answering(view, Some(physical))].ceiling.secret_types.clone();
                Some((names.to_virtual(physical)?, types))
            })
            .collect();
        if owners.values().all(Option::is_none) {
            return None;
        }
        let filter = SecretFilter {
            allowed: Allowed::PerNamespace(Arc::new(owners)),
            include_object: None,
            metadata_only: false,
        };
        Some(filter.widen(info, query))
    }

    /// The filter of a namespace or view with `ceiling`, if it restricts secret types.
    pub fn of(ceiling: &Ceiling) -> Option<Self> {
        Some(SecretFilter {
            allowed: Allowed::Types(ceiling.secret_types.clone()?),
            include_object: None,
            metadata_only: false,
        })
    }

    /// Reads ask upstream for whole objects in Table rows, keeping the caller's choice to cut back to.
    fn widen(mut self, info: &RequestInfo, query: &mut Vec<(String, String)>) -> Self {
        if matches!(info.verb.as_str(), "get" | "list" | "watch") {
            self.include_object = query.iter().find(|(k, _)| k == "includeObject").map(|(_, v)| v.clone());
            query.retain(|(k, _)| k != "includeObject");
            query.push(("includeObject".into(), "Object".into()));
        }
        self
    }

    /// The filter for an answer the caller wants as metadata alone, which upstream is asked to
    /// give as whole Secrets (see [`crate::transform::negotiate::ask_whole_objects`]).
    pub fn metadata_only(self) -> Self {
        SecretFilter { metadata_only: true, ..self }
    }

    /// Whether a secret of type `kind` may be seen in the namespace asked about (never, for a
    /// filter across namespaces: it needs the secret's namespace).
    pub fn allows(&self, kind: &str) -> bool {
        match &self.allowed {
            Allowed::Types(types) => types.iter().any(|t| t == kind),
            Allowed::PerNamespace(_) => false,
        }
    }

    /// Whether `secret` (namespace names already as the view shows them) may be seen.
    fn shows(&self, secret: &Value) -> bool {
        let kind = secret_type(secret);
        match &self.allowed {
            Allowed::Types(types) => types.iter().any(|t| t == kind),
            Allowed::PerNamespace(owners) => {
                let namespace = secret.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("");
                owners.get(namespace).is_some_and(|types| types.as_ref().is_none_or(|t| t.iter().any(|t| t == kind)))
            }
        }
    }

    /// Removes hidden secrets from an answer holding one object (a GET, a watch event's object);
    /// false when it is hidden: a hidden Secret, or a Table whose every row was.
    pub fn admit_one(&self, document: &mut Value) -> bool {
        match document.get("kind").and_then(Value::as_str) {
            Some("Table") => self.admit_table(document),
            _ => self.admit(document),
        }
    }

    /// Removes hidden secrets from `document`; false when the document itself is hidden (a
    /// Secret, or a watch event about one). A list or Table stays, if need be empty.
    pub fn admit(&self, document: &mut Value) -> bool {
        match document.get("kind").and_then(Value::as_str) {
            Some("Secret") => {
                let shown = self.shows(document);
                if shown && self.metadata_only {
                    cut_to_metadata(document, "PartialObjectMetadata");
                }
                shown
            }
            Some("SecretList") => {
                if let Some(items) = document.get_mut("items").and_then(Value::as_array_mut) {
                    items.retain(|item| self.shows(item));
                    if self.metadata_only {
                        items.iter_mut().for_each(|item| cut_to_metadata(item, "PartialObjectMetadata"));
                    }
                }
                if self.metadata_only {
                    document["kind"] = "PartialObjectMetadataList".into();
                    document["apiVersion"] = "meta.k8s.io/v1".into();
                }
                true
            }
            Some("Table") => {
                self.admit_table(document);
                true
            }
            // Metadata alone does not tell the type: fail closed.
            Some("PartialObjectMetadata") => false,
            Some("PartialObjectMetadataList") => {
                if let Some(items) = document.get_mut("items").and_then(Value::as_array_mut) {
                    items.clear();
                }
                true
            }
            Some(_) => true,
            // A watch event: `{type, object}`. Bookmarks and errors carry no secret.
            None => {
                let event = document.get("type").and_then(Value::as_str);
                if matches!(event, None | Some("BOOKMARK" | "ERROR")) {
                    return true;
                }
                document.get_mut("object").is_none_or(|object| self.admit_one(object))
            }
        }
    }

    /// Keeps the rows whose embedded Secret is allowed, cut back to the caller's
    /// `includeObject`; false when rows were there and none is left.
    fn admit_table(&self, table: &mut Value) -> bool {
        let version = table.get("apiVersion").cloned().unwrap_or_else(|| json!("meta.k8s.io/v1"));
        let Some(rows) = table.get_mut("rows").and_then(Value::as_array_mut) else { return true };
        let had_rows = !rows.is_empty();
        rows.retain(|row| {
            row.get("object")
                .filter(|object| object.get("kind").and_then(Value::as_str) == Some("Secret"))
                .is_some_and(|object| self.shows(object))
        });
        for row in rows.iter_mut().filter_map(Value::as_object_mut) {
            cut_back(row, self.include_object.as_deref(), &version);
        }
        !had_rows || !rows.is_empty()
    }
}

/// `object` as the `kind` (`PartialObjectMetadata`) the apiserver gives for metadata alone.
fn cut_to_metadata(object: &mut Value, kind: &str) {
    let metadata = object.get_mut("metadata").map(Value::take).unwrap_or_else(|| json!({}));
    *object = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1", "metadata": metadata});
}

/// Whether `info` is about core secrets.
fn is_secrets(info: &RequestInfo) -> bool {
    info.api_group.is_empty() && info.resource == "secrets"
}

/// The type of a Secret object (`Opaque` when unset, as the apiserver defaults it).
pub fn secret_type(secret: &Value) -> &str {
    secret.get("type").and_then(Value::as_str).filter(|t| !t.is_empty()).unwrap_or(DEFAULT_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include_object: Option<&str>) -> SecretFilter {
        SecretFilter {
            allowed: Allowed::Types(Arc::new(vec!["Opaque".into(), "kubernetes.io/tls".into()])),
            include_object: include_object.map(String::from),
            metadata_only: false,
        }
    }

    #[test]
    fn metadata_only_answers_are_judged_on_whole_secrets_and_cut_down() {
        let f = filter(None).metadata_only();
        let mut one = secret("a", None);
        assert!(f.admit(&mut one));
        assert_eq!(
            one,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": "a", "namespace": "acme-web-dev"}})
        );
        assert!(!f.admit(&mut secret("b", Some("kubernetes.io/ssh-auth"))));
        let mut list = json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}, "items": [
            {"metadata": {"name": "a"}, "type": "Opaque", "data": {"k": "dg=="}},
            {"metadata": {"name": "b"}, "type": "kubernetes.io/ssh-auth"},
        ]});
        assert!(f.admit(&mut list));
        assert_eq!(
            list,
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "9"},
            "items": [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": {"name": "a"}}]})
        );
    }

    fn secret(name: &str, kind: Option<&str>) -> Value {
        let mut s = json!({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": name, "namespace": "acme-web-dev"}, "data": {"k": "dg=="}});
        if let Some(kind) = kind {
            s["type"] = json!(kind);
        }
        s
    }

    #[test]
    fn a_request_about_secrets_reads_whole_objects_upstream() {
        let mut ceiling = Ceiling::top_default();
        let info = RequestInfo { resource: "secrets".into(), verb: "list".into(), ..Default::default() };
        let mut query = vec![("includeObject".to_owned(), "None".to_owned()), ("limit".into(), "5".into())];
        assert!(SecretFilter::for_request(&ceiling, &info, &mut query).is_none(), "no types named: no filter");
        ceiling.secret_types = Some(Arc::new(vec!["Opaque".into()]));
        let f = SecretFilter::for_request(&ceiling, &info, &mut query).unwrap();
        assert_eq!(f.include_object.as_deref(), Some("None"));
        assert_eq!(query, [("limit".to_owned(), "5".to_owned()), ("includeObject".into(), "Object".into())]);
        let configmaps = RequestInfo { resource: "configmaps".into(), ..info };
        assert!(SecretFilter::for_request(&ceiling, &configmaps, &mut query).is_none());
    }

    #[test]
    fn objects_lists_and_events_of_other_types_are_hidden() {
        let f = filter(None);
        assert!(f.admit(&mut secret("a", None)));
        assert!(f.admit(&mut secret("a", Some("kubernetes.io/tls"))));
        assert!(!f.admit(&mut secret("a", Some("kubernetes.io/ssh-auth"))));
        let mut list = json!({"kind": "SecretList", "items": [
            {"metadata": {"name": "a"}, "type": "Opaque"},
            {"metadata": {"name": "b"}, "type": "kubernetes.io/service-account-token"},
            {"metadata": {"name": "c"}},
        ]});
        assert!(f.admit(&mut list));
        let names: Vec<_> = list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].clone()).collect();
        assert_eq!(names, [json!("a"), json!("c")]);
        let mut added = json!({"type": "ADDED", "object": secret("b", Some("kubernetes.io/ssh-auth"))});
        assert!(!f.admit(&mut added));
        let mut deleted = json!({"type": "DELETED", "object": secret("a", Some("Opaque"))});
        assert!(f.admit(&mut deleted));
        assert!(f.admit(
            &mut json!({"type": "BOOKMARK", "object": {"kind": "Secret", "metadata": {"resourceVersion": "9"}}})
        ));
        assert!(f.admit(&mut json!({"kind": "Status", "code": 404})));
        assert!(!f.admit(&mut json!({"kind": "PartialObjectMetadata", "metadata": {"name": "a"}})));
    }

    /// A Table as the apiserver answers `includeObject=Object` (recorded, data shortened).
    fn table() -> Value {
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "812"},
        "columnDefinitions": [{"name": "Name", "type": "string"}, {"name": "Type", "type": "string"}],
        "rows": [
            {"cells": ["tls-a", "kubernetes.io/tls"], "object": secret("tls-a", Some("kubernetes.io/tls"))},
            {"cells": ["ssh-b", "kubernetes.io/ssh-auth"], "object": secret("ssh-b", Some("kubernetes.io/ssh-auth"))},
            {"cells": ["bare-c", "Opaque"]},
        ]})
    }

    #[test]
    fn table_rows_are_decided_on_their_object_then_cut_back() {
        let mut t = table();
        assert!(filter(None).admit(&mut t));
        let rows = t["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{t}");
        assert_eq!(
            rows[0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": secret("tls-a", None)["metadata"]})
        );
        let mut t = table();
        assert!(filter(Some("None")).admit(&mut t));
        assert!(t["rows"][0].get("object").is_none());
        let mut t = table();
        assert!(filter(Some("Object")).admit(&mut t));
        assert_eq!(t["rows"][0]["object"]["data"]["k"], "dg==");
        // A watch event's Table holds one row: hidden, the event is dropped.
        let mut event = json!({"type": "MODIFIED", "object": table()});
        event["object"]["rows"].as_array_mut().unwrap().remove(0);
        assert!(!filter(None).admit(&mut event));
        // A list's Table stays an answer, if need be empty; one object's Table is hidden.
        let mut page = table();
        page["rows"].as_array_mut().unwrap().drain(..1);
        page["rows"].as_array_mut().unwrap().pop();
        assert!(filter(None).admit(&mut page.clone()));
        assert!(!filter(None).admit_one(&mut page));
        assert!(filter(None).admit_one(&mut json!({"kind": "Table", "rows": []})));
    }
    #[test]
    fn across_namespaces_each_secret_answers_to_its_namespace_owner() {
        let tree = crate::policy::tests::example();
        let acme = tree.node("acme").unwrap();
        let info = RequestInfo { resource: "secrets".into(), verb: "list".into(), ..Default::default() };
        let f = SecretFilter::across(&tree, acme, &info, &mut Vec::new()).unwrap();
        let in_namespace = |namespace: &str, kind: &str| json!({"metadata": {"name": format!("{namespace}-{kind}"), "namespace": namespace}, "type": kind});
        let mut list = json!({"kind": "SecretList", "items": [
            in_namespace("web-dev", "kubernetes.io/tls"),
            in_namespace("data-warehouse", "kubernetes.io/tls"),
            in_namespace("data-warehouse", "Opaque"),
            in_namespace("elsewhere", "Opaque"),
        ]});
        assert!(f.admit(&mut list));
        let names: Vec<_> = list["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].clone()).collect();
        assert_eq!(
            names,
            [json!("web-dev-kubernetes.io/tls"), json!("data-warehouse-Opaque")],
            "acme/data allows Opaque only"
        );
        let globex = tree.node("globex").unwrap();
        assert!(SecretFilter::across(&tree, globex, &info, &mut Vec::new()).is_none(), "no owner restricts types");
    }
}
