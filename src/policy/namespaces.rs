//! Namespaces tenants create (design invariant 3): named `prefix(view) + name`, stamped with the
//! tree's labels so the view's selector, the reconciler (members' RoleBindings) and Canopy's
//! live index all see them, created by Canopy itself (tenants hold no cluster-wide RBAC), within
//! the ceiling's quota, and never with a name that a child node's prefix reserves.
//!
//! The quota holds under concurrency: creations in one view take turns in this process, and each
//! counts what exists upstream at that moment (the live index may lag). Replicas do not share
//! turns, so after a create the count is taken again: a namespace beyond the quota in creation
//! order is deleted by the replica that created it, and its creator is refused. Labels and
//! annotations the tenant sends must be ones the ceiling lists (`allow.namespaces.labels`,
//! `annotations`; none by default), since cluster components act on them.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::{HeaderValue, Method, Request, Response, header};
use serde_json::{Value, json};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tower::{Service, ServiceExt};

use super::AsCanopy;
use super::as_caller::{encode_segment, read_json};
use super::namespace_gate::NamespaceKeys;
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::request::query::{Query, encode_pairs};
use crate::rewrite::json::METADATA_NAME;
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
    let mut name = asked.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
    if name.is_empty()
        && let Some(base) = asked.pointer("/metadata/generateName").and_then(Value::as_str)
    {
        name = format!("{base}{}", generated_suffix());
    }
    let physical = check_name(tree, view, &name)?;
    let keys = NamespaceKeys { tree, node: view };
    let mut labels = asked.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        // The label naming the namespace is the apiserver's to set on every write (a tenant
        // writes the virtual name); every other key answers to the one rule.
        labels.remove(METADATA_NAME);
        if let Some(key) = labels.keys().find(|key| !keys.label(key)) {
            return Err(keys.refusal(&name, "label", key));
        }
        for (key, value) in tree.labels(view).for_owned_namespace() {
            labels.insert(key, value.into());
        }
    }
    let annotations = asked.pointer("/metadata/annotations").cloned().unwrap_or_else(|| json!({}));
    if let Some(key) = annotations.as_object().into_iter().flat_map(|a| a.keys()).find(|key| !keys.annotation(key)) {
        return Err(keys.refusal(&name, "annotation", key));
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

/// Five characters the apiserver's name generator would pick from (no vowels, no look-alikes).
fn generated_suffix() -> String {
    use std::hash::BuildHasher;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    // RandomState is seeded from the OS for each instance.
    let mut bits = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    (0..5)
        .map(|_| {
            let c = ALPHABET[(bits % ALPHABET.len() as u64) as usize];
            bits /= ALPHABET.len() as u64;
            char::from(c)
        })
        .collect()
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

/// Namespace creations in flight: one turn per view at a time in this process.
#[derive(Clone, Default)]
pub struct Creations(Arc<DashMap<String, Arc<Mutex<()>>>>);

impl Creations {
    /// Waits for the turn of `view` (a node's path) to create a namespace.
    async fn turn(&self, view: &str) -> OwnedMutexGuard<()> {
        let lock = Arc::clone(self.0.entry(view.to_owned()).or_default().value());
        lock.lock_owned().await
    }
}

/// A tenant's namespace creation, ready to be sent.
pub struct Creation {
    pub request: Request<Body>,
    /// The new namespace's physical name.
    pub physical: String,
    pub view: NodeId,
}

impl Creation {
    /// Sends the creation through `inner` within the view's quota; the answer is upstream's.
    pub async fn run<S>(self, tree: &Tree, creations: &Creations, inner: S) -> Result<Response<Body>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone,
    {
        let node = &tree.nodes[self.view];
        let quota = node.ceiling.namespace_quota as usize;
        let virtual_name = self.physical.strip_prefix(&node.prefix).unwrap_or(&self.physical).to_owned();
        let over_quota = |held: usize| {
            Status::forbidden(format!(
                "namespaces \"{virtual_name}\" is forbidden: view {} holds {held} namespaces, its quota is {quota}",
                node.path
            ))
        };
        let dry_run = Query::parse(self.request.uri().query().unwrap_or(""))?.get("dryRun").is_some();
        let identity =
            self.request.extensions().get::<Identity>().cloned().ok_or_else(|| Status::internal("no identity"))?;
        let _turn = creations.turn(&node.path).await;
        let held = held_by(tree, self.view, &identity, inner.clone()).await?;
        if held.len() >= quota && !held.contains(&self.physical) {
            return Err(over_quota(held.len()));
        }
        let response = inner.clone().oneshot(self.request).await?;
        // A dry run creates nothing for the count or the index to see.
        if response.status().is_success() && !dry_run {
            let now = held_by(tree, self.view, &identity, inner.clone()).await?;
            if now.iter().position(|n| *n == self.physical).is_some_and(|place| place >= quota) {
                // Another replica's creation came first: this one goes again.
                let path = format!("/api/v1/namespaces/{}", encode_segment(&self.physical));
                inner.oneshot(as_canopy(&identity, Method::DELETE, &path)?).await?;
                return Err(over_quota(now.len() - 1));
            }
            settle(tree, &self.physical).await;
        }
        Ok(response)
    }
}

/// The namespaces `view`'s subtree holds, in creation order: those the config declares, then
/// every namespace upstream labelled for the subtree.
async fn held_by<S>(tree: &Tree, view: NodeId, identity: &Identity, inner: S) -> Result<Vec<String>, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
{
    let selector = tree.labels(view).subtree_selector();
    let path = format!("/api/v1/namespaces?{}", encode_pairs(&[("labelSelector".to_owned(), selector)]));
    let mut request = as_canopy(identity, Method::GET, &path)?;
    request.headers_mut().insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
    );
    let found = inner.oneshot(request).await?;
    if !found.status().is_success() {
        return Err(Status::bad_gateway(format!("counting the view's namespaces answered {}", found.status())));
    }
    let list = read_json(found.into_body()).await?;
    let mut created: Vec<(&str, &str)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let name = item.pointer("/metadata/name")?.as_str()?;
            let at = item.pointer("/metadata/creationTimestamp").and_then(Value::as_str).unwrap_or("");
            Some((at, name))
        })
        .collect();
    created.sort_unstable();
    let mut names: Vec<String> =
        tree.subtree(view).flat_map(|n| tree.nodes[n].namespaces.iter().map(|ns| ns.physical.clone())).collect();
    for (_, name) in created {
        if !names.iter().any(|known| known == name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// A request Canopy makes as itself on `identity`'s behalf.
fn as_canopy(identity: &Identity, method: Method, path: &str) -> Result<Request<Body>, Status> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::ACCEPT, "application/json")
        .body(body::empty())
        .map_err(|_| Status::internal(format!("invalid path {path:?}")))?;
    request.extensions_mut().insert(identity.clone());
    request.extensions_mut().insert(AsCanopy);
    Ok(request)
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

    #[test]
    fn generated_names_are_dns_labels() {
        let suffix = generated_suffix();
        assert_eq!(suffix.len(), 5);
        assert!(is_dns_label(&format!("feature-{suffix}")), "{suffix}");
    }
}
