//! The configuration reference in Markdown, generated from the JSON schema (itself generated
//! from the config types' doc comments and serde attributes), so the documented fields, types,
//! defaults and descriptions are the ones Canopy reads. `canopy schema --markdown` prints it;
//! the copy in `docs/config-reference.md` is checked against it by a test.
//!
//! Each top-level section becomes a table of dotted paths: `[]` marks a list's items and `<name>`
//! a map's values. A definition met again below itself (a node's `children`) points back to
//! where its fields were listed instead of recursing.

use std::fmt::Write;

use serde_json::{Map, Value};

/// The reference for `schema` (as [`super::schema::json_schema`] gives it).
pub fn render(schema: &Value) -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from the configuration's JSON schema by `canopy schema --markdown`; do not edit by\n\
         hand. One YAML file (see `proxy-config/example.yaml`); unknown keys are errors, and relative\n\
         paths resolve against the file's folder. In paths, `[]` marks the items of a list and\n\
         `<name>` the values of a map.\n",
    );
    let mut walker = Walker { defs: schema.get("$defs").and_then(Value::as_object), listed: Vec::new() };
    for (name, property) in properties(schema) {
        let mut rows = Vec::new();
        walker.field(name, property, is_required(schema, name), &mut rows);
        let _ = write!(out, "\n## `{name}`\n\n{}\n\n", one_line(description(property)));
        out.push_str("| path | type | default | description |\n|---|---|---|---|\n");
        // The section's own row is its heading.
        for row in rows.iter().skip(1) {
            let _ = writeln!(out, "| `{}` | {} | {} | {} |", row.path, row.kind, row.default, cell(&row.description));
        }
    }
    out
}

/// One documented field.
struct Row {
    path: String,
    kind: String,
    default: String,
    description: String,
}

struct Walker<'a> {
    defs: Option<&'a Map<String, Value>>,
    /// Definitions whose fields are already listed, and where.
    listed: Vec<(String, String)>,
}

impl<'a> Walker<'a> {
    /// Adds `path` and everything below it to `rows`.
    fn field(&mut self, path: &str, schema: &'a Value, required: bool, rows: &mut Vec<Row>) {
        let (target, def) = self.resolve(schema);
        let mut kind = self.kind(schema);
        if required {
            kind.push_str(", required");
        }
        let own = description(schema);
        let description = one_line(if own.is_empty() { description(target) } else { own });
        let default = schema.get("default").map_or_else(|| "—".to_owned(), |d| format!("`{d}`"));
        let index = rows.len();
        rows.push(Row { path: path.to_owned(), kind, default, description });
        if let Some(items) = target.get("items") {
            self.nested(&format!("{path}[]"), items, index, rows);
        } else if let Some(values) = target.get("additionalProperties").filter(|v| v.is_object()) {
            self.nested(&format!("{path}.<name>"), values, index, rows);
        } else {
            self.members(path, target, def, index, rows);
        }
    }

    /// The fields of a list's items or a map's values, listed under `path` when they are objects.
    fn nested(&mut self, path: &str, schema: &'a Value, parent: usize, rows: &mut Vec<Row>) {
        let (target, def) = self.resolve(schema);
        if properties(target).next().is_some() {
            self.members(path, target, def, parent, rows);
        }
    }

    /// The properties of the object `target` (definition `def`, if any) below `path`.
    fn members(&mut self, path: &str, target: &'a Value, def: Option<&str>, parent: usize, rows: &mut Vec<Row>) {
        if let Some(def) = def {
            if let Some((_, first)) = self.listed.iter().find(|(name, _)| name == def) {
                let _ = write!(rows[parent].description, " Fields as under `{first}`.");
                return;
            }
            self.listed.push((def.to_owned(), path.to_owned()));
        }
        for (name, property) in properties(target) {
            self.field(&format!("{path}.{name}"), property, is_required(target, name), rows);
        }
    }

    /// The schema `schema` stands for (following a `$ref`, also inside `anyOf` with null), and
    /// the definition's name.
    fn resolve(&self, schema: &'a Value) -> (&'a Value, Option<&'a str>) {
        let reference = schema
            .get("$ref")
            .or_else(|| schema.get("anyOf")?.as_array()?.iter().find_map(|variant| variant.get("$ref")));
        let name = reference.and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/"));
        match name.and_then(|name| Some((self.defs?.get(name)?, name))) {
            Some((target, name)) => (target, Some(name)),
            None => (schema, None),
        }
    }

