//! Ceilings: what a subtree may ever do. A child's ceiling must lie within its parent's
//! (design invariant 2), checked once at load; the effective ceiling of a node is then simply its
//! own, or its parent's when it declares none.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::key_patterns::KeyPatterns;
use crate::config::raw_tree::{RawAllow, RawClusterRule, RawRule};
use crate::request::scope::is_namespaced_builtin;

/// The subresources a ceiling's `subresources` grants by name: those of the built-in API
/// (Kubernetes 1.37) that do more than show the object another way. Any other subresource that
/// [`COVERED`] does not name — a custom API's, say — is refused in every view.
pub const SUBRESOURCES: [&str; 10] =
    ["exec", "attach", "portforward", "log", "proxy", "ephemeralcontainers", "eviction", "binding", "token", "resize"];

/// Subresources that are the object itself seen another way, covered by the verbs on their
/// resource as the apiserver's built-in roles cover them (a rule that may patch `deployments` may
/// scale them).
pub const COVERED: [&str; 2] = ["status", "scale"];

/// How the ClusterRoles of custom roles are named upstream (see
/// [`cluster_role_name`](crate::reconcile::cluster_role_name)).
pub const CUSTOM_ROLE_PREFIX: &str = "canopy:role:";

/// Whether a RoleBinding may name the ClusterRole `name` where no node up the tree names
/// bindable ClusterRoles: the built-in roles members are given, and custom roles' ClusterRoles.
pub fn bindable_by_default(name: &str) -> bool {
    matches!(name, "admin" | "edit" | "view") || name.strip_prefix(CUSTOM_ROLE_PREFIX).is_some_and(|r| !r.is_empty())
}

/// One rule: groups × resources × verbs, `*` matching anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub groups: BTreeSet<String>,
    pub resources: BTreeSet<String>,
    pub verbs: BTreeSet<String>,
}

impl Rule {
    fn matches(&self, group: &str, resource: &str, verb: &str) -> bool {
        let has = |set: &BTreeSet<String>, v: &str| set.contains("*") || set.contains(v);
        has(&self.groups, group) && has(&self.resources, resource) && has(&self.verbs, verb)
    }
}

/// A subtree's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    /// Namespaced resources × verbs.
    pub resources: Vec<Rule>,
    /// Readable cluster-scoped resources (`verbs` are always get, list, watch).
    pub cluster_read: Vec<Rule>,
    pub subresources: BTreeSet<String>,
    pub namespace_create: bool,
    pub namespace_quota: u32,
    /// Label keys tenants may set on namespaces they create.
    pub namespace_labels: KeyPatterns,
    /// Annotation keys tenants may set on namespaces they create.
    pub namespace_annotations: KeyPatterns,
    /// Secret types the subtree may see, create and reference, in config order (for error
    /// paths); `None`: every type (no node up the tree names any, so nothing is filtered).
    pub secret_types: Option<Arc<Vec<String>>>,
    /// ClusterRoles RoleBindings may name, in config order; `None`: those
    /// [`bindable_by_default`].
    pub bindable_cluster_roles: Option<Arc<Vec<String>>>,
    /// StorageClasses claims may use, in config order; `None`: any that exists.
    pub storage_classes: Option<Arc<Vec<String>>>,
    /// IngressClasses Ingresses may use, in config order; `None`: any that exists.
    pub ingress_classes: Option<Arc<Vec<String>>>,
}

impl Ceiling {
    /// The ceiling of a top-level node that declares none: every namespaced resource and verb,
    /// every subresource, no cluster-scoped reads, no namespace creation.
    pub fn top_default() -> Self {
        let star = || BTreeSet::from(["*".to_owned()]);
        Ceiling {
            resources: vec![Rule { groups: star(), resources: star(), verbs: star() }],
            cluster_read: Vec::new(),
            subresources: SUBRESOURCES.iter().map(|s| s.to_string()).collect(),
            namespace_create: false,
            namespace_quota: 0,
            namespace_labels: KeyPatterns::default(),
            namespace_annotations: KeyPatterns::default(),
            secret_types: None,
            bindable_cluster_roles: None,
            storage_classes: None,
            ingress_classes: None,
        }
    }

