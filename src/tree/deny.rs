//! Deny rules: requests refused at a node and below it whatever RBAC and the ceiling allow.
//! A node holds its ancestors' rules, then its own, so none below can lift one; the pure
//! [`crate::policy::decide`] applies them, and so every answer that goes through it — the
//! request path, `kubectl auth can-i`, `who-can`, `access-matrix` — says the same. A node's rules
//! are indexed by the resources they name ([`Denies`]), so a request meets only those about its
//! own resource, however many rules the tree holds.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::selector::Selector;
use super::{Member, OwnedNamespace, TreeError};
use crate::auth::Identity;
use crate::config::raw_tree::{RawDeny, RawSubjectKind};
use crate::request::RequestInfo;

/// A compiled deny rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    /// The rule's config path (`tree.nodes[0].deny[1]`), named in every refusal.
    pub at: String,
    subjects: Vec<Member>,
    groups: BTreeSet<String>,
    resources: BTreeSet<String>,
    verbs: BTreeSet<String>,
    names: Vec<String>,
    /// Physical names; empty: every namespace.
    namespaces: Vec<String>,
    /// Objects by label; `None`: every object.
    selector: Option<Selector>,
    reason: Option<String>,
}

impl DenyRule {
    /// Compiles `raw`, declared at `at` on the node with `prefix` and `declared` namespaces.
    pub fn compile(raw: &RawDeny, prefix: &str, declared: &[OwnedNamespace], at: &str) -> Result<Self, TreeError> {
        let err = |path: &str, message: &str| TreeError { at: format!("{at}.{path}"), message: message.to_owned() };
        for (field, values) in [("apiGroups", &raw.api_groups), ("resources", &raw.resources), ("verbs", &raw.verbs)] {
            if values.is_empty() {
                return Err(err(field, "must name at least one (or \"*\")"));
            }
        }
        // A local name of this node, or a descendant's name relative to it (`web-dev`).
        let physical = |local: &str| {
            declared
                .iter()
                .find(|ns| ns.local == local)
                .map_or_else(|| format!("{prefix}{local}"), |ns| ns.physical.clone())
        };
        let mut namespaces = Vec::new();
        for (i, local) in raw.namespaces.iter().enumerate() {
            if !super::is_dns_label(local) {
                return Err(err(&format!("namespaces[{i}]"), &format!("{local:?} is not a DNS label")));
            }
            namespaces.push(physical(local));
        }
        let mut subjects = Vec::new();
        for (i, subject) in raw.subjects.iter().enumerate() {
            let namespace = match (subject.kind, &subject.namespace) {
                (RawSubjectKind::ServiceAccount, Some(local)) => Some(physical(local)),
                (RawSubjectKind::ServiceAccount, None) => {
                    return Err(err(&format!("subjects[{i}].namespace"), "a ServiceAccount needs its namespace"));
                }
                (_, Some(_)) => {
                    return Err(err(&format!("subjects[{i}].namespace"), "only ServiceAccounts have a namespace"));
                }
                (_, None) => None,
            };
            if subject.name.is_empty() {
                return Err(err(&format!("subjects[{i}].name"), "must not be empty"));
            }
            subjects.push(Member { kind: subject.kind, name: subject.name.clone(), namespace, role: String::new() });
        }
        let selector = match &raw.label_selector {
            Some(raw) => Some(Selector::compile(raw).map_err(|(field, e)| match field.as_str() {
                "" => err("labelSelector", &e.0),
                field => err(&format!("labelSelector.{field}"), &e.0),
            })?),
            None => None,
        };
        Ok(DenyRule {
            at: at.to_owned(),
            subjects,
            groups: raw.api_groups.iter().cloned().collect(),
            resources: raw.resources.iter().cloned().collect(),
            verbs: raw.verbs.iter().cloned().collect(),
            names: raw.resource_names.clone(),
            namespaces,
            selector,
            reason: raw.reason.clone(),
        })
    }

