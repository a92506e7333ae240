//! One list item translated into a view without building what translation cannot touch.
//!
//! Parsing an item into a `serde_json::Value` and writing it back is most of a list's cost, yet
//! name translation only changes `namespace` fields, ServiceAccount names, Table cells, the
//! last-applied annotation and Namespace objects, and a read mask only reaches under its path's
//! leading names (plus managed fields and the last-applied annotation). The item arrives checked
//! and tokenized by one pass ([`super::tokens`]), which also marked on every object and array the
//! member names a mask path leads through and every `\u` or `\/` escape (which could spell a word
//! otherwise); one automaton pass over the item finds the few words name translation looks for,
//! which may sit inside any string. The item is then built from the tape level by level: a
//! nested object or array that neither names nor masks can reach — judged conservatively: any
//! such escape counts as a possible match — stays raw text, stood in for by a placeholder string
//! that upstream text cannot know, and is copied out verbatim. Below the top level, a built
//! object leaves out the members nothing can reach (no mask path leads through the name, no word
//! starts in the member, no escape) and keeps them as text under one placeholder key; so
//! [`Translation::apply`] must read, below an object's top level, only members a mask path names
//! or that hold one of the words — true of everything it does today. The translation itself is
//! that `apply` on a one-item list, unchanged, so an item reads as it does in the whole-document
//! path (members left as text come first, the built ones sorted, as serde_json writes them).

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use aho_corasick::{AhoCorasick, Input, MatchKind, Span, packed};
use serde::de::Error as _;
use serde_json::{Map, Value};

use super::Translation;
use super::tokens::{Kind, Needles, Token};
use crate::tree::links::source_key;

/// Words below which name translation may change something (see `rewrite::json`): built.
const NAMES_BUILD: [&str; 4] =
    ["namespace", "system:serviceaccount", "last-applied-configuration", "kubernetes.io/metadata.name"];
/// Words whose translation spans members (a Namespace's name, a row's cells): built whole.
/// (Events and Status objects name namespaces in their prose, see `rewrite::json::map_messages`.)
const NAMES_WHOLE: [&str; 4] = ["Namespace", "cells", "Event", "Status"];

/// What the read masks reach, as a tree of member names: a value marked whole is built whole;
/// above it, a value is built only if it holds a member named as one of the needles below it.
#[derive(Default)]
struct Reach {
    whole: bool,
    members: Vec<(String, Reach)>,
    /// Every element of an array.
    elements: Option<Box<Reach>>,
    /// Quoted names of the whole values below.
    needles: Vec<String>,
    /// The same, as bits of the tokenizer's needles.
    bits: u64,
}

/// A step of a [`Reach`] path.
enum Step {
    Key(String),
    Each,
}

impl Reach {
    fn insert(&mut self, path: &[Step]) {
        let Some(Step::Key(last)) = path.last() else {
            self.whole = true;
            return;
        };
        let quoted = serde_json::to_string(last).unwrap_or_default();
        let mut node = self;
        for step in path {
            node.needles.push(quoted.clone());
            node = match step {
                Step::Key(key) => {
                    let at = match node.members.iter().position(|(k, _)| k == key) {
                        Some(at) => at,
                        None => {
                            node.members.push((key.clone(), Reach::default()));
                            node.members.len() - 1
                        }
                    };
                    &mut node.members[at].1
                }
                Step::Each => node.elements.get_or_insert_with(Box::default),
            };
        }
        node.whole = true;
    }

    /// Sets `bits` from the needles' order, the first at bit `first`; a node with a needle
    /// beyond the 64 bits is always built.
    fn number(&mut self, needles: &[String], first: usize) {
        for needle in &self.needles {
            self.bits |= needles.iter().position(|n| n == needle).map_or(u64::MAX, |n| bit(first + n));
        }
        self.members.iter_mut().for_each(|(_, reach)| reach.number(needles, first));
        if let Some(elements) = &mut self.elements {
            elements.number(needles, first);
        }
    }

