//! OpenAPI as a view sees it: the v3 index lists only visible group-versions, and v2 and v3
//! documents keep only the paths of visible resources (schemas stay: types are not secrets, and
//! `kubectl explain` needs them).

use http::Method;
use serde_json::Value;

use super::{allowed_verbs, group_visible};
use crate::policy::is_cluster_scoped;
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

/// A v2 or v3 document: keeps the paths of resources the view can use.
pub fn filter_paths(ceiling: &Ceiling, doc: &mut Value) {
    let Some(Value::Object(paths)) = doc.get_mut("paths") else { return };
    paths.retain(|path, _| path_visible(ceiling, path));
}

fn path_visible(ceiling: &Ceiling, path: &str) -> bool {
    let Ok(info) = RequestInfo::parse(&Method::GET, path, None) else { return false };
    if !info.is_resource_request {
        return true;
    }
    let namespaced = !is_cluster_scoped(&info.api_group, &info.resource);
    let resource = match info.subresource.as_str() {
        "" => info.resource.clone(),
        sub => format!("{}/{sub}", info.resource),
    };
    !allowed_verbs(ceiling, &info.api_group, &resource, namespaced, &READ_OR_WRITE).is_empty()
}