    /// Compiles a written `allow`, or explains which entry is wrong.
    pub fn compile(raw: &RawAllow) -> Result<Self, (String, String)> {
        let secret_types = names(&raw.secret_types, "secretTypes", "secret type")?;
        let bindable_cluster_roles = names(&raw.bindable_cluster_roles, "bindableClusterRoles", "ClusterRole")?;
        let storage_classes = names(&raw.storage_classes, "storageClasses", "storage class")?;
        let ingress_classes = names(&raw.ingress_classes, "ingressClasses", "ingress class")?;
        for (i, sub) in raw.subresources.iter().enumerate() {
            if !SUBRESOURCES.contains(&sub.as_str()) {
                return Err((
                    format!("subresources[{i}]"),
                    format!("unknown subresource {sub:?}; known: {}", SUBRESOURCES.join(", ")),
                ));
            }
        }
        // `-A` of a namespaced resource is always the view's fan-out: an entry here that names one
        // would read it cluster-wide, so it is a config error, not a silent no-op.
        for (i, entry) in raw.cluster_resources.iter().enumerate() {
            for (j, resource) in entry.resources.iter().enumerate() {
                if let Some(group) = entry.api_groups.iter().find(|g| is_namespaced_builtin(g, resource)) {
                    return Err((format!("clusterResources[{i}].resources[{j}]"), namespaced_entry(resource, group)));
                }
            }
        }
        Ok(Ceiling {
            resources: raw.resources.iter().map(rule).collect(),
            cluster_read: raw.cluster_resources.iter().map(cluster_rule).collect(),
            subresources: raw.subresources.iter().cloned().collect(),
            namespace_create: raw.namespaces.create,
            namespace_quota: raw.namespaces.quota,
            namespace_labels: KeyPatterns::compile(&raw.namespaces.labels, "namespaces.labels")?,
            namespace_annotations: KeyPatterns::compile(&raw.namespaces.annotations, "namespaces.annotations")?,
            secret_types,
            bindable_cluster_roles,
            storage_classes,
            ingress_classes,
        })
    }

    /// May `verb` be used on the namespaced `group/resource`?
    pub fn allows(&self, group: &str, resource: &str, verb: &str) -> bool {
        self.resources.iter().any(|r| r.matches(group, resource, verb))
    }

    /// May subresource `sub` (empty: none) be used, given the verb on its resource? Those
    /// [`COVERED`] by the resource's verbs, others only when granted by name: failing closed, an
    /// unknown one is refused.
    pub fn allows_subresource(&self, sub: &str) -> bool {
        sub.is_empty() || COVERED.contains(&sub) || self.subresources.contains(sub)
    }

    /// May the cluster-scoped `group/resource` be read?
    pub fn allows_cluster_read(&self, group: &str, resource: &str) -> bool {
        self.cluster_read.iter().any(|r| r.matches(group, resource, "get"))
    }

    /// `self`, taking the parent's secret types, bindable ClusterRoles, storage and ingress
    /// classes where it names none: an `allow` that does not mention a list narrows nothing
    /// about it, and widens nothing either.
    pub fn inheriting(mut self, parent: &Ceiling) -> Self {
        for (own, theirs) in [
            (&mut self.secret_types, &parent.secret_types),
            (&mut self.bindable_cluster_roles, &parent.bindable_cluster_roles),
            (&mut self.storage_classes, &parent.storage_classes),
            (&mut self.ingress_classes, &parent.ingress_classes),
        ] {
            if own.is_none() {
                own.clone_from(theirs);
            }
        }
        self
    }