    fn member(&self, key: &str) -> Option<&Reach> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, reach)| reach)
    }
}

fn bit(n: usize) -> u64 {
    1u64.checked_shl(n as u32).unwrap_or(u64::MAX)
}

/// How a nested value of an item is read.
enum Build {
    Whole,
    Level,
    Raw,
}

/// What an answer's items are translated with; built once per answer.
struct Plan {
    reach: Reach,
    /// Every item is built whole: Namespaces (whose names are translated), Table rows.
    whole: bool,
    /// Placeholders are this, then an index: a NUL and a per-answer random number.
    tag: String,
    /// Finds the words name translation looks for; without it every item is built whole.
    words: Option<Arc<Words>>,
    /// Bits of the words and needles: built whole, built.
    whole_bits: u64,
    build_bits: u64,
}

/// Translates the items of one list answer; built once per answer.
pub struct Items {
    plan: Plan,
    /// The member names the tokenizer marks.
    needles: Needles,
    /// Words found in the item under way, kept for the allocation.
    found: Vec<(usize, u64)>,
    /// `kind` and `apiVersion` of the list.
    envelope: Map<String, Value>,
    /// The one-item list each item is translated in, kept between items while `apply` leaves
    /// its envelope as it was; built by the first item (watch events never need one).
    list: Option<Value>,
}

impl Items {
    /// The item translator for answers translated by `translation`, in a list with `envelope`
    /// (`kind`, `apiVersion`) whose array is `key`: `rows` for a Table's rows.
    pub fn new(translation: &Translation, envelope: Map<String, Value>, key: &str) -> Self {
        let mut reach = Reach::default();
        if let Some(mask) = translation.mask.as_ref().filter(|m| !m.mask.read.is_empty()) {
            for path in &mask.mask.read {
                let names = path.leading_names();
                // A filter that looks at the whole document (`$` inside) needs all of it.
                if path.text.get(1..).is_some_and(|rest| rest.contains('$')) {
                    reach.insert(&[]);
                }
                reach.insert(&names.iter().cloned().map(Step::Key).collect::<Vec<_>>());
                // Managed fields own masked fields as `f:<name>` down the same names.
                if !names.is_empty() {
                    let mut owned = vec![Step::Key("metadata".into()), Step::Key("managedFields".into()), Step::Each];
                    owned.push(Step::Key("fieldsV1".into()));
                    owned.extend(names.iter().map(|name| Step::Key(format!("f:{name}"))));
                    reach.insert(&owned);
                }
            }
            reach.insert(&[Step::Key("metadata".into()), Step::Key("annotations".into())]);
        }
        // Linked copies' source label and annotation are rewritten too (`rewrite::links`).
        let link = source_key(&translation.tree.domain);
        let patterns: Vec<String> =
            NAMES_WHOLE.iter().chain(&NAMES_BUILD).map(|w| w.to_string()).chain([link]).collect();
        let escape = patterns.len();
        let mut needles = Vec::new();
        collect_needles(&reach, &mut needles);
        reach.number(&needles, escape + 1);
        let names = needles.iter().enumerate().map(|(n, quoted)| {
            let inner = quoted.get(1..quoted.len() - 1).unwrap_or_default();
            (inner.as_bytes().into(), bit(escape + 1 + n))
        });
        let whole_bits = (0..NAMES_WHOLE.len()).map(bit).fold(0, |a, b| a | b);
        let build_bits = (NAMES_WHOLE.len()..=escape).map(bit).fold(0, |a, b| a | b);
        // Words are found one start at a time (see `find_words`), which finds them all only if
        // no word begins another: true of the words above, checked anyway. A word with a quote
        // or backslash could span tokens: then everything is built.
        let prefixes = patterns.iter().any(|p| patterns.iter().any(|q| p != q && q.starts_with(p.as_str())));
        let spans = patterns.iter().any(|p| p.contains(['"', '\\']));
        let words = Words::shared(&patterns).filter(|_| !prefixes && !spans);
        Items {
            plan: Plan {
                reach,
                whole: key == "rows" || translation.namespaces || words.is_none(),
                tag: format!("\u{0}canopy:{:016x}:", RandomState::new().hash_one(0u8)),
                words,
                whole_bits,
                build_bits,
            },
            needles: Needles::new(names.collect(), bit(escape)),
            found: Vec::new(),
            envelope,
            list: None,
        }
    }

