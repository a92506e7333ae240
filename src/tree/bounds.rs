//! Value bounds: what the objects a write would store may hold in one field (a number range, a
//! set of values, a pattern, nothing at all, or what the object first had). A node holds its
//! ancestors' bounds, then its own, so none below can lift one. Compiled once at load (JSONPath
//! and regex parsed, one constraint per bound), then grouped per resource by the path they
//! check ([`by_path`]); judged by [`crate::policy::bound_gate`] on the dry-run result of every
//! write with the pure [`OnResource::violations`].

mod by_path;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use regex::Regex;
use serde_json::Value;

use super::TreeError;
use crate::config::raw_tree::RawBound;
use crate::mask::path::{self, Location, Step};
use crate::mask::{MaskPath, POD_TEMPLATES};
pub use by_path::OnResource;

/// A compiled bound.
#[derive(Debug, Clone)]
pub struct Bound {
    /// The bound's config path (`tree.nodes[1].bounds[2]`), named in every refusal.
    pub at: String,
    pub group: String,
    pub resource: String,
    /// Object names or prefixes ending in `*`; empty: every object.
    names: Vec<String>,
    pub path: MaskPath,
    pub constraint: Constraint,
    pub reason: Option<String>,
}

/// The bounds in force at a node, in config order, and indexed by the resource they hold for:
/// a write meets only the bounds on its own resource, shared with no copy, however many the
/// tree holds.
#[derive(Debug, Clone, Default)]
pub struct Bounds {
    all: Vec<Arc<Bound>>,
    /// Group, then resource; shared by every write of it.
    by_resource: HashMap<String, HashMap<String, Arc<OnResource>>>,
}

impl Bounds {
    /// Indexes `all`.
    pub fn new(all: Vec<Arc<Bound>>) -> Self {
        let mut grouped: HashMap<String, HashMap<String, Vec<Arc<Bound>>>> = HashMap::new();
        for bound in &all {
            let resources = grouped.entry(bound.group.clone()).or_default();
            resources.entry(bound.resource.clone()).or_default().push(Arc::clone(bound));
        }
        let by_resource = grouped
            .into_iter()
            .map(|(group, resources)| {
                (group, resources.into_iter().map(|(r, b)| (r, Arc::new(OnResource::new(b)))).collect())
            })
            .collect();
        Bounds { all, by_resource }
    }

    /// Every bound, in config order.
    pub fn all(&self) -> &[Arc<Bound>] {
        &self.all
    }

    /// The bounds on writes of `group`/`resource`.
    pub fn on(&self, group: &str, resource: &str) -> Option<Arc<OnResource>> {
        self.by_resource.get(group)?.get(resource).cloned()
    }
}

/// What each value a bound's path selects must be.
#[derive(Debug, Clone)]
pub enum Constraint {
    /// A number within the range (either end open).
    Range { min: Option<f64>, max: Option<f64> },
    /// One of these values.
    OneOf(Vec<Value>),
    /// A string the pattern (anchored at both ends) matches.
    Pattern { text: String, regex: Regex },
    /// Nothing (or `null`).
    Absent,
    /// What the stored object holds there.
    Immutable,
}

/// A field a write would store against a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where the value at fault is; [`field_path`] names it as Kubernetes names fields.
    pub location: Location,
    /// Why it breaks the bound (`must be a number between 2 and 10`), in the bound's own words.
    why: String,
}

impl Violation {
    /// The field as Kubernetes names fields (`spec.containers[0].image`).
    pub fn field(&self) -> String {
        field_path(&self.location)
    }
}

/// How a refusal words a violation for the caller: the value at fault is read where the caller
/// would read it, and the bound's own words (its constraint, its reason) pass through `prose`.
pub struct Wording<'a> {
    /// The object the write would store as the caller sees it (namespaces in the view's names,
    /// read masks applied); a value the result holds and this does not is hidden.
    pub object: &'a Value,
    /// The bound's words as the caller may read them; `None`: they are withheld.
    pub prose: &'a dyn Fn(&str) -> Option<String>,
}

/// What a refusal quotes for a value the caller cannot read.
pub const HIDDEN_VALUE: &str = "<hidden>";

