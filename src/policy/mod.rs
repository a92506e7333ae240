//! Tenancy decisions (design invariants 1–3): which view a request is made from, whether the
//! caller may use it, and what the request may touch there — namespaces of the view's subtree
//! only (anything else is 404 with the virtual name, so existence is not revealed), resources and
//! subresources within the view's ceiling, cluster-scoped resources only when allowlisted for
//! reading. Pure functions over the tree snapshot; [`crate::tenancy`] applies them, with the
//! gates and filters this module holds.

mod as_caller;
pub mod bound_gate;
pub mod deny_gate;
mod escalation;
pub mod hidden_gate;
pub mod links;
pub mod mask_gate;
pub mod namespace_gate;
pub mod namespaces;
mod precondition;
pub mod protobuf_gate;
pub mod reference_gate;
mod references;
pub mod review;
pub mod revoke;
pub mod rules_review;
pub mod secret_gate;
mod secret_refs;
pub mod write;

use std::sync::Arc;

use crate::auth::Identity;
use crate::request::{RequestInfo, ViewPath};
use crate::rewrite::ViewNames;
use crate::status::Status;
use crate::tree::deny::DenyRule;
use crate::tree::{Ceiling, NodeId, Reach, Tree};
pub use crate::upstream::AsCanopy;

/// How an allowed request is rewritten for upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// `(physical, virtual)` namespace named in the path.
    pub namespace: Option<(String, String)>,
    /// Label selector to AND into a namespace list or watch.
    pub selector: Option<String>,
    /// Sent upstream as Canopy itself rather than as the caller: Canopy has decided the request
    /// and narrowed it (a subtree's namespace list), which tenants' own RBAC could not express.
    pub as_canopy: bool,
    /// A list or watch across all the view's namespaces (`-A`), answered by [`crate::fanout`].
    pub across: bool,
    /// A namespace to create in the view (answered by [`namespaces::create_request`]).
    pub create_namespace: bool,
    /// The rule that allowed the request, for the audit line.
    pub rule: &'static str,
    /// Deny rules choosing objects by label that refuse the request for the objects they
    /// choose: it is judged on its object ([`deny_gate`]).
    pub labelled: Vec<Arc<DenyRule>>,
}

/// The view of a request: for a controller's subject, the controller's, which takes no URL;
/// else the node its URL names, if the caller may use it, or else the caller's single home node.
pub fn resolve_view(tree: &Tree, identity: &Identity, path: &ViewPath) -> Result<NodeId, Status> {
    // A controller's subject is never a tenant (the tree refuses one listed as both); one that
    // a group makes a member too still acts as the controller, and only as that.
    let controllers = tree.controller_views(identity);
    if !controllers.is_empty() {
        return match (&path.0, controllers.first()) {
            (Some(path), _) => Err(Status::not_found(format!("the view {path:?} does not exist"))),
            (None, Some(&view)) if controllers.len() == 1 => Ok(view),
            _ => {
                let paths: Vec<&str> = controllers.iter().map(|&n| tree.nodes[n].path.as_str()).collect();
                Err(Status::forbidden(format!(
                    "User {:?} acts as several controllers ({}); the platform must give it one",
                    identity.user,
                    paths.join(", ")
                )))
            }
        };
    }
    if let Some(path) = &path.0 {
        // A view the caller cannot use is reported as absent: other tenants' nodes stay unknown.
        return tree
            .node(path)
            .filter(|&node| tree.member_at(identity, node).is_some())
            .ok_or_else(|| Status::not_found(format!("the view {path:?} does not exist")));
    }
    let mut homes: Vec<NodeId> = tree.memberships(identity).map(|(node, _)| node).collect();
    homes.sort_unstable();
    homes.dedup();
    match homes.as_slice() {
        [home] => Ok(*home),
        [] => Err(Status::forbidden(format!("User {:?} is not a member of any tenant", identity.user))),
        several => {
            let paths: Vec<&str> = several.iter().map(|&n| tree.nodes[n].path.as_str()).collect();
            Err(Status::forbidden(format!(
                "User {:?} is a member at several nodes; choose a view with a server URL ending in /v/<path>, one of: {}",
                identity.user,
                paths.join(", ")
            )))
        }
    }
}

/// Decides a request in `view`: what the view's confinement and ceiling allow, then the deny
/// rules in force where it lands, which beat any allow.
pub fn decide(tree: &Tree, view: NodeId, identity: &Identity, info: &RequestInfo) -> Result<Plan, Status> {
    let mut plan = allowed(tree, view, identity, info)?;
    if !info.is_resource_request {
        return Ok(plan);
    }
    let physical = plan.namespace.as_ref().map(|(physical, _)| physical.as_str());
    let node = tree.answering(view, physical);
    match tree.nodes[node].denies.judge(identity, info, physical) {
        Err(rule) => Err(denied(&tree.nodes[view].path, identity, info, rule)),
        Ok(labelled) => {
            plan.labelled = labelled;
            Ok(plan)
        }
    }
}

