//! References stay in the tree (design invariant 6), the part decided from the tree alone: what a
//! written object names, and whether the view allows it. A RoleBinding's `roleRef` must be a
//! Role (looked up later) or a ClusterRole the ceiling allows for binding — and a custom role's
//! rules must lie within the ceiling; its subjects must be members at the view or below, or
//! ServiceAccounts (also as `system:serviceaccount:<ns>:<name>` users and
//! `system:serviceaccounts:<ns>` groups) of the view's namespaces. A Role's rules must lie within
//! the ceiling. PersistentVolumeClaims and Ingresses must name a class the ceiling allows. What
//! can only be answered upstream — does the Role, ServiceAccount or class exist — is returned as
//! [`Lookup`]s. Pure functions over the object the apiserver would store (namespaces physical).

use serde_json::Value;

use super::escalation::{Excess, first_excess, rules_of};
use super::secret_refs::pod_spec;
use crate::config::raw_tree::RawSubjectKind;
use crate::rewrite::ViewNames;
use crate::tree::ceiling::CUSTOM_ROLE_PREFIX;
use crate::tree::{Ceiling, NodeId, Tree};

/// Kinds of object whose references are checked: `(group, resource)`.
const CHECKED: [(&str, &str); 4] = [
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("", "persistentvolumeclaims"),
    ("networking.k8s.io", "ingresses"),
];

/// Whether writes of `group/resource` are checked here (pod-bearing objects are too).
pub fn is_checked(group: &str, resource: &str) -> bool {
    CHECKED.contains(&(group, resource)) || super::secret_refs::is_pod_bearing(group, resource)
}

/// Something an object names that must exist upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A RoleBinding's Role, in its namespace; its rules must lie within the ceiling too.
    Role(String),
    /// The ServiceAccount a pod spec runs as, in its namespace, and the field naming it.
    ServiceAccount { name: String, field: String },
    /// A cluster-scoped class, and the field naming it.
    Class { class: Class, name: String, field: String },
}

/// The classes a ceiling allowlists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Storage,
    Ingress,
}

impl Class {
    /// Its kind, for messages.
    pub fn kind(self) -> &'static str {
        match self {
            Class::Storage => "StorageClass",
            Class::Ingress => "IngressClass",
        }
    }

    /// Its API path (plural, with group and version).
    pub fn path(self) -> &'static str {
        match self {
            Class::Storage => "/apis/storage.k8s.io/v1/storageclasses",
            Class::Ingress => "/apis/networking.k8s.io/v1/ingressclasses",
        }
    }
}

/// Judges `object` (by its `kind`) written in `view`: why it is refused, or what must still be
/// looked up upstream.
pub fn judge(tree: &Tree, view: NodeId, object: &Value) -> Result<Vec<Lookup>, String> {
    let ceiling = &tree.nodes[view].ceiling;
    let path = &tree.nodes[view].path;
    match object.get("kind").and_then(Value::as_str).unwrap_or("") {
        "Role" => match first_excess(ceiling, &rules_of(object)) {
            Some(excess) => Err(format!(
                "rules[{}] grants {}, which the ceiling of view {path} does not allow",
                excess.index, excess.what
            )),
            None => Ok(Vec::new()),
        },
        "RoleBinding" => {
            for subject in object.get("subjects").and_then(Value::as_array).into_iter().flatten() {
                outside(tree, view, subject)?;
            }
            let text = |key: &str| object.pointer(&format!("/roleRef/{key}")).and_then(Value::as_str).unwrap_or("");
            let name = text("name").to_owned();
            match text("kind") {
                "Role" => Ok(vec![Lookup::Role(name)]),
                "ClusterRole" if !ceiling.allows_binding(&name) => {
                    Err(format!("roleRef ClusterRole {name:?} is not bindable in view {path}"))
                }
                "ClusterRole" => {
                    // Custom roles' rules are in the config; the other bindable ClusterRoles are
                    // the platform's choice (the built-in ones are what members are given).
                    let custom = name.strip_prefix(CUSTOM_ROLE_PREFIX).and_then(|role| tree.roles.get(role));
                    match custom.and_then(|rules| first_excess(ceiling, rules)) {
                        Some(excess) => Err(beyond_ceiling("ClusterRole", &name, &excess, path)),
                        None => Ok(Vec::new()),
                    }
                }
                // Only an applied configuration judged as sent lacks the (required) roleRef.
                "" => Ok(Vec::new()),
                kind => Err(format!("roleRef kind {kind:?} is neither Role nor ClusterRole")),
            }
        }
        "PersistentVolumeClaim" => class(
            object,
            Class::Storage,
            ("storageClassName", "volume.beta.kubernetes.io/storage-class"),
            ceiling.storage_classes.as_deref().map(Vec::as_slice),
            path,
        ),
        "Ingress" => class(
            object,
            Class::Ingress,
            ("ingressClassName", "kubernetes.io/ingress.class"),
            ceiling.ingress_classes.as_deref().map(Vec::as_slice),
            path,
        ),
        _ => Ok(service_account(object).into_iter().collect()),
    }
}