    /// May a secret of type `kind` be seen, written and referenced?
    pub fn allows_secret_type(&self, kind: &str) -> bool {
        self.secret_types.as_ref().is_none_or(|types| types.iter().any(|t| t == kind))
    }

    /// May a RoleBinding name the ClusterRole `name`?
    pub fn allows_binding(&self, name: &str) -> bool {
        match &self.bindable_cluster_roles {
            Some(roles) => roles.iter().any(|r| r == name),
            None => bindable_by_default(name),
        }
    }

    /// May a claim use the StorageClass `name`?
    pub fn allows_storage_class(&self, name: &str) -> bool {
        self.storage_classes.as_ref().is_none_or(|classes| classes.iter().any(|c| c == name))
    }

    /// May an Ingress use the IngressClass `name`?
    pub fn allows_ingress_class(&self, name: &str) -> bool {
        self.ingress_classes.as_ref().is_none_or(|classes| classes.iter().any(|c| c == name))
    }

    /// Why `self` is not within `parent`, naming the first excess (relative config path, reason).
    pub fn excess_over(&self, parent: &Ceiling) -> Option<(String, String)> {
        for (i, rule) in self.resources.iter().enumerate() {
            if let Some(what) = first_uncovered(rule, |g, r, v| parent.allows(g, r, v)) {
                return Some((format!("resources[{i}]"), format!("grants {what}, which the parent does not allow")));
            }
        }
        for (i, rule) in self.cluster_read.iter().enumerate() {
            if let Some(what) = first_uncovered(rule, |g, r, _| parent.allows_cluster_read(g, r)) {
                return Some((
                    format!("clusterResources[{i}]"),
                    format!("reads {what}, which the parent does not allow"),
                ));
            }
        }
        if let Some(sub) = self.subresources.difference(&parent.subresources).next() {
            return Some(("subresources".into(), format!("grants {sub}, which the parent does not allow")));
        }
        if self.namespace_create && !parent.namespace_create {
            return Some(("namespaces.create".into(), "allows namespace creation, which the parent does not".into()));
        }
        if self.namespace_create && self.namespace_quota > parent.namespace_quota {
            return Some((
                "namespaces.quota".into(),
                format!("quota {} exceeds the parent's {}", self.namespace_quota, parent.namespace_quota),
            ));
        }
        if let Some(excess) = self.namespace_labels.excess_over(&parent.namespace_labels, "namespaces.labels") {
            return Some(excess);
        }
        if let Some(excess) =
            self.namespace_annotations.excess_over(&parent.namespace_annotations, "namespaces.annotations")
        {
            return Some(excess);
        }
        names_within(
            &self.secret_types,
            &parent.secret_types,
            |k| parent.allows_secret_type(k),
            "secretTypes",
            "secret type",
            "every secret type",
        )
        .or_else(|| {
            names_within(
                &self.bindable_cluster_roles,
                &parent.bindable_cluster_roles,
                |r| parent.allows_binding(r),
                "bindableClusterRoles",
                "binding ClusterRole",
                "binding the default ClusterRoles",
            )
        })
        .or_else(|| {
            names_within(
                &self.storage_classes,
                &parent.storage_classes,
                |c| parent.allows_storage_class(c),
                "storageClasses",
                "storage class",
                "every storage class",
            )
        })
        .or_else(|| {
            names_within(
                &self.ingress_classes,
                &parent.ingress_classes,
                |c| parent.allows_ingress_class(c),
                "ingressClasses",
                "ingress class",
                "every ingress class",
            )
        })
    }
}

/// Why a `clusterResources` entry naming the namespaced `resource` (of API group `group`) is wrong.
pub fn namespaced_entry(resource: &str, group: &str) -> String {
    format!(
        "{resource:?} (API group {group:?}) is namespaced; clusterResources lists cluster-scoped resources \
         (`*` means the cluster-scoped ones), and namespaced ones belong in resources"
    )
}

