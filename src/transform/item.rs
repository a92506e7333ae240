//! One list item translated into a view without building what translation cannot touch.
//!
//! Parsing an item into a `serde_json::Value` and writing it back is most of a list's cost, yet
//! name translation only changes `namespace` fields, ServiceAccount names, Table cells, the
//! last-applied annotation and Namespace objects, and a read mask only reaches under its path's
//! leading names (plus managed fields and the last-applied annotation). So an item is checked by
//! serde_json, then built level by level: a nested object or array that neither can reach —
//! judged on its raw text, and conservatively: any `\u` or `\/` escape counts as a possible
//! match — stays raw text, stood in for by a placeholder string that upstream text cannot know,
//! and is copied out verbatim. One pass finds every bracket's partner and one automaton pass
//! every telling word, so no byte is scanned again per level. The translation itself is
//! [`Translation::apply`] on a one-item list, unchanged, so an item reads exactly as it does in
//! the whole-document path.

use std::hash::{BuildHasher, RandomState};

use aho_corasick::{AhoCorasick, Input, MatchKind};
use serde::de::{Error as _, IgnoredAny};
use serde_json::{Map, Value};

use super::Translation;
use super::list::{skip_whitespace, string_end};
use crate::tree::links::source_key;

/// Words below which name translation may change something (see `rewrite::json`): built.
const NAMES_BUILD: [&str; 3] = ["namespace", "system:serviceaccount", "last-applied-configuration"];
/// Words whose translation spans members (a Namespace's name, a row's cells): built whole.
const NAMES_WHOLE: [&str; 2] = ["Namespace", "cells"];
/// Escapes that could spell any of the words differently.
const ESCAPES: [&str; 2] = ["\\u", "\\/"];

/// What the read masks reach, as a tree of member names: a value marked whole is built whole;
/// above it, a value is built only if its text holds one of the quoted names below it.
#[derive(Default)]
struct Reach {
    whole: bool,
    members: Vec<(String, Reach)>,
    /// Every element of an array.
    elements: Option<Box<Reach>>,
    /// Quoted names of the whole values below.
    needles: Vec<String>,
    /// The same, as bits of the automaton's patterns.
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

    /// Sets `bits` from the patterns; a node with a needle beyond the 64 bits is always built.
    fn number(&mut self, patterns: &[String]) {
        for needle in &self.needles {
            self.bits |= patterns.iter().position(|p| p == needle).map_or(u64::MAX, bit);
        }
        self.members.iter_mut().for_each(|(_, reach)| reach.number(patterns));
        if let Some(elements) = &mut self.elements {
            elements.number(patterns);
        }
    }

    fn member(&self, key: &str) -> Option<&Reach> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, reach)| reach)
    }
}

fn bit(pattern: usize) -> u64 {
    1u64.checked_shl(pattern as u32).unwrap_or(u64::MAX)
}

/// How a nested value of an item is read.
enum Build {
    Whole,
    Level,
    Raw,
}

/// Translates the items of one list answer; built once per answer.
pub struct Items {
    reach: Reach,
    /// Every item is built whole: Namespaces (whose names are translated), Table rows.
    whole: bool,
    /// Placeholders are this, then an index: a NUL and a per-answer random number.
    tag: String,
    /// Finds the telling words; without it every item is built whole (slower, the same).
    words: Option<AhoCorasick>,
    /// Pattern bits: built whole, built.
    whole_bits: u64,
    build_bits: u64,
}

impl Items {
    /// The item translator for answers translated by `translation`; `rows` for a Table's rows.
    pub fn new(translation: &Translation, rows: bool) -> Self {
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
        let build_words = NAMES_BUILD.iter().chain(&ESCAPES).map(|w| w.to_string()).chain([link]);
        let mut patterns: Vec<String> = NAMES_WHOLE.iter().map(|w| w.to_string()).chain(build_words).collect();
        let build_count = patterns.len() - NAMES_WHOLE.len();
        collect_needles(&reach, &mut patterns);
        reach.number(&patterns);
        let whole_bits = (0..NAMES_WHOLE.len()).map(bit).fold(0, |a, b| a | b);
        let build_bits = (NAMES_WHOLE.len()..NAMES_WHOLE.len() + build_count).map(bit).fold(0, |a, b| a | b);
        // Words are found one start at a time (see `Builder::new`), which finds them all only if
        // no word begins another: true of the words above and of quoted names, checked anyway.
        let prefixes = patterns.iter().any(|p| patterns.iter().any(|q| p != q && q.starts_with(p.as_str())));
        let words = AhoCorasick::builder().match_kind(MatchKind::LeftmostFirst).build(&patterns).ok();
        let words = words.filter(|_| !prefixes);
        Items {
            reach,
            whole: rows || translation.namespaces || words.is_none(),
            tag: format!("\u{0}canopy:{:016x}:", RandomState::new().hash_one(0u8)),
            words,
            whole_bits,
            build_bits,
        }
    }

