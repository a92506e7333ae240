//! One mask path: a JSONPath compiled once at config load, and the concrete locations it selects
//! in a document. Paths made of member names, name lists, wildcards and indices
//! (`$.spec.nodeName`, `$.spec.containers[*].image`: by far the common case) are walked
//! directly, without allocating; any other path (slices, filters, descendants) is evaluated by
//! jsonpath-rust, whose normalized result paths (RFC 9535: `$['spec']['containers'][0]`) are
//! parsed back into steps. Both give the same locations (a test holds the walk to
//! jsonpath-rust's); the walk only avoids building and parsing path strings per object.

use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use serde_json::Value;

/// A step into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A concrete location: the steps from the document root.
pub type Location = Vec<Step>;

/// A step into a JSON document, borrowed from the path or the document: what a walk passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepRef<'a> {
    Key(&'a str),
    Index(usize),
}

/// `trail` as an owned location.
pub fn to_location(trail: &[StepRef]) -> Location {
    trail
        .iter()
        .map(|step| match step {
            StepRef::Key(key) => Step::Key((*key).to_owned()),
            StepRef::Index(i) => Step::Index(*i),
        })
        .collect()
}

/// One segment of a path walked directly.
#[derive(Debug, Clone)]
enum Pick {
    /// Members by name (`.a`, `['a','b']`), in this order.
    Names(Vec<String>),
    /// Every member or element (`[*]`).
    Wildcard,
    /// One element, from the end when negative (`[0]`, `[-1]`).
    Index(i64),
}

/// A compiled mask path.
#[derive(Debug, Clone)]
pub struct MaskPath {
    /// As written in the config, for messages.
    pub text: String,
    query: JpQuery,
    /// The segments, when the path is walked directly.
    picks: Option<Vec<Pick>>,
}

/// Paths are compiled from their text, so the text decides equality.
impl PartialEq for MaskPath {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Why a mask path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0:?} is not a JSONPath: {1}")]
    Syntax(String, String),
    #[error("{0:?} selects the whole object; mask its fields instead")]
    Root(String),
}

