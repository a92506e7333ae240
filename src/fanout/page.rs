//! One namespace's page written into the merged list as it streams: the upstream body is fed to a
//! [`ListTranslator`], each translated item or row goes into the answer as soon as it is complete
//! (commas between items across namespaces), and only what the merge needs is kept of the page —
//! its item count, `metadata.resourceVersion` and `metadata.continue`, wherever in the document
//! they arrive. The answer's opening (kind, apiVersion, columnDefinitions of a Table) is taken
//! from the first page that has one. Memory holds one item and one output chunk, not a page.

use serde_json::{Map, Value};

use crate::status::Status;
use crate::transform::list::Part;

/// What one page said about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Page {
    /// Items or rows written from this page.
    pub count: usize,
    /// `metadata.resourceVersion`; empty when absent.
    pub resource_version: String,
    /// `metadata.continue`; empty when absent (the namespace is complete).
    pub continue_token: String,
    /// `metadata.remainingItemCount`: items of the namespace after this page, when upstream says.
    pub remaining: Option<u64>,
    /// The page was a list: its members before the array have arrived.
    pub listed: bool,
    /// The page came as one translated document rather than streamed.
    pub whole: Option<Vec<u8>>,
}

impl Page {
    /// Takes `resourceVersion` and `continue` from the page's `metadata` among `members`; members
    /// absent there leave what an earlier part said.
    fn note_metadata(&mut self, members: &Map<String, Value>) {
        let Some(metadata) = members.get("metadata") else { return };
        if let Some(rv) = metadata.get("resourceVersion").and_then(Value::as_str) {
            rv.clone_into(&mut self.resource_version);
        }
        if let Some(token) = metadata.get("continue").and_then(Value::as_str) {
            token.clone_into(&mut self.continue_token);
        }
        if let Some(count) = metadata.get("remainingItemCount").and_then(Value::as_u64) {
            self.remaining = Some(count);
        }
    }
}

/// The merged answer's bytes, written as pages stream in and drained by the sender.
#[derive(Debug, Default)]
pub(super) struct Merged {
    /// Bytes written and not yet sent.
    pub out: Vec<u8>,
    /// The opening (`{"kind":…,"items":[`) has been written.
    pub opened: bool,
    /// Items or rows written so far, across pages.
    pub written: usize,
}

impl Merged {
    /// Writes one part of `page` into the answer.
    pub fn part(&mut self, page: &mut Page, part: Part<'_>) {
        match part {
            Part::Head(members, key) => {
                page.listed = true;
                page.note_metadata(members);
                self.open(members, key);
            }
            Part::Item(item) => {
                if self.written > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(item);
                self.written += 1;
                page.count += 1;
            }
            Part::Tail(members) => page.note_metadata(members),
            Part::Whole(document) => page.whole = Some(document.to_vec()),
        }
    }

    /// Writes the answer's opening from a page's members before its `key` array, unless written.
    pub fn open(&mut self, members: &Map<String, Value>, key: &str) {
        if self.opened {
            return;
        }
        self.opened = true;
        self.out.push(b'{');
        for name in ["kind", "apiVersion", "columnDefinitions"] {
            if let Some(value) = members.get(name) {
                write_member(&mut self.out, name, value);
                self.out.push(b',');
            }
        }
        write_member(&mut self.out, key, &Value::Array(Vec::new()));
        // `"items":[]` less its closing bracket: the items follow.
        self.out.pop();
    }

    /// Writes the answer's end: the array closed, then `metadata`.
    pub fn close(&mut self, metadata: &Value) {
        self.out.push(b']');
        self.out.push(b',');
        write_member(&mut self.out, "metadata", metadata);
        self.out.push(b'}');
    }
}