/// Why the Role `name` (`role`, as stored upstream) may not be bound in `view`, whose ceiling is
/// `ceiling`: a rule granting more than it.
pub fn bound_role_excess(ceiling: &Ceiling, view: &str, name: &str, role: &Value) -> Option<String> {
    first_excess(ceiling, &rules_of(role)).map(|excess| beyond_ceiling("Role", name, &excess, view))
}

fn beyond_ceiling(kind: &str, name: &str, excess: &Excess, view: &str) -> String {
    format!(
        "roleRef {kind} {name:?} grants {} (its rules[{}]), which the ceiling of view {view} does not allow",
        excess.what, excess.index
    )
}

/// Refuses a RoleBinding subject that is neither a member at the view or below nor a
/// ServiceAccount of the view's namespaces. Names are echoed as written: a namespace outside the
/// view is never translated, so it is the caller's own text.
fn outside(tree: &Tree, view: NodeId, subject: &Value) -> Result<(), String> {
    let text = |key: &str| subject.get(key).and_then(Value::as_str).unwrap_or("");
    let (kind, name) = (text("kind"), text("name"));
    let names = ViewNames::new(tree, view);
    let path = &tree.nodes[view].path;
    let member = |kind: RawSubjectKind| {
        tree.subtree(view).any(|n| tree.nodes[n].members.iter().any(|m| m.kind == kind && m.name == name))
    };
    // ServiceAccounts as users and groups: `system:serviceaccount:<ns>:<name>`, `system:serviceaccounts:<ns>`.
    let accounts = match kind {
        "User" => name.strip_prefix("system:serviceaccount:").and_then(|rest| rest.split_once(':')).map(|(ns, _)| ns),
        "Group" => name.strip_prefix("system:serviceaccounts:"),
        _ => None,
    };
    let inside = match (kind, accounts) {
        ("ServiceAccount", _) => names.owns(text("namespace")),
        (_, Some(namespace)) => names.owns(namespace),
        ("User", None) => member(RawSubjectKind::User),
        ("Group", None) => member(RawSubjectKind::Group),
        (other, _) => return Err(format!("subject kind {other:?} is not one of User, Group, ServiceAccount")),
    };
    if inside {
        return Ok(());
    }
    Err(match (kind, accounts) {
        ("ServiceAccount", _) => {
            let namespace = text("namespace");
            let shown = names.in_field(namespace).unwrap_or_else(|| namespace.to_owned());
            format!("subject ServiceAccount {shown}/{name} is outside view {path}")
        }
        (_, Some(_)) => {
            let mut shown = name.to_owned();
            crate::rewrite::json::map_service_account_name(&mut shown, &|namespace: &str| names.in_field(namespace));
            format!("subject {kind} {shown:?} names ServiceAccounts outside view {path}")
        }
        _ => format!("subject {kind} {name:?} is not a member of view {path} or below"),
    })
}

/// The classes a claim or Ingress names — `spec.<key>` and the legacy annotation, which
/// controllers still honour (some before the field), so both count — checked against the
/// ceiling's list (`None`: any class).
fn class(
    object: &Value,
    class: Class,
    (key, annotation): (&str, &str),
    allowed: Option<&[String]>,
    view: &str,
) -> Result<Vec<Lookup>, String> {
    let mut named: Vec<(&str, String)> = [
        (object.pointer("/spec").and_then(|spec| spec.get(key)), format!("spec.{key}")),
        (
            object.pointer("/metadata/annotations").and_then(|a| a.get(annotation)),
            format!("metadata.annotations[{annotation}]"),
        ),
    ]
    .into_iter()
    .filter_map(|(value, field)| Some((value?.as_str().filter(|n| !n.is_empty())?, field)))
    .collect();
    named.dedup_by(|a, b| a.0 == b.0);
    let kind = class.kind();
    match (named.is_empty(), allowed) {
        (true, None) => Ok(Vec::new()),
        (true, Some(allowed)) => Err(format!(
            "spec.{key} names no {kind} and the cluster gives it no default; view {view} allows {}",
            allowed.join(", ")
        )),
        (false, _) => named
            .into_iter()
            .map(|(name, field)| match allowed {
                Some(allowed) if !allowed.iter().any(|a| a == name) => Err(format!(
                    "{field} names {kind} {name:?}, which view {view} does not allow (allowed: {})",
                    allowed.join(", ")
                )),
                _ => Ok(Lookup::Class { class, name: name.to_owned(), field }),
            })
            .collect(),
    }
}

