//! Field masks, Canopy's database views over Kubernetes objects (design invariant 4).
//!
//! A node declares mask rules per resource (optionally per role); rules accumulate down the tree,
//! so a subtree sees at most what its ancestors let it see. A rule's *read* paths are stripped
//! from every answer ([`read`]); its *write* paths may not be set or changed by the tenant, and
//! neither may read paths — a tenant cannot set what it cannot see ([`write`]). Paths are
//! JSONPath, compiled once at config load ([`path`]). Secrets of types outside the ceiling are
//! the rows such a view hides ([`secrets`]).

pub mod path;
#[cfg(test)]
pub(crate) mod props;
pub mod read;
pub mod secrets;
pub mod select;
pub mod write;

use std::sync::Arc;

use crate::config::raw_tree::RawMask;
pub use path::{MaskPath, PathError};

/// Whether masks hold for requests on `subresource`: the object itself and the subresources
/// that read or write the whole object.
pub fn covers_subresource(subresource: &str) -> bool {
    matches!(subresource, "" | "status" | "ephemeralcontainers")
}

/// Every resource that holds a pod template: group, resource, and the template's path.
pub const POD_TEMPLATES: [(&str, &str, &str); 8] = [
    ("apps", "deployments", "$.spec.template"),
    ("apps", "replicasets", "$.spec.template"),
    ("apps", "statefulsets", "$.spec.template"),
    ("apps", "daemonsets", "$.spec.template"),
    ("batch", "jobs", "$.spec.template"),
    ("batch", "cronjobs", "$.spec.jobTemplate.spec.template"),
    ("", "replicationcontrollers", "$.spec.template"),
    ("", "podtemplates", "$.template"),
];

/// A compiled mask rule of one node.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskRule {
    pub group: String,
    pub resource: String,
    /// Roles the rule applies to; empty: every role.
    pub roles: Vec<String>,
    pub read: Vec<Arc<MaskPath>>,
    pub write: Vec<Arc<MaskPath>>,
}

