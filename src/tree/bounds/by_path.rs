//! The bounds on one resource grouped by the path they check: a write's object is walked once
//! per distinct path (and the stored object once more for immutable bounds) however many bounds
//! share it, and the patterns on a path are matched against each value in one pass (a
//! [`RegexSet`] built at load). Immutable bounds on member paths are grouped by the parent they
//! share (`$.metadata.labels['a']`, `['b']`): the parent is looked up once in each object and,
//! when equal in both, holds every bound below it at once. The violations come out as judging
//! each bound alone gives them ([`Bound::violations`]): in config order, each bound's in the
//! order its path selects values.

use std::collections::HashMap;
use std::sync::Arc;

use regex::RegexSet;
use serde_json::Value;

use super::{Bound, Constraint, Violation, changed};
use crate::mask::MaskPath;
use crate::mask::path;

/// The bounds on one resource, in config order and grouped by path.
#[derive(Debug)]
pub struct OnResource {
    all: Vec<Arc<Bound>>,
    groups: Vec<PathGroup>,
    parents: Vec<Parent>,
    immutable: bool,
}

/// Immutable bounds on member paths under one parent (`$.metadata.labels`).
#[derive(Debug)]
struct Parent {
    /// The member names leading to it; none: the object itself.
    names: Vec<String>,
    children: Vec<Child>,
}

/// The immutable bounds on one member of a [`Parent`], by their index in config order.
#[derive(Debug)]
struct Child {
    key: String,
    /// The first bound's path, which locates a change.
    path: MaskPath,
    bounds: Vec<usize>,
}

/// The bounds checking one path, by their index in config order.
#[derive(Debug)]
struct PathGroup {
    path: MaskPath,
    /// Ranges, enums and absences: judged value by value.
    values: Vec<usize>,
    patterns: Vec<usize>,
    /// `patterns`' regexes in their order; `None` if too large for one set, so each is matched
    /// on its own.
    set: Option<RegexSet>,
    immutable: Vec<usize>,
}

impl OnResource {
    /// Groups `all`, in config order.
    pub fn new(all: Vec<Arc<Bound>>) -> Self {
        let mut groups: Vec<PathGroup> = Vec::new();
        let mut by_text: HashMap<&str, usize> = HashMap::new();
        let mut parents: Vec<Parent> = Vec::new();
        let mut by_parent: HashMap<&[&str], usize> = HashMap::new();
        let fixed: Vec<Option<Vec<&str>>> = all.iter().map(|bound| bound.path.fixed_names()).collect();
        for (i, bound) in all.iter().enumerate() {
            if let (Constraint::Immutable, Some((key, names))) =
                (&bound.constraint, fixed[i].as_ref().and_then(|names| names.split_last()))
            {
                let at = *by_parent.entry(names).or_insert_with(|| {
                    parents.push(Parent { names: names.iter().map(|&n| n.to_owned()).collect(), children: vec![] });
                    parents.len() - 1
                });
                let children = &mut parents[at].children;
                match children.iter_mut().find(|child| child.key == *key) {
                    Some(child) => child.bounds.push(i),
                    None => children.push(Child { key: (*key).to_owned(), path: bound.path.clone(), bounds: vec![i] }),
                }
                continue;
            }
            let at = *by_text.entry(&bound.path.text).or_insert_with(|| {
                let path = bound.path.clone();
                groups.push(PathGroup { path, values: vec![], patterns: vec![], set: None, immutable: vec![] });
                groups.len() - 1
            });
            let group = &mut groups[at];
            match bound.constraint {
                Constraint::Pattern { .. } => group.patterns.push(i),
                Constraint::Immutable => group.immutable.push(i),
                _ => group.values.push(i),
            }
        }
        for group in &mut groups {
            let regexes = group.patterns.iter().filter_map(|&i| match &all[i].constraint {
                Constraint::Pattern { regex, .. } => Some(regex.as_str()),
                _ => None,
            });
            group.set = RegexSet::new(regexes).ok();
        }
        let immutable = all.iter().any(|bound| matches!(bound.constraint, Constraint::Immutable));
        OnResource { all, groups, parents, immutable }
    }

    /// Every bound, in config order.
    pub fn all(&self) -> &[Arc<Bound>] {
        &self.all
    }