    /// Frees what the last item or event left allocated (the words found in it), for a
    /// translator that may idle long between events.
    pub fn release_buffers(&mut self) {
        self.found = Vec::new();
    }

    /// Bytes held for the item under way.
    #[cfg(test)]
    pub fn allocated(&self) -> usize {
        self.found.capacity() * std::mem::size_of::<(usize, u64)>()
    }

    /// The member names the tokenizer is to mark in items.
    pub fn needles(&self) -> &Needles {
        &self.needles
    }

    /// Translates `item`, an element of the array `key`, checked and tokenized into `tokens`,
    /// and appends it to `out`; false when it is hidden from the view.
    pub fn translate(
        &mut self,
        translation: &Translation,
        key: &str,
        tokens: &[Token],
        item: &[u8],
        out: &mut Vec<u8>,
    ) -> serde_json::Result<bool> {
        let text = text_and_words(&self.plan, item, &mut self.found)?;
        let mut builder = Builder::new(&self.plan, text, tokens, &self.found);
        let value = builder.value(0, Some(&self.plan.reach), self.plan.whole, true)?;
        let list = self.list.get_or_insert_with(|| {
            let mut list = self.envelope.clone();
            list.insert(key.to_owned(), Value::Array(Vec::new()));
            Value::Object(list)
        });
        match list.get_mut(key) {
            Some(Value::Array(slot)) => {
                slot.clear();
                slot.push(value);
            }
            _ => return Err(invalid("a list without its array")),
        }
        // A list is never hidden as a whole, only its items are.
        translation.apply(list);
        let shown = match list.get(key).and_then(|items| items.get(0)) {
            Some(item) => {
                builder.write(item, out)?;
                true
            }
            None => false,
        };
        if !self.intact(key) {
            self.list = None;
        }
        Ok(shown)
    }

    /// Translates the watch event `line`, checked and tokenized into `tokens`, whose `type` is
    /// `kind` and whose `object` is token `object`, and appends it to `out`: `Some(false)` when
    /// the event is hidden from the view, `None` when its object is a Table or a Status, which
    /// the whole-document path translates (their translation spans what the builder keeps raw).
    pub fn translate_event(
        &mut self,
        translation: &Translation,
        tokens: &[Token],
        line: &[u8],
        (kind, object): (&str, usize),
        out: &mut Vec<u8>,
    ) -> serde_json::Result<Option<bool>> {
        let text = text_and_words(&self.plan, line, &mut self.found)?;
        let mut builder = Builder::new(&self.plan, text, tokens, &self.found);
        let object = builder.value(object, Some(&self.plan.reach), self.plan.whole, true)?;
        if matches!(object.get("kind").and_then(Value::as_str), Some("Table" | "Status")) {
            return Ok(None);
        }
        let mut event = Map::new();
        event.insert("type".to_owned(), Value::String(kind.to_owned()));
        event.insert("object".to_owned(), object);
        let mut event = Value::Object(event);
        if !translation.apply(&mut event) {
            return Ok(Some(false));
        }
        builder.write(&event, out)?;
        Ok(Some(true))
    }

    /// Whether the one-item list still has its envelope and array, for the next item.
    fn intact(&self, key: &str) -> bool {
        let Some(Value::Object(list)) = &self.list else { return false };
        list.len() == self.envelope.len() + 1
            && matches!(list.get(key), Some(Value::Array(_)))
            && self.envelope.iter().all(|(name, value)| list.get(name) == Some(value))
    }
}