impl MaskRule {
    /// Compiles a written rule, or names the field at fault (relative to the rule) and why.
    pub fn compile(raw: &RawMask, known_role: &dyn Fn(&str) -> bool) -> Result<Self, (String, String)> {
        let (resource, group) = raw.resource.split_once('.').unwrap_or((raw.resource.as_str(), ""));
        if resource.is_empty() || resource.contains('/') || resource != resource.to_ascii_lowercase() {
            return Err((
                "resource".into(),
                format!("{:?} is not a resource; write `pods` or `deployments.apps`", raw.resource),
            ));
        }
        for (i, role) in raw.roles.iter().enumerate() {
            if !known_role(role) {
                return Err((format!("roles[{i}]"), format!("unknown role {role:?}")));
            }
        }
        let compile = |field: &str, paths: &[String]| {
            paths
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    MaskPath::compile(text).map(Arc::new).map_err(|e| (format!("{field}[{i}]"), e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let rule = MaskRule {
            group: group.to_owned(),
            resource: resource.to_owned(),
            roles: raw.roles.clone(),
            read: compile("read", &raw.read)?,
            write: compile("write", &raw.write)?,
        };
        if rule.read.is_empty() && rule.write.is_empty() {
            return Err(("read".into(), "a mask names at least one read or write path".into()));
        }
        Ok(rule)
    }

    /// For a rule on pods, the rules that hold it on every pod template: a controller creates
    /// the pods a template describes, so a template may not set what a pod may not (read paths
    /// included). Empty for rules on other resources.
    pub fn on_pod_templates(&self) -> Vec<MaskRule> {
        if !(self.group.is_empty() && self.resource == "pods") {
            return Vec::new();
        }
        POD_TEMPLATES
            .iter()
            .map(|(group, resource, prefix)| MaskRule {
                group: (*group).to_owned(),
                resource: (*resource).to_owned(),
                roles: self.roles.clone(),
                read: Vec::new(),
                write: self
                    .write
                    .iter()
                    .chain(&self.read)
                    .filter_map(|path| path.under(prefix).map(Arc::new))
                    .collect(),
            })
            .collect()
    }

    fn applies(&self, group: &str, resource: &str, role: Option<&str>) -> bool {
        self.group == group
            && self.resource == resource
            && (self.roles.is_empty() || role.is_none_or(|role| self.roles.iter().any(|r| r == role)))
    }
}

/// The mask in force for one request: every rule of the view (own and inherited) for the
/// resource and the caller's role there.
#[derive(Debug, Clone, Default)]
pub struct Mask {
    pub read: Vec<Arc<MaskPath>>,
    pub write: Vec<Arc<MaskPath>>,
    /// The view's path, for messages.
    pub view: String,
}

impl Mask {
    /// The mask of `rules` for `group`/`resource` and `role` (`None`: unknown, so every rule
    /// applies — masks fail closed); `None` when nothing is masked.
    pub fn of(
        rules: &[Arc<MaskRule>],
        view: &str,
        group: &str,
        resource: &str,
        role: Option<&str>,
    ) -> Option<Arc<Self>> {
        let mut mask = Mask { view: view.to_owned(), ..Mask::default() };
        for rule in rules.iter().filter(|rule| rule.applies(group, resource, role)) {
            mask.read.extend(rule.read.iter().cloned());
            mask.write.extend(rule.write.iter().cloned());
        }
        (!mask.read.is_empty() || !mask.write.is_empty()).then(|| Arc::new(mask))
    }

    /// Paths a tenant may neither set nor change: write paths and read paths.
    fn guarded(&self) -> impl Iterator<Item = &MaskPath> {
        self.write.iter().chain(&self.read).map(Arc::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(resource: &str, roles: &[&str], read: &[&str], write: &[&str]) -> RawMask {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        RawMask { resource: resource.into(), roles: owned(roles), read: owned(read), write: owned(write) }
    }

    fn known(role: &str) -> bool {
        ["admin", "edit", "view"].contains(&role)
    }

    #[test]
    fn rules_compile_or_name_the_field_at_fault() {
        let rule = MaskRule::compile(&raw("deployments.apps", &[], &["$.spec.paused"], &[]), &known).unwrap();
        assert_eq!((rule.group.as_str(), rule.resource.as_str()), ("apps", "deployments"));
        let err = |r: RawMask| MaskRule::compile(&r, &known).unwrap_err().0;
        assert_eq!(err(raw("pods", &[], &["$.a", "a.b"], &[])), "read[1]");
        assert_eq!(err(raw("pods", &[], &[], &["$["])), "write[0]");
        assert_eq!(err(raw("pods", &["owner"], &["$.a"], &[])), "roles[0]");
        assert_eq!(err(raw("Pods", &[], &["$.a"], &[])), "resource");
        assert_eq!(err(raw("pods", &[], &[], &[])), "read");
    }

    #[test]
    fn masks_gather_rules_for_the_resource_and_role() {
        let rules: Vec<Arc<MaskRule>> = vec![
            Arc::new(
                MaskRule::compile(&raw("pods", &[], &["$.spec.nodeName"], &["$.spec.tolerations"]), &known).unwrap(),
            ),
            Arc::new(MaskRule::compile(&raw("pods", &["view"], &["$.status"], &[]), &known).unwrap()),
            Arc::new(MaskRule::compile(&raw("secrets", &[], &["$.data"], &[]), &known).unwrap()),
        ];
        let edit = Mask::of(&rules, "acme", "", "pods", Some("edit")).unwrap();
        assert_eq!((edit.read.len(), edit.write.len()), (1, 1));
        assert_eq!(Mask::of(&rules, "acme", "", "pods", Some("view")).unwrap().read.len(), 2);
        assert_eq!(Mask::of(&rules, "acme", "", "pods", None).unwrap().read.len(), 2, "unknown role: every rule");
        assert!(Mask::of(&rules, "acme", "apps", "pods", Some("edit")).is_none());
        assert!(Mask::of(&rules, "acme", "", "configmaps", Some("edit")).is_none());
    }

    #[test]
    fn pod_masks_hold_on_every_pod_template() {
        let pods = MaskRule::compile(&raw("pods", &["edit"], &["$.spec.nodeName"], &["$['spec'].tolerations"]), &known)
            .unwrap();
        let templates = pods.on_pod_templates();
        assert_eq!(templates.len(), POD_TEMPLATES.len());
        let texts = |rule: &MaskRule| rule.write.iter().map(|p| p.text.clone()).collect::<Vec<_>>();
        let cronjobs = templates.iter().find(|r| r.resource == "cronjobs").unwrap();
        assert_eq!(
            texts(cronjobs),
            ["$.spec.jobTemplate.spec.template['spec'].tolerations", "$.spec.jobTemplate.spec.template.spec.nodeName"]
        );
        assert!(cronjobs.read.is_empty() && cronjobs.roles == ["edit"] && cronjobs.group == "batch");
        let podtemplates = templates.iter().find(|r| r.resource == "podtemplates").unwrap();
        assert_eq!(texts(podtemplates)[1], "$.template.spec.nodeName");
        let secrets = MaskRule::compile(&raw("secrets", &[], &["$.data"], &[]), &known).unwrap();
        assert!(secrets.on_pod_templates().is_empty());
    }
}
