//! `/openapi/v2` in protobuf (gnostic's `openapi_v2.Document`, what client-go's
//! `OpenAPISchema()` and kubectl ask for), filtered on the wire as [`super::openapi`] filters the
//! JSON document: path items of resources the view cannot use are dropped, and definitions are
//! kept only where the kept paths reach them. Every other byte is copied as upstream sent it.
//!
//! The fields read (from gnostic's `OpenAPIv2.proto`): `Document.paths` (8) holds
//! `Paths.path` (2), each a `NamedPathItem` named by field 1; `Document.definitions` (9) holds
//! `Definitions.additional_properties` (1), each a `NamedSchema` named by field 1. References
//! (`_ref`) are strings `#/definitions/<name>` anywhere below a path item or schema.

use std::collections::{BTreeMap, BTreeSet};

use super::openapi::{Scopes, path_visible};
use crate::rewrite::protobuf::{Malformed, next_field, put_field};
use crate::tree::Ceiling;

/// The media type clients ask for (`@`) and the one the apiserver labels its answer with (`.`).
pub const MEDIA_TYPES: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

const PATHS: u64 = 8;
const PATH_ITEM: u64 = 2;
const DEFINITIONS: u64 = 9;
const NAMED_SCHEMA: u64 = 1;
const NAME: u64 = 1;
const REF_PREFIX: &[u8] = b"#/definitions/";
/// Deeper than any schema the apiserver publishes; bounds the scan of strings read as messages.
const MAX_DEPTH: usize = 64;

/// The document `doc` as a view with `ceiling` sees it.
pub fn filter(ceiling: &Ceiling, doc: &[u8]) -> Result<Vec<u8>, Malformed> {
    let top = fields(doc)?;
    let mut names = Vec::new();
    for paths in top.iter().filter(|f| f.number == PATHS).filter_map(|f| f.contents) {
        for item in fields(paths)?.into_iter().filter(|f| f.number == PATH_ITEM).filter_map(|f| f.contents) {
            names.extend(std::str::from_utf8(name_of(item)?).ok());
        }
    }
    let scopes = Scopes::of(names);
    let visible = |name: &[u8]| std::str::from_utf8(name).is_ok_and(|path| path_visible(ceiling, &scopes, path));
    // Every path is read before any definition is judged: a document may list them first.
    let mut reached = Vec::new();
    for paths in top.iter().filter(|f| f.number == PATHS).filter_map(|f| f.contents) {
        keep_entries(paths, PATH_ITEM, |name, item| {
            if visible(name) {
                refs(item, &mut reached, 0);
            }
            false
        })?;
    }
    let reached = reachable(&schemas(&top)?, reached);
    let mut out = Vec::with_capacity(doc.len());
    for field in &top {
        match (field.number, field.contents) {
            (PATHS, Some(paths)) => put_field(&mut out, PATHS, &keep_entries(paths, PATH_ITEM, |n, _| visible(n))?),
            (DEFINITIONS, Some(definitions)) => {
                let kept = keep_entries(definitions, NAMED_SCHEMA, |name, _| reached.contains(name))?;
                put_field(&mut out, DEFINITIONS, &kept);
            }
            _ => out.extend_from_slice(field.raw),
        }
    }
    Ok(out)
}

/// One field of a message: its number, its contents if length-delimited, and its bytes.
struct Field<'a> {
    number: u64,
    contents: Option<&'a [u8]>,
    raw: &'a [u8],
}

fn fields(message: &[u8]) -> Result<Vec<Field<'_>>, Malformed> {
    let mut out = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        let start = rest;
        let (tag, contents) = next_field(&mut rest)?;
        out.push(Field { number: tag >> 3, contents, raw: &start[..start.len() - rest.len()] });
    }
    Ok(out)
}

/// The name (field 1) of a named entry (`NamedPathItem`, `NamedSchema`).
fn name_of(entry: &[u8]) -> Result<&[u8], Malformed> {
    let fields = fields(entry)?;
    Ok(fields.iter().find(|f| f.number == NAME).and_then(|f| f.contents).unwrap_or_default())
}

/// `message` without the entries in field `number` that `keep(name, entry)` refuses.
fn keep_entries(message: &[u8], number: u64, mut keep: impl FnMut(&[u8], &[u8]) -> bool) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::with_capacity(message.len());
    for field in fields(message)? {
        match field.contents {
            Some(entry) if field.number == number => {
                if keep(name_of(entry)?, entry) {
                    out.extend_from_slice(field.raw);
                }
            }
            _ => out.extend_from_slice(field.raw),
        }
    }
    Ok(out)
}

/// Every schema of the document (its top-level fields) by name.
fn schemas<'a>(top: &[Field<'a>]) -> Result<BTreeMap<&'a [u8], &'a [u8]>, Malformed> {
    let mut out = BTreeMap::new();
    for definitions in top.iter().filter(|f| f.number == DEFINITIONS).filter_map(|f| f.contents) {
        for schema in fields(definitions)?.into_iter().filter(|f| f.number == NAMED_SCHEMA).filter_map(|f| f.contents) {
            out.insert(name_of(schema)?, schema);
        }
    }
    Ok(out)
}

