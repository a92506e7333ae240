//! YAML as the apiserver reads it: sigs.k8s.io/yaml converts YAML to JSON with go-yaml v2, which
//! resolves plain scalars by YAML 1.1 (`yes` is true, `0777` is 511, `<<` merges a mapping in).
//! Canopy reads the event stream itself and keeps only what every reader reads alike: plain
//! scalars resolve as JSON-like null, booleans, decimal integers and floats, or strings; anything
//! YAML 1.1 and 1.2 resolve differently, and every construct that rewrites the tree (anchors,
//! aliases, merge keys, tags), is refused with its position.

use granit_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use super::{DecodeError, MAX_DEPTH};

/// A YAML body read as the apiserver reads it, or refused where YAML readers could disagree.
pub fn yaml(bytes: &[u8]) -> Result<Value, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::Syntax(format!("not UTF-8: {e}")))?;
    let mut reader = Reader { events: Parser::new_from_str(text), depth: 0 };
    let mut documents = Vec::new();
    loop {
        match reader.next()? {
            (Event::StreamStart, _) => {}
            (Event::StreamEnd, _) => break,
            (Event::DocumentStart(_, Some(_)), span) => return Err(ambiguous("a %YAML directive", span)),
            (Event::DocumentStart(..), _) => {
                let (event, span) = reader.next()?;
                documents.push(reader.node(event, span)?);
                match reader.next()? {
                    (Event::DocumentEnd, _) => {}
                    (_, span) => return Err(ambiguous("content after the document", span)),
                }
            }
            (_, span) => return Err(ambiguous("content outside a document", span)),
        }
    }
    match documents.len() {
        1 => Ok(documents.remove(0)),
        n => Err(DecodeError::Documents(n)),
    }
}

struct Reader<'a> {
    events: Parser<'a, granit_parser::StrInput<'a>>,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// The next event that is part of the data (comments are not).
    fn next(&mut self) -> Result<(Event<'a>, Span), DecodeError> {
        loop {
            match self.events.next() {
                None => return Err(DecodeError::Syntax("the body ends inside a document".into())),
                Some(Err(error)) => return Err(DecodeError::Syntax(error.to_string())),
                Some(Ok((event, span))) if is_presentation(&event) => drop((event, span)),
                Some(Ok(next)) => return Ok(next),
            }
        }
    }

    /// The node that starts with `event`.
    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Value, DecodeError> {
        match event {
            Event::Scalar(_, _, anchor, _) | Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _)
                if anchor != 0 =>
            {
                Err(ambiguous("an anchor", span))
            }
            Event::Scalar(_, _, _, Some(_))
            | Event::SequenceStart(_, _, Some(_))
            | Event::MappingStart(_, _, Some(_)) => Err(ambiguous("a tag", span)),
            Event::Scalar(text, style, _, None) => scalar(&text, style, span),
            Event::SequenceStart(..) => self.nested(Self::sequence),
            Event::MappingStart(..) => self.nested(Self::mapping),
            Event::Alias(_) | Event::UnresolvedAlias(_) => Err(ambiguous("an alias", span)),
            _ => Err(ambiguous("an unexpected event", span)),
        }
    }

    fn nested(&mut self, read: fn(&mut Self) -> Result<Value, DecodeError>) -> Result<Value, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep(MAX_DEPTH));
        }
        self.depth += 1;
        let value = read(self);
        self.depth -= 1;
        value
    }

    fn sequence(&mut self) -> Result<Value, DecodeError> {
        let mut items = Vec::new();
        loop {
            match self.next()? {
                (Event::SequenceEnd, _) => return Ok(Value::Array(items)),
                (event, span) => items.push(self.node(event, span)?),
            }
        }
    }

    fn mapping(&mut self) -> Result<Value, DecodeError> {
        let mut object = Map::new();
        loop {
            let key = match self.next()? {
                (Event::MappingEnd, _) => return Ok(Value::Object(object)),
                (event, span) => (key(event, span)?, span),
            };
            let (event, span) = self.next()?;
            let value = self.node(event, span)?;
            if object.contains_key(&key.0) {
                return Err(ambiguous(&format!("the key {:?} given twice", key.0), key.1));
            }
            object.insert(key.0, value);
        }
    }
}