impl Bound {
    /// Compiles `raw`, declared at `at`; a bound on pods comes with one per pod template (see
    /// [`POD_TEMPLATES`]), which names the same config path.
    pub fn compile(raw: &RawBound, at: &str) -> Result<Vec<Self>, TreeError> {
        let err = |field: &str, message: String| TreeError { at: format!("{at}.{field}"), message };
        let (resource, group) = raw.resource.split_once('.').unwrap_or((raw.resource.as_str(), ""));
        if resource.is_empty()
            || resource.contains('/')
            || resource.contains('*')
            || resource != resource.to_ascii_lowercase()
        {
            return Err(err(
                "resource",
                format!("{:?} is not a resource; write `pods` or `deployments.apps`", raw.resource),
            ));
        }
        if group.is_empty() && resource == "namespaces" {
            return Err(err(
                "resource",
                "namespaces are the tree's; their labels are bounded by allow.namespaces".into(),
            ));
        }
        let path = MaskPath::compile(&raw.path).map_err(|e| err("path", e.to_string()))?;
        for (i, name) in raw.names.iter().enumerate() {
            if name.trim_end_matches('*').contains('*') || name.is_empty() {
                return Err(err(&format!("names[{i}]"), format!("{name:?} is not a name or a prefix ending in '*'")));
            }
        }
        let mut constraints = Vec::new();
        if raw.min.is_some() || raw.max.is_some() {
            if let (Some(min), Some(max)) = (raw.min, raw.max)
                && min > max
            {
                return Err(err("min", format!("min {min} is above max {max}")));
            }
            constraints.push(("min", Constraint::Range { min: raw.min, max: raw.max }));
        }
        if let Some(values) = &raw.one_of {
            if values.is_empty() {
                return Err(err("enum", "must list at least one value".into()));
            }
            constraints.push(("enum", Constraint::OneOf(values.clone())));
        }
        if let Some(text) = &raw.regex {
            let regex = Regex::new(&format!("^(?:{text})$")).map_err(|e| err("regex", e.to_string()))?;
            constraints.push(("regex", Constraint::Pattern { text: text.clone(), regex }));
        }
        if raw.absent {
            constraints.push(("absent", Constraint::Absent));
        }
        if raw.immutable {
            constraints.push(("immutable", Constraint::Immutable));
        }
        let constraint = match constraints.len() {
            1 => constraints.remove(0).1,
            0 => return Err(err("path", "a bound needs one of min/max, enum, regex, absent, immutable".into())),
            _ => {
                let named: Vec<&str> = constraints.iter().map(|(name, _)| *name).collect();
                return Err(err(named[1], format!("one constraint per bound, not {}", named.join(" and "))));
            }
        };
        let bound = Bound {
            at: at.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            names: raw.names.clone(),
            path,
            constraint,
            reason: raw.reason.clone(),
        };
        let mut all = bound.on_pod_templates();
        all.push(bound);
        Ok(all)
    }

    /// For a bound on pods, the same bound on every pod template: a controller creates the pods a
    /// template describes, and refusing them there would leave a workload that never runs.
    /// Its names then select the workload.
    fn on_pod_templates(&self) -> Vec<Bound> {
        if !(self.group.is_empty() && self.resource == "pods") {
            return Vec::new();
        }
        POD_TEMPLATES
            .iter()
            .filter_map(|(group, resource, prefix)| {
                Some(Bound {
                    group: (*group).to_owned(),
                    resource: (*resource).to_owned(),
                    path: self.path.under(prefix)?,
                    ..self.clone()
                })
            })
            .collect()
    }

    /// Whether the bound holds for the object named `name`.
    pub fn names(&self, name: &str) -> bool {
        self.names.is_empty()
            || self.names.iter().any(|n| n.strip_suffix('*').map_or(n == name, |prefix| name.starts_with(prefix)))
    }

    /// Where `result` (the object a write would store) breaks this bound alone, whatever object
    /// it names; `stored` is the object before the write (`None`: the write creates it). The
    /// reading [`OnResource::violations`] is held to.
    #[cfg(test)]
    pub(crate) fn violations(&self, result: &Value, stored: Option<&Value>) -> Vec<Violation> {
        if let Constraint::Immutable = self.constraint {
            return stored.and_then(|stored| changed(&self.path, result, stored)).into_iter().collect();
        }
        let mut out = Vec::new();
        self.path.walk(result, &mut |trail, value| {
            if let Some(why) = self.breaks(value) {
                out.push(Violation { location: path::to_location(trail), why });
            }
        });
        out
    }