fn collect_needles(reach: &Reach, needles: &mut Vec<String>) {
    for needle in &reach.needles {
        if !needles.contains(needle) {
            needles.push(needle.clone());
        }
    }
    reach.members.iter().for_each(|(_, r)| collect_needles(r, needles));
    if let Some(elements) = &reach.elements {
        collect_needles(elements, needles);
    }
}

/// Finds the words, leftmost first.
enum Words {
    /// Teddy (SIMD), asked for by name: for so few words the automaton would pick a rare-byte
    /// prefilter that is several times slower on Kubernetes objects.
    Packed(packed::Searcher),
    /// Where Teddy is not available.
    Automaton(AhoCorasick),
}

impl Words {
    /// The finder of `patterns`, shared by every answer while they stay the same (they change
    /// only with the tree's domain): a watch keeps its translator for as long as it lasts, and a
    /// searcher is kilobytes, which ten thousand watches held ten thousand times over.
    fn shared(patterns: &[String]) -> Option<Arc<Self>> {
        /// Patterns and their finder (`None` where none can be built).
        type Built = (Vec<String>, Option<Arc<Words>>);
        /// The finders last built, a few in case domains alternate (tests run several trees).
        static BUILT: Mutex<Vec<Built>> = Mutex::new(Vec::new());
        let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, words)) = built.iter().find(|(known, _)| known.as_slice() == patterns) {
            return words.clone();
        }
        let words = Words::new(patterns).map(Arc::new);
        if built.len() == 4 {
            built.remove(0);
        }
        built.push((patterns.to_vec(), words.clone()));
        words
    }

    fn new(patterns: &[String]) -> Option<Self> {
        let packed =
            packed::Config::new().match_kind(packed::MatchKind::LeftmostFirst).builder().extend(patterns).build();
        match packed {
            Some(searcher) => Some(Words::Packed(searcher)),
            None => {
                AhoCorasick::builder().match_kind(MatchKind::LeftmostFirst).build(patterns).ok().map(Words::Automaton)
            }
        }
    }

    /// The first word starting at or after `at`: where, and its pattern's bit.
    fn find(&self, text: &str, at: usize) -> Option<(usize, u64)> {
        let found = match self {
            Words::Packed(searcher) => searcher.find_in(text, Span::from(at..text.len())),
            Words::Automaton(automaton) => automaton.find(Input::new(text).span(at..text.len())),
        };
        found.map(|word| (word.start(), bit(word.pattern().as_usize())))
    }
}

/// `bytes` as text, checked once for UTF-8, with the words found in it (none when every item
/// is built whole).
fn text_and_words<'t>(plan: &Plan, bytes: &'t [u8], found: &mut Vec<(usize, u64)>) -> serde_json::Result<&'t str> {
    let text = std::str::from_utf8(bytes).map_err(serde_json::Error::custom)?;
    found.clear();
    if !plan.whole {
        find_words(plan, text, found);
    }
    Ok(text)
}

/// Every start of a word in `text`, in order, with its bit; every item is built whole without
/// the searcher.
fn find_words(plan: &Plan, text: &str, found: &mut Vec<(usize, u64)>) {
    let Some(words) = &plan.words else { return };
    // Overlapping words are all found by searching on from the byte after each start.
    let mut at = 0;
    while let Some((start, bit)) = words.find(text, at) {
        found.push((start, bit));
        at = start + 1;
    }
}

/// One item under construction, from its checked text and tape.
struct Builder<'a> {
    plan: &'a Plan,
    text: &'a str,
    tokens: &'a [Token],
    /// Where each word starts, in text order, and its bit.
    words: &'a [(usize, u64)],
    /// The text ranges placeholders stand for.
    raw: Vec<(usize, usize)>,
    /// Members left out of objects (key to value), as text ranges; `groups` are an object's
    /// (ranges of `members`), named by the placeholder key that stands for them in the object.
    members: Vec<(usize, usize)>,
    groups: Vec<(usize, usize)>,
    /// Members left out of the objects under construction, innermost last.
    pending: Vec<(usize, usize)>,
}

