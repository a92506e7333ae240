//! The bodies of the `cargo fuzz` targets `mask` and `read` (`fuzz/fuzz_targets/`), kept in the library
//! so that the same code also runs on stable, in unit tests, over the seed corpus and over
//! generated inputs. Arbitrary bytes become mask paths and a JSON document, which then go through
//! every read and write judgement of the mask engine and through namespace-name translation into
//! a view of the example tree, as a response and as a request. Nothing may panic, every location a
//! path selects must exist, and stripping must remove exactly what was selected.
//!
//! Built only for tests and with the `fuzzing` feature, which the fuzz crate turns on.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::config::raw_tree::RawTree;
use crate::mask::path::{self, Location, Step};
use crate::mask::read::ReadMask;
use crate::mask::secrets::SecretFilter;
use crate::mask::{Mask, MaskPath};
use crate::rewrite::ViewNames;
use crate::rewrite::json::{map_namespace_names, map_namespaces, map_status_message};
use crate::transform::Translation;
use crate::tree::Tree;

/// At most this many mask paths are read from one input: more adds nothing but time.
const MAX_PATHS: usize = 4;

/// Runs one fuzz input: leading lines that start with `$` are mask paths, the rest is the
/// document.
pub fn mask_and_translate(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut texts = Vec::new();
    let mut document = String::new();
    for line in lines.by_ref() {
        if line.starts_with('$') && texts.len() < MAX_PATHS {
            texts.push(line);
        } else {
            document.push_str(line);
            break;
        }
    }
    for line in lines {
        document.push('\n');
        document.push_str(line);
    }
    let paths: Vec<Arc<MaskPath>> = texts
        .iter()
        .filter_map(|text| {
            // Normalized paths are parsed from jsonpath-rust's output; arbitrary text must not
            // upset the parser either.
            path::parse_normalized(text);
            MaskPath::compile(text).ok().map(Arc::new)
        })
        .collect();
    let Some(tree) = example_tree() else { return };
    // The input's length picks the view and the sum of its bytes the optional parts.
    let view = data.len() % tree.nodes.len();
    let flags = data.iter().fold(0u8, |sum, byte| sum.wrapping_add(*byte));
    let translation = translation(&tree, view, &paths, flags);
    // The production entry point, on bytes that may not even be JSON.
    let _ = translation.apply_bytes(document.as_bytes());
    let Ok(document) = serde_json::from_str::<Value>(&document) else { return };
    check_masks(&document, &paths);
    let mut translated = document.clone();
    translation.apply(&mut translated);
    let names = ViewNames::new(&tree, view);
    let mut request = document.clone();
    map_namespaces(&mut request, &|name: &str| names.to_physical(name));
    map_namespace_names(&mut request, &|name: &str| names.to_physical(name));
    map_status_message(&mut request, "acme-web-dev", "dev");
}

/// The mask engine's judgements on `document`, and the invariants of location and removal.
fn check_masks(document: &Value, paths: &[Arc<MaskPath>]) {
    let mut selected = Vec::new();
    for path in paths {
        for location in path.locate(document) {
            assert!(path::get(document, &location).is_some(), "{} selected a missing {location:?}", path.text);
            path::pointer(&location);
            selected.push(location);
        }
    }
    let mut stripped = document.clone();
    path::remove_all(&mut stripped, selected.clone());
    assert_eq!(stripped, without(document, &selected.into_iter().collect()), "removal is exact");
    let mask = Mask { read: paths.to_vec(), write: paths.to_vec(), view: "fuzz".into() };
    let mut stripped = document.clone();
    mask.strip(&mut stripped);
    mask.hidden_values(document);
    mask.create_violation(document);
    mask.change_violation(document, &stripped);
    mask.set_beyond_defaults(&stripped, document);
    mask.without_guarded(document);
    mask.json_patch_violation(document, document);
    mask.restore(document, &mut stripped);
}

/// A translation into `view` with `paths` as read masks; `flags` picks the optional parts.
fn translation(tree: &Arc<Tree>, view: usize, paths: &[Arc<MaskPath>], flags: u8) -> Translation {
    let include_object = match flags % 4 {
        0 => None,
        1 => Some("None".to_owned()),
        2 => Some("Object".to_owned()),
        _ => Some("Metadata".to_owned()),
    };
    let mask = Arc::new(Mask { read: paths.to_vec(), write: Vec::new(), view: tree.nodes[view].path.clone() });
    Translation {
        tree: Arc::clone(tree),
        view,
        namespace: (flags & 4 != 0).then(|| ("acme-web-dev".to_owned(), "dev".to_owned())),
        watch: false,
        namespaces: flags & 8 != 0,
        secrets: SecretFilter::of(&tree.nodes[view].ceiling),
        mask: (!paths.is_empty()).then_some(ReadMask { mask, include_object }),
    }
}

