//! Watch events translated the way list items are ([`super::item`]): an `ADDED`, `MODIFIED` or
//! `DELETED` event is checked and tokenized in one pass, its object built only where names or
//! masks can reach and translated by [`Translation::apply`] as the whole event, the rest copied
//! as raw text. Everything else — bookmarks, `ERROR` events, Table objects, anything that is not
//! a plain `{type, object}` event, and lines that are not JSON (for the error) — takes the
//! whole-document path, so every event reads exactly as it did there.

use super::Translation;
use super::item::Items;
use super::lines::translate_lines;
use super::tokens::{Kind, Token, Tokenizer, skip_whitespace};
use crate::body::{Body, BoxError};

/// A watch answer's events translated as they stream, one line each, bounded by `max_event`.
pub fn translate_events(body: Body, translation: Translation, max_event: usize) -> Body {
    let mut events = Events::new(&translation);
    translate_lines(body, max_event, move |line| events.translate(&translation, line))
}

/// The translation state of one watch answer.
pub struct Events {
    items: Items,
    tokenizer: Tokenizer,
}

impl Events {
    pub fn new(translation: &Translation) -> Self {
        Events { items: Items::new(translation, Default::default(), "object"), tokenizer: Tokenizer::default() }
    }

    /// One event line translated; empty when the event is hidden from the view.
    pub fn translate(&mut self, translation: &Translation, line: &[u8]) -> Result<Vec<u8>, BoxError> {
        match self.translate_plain(translation, line) {
            Some(translated) => Ok(translated?.0),
            None => translation.apply_bytes(line),
        }
    }

    /// A plain event of an object translated without building what nothing reaches (empty when
    /// hidden), with its object's `metadata.resourceVersion` as a number, read off the tape;
    /// `None` when the line is not such an event, for the caller to take the whole path.
    pub fn translate_plain(
        &mut self,
        translation: &Translation,
        line: &[u8],
    ) -> Option<serde_json::Result<(Vec<u8>, Option<u64>)>> {
        let translated = self.translate_tape(translation, line);
        // Each line is read afresh (an unfinished value must not be resumed by the next one),
        // and a watch idles between events, often for hours: it keeps no buffer sized by the
        // last one.
        self.tokenizer = Tokenizer::default();
        self.items.release_buffers();
        translated
    }

    fn translate_tape(
        &mut self,
        translation: &Translation,
        line: &[u8],
    ) -> Option<serde_json::Result<(Vec<u8>, Option<u64>)>> {
        let start = skip_whitespace(line, 0);
        let end = match self.tokenizer.scan(line, start, self.items.needles()) {
            Ok(Some(end)) => end,
            Ok(None) | Err(_) => return None,
        };
        if skip_whitespace(line, end) != line.len() {
            return None;
        }
        let text = &line[start..end];
        let tokens = self.tokenizer.tokens();
        let (kind, object) = plain_event(text, tokens)?;
        let metadata = member(text, tokens, object, b"metadata");
        let rv = metadata.and_then(|metadata| member(text, tokens, metadata, b"resourceVersion"));
        let rv = rv.and_then(|rv| tokens.get(rv)).filter(|rv| rv.kind == Kind::String && !rv.escaped);
        let rv = rv.and_then(|rv| std::str::from_utf8(text.get(rv.start + 1..rv.end - 1)?).ok()?.parse().ok());
        let mut out = Vec::with_capacity(line.len());
        match self.items.translate_event(translation, tokens, text, (kind, object), &mut out) {
            Ok(Some(_)) => Some(Ok((out, rv))),
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        }
    }
}

/// The token of member `name` (unescaped) of the object at token `object`.
fn member(text: &[u8], tokens: &[Token], object: usize, name: &[u8]) -> Option<usize> {
    let container = tokens.get(object).filter(|t| t.kind == Kind::Object)?;
    let mut at = object + 1;
    while at < container.next {
        let (key, value) = (tokens.get(at)?, tokens.get(at + 1)?);
        if !key.escaped && text.get(key.start + 1..key.end - 1) == Some(name) {
            return Some(at + 1);
        }
        at = value.next;
    }
    None
}