    /// Whether the rule refuses `info` from `identity` in physical namespace `namespace`
    /// (`None`: across namespaces, or a cluster-scoped resource) whatever object it touches. A
    /// rule choosing objects by label refuses lists, watches and deletecollections whose own
    /// selector does not exclude its objects; the objects of other requests are judged by
    /// [`crate::policy::deny_gate`] ([`DenyRule::refuses_labelled`]).
    pub fn refuses(&self, identity: &Identity, info: &RequestInfo, namespace: Option<&str>) -> bool {
        let refused = match &self.selector {
            None => true,
            Some(selector) => {
                !self.per_object(info)
                    && !Selector::parse(&info.label_selector).is_ok_and(|asked| asked.excludes(selector))
            }
        };
        refused && self.reaches(identity, info, namespace)
    }

    /// Whether the rule refuses `info` for the objects it touches whose labels match: the
    /// request names one object (or creates one), and the rule chooses objects by label.
    pub fn refuses_labelled(&self, identity: &Identity, info: &RequestInfo, namespace: Option<&str>) -> bool {
        self.selector.is_some() && self.per_object(info) && self.reaches(identity, info, namespace)
    }

    /// Whether an object with `labels` is one the rule chooses.
    pub fn chooses(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.selector.as_ref().is_none_or(|selector| selector.matches(labels))
    }

    /// Requests judged object by object: all but collections, and creates under a rule naming
    /// objects (which refuses them all, as the objects they make could be the named ones).
    fn per_object(&self, info: &RequestInfo) -> bool {
        let collection = matches!(info.verb.as_str(), "list" | "watch" | "deletecollection");
        let names_its_object = !info.name.is_empty() || self.names.is_empty();
        !collection && names_its_object
    }

    /// Whether `info` from `identity` in `namespace` is among the requests the rule is about.
    fn reaches(&self, identity: &Identity, info: &RequestInfo, namespace: Option<&str>) -> bool {
        let any = |set: &BTreeSet<String>, value: &str| set.contains("*") || set.contains(value);
        let resource = match info.subresource.as_str() {
            "" => any(&self.resources, &info.resource),
            sub => any(&self.resources, &info.resource) || self.resources.contains(&format!("{}/{sub}", info.resource)),
        };
        let name = info.name.is_empty()
            || self.names.is_empty()
            || self.names.iter().any(|n| n.strip_suffix('*').map_or(*n == info.name, |p| info.name.starts_with(p)));
        let namespaced =
            self.namespaces.is_empty() || namespace.is_some_and(|ns| self.namespaces.iter().any(|n| n == ns));
        // A collection verb reaches the objects the single-object one would: it is refused with it.
        let verb = any(&self.verbs, &info.verb)
            || (info.verb == "deletecollection" && any(&self.verbs, "delete"))
            || (matches!(info.verb.as_str(), "list" | "watch") && any(&self.verbs, "get"));
        (self.subjects.is_empty() || self.subjects.iter().any(|s| s.matches(identity)))
            && any(&self.groups, &info.api_group)
            && resource
            && verb
            && name
            && namespaced
    }

    /// Which objects it keeps a request from, for an answer that allows the request otherwise:
    /// `objects labelled a=b (tree.nodes[0].deny[1]: reason)`.
    pub fn exception(&self) -> String {
        let selector = self.selector.as_ref().map_or_else(|| "all".to_owned(), |s| format!("labelled {s}"));
        match &self.reason {
            Some(reason) => format!("objects {selector} ({}: {reason})", self.at),
            None => format!("objects {selector} ({})", self.at),
        }
    }

    /// Why a request it refuses is refused.
    pub fn message(&self) -> String {
        let rule = match &self.selector {
            Some(selector) => format!("denied by {} (objects labelled {selector})", self.at),
            None => format!("denied by {}", self.at),
        };
        match &self.reason {
            Some(reason) => format!("{rule}: {reason}"),
            None => rule,
        }
    }
}

/// The deny rules in force at a node — its ancestors', then its own — indexed by group,
/// resource, verb and object name, so a request meets only the rules that could refuse it.
#[derive(Debug, Clone, Default)]
pub struct Denies {
    rules: Vec<Arc<DenyRule>>,
    /// Group → resource (its subresources included) → verb → rules; any key may be `*`.
    index: HashMap<String, HashMap<String, HashMap<String, Names>>>,
}