/// The tree of `proxy-config/example.yaml`, compiled once.
pub fn example_tree() -> Option<Arc<Tree>> {
    static TREE: OnceLock<Option<Arc<Tree>>> = OnceLock::new();
    TREE.get_or_init(|| {
        let config: Value = serde_saphyr::from_str(include_str!("../proxy-config/example.yaml")).ok()?;
        let raw: RawTree = serde_json::from_value(config.get("tree")?.clone()).ok()?;
        Tree::compile(&raw, "tree").ok().map(Arc::new)
    })
    .clone()
}

/// `value` without the values at `removed` (locations in `value`): the independent model of what
/// stripping must leave, built by copying instead of removing in place.
pub fn without(value: &Value, removed: &BTreeSet<Location>) -> Value {
    fn copy(value: &Value, removed: &BTreeSet<Location>, here: &mut Location) -> Value {
        match value {
            Value::Object(map) => {
                let mut kept = serde_json::Map::new();
                for (key, inner) in map {
                    here.push(Step::Key(key.clone()));
                    if !removed.contains(here) {
                        kept.insert(key.clone(), copy(inner, removed, here));
                    }
                    here.pop();
                }
                Value::Object(kept)
            }
            Value::Array(items) => {
                let mut kept = Vec::new();
                for (i, inner) in items.iter().enumerate() {
                    here.push(Step::Index(i));
                    if !removed.contains(here) {
                        kept.push(copy(inner, removed, here));
                    }
                    here.pop();
                }
                Value::Array(kept)
            }
            scalar => scalar.clone(),
        }
    }
    copy(value, removed, &mut Vec::new())
}

/// Runs one input of the `read` target: the first line is a request target (`path?query`), the
/// rest a body. The query and path are read as Classify reads them, selectors are judged against
/// a read mask, and the body is read as JSON, as YAML and as protobuf. Nothing may panic, a
/// canonical query must read back as itself, and a body Canopy read must read back as the same
/// value from the bytes Canopy would forward.
pub fn read_request(data: &[u8]) {
    let (target, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let target = String::from_utf8_lossy(target);
    let (path, raw_query) = target.split_once('?').unwrap_or((&target, ""));
    if let Ok(query) = crate::request::query::Query::parse(raw_query) {
        let again = crate::request::query::Query::parse(&query.encode());
        assert_eq!(again.as_ref(), Ok(&query), "a canonical query reads back as itself");
        for method in [http::Method::GET, http::Method::POST, http::Method::DELETE] {
            let _ = crate::request::RequestInfo::classify(&method, path, &query);
        }
        let read = MaskPath::compile("$.spec.nodeName").map(Arc::new).into_iter().collect();
        let mask = Mask { read, write: Vec::new(), view: "acme".into() };
        let selector = |key| query.get(key).unwrap_or("");
        let _ = crate::mask::select::masked_selector(&mask, selector("fieldSelector"), selector("labelSelector"));
        let _ = crate::rewrite::selector::map_field_selector(selector("fieldSelector"), true, &|n| Some(n.to_owned()));
    }
    for value in [crate::decode::json(body), crate::decode::yaml(body)].into_iter().flatten() {
        let forwarded = serde_json::to_vec(&value).unwrap_or_default();
        assert_eq!(crate::decode::json(&forwarded).ok(), Some(value), "Canopy's bytes read as what it judged");
    }
    let _ = crate::rewrite::protobuf::map_namespace(body, &|name| Some(format!("x-{name}")));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::mask::props::document_and_paths;

    /// The seed corpus of the fuzz target, run as it is.
    #[test]
    fn seed_inputs_pass() {
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/mask");
        let mut count = 0;
        for entry in std::fs::read_dir(seeds).unwrap() {
            mask_and_translate(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(count >= 5, "{count} seeds in {seeds}");
    }

    /// The seed corpus of the `read` target, run as it is.
    #[test]
    fn read_seed_inputs_pass() {
        let seeds = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/read");
        let mut count = 0;
        for entry in std::fs::read_dir(seeds).unwrap() {
            read_request(&std::fs::read(entry.unwrap().path()).unwrap());
            count += 1;
        }
        assert!(count >= 5, "{count} seeds in {seeds}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_requests_pass(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            read_request(&data);
        }

        #[test]
        fn query_like_requests_pass(target in "/api/v1/[a-z/]{0,20}\\?([a-zA-Z=%&;+.,!()0-9 ]{0,40})", body in "[ -~\n]{0,80}") {
            read_request(format!("{target}\n{body}").as_bytes());
        }

        #[test]
        fn arbitrary_bytes_pass(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            mask_and_translate(&data);
        }

        #[test]
        fn generated_paths_and_documents_pass(
            (document, paths) in document_and_paths(0..4),
            padding in 0usize..8,
        ) {
            let mut input: Vec<u8> = paths.iter().flat_map(|p| format!("{}\n", p.text).into_bytes()).collect();
            input.extend(serde_json::to_vec(&document).unwrap());
            // Trailing whitespace changes the length, so the view, and nothing else.
            input.extend(std::iter::repeat_n(b' ', padding));
            mask_and_translate(&input);
        }
    }
}