/// The `type` of `{"type": …, "object": {…}}` (an `ADDED`, `MODIFIED` or `DELETED` event with
/// no other member) and the token of its object.
fn plain_event<'a>(text: &'a [u8], tokens: &[Token]) -> Option<(&'a str, usize)> {
    let top = tokens.first().filter(|t| t.kind == Kind::Object)?;
    let (mut kind, mut object) = (None, None);
    let mut at = 1;
    while at < top.next {
        let (name, value) = (tokens.get(at)?, tokens.get(at + 1)?);
        match (text.get(name.start..name.end)?, value.kind) {
            (b"\"type\"", Kind::String) if !value.escaped => {
                kind = std::str::from_utf8(text.get(value.start + 1..value.end - 1)?).ok();
            }
            (b"\"object\"", Kind::Object) => object = Some(at + 1),
            _ => return None,
        }
        at = value.next;
    }
    kind.filter(|k| matches!(*k, "ADDED" | "MODIFIED" | "DELETED")).zip(object)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::fuzz::example_tree;
    use crate::mask::read::ReadMask;
    use crate::mask::secrets::SecretFilter;
    use crate::mask::{Mask, MaskPath};

    /// A watch of pods in view `acme/web`, masked as the example masks them.
    fn translation() -> Translation {
        let tree = example_tree().expect("the example tree");
        let view = tree.node("acme/web").expect("a node of the example");
        let read = ["$.spec.nodeName", "$.status.hostIP"];
        let read = read.iter().map(|p| Arc::new(MaskPath::compile(p).expect("a path"))).collect();
        let mask = Arc::new(Mask { read, write: Vec::new(), view: "acme/web".into() });
        let mask = Some(ReadMask { mask, include_object: None });
        Translation { secrets: None, tree, view, namespace: None, watch: true, namespaces: false, mask }
    }

    /// The line through the streamlined path, and through the whole-document path, as JSON
    /// (the order of members may differ); `Null` for a hidden event.
    fn both(translation: &Translation, line: &str) -> (Result<Value, String>, Result<Value, String>) {
        let mut events = Events::new(translation);
        let fast = events.translate(translation, line.as_bytes());
        (json_of(fast), json_of(translation.apply_bytes(line.as_bytes())))
    }

    fn json_of<E: ToString>(bytes: Result<Vec<u8>, E>) -> Result<Value, String> {
        match bytes.map_err(|e| e.to_string())? {
            bytes if bytes.is_empty() => Ok(Value::Null),
            bytes => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
        }
    }

    fn pod(namespace: &str) -> Value {
        json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"},
                "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {"f:hostIP": {}, "f:phase": {}}}}]},
            "spec": {"nodeName": "node-1", "serviceAccountName": "default", "containers": [{"name": "c", "image": "i"}]},
            "status": {"hostIP": "10.0.0.1", "phase": "Running", "conditions": [{"type": "Ready"}]}})
    }

    #[test]
    fn events_read_as_the_whole_document_path_reads_them() {
        let translation = translation();
        let lines = [
            json!({"type": "ADDED", "object": pod("acme-web-dev")}).to_string(),
            json!({"object": pod("acme-web-prod"), "type": "MODIFIED"}).to_string(),
            format!("  {}  ", json!({"type": "DELETED", "object": pod("acme-web-dev")})),
            json!({"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "7"}}}).to_string(),
            json!({"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old in acme-web-dev"}})
                .to_string(),
            json!({"type": "ADDED", "object": {"kind": "Table", "rows": [{"cells": ["acme-web-dev"]}]}}).to_string(),
            json!({"type": "ADDED", "object": pod("acme-web-dev"), "extra": 1}).to_string(),
        ];
        for line in &lines {
            let (fast, whole) = both(&translation, line);
            assert_eq!(fast, whole, "{line}");
            assert!(fast.is_ok(), "{line}");
        }
        let (fast, _) = both(&translation, &lines[0]);
        let event = fast.unwrap();
        assert_eq!(event["object"]["metadata"]["namespace"], "dev");
        assert!(event["object"]["spec"].get("nodeName").is_none());
        assert!(event["object"]["status"].get("hostIP").is_none());
    }

    #[test]
    fn an_idle_watch_keeps_no_buffer_sized_by_its_last_event() {
        let translation = translation();
        let mut events = Events::new(&translation);
        let mut object = pod("acme-web-dev");
        object["metadata"]["labels"] = (0..1000).map(|i| (format!("l{i}"), json!("v"))).collect();
        let line = json!({"type": "ADDED", "object": object}).to_string();
        let translated = json_of(events.translate(&translation, line.as_bytes())).unwrap();
        assert_eq!(translated["object"]["metadata"]["namespace"], "dev");
        assert_eq!(events.tokenizer.allocated() + events.items.allocated(), 0);
    }

    #[test]
    fn plain_events_tell_their_resource_version() {
        let translation = translation();
        let mut events = Events::new(&translation);
        let mut object = pod("acme-web-dev");
        object["metadata"]["resourceVersion"] = json!("42");
        let line = json!({"type": "MODIFIED", "object": object}).to_string();
        let (out, rv) = events.translate_plain(&translation, line.as_bytes()).unwrap().unwrap();
        assert_eq!((json_of(Ok::<_, String>(out)), rv), (both(&translation, &line).1, Some(42)));
        let line = json!({"type": "ADDED", "object": pod("acme-web-dev")}).to_string();
        assert_eq!(events.translate_plain(&translation, line.as_bytes()).unwrap().unwrap().1, None);
        let bookmark = r#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"7"}}}"#;
        assert!(events.translate_plain(&translation, bookmark.as_bytes()).is_none());
    }

    #[test]
    fn events_about_hidden_secrets_are_dropped() {
        let mut translation = translation();
        translation.secrets = SecretFilter::of(&translation.tree.nodes[translation.view].ceiling);
        let secret = |kind: &str| {
            let object =
                json!({"kind": "Secret", "type": kind, "metadata": {"name": "s", "namespace": "acme-web-dev"}});
            json!({"type": "ADDED", "object": object}).to_string()
        };
        for (line, shown) in [(secret("Opaque"), true), (secret("kubernetes.io/ssh-auth"), false)] {
            let (fast, whole) = both(&translation, &line);
            assert_eq!(fast, whole);
            assert_eq!(!fast.unwrap().is_null(), shown, "{line}");
        }
    }

    #[test]
    fn lines_that_are_not_json_fail_as_on_the_whole_path() {
        let translation = translation();
        for line in ["{\"type\":\"ADDED\",\"object\":{", "{\"type\":\"ADDED\",\"object\":{}}}", "[1,]", "\"\\x\""] {
            let (fast, whole) = both(&translation, line);
            assert!(fast.is_err() && whole.is_err(), "{line}");
        }
        // An unfinished line does not leave the next one to be read as its continuation.
        let mut events = Events::new(&translation);
        assert!(events.translate(&translation, b"{\"type\":\"ADDED\",\"object\":{\"a\":").is_err());
        let line = json!({"type": "ADDED", "object": pod("acme-web-dev")}).to_string();
        let fast = json_of(events.translate(&translation, line.as_bytes()));
        assert_eq!(fast, json_of(translation.apply_bytes(line.as_bytes())));
    }
}
