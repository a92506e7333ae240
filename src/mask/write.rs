//! Write masks on requests: pure judgements over JSON documents; the requests themselves are
//! orchestrated by `policy::mask_gate`.
//!
//! Guarded fields are the write paths and the read paths (a tenant may not set what it cannot
//! see). A create may not set one; an update or patch may not change one, judged on the object
//! the apiserver would store (a dry run) against the stored one, so every patch type and
//! server-side apply are judged on their effect. JSON patch operations are also judged on their
//! syntax: one whose `path` or `from` touches a read-masked field is refused even if it would
//! change nothing, since `test` and `copy` would reveal the hidden value.

use serde_json::Value;

use super::Mask;
use super::path::{self, Location, get, pointer, set};

/// Fields the apiserver changes on every write; never judged as the tenant's change.
const SERVER_MAINTAINED: [&str; 5] = ["resourceVersion", "generation", "managedFields", "uid", "creationTimestamp"];

impl Mask {
    /// The first guarded field `body` (an object being created) sets, if any.
    pub fn create_violation(&self, body: &Value) -> Option<String> {
        self.guarded()
            .find(|path| path.locate(body).iter().any(|location| get(body, location).is_some_and(|v| !v.is_null())))
            .map(|path| self.refusal(path, "sets"))
    }

    /// The first guarded field whose value differs between `stored` and `result`, if any.
    pub fn change_violation(&self, stored: &Value, result: &Value) -> Option<String> {
        self.differing(stored, result).map(|path| self.refusal(path, "changes"))
    }

    /// For a create Canopy could not read: the first guarded field whose value in `result`
    /// (the created object) differs from `defaults` (the object created without the guarded
    /// fields), so set by the tenant rather than by the apiserver's defaults.
    pub fn set_beyond_defaults(&self, defaults: &Value, result: &Value) -> Option<String> {
        self.differing(defaults, result).map(|path| self.refusal(path, "sets"))
    }

    /// `object` without its guarded fields, server-set metadata and status: what to create to
    /// learn the apiserver's defaults for them.
    pub fn without_guarded(&self, object: &Value) -> Value {
        let mut bare = object.clone();
        let locations = self.guarded().flat_map(|path| path.locate(&bare)).collect();
        path::remove_all(&mut bare, locations);
        if let Some(Value::Object(metadata)) = bare.get_mut("metadata") {
            SERVER_MAINTAINED.iter().for_each(|field| {
                metadata.remove(*field);
            });
        }
        if let Value::Object(map) = &mut bare {
            map.remove("status");
        }
        bare
    }

    fn differing(&self, stored: &Value, result: &Value) -> Option<&path::MaskPath> {
        self.guarded().find(|path| {
            let values = |doc: &Value| -> Vec<(Location, Value)> {
                let mut found: Vec<(Location, Value)> = path
                    .locate(doc)
                    .into_iter()
                    .filter(|location| !server_maintained(location))
                    .filter_map(|location| get(doc, &location).cloned().map(|v| (location, v)))
                    .filter(|(_, v)| !v.is_null())
                    .collect();
                found.sort_by(|a, b| a.0.cmp(&b.0));
                found
            };
            values(stored) != values(result)
        })
    }

    /// Puts the stored values of read-masked fields that `body` (a full update) lacks back, so an
    /// update of the view keeps what the view hides.
    pub fn restore(&self, stored: &Value, body: &mut Value) {
        let mut locations: Vec<Location> = self.read.iter().flat_map(|path| path.locate(stored)).collect();
        // Parents before their children (a location sorts before its extensions): a hidden child
        // restored first would create a stub parent, which then counts as present and keeps the
        // rest of a hidden parent from coming back.
        locations.sort_unstable();
        for location in locations {
            if get(body, &location).is_none()
                && let Some(value) = get(stored, &location)
            {
                set(body, &location, value.clone());
            }
        }
    }

    /// The first operation of a JSON patch that touches a read-masked field of `stored` by
    /// `path` or `from`, if any.
    pub fn json_patch_violation(&self, stored: &Value, operations: &Value) -> Option<String> {
        let hidden: Vec<(String, &str)> = self
            .read
            .iter()
            .flat_map(|path| path.locate(stored).into_iter().map(move |location| (pointer(&location), path.field())))
            .collect();
        let operations = operations.as_array()?;
        for operation in operations {
            for key in ["path", "from"] {
                let Some(target) = operation.get(key).and_then(Value::as_str) else { continue };
                if let Some((_, field)) = hidden.iter().find(|(hidden, _)| touches(target, hidden)) {
                    return Some(format!(
                        "a JSON patch operation on {target:?} touches field {field}, which is masked in view {}",
                        self.view
                    ));
                }
            }
        }
        None
    }

    fn refusal(&self, path: &path::MaskPath, what: &str) -> String {
        format!("the write {what} field {}, which is masked in view {}", path.field(), self.view)
    }
}

/// Whether JSON pointer `a` lies within `b` or `b` within `a` (`-` stands for a new element).
fn touches(a: &str, b: &str) -> bool {
    let within = |inner: &str, outer: &str| inner == outer || inner.starts_with(&format!("{outer}/"));
    within(a, b) || within(b, a)
}