    /// Translates `item`, an element of the array `key` of a list whose `kind` and `apiVersion`
    /// are in `envelope`, and appends it to `out`; false when it is hidden from the view.
    pub fn translate(
        &self,
        translation: &Translation,
        envelope: &Map<String, Value>,
        key: &str,
        item: &[u8],
        out: &mut Vec<u8>,
    ) -> serde_json::Result<bool> {
        let mut builder = None;
        let value = if self.whole {
            serde_json::from_slice(item)?
        } else {
            serde_json::from_slice::<IgnoredAny>(item)?;
            let text = trim(item);
            let built = builder.insert(Builder::new(self, text));
            built.value(0, text.len(), Some(&self.reach), true)?
        };
        let mut list = envelope.clone();
        list.insert(key.to_owned(), Value::Array(vec![value]));
        let mut list = Value::Object(list);
        // A list is never hidden as a whole, only its items are.
        translation.apply(&mut list);
        let Some(item) = list.get(key).and_then(|items| items.get(0)) else { return Ok(false) };
        match builder.filter(|b| !b.raw.is_empty()) {
            Some(builder) => builder.write(item, out)?,
            None => serde_json::to_writer(&mut *out, item)?,
        }
        Ok(true)
    }
}

fn collect_needles(reach: &Reach, patterns: &mut Vec<String>) {
    for needle in &reach.needles {
        if !patterns.contains(needle) {
            patterns.push(needle.clone());
        }
    }
    reach.members.iter().for_each(|(_, r)| collect_needles(r, patterns));
    if let Some(elements) = &reach.elements {
        collect_needles(elements, patterns);
    }
}

fn trim(text: &[u8]) -> &[u8] {
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    let end = text.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &text[start..end]
}

/// One item under construction, over its checked JSON text.
struct Builder<'a> {
    items: &'a Items,
    text: &'a [u8],
    /// Every object and array: where it opens and where it ends, in text order.
    brackets: Vec<(usize, usize)>,
    /// Where each telling word starts, in text order, and its pattern bit.
    words: Vec<(usize, u64)>,
    /// The text ranges placeholders stand for.
    raw: Vec<(usize, usize)>,
}

impl<'a> Builder<'a> {
    fn new(items: &'a Items, text: &'a [u8]) -> Self {
        let mut words = Vec::new();
        if let Some(automaton) = &items.words {
            // Overlapping words are all found by searching on from the byte after each start.
            let mut at = 0;
            while let Some(found) = automaton.find(Input::new(text).span(at..text.len())) {
                words.push((found.start(), bit(found.pattern().as_usize())));
                at = found.start() + 1;
            }
        }
        Builder { items, text, brackets: brackets(text), words, raw: Vec::new() }
    }

    fn value(&mut self, start: usize, end: usize, reach: Option<&Reach>, top: bool) -> serde_json::Result<Value> {
        let text = self.text.get(start..end).ok_or_else(|| invalid("a value out of the item"))?;
        match text.first() {
            Some(b'{' | b'[') => {}
            Some(b'"') if !text.contains(&b'\\') => {
                let inner = text.get(1..text.len() - 1).ok_or_else(|| invalid("a string"))?;
                return Ok(Value::String(std::str::from_utf8(inner).map_err(serde_json::Error::custom)?.to_owned()));
            }
            Some(b't') if text == b"true" => return Ok(Value::Bool(true)),
            Some(b'f') if text == b"false" => return Ok(Value::Bool(false)),
            Some(b'n') if text == b"null" => return Ok(Value::Null),
            _ => return serde_json::from_slice(text),
        }
        match self.build(start, end, reach, top) {
            Build::Whole => serde_json::from_slice(text),
            Build::Raw => {
                let mut placeholder = String::with_capacity(self.items.tag.len() + 8);
                placeholder.push_str(&self.items.tag);
                push_number(&mut placeholder, self.raw.len());
                self.raw.push((start, end));
                Ok(Value::String(placeholder))
            }
            Build::Level if text[0] == b'{' => {
                let mut map = Map::new();
                let mut at = start + 1;
                while let Some((key_start, key_end)) = self.next(&mut at, b'}')? {
                    let key = self.key(key_start, key_end)?;
                    at = skip_whitespace(self.text, key_end) + 1;
                    at = skip_whitespace(self.text, at);
                    let value_end = self.end(at)?;
                    let inner = reach.and_then(|r| r.member(&key));
                    let value = self.value(at, value_end, inner, false)?;
                    map.insert(key, value);
                    at = value_end;
                }
                Ok(Value::Object(map))
            }
            Build::Level => {
                let mut elements = Vec::new();
                let inner = reach.and_then(|r| r.elements.as_deref());
                let mut at = start + 1;
                while let Some((element_start, element_end)) = self.next(&mut at, b']')? {
                    elements.push(self.value(element_start, element_end, inner, false)?);
                    at = element_end;
                }
                Ok(Value::Array(elements))
            }
        }
    }

