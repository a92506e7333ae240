//! Read masks on answers: a read-masked value appears nowhere in a response.
//!
//! - Objects, list items and watch events' objects lose the masked fields.
//! - `metadata.managedFields` entries lose the masked fields' ownership (`f:<name>`; for a field
//!   inside a list, the whole list's entry, since list items are keyed by their values).
//! - kubectl's `last-applied-configuration` annotation is masked inside, like the object.
//! - Tables (`kubectl get`, `-o wide`): columns are printed by the apiserver from fields Canopy
//!   cannot map back to paths, so a cell is masked by its *value*: Canopy asks upstream for each
//!   row's full object (`includeObject=Object`), collects the masked values there, replaces every
//!   cell showing one (whole, or as an item of a comma-separated list) with `<masked>`, then cuts
//!   the embedded object back to what the caller asked for, masked. The first cell, the object's
//!   name, is never masked (a node's addresses include its host name). A row without an object
//!   keeps only its name cell: masks fail closed.

use serde_json::{Map, Value, json};

use super::Mask;
use super::path::{Location, Step, get, remove_all};
use crate::status::Status;

/// What a masked Table cell shows.
pub const MASKED: &str = "<masked>";
/// kubectl's client-side apply keeps the applied object, as JSON text, in this annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A read mask for one response, with the `includeObject` the caller asked for (Canopy asks
/// upstream for `Object` to mask Table cells).
#[derive(Debug, Clone)]
pub struct ReadMask {
    pub mask: std::sync::Arc<Mask>,
    pub include_object: Option<String>,
}

impl ReadMask {
    /// The read mask of a request, widening a read's `query` to `includeObject=Object` so Table
    /// cells can be judged on the rows' objects.
    /// A selector over a read-masked field is refused with 403 naming the field.
    pub fn for_request(
        mask: &std::sync::Arc<Mask>,
        resource: &str,
        verb: &str,
        query: &mut Vec<(String, String)>,
    ) -> Result<Self, Status> {
        let selector = |key: &str| query.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str());
        if let Some(field) = super::select::masked_selector(mask, selector("fieldSelector"), selector("labelSelector"))
        {
            return Err(Status::forbidden(format!(
                "{resource} is forbidden: selecting by {field} is not allowed in view {}, which masks that field",
                mask.view
            )));
        }
        let mut include_object = None;
        if !mask.read.is_empty() && matches!(verb, "get" | "list" | "watch") {
            include_object = query.iter().find(|(k, _)| k == "includeObject").map(|(_, v)| v.clone());
            query.retain(|(k, _)| k != "includeObject");
            query.push(("includeObject".into(), "Object".into()));
        }
        Ok(ReadMask { mask: std::sync::Arc::clone(mask), include_object })
    }

    /// Masks a whole answer: an object, a list, a Table or a watch event.
    pub fn apply(&self, document: &mut Value) {
        if self.mask.read.is_empty() {
            return;
        }
        match document.get("kind").and_then(Value::as_str) {
            Some("Table") => self.table(document),
            Some("Status") => {}
            Some(_) if document.get("items").is_some_and(Value::is_array) => {
                if let Some(Value::Array(items)) = document.get_mut("items") {
                    items.iter_mut().for_each(|item| self.mask.strip(item));
                }
            }
            Some(_) => self.mask.strip(document),
            // A watch event: `{type, object}` (the object may be a Table).
            None => {
                if let Some(object) = document.get_mut("object") {
                    self.apply(object);
                }
            }
        }
    }

    fn table(&self, table: &mut Value) {
        let version = table.get("apiVersion").cloned().unwrap_or_else(|| json!("meta.k8s.io/v1"));
        let Some(Value::Array(rows)) = table.get_mut("rows") else { return };
        for row in rows.iter_mut().filter_map(Value::as_object_mut) {
            let hidden = match row.get_mut("object") {
                Some(object) if object.is_object() => {
                    let hidden = self.mask.hidden_values(object);
                    self.mask.strip(object);
                    Some(hidden)
                }
                _ => None,
            };
            if let Some(Value::Array(cells)) = row.get_mut("cells") {
                // The first cell is the object's name, which no mask hides.
                for cell in cells.iter_mut().skip(1) {
                    let shows_hidden = match &hidden {
                        Some(hidden) => cell_shows(cell, hidden),
                        None => true,
                    };
                    if shows_hidden {
                        *cell = Value::String(MASKED.to_owned());
                    }
                }
            }
            cut_back(row, self.include_object.as_deref(), &version);
        }
    }
}