/// Why the list `own` (config key `key`) is not within the parent's (`parent`, which allows what
/// `parent_allows` says): an entry the parent does not allow, or naming none (allowing
/// `unnamed`) under a parent that names some.
fn names_within(
    own: &Option<Arc<Vec<String>>>,
    parent: &Option<Arc<Vec<String>>>,
    parent_allows: impl Fn(&str) -> bool,
    key: &str,
    noun: &str,
    unnamed: &str,
) -> Option<(String, String)> {
    match (own, parent) {
        (Some(own), _) => own
            .iter()
            .enumerate()
            .find(|(_, name)| !parent_allows(name))
            .map(|(i, name)| (format!("{key}[{i}]"), format!("allows {noun} {name}, which the parent does not"))),
        (None, Some(_)) => Some((key.to_owned(), format!("allows {unnamed}, which the parent does not"))),
        (None, None) => None,
    }
}

/// A list of names as written (`key` is its config key), each a real name rather than blank or
/// `*`: the lists name what is allowed one by one.
fn names(raw: &Option<Vec<String>>, key: &str, noun: &str) -> Result<Option<Arc<Vec<String>>>, (String, String)> {
    for (i, name) in raw.iter().flatten().enumerate() {
        if name.trim().is_empty() || name == "*" {
            return Err((format!("{key}[{i}]"), format!("{name:?} is not a {noun}; name each one")));
        }
    }
    Ok(raw.clone().map(Arc::new))
}

/// The first group/resource/verb of `rule` that `allowed` refuses, as text. A `*` in the child
/// is covered only by a `*` in the parent.
fn first_uncovered(rule: &Rule, allowed: impl Fn(&str, &str, &str) -> bool) -> Option<String> {
    for g in &rule.groups {
        for r in &rule.resources {
            for v in &rule.verbs {
                if !allowed(g, r, v) {
                    let gr = if g.is_empty() { r.clone() } else { format!("{g}/{r}") };
                    return Some(format!("{v} on {gr}"));
                }
            }
        }
    }
    None
}

fn rule(raw: &RawRule) -> Rule {
    Rule {
        groups: raw.api_groups.iter().cloned().collect(),
        resources: raw.resources.iter().cloned().collect(),
        verbs: raw.verbs.iter().cloned().collect(),
    }
}