    /// Whether some bound is immutable: a write then needs the stored object.
    pub fn immutable(&self) -> bool {
        self.immutable
    }

    /// Where `result` (the object a write would store) breaks the bounds that hold for its name,
    /// in config order; `stored` is the object before the write (`None`: the write creates it).
    /// Judged on the values as stored, so a bound means the same whichever view a write comes
    /// through.
    pub fn violations(&self, result: &Value, stored: Option<&Value>) -> Vec<(&Bound, Violation)> {
        let name = result.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        let holds = |i: &usize| self.all[*i].names(name);
        let mut found = Vec::new();
        for group in &self.groups {
            group.judge(&self.all, &holds, result, stored, &mut found);
        }
        if let Some(stored) = stored {
            for parent in &self.parents {
                parent.judge(&holds, result, stored, &mut found);
            }
        }
        // Stable: each bound's violations stay in the order its path selects the values.
        found.sort_by_key(|(i, _)| *i);
        found.into_iter().map(|(i, violation)| (&*self.all[i], violation)).collect()
    }
}

impl Parent {
    /// The parent in `doc`, if there.
    fn in_doc<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.names.iter().try_fold(doc, |value, name| value.get(name))
    }

    /// Adds to `found` the violations of the bounds below the parent that `holds`, by bound
    /// index.
    fn judge(
        &self,
        holds: &impl Fn(&usize) -> bool,
        result: &Value,
        stored: &Value,
        found: &mut Vec<(usize, Violation)>,
    ) {
        let held = |child: &Child| child.bounds.iter().any(holds);
        if !self.children.iter().any(held) {
            return;
        }
        let (before, after) = (self.in_doc(stored), self.in_doc(result));
        // One comparison for every child, where it may pay: a whole object nearly always changes
        // in a write (its resourceVersion), a parent such as the labels seldom does.
        if self.children.len() > 1 && !self.names.is_empty() && before == after {
            return;
        }
        for child in &self.children {
            if held(child)
                && before.and_then(|value| value.get(&child.key)) != after.and_then(|value| value.get(&child.key))
                && let Some(violation) = changed(&child.path, result, stored)
            {
                found.extend(child.bounds.iter().filter(|i| holds(i)).map(|&i| (i, violation.clone())));
            }
        }
    }
}