impl MaskPath {
    pub fn compile(text: &str) -> Result<Self, PathError> {
        let query = parse_json_path(text).map_err(|e| PathError::Syntax(text.to_owned(), e.to_string()))?;
        if query.segments.is_empty() {
            return Err(PathError::Root(text.to_owned()));
        }
        let pick = |selector: &Selector| match selector {
            Selector::Name(name) => Some(Pick::Names(vec![name.clone()])),
            Selector::Wildcard => Some(Pick::Wildcard),
            Selector::Index(i) => Some(Pick::Index(*i)),
            _ => None,
        };
        let picks = query
            .segments
            .iter()
            .map(|segment| match segment {
                Segment::Selector(selector) => pick(selector),
                Segment::Selectors(selectors) => selectors
                    .iter()
                    .map(|selector| match selector {
                        Selector::Name(name) => Some(name.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<String>>>()
                    .map(Pick::Names),
                Segment::Descendant(_) => None,
            })
            .collect();
        Ok(MaskPath { text: text.to_owned(), query, picks })
    }

    /// Every location in `document` this path selects (none when evaluation fails: a mask never
    /// turns a readable answer into an error).
    pub fn locate(&self, document: &Value) -> Vec<Location> {
        if self.picks.is_none() {
            return self.evaluate(document);
        }
        let mut found = Vec::new();
        self.walk(document, &mut |trail, _| found.push(to_location(trail)));
        found
    }

    /// Calls `f` with each location this path selects in `document` and the value there, in
    /// the order [`MaskPath::locate`] gives them.
    pub fn walk<'a>(&'a self, document: &'a Value, f: &mut dyn FnMut(&[StepRef<'_>], &'a Value)) {
        match &self.picks {
            Some(picks) => descend(picks, document, &mut Vec::new(), f),
            None => {
                for location in self.evaluate(document) {
                    if let Some(value) = get(document, &location) {
                        let trail: Vec<StepRef> = location
                            .iter()
                            .map(|step| match step {
                                Step::Key(key) => StepRef::Key(key),
                                Step::Index(i) => StepRef::Index(*i),
                            })
                            .collect();
                        f(&trail, value);
                    }
                }
            }
        }
    }

    /// For a path of single member names (`$.metadata.labels['team']`), those names; `None` for
    /// any other path.
    pub fn fixed_names(&self) -> Option<Vec<&str>> {
        self.picks
            .as_ref()?
            .iter()
            .map(|pick| match pick {
                Pick::Names(names) if names.len() == 1 => Some(names[0].as_str()),
                _ => None,
            })
            .collect()
    }

    /// The locations jsonpath-rust finds.
    fn evaluate(&self, document: &Value) -> Vec<Location> {
        match js_path_process(&self.query, document) {
            Ok(found) => found.into_iter().filter_map(|r| parse_normalized(&r.path())).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The member names the path starts with (all of them for a names-only path): everything it
    /// selects lies under the value these name, so an answer translated item by item must build
    /// that value whole and may leave the rest as text.
    pub fn leading_names(&self) -> Vec<String> {
        self.query
            .segments
            .iter()
            .map_while(|segment| match segment {
                Segment::Selector(Selector::Name(name)) => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// This path applied below `prefix` (a names-only path such as `$.spec.template`): what it
    /// selects in an object, selected in the object held there. `None` if the result does not
    /// compile, which cannot happen for a compiled path under a names-only prefix.
    pub fn under(&self, prefix: &str) -> Option<MaskPath> {
        let rest = self.text.trim_start().strip_prefix('$')?;
        MaskPath::compile(&format!("{prefix}{rest}")).ok()
    }

    /// The path for messages, without the leading `$.`: `spec.nodeName`.
    pub fn field(&self) -> &str {
        self.text.trim_start_matches('$').trim_start_matches('.')
    }
}

/// Walks `picks` from `value`, whose location is `trail`.
fn descend<'a>(
    picks: &'a [Pick],
    value: &'a Value,
    trail: &mut Vec<StepRef<'a>>,
    f: &mut dyn FnMut(&[StepRef<'_>], &'a Value),
) {
    let Some((pick, rest)) = picks.split_first() else { return f(trail, value) };
    let mut into = |step: StepRef<'a>, next: &'a Value, trail: &mut Vec<StepRef<'a>>| {
        trail.push(step);
        descend(rest, next, trail, f);
        trail.pop();
    };
    match (pick, value) {
        (Pick::Names(names), Value::Object(map)) => {
            for name in names {
                if let Some(next) = map.get(name) {
                    into(StepRef::Key(name), next, trail);
                }
            }
        }
        (Pick::Wildcard, Value::Object(map)) => map.iter().for_each(|(key, next)| into(StepRef::Key(key), next, trail)),
        (Pick::Wildcard, Value::Array(items)) => {
            items.iter().enumerate().for_each(|(i, next)| into(StepRef::Index(i), next, trail))
        }
        (Pick::Index(i), Value::Array(items)) => {
            let index = if *i < 0 { i.checked_add_unsigned(items.len() as u64) } else { Some(*i) };
            if let Some(index) = index.and_then(|i| usize::try_from(i).ok())
                && let Some(next) = items.get(index)
            {
                into(StepRef::Index(index), next, trail);
            }
        }
        _ => {}
    }
}

/// Parses an RFC 9535 normalized path (`$['a'][0]['b\'c']`) into steps.
pub fn parse_normalized(text: &str) -> Option<Location> {
    let mut rest = text.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix('[')?;
        if let Some(quoted) = rest.strip_prefix('\'') {
            let (name, after) = unquote(quoted)?;
            steps.push(Step::Key(name));
            rest = after.strip_prefix(']')?;
        } else {
            let end = rest.find(']')?;
            steps.push(Step::Index(rest[..end].parse().ok()?));
            rest = &rest[end + 1..];
        }
    }
    Some(steps)
}

/// The name up to the closing quote, unescaped, and what follows the quote.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => return Some((name, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'b' => name.push('\u{0008}'),
                'f' => name.push('\u{000C}'),
                'n' => name.push('\n'),
                'r' => name.push('\r'),
                't' => name.push('\t'),
                'u' => {
                    let hex: String = (0..4).filter_map(|_| chars.next().map(|(_, c)| c)).collect();
                    name.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => name.push(other),
            },
            c => name.push(c),
        }
    }
    None
}

/// The value at `location`.
pub fn get<'a>(document: &'a Value, location: &[Step]) -> Option<&'a Value> {
    location.iter().try_fold(document, |current, step| match step {
        Step::Key(key) => current.get(key),
        Step::Index(i) => current.get(i),
    })
}