fn cluster_rule(raw: &RawClusterRule) -> Rule {
    Rule {
        groups: raw.api_groups.iter().cloned().collect(),
        resources: raw.resources.iter().cloned().collect(),
        verbs: ["get", "list", "watch"].map(String::from).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw_tree::RawNamespaceAllow;

    fn allow(rules: &[(&[&str], &[&str], &[&str])]) -> Ceiling {
        let raw = RawAllow {
            resources: rules
                .iter()
                .map(|(g, r, v)| RawRule {
                    api_groups: g.iter().map(|s| s.to_string()).collect(),
                    resources: r.iter().map(|s| s.to_string()).collect(),
                    verbs: v.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            ..Default::default()
        };
        Ceiling::compile(&raw).unwrap()
    }

    #[test]
    fn cluster_resources_may_not_name_a_namespaced_resource() {
        let cluster = |groups: &[&str], resources: &[&str]| RawAllow {
            cluster_resources: vec![RawClusterRule {
                api_groups: groups.iter().map(|s| s.to_string()).collect(),
                resources: resources.iter().map(|s| s.to_string()).collect(),
            }],
            ..Default::default()
        };
        let (at, message) = Ceiling::compile(&cluster(&["*"], &["nodes", "configmaps"])).unwrap_err();
        assert_eq!(at, "clusterResources[0].resources[1]");
        assert!(message.contains("\"configmaps\"") && message.contains("namespaced"), "{message}");
        assert!(Ceiling::compile(&cluster(&["apps"], &["deployments"])).is_err());
        assert!(Ceiling::compile(&cluster(&["*"], &["*"])).is_ok(), "the wildcard means the cluster-scoped ones");
        assert!(Ceiling::compile(&cluster(&["storage.k8s.io"], &["storageclasses"])).is_ok());
        assert!(Ceiling::compile(&cluster(&["example.com"], &["widgets"])).is_ok());
    }

    #[test]
    fn wildcards_match_anything() {
        let c = allow(&[(&[""], &["*"], &["get", "list"])]);
        assert!(c.allows("", "pods", "get"));
        assert!(!c.allows("", "pods", "delete"));
        assert!(!c.allows("apps", "deployments", "get"));
    }

    #[test]
    fn a_child_may_not_exceed_its_parent() {
        let parent = allow(&[(&["", "apps"], &["pods", "deployments"], &["get", "list"])]);
        assert_eq!(allow(&[(&[""], &["pods"], &["get"])]).excess_over(&parent), None);
        let (at, why) = allow(&[(&["apps"], &["deployments"], &["delete"])]).excess_over(&parent).unwrap();
        assert_eq!(at, "resources[0]");
        assert_eq!(why, "grants delete on apps/deployments, which the parent does not allow");
        // A child's wildcard is only covered by a parent's wildcard.
        assert!(allow(&[(&[""], &["*"], &["get"])]).excess_over(&parent).is_some());
        assert_eq!(allow(&[(&[""], &["*"], &["get"])]).excess_over(&Ceiling::top_default()), None);
    }

    #[test]
    fn namespace_quota_is_monotone() {
        let mut parent = allow(&[]);
        parent.namespace_create = true;
        parent.namespace_quota = 3;
        let mut child = allow(&[]);
        child.namespace_create = true;
        child.namespace_quota = 5;
        assert_eq!(child.excess_over(&parent).unwrap().0, "namespaces.quota");
        let raw = RawAllow {
            namespaces: RawNamespaceAllow { create: true, quota: 2, ..Default::default() },
            ..Default::default()
        };
        assert_eq!(Ceiling::compile(&raw).unwrap().excess_over(&parent), None);
    }

    #[test]
    fn secret_types_are_monotone_and_inherited() {
        let types = |t: &[&str]| RawAllow {
            secret_types: Some(t.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let parent = Ceiling::compile(&types(&["Opaque", "kubernetes.io/tls"])).unwrap();
        assert_eq!(Ceiling::compile(&types(&["Opaque"])).unwrap().excess_over(&parent), None);
        let (at, why) =
            Ceiling::compile(&types(&["Opaque", "kubernetes.io/basic-auth"])).unwrap().excess_over(&parent).unwrap();
        assert_eq!(at, "secretTypes[1]");
        assert_eq!(why, "allows secret type kubernetes.io/basic-auth, which the parent does not");
        // Naming no types under a parent that does: the parent's, not every type.
        let silent = allow(&[]);
        assert_eq!(silent.excess_over(&parent).unwrap().0, "secretTypes");
        let inherited = silent.inheriting(&parent);
        assert_eq!(inherited.excess_over(&parent), None);
        assert!(inherited.allows_secret_type("kubernetes.io/tls"));
        assert!(!inherited.allows_secret_type("kubernetes.io/service-account-token"));
        // No types anywhere: every type, as before secret types existed.
        assert!(Ceiling::top_default().allows_secret_type("anything.example/custom"));
        assert_eq!(Ceiling::compile(&types(&["*"])).unwrap_err().0, "secretTypes[0]");
    }

    #[test]
    fn bindable_roles_and_classes_are_monotone_and_inherited() {
        let list = |names: &[&str]| Some(names.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        // Nothing named anywhere: the default ClusterRoles, any class.
        let open = Ceiling::top_default();
        assert!(open.allows_binding("view") && open.allows_binding("canopy:role:ci"));
        assert!(!open.allows_binding("cluster-admin") && !open.allows_binding("canopy:role:"));
        assert!(open.allows_storage_class("anything") && open.allows_ingress_class("anything"));
        let parent = Ceiling::compile(&RawAllow {
            bindable_cluster_roles: list(&["view", "edit"]),
            storage_classes: list(&["standard"]),
            ingress_classes: list(&["public"]),
            ..Default::default()
        })
        .unwrap();
        assert!(parent.allows_binding("edit") && !parent.allows_binding("admin"));
        assert!(!parent.allows_storage_class("fast") && !parent.allows_ingress_class("internal"));
        for (raw, at, why) in [
            (
                RawAllow { bindable_cluster_roles: list(&["view", "cluster-admin"]), ..Default::default() },
                "bindableClusterRoles[1]",
                "allows binding ClusterRole cluster-admin, which the parent does not",
            ),
            (
                RawAllow { storage_classes: list(&["fast"]), ..Default::default() },
                "storageClasses[0]",
                "allows storage class fast, which the parent does not",
            ),
            (
                RawAllow { ingress_classes: list(&["public", "internal"]), ..Default::default() },
                "ingressClasses[1]",
                "allows ingress class internal, which the parent does not",
            ),
        ] {
            let child = Ceiling::compile(&raw).unwrap().inheriting(&parent);
            assert_eq!(child.excess_over(&parent), Some((at.to_owned(), why.to_owned())));
        }
        // Under the default, a child may name only default ClusterRoles.
        let narrow = Ceiling::compile(&RawAllow { bindable_cluster_roles: list(&["view"]), ..Default::default() });
        assert_eq!(narrow.unwrap().excess_over(&open), None);
        let wide =
            Ceiling::compile(&RawAllow { bindable_cluster_roles: list(&["cluster-admin"]), ..Default::default() });
        assert_eq!(wide.unwrap().excess_over(&open).unwrap().0, "bindableClusterRoles[0]");
        // Naming none under a parent that names some: the parent's, not the default.
        let silent = allow(&[]);
        assert_eq!(silent.excess_over(&parent).unwrap().0, "bindableClusterRoles");
        let inherited = silent.inheriting(&parent);
        assert_eq!(inherited.excess_over(&parent), None);
        assert!(!inherited.allows_binding("admin") && inherited.allows_storage_class("standard"));
        for key in ["bindableClusterRoles", "storageClasses", "ingressClasses"] {
            let raw = match key {
                "bindableClusterRoles" => RawAllow { bindable_cluster_roles: list(&["*"]), ..Default::default() },
                "storageClasses" => RawAllow { storage_classes: list(&["ok", " "]), ..Default::default() },
                _ => RawAllow { ingress_classes: list(&[""]), ..Default::default() },
            };
            assert!(Ceiling::compile(&raw).unwrap_err().0.starts_with(&format!("{key}[")), "{key}");
        }
    }

    #[test]
    fn custom_role_prefix_is_the_reconcilers() {
        assert_eq!(crate::reconcile::cluster_role_name("ci"), format!("{CUSTOM_ROLE_PREFIX}ci"));
    }

    #[test]
    fn unknown_subresources_are_refused() {
        let raw = RawAllow { subresources: vec!["exec".into(), "shell".into()], ..Default::default() };
        assert_eq!(Ceiling::compile(&raw).unwrap_err().0, "subresources[1]");
        let raw = RawAllow { subresources: vec!["log".into(), "eviction".into()], ..Default::default() };
        let ceiling = Ceiling::compile(&raw).unwrap();
        assert!(ceiling.allows_subresource("") && ceiling.allows_subresource("status"));
        assert!(ceiling.allows_subresource("scale") && ceiling.allows_subresource("eviction"));
        for sub in ["exec", "token", "ephemeralcontainers", "approval", "console", "finalize"] {
            assert!(!ceiling.allows_subresource(sub), "{sub}");
        }
        let all = Ceiling::top_default();
        assert!(SUBRESOURCES.iter().all(|sub| all.allows_subresource(sub)));
        assert!(!all.allows_subresource("console"), "a custom API's subresource is granted by nobody");
    }
}