/// A mapping key: a scalar that is a string to every reader.
fn key(event: Event, span: Span) -> Result<String, DecodeError> {
    match event {
        Event::Scalar(_, _, anchor, _) if anchor != 0 => Err(ambiguous("an anchor", span)),
        Event::Scalar(_, _, _, Some(_)) => Err(ambiguous("a tag", span)),
        Event::Scalar(text, _, _, None) if text == "<<" => Err(ambiguous("a merge key (<<)", span)),
        Event::Scalar(text, style, _, None) => match scalar(&text, style, span)? {
            Value::String(key) => Ok(key),
            _ => Err(ambiguous(&format!("the key {text:?}, which is not a string (quote it)"), span)),
        },
        Event::Alias(_) | Event::UnresolvedAlias(_) => Err(ambiguous("an alias", span)),
        _ => Err(ambiguous("a key that is not a string", span)),
    }
}

/// Events that are presentation, not data.
fn is_presentation(event: &Event) -> bool {
    !matches!(
        event,
        Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(..)
            | Event::DocumentEnd
            | Event::Alias(_)
            | Event::UnresolvedAlias(_)
            | Event::Scalar(..)
            | Event::SequenceStart(..)
            | Event::SequenceEnd
            | Event::MappingStart(..)
            | Event::MappingEnd
    )
}

fn ambiguous(construct: &str, span: Span) -> DecodeError {
    DecodeError::Ambiguous { construct: construct.to_owned(), line: span.start.line(), column: span.start.col() + 1 }
}

/// A scalar as every reader reads it; quoted and block scalars are strings.
fn scalar(text: &str, style: ScalarStyle, span: Span) -> Result<Value, DecodeError> {
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ if yaml11_only(text) => {
            return Err(ambiguous(&format!("the plain scalar {text:?} (YAML 1.1 reads it otherwise; quote it)"), span));
        }
        _ if is_integer(text) => integer(text).ok_or_else(|| ambiguous("an integer out of range", span))?,
        _ if is_float(text) => float(text).ok_or_else(|| ambiguous("a number JSON cannot hold", span))?,
        _ => Value::String(text.to_owned()),
    })
}

/// Plain scalars go-yaml v2 (YAML 1.1) resolves to something other than the YAML 1.2 core
/// reading, or to what JSON cannot hold.
fn yaml11_only(text: &str) -> bool {
    const WORDS: [&str; 16] =
        ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"];
    if WORDS.contains(&text) {
        return true;
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let lower = unsigned.to_ascii_lowercase();
    let numeric_start = unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    // Base prefixes, leading zeros, infinities and NaN (with or without YAML's dot).
    let special = lower.starts_with("0x")
        || lower.starts_with("0o")
        || lower.starts_with("0b")
        || (unsigned.len() > 1 && unsigned.starts_with('0') && unsigned.as_bytes()[1].is_ascii_digit())
        || ["inf", ".inf", "infinity", "nan", ".nan"].contains(&lower.as_str());
    // go-yaml drops underscores in numbers; sexagesimal (`1:20`) is YAML 1.1 too.
    let digits_with = |sep: char| {
        numeric_start && unsigned.contains(sep) && unsigned.chars().all(|c| c.is_ascii_digit() || c == sep || c == '.')
    };
    special || digits_with('_') || digits_with(':')
}

/// `[-+]?(0|[1-9][0-9]*)`
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (whole.is_empty() && all_digits(fraction))
                || (all_digits(whole) && (fraction.is_empty() || all_digits(fraction)))
        }
        None => all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| all_digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

fn integer(text: &str) -> Option<Value> {
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    unsigned.parse::<i64>().map(Value::from).ok().or_else(|| unsigned.parse::<u64>().map(Value::from).ok())
}