impl PathGroup {
    /// Adds to `found` the violations of the group's bounds that `holds`, by bound index.
    fn judge(
        &self,
        all: &[Arc<Bound>],
        holds: &impl Fn(&usize) -> bool,
        result: &Value,
        stored: Option<&Value>,
        found: &mut Vec<(usize, Violation)>,
    ) {
        if let Some(stored) = stored
            && self.immutable.iter().any(holds)
            && let Some(violation) = changed(&self.path, result, stored)
        {
            found.extend(self.immutable.iter().filter(|i| holds(i)).map(|&i| (i, violation.clone())));
        }
        let patterns = self.patterns.iter().any(holds);
        if !patterns && !self.values.iter().any(holds) {
            return;
        }
        self.path.walk(result, &mut |trail, value| {
            let mut judge = |i: usize| {
                if holds(&i)
                    && let Some(why) = all[i].breaks(value)
                {
                    found.push((i, Violation { location: path::to_location(trail), why }));
                }
            };
            self.values.iter().for_each(|&i| judge(i));
            if patterns {
                let matched = value.as_str().zip(self.set.as_ref()).map(|(text, set)| set.matches(text));
                for (k, &i) in self.patterns.iter().enumerate() {
                    // A pattern the set did not match is judged alone, for its message.
                    if !matched.as_ref().is_some_and(|matched| matched.matched(k)) {
                        judge(i);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::raw_tree::RawBound;

    /// The bounds on Deployments among `yamls`, with the pod bounds' template copies.
    fn deployment_bounds(yamls: &[&str]) -> Vec<Arc<Bound>> {
        yamls
            .iter()
            .enumerate()
            .flat_map(|(i, yaml)| {
                let raw: RawBound = serde_saphyr::from_str(yaml).unwrap();
                Bound::compile(&raw, &format!("tree.nodes[0].bounds[{i}]")).unwrap()
            })
            .filter(|bound| (bound.group.as_str(), bound.resource.as_str()) == ("apps", "deployments"))
            .map(Arc::new)
            .collect()
    }

    /// Each bound judged alone, in config order: what grouping must not change.
    fn one_by_one<'a>(all: &'a [Arc<Bound>], result: &Value, stored: Option<&Value>) -> Vec<(&'a Bound, Violation)> {
        let name = result.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
        all.iter()
            .filter(|bound| bound.names(name))
            .flat_map(|bound| bound.violations(result, stored).into_iter().map(move |v| (&**bound, v)))
            .collect()
    }

    fn deployment(name: &str, replicas: Value, images: &[Value], team: &str) -> Value {
        let containers: Vec<Value> =
            images.iter().enumerate().map(|(i, image)| json!({"name": format!("c{i}"), "image": image})).collect();
        json!({"metadata": {"name": name, "labels": {"team": team}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn bounds_judged_by_path_give_what_each_bound_alone_gives_in_config_order() {
        let all = deployment_bounds(&[
            "{resource: deployments.apps, path: $.spec.replicas, min: 2, max: 10}",
            "{resource: deployments.apps, path: '$.spec.template.spec.containers[*].image', regex: 'images\\.acme\\.internal/.+'}",
            "{resource: deployments.apps, path: $.metadata.labels.team, immutable: true}",
            "{resource: pods, path: $.spec.hostNetwork, absent: true}",
            "{resource: deployments.apps, names: [web], path: $.spec.replicas, enum: [3, 5]}",
            "{resource: deployments.apps, path: '$.spec.template.spec.containers[*].image', regex: '.+:[0-9.]+'}",
            "{resource: deployments.apps, names: [other*], path: '$.spec.template.spec.containers[*].image', regex: '.*envoy.*'}",
            "{resource: deployments.apps, names: [web], path: $.metadata.labels.team, immutable: true}",
            "{resource: deployments.apps, path: \"$.spec.template.spec.containers[?@.name == 'c0'].image\", regex: 'images\\..*'}",
            "{resource: pods, path: '$.spec.containers[*].image', regex: '[a-z.]+/.+'}",
            "{resource: deployments.apps, path: $.spec.replicas, max: 4}",
        ]);
        let on = OnResource::new(all.clone());
        assert_eq!(on.groups.len(), 4, "replicas, images, hostNetwork, the filtered image");
        assert_eq!(on.parents.len(), 1, "the labels, holding the team");
        let good = || [json!("images.acme.internal/web:1.4"), json!("images.acme.internal/envoy:1.30")];
        let bad = [json!("evil.io/x:latest"), json!(5), json!("images.acme.internal/envoy:1.30")];
        let stored = deployment("web", json!(3), &good(), "a");
        let mut host = deployment("web", json!(3), &good(), "a");
        host["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
        let cases = [
            (deployment("web", json!(3), &good(), "a"), Some(&stored)),
            (deployment("web", json!(11), &bad, "b"), Some(&stored)),
            (deployment("web", json!(11), &bad, "b"), None),
            (deployment("other-1", json!("3"), &bad, "b"), Some(&stored)),
            (deployment("kept", json!(4), &good(), "a"), Some(&deployment("kept", json!(4), &good(), "b"))),
            (host, None),
        ];
        for (result, stored) in &cases {
            let key = |found: Vec<(&Bound, Violation)>| -> Vec<(*const Bound, Violation)> {
                found.into_iter().map(|(bound, v)| (std::ptr::from_ref(bound), v)).collect()
            };
            assert_eq!(key(on.violations(result, *stored)), key(one_by_one(&all, result, *stored)), "{result}");
        }
        // The refusal's order: config order first, then the order the path selects values.
        let found = on.violations(&cases[1].0, cases[1].1);
        let order: Vec<(&str, String)> = found.iter().map(|(bound, v)| (bound.at.as_str(), v.field())).collect();
        let image = |i: usize| format!("spec.template.spec.containers[{i}].image");
        assert_eq!(
            order,
            [
                ("tree.nodes[0].bounds[0]", "spec.replicas".to_owned()),
                ("tree.nodes[0].bounds[1]", image(0)),
                ("tree.nodes[0].bounds[1]", image(1)),
                ("tree.nodes[0].bounds[2]", "metadata.labels.team".to_owned()),
                ("tree.nodes[0].bounds[4]", "spec.replicas".to_owned()),
                ("tree.nodes[0].bounds[5]", image(0)),
                ("tree.nodes[0].bounds[5]", image(1)),
                ("tree.nodes[0].bounds[7]", "metadata.labels.team".to_owned()),
                ("tree.nodes[0].bounds[8]", image(0)),
                ("tree.nodes[0].bounds[9]", image(1)),
                ("tree.nodes[0].bounds[10]", "spec.replicas".to_owned()),
            ]
        );
        assert!(on.immutable());
    }

    #[test]
    fn immutable_bounds_under_a_shared_parent_give_what_each_bound_alone_gives() {
        let all = deployment_bounds(&[
            "{resource: deployments.apps, path: $.metadata.labels.a, immutable: true}",
            "{resource: deployments.apps, path: \"$.metadata.labels['b']\", immutable: true}",
            "{resource: deployments.apps, names: [other], path: $.metadata.labels.c, immutable: true}",
            "{resource: deployments.apps, path: \"$['metadata']['labels']['a']\", immutable: true}",
            "{resource: deployments.apps, path: $.metadata.labels.a, regex: '[0-9]'}",
            "{resource: deployments.apps, path: '$.metadata.labels.*', immutable: true}",
            "{resource: deployments.apps, path: $.spec.replicas, immutable: true}",
            "{resource: deployments.apps, path: $.kind, immutable: true}",
            "{resource: deployments.apps, path: $.apiVersion, immutable: true}",
            "{resource: pods, path: $.spec.nodeName, immutable: true}",
            "{resource: deployments.apps, path: $.metadata.labels.b, immutable: true}",
        ]);
        let on = OnResource::new(all.clone());
        assert_eq!(on.parents.len(), 4, "the labels, the spec, the object, the template's spec");
        assert_eq!(on.parents[0].children.len(), 3, "a, b and c, whichever way their paths are written");
        let object = |name: &str, labels: Value| {
            json!({"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": name, "labels": labels},
                   "spec": {"replicas": 2, "template": {"spec": {"nodeName": "n1"}}}})
        };
        let stored = object("web", json!({"a": "1", "b": "2", "c": "3"}));
        let mut objects = vec![
            stored.clone(),
            object("web", json!({"a": "1", "b": "x", "c": "3"})),
            object("web", json!({"a": "1", "b": "2", "c": "3", "d": "4"})),
            object("web", json!({"a": "1", "c": "x"})),
            object("other", json!({"a": "1", "c": "x"})),
            object("web", json!({"b": "2", "a": "y", "c": "3"})),
            object("web", json!({})),
            object("web", Value::Null),
            object("web", json!("a")),
            object("web", json!(["1", "2", "3"])),
            json!({"metadata": {"name": "web"}}),
            json!({"kind": "Deployment", "apiVersion": "apps/v2", "metadata": {"name": "web", "labels": {"a": "1"}}}),
        ];
        let mut changed = stored.clone();
        changed["spec"]["template"]["spec"]["nodeName"] = json!("n2");
        changed["spec"]["replicas"] = json!(3.0);
        objects.push(changed);
        let key = |found: Vec<(&Bound, Violation)>| -> Vec<(*const Bound, Violation)> {
            found.into_iter().map(|(bound, v)| (std::ptr::from_ref(bound), v)).collect()
        };
        for result in &objects {
            // Each object against the stored one, the stored one against it, and created.
            for (result, stored) in [(result, Some(&stored)), (&stored, Some(result)), (result, None)] {
                assert_eq!(
                    key(on.violations(result, stored)),
                    key(one_by_one(&all, result, stored)),
                    "{result} over {stored:?}"
                );
            }
        }
        let found = on.violations(&objects[3], Some(&stored));
        let order: Vec<(&str, String)> = found.iter().map(|(bound, v)| (bound.at.as_str(), v.field())).collect();
        assert_eq!(
            order,
            [
                ("tree.nodes[0].bounds[1]", "metadata.labels.b".to_owned()),
                ("tree.nodes[0].bounds[5]", "metadata.labels.c".to_owned()),
                ("tree.nodes[0].bounds[10]", "metadata.labels.b".to_owned()),
            ]
        );
    }
}
