//! A linked copy's source as a view shows it. Upstream, a copy's `link.<domain>/source`
//! annotation names the source's physical namespace and name, and its label of the same key
//! `<namespace>.<name>`. In a response both are rewritten for the view: a namespace of the
//! view's subtree by its virtual name; a namespace of the tree outside the view (an ancestor's)
//! not at all, leaving the name alone, since a physical name outside the view never appears; a
//! namespace the tree does not own (the platform's, e.g. `platform`) as it is — the platform
//! team published it by linking from it. Label selectors are not rewritten: selecting copies by
//! this label works with the value stored upstream, which is the one shown for platform sources.

use serde_json::Value;

use super::ViewNames;
use crate::tree::links::{parse_source_annotation, source_annotation, source_key, source_label};
use crate::tree::{NodeId, Tree};

/// How the source namespace `physical` is named in `view`; `None`: not at all.
pub fn namespace_in_view(tree: &Tree, view: NodeId, physical: &str) -> Option<String> {
    match tree.namespace_area(physical) {
        None => Some(physical.to_owned()),
        Some(_) => ViewNames::new(tree, view).to_virtual(physical),
    }
}

/// The source named by a copy's annotation `annotation`, as `view` shows it: `<namespace>/<name>`
/// or `<name>`.
pub fn source_in_view(tree: &Tree, view: NodeId, annotation: &str) -> String {
    let (namespace, name) = parse_source_annotation(annotation);
    let shown = namespace.and_then(|ns| namespace_in_view(tree, view, ns));
    source_annotation(shown.as_deref(), name)
}

/// Rewrites the source label and annotation of every copy in a response document: the object,
/// list items, a watch event's object and Table rows' objects.
pub fn present(document: &mut Value, tree: &Tree, view: NodeId) {
    let key = source_key(&tree.domain);
    let mut fix = |object: &mut Value| present_one(object, &key, tree, view);
    fix(document);
    if let Some(object) = document.get_mut("object") {
        fix(object);
    }
    if let Some(Value::Array(items)) = document.get_mut("items") {
        items.iter_mut().for_each(&mut fix);
    }
    if let Some(Value::Array(rows)) = document.get_mut("rows") {
        rows.iter_mut().filter_map(|row| row.get_mut("object")).for_each(&mut fix);
    }
}

fn present_one(object: &mut Value, key: &str, tree: &Tree, view: NodeId) {
    let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let Some(Value::String(annotation)) =
        metadata.get_mut("annotations").and_then(Value::as_object_mut).and_then(|a| a.get_mut(key))
    else {
        return;
    };
    let shown = source_in_view(tree, view, annotation);
    let (namespace, name) = parse_source_annotation(&shown);
    let label = source_label(namespace, name);
    *annotation = shown;
    if let Some(Value::String(value)) =
        metadata.get_mut("labels").and_then(Value::as_object_mut).and_then(|l| l.get_mut(key))
    {
        *value = label;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::raw_tree::RawTree;

    fn tree() -> Tree {
        let raw: RawTree = serde_saphyr::from_str(
            "nodes:\n  - name: acme\n    namespaces: [shared]\n    children:\n      - name: web\n        namespaces: [dev]\n  - name: globex\n    namespaces: [main]\n",
        )
        .unwrap();
        Tree::compile(&raw, "tree").unwrap()
    }

    fn copy(source: &str) -> Value {
        let (namespace, name) = parse_source_annotation(source);
        json!({"kind": "ConfigMap", "metadata": {"name": name, "namespace": "acme-web-dev",
            "labels": {"link.canopy.dev/source": source_label(namespace, name), "app.kubernetes.io/managed-by": "canopy"},
            "annotations": {"link.canopy.dev/source": source}}})
    }

    fn shown(document: &Value) -> (String, String) {
        let metadata = &document["metadata"];
        (
            metadata["labels"]["link.canopy.dev/source"].as_str().unwrap().to_owned(),
            metadata["annotations"]["link.canopy.dev/source"].as_str().unwrap().to_owned(),
        )
    }

    #[test]
    fn sources_are_named_as_the_view_sees_them() {
        let tree = tree();
        let (acme, web) = (tree.node("acme").unwrap(), tree.node("acme/web").unwrap());
        let cases = [
            // The platform's namespace, as it is, in every view.
            (web, "platform/ca-bundle", ("platform.ca-bundle", "platform/ca-bundle")),
            // An ancestor's namespace: virtual where the view holds it, absent where it does not.
            (acme, "acme-shared/settings", ("shared.settings", "shared/settings")),
            (web, "acme-shared/settings", ("settings", "settings")),
            // Under a prefix of the tree, though not declared: the tree's, so never shown outside.
            (web, "acme-tools/x", ("x", "x")),
        ];
        for (view, source, (label, annotation)) in cases {
            let mut document = copy(source);
            present(&mut document, &tree, view);
            assert_eq!(shown(&document), (label.to_owned(), annotation.to_owned()), "{source}");
            assert!(!document.to_string().contains("acme-shared") || view == acme, "{document}");
        }
    }

    #[test]
    fn lists_events_and_table_rows_are_presented() {
        let tree = tree();
        let web = tree.node("acme/web").unwrap();
        let mut list =
            json!({"kind": "ConfigMapList", "items": [copy("acme-shared/a"), {"metadata": {"name": "plain"}}]});
        present(&mut list, &tree, web);
        assert_eq!(shown(&list["items"][0]), ("a".to_owned(), "a".to_owned()));
        assert_eq!(list["items"][1], json!({"metadata": {"name": "plain"}}));
        let mut event = json!({"type": "MODIFIED", "object": copy("acme-shared/b")});
        present(&mut event, &tree, web);
        assert_eq!(shown(&event["object"]).1, "b");
        let mut table = json!({"kind": "Table", "rows": [{"cells": ["c"], "object": copy("acme-shared/c")}]});
        present(&mut table, &tree, web);
        assert_eq!(shown(&table["rows"][0]["object"]).1, "c");
        assert!(!table.to_string().contains("acme-shared"));
    }
}