    /// The next member name (or element) from `at` to the closing `close`, past any comma.
    fn next(&self, at: &mut usize, close: u8) -> serde_json::Result<Option<(usize, usize)>> {
        *at = skip_whitespace(self.text, *at);
        if self.text.get(*at) == Some(&b',') {
            *at = skip_whitespace(self.text, *at + 1);
        }
        match self.text.get(*at) {
            Some(&b) if b == close => Ok(None),
            Some(_) => Ok(Some((*at, self.end(*at)?))),
            None => Err(invalid("an unclosed value")),
        }
    }

    fn key(&self, start: usize, end: usize) -> serde_json::Result<String> {
        let text = self.text.get(start..end).ok_or_else(|| invalid("a member name"))?;
        match text.get(1..text.len().saturating_sub(1)) {
            Some(inner) if !inner.contains(&b'\\') => {
                Ok(std::str::from_utf8(inner).map_err(serde_json::Error::custom)?.to_owned())
            }
            _ => serde_json::from_slice(text),
        }
    }

    /// Where the value starting at `at` ends.
    fn end(&self, at: usize) -> serde_json::Result<usize> {
        match self.text.get(at) {
            Some(b'{' | b'[') => match self.brackets.binary_search_by_key(&at, |&(open, _)| open) {
                Ok(i) => Ok(self.brackets[i].1),
                Err(_) => Err(invalid("an unmatched bracket")),
            },
            Some(b'"') => string_end(self.text, at + 1).ok_or_else(|| invalid("an unclosed string")),
            Some(_) => Ok(self.text[at..]
                .iter()
                .position(|b| matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
                .map_or(self.text.len(), |n| at + n)),
            None => Err(invalid("a missing value")),
        }
    }

    fn build(&self, start: usize, end: usize, reach: Option<&Reach>, top: bool) -> Build {
        let first = self.words.partition_point(|&(at, _)| at < start);
        let found = self.words[first..].iter().take_while(|&&(at, _)| at < end).fold(0, |bits, &(_, b)| bits | b);
        if reach.is_some_and(|r| r.whole) || found & self.items.whole_bits != 0 {
            return Build::Whole;
        }
        if top || found & (self.items.build_bits | reach.map_or(0, |r| r.bits)) != 0 {
            return Build::Level;
        }
        Build::Raw
    }

    /// Writes `value` as JSON, placeholders as the raw text they stand for.
    fn write(&self, value: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match value {
            Value::String(text) => match self.placeholder(text) {
                Some(raw) => out.extend_from_slice(raw),
                None => serde_json::to_writer(&mut *out, text)?,
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
                    serde_json::to_writer(&mut *out, key)?;
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
        let index = text.strip_prefix(self.items.tag.as_str())?.parse::<usize>().ok()?;
        let &(start, end) = self.raw.get(index)?;
        self.text.get(start..end)
    }
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

/// Every object and array of checked JSON `text`: where it opens and where it ends.
fn brackets(text: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut open = Vec::new();
    let mut at = 0;
    while at < text.len() {
        match text[at] {
            b'"' => {
                at = string_end(text, at + 1).unwrap_or(text.len());
                continue;
            }
            b'{' | b'[' => {
                open.push(found.len());
                found.push((at, text.len()));
            }
            b'}' | b']' => {
                if let Some(i) = open.pop() {
                    found[i].1 = at + 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    found
}
