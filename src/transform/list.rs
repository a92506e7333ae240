//! List answers (`…List` kinds and Tables) translated as they stream: the members before the
//! `items` (or `rows`) array are translated and written first, then each element as soon as it
//! is complete, then the members after the array. Nothing but the element under way is held, so
//! memory does not grow with the list. Every member value and element is read once, by the
//! checking tokenizer ([`super::tokens`]), which resumes where a frame ended: it finds where the
//! value ends, refuses it if it is not JSON, and leaves the tape from which an element is built
//! ([`super::item`]); serde_json reads the few members around the array. A document that is not
//! a list — or whose `kind` is not known when its array begins — is gathered and translated
//! whole, exactly as before.

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use http_body_util::{BodyStream, StreamBody};
use serde_json::{Map, Value};

use super::Translation;
use super::item::Items;
use super::tokens::{Needles, Tokenizer, skip_whitespace};
use crate::body::{self, Body, BoxError};

/// Output is sent in frames of at least this size, or sooner when upstream pauses.
pub const FLUSH: usize = 64 << 10;

/// Why a list answer could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The answer is not JSON at this byte.
    #[error("the upstream answer is not valid JSON at byte {0}")]
    Syntax(usize),
    /// The answer ended inside the document.
    #[error("the upstream answer ends inside the document")]
    Truncated,
    /// One element, or one member around the array, exceeds the bound.
    #[error("a list item exceeds {0} bytes")]
    ItemTooLarge(usize),
    /// A document gathered whole exceeds the bound.
    #[error("the upstream answer exceeds {0} bytes")]
    TooLarge(usize),
    /// A value between the boundaries does not parse or translate.
    #[error("the upstream answer does not translate: {0}")]
    Json(#[from] serde_json::Error),
}

