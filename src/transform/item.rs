//! One list item translated into a view without building what translation cannot touch.
//!
//! Parsing an item into a `serde_json::Value` and writing it back is most of a list's cost, yet
//! name translation only changes `namespace` fields, ServiceAccount names, Table cells, the
//! last-applied annotation and Namespace objects, and a read mask only reaches under its path's
//! leading names (plus managed fields and the last-applied annotation). So an item is built level
//! by level: a nested object or array that neither can reach — judged on its raw text, and
//! conservatively: any `\u` or `\/` escape counts as a possible match — stays raw text, stood in
//! for by a placeholder string that upstream text cannot know, and is copied out verbatim. The
//! translation itself is [`Translation::apply`] on a one-item list, unchanged, so an item reads
//! exactly as it does in the whole-document path.

use std::borrow::Cow;
use std::hash::{BuildHasher, RandomState};

use memchr::memmem::Finder;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::Translation;

/// Text that name translation may change below (see `rewrite::json`): the value is built.
const NAMES_BUILD: [&[u8]; 4] = [b"namespace", b"system:serviceaccount", b"last-applied-configuration", b"\\u"];
/// Text whose translation spans members (a Namespace's name, a row's cells): built whole.
const NAMES_WHOLE: [&[u8]; 2] = [b"Namespace", b"cells"];
/// Escapes that could spell a member name differently from its plain quoted form.
const ESCAPES: [&[u8]; 2] = [b"\\u", b"\\/"];

/// What the read masks reach, as a tree of member names: a value marked whole is built whole;
/// above it, a value is built only if its text holds one of the quoted names below it.
#[derive(Default)]
struct Reach {
    whole: bool,
    members: Vec<(String, Reach)>,
    /// Every element of an array.
    elements: Option<Box<Reach>>,
    needles: Vec<Finder<'static>>,
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
            node.needles.push(Finder::new(quoted.as_bytes()).into_owned());
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

    fn member(&self, key: &str) -> Option<&Reach> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, reach)| reach)
    }

    fn holds(&self, text: &[u8]) -> bool {
        self.needles.iter().any(|n| n.find(text).is_some()) || contains_any(text, &ESCAPES)
    }
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
    names_build: Vec<Finder<'static>>,
    names_whole: Vec<Finder<'static>>,
}

impl Items {
    /// The item translator for answers translated by `translation`; `rows` for a Table's rows.
    pub fn new(translation: &Translation, rows: bool) -> Self {
        let mut reach = Reach::default();
        if let Some(mask) = translation.mask.as_ref().filter(|m| !m.mask.read.is_empty()) {
            for path in &mask.mask.read {
                let names = path.leading_names();
                reach.insert(&names.iter().cloned().map(Step::Key).collect::<Vec<_>>());
                // Managed fields own masked fields as `f:<name>` down the same names.
                let mut owned = vec![Step::Key("metadata".into()), Step::Key("managedFields".into()), Step::Each];
                owned.push(Step::Key("fieldsV1".into()));
                owned.extend(names.iter().map(|name| Step::Key(format!("f:{name}"))));
                if !names.is_empty() {
                    reach.insert(&owned);
                }
            }
            reach.insert(&[Step::Key("metadata".into()), Step::Key("annotations".into())]);
        }
        let finders = |needles: &[&[u8]]| needles.iter().map(|n| Finder::new(n).into_owned()).collect();
        Items {
            reach,
            whole: rows || translation.namespaces,
            tag: format!("\u{0}canopy:{:016x}:", RandomState::new().hash_one(0u8)),
            names_build: finders(&NAMES_BUILD),
            names_whole: finders(&NAMES_WHOLE),
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
        let mut builder = Builder { items: self, raw: Vec::new() };
        let value = if self.whole {
            serde_json::from_slice(item)?
        } else {
            builder.value(serde_json::from_slice(item)?, Some(&self.reach), true)?
        };
        let mut list = envelope.clone();
        list.insert(key.to_owned(), Value::Array(vec![value]));
        let mut list = Value::Object(list);
        // A list is never hidden as a whole, only its items are.
        translation.apply(&mut list);
        let Some(item) = list.get(key).and_then(|items| items.get(0)) else { return Ok(false) };
        if builder.raw.is_empty() {
            serde_json::to_writer(&mut *out, item)?;
        } else {
            builder.write(item, out)?;
        }
        Ok(true)
    }

    fn build(&self, text: &[u8], reach: Option<&Reach>, top: bool) -> Build {
        if reach.is_some_and(|r| r.whole) || self.names_whole.iter().any(|n| n.find(text).is_some()) {
            return Build::Whole;
        }
        if top || reach.is_some_and(|r| r.holds(text)) || self.names_build.iter().any(|n| n.find(text).is_some()) {
            return Build::Level;
        }
        Build::Raw
    }
}

/// One item under construction: the raw values its placeholders stand for.
struct Builder<'a, 'i> {
    items: &'i Items,
    raw: Vec<&'a RawValue>,
}

impl<'a> Builder<'a, '_> {
    fn value(&mut self, raw: &'a RawValue, reach: Option<&Reach>, top: bool) -> serde_json::Result<Value> {
        let text = raw.get();
        let nested = matches!(text.as_bytes().first(), Some(b'{' | b'['));
        if !nested {
            return serde_json::from_str(text);
        }
        match self.items.build(text.as_bytes(), reach, top) {
            Build::Whole => serde_json::from_str(text),
            Build::Raw => {
                self.raw.push(raw);
                Ok(Value::String(format!("{}{}", self.items.tag, self.raw.len() - 1)))
            }
            Build::Level if text.starts_with('{') => {
                let Members(members) = serde_json::from_str(text)?;
                let mut map = Map::new();
                for (key, value) in members {
                    let inner = reach.and_then(|r| r.member(&key));
                    map.insert(key.into_owned(), self.value(value, inner, false)?);
                }
                Ok(Value::Object(map))
            }
            Build::Level => {
                let elements: Vec<&'a RawValue> = serde_json::from_str(text)?;
                let inner = reach.and_then(|r| r.elements.as_deref());
                elements.into_iter().map(|e| self.value(e, inner, false)).collect::<Result<_, _>>().map(Value::Array)
            }
        }
    }

    /// Writes `value` as JSON, placeholders as the raw text they stand for.
    fn write(&self, value: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match value {
            Value::String(text) => match self.placeholder(text) {
                Some(raw) => out.extend_from_slice(raw.get().as_bytes()),
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

    fn placeholder(&self, text: &str) -> Option<&'a RawValue> {
        let index = text.strip_prefix(self.items.tag.as_str())?.parse::<usize>().ok()?;
        self.raw.get(index).copied()
    }
}

fn contains_any(text: &[u8], needles: &[&[u8]]) -> bool {
    needles.iter().any(|n| memchr::memmem::find(text, n).is_some())
}

/// An object's members in order, names unescaped only where they need it, values raw.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(Key(key)) = map.next_key()? {
                    members.push((key, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A member name, borrowed from the text unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
            fn visit_string<E>(self, key: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}