/// Rules of one group, resource and verb, by the object names they list.
#[derive(Debug, Clone, Default)]
struct Names {
    /// Rules listing no names: every object.
    every: Vec<usize>,
    /// Rules listing names: exact ones, and prefixes (`queue*` under `queue`).
    exact: HashMap<String, Vec<usize>>,
    prefixes: HashMap<String, Vec<usize>>,
    /// Every rule listing names, for requests that name no object (they reach the named ones).
    named: Vec<usize>,
}

impl Names {
    fn add(&mut self, rule: &DenyRule, at: usize) {
        if rule.names.is_empty() {
            return self.every.push(at);
        }
        self.named.push(at);
        for name in &rule.names {
            match name.strip_suffix('*') {
                Some(prefix) => self.prefixes.entry(prefix.to_owned()).or_default().push(at),
                None => self.exact.entry(name.clone()).or_default().push(at),
            }
        }
    }

    /// The rules that could refuse a request naming `name` (empty: no object).
    fn candidates(&self, name: &str, out: &mut Vec<usize>) {
        out.extend(&self.every);
        if name.is_empty() {
            return out.extend(&self.named);
        }
        out.extend(self.exact.get(name).into_iter().flatten());
        if !self.prefixes.is_empty() {
            let prefixes = name.char_indices().map(|(i, _)| &name[..i]).chain([name]);
            prefixes.for_each(|prefix| out.extend(self.prefixes.get(prefix).into_iter().flatten()));
        }
    }
}

impl Denies {
    /// Adds `rule` after those already in force.
    pub fn push(&mut self, rule: Arc<DenyRule>) {
        let at = self.rules.len();
        for group in &rule.groups {
            let resources = self.index.entry(group.clone()).or_default();
            for resource in &rule.resources {
                let base = resource.split('/').next().unwrap_or(resource);
                let verbs = resources.entry(base.to_owned()).or_default();
                for verb in &rule.verbs {
                    verbs.entry(verb.clone()).or_default().add(&rule, at);
                }
            }
        }
        self.rules.push(rule);
    }

    /// The first rule, in config order, that refuses `info` from `identity` in physical
    /// namespace `namespace` (see [`DenyRule::refuses`]).
    pub fn refusing(&self, identity: &Identity, info: &RequestInfo, namespace: Option<&str>) -> Option<&DenyRule> {
        let mut candidates = self.candidates(info).into_iter().map(|at| &*self.rules[at]);
        candidates.find(|rule| rule.refuses(identity, info, namespace))
    }

    /// The rules' judgement of `info` from `identity` in physical namespace `namespace`: the
    /// first rule refusing it whatever object it touches, or else the rules, in config order,
    /// that refuse it for the objects it touches whose labels they choose (see
    /// [`DenyRule::refuses`] and [`DenyRule::refuses_labelled`]).
    pub fn judge(
        &self,
        identity: &Identity,
        info: &RequestInfo,
        namespace: Option<&str>,
    ) -> Result<Vec<Arc<DenyRule>>, &DenyRule> {
        let mut labelled = Vec::new();
        for rule in self.candidates(info).into_iter().map(|at| &self.rules[at]) {
            if rule.refuses(identity, info, namespace) {
                return Err(rule);
            }
            if rule.refuses_labelled(identity, info, namespace) {
                labelled.push(Arc::clone(rule));
            }
        }
        Ok(labelled)
    }