fn write_member(out: &mut Vec<u8>, name: &str, value: &Value) {
    // Writing a string or a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, name);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Gives a page that came whole (a list the translator could not stream, say one whose `kind`
/// follows its items) to `emit` as the parts a streamed one would have been. Anything but a list —
/// an object, a Status, nothing — is not an answer to a list: 502.
pub(super) fn replay_whole(document: &[u8], emit: &mut dyn FnMut(Part<'_>)) -> Result<(), Status> {
    let not_a_list = || Status::bad_gateway("the upstream answer to a list is not a list");
    let Ok(Value::Object(mut members)) = serde_json::from_slice::<Value>(document) else { return Err(not_a_list()) };
    let key = match members.get("kind").and_then(Value::as_str) {
        Some("Table") => "rows",
        Some(kind) if kind.ends_with("List") => "items",
        _ => return Err(not_a_list()),
    };
    let items = match members.remove(key) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(not_a_list()),
    };
    emit(Part::Head(&members, key));
    for item in items {
        let bytes = serde_json::to_vec(&item).map_err(|e| Status::internal(e.to_string()))?;
        emit(Part::Item(&bytes));
    }
    Ok(())
}

/// The opening of an empty answer when no namespace answered: a Table if `accept` asks for one.
pub(super) fn empty_list(accept: &str) -> (Map<String, Value>, &'static str) {
    let (members, key) = if accept.contains("as=Table") {
        (serde_json::json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "columnDefinitions": []}), "rows")
    } else {
        (serde_json::json!({"kind": "List", "apiVersion": "v1"}), "items")
    };
    match members {
        Value::Object(members) => (members, key),
        _ => (Map::new(), key),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn members(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// Pages given as parts, merged and closed: the answer, parsed, and what each page said.
    fn merge(pages: &[Vec<Part<'_>>]) -> (Value, Vec<Page>) {
        let mut merged = Merged::default();
        let mut said = Vec::new();
        for parts in pages {
            let mut page = Page::default();
            for part in parts {
                let part = match part {
                    Part::Head(m, k) => Part::Head(m, k),
                    Part::Item(i) => Part::Item(i),
                    Part::Tail(m) => Part::Tail(m),
                    Part::Whole(w) => Part::Whole(w),
                };
                merged.part(&mut page, part);
            }
            said.push(page);
        }
        merged.close(&json!({"resourceVersion": "7"}));
        let text = String::from_utf8(merged.out).expect("UTF-8");
        (serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")), said)
    }

    #[test]
    fn items_of_every_page_join_one_array_with_the_first_head() {
        let first = members(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"}}));
        let second = members(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}}));
        let empty = members(json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}}));
        let (answer, said) = merge(&[
            vec![Part::Head(&empty, "items"), Part::Tail(&Map::new())],
            vec![Part::Head(&first, "items"), Part::Item(br#"{"a":1}"#), Part::Item(br#"{"a":2}"#)],
            vec![Part::Head(&second, "items"), Part::Item(br#"{"a":3}"#)],
        ]);
        assert_eq!(
            answer,
            json!({"kind": "PodList", "apiVersion": "v1", "items": [{"a": 1}, {"a": 2}, {"a": 3}],
                "metadata": {"resourceVersion": "7"}})
        );
        let counts: Vec<usize> = said.iter().map(|p| p.count).collect();
        assert_eq!(counts, [0, 2, 1]);
        assert_eq!(said[2].resource_version, "9");
        assert!(said.iter().all(|p| p.listed && p.whole.is_none()));
    }

    #[test]
    fn tables_open_with_their_column_definitions_and_rows() {
        let head = members(json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [{"name": "Name"}], "metadata": {"resourceVersion": "3"}}));
        let (answer, _) = merge(&[vec![Part::Head(&head, "rows"), Part::Item(br#"{"cells":["a"]}"#)]]);
        assert_eq!(answer["columnDefinitions"], json!([{"name": "Name"}]));
        assert_eq!(answer["rows"], json!([{"cells": ["a"]}]));
        assert!(answer.get("items").is_none());
    }

    #[test]
    fn metadata_is_read_before_or_after_the_array() {
        let head = members(json!({"kind": "PodList", "metadata": {"resourceVersion": "5"}}));
        let tail = members(json!({"metadata": {"continue": "next", "remainingItemCount": 4}}));
        let (_, said) = merge(&[vec![Part::Head(&head, "items"), Part::Tail(&tail)]]);
        assert_eq!((said[0].resource_version.as_str(), said[0].continue_token.as_str()), ("5", "next"));
        assert_eq!(said[0].remaining, Some(4));
        let bare = members(json!({"kind": "PodList"}));
        let tail = members(json!({"metadata": {"resourceVersion": "6", "continue": ""}}));
        let (_, said) = merge(&[vec![Part::Head(&bare, "items"), Part::Tail(&tail)]]);
        assert_eq!((said[0].resource_version.as_str(), said[0].continue_token.as_str()), ("6", ""));
    }

    #[test]
    fn a_whole_page_is_kept_for_replay() {
        let (mut merged, mut page) = (Merged::default(), Page::default());
        merged.part(&mut page, Part::Whole(b"{}"));
        assert_eq!(page.whole.as_deref(), Some(&b"{}"[..]));
        assert!(!page.listed && !merged.opened && merged.out.is_empty());
    }

    fn replayed(document: &str) -> Result<(Value, Page), Status> {
        let mut merged = Merged::default();
        let mut page = Page::default();
        replay_whole(document.as_bytes(), &mut |part| merged.part(&mut page, part))?;
        merged.close(&json!({}));
        Ok((serde_json::from_slice(&merged.out).expect("JSON"), page))
    }

    #[test]
    fn whole_lists_are_replayed_as_parts() {
        let (answer, page) = replayed(
            r#"{"items":[{"a":1},{"a":2}],"kind":"PodList","metadata":{"resourceVersion":"4","continue":"c"}}"#,
        )
        .expect("a list");
        assert_eq!(answer["kind"], "PodList");
        assert_eq!(answer["items"], json!([{"a": 1}, {"a": 2}]));
        assert_eq!((page.count, page.resource_version.as_str(), page.continue_token.as_str()), (2, "4", "c"));
        let (answer, page) = replayed(r#"{"kind":"PodList","metadata":{"resourceVersion":"4"}}"#).expect("a list");
        assert_eq!((answer["items"].clone(), page.count), (json!([]), 0));
        let (answer, _) = replayed(r#"{"rows":[{"cells":[1]}],"kind":"Table"}"#).expect("a table");
        assert_eq!(answer["rows"], json!([{"cells": [1]}]));
    }

    #[test]
    fn whole_documents_other_than_lists_are_bad_gateways() {
        for document in [
            r#"{"kind":"Status","status":"Failure","code":500}"#,
            r#"{"kind":"Pod","metadata":{}}"#,
            r#"{"kind":"PodList","items":{}}"#,
            r#"[1]"#,
            "",
        ] {
            let refused = replayed(document).expect_err(document);
            assert_eq!(refused.code, http::StatusCode::BAD_GATEWAY, "{document}");
        }
    }

    #[test]
    fn empty_answers_open_as_asked() {
        let (members, key) = empty_list("application/json;as=Table;v=v1;g=meta.k8s.io,application/json");
        assert_eq!((members["kind"].as_str(), key), (Some("Table"), "rows"));
        let (members, key) = empty_list("application/json");
        assert_eq!((members["kind"].as_str(), key), (Some("List"), "items"));
    }
}