/// What an allowed `plan` still keeps from its request: `except objects labelled … (…)`, for
/// the answers of `kubectl auth can-i`, `who-can` and `access-matrix`.
pub fn exceptions(plan: &Plan) -> Option<String> {
    let rules: Vec<String> = plan.labelled.iter().map(|rule| rule.exception()).collect();
    (!rules.is_empty()).then(|| format!("except {}", rules.join("; ")))
}

/// The refusal of `info` in the view at `view` by deny rule `rule`.
pub fn denied(view: &str, identity: &Identity, info: &RequestInfo, rule: &DenyRule) -> Status {
    Status::forbidden(format!(
        "{} is forbidden: User {:?} cannot {} {} in view {view}: {}",
        resource_text(info),
        identity.user,
        info.verb,
        resource_name(info),
        rule.message()
    ))
    .about(&info.name, &info.api_group, &info.resource)
}

/// What the view's confinement and ceiling allow of a request.
fn allowed(tree: &Tree, view: NodeId, identity: &Identity, info: &RequestInfo) -> Result<Plan, Status> {
    if !info.is_resource_request {
        // Discovery, OpenAPI, /version: forwarded as they are.
        return Ok(Plan { rule: "non-resource request", ..Plan::default() });
    }
    let names = ViewNames::new(tree, view);
    let ceiling = &tree.nodes[view].ceiling;
    let reach = tree.nodes[view].reach;
    let forbidden = |what: String| {
        Status::forbidden(format!(
            "{} is forbidden: User {:?} cannot {what} in view {}",
            resource_text(info),
            identity.user,
            tree.nodes[view].path
        ))
        .about(&info.name, &info.api_group, &info.resource)
    };
    if !info.namespace.is_empty() {
        let physical = names.to_physical(&info.namespace).ok_or_else(|| {
            Status::not_found(format!("namespaces \"{}\" not found", info.namespace)).about(
                &info.namespace,
                "",
                "namespaces",
            )
        })?;
        // A namespace answers to the ceiling of the node owning it, which lies within the view's
        // (a view of `acme` reaches `acme/data`'s namespaces only as far as `acme/data` may go);
        // in a controller's view, to the controller's.
        let ceiling = &tree.nodes[tree.answering(view, Some(&physical))].ceiling;
        // Tenants hold no RBAC on namespaces, so Canopy reads the view's for them; a
        // controller's reads go as itself, its own RBAC the last word.
        let as_canopy = reach.is_none();
        let plan = Plan {
            namespace: Some((physical, info.namespace.clone())),
            rule: "namespace of the view's subtree, within the ceiling",
            ..Plan::default()
        };
        if info.resource == "namespaces" {
            return match info.verb.as_str() {
                "get" | "list" | "watch" if info.subresource.is_empty() => {
                    Ok(Plan { as_canopy, rule: "namespace of the view's subtree", ..plan })
                }
                "get" if info.subresource == "status" => {
                    Ok(Plan { as_canopy, rule: "namespace status of the view's subtree", ..plan })
                }
                "delete" if info.subresource.is_empty() && manages_namespaces(tree, view, identity) => {
                    let physical = plan.namespace.as_ref().map(|(p, _)| p.as_str()).unwrap_or_default();
                    if tree.declared(physical).is_some() {
                        return Err(forbidden(format!(
                            "delete namespace {:?}, which the tree declares (the platform team removes it from the config)",
                            info.namespace
                        )));
                    }
                    Ok(Plan { as_canopy: true, rule: "deletion of a tenant-created namespace", ..plan })
                }
                // Judged by the namespace gate: the labels and annotations the ceiling lists, only.
                "patch" | "update" if info.subresource.is_empty() && manages_namespaces(tree, view, identity) => {
                    Ok(Plan { as_canopy: true, rule: "namespace labels and annotations the ceiling lists", ..plan })
                }
                verb => Err(forbidden(format!("{verb} namespace {:?}", info.namespace))),
            };
        }
        if review::REVIEWS.contains(&(info.api_group.as_str(), info.resource.as_str())) && info.verb == "create" {
            return Ok(review_plan(info, plan));
        }
        if let Some(what) = refused_subresource(ceiling, info) {
            return Err(forbidden(what));
        }
        if !ceiling.allows(&info.api_group, &info.resource, &info.verb) {
            return Err(forbidden(format!(
                "{} resource {:?} in API group {:?}",
                info.verb, info.resource, info.api_group
            )));
        }
        return Ok(plan);
    }
    if info.resource == "namespaces" {
        return match info.verb.as_str() {
            "list" | "watch" => {
                let selector = match reach {
                    None => Some(tree.labels(view).subtree_selector()),
                    Some(Reach::Subtree(node)) => Some(tree.labels(node).subtree_selector()),
                    Some(Reach::All) => None,
                };
                let as_canopy = reach.is_none();
                Ok(Plan { selector, as_canopy, rule: "namespaces of the view's subtree", ..Plan::default() })
            }
            "create" if manages_namespaces(tree, view, identity) => Ok(Plan {
                create_namespace: true,
                as_canopy: true,
                rule: "namespace creation within the ceiling",
                ..Plan::default()
            }),
            verb => Err(forbidden(format!("{verb} namespaces"))),
        };
    }
    if review::REVIEWS.contains(&(info.api_group.as_str(), info.resource.as_str())) && info.verb == "create" {
        return Ok(review_plan(info, Plan::default()));
    }
    // Only a cluster-scoped resource is ever read cluster-wide: an allowlist entry that also
    // matches a namespaced one (`resources: ["*"]`) must not turn `-A` into an unconfined read.
    let cluster_scoped = tree.is_cluster_scoped(&info.api_group, &info.resource);
    if cluster_scoped
        && matches!(info.verb.as_str(), "get" | "list" | "watch")
        && ceiling.allows_cluster_read(&info.api_group, &info.resource)
    {
        if let Some(what) = refused_subresource(ceiling, info) {
            return Err(forbidden(what));
        }
        return Ok(Plan { rule: "cluster-scoped read allowed by the ceiling", ..Plan::default() });
    }
    // A cluster object the view may read is there, and not the tenant's to change: as the
    // apiserver answers a caller without the permission, not as if it were missing.
    if cluster_scoped && ceiling.allows_cluster_read(&info.api_group, &info.resource) {
        return Err(forbidden(format!(
            "{} cluster-scoped {:?} (the view may only read them)",
            info.verb, info.resource
        )));
    }
    if !cluster_scoped && ceiling.allows(&info.api_group, &info.resource, &info.verb) {
        // A namespaced resource asked for across namespaces: lists and watches span the view's.
        return match info.verb.as_str() {
            // Every namespace: one request upstream, streamed and filtered like any other.
            "list" | "watch" if reach == Some(Reach::All) => {
                Ok(Plan { rule: "across all namespaces, within the controller's ceiling", ..Plan::default() })
            }
            "list" | "watch" => {
                Ok(Plan { across: true, rule: "across the view's namespaces, within the ceiling", ..Plan::default() })
            }
            verb => Err(forbidden(format!("{verb} {:?} across all namespaces (name a namespace)", info.resource))),
        };
    }
    // Cluster-scoped resources outside the allowlist do not exist in a virtual cluster.
    Err(Status::not_found(format!("the server could not find the requested resource ({})", resource_text(info))))
}

