//! The resources the apiserver serves, from aggregated discovery (each group at its preferred
//! version, as `kubectl api-resources` lists them), and how a command-line name finds one: the
//! plural, singular, short name or kind, optionally `.group`-qualified and `/subresource`-suffixed
//! (`deploy`, `deployments.apps`, `pods/exec`), as kubectl resolves them.

use kube::core::discovery::v2::{APIGroupDiscoveryList, APIResourceDiscovery};

use super::AccessError;

/// One resource as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResource {
    /// Empty for the core group.
    pub group: String,
    /// Plural name.
    pub resource: String,
    pub singular: String,
    pub kind: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    /// Subresources and their verbs.
    pub subresources: Vec<(String, Vec<String>)>,
}

impl ApiResource {
    /// `deployments.apps`, or `pods` for the core group.
    pub fn name(&self) -> String {
        if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) }
    }

    fn answers_to(&self, name: &str) -> bool {
        self.resource == name
            || self.singular == name
            || self.kind.eq_ignore_ascii_case(name)
            || self.short_names.iter().any(|s| s == name)
    }
}

/// A resource (and subresource) a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    pub resource: &'a ApiResource,
    /// Empty when none was named.
    pub subresource: String,
}

impl Target<'_> {
    /// `pods/exec`, `deployments.apps`.
    pub fn name(&self) -> String {
        match self.subresource.as_str() {
            "" => self.resource.name(),
            sub => format!("{}/{sub}", self.resource.name()),
        }
    }

    /// Verbs the (sub)resource serves.
    pub fn verbs(&self) -> &[String] {
        match self.resource.subresources.iter().find(|(name, _)| *name == self.subresource) {
            Some((_, verbs)) => verbs,
            None => &self.resource.verbs,
        }
    }

    /// `Ok` if `verb` is one the (sub)resource serves, or a verb RBAC checks on it without a
    /// request of that name (`bind`, `escalate`, `impersonate`, …).
    pub fn check_verb(&self, verb: &str) -> Result<(), AccessError> {
        const AUTHORIZATION_ONLY: [&str; 6] = ["bind", "escalate", "impersonate", "use", "approve", "sign"];
        if verb == "*" || self.verbs().iter().any(|v| v == verb) || AUTHORIZATION_ONLY.contains(&verb) {
            return Ok(());
        }
        Err(AccessError::UnsupportedVerb {
            verb: verb.to_owned(),
            resource: self.name(),
            supported: self.verbs().join(", "),
        })
    }
}

/// The resources in discovery answers (`/api` and `/apis`), each group at its preferred version,
/// sorted by name.
pub fn from_discovery(lists: &[APIGroupDiscoveryList]) -> Vec<ApiResource> {
    let mut resources: Vec<ApiResource> = lists
        .iter()
        .flat_map(|list| &list.items)
        .filter_map(|group| {
            let name = group.metadata.as_ref().and_then(|m| m.name.clone()).unwrap_or_default();
            // Versions come in the server's order of preference.
            let preferred = group.versions.first()?;
            Some(preferred.resources.iter().filter_map(move |r| resource(&name, r)))
        })
        .flatten()
        .collect();
    resources.sort_by_key(ApiResource::name);
    resources
}

fn resource(group: &str, discovered: &APIResourceDiscovery) -> Option<ApiResource> {
    let plural = discovered.resource.clone()?;
    Some(ApiResource {
        group: group.to_owned(),
        singular: discovered.singular_resource.clone().unwrap_or_default(),
        kind: discovered.response_kind.as_ref().and_then(|k| k.kind.clone()).unwrap_or_default(),
        short_names: discovered.short_names.clone(),
        namespaced: discovered.scope.as_deref() == Some("Namespaced"),
        verbs: discovered.verbs.clone(),
        subresources: discovered
            .subresources
            .iter()
            .filter_map(|s| Some((s.subresource.clone()?, s.verbs.clone())))
            .collect(),
        resource: plural,
    })
}