    /// Why `value` breaks a constraint on single values.
    fn breaks(&self, value: &Value) -> Option<String> {
        match &self.constraint {
            Constraint::Range { min, max } => {
                let inside = value.as_f64().is_some_and(|n| min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m));
                (!inside).then(|| match (min, max) {
                    (Some(min), Some(max)) => format!("must be a number between {min} and {max}"),
                    (Some(min), None) => format!("must be a number at least {min}"),
                    (None, Some(max)) => format!("must be a number at most {max}"),
                    (None, None) => "must be a number".to_owned(),
                })
            }
            Constraint::OneOf(values) => {
                let same = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
                    (Some(x), Some(y)) => x == y,
                    _ => a == b,
                };
                (!values.iter().any(|v| same(v, value))).then(|| {
                    let listed: Vec<String> = values.iter().map(show).collect();
                    format!("must be one of {}", listed.join(", "))
                })
            }
            Constraint::Pattern { text, regex } => (!value.as_str().is_some_and(|s| regex.is_match(s)))
                .then(|| format!("must be a string matching {text:?}")),
            Constraint::Absent => (!value.is_null()).then(|| "must not be set".to_owned()),
            Constraint::Immutable => None,
        }
    }

    /// `violation` of `result` as the apiserver words a field error (`Invalid value: 11: must
    /// be at most 10 (bound tree.nodes[1].bounds[3]: capacity)`), in `wording`: the value as the
    /// caller reads it, never as stored, and the bound's words as the caller may read them.
    pub fn message(&self, violation: &Violation, result: &Value, wording: &Wording) -> String {
        let shown = match path::get(result, &violation.location) {
            None => "null".to_owned(),
            Some(_) => path::get(wording.object, &violation.location).map_or_else(|| HIDDEN_VALUE.to_owned(), show),
        };
        let why = (wording.prose)(&violation.why).unwrap_or_else(|| self.withheld().to_owned());
        let mut message = format!("Invalid value: {shown}: {why} (bound {}", self.at);
        if let Some(reason) = self.reason.as_deref().and_then(wording.prose) {
            let _ = write!(message, ": {reason}");
        }
        message.push(')');
        message
    }

    /// What a refusal says of the constraint when its words are withheld.
    fn withheld(&self) -> &'static str {
        match self.constraint {
            Constraint::OneOf(_) => "must be one of the values the bound allows",
            Constraint::Pattern { .. } => "must be a string matching the bound's pattern",
            _ => "must meet the bound",
        }
    }

    /// The bound in a line: `spec.replicas: between 2 and 10 (queueworker)`.
    pub fn describe(&self) -> String {
        let what = match &self.constraint {
            Constraint::Range { min: Some(min), max: Some(max) } => format!("between {min} and {max}"),
            Constraint::Range { min: Some(min), .. } => format!("at least {min}"),
            Constraint::Range { max: Some(max), .. } => format!("at most {max}"),
            Constraint::Range { .. } => "a number".to_owned(),
            Constraint::OneOf(values) => {
                format!("one of {}", values.iter().map(show).collect::<Vec<_>>().join(", "))
            }
            Constraint::Pattern { text, .. } => format!("matching {text:?}"),
            Constraint::Absent => "absent".to_owned(),
            Constraint::Immutable => "immutable".to_owned(),
        };
        let mut line = format!("{}: {what}", self.path.field());
        if !self.names.is_empty() {
            let _ = write!(line, " (only {})", self.names.join(", "));
        }
        line
    }
}

/// Where `result` changes what `path` selects in `stored`, for an immutable bound. Builds every
/// location: [`OnResource`] calls it only on a change (or for paths it cannot look up directly).
fn changed(path: &MaskPath, result: &Value, stored: &Value) -> Option<Violation> {
    let located = |doc: &Value| -> Vec<(Location, Option<Value>)> {
        let mut found = Vec::new();
        path.walk(doc, &mut |trail, value| found.push((path::to_location(trail), Some(value.clone()))));
        found
    };
    let (before_values, after_values) = (located(stored), located(result));
    if before_values == after_values {
        return None;
    }
    let location = after_values
        .iter()
        .find(|entry| !before_values.contains(entry))
        .or_else(|| before_values.iter().find(|entry| !after_values.contains(entry)))
        .map(|(location, _)| location.clone())
        .unwrap_or_default();
    Some(Violation { location, why: "field is immutable".to_owned() })
}