fn server_maintained(location: &[path::Step]) -> bool {
    matches!(location, [path::Step::Key(m), path::Step::Key(field), ..] if m == "metadata" && SERVER_MAINTAINED.contains(&field.as_str()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::mask::MaskPath;

    fn mask(read: &[&str], write: &[&str]) -> Mask {
        let compile = |paths: &[&str]| paths.iter().map(|p| Arc::new(MaskPath::compile(p).unwrap())).collect();
        Mask { read: compile(read), write: compile(write), view: "acme/web".into() }
    }

    fn pods() -> Mask {
        mask(&["$.spec.nodeName", "$.status.hostIP"], &["$.spec.nodeSelector", "$.spec.tolerations"])
    }

    #[test]
    fn creates_may_not_set_guarded_fields() {
        let m = pods();
        assert_eq!(m.create_violation(&json!({"spec": {"containers": []}})), None);
        assert_eq!(m.create_violation(&json!({"spec": {"nodeSelector": null}})), None);
        let why = m.create_violation(&json!({"spec": {"nodeSelector": {"disk": "ssd"}}})).unwrap();
        assert_eq!(why, "the write sets field spec.nodeSelector, which is masked in view acme/web");
        assert!(m.create_violation(&json!({"spec": {"nodeName": "n1"}})).unwrap().contains("spec.nodeName"));
    }

    #[test]
    fn updates_may_not_change_guarded_fields() {
        let m = pods();
        let stored =
            json!({"metadata": {"resourceVersion": "1"}, "spec": {"nodeName": "n1", "tolerations": [{"key": "a"}]}});
        let mut result = stored.clone();
        result["metadata"]["resourceVersion"] = json!("2");
        result["spec"]["containers"] = json!([{"name": "c"}]);
        assert_eq!(m.change_violation(&stored, &result), None);
        result["spec"]["tolerations"] = json!([]);
        assert!(m.change_violation(&stored, &result).unwrap().contains("changes field spec.tolerations"));
        let mut removed = stored.clone();
        removed["spec"].as_object_mut().unwrap().remove("nodeName");
        assert!(m.change_violation(&stored, &removed).unwrap().contains("spec.nodeName"));
        let managed = mask(&["$.metadata.managedFields"], &[]);
        assert_eq!(
            managed.change_violation(
                &json!({"metadata": {"managedFields": [1]}}),
                &json!({"metadata": {"managedFields": [2]}})
            ),
            None
        );
    }

    #[test]
    fn encoded_creates_are_judged_against_the_defaults() {
        let m = pods();
        let defaults = json!({"spec": {"tolerations": [{"key": "not-ready"}]}});
        let result = json!({"metadata": {"uid": "u", "name": "p"}, "spec": {"tolerations": [{"key": "not-ready"}]}, "status": {}});
        assert_eq!(m.set_beyond_defaults(&defaults, &result), None);
        assert_eq!(m.without_guarded(&result), json!({"metadata": {"name": "p"}, "spec": {}}));
        let pinned = json!({"spec": {"tolerations": [{"key": "not-ready"}], "nodeName": "n1"}});
        assert!(m.set_beyond_defaults(&defaults, &pinned).unwrap().contains("sets field spec.nodeName"));
    }

    #[test]
    fn full_updates_keep_hidden_values() {
        let stored = json!({"spec": {"nodeName": "n1", "x": 1}, "status": {"hostIP": "10.0.0.1"}});
        let mut body = json!({"spec": {"x": 2}});
        pods().restore(&stored, &mut body);
        assert_eq!(body, json!({"spec": {"nodeName": "n1", "x": 2}, "status": {"hostIP": "10.0.0.1"}}));
        assert_eq!(pods().change_violation(&stored, &body), None);
    }

    #[test]
    fn restore_keeps_a_hidden_parent_whole_when_its_child_is_masked_first() {
        let m = mask(&["$.status.hostIP", "$.status"], &[]);
        let stored = json!({"spec": {"x": 1}, "status": {"hostIP": "10.0.0.1", "phase": "Running"}});
        let mut body = json!({"spec": {"x": 1}});
        m.restore(&stored, &mut body);
        assert_eq!(body, stored);
        assert_eq!(m.change_violation(&stored, &body), None);
    }

    #[test]
    fn json_patches_may_not_touch_hidden_fields() {
        let stored = json!({"spec": {"nodeName": "n1"}, "metadata": {"labels": {}}});
        let m = pods();
        let test = json!([{"op": "test", "path": "/spec/nodeName", "value": "n1"}]);
        assert!(m.json_patch_violation(&stored, &test).unwrap().contains("spec.nodeName"));
        let copy = json!([{"op": "copy", "from": "/spec", "path": "/metadata/labels/x"}]);
        assert!(m.json_patch_violation(&stored, &copy).is_some(), "copying a parent reveals the child");
        let fine = json!([{"op": "add", "path": "/metadata/labels/x", "value": "y"}, {"op": "add", "path": "/spec/nodeNameX", "value": 1}]);
        assert_eq!(m.json_patch_violation(&stored, &fine), None);
        assert_eq!(m.json_patch_violation(&stored, &json!({"not": "a patch"})), None);
    }
}