impl<'a> Builder<'a> {
    fn new(plan: &'a Plan, text: &'a str, tokens: &'a [Token], words: &'a [(usize, u64)]) -> Self {
        Builder {
            plan,
            text,
            tokens,
            words,
            raw: Vec::new(),
            members: Vec::new(),
            groups: Vec::new(),
            pending: Vec::new(),
        }
    }

    fn token(&self, index: usize) -> serde_json::Result<Token> {
        self.tokens.get(index).copied().ok_or_else(|| invalid("a missing value"))
    }

    /// The value at token `index`; every level is built when `whole`.
    fn value(&mut self, index: usize, reach: Option<&Reach>, whole: bool, top: bool) -> serde_json::Result<Value> {
        let token = self.token(index)?;
        let build = match token.kind {
            Kind::Key | Kind::String => return self.string(token).map(Value::String),
            Kind::Scalar => return self.scalar(token),
            Kind::Object | Kind::Array if whole => Build::Whole,
            Kind::Object | Kind::Array => self.build(token, reach, top),
        };
        let (reach, whole) = match build {
            Build::Raw => {
                self.raw.push((token.start, token.end));
                return Ok(Value::String(self.tagged(self.raw.len() - 1)));
            }
            Build::Whole => (None, true),
            Build::Level => (reach, false),
        };
        let mut at = index + 1;
        if token.kind == Kind::Object {
            // Below the top, members nothing can reach are left out and written back as text.
            let omit = !whole && !top;
            let mark = self.pending.len();
            let mut map = Map::new();
            while at < token.next {
                let (key, value, index) = (self.token(at)?, self.token(at + 1)?, at + 1);
                at = value.next;
                if omit && self.inert(key, value, reach) {
                    self.pending.push((key.start, value.end));
                    continue;
                }
                let name = self.string(key)?;
                let inner = reach.and_then(|r| r.member(&name));
                let value = self.value(index, inner, whole, false)?;
                map.insert(name, value);
            }
            if self.pending.len() > mark {
                let first = self.members.len();
                self.members.extend(self.pending.drain(mark..));
                map.insert(self.tagged(self.groups.len()), Value::Null);
                self.groups.push((first, self.members.len()));
            }
            return Ok(Value::Object(map));
        }
        let mut elements = Vec::new();
        let inner = reach.and_then(|r| r.elements.as_deref());
        while at < token.next {
            elements.push(self.value(at, inner, whole, false)?);
            at = self.token(at)?.next;
        }
        Ok(Value::Array(elements))
    }

    /// A placeholder: the answer's tag and `index`.
    fn tagged(&self, index: usize) -> String {
        let mut placeholder = String::with_capacity(self.plan.tag.len() + 8);
        placeholder.push_str(&self.plan.tag);
        push_number(&mut placeholder, index);
        placeholder
    }

    /// Whether the member `key`: `value` of a nested object can be left out of what `apply`
    /// sees: no mask path leads through its name, no word starts in it, and no escape could
    /// hide one. `apply` reads below the top only members so named or holding such words.
    fn inert(&self, key: Token, value: Token, reach: Option<&Reach>) -> bool {
        let name = self.text.as_bytes().get(key.start + 1..key.end.saturating_sub(1)).unwrap_or_default();
        if key.escaped || reach.is_some_and(|r| r.members.iter().any(|(k, _)| k.as_bytes() == name)) {
            return false;
        }
        let first = self.words.partition_point(|&(at, _)| at < key.start);
        if self.words.get(first).is_some_and(|&(at, _)| at < value.end) {
            return false;
        }
        match value.kind {
            Kind::String => !value.escaped,
            Kind::Object | Kind::Array => value.bits & self.plan.build_bits == 0,
            Kind::Key | Kind::Scalar => true,
        }
    }

    fn string(&self, token: Token) -> serde_json::Result<String> {
        if token.escaped {
            let text = self.text.get(token.start..token.end).ok_or_else(|| invalid("a string"))?;
            return serde_json::from_str(text);
        }
        let inner = self.text.get(token.start + 1..token.end.saturating_sub(1)).ok_or_else(|| invalid("a string"))?;
        Ok(inner.to_owned())
    }

