//! Property tests of the mask engine: random JSON documents (keys drawn mostly from the names the
//! paths use, so that paths hit) and random mask paths written as JSONPath (names, wildcards,
//! indices, slices, unions, descendants, filters).
//!
//! The invariants, exactly:
//! - A path's locations are jsonpath-rust's own results, parsed back from its normalized paths,
//!   one for one, and each exists in the document.
//! - Stripping removes exactly the values selected *before* stripping and nothing else: the
//!   result equals a copy of the document that skips those values. Removing an array element
//!   shifts the ones after it, so a positional path (`[0]`, `[-1]`, slices) may select another
//!   element afterwards, and a filter that tests an absence (`!@.a`), compares by order or looks
//!   at the whole document may come to select what it did not. Every other path is *monotone*:
//!   removal only ever takes selections away, so after stripping it selects nothing at all.
//! - An update whose body lacks only read-masked fields is restored to the stored object and
//!   judged unchanged, when every masked location is an object member. A masked array element
//!   cannot be restored: the body's array has closed the gap. The update is then refused when the
//!   element that moved into the gap differs from the hidden one; when the two are equal it is
//!   accepted, one element shorter (positional masks on lists do not make updatable views).

use std::collections::BTreeSet;
use std::sync::Arc;

use jsonpath_rust::query::js_path;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::path::{self, Location, Step, parse_normalized};
use super::read::ReadMask;
use super::{Mask, MaskPath};
use crate::fuzz::without;
use crate::transform::Translation;
use crate::transform::list::{Document, ListTranslator, kind_first};

/// Member names the documents and paths share, with ones that need escaping.
const KEYS: &[&str] = &[
    "a",
    "b",
    "k",
    "spec",
    "status",
    "nodeName",
    "hostIP",
    "metadata",
    "managedFields",
    "fieldsV1",
    "f:a",
    "name",
    "namespace",
    "items",
    "kind",
    "a'b",
    r"c\d",
    "sp ace",
    "\u{1}x",
    "ü",
    "",
    "0",
    "*",
    "$",
    "@",
    "['x']",
];
/// Strings the documents and filter literals share.
const STRINGS: &[&str] =
    &["x", "node-1", "10.0.0.1", "Pod", "a", "", "acme-web-dev", "Namespace", "system:serviceaccount:acme-web-dev:x"];

/// A member name: mostly a shared one, sometimes anything.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z]{1,3}",
        1 => proptest::collection::vec(any::<char>(), 0..4).prop_map(String::from_iter),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-2i64..4).prop_map(Value::from),
        Just(json!(1.5)),
        proptest::sample::select(STRINGS).prop_map(Value::from),
    ]
}

/// A JSON value of a few levels.
pub fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..5).prop_map(|entries| Value::Object(Map::from_iter(entries))),
        ]
    })
}

/// A JSON object, as Kubernetes objects are.
pub fn document() -> impl Strategy<Value = Value> {
    proptest::collection::vec((key(), value()), 0..6).prop_map(|entries| Value::Object(Map::from_iter(entries)))
}

/// A generated mask path and whether it is monotone (see the module's documentation).
#[derive(Debug, Clone)]
pub struct GenPath {
    pub text: String,
    pub monotone: bool,
}