/// A review the caller creates: of itself as the caller, of tokens and other subjects as Canopy,
/// which confines the question to the view and cuts it by the ceiling ([`review`]); tenants
/// hold no cluster permission to ask upstream themselves.
fn review_plan(info: &RequestInfo, plan: Plan) -> Plan {
    match info.resource.starts_with("self") {
        true => Plan { rule: "self review", ..plan },
        false => Plan { as_canopy: true, rule: "review confined to the view", ..plan },
    }
}

/// The namespaces a request across the view reaches: the subtree's, but those whose owner's
/// ceiling does not allow the request or whose deny rules refuse it there.
pub fn across_namespaces(tree: &Tree, view: NodeId, identity: &Identity, info: &RequestInfo) -> Vec<String> {
    let mut namespaces = tree.view_namespaces(view);
    namespaces.retain(|n| {
        let node = &tree.nodes[tree.answering(view, Some(n))];
        node.ceiling.allows(&info.api_group, &info.resource, &info.verb)
            && node.denies.refusing(identity, info, Some(n)).is_none()
    });
    namespaces
}

/// What `info` may not do when its subresource is not one the ceiling allows, worded as the
/// apiserver words it (`create resource "pods/exec" in API group ""`).
fn refused_subresource(ceiling: &Ceiling, info: &RequestInfo) -> Option<String> {
    (!ceiling.allows_subresource(&info.subresource)).then(|| {
        format!("{} resource \"{}/{}\" in API group {:?}", info.verb, info.resource, info.subresource, info.api_group)
    })
}

/// Whether `identity` may create, label and delete namespaces in `view`: the ceiling allows it and the
/// caller is an admin or editor there (readers and custom roles are not).
fn manages_namespaces(tree: &Tree, view: NodeId, identity: &Identity) -> bool {
    tree.nodes[view].ceiling.namespace_create
        && tree.member_at(identity, view).is_some_and(|m| matches!(m.role.as_str(), "admin" | "edit"))
}

/// `resource "deployments/scale" in API group "apps"`, as the apiserver words a refusal.
fn resource_name(info: &RequestInfo) -> String {
    let resource = match info.subresource.as_str() {
        "" => info.resource.clone(),
        sub => format!("{}/{sub}", info.resource),
    };
    format!("resource {resource:?} in API group {:?}", info.api_group)
}

fn resource_text(info: &RequestInfo) -> String {
    let mut text =
        if info.api_group.is_empty() { info.resource.clone() } else { format!("{}.{}", info.resource, info.api_group) };
    if !info.name.is_empty() {
        text = format!("{text} {:?}", info.name);
    }
    text
}

#[cfg(test)]
pub(crate) mod tests;