    fn scalar(&self, token: Token) -> serde_json::Result<Value> {
        let text = self.text.get(token.start..token.end).ok_or_else(|| invalid("a scalar"))?;
        Ok(match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            // Most numbers are small counts; serde_json reads the rest exactly as it would.
            _ => match text.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => serde_json::from_str(text)?,
            },
        })
    }

    fn build(&self, token: Token, reach: Option<&Reach>, top: bool) -> Build {
        let first = self.words.partition_point(|&(at, _)| at < token.start);
        let words = self.words[first..].iter().take_while(|&&(at, _)| at < token.end);
        let found = words.fold(token.bits, |bits, &(_, b)| bits | b);
        if reach.is_some_and(|r| r.whole) || found & self.plan.whole_bits != 0 {
            return Build::Whole;
        }
        if top || found & (self.plan.build_bits | reach.map_or(0, |r| r.bits)) != 0 {
            return Build::Level;
        }
        Build::Raw
    }

    /// Writes `value` as JSON, as serde_json would, placeholders as the raw text they stand for.
    fn write(&self, value: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match value {
            Value::String(text) => match self.placeholder(text) {
                Some(raw) => out.extend_from_slice(raw),
                None => write_string(text, out)?,
            },
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write(item, out)?;
                }
                out.push(b']');
            }
            Value::Object(map) => {
                out.push(b'{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if let Some(members) = self.group(key) {
                        for (n, &(start, end)) in members.iter().enumerate() {
                            if n > 0 {
                                out.push(b',');
                            }
                            out.extend_from_slice(self.text.as_bytes().get(start..end).unwrap_or_default());
                        }
                        continue;
                    }
                    write_string(key, out)?;
                    out.push(b':');
                    self.write(item, out)?;
                }
                out.push(b'}');
            }
            scalar => serde_json::to_writer(&mut *out, scalar)?,
        }
        Ok(())
    }

    fn placeholder(&self, text: &str) -> Option<&[u8]> {
        let &(start, end) = self.raw.get(self.index(text, self.raw.len())?)?;
        self.text.as_bytes().get(start..end)
    }

    /// The members a placeholder key stands for.
    fn group(&self, key: &str) -> Option<&[(usize, usize)]> {
        let &(first, end) = self.groups.get(self.index(key, self.groups.len())?)?;
        self.members.get(first..end)
    }

    /// The index a placeholder names, if `text` is one and there are any (`len`).
    fn index(&self, text: &str, len: usize) -> Option<usize> {
        if len == 0 {
            return None;
        }
        text.strip_prefix(self.plan.tag.as_str())?.parse::<usize>().ok()
    }
}

/// Writes `text` as a JSON string; most need no escape, and serde_json escapes only these.
fn write_string(text: &str, out: &mut Vec<u8>) -> serde_json::Result<()> {
    if text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return serde_json::to_writer(&mut *out, text);
    }
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Appends `n` in decimal without the formatting machinery (placeholders are made per value).
fn push_number(text: &mut String, n: usize) {
    if n >= 10 {
        push_number(text, n / 10);
    }
    text.push(char::from(b'0' + (n % 10) as u8));
}

fn invalid(what: &str) -> serde_json::Error {
    serde_json::Error::custom(format!("{what} in a list item"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::example_tree;

    #[test]
    fn answers_share_one_word_finder() {
        let tree = example_tree().expect("the example tree");
        let view = tree.node("acme/web").expect("a node of the example");
        let translation = Translation::of_view(&tree, view, None);
        let watch = Items::new(&translation, Map::new(), "object");
        let list = Items::new(&translation, Map::new(), "items");
        let (watch, list) = (watch.plan.words.expect("a finder"), list.plan.words.expect("a finder"));
        assert!(Arc::ptr_eq(&watch, &list), "one finder for both answers");
    }
}
