//! OpenAPI as a view sees it: the v3 index lists only visible group-versions, and v2 and v3
//! documents keep only the paths of visible resources and the schemas those paths reach. Whether
//! a path's resource is namespaced is read from the document itself ([`Scopes`]), custom
//! resources included, never from a list.

use std::collections::BTreeSet;

use http::Method;
use serde_json::Value;

use super::{allowed_verbs, group_visible};
use crate::request::RequestInfo;
use crate::tree::Ceiling;

/// HTTP methods as the verbs Canopy decides by (a list and a get share GET).
const READ_OR_WRITE: [&str; 8] = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

/// `/openapi/v3`: keeps group-versions whose group can be visible.
pub fn filter_index(ceiling: &Ceiling, doc: &mut Value) {
    let Some(Value::Object(paths)) = doc.get_mut("paths") else { return };
    paths.retain(|key, _| {
        let mut parts = key.split('/');
        match (parts.next(), parts.next()) {
            (Some("api"), _) => true,
            (Some("apis"), Some(group)) => group_visible(ceiling, group),
            _ => true,
        }
    });
}

/// A v2 or v3 document: keeps the paths of resources the view can use, and of the schemas
/// (v2 `definitions`, v3 `components.schemas`) only those those paths reach, so `kubectl
/// explain` and client-side validation know no kind the view cannot use.
pub fn filter_paths(ceiling: &Ceiling, doc: &mut Value) {
    let Some(Value::Object(paths)) = doc.get_mut("paths") else { return };
    let scopes = Scopes::of(paths.keys().map(String::as_str));
    paths.retain(|path, _| path_visible(ceiling, &scopes, path));
    let paths = doc.get("paths").cloned().unwrap_or(Value::Null);
    for (pointer, prefix) in [("/definitions", "#/definitions/"), ("/components/schemas", "#/components/schemas/")] {
        if let Some(Value::Object(schemas)) = doc.pointer_mut(pointer) {
            let reached = reachable(&paths, schemas, prefix);
            schemas.retain(|name, _| reached.contains(name));
        }
    }
}

/// The names of the schemas `from` refers to (`$ref: <prefix><name>`), and those they refer to.
fn reachable(from: &Value, schemas: &serde_json::Map<String, Value>, prefix: &str) -> BTreeSet<String> {
    let mut reached = BTreeSet::new();
    let mut pending = Vec::new();
    refs(from, prefix, &mut pending);
    while let Some(name) = pending.pop() {
        if let Some(schema) = schemas.get(&name)
            && reached.insert(name)
        {
            refs(schema, prefix, &mut pending);
        }
    }
    reached
}

/// Every `$ref` under `value` that names a schema by `prefix`, as the schema's name.
fn refs(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix(prefix) {
                            out.push(name.to_owned());
                        }
                    }
                    _ => refs(inner, prefix, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, prefix, out)),
        _ => {}
    }
}

/// The resources a document serves under `namespaces/{namespace}`: namespaced ones. Their
/// cross-namespace paths (`/api/v1/pods`) carry no namespace, so the document is read whole.
pub(super) struct Scopes(BTreeSet<(String, String)>);

impl Scopes {
    pub(super) fn of<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let namespaced = paths
            .into_iter()
            .filter_map(|path| RequestInfo::parse(&Method::GET, path, None).ok())
            .filter(|info| info.is_resource_request && !info.namespace.is_empty())
            .map(|info| (info.api_group, info.resource))
            .collect();
        Scopes(namespaced)
    }

    fn namespaced(&self, info: &RequestInfo) -> bool {
        !info.namespace.is_empty() || self.0.contains(&(info.api_group.clone(), info.resource.clone()))
    }
}

pub(super) fn path_visible(ceiling: &Ceiling, scopes: &Scopes, path: &str) -> bool {
    let Ok(info) = RequestInfo::parse(&Method::GET, path, None) else { return false };
    if !info.is_resource_request {
        return true;
    }
    let namespaced = scopes.namespaced(&info);
    let resource = match info.subresource.as_str() {
        "" => info.resource.clone(),
        sub => format!("{}/{sub}", info.resource),
    };
    !allowed_verbs(ceiling, &info.api_group, &resource, namespaced, &READ_OR_WRITE).is_empty()
}