/// A piece of the translated answer, in order.
pub enum Part<'a> {
    /// The members before the array, translated, and the array's name: `items` or `rows`.
    Head(&'a Map<String, Value>, &'static str),
    /// One element, translated (hidden ones are not given).
    Item(&'a [u8]),
    /// The members after the array, translated.
    Tail(&'a Map<String, Value>),
    /// A document that is not a streamed list, translated whole; empty when hidden.
    Whole(&'a [u8]),
}

/// Where the reader is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening brace.
    Start,
    /// Between the top-level members, before or after the array.
    Members { after: bool, comma: bool },
    /// Inside the array; `comma`: an element was read and a comma or the end comes next.
    Elements { comma: bool, first: bool },
    /// After the closing brace.
    End,
    /// Not a streamed list: gathered whole.
    Whole,
}

/// A list answer's translation, fed the body as it arrives.
pub struct ListTranslator {
    translation: Translation,
    /// Bounds: one element or member, and a document gathered whole.
    max_item: usize,
    max_whole: usize,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes dropped from the front of `buf`, for error positions.
    dropped: usize,
    state: State,
    /// Checks and tokenizes each member value and element, resuming where a frame ended.
    tokenizer: Tokenizer,
    /// Members read at the top level (before the array, then after it).
    members: Map<String, Value>,
    /// `kind` and `apiVersion`, with which each element is translated as a one-item list.
    envelope: Map<String, Value>,
    key: &'static str,
    items: Option<Items>,
    scratch: Vec<u8>,
}

impl ListTranslator {
    pub fn new(translation: Translation, max_item: usize, max_whole: usize) -> Self {
        ListTranslator {
            translation,
            max_item,
            max_whole,
            buf: Vec::new(),
            pos: 0,
            dropped: 0,
            state: State::Start,
            tokenizer: Tokenizer::default(),
            members: Map::new(),
            envelope: Map::new(),
            key: "items",
            items: None,
            scratch: Vec::new(),
        }
    }

    /// Reads `input`, giving every part it completes to `emit`.
    pub fn push(&mut self, input: &[u8], emit: &mut dyn FnMut(Part<'_>)) -> Result<(), ListError> {
        self.buf.extend_from_slice(input);
        self.advance(emit)?;
        let gathering = matches!(self.state, State::Start | State::Whole | State::Members { after: false, .. });
        if gathering && self.buf.len() > self.max_whole {
            return Err(ListError::TooLarge(self.max_whole));
        }
        Ok(())
    }

    /// Ends the answer: the last parts, or why the document is not complete.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Part<'_>)) -> Result<(), ListError> {
        match self.state {
            State::End => Ok(()),
            // Not a list (or not one complete enough to tell): the whole-document path says.
            State::Start | State::Whole | State::Members { after: false, .. } => {
                if self.buf.is_empty() {
                    return Ok(());
                }
                let mut document: Value = serde_json::from_slice(&self.buf)?;
                let translated =
                    if self.translation.apply(&mut document) { serde_json::to_vec(&document)? } else { Vec::new() };
                emit(Part::Whole(&translated));
                Ok(())
            }
            _ => Err(ListError::Truncated),
        }
    }

    fn advance(&mut self, emit: &mut dyn FnMut(Part<'_>)) -> Result<(), ListError> {
        loop {
            let progressed = match self.state {
                State::Whole => false,
                State::Start => match self.next_byte() {
                    None => false,
                    Some(b'{') => {
                        self.pos += 1;
                        self.state = State::Members { after: false, comma: false };
                        true
                    }
                    Some(_) => {
                        self.state = State::Whole;
                        false
                    }
                },
                State::Members { after, comma } => self.member(after, comma, emit)?,
                State::Elements { comma, first } => self.element(comma, first, emit)?,
                State::End => match self.next_byte() {
                    None => false,
                    Some(_) => return Err(self.syntax()),
                },
            };
            if !progressed {
                break;
            }
        }
        self.compact();
        Ok(())
    }

    /// Reads one top-level member (or the closing brace); false when more input is needed.
    fn member(&mut self, after: bool, comma: bool, emit: &mut dyn FnMut(Part<'_>)) -> Result<bool, ListError> {
        let Some(byte) = self.next_byte() else { return Ok(false) };
        match (byte, comma) {
            (b'}', _) if comma || !after => {
                self.pos += 1;
                if !after {
                    // An object without a streamed array: gathered whole after all.
                    self.state = State::Whole;
                    return Ok(false);
                }
                let mut tail = std::mem::take(&mut self.members);
                let names: Vec<String> = tail.keys().cloned().collect();
                for (name, value) in &self.envelope {
                    tail.entry(name.clone()).or_insert_with(|| value.clone());
                }
                tail.insert(self.key.to_owned(), Value::Array(Vec::new()));
                let mut tail = Value::Object(tail);
                self.translation.apply(&mut tail);
                let mut tail = match tail {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                tail.retain(|name, _| names.contains(name));
                emit(Part::Tail(&tail));
                self.state = State::End;
                return Ok(true);
            }
            (b',', true) => {
                self.pos += 1;
                self.state = State::Members { after, comma: false };
                return Ok(true);
            }
            (b'"', false) => {}
            _ => return Err(self.syntax()),
        }
        let start = self.pos;
        let Some(key_end) = string_end(&self.buf, start + 1) else { return self.wait(start, after) };
        let name: String = serde_json::from_slice(&self.buf[start..key_end])?;
        let mut at = skip_whitespace(&self.buf, key_end);
        match self.buf.get(at) {
            None => return self.wait(start, after),
            Some(b':') => at = skip_whitespace(&self.buf, at + 1),
            Some(_) => return Err(ListError::Syntax(self.dropped + at)),
        }
        let Some(&first) = self.buf.get(at) else { return self.wait(start, after) };
        if !after && first == b'[' && matches!(name.as_str(), "items" | "rows") {
            return self.open_array(name, at, emit);
        }
        let Some(end) = self.value_end(at)? else { return self.wait(start, after) };
        let value: Value = serde_json::from_slice(&self.buf[at..end])?;
        if !after && name == "kind" && !value.as_str().is_some_and(|k| k.ends_with("List") || k == "Table") {
            self.state = State::Whole;
            return Ok(false);
        }
        self.members.insert(name, value);
        self.pos = end;
        self.state = State::Members { after, comma: true };
        Ok(true)
    }

    /// Starts streaming the array `name` opening at `at`, if the kind says it is a list's.
    fn open_array(&mut self, name: String, at: usize, emit: &mut dyn FnMut(Part<'_>)) -> Result<bool, ListError> {
        let kind = self.members.get("kind").and_then(Value::as_str).unwrap_or("");
        let key = match (name.as_str(), kind) {
            ("items", k) if k.ends_with("List") => "items",
            ("rows", "Table") => "rows",
            _ => {
                self.state = State::Whole;
                return Ok(false);
            }
        };
        self.key = key;
        for name in ["kind", "apiVersion"] {
            if let Some(value) = self.members.get(name) {
                self.envelope.insert(name.to_owned(), value.clone());
            }
        }
        let mut head = std::mem::take(&mut self.members);
        head.insert(key.to_owned(), Value::Array(Vec::new()));
        let mut head = Value::Object(head);
        // A list is never hidden as a whole, only its items are.
        self.translation.apply(&mut head);
        if let Value::Object(map) = &mut head {
            map.remove(key);
            emit(Part::Head(map, key));
        }
        self.items = Some(Items::new(&self.translation, self.envelope.clone(), key));
        self.pos = at + 1;
        self.state = State::Elements { comma: false, first: true };
        Ok(true)
    }

    /// Reads one element (or a comma, or the array's end); false when more input is needed.
    fn element(&mut self, comma: bool, first: bool, emit: &mut dyn FnMut(Part<'_>)) -> Result<bool, ListError> {
        let Some(byte) = self.next_byte() else { return Ok(false) };
        match (byte, comma) {
            (b']', _) if comma || first => {
                self.pos += 1;
                self.state = State::Members { after: true, comma: true };
                return Ok(true);
            }
            (b',', true) => {
                self.pos += 1;
                self.state = State::Elements { comma: false, first: false };
                return Ok(true);
            }
            (b']' | b',', _) | (_, true) => return Err(self.syntax()),
            _ => {}
        }
        let start = self.pos;
        let Some(items) = &mut self.items else { return Err(self.syntax()) };
        let scanned = self.tokenizer.scan(&self.buf, start, items.needles());
        let Some(end) = scanned.map_err(|at| ListError::Syntax(self.dropped + at))? else {
            if self.buf.len() - start > self.max_item {
                return Err(ListError::ItemTooLarge(self.max_item));
            }
            return Ok(false);
        };
        if end - start > self.max_item {
            return Err(ListError::ItemTooLarge(self.max_item));
        }
        self.scratch.clear();
        let item = &self.buf[start..end];
        if items.translate(&self.translation, self.key, self.tokenizer.tokens(), item, &mut self.scratch)? {
            emit(Part::Item(&self.scratch));
        }
        self.pos = end;
        self.state = State::Elements { comma: true, first: false };
        Ok(true)
    }

    /// Waits for more input in the middle of a member that began at `start`.
    fn wait(&mut self, start: usize, after: bool) -> Result<bool, ListError> {
        // Before the array everything is kept for the whole path, bounded as it is.
        if after && self.buf.len() - start > self.max_item {
            return Err(ListError::ItemTooLarge(self.max_item));
        }
        Ok(false)
    }

    /// The end of the member value starting at `start`, resuming a scan left unfinished.
    fn value_end(&mut self, start: usize) -> Result<Option<usize>, ListError> {
        let scanned = self.tokenizer.scan(&self.buf, start, &Needles::default());
        scanned.map_err(|at| ListError::Syntax(self.dropped + at))
    }

    /// The next byte that is not whitespace, skipping to it.
    fn next_byte(&mut self) -> Option<u8> {
        self.pos = skip_whitespace(&self.buf, self.pos);
        self.buf.get(self.pos).copied()
    }

    fn syntax(&self) -> ListError {
        ListError::Syntax(self.dropped + self.pos)
    }

    /// Drops what has been read, once the array has begun (before, the whole path may need it).
    fn compact(&mut self) {
        let streaming = matches!(self.state, State::Elements { .. } | State::Members { after: true, .. } | State::End);
        if !streaming || self.pos == 0 {
            return;
        }
        self.buf.drain(..self.pos);
        self.dropped += self.pos;
        self.tokenizer.shift(self.pos);
        self.pos = 0;
    }
}

/// The end (past the closing quote) of the string whose content starts at `at`.
fn string_end(buf: &[u8], mut at: usize) -> Option<usize> {
    loop {
        at += memchr::memchr2(b'"', b'\\', buf.get(at..)?)?;
        if buf[at] == b'"' {
            return Some(at + 1);
        }
        at += 2;
    }
}

/// Writes the parts back into one JSON document.
#[derive(Default)]
pub struct Document {
    pub out: Vec<u8>,
    items: usize,
}

impl Document {
    pub fn part(&mut self, part: Part<'_>) {
        match part {
            Part::Head(members, key) => {
                self.out.push(b'{');
                for (name, value) in members {
                    write_member(&mut self.out, name, value);
                    self.out.push(b',');
                }
                let _ = serde_json::to_writer(&mut self.out, key);
                self.out.extend_from_slice(b":[");
            }
            Part::Item(item) => {
                if self.items > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(item);
                self.items += 1;
            }
            Part::Tail(members) => {
                self.out.push(b']');
                for (name, value) in members {
                    self.out.push(b',');
                    write_member(&mut self.out, name, value);
                }
                self.out.push(b'}');
            }
            Part::Whole(document) => self.out.extend_from_slice(document),
        }
    }
}

fn write_member(out: &mut Vec<u8>, name: &str, value: &Value) {
    // Writing a string or a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, name);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, value);
}

/// `body`, a JSON answer, translated: lists as they stream, anything else whole.
pub fn translate(body: Body, translation: Translation, max_item: usize, max_whole: usize) -> Body {
    struct Stream {
        frames: BodyStream<Body>,
        list: ListTranslator,
        document: Document,
        done: bool,
    }
    let state = Stream {
        frames: BodyStream::new(body),
        list: ListTranslator::new(translation, max_item, max_whole),
        document: Document::default(),
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if s.document.out.len() >= FLUSH || (s.done && !s.document.out.is_empty()) {
                let out = std::mem::take(&mut s.document.out);
                return Some((Ok(http_body::Frame::data(Bytes::from(out))), s));
            }
            if s.done {
                return None;
            }
            // Whatever is ready is read on; when upstream pauses, what is translated goes out.
            let next = match s.frames.next().now_or_never() {
                Some(next) => next,
                None if !s.document.out.is_empty() => {
                    let out = std::mem::take(&mut s.document.out);
                    return Some((Ok(http_body::Frame::data(Bytes::from(out))), s));
                }
                None => s.frames.next().await,
            };
            let document = &mut s.document;
            let result = match next {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => s.list.push(&data, &mut |part| document.part(part)),
                    Err(_) => Ok(()),
                },
                Some(Err(error)) => {
                    s.done = true;
                    return Some((Err(error), s));
                }
                None => {
                    s.done = true;
                    s.list.finish(&mut |part| document.part(part))
                }
            };
            if let Err(error) = result {
                s.done = true;
                s.document.out.clear();
                return Some((Err(BoxError::from(error)), s));
            }
        }
    });
    body::boxed(StreamBody::new(stream))
}

/// `document` as the apiserver writes it: `kind`, `apiVersion` and `metadata` first, then the rest
/// (serde_json sorts members, which would put `items` before `kind` and take the whole path).
#[cfg(test)]
pub(crate) fn kind_first(document: &Value) -> Vec<u8> {
    let Value::Object(members) = document else { return serde_json::to_vec(document).unwrap_or_default() };
    let first = ["kind", "apiVersion", "metadata"];
    let ordered = first.iter().filter_map(|k| members.get_key_value(*k));
    let rest = members.iter().filter(|(k, _)| !first.contains(&k.as_str()));
    let parts: Vec<String> = ordered.chain(rest).map(|(k, v)| format!("{}:{}", Value::String(k.clone()), v)).collect();
    format!("{{{}}}", parts.join(",")).into_bytes()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::fuzz::example_tree;
    use crate::mask::read::ReadMask;
    use crate::mask::secrets::SecretFilter;
    use crate::mask::{Mask, MaskPath};

    const MAX: usize = 1 << 20;

    fn translation(view: &str, read: &[&str], include_object: Option<&str>) -> Translation {
        let tree = example_tree().expect("the example tree");
        let view = tree.node(view).expect("a node of the example");
        let read = read.iter().map(|p| Arc::new(MaskPath::compile(p).expect("a path"))).collect();
        let mask = Arc::new(Mask { read, write: Vec::new(), view: "acme/web".into() });
        Translation {
            secrets: None,
            tree,
            view,
            namespace: None,
            watch: false,
            namespaces: false,
            mask: Some(ReadMask { mask, include_object: include_object.map(str::to_owned) }),
        }
    }

    fn pods() -> Translation {
        translation("acme/web", &["$.spec.nodeName", "$.status.hostIP", "$.status.hostIPs"], None)
    }

    /// The answer streamed in pieces cut at `cuts`.
    fn streamed(translation: &Translation, body: &[u8], cuts: &[usize]) -> Result<Vec<u8>, ListError> {
        let mut list = ListTranslator::new(translation.clone(), MAX, MAX);
        let mut document = Document::default();
        let mut from = 0;
        for &cut in cuts.iter().chain([&body.len()]) {
            list.push(&body[from..cut], &mut |part| document.part(part))?;
            from = cut;
        }
        list.finish(&mut |part| document.part(part))?;
        Ok(document.out)
    }

    fn parsed(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
    }

    /// Streamed in one piece, at every single cut and byte by byte: the same bytes each time,
    /// and the same document as the whole-document path.
    fn same_as_whole(translation: &Translation, body: &[u8]) -> Value {
        let whole = match body {
            b"" => Vec::new(),
            _ => translation.apply_bytes(body).expect("the whole path translates"),
        };
        let once = streamed(translation, body, &[]).expect("streams");
        for cut in 0..=body.len() {
            assert_eq!(streamed(translation, body, &[cut]).expect("streams"), once, "cut at {cut}");
        }
        let every: Vec<usize> = (1..body.len()).collect();
        assert_eq!(streamed(translation, body, &every).expect("streams"), once, "byte by byte");
        assert!(!once.contains(&0), "no placeholder is left");
        if whole.is_empty() {
            assert!(once.is_empty());
            return Value::Null;
        }
        let out = parsed(&once);
        assert_eq!(out, parsed(&whole));
        out
    }

    /// A pod as the apiserver answers it, trimmed.
    fn pod(name: &str, namespace: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": namespace, "uid": "6f1c",
                "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                    format!("{{\"metadata\":{{\"namespace\":\"{namespace}\"}},\"spec\":{{\"nodeName\":\"node-1\"}}}}\n")},
                "managedFields": [
                    {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:nodeName": {}, "f:containers": {"k:{\"name\":\"web\"}": {}}}}},
                    {"manager": "kubelet", "operation": "Update", "subresource": "status",
                     "fieldsV1": {"f:status": {"f:hostIP": {}, "f:hostIPs": {}, "f:podIP": {}}}}
                ]},
            "spec": {"nodeName": "node-1", "serviceAccountName": "default",
                "containers": [{"name": "web", "image": "web:1", "volumeMounts": [{"name": "token",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]},
            "status": {"phase": "Running", "hostIP": "10.0.0.7", "hostIPs": [{"ip": "10.0.0.7"}], "podIP": "10.244.0.3",
                "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null}]}
        })
    }

    fn pod_list() -> Vec<u8> {
        kind_first(&json!({
            "kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "123", "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ", "remainingItemCount": 3},
            "items": [pod("web-1", "acme-web-dev"), pod("web-2", "acme-web-prod")]
        }))
    }

    #[test]
    fn lists_streamed_at_any_cut_read_as_the_whole_document() {
        let out = same_as_whole(&pods(), &pod_list());
        let text = out.to_string();
        assert!(!text.contains("acme-web") && !text.contains("node-1") && !text.contains("10.0.0.7"), "{text}");
        assert_eq!(out["items"][1]["metadata"]["namespace"], "prod");
        assert_eq!(out["metadata"]["remainingItemCount"], 3);
    }

    #[test]
    fn untouched_values_are_copied_as_they_came() {
        // Key order shows the raw path: the whole-document path sorts members.
        let body = br#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"namespace":"acme-web-dev"},"spec":{"z":1,"a":[2, 3]}}]}"#;
        let out = streamed(&pods(), body, &[]).expect("streams");
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.contains(r#""spec":{"z":1,"a":[2, 3]}"#), "{text}");
        assert!(text.contains(r#""namespace":"dev""#), "{text}");
    }

    #[test]
    fn members_nothing_reaches_stay_text_in_built_objects() {
        // `spec` is built for its masked `nodeName`, `metadata` for its namespace; their other
        // members are copied as they came (a built number would read `1.5`).
        let body = br#"{"kind":"PodList","items":[{"metadata":{"uid":"u","namespace":"acme-web-dev","generation":1.50},"spec":{"z":1.50,"nodeName":"n","x":{"k":[1, 2]},"s":"a\"b"}}]}"#;
        let out = streamed(&pods(), body, &[]).expect("streams");
        let text = String::from_utf8(out).expect("UTF-8");
        for kept in [r#""generation":1.50"#, r#""z":1.50"#, r#""x":{"k":[1, 2]}"#, r#""uid":"u""#] {
            assert!(text.contains(kept), "{kept} in {text}");
        }
        let out = same_as_whole(&pods(), body);
        assert_eq!(out["items"][0]["spec"], json!({"z": 1.5, "x": {"k": [1, 2]}, "s": "a\"b"}));
        assert_eq!(out["items"][0]["metadata"]["namespace"], "dev");
    }

    #[test]
    fn members_after_the_array_are_translated_too() {
        let body = serde_json::to_vec(&json!({"items": [], "kind": "PodList"})).expect("serializes");
        same_as_whole(&pods(), &body);
        let body = br#"{"kind":"PodList","items":[{"metadata":{"namespace":"acme-web-dev"}}],"metadata":{"continue":"c","namespace":"acme-web-dev"}}"#;
        let out = same_as_whole(&pods(), body);
        assert_eq!(out["metadata"], json!({"continue": "c", "namespace": "dev"}));
    }

    #[test]
    fn filters_that_look_at_the_whole_item_see_it_whole() {
        let translation = translation("acme/web", &["$.spec.containers[?$.metadata.labels.tier == 'db'].env"], None);
        let body = br#"{"kind":"PodList","items":[{"metadata":{"labels":{"tier":"db"}},"spec":{"containers":[{"env":"secret"}]}}]}"#;
        let out = same_as_whole(&translation, body);
        assert_eq!(out["items"][0]["spec"]["containers"][0], json!({}));
    }

    #[test]
    fn empty_null_and_missing_items() {
        for body in [
            r#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}"#,
            r#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[ ]}"#,
            r#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":null}"#,
            r#"{"kind":"PodList","apiVersion":"v1","metadata":{}}"#,
            r#" { "kind" : "PodList" , "items" : [ { "metadata" : { "namespace" : "acme-web-dev" } } ] } "#,
        ] {
            same_as_whole(&pods(), body.as_bytes());
        }
    }

    #[test]
    fn escaped_quotes_and_brackets_inside_strings() {
        let body = kind_first(&json!({
            "kind": "ConfigMapList", "apiVersion": "v1", "metadata": {},
            "items": [
                {"metadata": {"name": "a\"]},{[", "namespace": "acme-web-dev"}, "data": {"k\\": "v\\\"]", "]}": "{\"namespace\":\"x\"}"}},
                {"metadata": {"name": "b", "namespace": "acme-web-dev"}, "data": {"nam\u{65}space": "acme-web-dev", "\u{1}": "\u{2028}"}}
            ]
        }));
        let out = same_as_whole(&pods(), &body);
        assert_eq!(out["items"][0]["metadata"]["name"], "a\"]},{[");
        assert_eq!(out["items"][1]["data"]["namespace"], "dev");
        // Escapes that spell a name differently still reach translation.
        let body = br#"{"kind":"ConfigMapList","items":[{"data":{"x":{"namesp\u0061ce":"acme-web-dev"}},"spec":{"nodeN\u0061me":"n"}}]}"#;
        let out = same_as_whole(&pods(), body);
        assert_eq!(out["items"][0]["data"]["x"]["namespace"], "dev");
        assert!(out["items"][0]["spec"].get("nodeName").is_none());
    }

    #[test]
    fn tables_are_streamed_row_by_row() {
        let row = |name: &str, namespace: &str| {
            let mut object = pod(name, namespace);
            object["kind"] = json!("Pod");
            json!({"cells": [name, "Running", "10.0.0.7", "node-1", namespace], "object": object})
        };
        let table = json!({
            "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "9"},
            "columnDefinitions": [{"name": "Name", "type": "string"}],
            "rows": [row("web-1", "acme-web-dev"), row("web-2", "acme-web-prod")]
        });
        for include_object in [None, Some("None"), Some("Object")] {
            let translation =
                translation("acme/web", &["$.spec.nodeName", "$.status.hostIP", "$.status.hostIPs"], include_object);
            let out = same_as_whole(&translation, &kind_first(&table));
            assert_eq!(out["rows"][1]["cells"], json!(["web-2", "Running", "<masked>", "<masked>", "prod"]));
            assert_eq!(out["columnDefinitions"], table["columnDefinitions"]);
        }
    }

    #[test]
    fn linked_copies_name_their_source_in_view_terms() {
        let copy = |namespace: &str| {
            let key = crate::tree::links::source_key(&example_tree().expect("the example tree").domain);
            json!({"kind": "ConfigMap", "metadata": {"name": "ca-bundle", "namespace": namespace,
                "labels": {&key: "acme-web-dev.settings"}, "annotations": {&key: "acme-web-dev/settings"}},
                "data": {"ca.crt": "x"}})
        };
        // As the apiserver writes it: the kind first, so the items stream.
        let list = format!(
            r#"{{"kind":"ConfigMapList","apiVersion":"v1","metadata":{{}},"items":[{},{}]}}"#,
            copy("acme-web-prod"),
            copy("acme-web-dev")
        );
        let mut translation = translation("acme/web", &[], None);
        translation.mask = None;
        let text = same_as_whole(&translation, list.as_bytes()).to_string();
        assert!(!text.contains("acme-web-dev"), "{text}");
        assert!(text.contains("dev/settings") && text.contains("dev.settings"), "{text}");
    }

    #[test]
    fn hidden_secrets_are_dropped_and_commas_stay_valid() {
        let secret = |name: &str, kind: &str| json!({"kind": "Secret", "metadata": {"name": name, "namespace": "acme-data-warehouse"}, "type": kind, "data": {"k": "dg=="}});
        let list = json!({"kind": "SecretList", "apiVersion": "v1", "metadata": {}, "items": [
            secret("tls-1", "kubernetes.io/tls"), secret("a", "Opaque"), secret("tls-2", "kubernetes.io/tls"),
            secret("b", "Opaque"), secret("tls-3", "kubernetes.io/tls")
        ]});
        let mut translation = translation("acme/data", &["$.data"], None);
        translation.secrets = SecretFilter::of(&translation.tree.nodes[translation.view].ceiling);
        let out = same_as_whole(&translation, &kind_first(&list));
        let names: Vec<&Value> =
            out["items"].as_array().expect("items").iter().map(|i| &i["metadata"]["name"]).collect();
        assert_eq!(names, [&json!("a"), &json!("b")]);
        assert!(out["items"][0].get("data").is_none());
        let all_hidden = json!({"kind": "SecretList", "items": [secret("tls-1", "kubernetes.io/tls")]});
        let out = same_as_whole(&translation, &kind_first(&all_hidden));
        assert_eq!(out["items"], json!([]));
    }

    #[test]
    fn namespaces_are_translated_by_name() {
        let mut translation = pods();
        translation.namespaces = true;
        let body = br#"{"kind":"NamespaceList","apiVersion":"v1","metadata":{},"items":[{"kind":"Namespace","metadata":{"name":"acme-web-dev"}},{"metadata":{"name":"acme-web-prod","labels":{}}}]}"#;
        let out = same_as_whole(&translation, body);
        assert_eq!(out["items"][1]["metadata"]["name"], "prod");
        translation.namespaces = false;
        let out = same_as_whole(
            &translation,
            br#"{"kind":"List","items":[{"kind":"Namespace","metadata":{"name":"acme-web-dev"}}]}"#,
        );
        assert_eq!(out["items"][0]["metadata"]["name"], "dev");
    }

    #[test]
    fn documents_other_than_lists_take_the_whole_path() {
        let status =
            br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \"x\" not found","code":404}"#;
        let object = serde_json::to_vec(&pod("web-1", "acme-web-dev")).expect("serializes");
        let unknown_kind = br#"{"items":[{"metadata":{"namespace":"acme-web-dev"}}],"kind":"PodList"}"#;
        let items_not_listed = br#"{"kind":"Pod","items":[1]}"#;
        for body in [&status[..], &object, &unknown_kind[..], &items_not_listed[..], b"", b"[1,2]", b"\"x\""] {
            same_as_whole(&pods(), body);
        }
    }

    #[test]
    fn truncated_and_invalid_answers_are_errors() {
        let body = pod_list();
        for end in 1..body.len() {
            assert!(streamed(&pods(), &body[..end], &[end / 2]).is_err(), "a list cut at {end}");
        }
        for bad in [
            &br#"{"kind":"PodList","items":[1,]}"#[..],
            br#"{"kind":"PodList","items":[,1]}"#,
            br#"{"kind":"PodList","items":[1 2]}"#,
            br#"{"kind":"PodList","items":[{"a":1]]}"#,
            br#"{"kind":"PodList","items":[{"a":"\"}]}"#,
            br#"{"kind":"PodList","items":[],}"#,
            br#"{"kind":"PodList","items":[]} x"#,
            br#"{"kind":"PodList","items":[]],"#,
            br#"{"kind":"PodList","items":[tru]}"#,
            b"{\"kind\":\"PodList\",\"items\":[\"\xff\"]}",
            // Within values copied as they came, too.
            b"{\"kind\":\"PodList\",\"items\":[{\"data\":{\"x\":\"\xff\"}}]}",
            b"{\"kind\":\"PodList\",\"items\":[{\"data\":{\"x\":\"a\x01\"}}]}",
            br#"{"kind":"PodList","items":[{"data":{"x":01}}]}"#,
            br#"{"kind":"PodList","items":[{"data":{"x":"\q"}}]}"#,
            br#"{"kind":"PodList","items":[{"data":{"x":[1,]}}]}"#,
            br#"{"kind":"PodList" "items":[]}"#,
            br#"{"kind":"PodList",items:[]}"#,
            b"{",
            b"nope",
        ] {
            assert!(streamed(&pods(), bad, &[]).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn items_beyond_the_bound_are_errors() {
        let mut list = ListTranslator::new(pods(), 64, MAX);
        let body = format!(r#"{{"kind":"PodList","items":[{{"a":"{}"}}]}}"#, "x".repeat(100));
        assert!(matches!(list.push(body.as_bytes(), &mut |_| {}), Err(ListError::ItemTooLarge(64))));
        let mut list = ListTranslator::new(pods(), MAX, 64);
        let body = format!(r#"{{"kind":"Pod","data":"{}"}}"#, "x".repeat(100));
        assert!(matches!(list.push(body.as_bytes(), &mut |_| {}), Err(ListError::TooLarge(64))));
    }

    #[tokio::test]
    async fn bodies_are_sent_in_large_frames() {
        use http_body_util::BodyExt;
        let body = pod_list();
        let frames: Vec<Result<http_body::Frame<Bytes>, BoxError>> =
            body.chunks(7).map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c)))).collect();
        let input = body::boxed(StreamBody::new(futures_util::stream::iter(frames)));
        let mut out = translate(input, pods(), MAX, MAX);
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(frame) = out.frame().await {
            let data = frame.expect("translates").into_data().expect("data");
            sizes.push(data.len());
            all.extend_from_slice(&data);
        }
        assert_eq!(sizes.len(), 1, "every input frame was ready: one output frame");
        assert_eq!(parsed(&all), parsed(&pods().apply_bytes(&body).expect("translates")));
    }
}