    /// The rules that could refuse `info`, in config order.
    fn candidates(&self, info: &RequestInfo) -> Vec<usize> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        // A collection verb is refused with the single-object verb reaching the same objects.
        let implied = match info.verb.as_str() {
            "list" | "watch" => "get",
            "deletecollection" => "delete",
            _ => "*",
        };
        let mut candidates = Vec::new();
        for group in [info.api_group.as_str(), "*"] {
            let Some(resources) = self.index.get(group) else { continue };
            for resource in [info.resource.as_str(), "*"] {
                let Some(verbs) = resources.get(resource) else { continue };
                for verb in [info.verb.as_str(), "*", implied] {
                    if let Some(names) = verbs.get(verb) {
                        names.candidates(&info.name, &mut candidates);
                    }
                }
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        candidates
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn rule(yaml: &str) -> DenyRule {
        let raw: RawDeny = serde_saphyr::from_str(yaml).unwrap();
        DenyRule::compile(&raw, "acme-web-", &[], "tree.nodes[0].deny[0]").unwrap()
    }

    fn info(method: Method, path: &str) -> RequestInfo {
        RequestInfo::parse(&method, path, None).unwrap()
    }

    #[test]
    fn a_named_object_is_kept_from_writers_and_its_subresources_too() {
        let rule = rule(
            "{apiGroups: [apps], resources: [deployments], verbs: [update, patch, delete], resourceNames: [queue*]}",
        );
        let bob = Identity::new("bob", ["g"]);
        let ns = Some("acme-web-dev");
        let path = "/apis/apps/v1/namespaces/dev/deployments/queueworker";
        assert!(rule.refuses(&bob, &info(Method::PATCH, path), ns));
        assert!(rule.refuses(&bob, &info(Method::PUT, &format!("{path}/scale")), ns));
        assert!(!rule.refuses(&bob, &info(Method::GET, path), ns));
        assert!(!rule.refuses(&bob, &info(Method::PATCH, "/apis/apps/v1/namespaces/dev/deployments/web"), ns));
        assert!(rule.refuses(&bob, &info(Method::DELETE, "/apis/apps/v1/namespaces/dev/deployments"), ns));
        assert_eq!(rule.message(), "denied by tree.nodes[0].deny[0]");
    }

    #[test]
    fn subjects_and_namespaces_narrow_a_rule() {
        let rule =
            rule("{subjects: [{kind: Group, name: interns}], resources: [secrets], verbs: ['*'], namespaces: [prod]}");
        let intern = Identity::new("i", ["interns"]);
        let get = info(Method::GET, "/api/v1/namespaces/prod/secrets/s");
        assert!(rule.refuses(&intern, &get, Some("acme-web-prod")));
        assert!(!rule.refuses(&intern, &get, Some("acme-web-dev")));
        assert!(!rule.refuses(&intern, &get, None));
        assert!(!rule.refuses(&Identity::new("bob", ["staff"]), &get, Some("acme-web-prod")));
    }

    #[test]
    fn the_first_rule_in_config_order_refuses_whichever_index_holds_it() {
        let mut denies = Denies::default();
        for (at, yaml) in [
            "{apiGroups: [apps], resources: [statefulsets], verbs: ['*']}",
            "{apiGroups: ['*'], resources: ['deployments/scale'], verbs: [update]}",
            "{apiGroups: [apps], resources: ['*'], verbs: [update], reason: second}",
            "{apiGroups: [apps], resources: [deployments], verbs: [update]}",
        ]
        .iter()
        .enumerate()
        {
            let raw: RawDeny = serde_saphyr::from_str(yaml).unwrap();
            denies.push(Arc::new(DenyRule::compile(&raw, "acme-", &[], &format!("deny[{at}]")).unwrap()));
        }
        let bob = Identity::new("bob", ["g"]);
        let ns = Some("acme-dev");
        let refusing =
            |method: Method, path: &str| denies.refusing(&bob, &info(method, path), ns).map(|r| r.at.clone());
        let deployment = "/apis/apps/v1/namespaces/dev/deployments/web";
        assert_eq!(refusing(Method::PUT, &format!("{deployment}/scale")).as_deref(), Some("deny[1]"));
        assert_eq!(refusing(Method::PUT, deployment).as_deref(), Some("deny[2]"));
        assert_eq!(refusing(Method::GET, deployment), None);
        assert_eq!(refusing(Method::GET, "/apis/apps/v1/namespaces/dev/statefulsets/s").as_deref(), Some("deny[0]"));
        assert_eq!(refusing(Method::PUT, "/api/v1/namespaces/dev/configmaps/c"), None);
    }

    #[test]
    fn a_rule_choosing_by_label_judges_objects_and_refuses_collections_its_selector_does_not_exclude() {
        let rule = rule(
            "{resources: [configmaps], verbs: [get, delete], labelSelector: {matchLabels: {protected: 'true'}}, reason: r}",
        );
        let bob = Identity::new("bob", ["g"]);
        let ns = Some("acme-web-dev");
        let one = info(Method::GET, "/api/v1/namespaces/dev/configmaps/c");
        assert!(!rule.refuses(&bob, &one, ns) && rule.refuses_labelled(&bob, &one, ns));
        let collection = |method: Method, query: &str| {
            RequestInfo::parse(&method, "/api/v1/namespaces/dev/configmaps", Some(query)).unwrap()
        };
        for query in ["", "labelSelector=protected%3Dtrue", "labelSelector=protected+gt+1", "labelSelector=a,,b"] {
            assert!(rule.refuses(&bob, &collection(Method::GET, query), ns), "{query}");
            assert!(!rule.refuses_labelled(&bob, &collection(Method::GET, query), ns), "{query}");
        }
        assert!(rule.refuses(&bob, &collection(Method::DELETE, "labelSelector=app%3Dweb"), ns));
        assert!(!rule.refuses(&bob, &collection(Method::GET, "labelSelector=protected%21%3Dtrue&watch=1"), ns));
        assert!(!rule.refuses(&bob, &collection(Method::DELETE, "labelSelector=%21protected"), ns));
        assert!(rule.chooses(&[("protected".to_owned(), "true".to_owned())].into()));
        assert!(!rule.chooses(&Default::default()));
        assert_eq!(rule.message(), "denied by tree.nodes[0].deny[0] (objects labelled protected=true): r");
    }

    #[test]
    fn a_repeated_label_selector_is_read_as_the_apiserver_reads_it_the_first() {
        let rule = rule("{resources: [configmaps], verbs: [get], labelSelector: {matchLabels: {protected: 'true'}}}");
        let bob = Identity::new("bob", ["g"]);
        let list = |query: &str| RequestInfo::parse(&Method::GET, "/api/v1/namespaces/dev/configmaps", Some(query));
        let first_excludes = list("labelSelector=%21protected&labelSelector=protected").unwrap();
        assert!(!rule.refuses(&bob, &first_excludes, None));
        let first_overlaps = list("labelSelector=protected&labelSelector=%21protected").unwrap();
        assert!(rule.refuses(&bob, &first_overlaps, None));
    }

    #[test]
    fn a_rule_naming_objects_and_choosing_by_label_refuses_every_create() {
        let rule = rule(
            "{resources: [configmaps], verbs: [create], resourceNames: [c], labelSelector: {matchLabels: {a: b}}}",
        );
        let create = info(Method::POST, "/api/v1/namespaces/dev/configmaps");
        let bob = Identity::new("bob", ["g"]);
        assert!(rule.refuses(&bob, &create, None) && !rule.refuses_labelled(&bob, &create, None));
    }

    #[test]
    fn a_bad_label_selector_is_refused_at_load_with_its_path() {
        let raw: RawDeny =
            serde_saphyr::from_str("{resources: [pods], verbs: [get], labelSelector: {matchLabels: {a: 'b c'}}}")
                .unwrap();
        let error = DenyRule::compile(&raw, "", &[], "tree.nodes[1].deny[0]").unwrap_err();
        assert_eq!(error.at, "tree.nodes[1].deny[0].labelSelector.matchLabels.a");
        let raw: RawDeny = serde_saphyr::from_str("{resources: [pods], verbs: [get], labelSelector: {}}").unwrap();
        let error = DenyRule::compile(&raw, "", &[], "tree.nodes[1].deny[0]").unwrap_err();
        assert_eq!(error.at, "tree.nodes[1].deny[0].labelSelector");
    }

    #[test]
    fn a_rule_that_names_nothing_is_refused_at_load() {
        let raw: RawDeny = serde_saphyr::from_str("{resources: [], verbs: [get]}").unwrap();
        let error = DenyRule::compile(&raw, "", &[], "tree.nodes[1].deny[2]").unwrap_err();
        assert_eq!(error.at, "tree.nodes[1].deny[2].resources");
    }
}