/// Removes the value at `location`; removes array elements, so callers remove locations in
/// descending order (see [`remove_all`]).
pub fn remove(document: &mut Value, location: &[Step]) -> Option<Value> {
    let (last, parent) = location.split_last()?;
    let parent = parent.iter().try_fold(document, |current, step| match step {
        Step::Key(key) => current.get_mut(key),
        Step::Index(i) => current.get_mut(i),
    })?;
    match (last, parent) {
        (Step::Key(key), Value::Object(map)) => map.remove(key),
        (Step::Index(i), Value::Array(items)) if *i < items.len() => Some(items.remove(*i)),
        _ => None,
    }
}

/// Removes every location; later array elements first, so earlier indices stay valid.
pub fn remove_all(document: &mut Value, mut locations: Vec<Location>) {
    locations.sort_unstable();
    locations.dedup();
    for location in locations.iter().rev() {
        remove(document, location);
    }
}

/// Sets `value` at `location`, creating objects for missing keys on the way; false when an
/// array element on the way is missing or a step does not fit the document's shape.
pub fn set(document: &mut Value, location: &[Step], value: Value) -> bool {
    let Some((last, parent)) = location.split_last() else { return false };
    let mut current = document;
    for step in parent {
        current = match step {
            Step::Key(key) => match current {
                Value::Object(map) => map.entry(key.clone()).or_insert_with(|| Value::Object(Default::default())),
                _ => return false,
            },
            Step::Index(i) => match current.get_mut(i) {
                Some(next) => next,
                None => return false,
            },
        };
    }
    match (last, current) {
        (Step::Key(key), Value::Object(map)) => {
            map.insert(key.clone(), value);
            true
        }
        (Step::Index(i), Value::Array(items)) if *i < items.len() => {
            items[*i] = value;
            true
        }
        _ => false,
    }
}