/// The resource `name` stands for: `resource[.group][/subresource]`. Without a group the core
/// group wins, as with kubectl; names matching in several other groups must say which.
pub fn resolve<'a>(resources: &'a [ApiResource], name: &str) -> Result<Target<'a>, AccessError> {
    let unknown = || AccessError::UnknownResource(name.to_owned());
    let lower = name.to_ascii_lowercase();
    let (base, subresource) = lower.split_once('/').unwrap_or((lower.as_str(), ""));
    let (short, group) = match base.split_once('.') {
        Some((short, group)) => (short, Some(group)),
        None => (base, None),
    };
    let matches: Vec<&ApiResource> =
        resources.iter().filter(|r| group.is_none_or(|g| r.group == g) && r.answers_to(short)).collect();
    let resource = match matches.as_slice() {
        [] => return Err(unknown()),
        [one] => *one,
        several => match several.iter().find(|r| r.group.is_empty()) {
            Some(core) => *core,
            None => {
                let candidates: Vec<String> = several.iter().map(|r| r.name()).collect();
                return Err(AccessError::AmbiguousResource {
                    name: name.to_owned(),
                    candidates: candidates.join(", "),
                });
            }
        },
    };
    if !subresource.is_empty() && !resource.subresources.iter().any(|(s, _)| s == subresource) {
        return Err(unknown());
    }
    Ok(Target { resource, subresource: subresource.to_owned() })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small discovery answer: core pods, configmaps and namespaces; apps deployments; events in
    /// two groups.
    pub fn sample() -> Vec<ApiResource> {
        let core = serde_json::json!({"items": [{"metadata": {"name": ""}, "versions": [{"version": "v1", "resources": [
            {"resource": "pods", "singularResource": "pod", "scope": "Namespaced", "shortNames": ["po"],
             "responseKind": {"kind": "Pod"}, "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
             "subresources": [{"subresource": "exec", "verbs": ["create", "get"]}, {"subresource": "log", "verbs": ["get"]}]},
            {"resource": "configmaps", "singularResource": "configmap", "scope": "Namespaced", "shortNames": ["cm"],
             "responseKind": {"kind": "ConfigMap"}, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
            {"resource": "namespaces", "singularResource": "namespace", "scope": "Cluster", "shortNames": ["ns"],
             "responseKind": {"kind": "Namespace"}, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
            {"resource": "events", "singularResource": "event", "scope": "Namespaced", "shortNames": ["ev"],
             "responseKind": {"kind": "Event"}, "verbs": ["create", "get", "list"]}
        ]}]}]});
        let apis = serde_json::json!({"items": [
            {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "resources": [
                {"resource": "deployments", "singularResource": "deployment", "scope": "Namespaced", "shortNames": ["deploy"],
                 "responseKind": {"kind": "Deployment"}, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]},
                {"version": "v1beta9", "resources": [{"resource": "oldthings", "scope": "Namespaced", "verbs": ["get"]}]}]},
            {"metadata": {"name": "events.k8s.io"}, "versions": [{"version": "v1", "resources": [
                {"resource": "events", "singularResource": "event", "scope": "Namespaced", "shortNames": ["ev"],
                 "responseKind": {"kind": "Event"}, "verbs": ["create", "get", "list"]}]}]},
            {"metadata": {"name": "x.example"}, "versions": [{"version": "v1", "resources": [
                {"resource": "widgets", "singularResource": "widget", "scope": "Namespaced", "verbs": ["get"]}]}]},
            {"metadata": {"name": "y.example"}, "versions": [{"version": "v1", "resources": [
                {"resource": "widgets", "singularResource": "widget", "scope": "Namespaced", "verbs": ["get"]}]}]}
        ]});
        from_discovery(&[serde_json::from_value(core).unwrap(), serde_json::from_value(apis).unwrap()])
    }

    #[test]
    fn discovery_lists_each_group_at_its_preferred_version() {
        let names: Vec<String> = sample().iter().map(ApiResource::name).collect();
        assert_eq!(
            names,
            [
                "configmaps",
                "deployments.apps",
                "events",
                "events.events.k8s.io",
                "namespaces",
                "pods",
                "widgets.x.example",
                "widgets.y.example"
            ]
        );
        let resources = sample();
        let pods = resources.iter().find(|r| r.resource == "pods").unwrap();
        assert!(pods.namespaced && pods.kind == "Pod");
        assert_eq!(pods.subresources[0], ("exec".to_owned(), vec!["create".to_owned(), "get".to_owned()]));
        assert!(!resources.iter().find(|r| r.resource == "namespaces").unwrap().namespaced);
    }

    #[test]
    fn names_resolve_as_kubectl_resolves_them() {
        let resources = sample();
        let name = |n: &str| resolve(&resources, n).map(|t| t.name());
        assert_eq!(name("deployments.apps").unwrap(), "deployments.apps");
        assert_eq!(name("deploy").unwrap(), "deployments.apps");
        assert_eq!(name("Deployment").unwrap(), "deployments.apps");
        assert_eq!(name("po/exec").unwrap(), "pods/exec");
        assert_eq!(name("events").unwrap(), "events", "the core group wins");
        assert_eq!(name("events.events.k8s.io").unwrap(), "events.events.k8s.io");
        assert!(matches!(resolve(&resources, "widgets"), Err(AccessError::AmbiguousResource { .. })));
        for unknown in ["deployments.batch", "pods/shell", "gadgets"] {
            let err = resolve(&resources, unknown).unwrap_err().to_string();
            assert_eq!(err, format!("the server doesn't have a resource type {unknown:?}"));
        }
    }

    #[test]
    fn verbs_are_checked_against_the_subresource() {
        let resources = sample();
        let exec = resolve(&resources, "pods/exec").unwrap();
        assert!(exec.check_verb("create").is_ok());
        let err = exec.check_verb("delete").unwrap_err().to_string();
        assert_eq!(err, "pods/exec does not support the verb \"delete\"; it supports: create, get");
        let pods = resolve(&resources, "pods").unwrap();
        assert!(pods.check_verb("deletecollection").is_ok() && pods.check_verb("fly").is_err());
    }
}
