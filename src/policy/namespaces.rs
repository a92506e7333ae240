//! Namespaces tenants create (design invariant 3): named `prefix(view) + name`, stamped with the
//! tree's labels so the view's selector, the reconciler (members' RoleBindings) and Canopy's
//! live index all see them, created by Canopy itself (tenants hold no cluster-wide RBAC), within
//! the ceiling's quota, and never with a name that a child node's prefix reserves. Labels and
//! annotations the tenant sends must be ones the ceiling lists (`allow.namespaces.labels`,
//! `annotations`; none by default), since cluster components act on them.

use std::time::Duration;

use http::{HeaderValue, Request, header};
use serde_json::{Value, json};

use crate::body::{self, Body};
use crate::rewrite::protobuf;
use crate::status::Status;
use crate::transform;
use crate::tree::{NodeId, Tree, is_dns_label};

/// How long a creation waits for Canopy's index to see the new namespace, so the tenant's next
/// request already finds it.
const SETTLE: Duration = Duration::from_secs(2);

/// The upstream request creating the namespace a tenant asked for in `view`, and its physical
/// name.
pub async fn create_request(
    tree: &Tree,
    view: NodeId,
    request: Request<Body>,
) -> Result<(Request<Body>, String), Status> {
    let (mut parts, body) = request.into_parts();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = transform::read_bytes(body).await?;
    let asked: Value = if content_type.contains("protobuf") {
        let name = protobuf::object_name(&bytes).map_err(|e| Status::bad_request(e.to_string()))?;
        json!({ "metadata": { "name": name } })
    } else {
        transform::parse_document(&bytes)?
    };
    let name = asked.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    let physical = check_name(tree, view, &name)?;
    let quota = tree.nodes[view].ceiling.namespace_quota;
    let held = tree.subtree_namespaces(view).len();
    if held >= quota as usize {
        return Err(Status::forbidden(format!(
            "namespaces \"{name}\" is forbidden: view {} holds {held} namespaces, its quota is {quota}",
            tree.nodes[view].path
        )));
    }
    let ceiling = &tree.nodes[view].ceiling;
    let refuse = |what: &str, key: &str, list: &str| {
        Status::forbidden(format!(
            "namespaces \"{name}\" is forbidden: the {what} {key:?} is not one tenants may set in view {} \
             (allow.namespaces.{list} of the tree)",
            tree.nodes[view].path
        ))
    };
    let mut labels = asked.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        // The label naming the namespace is the apiserver's to set (a tenant writes the virtual name).
        labels.remove(crate::rewrite::json::METADATA_NAME);
        // Tree labels are Canopy's to set whatever the list allows: they decide the owner.
        labels.retain(|key, _| !key.contains(&format!("tree.{}/", tree.domain)));
        if let Some(key) = labels.keys().find(|key| !ceiling.namespace_labels.allows(key)) {
            return Err(refuse("label", key, "labels"));
        }
        for (key, value) in tree.labels(view).for_owned_namespace() {
            labels.insert(key, value.into());
        }
    }
    let annotations = asked.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({}));
    if let Some(key) = annotations
        .as_object()
        .into_iter()
        .flat_map(|a| a.keys())
        .find(|key| !ceiling.namespace_annotations.allows(key))
    {
        return Err(refuse("annotation", key, "annotations"));
    }
    let object = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": physical, "labels": labels, "annotations": annotations },
    });
    let bytes = serde_json::to_vec(&object).map_err(|e| Status::internal(e.to_string()))?;
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok((Request::from_parts(parts, body::full(bytes)), physical))
}

/// The physical name of a new namespace `name` in `view`, if the name may be taken.
fn check_name(tree: &Tree, view: NodeId, name: &str) -> Result<String, Status> {
    let node = &tree.nodes[view];
    let physical = format!("{}{name}", node.prefix);
    if !is_dns_label(name) || !is_dns_label(&physical) {
        return Err(Status::invalid(format!(
            "Namespace \"{name}\" is invalid: a namespace name must be a DNS label (lower-case letters, digits and '-'), \
             at most {} characters in view {}",
            63usize.saturating_sub(node.prefix.len()),
            node.path
        )));
    }
    if let Some(child) =
        node.children.iter().map(|&c| &tree.nodes[c]).find(|c| name.starts_with(&format!("{}-", c.name)))
    {
        return Err(Status::forbidden(format!(
            "namespaces \"{name}\" is forbidden: names starting with \"{}-\" belong to the child node {}",
            child.name, child.path
        )));
    }
    Ok(physical)
}

/// Waits (bounded) until the tree's live index knows `physical`.
pub async fn settle(tree: &Tree, physical: &str) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while tree.created_owner(physical).is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::example;

    #[test]
    fn names_follow_the_prefix_and_spare_childrens() {
        let tree = example();
        let acme = tree.node("acme").unwrap();
        let web = tree.node("acme/web").unwrap();
        assert_eq!(check_name(&tree, web, "feature-x").unwrap(), "acme-web-feature-x");
        assert_eq!(check_name(&tree, acme, "tools").unwrap(), "acme-tools");
        let reserved = check_name(&tree, acme, "web-sneaky").unwrap_err();
        assert_eq!(reserved.code, 403);
        assert!(reserved.message.contains("acme/web"), "{}", reserved.message);
        assert_eq!(check_name(&tree, web, "Bad_Name").unwrap_err().code, 422);
        assert_eq!(check_name(&tree, web, &"x".repeat(60)).unwrap_err().code, 422);
    }
}
