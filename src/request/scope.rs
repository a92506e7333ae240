//! Which resources are cluster-scoped and which namespaced. The built-in resources of Kubernetes
//! 1.37 are known here, as the apiserver's discovery says; a [`ScopeTable`] holds what a running
//! apiserver's discovery says of every resource it serves, custom ones included (kept fresh by
//! [`crate::discovery::scopes`]), and is asked first where there is one.

use std::collections::HashMap;

/// Cluster-scoped resources of the built-in API (Kubernetes 1.37), by group. A resource not
/// named here is taken to be namespaced, so an unknown one asked for without a namespace is
/// refused rather than forwarded.
const CLUSTER_SCOPED: [(&str, &[&str]); 15] = [
    ("", &["nodes", "persistentvolumes", "namespaces", "componentstatuses"]),
    ("rbac.authorization.k8s.io", &["clusterroles", "clusterrolebindings"]),
    ("storage.k8s.io", &["storageclasses", "csidrivers", "csinodes", "volumeattachments", "volumeattributesclasses"]),
    ("apiextensions.k8s.io", &["customresourcedefinitions"]),
    ("apiregistration.k8s.io", &["apiservices"]),
    (
        "admissionregistration.k8s.io",
        &[
            "mutatingwebhookconfigurations",
            "validatingwebhookconfigurations",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
            "mutatingadmissionpolicies",
            "mutatingadmissionpolicybindings",
        ],
    ),
    ("scheduling.k8s.io", &["priorityclasses"]),
    ("networking.k8s.io", &["ingressclasses", "ipaddresses", "servicecidrs"]),
    ("node.k8s.io", &["runtimeclasses"]),
    ("certificates.k8s.io", &["certificatesigningrequests", "clustertrustbundles"]),
    ("flowcontrol.apiserver.k8s.io", &["flowschemas", "prioritylevelconfigurations"]),
    ("authentication.k8s.io", &["tokenreviews", "selfsubjectreviews"]),
    ("authorization.k8s.io", &["subjectaccessreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
    ("resource.k8s.io", &["deviceclasses", "devicetaintrules", "resourceslices"]),
    ("storagemigration.k8s.io", &["storageversionmigrations"]),
];

pub fn is_cluster_scoped(group: &str, resource: &str) -> bool {
    CLUSTER_SCOPED.iter().any(|(g, resources)| *g == group && resources.contains(&resource))
}

/// The namespaced resources of the built-in API (`kubectl api-resources --namespaced=true -o
/// name` of the release: `pods`, `deployments.apps`, …).
const NAMESPACED: &str = include_str!("namespaced_1.37.txt");

/// Whether `group/resource` is a namespaced built-in resource; with group `*`, whether the name
/// is one in some built-in group and cluster-scoped in none.
pub fn is_namespaced_builtin(group: &str, resource: &str) -> bool {
    let split = |line: &'static str| line.split_once('.').unwrap_or((line, ""));
    if group == "*" {
        return NAMESPACED.lines().any(|line| split(line).0 == resource)
            && !CLUSTER_SCOPED.iter().any(|(_, resources)| resources.contains(&resource));
    }
    NAMESPACED.lines().any(|line| split(line) == (resource, group))
}

/// The scope of every resource an apiserver's discovery lists, by API group and resource name
/// (subresources are not resources of their own here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeTable {
    /// `(group, resource)` → cluster-scoped.
    cluster: HashMap<(String, String), bool>,
}

impl ScopeTable {
    /// Notes that `group/resource` is cluster-scoped (or namespaced).
    pub fn insert(&mut self, group: &str, resource: &str, cluster_scoped: bool) {
        self.cluster.insert((group.to_owned(), resource.to_owned()), cluster_scoped);
    }

    /// Every entry of `other` too.
    pub fn extend(&mut self, other: &ScopeTable) {
        self.cluster.extend(other.cluster.iter().map(|(k, v)| (k.clone(), *v)));
    }

    /// Whether `group/resource` is cluster-scoped; `None` when discovery does not list it.
    pub fn cluster_scoped(&self, group: &str, resource: &str) -> Option<bool> {
        self.cluster.get(&(group.to_owned(), resource.to_owned())).copied()
    }

    /// Whether `group/resource` is namespaced; with group `*`, whether the name is a namespaced
    /// resource in some group and cluster-scoped in none (as [`is_namespaced_builtin`]).
    pub fn namespaced(&self, group: &str, resource: &str) -> bool {
        if group != "*" {
            return self.cluster_scoped(group, resource) == Some(false);
        }
        let scopes: Vec<bool> = self.cluster.iter().filter(|((_, r), _)| r == resource).map(|(_, c)| *c).collect();
        !scopes.is_empty() && scopes.iter().all(|cluster| !cluster)
    }

    /// How many resources are known.
    pub fn len(&self) -> usize {
        self.cluster.len()
    }

    /// Whether no resource is known.
    pub fn is_empty(&self) -> bool {
        self.cluster.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_answers_what_discovery_listed_and_no_more() {
        let mut table = ScopeTable::default();
        table.insert("example.com", "widgets", true);
        table.insert("example.com", "gadgets", false);
        table.insert("other.example.com", "gadgets", false);
        table.insert("", "configmaps", false);
        assert_eq!(table.cluster_scoped("example.com", "widgets"), Some(true));
        assert_eq!(table.cluster_scoped("example.com", "gadgets"), Some(false));
        assert_eq!(table.cluster_scoped("example.com", "doohickeys"), None);
        assert!(table.namespaced("*", "gadgets") && table.namespaced("", "configmaps"));
        assert!(!table.namespaced("*", "widgets") && !table.namespaced("*", "doohickeys"));
        table.insert("third.example.com", "gadgets", true);
        assert!(!table.namespaced("*", "gadgets"), "cluster-scoped in one group");
        assert_eq!(table.len(), 5);
    }

    /// `kubectl api-resources --namespaced=false -o name` of the harness's apiserver, recorded.
    #[test]
    fn every_cluster_scoped_resource_of_the_release_is_known() {
        for name in include_str!("cluster_scoped_1.37.txt").lines() {
            let (resource, group) = name.split_once('.').unwrap_or((name, ""));
            assert!(is_cluster_scoped(group, resource), "{name}");
            assert!(!is_namespaced_builtin(group, resource), "{name}");
        }
    }

    #[test]
    fn namespaced_resources_are_known_by_group_or_by_name() {
        assert!(is_namespaced_builtin("", "configmaps"));
        assert!(is_namespaced_builtin("apps", "deployments"));
        assert!(is_namespaced_builtin("*", "pods"));
        assert!(!is_namespaced_builtin("", "nodes"));
        assert!(!is_namespaced_builtin("*", "widgets"), "a custom resource's scope is not known here");
    }
}