/// A float as go's `json.Marshal` writes a float64: integral values within 2^53 as integers.
fn float(text: &str) -> Option<Value> {
    let value: f64 = text.parse().ok()?;
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        return Some(Value::from(value as i64));
    }
    Number::from_f64(value).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Result<Value, DecodeError> {
        yaml(text.as_bytes())
    }

    #[test]
    fn plain_yaml_reads_as_json() {
        let cases = [
            (
                "kind: Pod\nmetadata: {name: p, labels: {app: web}}\n",
                json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}}}),
            ),
            ("---\na: [1, -2, +3, 0, 1.5, .5, 1e3, 2.50]\n", json!({"a": [1, -2, 3, 0, 1.5, 0.5, 1000, 2.5]})),
            ("a: ~\nb: null\nc:\nd: true\ne: False\n", json!({"a": null, "b": null, "c": null, "d": true, "e": false})),
            (
                "v: 1.2.3\nimage: nginx:1.25\nt: 2001-12-14\nq: 'yes'\nr: \"0777\"\n",
                json!({"v": "1.2.3", "image": "nginx:1.25", "t": "2001-12-14", "q": "yes", "r": "0777"}),
            ),
            (
                "s: |\n  line one\n  line two\n# a comment\nu: >\n  folded\n  text\n",
                json!({"s": "line one\nline two\n", "u": "folded text\n"}),
            ),
            ("\"1\": quoted key\n'true': also\n", json!({"1": "quoted key", "true": "also"})),
            (
                "{\"json\": [\"is\", \"yaml\"], \"n\": 18446744073709551615}",
                json!({"json": ["is", "yaml"], "n": 18446744073709551615u64}),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(read(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn constructs_readers_disagree_on_are_refused() {
        let cases = [
            ("spec: {! <<: {nodeSelector: {x: \"1\"}}, containers: []}", "tag"),
            ("spec:\n  <<: {nodeSelector: {x: \"1\"}}\n", "merge key"),
            ("spec:\n  \"<<\": {}\n", "merge key"),
            ("a: &x 1\nb: *x\n", "anchor"),
            ("a: !!str 1\n", "tag"),
            ("a: !foo x\n", "tag"),
            ("a: 1\na: 2\n", "twice"),
            ("1: x\n", "not a string"),
            ("true: x\n", "not a string"),
            ("~: x\n", "not a string"),
            ("? [a]\n: x\n", "not a string"),
            ("a: yes\n", "YAML 1.1"),
            ("a: off\n", "YAML 1.1"),
            ("a: y\n", "YAML 1.1"),
            ("mode: 0777\n", "YAML 1.1"),
            ("a: -012\n", "YAML 1.1"),
            ("a: 0x1F\n", "YAML 1.1"),
            ("a: 0o17\n", "YAML 1.1"),
            ("a: 0b101\n", "YAML 1.1"),
            ("a: 1_000\n", "YAML 1.1"),
            ("a: 1:20\n", "YAML 1.1"),
            ("a: 190:20:30\n", "YAML 1.1"),
            ("a: .inf\n", "YAML 1.1"),
            ("a: -.Inf\n", "YAML 1.1"),
            ("a: .NaN\n", "YAML 1.1"),
            ("a: +Infinity\n", "YAML 1.1"),
            ("a: 99999999999999999999\n", "out of range"),
        ];
        for (text, construct) in cases {
            let error = read(text).unwrap_err().to_string();
            assert!(error.contains(construct), "{text:?}: {error}");
            assert!(error.contains("line"), "{text:?}: {error}");
        }
    }

    #[test]
    fn exactly_one_document_is_read() {
        assert_eq!(read("a: 1\n---\nb: 2\n").unwrap_err(), DecodeError::Documents(2));
        assert_eq!(read("# only a comment\n").unwrap_err(), DecodeError::Documents(0));
        assert!(matches!(read("%YAML 1.1\n---\na: 1\n"), Err(DecodeError::Ambiguous { .. })));
        assert!(matches!(read("a: [1\n"), Err(DecodeError::Syntax(_))));
        assert!(matches!(yaml(b"a: \xff\n"), Err(DecodeError::Syntax(_))));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(read(&deep).unwrap_err(), DecodeError::TooDeep(MAX_DEPTH));
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(read(&fine).is_ok());
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use serde_json::Value;

    /// JSON values without floats (whose text forms differ between writers) or duplicate keys.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[ -~]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z0-9./<-]{1,10}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn json_text_reads_the_same_as_json_and_as_yaml(value in value()) {
            let text = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(&super::super::json(&text).unwrap(), &value);
            match super::yaml(&text) {
                Ok(read) => prop_assert_eq!(read, value),
                // A key `<<` is refused even quoted, as a merge key to some readers.
                Err(error) => prop_assert!(text.windows(4).any(|w| w == b"\"<<\""), "{}", error),
            }
        }
    }
}