/// Cuts a Table row's object back to the caller's `includeObject`: the object (`Object`),
/// nothing (`None`) or its metadata (the default).
pub(crate) fn cut_back(row: &mut Map<String, Value>, include_object: Option<&str>, version: &Value) {
    match include_object {
        Some("Object") => {}
        Some("None") => {
            row.remove("object");
        }
        _ => {
            let metadata = row.get("object").and_then(|o| o.get("metadata")).cloned().unwrap_or(json!({}));
            row.insert(
                "object".into(),
                json!({"kind": "PartialObjectMetadata", "apiVersion": version, "metadata": metadata}),
            );
        }
    }
}

/// Whether a cell shows one of `hidden` (whole, or as an item of a comma-separated list).
fn cell_shows(cell: &Value, hidden: &[String]) -> bool {
    let text = match cell {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return false,
    };
    hidden.contains(&text) || (text.contains(',') && text.split(',').any(|t| hidden.iter().any(|h| h == t.trim())))
}

impl Mask {
    /// Strips every read-masked field from one object, its managed-fields entries and its
    /// last-applied annotation.
    pub fn strip(&self, object: &mut Value) {
        let locations: Vec<Location> = self.read.iter().flat_map(|path| path.locate(object)).collect();
        if let Some(Value::Array(entries)) = object.pointer_mut("/metadata/managedFields") {
            for entry in entries.iter_mut() {
                if let Some(fields) = entry.get_mut("fieldsV1") {
                    locations.iter().for_each(|location| forget_ownership(fields, location));
                }
            }
        }
        remove_all(object, locations);
        let annotation = object.pointer_mut("/metadata/annotations").and_then(|a| a.get_mut(LAST_APPLIED));
        if let Some(Value::String(text)) = annotation
            && let Ok(mut applied) = serde_json::from_str::<Value>(text)
        {
            let inside = self.read.iter().flat_map(|path| path.locate(&applied)).collect();
            remove_all(&mut applied, inside);
            if let Ok(masked) = serde_json::to_string(&applied) {
                *text = format!("{masked}\n");
            }
        }
    }

    /// The scalar values (as Table cells print them) under read-masked fields of `object`.
    pub fn hidden_values(&self, object: &Value) -> Vec<String> {
        let mut values = Vec::new();
        for location in self.read.iter().flat_map(|path| path.locate(object)) {
            if let Some(value) = get(object, &location) {
                scalars(value, &mut values);
            }
        }
        values.retain(|v| !v.is_empty());
        values
    }
}

fn scalars(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(b) => out.push(b.to_string()),
        Value::Array(items) => items.iter().for_each(|v| scalars(v, out)),
        Value::Object(map) => map.values().for_each(|v| scalars(v, out)),
        Value::Null => {}
    }
}