/// A value as a field error shows it: JSON, cut short.
fn show(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `location` as Kubernetes names fields: `spec.containers[0].image`.
pub fn field_path(location: &[Step]) -> String {
    let mut out = String::new();
    for step in location {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compile(yaml: &str) -> Result<Vec<Bound>, TreeError> {
        let raw: RawBound = serde_saphyr::from_str(yaml).unwrap();
        Bound::compile(&raw, "tree.nodes[1].bounds[2]")
    }

    fn bound(yaml: &str) -> Bound {
        compile(yaml).unwrap().pop().unwrap()
    }

    fn fields(bound: &Bound, result: Value, stored: Option<Value>) -> Vec<String> {
        bound.violations(&result, stored.as_ref()).into_iter().map(|v| v.field()).collect()
    }

    /// The messages of `bound` on `result`, worded as stored.
    fn messages(bound: &Bound, result: &Value) -> Vec<String> {
        let wording = Wording { object: result, prose: &|text: &str| Some(text.to_owned()) };
        bound.violations(result, None).iter().map(|v| bound.message(v, result, &wording)).collect()
    }

    #[test]
    fn a_range_holds_numbers_within_it() {
        let b = bound(
            "{resource: deployments.apps, names: [queue*], path: $.spec.replicas, min: 2, max: 10, reason: capacity}",
        );
        assert!(fields(&b, json!({"spec": {"replicas": 2}}), None).is_empty());
        assert!(fields(&b, json!({"spec": {}}), None).is_empty(), "nothing selected, nothing to bound");
        assert_eq!(fields(&b, json!({"spec": {"replicas": 11}}), None), ["spec.replicas"]);
        assert_eq!(
            messages(&b, &json!({"spec": {"replicas": 11}})),
            ["Invalid value: 11: must be a number between 2 and 10 (bound tree.nodes[1].bounds[2]: capacity)"]
        );
        assert_eq!(fields(&b, json!({"spec": {"replicas": "3"}}), None), ["spec.replicas"]);
        assert!(b.names("queueworker") && !b.names("web"));
        assert_eq!(b.describe(), "spec.replicas: between 2 and 10 (only queue*)");
    }

    #[test]
    fn enums_regexes_and_absence_judge_every_selected_value() {
        let b = bound("{resource: pods, path: '$.spec.containers[*].image', regex: 'images\\.acme\\.internal/.+'}");
        let pod = json!({"spec": {"containers": [{"image": "images.acme.internal/web"}, {"image": "evil.io/images.acme.internal/x"}]}});
        assert_eq!(fields(&b, pod, None), ["spec.containers[1].image"]);
        let b = bound("{resource: services, path: $.spec.type, enum: [ClusterIP, NodePort]}");
        assert!(fields(&b, json!({"spec": {"type": "NodePort"}}), None).is_empty());
        assert_eq!(fields(&b, json!({"spec": {"type": "LoadBalancer"}}), None), ["spec.type"]);
        let b = bound("{resource: services, path: $.spec.externalIPs, absent: true}");
        assert!(fields(&b, json!({"spec": {"externalIPs": null}}), None).is_empty());
        assert_eq!(fields(&b, json!({"spec": {"externalIPs": ["1.2.3.4"]}}), None), ["spec.externalIPs"]);
        let b = bound("{resource: services, path: '$.spec.ports[*].port', enum: [80, 443]}");
        assert!(fields(&b, json!({"spec": {"ports": [{"port": 443.0}]}}), None).is_empty());
    }

    #[test]
    fn immutable_values_may_be_set_at_create_and_never_changed() {
        let b = bound("{resource: configmaps, path: $.data.owner, immutable: true}");
        assert!(fields(&b, json!({"data": {"owner": "a"}}), None).is_empty());
        let stored = json!({"data": {"owner": "a"}});
        assert!(fields(&b, json!({"data": {"owner": "a", "x": "1"}}), Some(stored.clone())).is_empty());
        assert_eq!(fields(&b, json!({"data": {"owner": "b"}}), Some(stored.clone())), ["data.owner"]);
        assert_eq!(fields(&b, json!({"data": {}}), Some(stored)), ["data.owner"], "removing changes it too");
        assert_eq!(fields(&b, json!({"data": {"owner": "b"}}), Some(json!({"data": {}}))), ["data.owner"]);
    }

    #[test]
    fn a_message_quotes_the_value_as_the_caller_reads_it_and_the_bounds_words_through_prose() {
        let b = bound(
            "{resource: rolebindings.rbac.authorization.k8s.io, path: '$.subjects[*].namespace', enum: [acme-dev], reason: acme-dev only}",
        );
        let stored = json!({"subjects": [{"namespace": "acme-prod"}], "spec": {"nodeName": "n1"}});
        let seen = json!({"subjects": [{"namespace": "prod"}]});
        let prose = |text: &str| Some(text.replace("acme-", ""));
        let wording = Wording { object: &seen, prose: &prose };
        let found = b.violations(&stored, None);
        assert_eq!(found[0].field(), "subjects[0].namespace");
        assert_eq!(
            b.message(&found[0], &stored, &wording),
            r#"Invalid value: "prod": must be one of "dev" (bound tree.nodes[1].bounds[2]: dev only)"#
        );
        // Withheld words: the constraint in general terms, no reason; a value the caller cannot
        // read is hidden.
        let withheld = Wording { object: &json!({}), prose: &|_: &str| None };
        assert_eq!(
            b.message(&found[0], &stored, &withheld),
            "Invalid value: <hidden>: must be one of the values the bound allows (bound tree.nodes[1].bounds[2])"
        );
        let b = bound("{resource: pods, path: $.spec.nodeName, regex: 'n[0-9]+-acme-.*'}");
        let found = b.violations(&stored, None);
        assert_eq!(
            b.message(&found[0], &stored, &withheld),
            "Invalid value: <hidden>: must be a string matching the bound's pattern (bound tree.nodes[1].bounds[2])"
        );
    }

    #[test]
    fn a_pod_bound_holds_on_every_pod_template() {
        let all = compile("{resource: pods, path: $.spec.hostNetwork, absent: true}").unwrap();
        assert_eq!(all.len(), POD_TEMPLATES.len() + 1);
        let cronjobs = all.iter().find(|b| (b.group.as_str(), b.resource.as_str()) == ("batch", "cronjobs")).unwrap();
        let job = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"hostNetwork": true}}}}}});
        assert_eq!(fields(cronjobs, job, None), ["spec.jobTemplate.spec.template.spec.hostNetwork"]);
        assert_eq!(cronjobs.at, "tree.nodes[1].bounds[2]");
        assert!(compile("{resource: services, path: $.spec.externalIPs, absent: true}").unwrap().len() == 1);
    }

    #[test]
    fn a_write_meets_the_bounds_on_its_resource_in_config_order() {
        let mut all: Vec<Arc<Bound>> = Vec::new();
        for yaml in [
            "{resource: deployments.apps, path: $.a, absent: true}",
            "{resource: pods, path: $.b, absent: true}",
            "{resource: deployments.apps, path: $.c, absent: true}",
        ] {
            all.extend(compile(yaml).unwrap().into_iter().map(Arc::new));
        }
        let bounds = Bounds::new(all);
        let paths = |group, resource| -> Vec<String> {
            bounds.on(group, resource).unwrap().all().iter().map(|b| b.path.text.clone()).collect()
        };
        assert_eq!(paths("apps", "deployments"), ["$.a", "$.spec.template.b", "$.c"]);
        assert_eq!(paths("", "pods"), ["$.b"]);
        assert!(bounds.on("", "services").is_none() && bounds.on("apps", "statefulsets").is_some());
        assert_eq!(bounds.all().len(), 3 + POD_TEMPLATES.len());
    }

    #[test]
    fn bad_bounds_are_refused_at_load_with_their_paths() {
        let at = |yaml: &str| compile(yaml).unwrap_err().at;
        assert_eq!(at("{resource: pods, path: '$.spec[', absent: true}"), "tree.nodes[1].bounds[2].path");
        assert_eq!(at("{resource: pods, path: $.a, regex: '(['}"), "tree.nodes[1].bounds[2].regex");
        assert_eq!(at("{resource: pods, path: $.a, min: 3, max: 2}"), "tree.nodes[1].bounds[2].min");
        assert_eq!(at("{resource: Pods, path: $.a, absent: true}"), "tree.nodes[1].bounds[2].resource");
        assert_eq!(at("{resource: pods/status, path: $.a, absent: true}"), "tree.nodes[1].bounds[2].resource");
        assert_eq!(at("{resource: pods, path: $.a}"), "tree.nodes[1].bounds[2].path");
        assert_eq!(
            at("{resource: pods, path: $.a, absent: true, immutable: true}"),
            "tree.nodes[1].bounds[2].immutable"
        );
        assert_eq!(at("{resource: pods, path: $.a, enum: []}"), "tree.nodes[1].bounds[2].enum");
        assert_eq!(at("{resource: pods, names: ['a*b'], path: $.a, absent: true}"), "tree.nodes[1].bounds[2].names[0]");
    }
}