/// The names of the schemas `from` names, and of those they name.
fn reachable<'a>(schemas: &BTreeMap<&'a [u8], &'a [u8]>, from: Vec<Vec<u8>>) -> BTreeSet<Vec<u8>> {
    let mut reached = BTreeSet::new();
    let mut pending = from;
    while let Some(name) = pending.pop() {
        if let Some(schema) = schemas.get(name.as_slice())
            && reached.insert(name)
        {
            refs(schema, &mut pending, 0);
        }
    }
    reached
}

/// Every `#/definitions/<name>` string below `message`, as names. Which length-delimited fields
/// are strings and which are messages is not known without the schema, so a field that is not a
/// reference is read as a message where it parses as one: a reference found that way in some
/// other string only keeps a definition that exists, never drops one.
fn refs(message: &[u8], out: &mut Vec<Vec<u8>>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let mut rest = message;
    while !rest.is_empty() {
        let Ok((_, contents)) = next_field(&mut rest) else { return };
        let Some(contents) = contents else { continue };
        match contents.strip_prefix(REF_PREFIX) {
            Some(name) => out.push(name.to_vec()),
            None => refs(contents, out, depth + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(number: u64, value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        put_field(&mut out, number, value.as_bytes());
        out
    }

    fn message(number: u64, parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        put_field(&mut out, number, &parts.concat());
        out
    }

    /// A `NamedSchema` or `NamedPathItem` whose value refers to `refs`.
    fn named(number: u64, name: &str, refs: &[&str]) -> Vec<u8> {
        // Schema._ref is field 1; nested one level down, as a property's schema would be.
        let value: Vec<Vec<u8>> =
            refs.iter().map(|r| message(3, &[string(1, &format!("#/definitions/{r}"))])).collect();
        message(number, &[string(NAME, name), message(2, &value)])
    }

    fn document(paths: &[Vec<u8>], definitions: &[Vec<u8>]) -> Vec<u8> {
        [string(1, "2.0"), message(PATHS, paths), message(DEFINITIONS, definitions)].concat()
    }

    fn names(doc: &[u8], outer: u64, inner: u64) -> Vec<String> {
        let fields = fields(doc).unwrap();
        let outer = fields.iter().find(|f| f.number == outer).and_then(|f| f.contents).unwrap();
        fields_named(outer, inner)
    }

    fn fields_named(message: &[u8], number: u64) -> Vec<String> {
        fields(message)
            .unwrap()
            .iter()
            .filter(|f| f.number == number)
            .map(|f| String::from_utf8(name_of(f.contents.unwrap()).unwrap().to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn hidden_paths_and_the_definitions_only_they_reach_are_dropped() {
        let tree = crate::policy::tests::example();
        let ceiling = &tree.nodes[tree.node("acme/web").unwrap()].ceiling;
        let doc = document(
            &[
                named(PATH_ITEM, "/api/v1/namespaces/{namespace}/pods", &["Pod"]),
                named(PATH_ITEM, "/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets", &["PDB"]),
                named(PATH_ITEM, "/version/", &[]),
            ],
            &[
                named(NAMED_SCHEMA, "PDB", &["Meta"]),
                named(NAMED_SCHEMA, "Pod", &["Spec", "Meta"]),
                named(NAMED_SCHEMA, "Spec", &[]),
                named(NAMED_SCHEMA, "Meta", &[]),
                named(NAMED_SCHEMA, "Unused", &[]),
            ],
        );
        let filtered = filter(ceiling, &doc).unwrap();
        assert_eq!(names(&filtered, PATHS, PATH_ITEM), ["/api/v1/namespaces/{namespace}/pods", "/version/"]);
        assert_eq!(names(&filtered, DEFINITIONS, NAMED_SCHEMA), ["Pod", "Spec", "Meta"]);
        // Everything else is copied as it came.
        assert_eq!(fields(&filtered).unwrap()[0].raw, string(1, "2.0"));
    }

    #[test]
    fn definitions_before_paths_are_judged_by_every_path() {
        let tree = crate::policy::tests::example();
        let ceiling = &tree.nodes[tree.node("acme/web").unwrap()].ceiling;
        let doc = [
            message(DEFINITIONS, &[named(NAMED_SCHEMA, "Pod", &[]), named(NAMED_SCHEMA, "PDB", &[])]),
            message(PATHS, &[named(PATH_ITEM, "/api/v1/namespaces/{namespace}/pods", &["Pod"])]),
        ]
        .concat();
        let filtered = filter(ceiling, &doc).unwrap();
        assert_eq!(names(&filtered, DEFINITIONS, NAMED_SCHEMA), ["Pod"]);
    }

    #[test]
    fn a_document_that_is_not_protobuf_is_malformed() {
        let tree = crate::policy::tests::example();
        let ceiling = &tree.nodes[tree.node("acme/web").unwrap()].ceiling;
        assert_eq!(filter(ceiling, b"{\"swagger\":\"2.0\"}"), Err(Malformed));
    }
}
