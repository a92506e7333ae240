//! Discovery and OpenAPI as a view sees them: `/api/v1` and `/apis/<g>/<v>` resource lists,
//! aggregated discovery (`APIGroupDiscoveryList` on `/api` and `/apis`) and the OpenAPI v2 and v3
//! documents list only what the view's ceiling allows, with the verbs it allows, so `kubectl
//! api-resources`, `explain` and completion show the virtual cluster. Pure functions over JSON
//! (and over the wire format of the OpenAPI v2 document in protobuf).

mod openapi;
pub mod openapi_v2_protobuf;
pub mod scopes;

use serde_json::Value;

use crate::policy::review::REVIEWS;
use crate::request::RequestInfo;
use crate::tree::Ceiling;

/// A discovery document Canopy filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// `/api/v1`, `/apis/<group>/<version>`: an `APIResourceList`.
    Resources { group: String },
    /// `/api`, `/apis`: aggregated discovery when asked for (otherwise passed as it is).
    Groups,
    /// `/apis/<group>`: an `APIGroup` (its versions), seen only where the group is visible.
    Group { group: String },
    /// `/openapi/v3`: the index of group-version documents.
    OpenApiIndex,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/<group>/<version>`, `/openapi/v2`.
    OpenApi { group: Option<String> },
}

impl Document {
    /// The document a non-resource request asks for, if Canopy filters it.
    pub fn of(info: &RequestInfo) -> Option<Self> {
        let segments: Vec<&str> = info.segments.iter().map(String::as_str).collect();
        Some(match segments.as_slice() {
            ["api", _] => Document::Resources { group: String::new() },
            ["apis", group, _] => Document::Resources { group: (*group).to_owned() },
            ["api"] | ["apis"] => Document::Groups,
            ["apis", group] => Document::Group { group: (*group).to_owned() },
            ["openapi", "v3"] => Document::OpenApiIndex,
            ["openapi", "v3", "api", _] => Document::OpenApi { group: Some(String::new()) },
            ["openapi", "v3", "apis", group, _] => Document::OpenApi { group: Some((*group).to_owned()) },
            ["openapi", "v2"] => Document::OpenApi { group: None },
            _ => return None,
        })
    }

    /// Whether a view with `ceiling` may see this document at all.
    pub fn visible(&self, ceiling: &Ceiling) -> bool {
        match self {
            Document::Resources { group } | Document::Group { group } | Document::OpenApi { group: Some(group) } => {
                group_visible(ceiling, group)
            }
            _ => true,
        }
    }

    /// Filters `doc` for a view with `ceiling`.
    pub fn filter(&self, ceiling: &Ceiling, doc: &mut Value) {
        match self {
            Document::Resources { group } => filter_resource_list(ceiling, group, doc),
            Document::Groups => filter_aggregated(ceiling, doc),
            Document::Group { .. } => {}
            Document::OpenApiIndex => openapi::filter_index(ceiling, doc),
            Document::OpenApi { .. } => openapi::filter_paths(ceiling, doc),
        }
    }
}

const READ: [&str; 3] = ["get", "list", "watch"];

/// The verbs of `group/resource` (`pods`, `pods/exec`) a view with `ceiling` may use, out of
/// `offered`; empty: the resource is invisible.
pub fn allowed_verbs(
    ceiling: &Ceiling,
    group: &str,
    resource: &str,
    namespaced: bool,
    offered: &[&str],
) -> Vec<String> {
    let (parent, sub) = resource.split_once('/').map_or((resource, None), |(p, s)| (p, Some(s)));
    if sub.is_some_and(|s| !ceiling.allows_subresource(s)) {
        return Vec::new();
    }
    let keep = |verb: &str| -> bool {
        if REVIEWS.contains(&(group, parent)) {
            return true;
        }
        if group.is_empty() && parent == "namespaces" {
            // What Canopy answers for namespaces: reads (and `status` reads), and creating,
            // labelling and deleting them where the ceiling lets tenants manage namespaces.
            let manages = ceiling.namespace_create && matches!(verb, "create" | "delete" | "patch" | "update");
            return match sub {
                None => READ.contains(&verb) || manages,
                Some(sub) => sub == "status" && verb == "get",
            };
        }
        if namespaced {
            // Subresources answer to their parent's rules, as Canopy decides them.
            ceiling.allows(group, parent, verb)
                || (sub.is_some() && READ.iter().any(|r| ceiling.allows(group, parent, r)))
        } else {
            READ.contains(&verb) && ceiling.allows_cluster_read(group, parent)
        }
    };
    offered.iter().copied().filter(|v| keep(v)).map(str::to_owned).collect()
}

/// Whether any resource of `group` can be visible under `ceiling`.
pub fn group_visible(ceiling: &Ceiling, group: &str) -> bool {
    let mentions =
        |rules: &[crate::tree::Rule]| rules.iter().any(|r| r.groups.contains("*") || r.groups.contains(group));
    group.is_empty()
        || REVIEWS.iter().any(|(g, _)| *g == group)
        || mentions(&ceiling.resources)
        || mentions(&ceiling.cluster_read)
}

fn str_list(value: Option<&Value>) -> Vec<&str> {
    value.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// `APIResourceList`: drops invisible resources, narrows verbs.
fn filter_resource_list(ceiling: &Ceiling, group: &str, doc: &mut Value) {
    let Some(Value::Array(resources)) = doc.get_mut("resources") else { return };
    resources.retain_mut(|resource| {
        let name = resource.get("name").and_then(Value::as_str).unwrap_or("").to_owned();
        let namespaced = resource.get("namespaced").and_then(Value::as_bool).unwrap_or(true);
        let verbs = allowed_verbs(ceiling, group, &name, namespaced, &str_list(resource.get("verbs")));
        let visible = !verbs.is_empty();
        resource["verbs"] = verbs.into();
        visible
    });
}

/// `APIGroupDiscoveryList` (aggregated discovery v2): the same per resource and subresource;
/// versions and groups left empty are dropped. A plain `APIGroupList` keeps visible groups.
fn filter_aggregated(ceiling: &Ceiling, doc: &mut Value) {
    if doc.get("kind").and_then(Value::as_str) == Some("APIGroupList") {
        if let Some(Value::Array(groups)) = doc.get_mut("groups") {
            groups.retain(|g| group_visible(ceiling, g.get("name").and_then(Value::as_str).unwrap_or("")));
        }
        return;
    }
    if doc.get("kind").and_then(Value::as_str) != Some("APIGroupDiscoveryList") {
        return;
    }
    let Some(Value::Array(groups)) = doc.get_mut("items") else { return };
    groups.retain_mut(|group_doc| {
        let group = group_doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
        let Some(Value::Array(versions)) = group_doc.get_mut("versions") else { return false };
        versions.retain_mut(|version| {
            let Some(Value::Array(resources)) = version.get_mut("resources") else { return false };
            resources.retain_mut(|resource| filter_discovered(ceiling, &group, resource));
            !resources.is_empty()
        });
        !versions.is_empty()
    });
}

fn filter_discovered(ceiling: &Ceiling, group: &str, resource: &mut Value) -> bool {
    let name = resource.get("resource").and_then(Value::as_str).unwrap_or("").to_owned();
    let namespaced = resource.get("scope").and_then(Value::as_str) != Some("Cluster");
    let verbs = allowed_verbs(ceiling, group, &name, namespaced, &str_list(resource.get("verbs")));
    if verbs.is_empty() {
        return false;
    }
    resource["verbs"] = verbs.into();
    if let Some(Value::Array(subresources)) = resource.get_mut("subresources") {
        subresources.retain_mut(|sub| {
            let full = format!("{name}/{}", sub.get("subresource").and_then(Value::as_str).unwrap_or(""));
            let verbs = allowed_verbs(ceiling, group, &full, namespaced, &str_list(sub.get("verbs")));
            let visible = !verbs.is_empty();
            sub["verbs"] = verbs.into();
            visible
        });
    }
    true
}

#[cfg(test)]
mod tests;