/// Removes the ownership of `location` from a managed-fields set (`fieldsV1`): `f:<name>` keys
/// down the path; at the first list step, the list's whole entry.
fn forget_ownership(fields: &mut Value, location: &[Step]) {
    let mut current = fields;
    for (i, step) in location.iter().enumerate() {
        let Step::Key(key) = step else { return };
        let key = format!("f:{key}");
        let last = matches!(location.get(i + 1), None | Some(Step::Index(_)));
        if last {
            if let Value::Object(map) = current {
                map.remove(&key);
            }
            return;
        }
        match current.get_mut(&key) {
            Some(next) => current = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::mask::MaskPath;

    fn mask(read: &[&str]) -> Arc<Mask> {
        Arc::new(Mask {
            read: read.iter().map(|p| Arc::new(MaskPath::compile(p).unwrap())).collect(),
            write: vec![],
            view: "acme".into(),
        })
    }

    fn pod() -> Value {
        json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {
                "name": "p", "namespace": "dev",
                "annotations": {LAST_APPLIED: "{\"spec\":{\"nodeName\":\"node-1\",\"containers\":[]}}\n"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {
                    "f:spec": {"f:nodeName": {}, "f:containers": {"k:{\"name\":\"c\"}": {}}},
                    "f:status": {"f:hostIPs": {"k:{\"ip\":\"10.0.0.7\"}": {}}, "f:hostIP": {}}
                }}]
            },
            "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
            "status": {"hostIP": "10.0.0.7", "hostIPs": [{"ip": "10.0.0.7"}], "podIP": "10.1.0.3"}
        })
    }

    fn read(paths: &[&str], include_object: Option<&str>) -> ReadMask {
        ReadMask { mask: mask(paths), include_object: include_object.map(str::to_owned) }
    }

    const POD_PATHS: [&str; 3] = ["$.spec.nodeName", "$.status.hostIP", "$.status.hostIPs[*].ip"];

    #[test]
    fn objects_lose_fields_ownership_and_last_applied() {
        let mut doc = pod();
        read(&POD_PATHS, None).apply(&mut doc);
        let text = doc.to_string();
        assert!(!text.contains("node-1") && !text.contains("10.0.0.7"), "{text}");
        assert!(!text.contains("nodeName") && !text.contains("f:hostIPs"), "{text}");
        assert_eq!(doc["status"]["podIP"], "10.1.0.3");
        assert_eq!(doc["status"]["hostIPs"], json!([{}]));
        assert!(doc.pointer("/metadata/managedFields/0/fieldsV1/f:spec/f:containers").is_some());
        assert!(doc["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap().ends_with("[]}}\n"));
    }

    #[test]
    fn lists_and_watch_events_are_masked() {
        let mut list = json!({"kind": "PodList", "items": [pod(), pod()]});
        read(&POD_PATHS, None).apply(&mut list);
        assert!(!list.to_string().contains("node-1"));
        let mut event = json!({"type": "MODIFIED", "object": pod()});
        read(&POD_PATHS, None).apply(&mut event);
        assert!(!event.to_string().contains("10.0.0.7"));
        let mut status = json!({"kind": "Status", "message": "node-1"});
        read(&POD_PATHS, None).apply(&mut status);
        assert_eq!(status["message"], "node-1");
    }

    #[test]
    fn table_cells_showing_masked_values_are_masked_and_objects_cut_back() {
        let table = || {
            json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": [
                {"cells": ["node-1", "Running", "10.1.0.3", "node-1", "<none>", "node-1, node-2"], "object": pod()}
            ]})
        };
        let mut t = table();
        read(&POD_PATHS, None).apply(&mut t);
        assert_eq!(t["rows"][0]["cells"], json!(["node-1", "Running", "10.1.0.3", MASKED, "<none>", MASKED]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(!t["rows"][0]["object"].to_string().contains("node-1"), "{t}");
        let mut t = table();
        read(&POD_PATHS, Some("None")).apply(&mut t);
        assert!(t["rows"][0].get("object").is_none());
        let mut t = table();
        read(&POD_PATHS, Some("Object")).apply(&mut t);
        assert_eq!(t["rows"][0]["object"]["status"]["podIP"], "10.1.0.3");
        assert!(!t.to_string().contains("10.0.0.7"));
    }

    #[test]
    fn rows_without_objects_keep_only_their_name() {
        let mut t = json!({"kind": "Table", "rows": [{"cells": ["p", "node-1"]}]});
        read(&POD_PATHS, Some("None")).apply(&mut t);
        assert_eq!(t["rows"][0]["cells"], json!(["p", MASKED]));
    }
}