/// The ServiceAccount a Pod or pod template names, if it names one.
fn service_account(object: &Value) -> Option<Lookup> {
    let (spec, at) = pod_spec(object)?;
    // `serviceAccount` is the deprecated spelling, still honoured when the new one is empty.
    ["serviceAccountName", "serviceAccount"].iter().find_map(|key| {
        let name = spec.get(key).and_then(Value::as_str).filter(|n| !n.is_empty())?;
        Some(Lookup::ServiceAccount { name: name.to_owned(), field: format!("{at}.{key}") })
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::tests::example;

    fn judged(view: &str, object: Value) -> Result<Vec<Lookup>, String> {
        let tree = example();
        judge(&tree, tree.node(view).unwrap(), &object)
    }

    fn binding(role_kind: &str, role: &str, subjects: Value) -> Value {
        json!({"kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "acme-web-dev"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": subjects})
    }

    #[test]
    fn role_refs_are_roles_to_look_up_or_bindable_cluster_roles() {
        assert_eq!(judged("acme/web", binding("Role", "reader", json!([]))), Ok(vec![Lookup::Role("reader".into())]));
        assert_eq!(judged("acme/web", binding("ClusterRole", "view", json!([]))), Ok(vec![]));
        assert_eq!(
            judged("acme/web", binding("ClusterRole", "cluster-admin", json!([]))),
            Err("roleRef ClusterRole \"cluster-admin\" is not bindable in view acme/web".into())
        );
        // globex names no bindable ClusterRoles: the defaults.
        assert_eq!(judged("globex", binding("ClusterRole", "edit", json!([]))), Ok(vec![]));
        assert!(judged("globex", binding("ClusterRole", "system:node", json!([]))).is_err());
    }

    #[test]
    fn custom_roles_are_bound_only_within_the_ceiling() {
        let raw: crate::config::raw_tree::RawTree = serde_saphyr::from_str(
            "roles: {pdb: {rules: [{apiGroups: [policy], resources: [poddisruptionbudgets], verbs: [get]}]}, cm: {rules: [{resources: [configmaps], verbs: [get]}]}}\nnodes: [{name: a, namespaces: [x], allow: {resources: [{resources: ['*'], verbs: ['*']}]}}]",
        )
        .unwrap();
        let tree = Tree::compile(&raw, "tree").unwrap();
        let a = tree.node("a").unwrap();
        assert_eq!(judge(&tree, a, &binding("ClusterRole", "canopy:role:cm", json!([]))), Ok(vec![]));
        let refused = judge(&tree, a, &binding("ClusterRole", "canopy:role:pdb", json!([]))).unwrap_err();
        assert!(refused.contains("grants get on policy/poddisruptionbudgets (its rules[0])"), "{refused}");
    }

    #[test]
    fn bound_roles_may_not_exceed_the_ceiling() {
        let tree = example();
        let ceiling = &tree.nodes[tree.node("acme/web").unwrap()].ceiling;
        let role =
            json!({"kind": "Role", "rules": [{"apiGroups": ["autoscaling"], "resources": ["*"], "verbs": ["get"]}]});
        assert_eq!(
            bound_role_excess(ceiling, "acme/web", "scaler", &role).as_deref(),
            Some(
                "roleRef Role \"scaler\" grants get on autoscaling/* (its rules[0]), which the ceiling of view acme/web does not allow"
            )
        );
        let within = json!({"kind": "Role", "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        assert_eq!(bound_role_excess(ceiling, "acme/web", "reader", &within), None);
    }

    #[test]
    fn subjects_stay_in_the_view() {
        let inside = json!([
            {"kind": "ServiceAccount", "name": "builder", "namespace": "acme-web-dev"},
            {"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"},
            {"kind": "User", "name": "system:serviceaccount:acme-web-prod:ci"},
            {"kind": "Group", "name": "system:serviceaccounts:acme-web-prod"}
        ]);
        assert_eq!(judged("acme/web", binding("ClusterRole", "view", inside)), Ok(vec![]));
        for (subject, why) in [
            (
                json!({"kind": "ServiceAccount", "name": "x", "namespace": "main"}),
                "subject ServiceAccount main/x is outside view acme/web",
            ),
            (
                json!({"kind": "ServiceAccount", "name": "x", "namespace": "globex-main"}),
                "subject ServiceAccount <another namespace>/x is outside view acme/web",
            ),
            (
                json!({"kind": "User", "name": "system:serviceaccount:globex-main:x"}),
                "subject User \"system:serviceaccount:<another namespace>:x\" names ServiceAccounts outside view acme/web",
            ),
            (
                json!({"kind": "User", "name": "system:serviceaccount:kube-system:x"}),
                "subject User \"system:serviceaccount:kube-system:x\" names ServiceAccounts outside view acme/web",
            ),
            (
                json!({"kind": "User", "name": "dave"}),
                "subject User \"dave\" is not a member of view acme/web or below",
            ),
            // Members above the view are not members at it or below.
            (
                json!({"kind": "User", "name": "alice"}),
                "subject User \"alice\" is not a member of view acme/web or below",
            ),
            (
                json!({"kind": "Group", "name": "system:authenticated"}),
                "subject Group \"system:authenticated\" is not a member of view acme/web or below",
            ),
        ] {
            assert_eq!(judged("acme/web", binding("ClusterRole", "view", json!([subject]))), Err(why.into()));
        }
        // From acme, carol (a member of acme/data) may be bound.
        let carol = json!([{"kind": "User", "name": "carol"}]);
        assert_eq!(judged("acme", binding("ClusterRole", "view", carol)), Ok(vec![]));
    }

    #[test]
    fn roles_may_not_exceed_the_ceiling() {
        let role = |group: &str| {
            json!({"kind": "Role", "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
                {"apiGroups": [group], "resources": ["poddisruptionbudgets"], "verbs": ["create"]}]})
        };
        assert_eq!(judged("acme/web", role("apps")), Ok(vec![]));
        assert_eq!(
            judged("acme/web", role("policy")),
            Err("rules[1] grants create on policy/poddisruptionbudgets, which the ceiling of view acme/web does not allow".into())
        );
        assert_eq!(judged("globex", role("policy")), Ok(vec![]));
    }

    #[test]
    fn pod_specs_name_service_accounts_to_look_up() {
        let pod = json!({"kind": "Pod", "spec": {"serviceAccountName": "runner", "serviceAccount": "runner"}});
        assert_eq!(
            judged("acme/web", pod),
            Ok(vec![Lookup::ServiceAccount { name: "runner".into(), field: "spec.serviceAccountName".into() }])
        );
        let job = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"serviceAccount": "old"}}}}}});
        assert_eq!(
            judged("acme/web", job),
            Ok(vec![Lookup::ServiceAccount {
                name: "old".into(),
                field: "spec.jobTemplate.spec.template.spec.serviceAccount".into()
            }])
        );
        let unnamed = json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": []}}}});
        assert_eq!(judged("acme/web", unnamed), Ok(vec![]));
    }

    #[test]
    fn classes_must_be_allowlisted() {
        let pvc = |class: Value| json!({"kind": "PersistentVolumeClaim", "spec": {"storageClassName": class}});
        // acme allows the storage classes `standard` and `premium`; globex names none, so any class (to look up).
        let standard =
            Lookup::Class { class: Class::Storage, name: "standard".into(), field: "spec.storageClassName".into() };
        assert_eq!(judged("acme/web", pvc(json!("standard"))), Ok(vec![standard]));
        let refused = judged("acme/web", pvc(json!("fast"))).unwrap_err();
        assert_eq!(
            refused,
            "spec.storageClassName names StorageClass \"fast\", which view acme/web does not allow (allowed: standard, premium)"
        );
        assert!(judged("acme/web", pvc(Value::Null)).unwrap_err().contains("names no StorageClass"));
        assert_eq!(judged("globex", pvc(Value::Null)), Ok(vec![]));
        assert_eq!(judged("globex", pvc(json!("fast"))).unwrap().len(), 1);
        // The legacy annotation counts as naming the class.
        let legacy = json!({"kind": "Ingress", "metadata": {"annotations": {"kubernetes.io/ingress.class": "internal"}}, "spec": {}});
        let refused = judged("acme/web", legacy).unwrap_err();
        assert!(
            refused.starts_with("metadata.annotations[kubernetes.io/ingress.class] names IngressClass \"internal\"")
        );
        // Both count when both are set.
        let both = json!({"kind": "PersistentVolumeClaim",
            "metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "fast"}},
            "spec": {"storageClassName": "standard"}});
        assert!(judged("acme/web", both).unwrap_err().contains("names StorageClass \"fast\""));
    }

    #[test]
    fn only_the_kinds_with_references_are_checked() {
        assert!(is_checked("rbac.authorization.k8s.io", "rolebindings") && is_checked("apps", "deployments"));
        assert!(is_checked("", "persistentvolumeclaims") && is_checked("networking.k8s.io", "ingresses"));
        assert!(!is_checked("", "configmaps") && !is_checked("rbac.authorization.k8s.io", "clusterroles"));
        assert_eq!(judged("acme/web", json!({"kind": "ConfigMap", "data": {"roleRef": "x"}})), Ok(vec![]));
    }
}