/// `name` as a JSONPath string literal in single quotes.
fn quoted(name: &str) -> String {
    let mut out = String::from("'");
    for c in name.chars() {
        match c {
            '\'' => out.push_str(r"\'"),
            '\\' => out.push_str(r"\\"),
            '\u{8}' => out.push_str(r"\b"),
            '\u{c}' => out.push_str(r"\f"),
            '\n' => out.push_str(r"\n"),
            '\r' => out.push_str(r"\r"),
            '\t' => out.push_str(r"\t"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `name` as a member selector: `.name` where the shorthand allows it, else `['name']`.
fn member(name: &str) -> String {
    let mut chars = name.chars();
    let shorthand = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if shorthand { format!(".{name}") } else { format!("[{}]", quoted(name)) }
}

/// `name` as a descendant segment: `..name` or `..['name']`.
fn descendant(name: &str) -> String {
    let selector = member(name);
    if selector.starts_with('.') { format!(".{selector}") } else { format!("..{selector}") }
}

/// `name` as a relative query in a filter: `@.name` or `@['name']`.
fn relative(name: &str) -> String {
    format!("@{}", member(name))
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(STRINGS).prop_map(quoted),
        (-2i64..4).prop_map(|n| n.to_string()),
        Just("true".to_owned()),
        Just("null".to_owned()),
    ]
}

/// A filter selector's body and whether it is monotone.
fn filter() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        key().prop_map(|k| (relative(&k), true)),
        (key(), literal()).prop_map(|(k, l)| (format!("{} == {l}", relative(&k)), true)),
        literal().prop_map(|l| (format!("@ == {l}"), true)),
        key().prop_map(|k| (format!("!{}", relative(&k)), false)),
        (key(), -2i64..4).prop_map(|(k, n)| (format!("{} > {n}", relative(&k)), false)),
        (key(), key()).prop_map(|(a, b)| (format!("{} && {}", relative(&a), relative(&b)), true)),
        Just(("length(@) > 1".to_owned(), false)),
        key().prop_map(|k| (format!("${}", member(&k)), false)),
    ]
}

/// One segment and whether it is monotone.
fn segment() -> impl Strategy<Value = (String, bool)> {
    let index = -3i64..4;
    let bound = proptest::option::of(-2i64..3);
    prop_oneof![
        6 => key().prop_map(|k| (member(&k), true)),
        1 => Just(("[*]".to_owned(), true)),
        1 => Just((".*".to_owned(), true)),
        2 => index.clone().prop_map(|i| (format!("[{i}]"), false)),
        1 => (bound.clone(), bound, proptest::sample::select(&[1i64, 2, -1][..])).prop_map(|(start, end, step)| {
            let show = |b: Option<i64>| b.map(|b| b.to_string()).unwrap_or_default();
            (format!("[{}:{}:{step}]", show(start), show(end)), false)
        }),
        1 => (key(), key()).prop_map(|(a, b)| (format!("[{},{}]", quoted(&a), quoted(&b)), true)),
        1 => (key(), index).prop_map(|(a, i)| (format!("[{},{i}]", quoted(&a)), false)),
        2 => key().prop_map(|k| (descendant(&k), true)),
        1 => Just(("..*".to_owned(), true)),
        1 => Just(("..[0]".to_owned(), false)),
        2 => filter().prop_map(|(f, monotone)| (format!("[?{f}]"), monotone)),
        1 => filter().prop_map(|(f, monotone)| (format!("..[?{f}]"), monotone)),
    ]
}

/// A mask path of one to four segments.
pub fn mask_path() -> impl Strategy<Value = GenPath> {
    proptest::collection::vec(segment(), 1..5).prop_map(|segments| GenPath {
        text: format!("${}", segments.iter().map(|(s, _)| s.as_str()).collect::<String>()),
        monotone: segments.iter().all(|(_, monotone)| *monotone),
    })
}

/// Every location in `value` but the root.
fn all_locations(value: &Value) -> Vec<Location> {
    fn walk(value: &Value, here: &mut Location, out: &mut Vec<Location>) {
        let children: Vec<(Step, &Value)> = match value {
            Value::Object(map) => map.iter().map(|(k, v)| (Step::Key(k.clone()), v)).collect(),
            Value::Array(items) => items.iter().enumerate().map(|(i, v)| (Step::Index(i), v)).collect(),
            _ => Vec::new(),
        };
        for (step, child) in children {
            here.push(step);
            out.push(here.clone());
            walk(child, here, out);
            here.pop();
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// A mask path that selects (at least) a value of `document`: the steps to one of its
/// locations, cut at some length, each written exactly or widened (wildcard, descendant,
/// union, slice).
fn path_to(document: &Value) -> BoxedStrategy<GenPath> {
    let locations = all_locations(document);
    if locations.is_empty() {
        return mask_path().boxed();
    }
    (proptest::sample::select(locations), proptest::collection::vec(0u8..10, 8), any::<proptest::sample::Index>())
        .prop_map(|(location, modes, cut)| {
            let steps = &location[..1 + cut.index(location.len())];
            let mut text = String::from("$");
            let mut monotone = true;
            for (step, mode) in steps.iter().zip(modes.iter().cycle()) {
                let (segment, exact) = match (step, mode) {
                    (_, 6) => ("[*]".to_owned(), true),
                    (Step::Key(k), 7) => (descendant(k), true),
                    (Step::Key(k), 8) => (format!("[{},'k']", quoted(k)), true),
                    (Step::Key(k), _) => (member(k), true),
                    (Step::Index(i), 7) => (format!("..[{i}]"), false),
                    (Step::Index(i), 8) => (format!("[{i}:{}]", i + 1), false),
                    (Step::Index(i), _) => (format!("[{i}]"), false),
                };
                text.push_str(&segment);
                monotone &= exact;
            }
            GenPath { text, monotone }
        })
        .boxed()
}

/// A document and mask paths for it, most of them selecting something there.
pub fn document_and_paths(paths: std::ops::Range<usize>) -> impl Strategy<Value = (Value, Vec<GenPath>)> {
    document().prop_flat_map(move |document| {
        let path = prop_oneof![3 => path_to(&document), 1 => mask_path()];
        (Just(document), proptest::collection::vec(path, paths.clone()))
    })
}

fn compile(path: &GenPath) -> Arc<MaskPath> {
    Arc::new(MaskPath::compile(&path.text).unwrap_or_else(|e| panic!("{}: {e}", path.text)))
}

fn read_mask(paths: &[GenPath]) -> Mask {
    Mask { read: paths.iter().map(compile).collect(), write: Vec::new(), view: "props".into() }
}

fn selected(mask: &Mask, document: &Value) -> BTreeSet<Location> {
    mask.read.iter().flat_map(|path| path.locate(document)).collect()
}

/// `document` without what `strip` also rewrites besides removing: managed-fields sets and the
/// last-applied annotation (their own properties are below).
fn without_bookkeeping(mut document: Value) -> Value {
    if let Some(Value::Object(metadata)) = document.get_mut("metadata") {
        metadata.remove("managedFields");
        if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
            annotations.remove(LAST_APPLIED);
        }
    }
    document
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The managed-fields set (`fieldsV1`) a field manager would own for `value`.
fn fields_of(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (format!("f:{k}"), fields_of(v))).collect()),
        _ => json!({}),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn locations_are_jsonpaths_own_results((document, paths) in document_and_paths(1..2)) {
        let path = &paths[0];
        let compiled = compile(path);
        let found = js_path(&path.text, &document).unwrap_or_default();
        let located = compiled.locate(&document);
        prop_assert_eq!(located.len(), found.len(), "{}", path.text);
        for (location, result) in located.iter().zip(found) {
            let at = path::get(&document, location);
            prop_assert!(at.is_some_and(|at| std::ptr::eq(at, result.val)), "{}: {:?}", path.text, location);
        }
    }

    #[test]
    fn normalized_paths_round_trip(document in document()) {
        for result in js_path("$..*", &document).unwrap() {
            let text = &result.path;
            let location = parse_normalized(text);
            prop_assert!(location.is_some(), "{}", text);
            let at = location.and_then(|location| path::get(&document, &location).map(|at| at as *const Value));
            prop_assert_eq!(at, Some(result.val as *const Value), "{}", text);
        }
    }

    #[test]
    fn stripping_removes_exactly_what_was_selected((document, paths) in document_and_paths(1..4)) {
        let mask = read_mask(&paths);
        let before = selected(&mask, &document);
        let mut stripped = document.clone();
        path::remove_all(&mut stripped, before.iter().cloned().collect());
        prop_assert_eq!(&stripped, &without(&document, &before));
        let mut masked = document.clone();
        mask.strip(&mut masked);
        prop_assert_eq!(without_bookkeeping(masked.clone()), without_bookkeeping(stripped));
        for (path, compiled) in paths.iter().zip(&mask.read) {
            if path.monotone {
                prop_assert!(compiled.locate(&masked).is_empty(), "{} still selects in {}", path.text, masked);
            }
        }
    }

    #[test]
    fn managed_fields_and_last_applied_lose_what_is_masked((body, paths) in document_and_paths(1..4)) {
        let mut body = body;
        if let Value::Object(map) = &mut body {
            map.remove("metadata");
        }
        let mut object = body.clone();
        object["metadata"] = json!({
            "annotations": {LAST_APPLIED: format!("{body}\n")},
            "managedFields": [{"manager": "kubectl", "fieldsV1": fields_of(&body)}],
        });
        let mask = read_mask(&paths);
        let owned: Vec<Location> = selected(&mask, &object)
            .into_iter()
            .filter(|location| location.first() != Some(&Step::Key("metadata".into())))
            .collect();
        mask.strip(&mut object);
        if let Some(Value::String(text)) = object.pointer(&format!("/metadata/annotations/{LAST_APPLIED}")) {
            let applied: Value = serde_json::from_str(text).unwrap();
            for (path, compiled) in paths.iter().zip(&mask.read) {
                if path.monotone {
                    prop_assert!(compiled.locate(&applied).is_empty(), "{} in last-applied {}", path.text, applied);
                }
            }
        }
        if let Some(fields) = object.pointer("/metadata/managedFields/0/fieldsV1") {
            for location in owned {
                // Ownership is kept per member down to the first list, which is owned whole.
                let chain: Vec<Step> = location
                    .iter()
                    .map_while(|step| match step {
                        Step::Key(key) => Some(Step::Key(format!("f:{key}"))),
                        Step::Index(_) => None,
                    })
                    .collect();
                if !chain.is_empty() {
                    prop_assert!(path::get(fields, &chain).is_none(), "{:?} still owned in {}", chain, fields);
                }
            }
        }
    }

    #[test]
    fn updates_of_the_view_keep_hidden_values((stored, paths) in document_and_paths(1..4)) {
        let mask = read_mask(&paths);
        let hidden = selected(&mask, &stored);
        let mut body = stored.clone();
        path::remove_all(&mut body, hidden.iter().cloned().collect());
        mask.restore(&stored, &mut body);
        prop_assume!(hidden.iter().all(|location| matches!(location.last(), Some(Step::Key(_)))));
        prop_assert_eq!(&body, &stored);
        prop_assert_eq!(mask.change_violation(&stored, &body), None);
    }

    #[test]
    fn table_cells_never_show_masked_values(
        (object, paths) in document_and_paths(1..3),
        rows in proptest::collection::vec((any::<bool>(), proptest::collection::vec(scalar(), 1..5)), 0..4),
        include_object in proptest::option::of(proptest::sample::select(&["None", "Object", "Metadata"][..])),
    ) {
        let mask = Arc::new(read_mask(&paths));
        let rows: Vec<Value> = rows
            .into_iter()
            .map(|(with_object, cells)| match with_object {
                true => json!({"cells": cells, "object": object}),
                false => json!({"cells": cells}),
            })
            .collect();
        let mut table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": rows});
        let original = table.clone();
        ReadMask { mask: Arc::clone(&mask), include_object: include_object.map(str::to_owned) }.apply(&mut table);
        for (row, before) in table["rows"].as_array().unwrap().iter().zip(original["rows"].as_array().unwrap()) {
            let hidden = before.get("object").map(|object| mask.hidden_values(object));
            for cell in row["cells"].as_array().unwrap().iter().skip(1) {
                let text = match cell {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    _ => continue,
                };
                match &hidden {
                    Some(hidden) => prop_assert!(!hidden.contains(&text), "{} shown in {}", text, row),
                    None => prop_assert_eq!(text.as_str(), super::read::MASKED),
                }
            }
            if let Some(object) = row.get("object").filter(|_| include_object == Some("Object")) {
                let mut expected = before["object"].clone();
                mask.strip(&mut expected);
                prop_assert_eq!(object, &expected);
            }
        }
    }

    /// A list or Table streamed in any pieces reads as the whole-document path's translation:
    /// the same names, the same masks, the same hidden items.
    #[test]
    fn lists_streamed_in_any_pieces_read_as_the_whole_document(
        (first, paths) in document_and_paths(0..3),
        more in proptest::collection::vec(document(), 0..3),
        (table, namespaces) in (any::<bool>(), any::<bool>()),
        include_object in proptest::option::of(proptest::sample::select(&["None", "Object", "Metadata"][..])),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..5),
    ) {
        let tree = crate::fuzz::example_tree().unwrap();
        let view = tree.node("acme/web").unwrap();
        let mask = Arc::new(read_mask(&paths));
        let include_object = include_object.map(str::to_owned);
        let translation = Translation {
            tree, view, namespace: None, watch: false, namespaces, secrets: None,
            mask: Some(ReadMask { mask, include_object }),
        };
        let items: Vec<Value> = std::iter::once(first).chain(more).collect();
        let list = match table {
            true => {
                let rows: Vec<Value> = items.iter().map(|o| json!({"cells": ["x", "acme-web-dev"], "object": o})).collect();
                json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "rows": rows})
            }
            false => json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"}, "items": items}),
        };
        let body = kind_first(&list);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
        cuts.sort_unstable();
        let whole: Value = serde_json::from_slice(&translation.apply_bytes(&body).unwrap()).unwrap();
        let out = streamed(&translation, &body, &cuts);
        prop_assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), whole);
    }
}

/// `body` through the streamed list translation, cut into pieces at `cuts`.
fn streamed(translation: &Translation, body: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut list = ListTranslator::new(translation.clone(), 1 << 20, 1 << 20);
    let mut document = Document::default();
    let mut from = 0;
    for &cut in cuts.iter().chain([&body.len()]) {
        list.push(&body[from..cut], &mut |part| document.part(part)).unwrap();
        from = cut;
    }
    list.finish(&mut |part| document.part(part)).unwrap();
    document.out
}

/// A read mask on a list element: the element's value stays hidden in the update, which is
/// refused rather than stored with the element missing.
#[test]
fn masked_array_elements_make_updates_of_the_view_refused() {
    let mask = read_mask(&[GenPath { text: "$.spec.tolerations[0]".into(), monotone: false }]);
    let stored = json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}});
    let mut body = json!({"spec": {"tolerations": [{"key": "b"}]}});
    mask.restore(&stored, &mut body);
    assert!(mask.change_violation(&stored, &body).unwrap().contains("spec.tolerations[0]"));
}
