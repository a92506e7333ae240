//! Which built-in resources are cluster-scoped and which namespaced (Kubernetes 1.37), as the
//! apiserver's discovery says: one table for the policy, discovery and config checks.

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

#[cfg(test)]
mod tests {
    use super::*;

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
