//! Namespace names inside JSON documents: objects, lists, watch events, Tables and Status
//! errors. Every string field called `namespace` (object metadata, Events' involvedObject,
//! RoleBinding subjects, access-review attributes), the name of every Namespace object and the
//! namespace inside ServiceAccount user and group names (`system:serviceaccount:<ns>:<name>`,
//! `system:serviceaccounts:<ns>`, wherever they appear: RoleBinding subjects, reviews) is mapped;
//! the same walk serves requests (virtual → physical) and responses (physical → virtual).

use serde_json::Value;

/// Rewrites namespace names in `value` with `map`; names `map` refuses are left as they are
/// (callers confine requests so that refused names do not reach here).
pub fn map_namespaces(value: &mut Value, map: &dyn Fn(&str) -> Option<String>) {
    match value {
        Value::Object(object) => {
            let is_namespace_object = object.get("kind").and_then(Value::as_str) == Some("Namespace");
            for (key, field) in object.iter_mut() {
                match (key.as_str(), field) {
                    ("namespace" | METADATA_NAME, Value::String(name)) => replace(name, map),
                    ("namespaces", Value::Array(names)) => {
                        for name in names.iter_mut() {
                            match name {
                                Value::String(name) => replace(name, map),
                                other => map_namespaces(other, map),
                            }
                        }
                    }
                    ("matchExpressions", Value::Array(requirements)) => {
                        for requirement in requirements.iter_mut() {
                            map_name_requirement(requirement, map);
                            map_namespaces(requirement, map);
                        }
                    }
                    ("cells", Value::Array(cells)) => cells.iter_mut().for_each(|cell| map_cell(cell, map)),
                    (LAST_APPLIED, Value::String(text)) => map_embedded(text, map),
                    ("metadata", Value::Object(metadata)) if is_namespace_object => {
                        if let Some(Value::String(name)) = metadata.get_mut("name") {
                            replace(name, map);
                        }
                        for inner in metadata.values_mut() {
                            map_namespaces(inner, map);
                        }
                    }
                    (_, inner) => map_namespaces(inner, map),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| map_namespaces(item, map)),
        Value::String(text) => map_service_account_name(text, map),
        _ => {}
    }
}

/// The label every namespace carries with its own name, so selectors can pick namespaces by name.
pub const METADATA_NAME: &str = "kubernetes.io/metadata.name";

/// A label selector requirement on [`METADATA_NAME`] (`{key, operator, values}`): its values are
/// namespace names.
fn map_name_requirement(requirement: &mut Value, map: &dyn Fn(&str) -> Option<String>) {
    if requirement.get("key").and_then(Value::as_str) != Some(METADATA_NAME) {
        return;
    }
    if let Some(Value::Array(values)) = requirement.get_mut("values") {
        for value in values.iter_mut() {
            if let Value::String(name) = value {
                replace(name, map);
            }
        }
    }
}

/// A Table cell: a namespace (`acme-web-dev`), a `namespace/name` reference (RoleBindings'
/// SERVICEACCOUNTS column) or a comma-separated list of them, or a ServiceAccount user or group.
fn map_cell(cell: &mut Value, map: &dyn Fn(&str) -> Option<String>) {
    let Value::String(text) = cell else { return map_namespaces(cell, map) };
    let mapped: Vec<String> = text
        .split(", ")
        .map(|token| {
            let mut token = token.to_owned();
            map_service_account_name(&mut token, map);
            if let Some(virtual_name) = map(&token) {
                return virtual_name;
            }
            match token.split_once('/') {
                Some((namespace, rest)) => map(namespace).map_or(token.clone(), |v| format!("{v}/{rest}")),
                None => token,
            }
        })
        .collect();
    *text = mapped.join(", ");
}

const SA_USER: &str = "system:serviceaccount:";
const SA_GROUP: &str = "system:serviceaccounts:";

/// `system:serviceaccount:<ns>:<name>` and `system:serviceaccounts:<ns>` with `<ns>` mapped.
pub fn map_service_account_name(text: &mut String, map: &dyn Fn(&str) -> Option<String>) {
    if let Some(rest) = text.strip_prefix(SA_USER)
        && let Some((namespace, name)) = rest.split_once(':')
        && let Some(mapped) = map(namespace)
    {
        *text = format!("{SA_USER}{mapped}:{name}");
    } else if let Some(namespace) = text.strip_prefix(SA_GROUP)
        && let Some(mapped) = map(namespace)
    {
        *text = format!("{SA_GROUP}{mapped}");
    }
}

/// kubectl's client-side apply keeps the applied object, as JSON text, in this annotation.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Maps the names in an embedded document, rewriting its text (as kubectl writes it) only when a
/// name changed, so an annotation with nothing to map stays byte for byte as stored.
fn map_embedded(text: &mut String, map: &dyn Fn(&str) -> Option<String>) {
    let Ok(mut embedded) = serde_json::from_str::<Value>(text) else { return };
    let stored = embedded.clone();
    map_namespaces(&mut embedded, map);
    if embedded != stored
        && let Ok(mapped) = serde_json::to_string(&embedded)
    {
        *text = format!("{mapped}\n");
    }
}

/// Maps the names of Namespace objects in a response about namespaces: the object itself, list
/// items, a watch event's object, and Table rows (the object and the name cell), which carry no
/// `kind` of their own.
pub fn map_namespace_names(value: &mut Value, map: &dyn Fn(&str) -> Option<String>) {
    each_namespace_object(value, &mut |object| {
        if let Some(Value::String(name)) = object.pointer_mut("/metadata/name") {
            replace(name, map);
        }
    });
    if let Some(Value::Array(rows)) = value.get_mut("rows") {
        for row in rows {
            if let Some(Value::String(name)) = row.pointer_mut("/cells/0") {
                replace(name, map);
            }
        }
    }
}

/// Removes the tree's labels (keys holding `marker`, `tree.<domain>/`) from the Namespace
/// objects of a response about namespaces, and their entries in managed fields: they name nodes
/// by their physical prefixes.
pub fn hide_tree_labels(value: &mut Value, marker: &str) {
    each_namespace_object(value, &mut |object| {
        if let Some(Value::Object(labels)) = object.pointer_mut("/metadata/labels") {
            labels.retain(|key, _| !key.contains(marker));
        }
        if let Some(Value::Array(managers)) = object.pointer_mut("/metadata/managedFields") {
            for manager in managers {
                if let Some(Value::Object(labels)) = manager.pointer_mut("/fieldsV1/f:metadata/f:labels") {
                    labels.retain(|key, _| !key.contains(marker));
                }
            }
        }
    });
}

/// Calls `f` on the object of a response about namespaces: the document, a watch event's object,
/// each list item and each Table row's object.
fn each_namespace_object(value: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    f(value);
    if let Some(object) = value.get_mut("object") {
        f(object);
    }
    if let Some(Value::Array(items)) = value.get_mut("items") {
        items.iter_mut().for_each(&mut *f);
    }
    if let Some(Value::Array(rows)) = value.get_mut("rows") {
        rows.iter_mut().filter_map(|row| row.get_mut("object")).for_each(f);
    }
}

/// Maps namespace names written into prose: a Status's message, its causes' messages and
/// `details.name`, and an Event's `message` or `note`. Every maximal run of DNS-label characters
/// is a candidate, so `acme-web-dev/x` and `(acme-web-dev/x; …)` are found and a longer name
/// that merely starts with a namespace's is not.
pub fn map_messages(value: &mut Value, map: &dyn Fn(&str) -> Option<String>) {
    let Value::Object(object) = value else { return };
    let fields: &[&str] = match object.get("kind").and_then(Value::as_str) {
        Some("Status") => &["message"],
        Some("Event") => &["message", "note"],
        _ => return,
    };
    for field in fields {
        if let Some(Value::String(text)) = object.get_mut(*field) {
            map_prose(text, map);
        }
    }
    if let Some(Value::Object(details)) = object.get_mut("details") {
        if let Some(Value::String(name)) = details.get_mut("name") {
            replace(name, map);
        }
        if let Some(Value::Array(causes)) = details.get_mut("causes") {
            for cause in causes.iter_mut() {
                if let Some(Value::String(text)) = cause.get_mut("message") {
                    map_prose(text, map);
                }
            }
        }
    }
}

/// [`map_messages`] on one text: every maximal run of DNS-label characters `map` knows is
/// replaced.
pub fn map_prose(text: &mut String, map: &dyn Fn(&str) -> Option<String>) {
    let is_label = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text.as_str();
    while let Some(start) = rest.find(is_label) {
        out.push_str(&rest[..start]);
        let word = &rest[start..];
        let end = word.find(|c: char| !is_label(c)).unwrap_or(word.len());
        match map(&word[..end]) {
            Some(mapped) => {
                out.push_str(&mapped);
                changed = true;
            }
            None => out.push_str(&word[..end]),
        }
        rest = &word[end..];
    }
    if changed {
        out.push_str(rest);
        *text = out;
    }
}

fn replace(name: &mut String, map: &dyn Fn(&str) -> Option<String>) {
    if let Some(mapped) = map(name) {
        *name = mapped;
    }
}

/// Replaces quoted occurrences of `physical` in a Status message with `virtual_name`, so
/// `namespaces "acme-web-dev" not found` reads `namespaces "dev" not found`.
pub fn map_status_message(value: &mut Value, physical: &str, virtual_name: &str) {
    if value.get("kind").and_then(Value::as_str) != Some("Status") {
        return;
    }
    if let Some(Value::String(message)) = value.get_mut("message") {
        *message = message.replace(&format!("\"{physical}\""), &format!("\"{virtual_name}\""));
        *message = message.replace(&format!("namespace {physical}"), &format!("namespace {virtual_name}"));
    }
    if let Some(Value::Object(details)) = value.get_mut("details")
        && let Some(Value::String(name)) = details.get_mut("name")
        && name == physical
    {
        *name = virtual_name.to_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strip(name: &str) -> Option<String> {
        name.strip_prefix("acme-").map(str::to_owned)
    }

    #[test]
    fn objects_lists_events_and_tables_are_mapped() {
        let mut doc = json!({
            "kind": "List",
            "items": [
                {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "acme-dev"}},
                {"kind": "Event", "metadata": {"namespace": "acme-dev"}, "involvedObject": {"namespace": "acme-dev", "name": "p"}},
                {"kind": "RoleBinding", "subjects": [{"kind": "ServiceAccount", "name": "s", "namespace": "acme-dev"}]},
                {"kind": "Namespace", "metadata": {"name": "acme-dev", "labels": {"x": "acme-dev"}}},
                {"kind": "Table", "rows": [{"cells": ["c"], "object": {"metadata": {"namespace": "acme-dev"}}}]},
            ]
        });
        map_namespaces(&mut doc, &strip);
        let text = doc.to_string();
        assert_eq!(text.matches("acme-dev").count(), 1, "only the label value stays: {text}");
        assert_eq!(doc["items"][3]["metadata"]["name"], "dev");
        assert_eq!(doc["items"][1]["involvedObject"]["namespace"], "dev");
        assert_eq!(doc["items"][4]["rows"][0]["object"]["metadata"]["namespace"], "dev");
    }

    #[test]
    fn namespace_lists_and_tables_are_mapped_without_kinds() {
        let mut list = json!({"kind": "NamespaceList", "items": [{"metadata": {"name": "acme-dev"}}]});
        map_namespace_names(&mut list, &strip);
        assert_eq!(list["items"][0]["metadata"]["name"], "dev");
        let mut table = json!({"kind": "Table", "rows": [{"cells": ["acme-dev", "Active"], "object": {"metadata": {"name": "acme-dev"}}}]});
        map_namespace_names(&mut table, &strip);
        assert_eq!(table["rows"][0]["cells"][0], "dev");
        assert_eq!(table["rows"][0]["object"]["metadata"]["name"], "dev");
        let mut event = json!({"type": "ADDED", "object": {"metadata": {"name": "acme-dev"}}});
        map_namespace_names(&mut event, &strip);
        assert_eq!(event["object"]["metadata"]["name"], "dev");
    }

    #[test]
    fn last_applied_configuration_is_mapped_inside() {
        let applied = r#"{"kind":"ConfigMap","metadata":{"name":"c","namespace":"acme-dev"}}"#;
        let mut doc = json!({"metadata": {"annotations": {LAST_APPLIED: applied}}});
        map_namespaces(&mut doc, &strip);
        let text = doc["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap();
        assert!(text.contains("\"namespace\":\"dev\"") && text.ends_with('\n'), "{text}");
    }

    #[test]
    fn service_account_users_and_groups_are_mapped() {
        let mut doc = json!({"subjects": [
            {"kind": "Group", "name": "system:serviceaccounts:acme-dev"},
            {"kind": "User", "name": "system:serviceaccount:acme-dev:builder"},
            {"kind": "User", "name": "system:serviceaccount:kube-system:x"},
        ], "status": {"userInfo": {"groups": ["system:serviceaccounts", "system:serviceaccounts:acme-dev"]}}});
        map_namespaces(&mut doc, &strip);
        assert_eq!(doc["subjects"][0]["name"], "system:serviceaccounts:dev");
        assert_eq!(doc["subjects"][1]["name"], "system:serviceaccount:dev:builder");
        assert_eq!(doc["subjects"][2]["name"], "system:serviceaccount:kube-system:x");
        assert_eq!(
            doc["status"]["userInfo"]["groups"],
            json!(["system:serviceaccounts", "system:serviceaccounts:dev"])
        );
    }

    #[test]
    fn table_cells_naming_namespaces_are_mapped() {
        let mut table = json!({"kind": "Table", "rows": [{"cells": [
            "rb", "ClusterRole/view", "42s", "alice, bob", "system:serviceaccounts:acme-dev", "acme-dev/builder, kube-system/x", 3, "acme-dev"
        ]}]});
        map_namespaces(&mut table, &strip);
        assert_eq!(
            table["rows"][0]["cells"],
            json!([
                "rb",
                "ClusterRole/view",
                "42s",
                "alice, bob",
                "system:serviceaccounts:dev",
                "dev/builder, kube-system/x",
                3,
                "dev"
            ])
        );
    }

    #[test]
    fn names_the_map_refuses_are_left_alone() {
        let mut doc = json!({"metadata": {"namespace": "kube-system"}});
        map_namespaces(&mut doc, &strip);
        assert_eq!(doc["metadata"]["namespace"], "kube-system");
    }

    #[test]
    fn namespace_labels_show_the_virtual_name_and_no_tree_labels() {
        let mut namespace = json!({"kind": "Namespace", "metadata": {"name": "acme-dev", "labels": {
            METADATA_NAME: "acme-dev", "acme.tree.canopy.dev/depth": "0", "tree.canopy.dev/node": "acme", "team": "a"},
            "managedFields": [{"fieldsV1": {"f:metadata": {"f:labels": {"f:acme.tree.canopy.dev/depth": {}, "f:team": {}}}}}]}});
        map_namespaces(&mut namespace, &strip);
        map_namespace_names(&mut namespace, &strip);
        hide_tree_labels(&mut namespace, "tree.canopy.dev/");
        assert_eq!(namespace["metadata"]["labels"], json!({METADATA_NAME: "dev", "team": "a"}));
        assert_eq!(
            namespace["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]["f:labels"],
            json!({"f:team": {}})
        );
    }

    #[test]
    fn selectors_on_namespace_names_are_mapped() {
        let mut policy = json!({"kind": "NetworkPolicy", "spec": {"ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {METADATA_NAME: "acme-prod"}}},
            {"namespaceSelector": {"matchExpressions": [
                {"key": METADATA_NAME, "operator": "In", "values": ["acme-prod", "kube-system"]},
                {"key": "team", "operator": "In", "values": ["acme-prod"]}]}}]}]}});
        map_namespaces(&mut policy, &strip);
        let from = &policy["spec"]["ingress"][0]["from"];
        assert_eq!(from[0]["namespaceSelector"]["matchLabels"][METADATA_NAME], "prod");
        assert_eq!(from[1]["namespaceSelector"]["matchExpressions"][0]["values"], json!(["prod", "kube-system"]));
        assert_eq!(from[1]["namespaceSelector"]["matchExpressions"][1]["values"], json!(["acme-prod"]));
        let mut affinity = json!({"podAffinityTerm": {"namespaces": ["acme-dev", "other"], "topologyKey": "k"}});
        map_namespaces(&mut affinity, &strip);
        assert_eq!(affinity["podAffinityTerm"]["namespaces"], json!(["dev", "other"]));
    }

    #[test]
    fn names_in_messages_are_mapped_as_whole_words() {
        let mut status = json!({"kind": "Status", "message": "failed to create typed patch object (acme-dev/x; /v1, Kind=ConfigMap): acme-devx acme-dev",
            "details": {"causes": [{"message": "namespace acme-dev is being terminated"}]}});
        let only_dev = |name: &str| (name == "acme-dev").then(|| "dev".to_owned());
        map_messages(&mut status, &only_dev);
        assert_eq!(
            status["message"],
            "failed to create typed patch object (dev/x; /v1, Kind=ConfigMap): acme-devx dev"
        );
        assert_eq!(status["details"]["causes"][0]["message"], "namespace dev is being terminated");
        let mut event = json!({"kind": "Event", "message": "Successfully assigned acme-dev/p to n"});
        map_messages(&mut event, &only_dev);
        assert_eq!(event["message"], "Successfully assigned dev/p to n");
        let mut other = json!({"kind": "ConfigMap", "message": "acme-dev"});
        map_messages(&mut other, &only_dev);
        assert_eq!(other["message"], "acme-dev");
    }

    #[test]
    fn status_messages_use_the_virtual_name() {
        let mut status = json!({"kind": "Status", "message": "namespaces \"acme-dev\" not found", "details": {"name": "acme-dev", "kind": "namespaces"}});
        map_status_message(&mut status, "acme-dev", "dev");
        assert_eq!(status["message"], "namespaces \"dev\" not found");
        assert_eq!(status["details"]["name"], "dev");
    }
}