/// `location` as a JSON pointer (RFC 6901), as JSON patch operations name paths.
pub fn pointer(location: &[Step]) -> String {
    location
        .iter()
        .map(|step| match step {
            Step::Key(key) => format!("/{}", key.replace('~', "~0").replace('/', "~1")),
            Step::Index(i) => format!("/{i}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({"spec": {"nodeName": "n1", "containers": [
            {"name": "a", "env": [{"name": "K", "value": "1"}]},
            {"name": "b's", "env": [{"name": "K", "value": "2"}, {"name": "L", "value": "3"}]}
        ]}})
    }

    #[test]
    fn names_only_paths_are_walked_directly() {
        let path = MaskPath::compile("$.spec.nodeName").unwrap();
        assert!(path.picks.is_some());
        assert_eq!(path.fixed_names(), Some(vec!["spec", "nodeName"]));
        assert_eq!(path.locate(&pod()), vec![vec![Step::Key("spec".into()), Step::Key("nodeName".into())]]);
        assert!(path.locate(&json!({"spec": {}})).is_empty());
        assert_eq!(path.field(), "spec.nodeName");
        assert_eq!(path.leading_names(), ["spec", "nodeName"]);
    }

    #[test]
    fn general_paths_are_evaluated_by_jsonpath() {
        let path = MaskPath::compile("$.spec.containers[*].env[?@.name == 'K'].value").unwrap();
        assert!(path.picks.is_none() && path.fixed_names().is_none());
        assert!(MaskPath::compile("$.spec['a','b']").unwrap().fixed_names().is_none());
        assert!(MaskPath::compile("$.spec[0]").unwrap().fixed_names().is_none());
        let mut doc = pod();
        let found = path.locate(&doc);
        assert_eq!(found.len(), 2);
        remove_all(&mut doc, found);
        assert_eq!(doc["spec"]["containers"][1]["env"], json!([{"name": "K"}, {"name": "L", "value": "3"}]));
        assert_eq!(path.leading_names(), ["spec", "containers"]);
        let descendant = MaskPath::compile("$..value").unwrap();
        assert!(descendant.leading_names().is_empty());
        assert_eq!(descendant.locate(&pod()).len(), 3);
    }

    #[test]
    fn the_direct_walk_finds_what_jsonpath_finds_in_its_order() {
        let docs = [
            pod(),
            json!({"spec": {"containers": {"x": {"image": 1}, "a": {"image": 2}}, "initContainers": [{"image": "i"}]}}),
            json!({"spec": [1, {"containers": []}], "a": null}),
            json!(["x", {"spec": {"nodeName": null}}]),
        ];
        let paths = [
            "$.spec.nodeName",
            "$.spec.containers[*].name",
            "$.spec.containers[*].env[*].value",
            "$.spec['initContainers','containers','ephemeralContainers'][*].image",
            "$.spec.containers[*].image",
            "$.spec.containers[0].env[-1].name",
            "$.spec.containers[-3]",
            "$.spec.containers[5]",
            "$[*]",
            "$[*].spec.nodeName",
            "$.spec['nodeName','nodeName']",
            "$.spec.*",
        ];
        for text in paths {
            let path = MaskPath::compile(text).unwrap();
            assert!(path.picks.is_some(), "{text} is walked directly");
            for doc in &docs {
                assert_eq!(path.locate(doc), path.evaluate(doc), "{text} in {doc}");
                let mut values = Vec::new();
                path.walk(doc, &mut |trail, value| values.push((to_location(trail), value.clone())));
                let expected: Vec<(Location, Value)> =
                    path.evaluate(doc).into_iter().map(|l| (l.clone(), get(doc, &l).unwrap().clone())).collect();
                assert_eq!(values, expected, "{text} in {doc}");
            }
        }
    }

    #[test]
    fn array_elements_are_removed_from_the_end() {
        let mut doc = pod();
        let path = MaskPath::compile("$.spec.containers[1].env[*]").unwrap();
        let found = path.locate(&doc);
        remove_all(&mut doc, found);
        assert_eq!(doc["spec"]["containers"][1]["env"], json!([]));
    }

    #[test]
    fn bad_paths_are_refused() {
        assert!(matches!(MaskPath::compile("spec.nodeName"), Err(PathError::Syntax(..))));
        assert!(matches!(MaskPath::compile("$"), Err(PathError::Root(_))));
        assert!(matches!(MaskPath::compile("$.spec["), Err(PathError::Syntax(..))));
    }

    #[test]
    fn normalized_paths_round_trip() {
        assert_eq!(
            parse_normalized(r"$['a\'b'][3]['c\\d']['\u0001']"),
            Some(vec![Step::Key("a'b".into()), Step::Index(3), Step::Key(r"c\d".into()), Step::Key("\u{1}".into())])
        );
        assert_eq!(parse_normalized("$"), Some(vec![]));
        assert_eq!(parse_normalized("$['a'"), None);
        assert_eq!(pointer(&[Step::Key("a/b".into()), Step::Index(2), Step::Key("c~".into())]), "/a~1b/2/c~0");
    }

    #[test]
    fn set_creates_objects_but_not_array_elements() {
        let mut doc = json!({"spec": {"list": []}});
        assert!(set(&mut doc, &[Step::Key("status".into()), Step::Key("hostIP".into())], json!("10.0.0.1")));
        assert_eq!(doc["status"]["hostIP"], "10.0.0.1");
        assert!(!set(&mut doc, &[Step::Key("spec".into()), Step::Key("list".into()), Step::Index(0)], json!(1)));
        assert_eq!(get(&doc, &[Step::Key("status".into()), Step::Key("hostIP".into())]), Some(&json!("10.0.0.1")));
    }
}