    /// A type as a reader says it: `string`, `list of strings`, `one of User, Group`, …
    fn kind(&self, schema: &'a Value) -> String {
        let (target, _) = self.resolve(schema);
        if let Some(values) = target.get("enum").and_then(Value::as_array) {
            let values: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
            return format!("one of {}", values.join(", "));
        }
        let types: Vec<&str> = match target.get("type") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect(),
            _ => Vec::new(),
        };
        match types.first().copied() {
            Some("array") => match target.get("items") {
                Some(items) => format!("list of {}", plural(&self.kind(items))),
                None => "list".to_owned(),
            },
            Some("object") => match target.get("additionalProperties").filter(|v| v.is_object()) {
                Some(values) => format!("map of name to {}", self.kind(values)),
                None => "object".to_owned(),
            },
            Some("integer") => {
                let bound = |name| target.get(name).and_then(Value::as_u64);
                match (bound("minimum"), bound("maximum")) {
                    (Some(min), Some(max)) => format!("integer {min}–{max}"),
                    (Some(min), None) => format!("integer ≥ {min}"),
                    _ => "integer".to_owned(),
                }
            }
            Some(other) => other.to_owned(),
            None => "any".to_owned(),
        }
    }
}

/// `string` → `strings`, `object` → `objects`; compound types stay as they are.
fn plural(kind: &str) -> String {
    if kind.contains(' ') { kind.to_owned() } else { format!("{kind}s") }
}

fn properties(schema: &Value) -> impl Iterator<Item = (&String, &Value)> {
    schema.get("properties").and_then(Value::as_object).into_iter().flatten()
}

fn is_required(schema: &Value, name: &str) -> bool {
    schema.get("required").and_then(Value::as_array).is_some_and(|r| r.iter().any(|v| v == name))
}

fn description(schema: &Value) -> &str {
    schema.get("description").and_then(Value::as_str).unwrap_or("")
}

/// Doc comments are wrapped; a table cell is one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::config::schema::json_schema;

    #[test]
    fn checked_in_reference_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config-reference.md");
        let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            checked_in == render(&json_schema()),
            "docs/config-reference.md is stale; regenerate it with \
             `cargo run --release -- schema --markdown > docs/config-reference.md`"
        );
    }

    #[test]
    fn every_field_of_the_config_is_documented() {
        let text = render(&json_schema());
        for row in [
            "| `server.listen` | string | `\"127.0.0.1:6443\"` | `host:port` of the tenant-facing TLS listener. |",
            "| `server.tls.certFile` | string | — |",
            "| `authentication.tokenReview.maxEntries` | integer ≥ 1 | `10000` |",
            "| `server.limits.maxHeaderBytes` | integer 8192–16777216 | `65536` |",
            "| `tree.nodes[].members[].kind` | one of User, Group, ServiceAccount, required | — |",
            // Controllers sort first: the ceiling's fields are listed under theirs.
            "| `tree.controllers[].allow.resources[].apiGroups` | list of strings | `[\"\"]` |",
            "| `tree.controllers[].allow.resources[].verbs` | list of strings, required | — |",
            "| `tree.nodes[].allow` | object | — | The ceiling of this subtree; absent: the parent's. Fields as under `tree.controllers[].allow`. |",
            "| `tree.nodes[].aliases` | map of name to string | `{}` |",
        ] {
            assert!(text.contains(row), "no {row:?} in\n{text}");
        }
        for section in ["server", "upstream", "authentication", "sidecar", "tree"] {
            assert!(text.contains(&format!("\n## `{section}`\n")), "no section {section}");
        }
    }

    #[test]
    fn a_definition_met_again_points_back_instead_of_recursing() {
        let text = render(&json_schema());
        let children = text.lines().find(|l| l.starts_with("| `tree.nodes[].children` |")).unwrap();
        assert!(children.ends_with("Fields as under `tree.nodes[]`. |"), "{children}");
        assert!(!text.contains("children[].name"), "{text}");
        // A rule is listed once, under the ceiling; a custom role's rules point there.
        let rules = text.lines().find(|l| l.starts_with("| `tree.roles.<name>.rules` |")).unwrap();
        assert!(rules.contains("Fields as under `tree.controllers[].allow.resources[]`."), "{rules}");
    }

    #[test]
    fn pipes_and_line_breaks_stay_inside_their_cell() {
        let schema = json!({"properties": {"a": {"description": "x |\ny", "properties": {
            "b": {"type": ["string", "null"], "description": "one\n  two | three"}
        }}}});
        let text = render(&schema);
        assert!(text.contains("| `a.b` | string | — | one two \\| three |"), "{text}");
        assert!(text.contains("## `a`\n\nx | y\n"), "{text}");
    }
}
