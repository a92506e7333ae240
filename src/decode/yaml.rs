//! YAML as the apiserver reads it: sigs.k8s.io/yaml converts YAML to JSON with go-yaml v2, which
//! resolves plain scalars by YAML 1.1 (`yes` is true, `0777` is 511, `<<` merges a mapping in).
//! Canopy reads the parser's events itself and keeps only what every reader reads alike: plain
//! scalars resolve to null, booleans, decimal integers and floats, or strings; whatever YAML 1.1
//! and 1.2 resolve differently, and every construct that rewrites the tree (anchors, aliases,
//! merge keys, tags), is refused with its place.

use std::borrow::Cow;

use granit_parser::{ErrorKind, Event, Marker, Options, Parser, ScalarStyle, ScanError, Span, StrInput};
use serde_json::{Map, Number, Value};

use super::{DecodeError, Place, Yaml11};

/// Deepest nesting read, as serde_json's own limit for JSON.
const MAX_DEPTH: usize = 128;

/// A YAML body read as the apiserver reads it, or refused where YAML readers could disagree.
pub fn yaml(bytes: &[u8]) -> Result<Value, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::Utf8 { at_byte: e.valid_up_to() })?;
    if let Some(error) = yaml11_line_break(text) {
        return Err(error);
    }
    Reader { events: Parser::new_from_str_with_options(text, options()), depth: 0 }.stream()
}

fn options() -> Options {
    let mut options = granit_parser::options! {
        // `%YAML` and `%TAG` change how the document reads.
        disallow_directives: true,
        // As libyaml, whose port go-yaml v2 is: `a: |\n  text` at the end of input is "text".
        block_scalar_eof_without_line_feed: true,
        // Aliases and anchors are refused by name and place, not as unknown-anchor syntax errors.
        emit_unresolved_aliases: true,
        emit_anchor_events: true,
    };
    options.set_emit_comments(false);
    options
}

struct Reader<'a> {
    events: Parser<'a, StrInput<'a>>,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// The one document of the stream.
    fn stream(&mut self) -> Result<Value, DecodeError> {
        let mut document = None;
        loop {
            match self.next()? {
                (Event::StreamStart, _) => {}
                (Event::StreamEnd, _) => return document.ok_or(DecodeError::NoDocument),
                (Event::DocumentStart(..), span) if document.is_some() => {
                    return Err(DecodeError::SecondDocument { at: place(span.start) });
                }
                (Event::DocumentStart(..), _) => {
                    let (event, span) = self.next()?;
                    document = Some(self.node(event, span)?);
                    match self.next()? {
                        (Event::DocumentEnd, _) => {}
                        (_, span) => return Err(syntax("content after the document", span.start)),
                    }
                }
                (_, span) => return Err(syntax("content outside a document", span.start)),
            }
        }
    }

    /// The next event that is data: not an anchor's name (comments are not emitted).
    fn next(&mut self) -> Result<(Event<'a>, Span), DecodeError> {
        loop {
            match self.events.next() {
                None => return Err(DecodeError::Syntax("the body ends inside a document".into())),
                Some(Err(error)) => return Err(scan_error(&error)),
                Some(Ok((Event::Anchor(..), _))) => {}
                Some(Ok(next)) => return Ok(next),
            }
        }
    }

    /// The node that starts with `event`.
    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Value, DecodeError> {
        self.refuse_properties(&event, span)?;
        match event {
            Event::Scalar(text, style, ..) => scalar(text, style, place(span.start)),
            Event::SequenceStart(..) => self.nested(span, Self::sequence),
            Event::MappingStart(..) => self.nested(span, Self::mapping),
            Event::Alias(_) | Event::UnresolvedAlias(_) => Err(DecodeError::Alias { at: place(span.start) }),
            _ => Err(syntax("an unexpected event", span.start)),
        }
    }

    /// Refuses an anchor (aliases repeat what it names) and a tag (it changes how a node reads).
    fn refuse_properties(&mut self, event: &Event, span: Span) -> Result<(), DecodeError> {
        let (anchor, tag) = match event {
            Event::Scalar(_, _, anchor, tag)
            | Event::SequenceStart(_, anchor, tag)
            | Event::MappingStart(_, anchor, tag) => (*anchor, tag),
            _ => return Ok(()),
        };
        if anchor != 0 {
            // The anchor's name and place come in the event right after its node.
            return Err(match self.events.next() {
                Some(Ok((Event::Anchor(_, name), at))) => {
                    DecodeError::Anchor { name: name.into(), at: place(at.start) }
                }
                _ => DecodeError::Anchor { name: String::new(), at: place(span.start) },
            });
        }
        match tag {
            Some(tag) => Err(DecodeError::Tag { tag: tag.original(), at: place(span.tag_start.unwrap_or(span.start)) }),
            None => Ok(()),
        }
    }

    fn nested(&mut self, span: Span, read: fn(&mut Self) -> Result<Value, DecodeError>) -> Result<Value, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { limit: MAX_DEPTH, at: place(span.start) });
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
            let (event, span) = self.next()?;
            if let Event::MappingEnd = event {
                return Ok(Value::Object(object));
            }
            let key = self.key(event, span)?;
            if object.contains_key(&key) {
                return Err(DecodeError::DuplicateKey { key, at: place(span.start) });
            }
            let (event, span) = self.next()?;
            let value = self.node(event, span)?;
            object.insert(key, value);
        }
    }

    /// A mapping key: a scalar that is a string to every reader.
    fn key(&mut self, event: Event<'a>, span: Span) -> Result<String, DecodeError> {
        self.refuse_properties(&event, span)?;
        let at = place(span.start);
        match event {
            Event::Scalar(text, ..) if text == "<<" => Err(DecodeError::MergeKey { at }),
            Event::Scalar(text, style, ..) => match scalar(Cow::Borrowed(&text), style, at)? {
                Value::String(key) => Ok(key),
                read => Err(DecodeError::NonStringKey { key: text.into(), reading: reading(&read), at }),
            },
            Event::SequenceStart(..) => Err(DecodeError::CollectionKey { kind: "sequence", at }),
            Event::MappingStart(..) => Err(DecodeError::CollectionKey { kind: "mapping", at }),
            Event::Alias(_) | Event::UnresolvedAlias(_) => Err(DecodeError::Alias { at }),
            _ => Err(syntax("an unexpected event as a key", span.start)),
        }
    }
}

fn place(marker: Marker) -> Place {
    Place { line: marker.line(), column: marker.col() + 1 }
}

fn syntax(what: &str, marker: Marker) -> DecodeError {
    DecodeError::Syntax(format!("{what} at {}", place(marker)))
}

fn scan_error(error: &ScanError) -> DecodeError {
    match error.kind() {
        ErrorKind::DirectiveDisallowed => DecodeError::Directive { at: place(*error.marker()) },
        _ => DecodeError::Syntax(error.to_string()),
    }
}

/// The first NEL, LS or PS: go-yaml v2 breaks a line there (even inside a comment or a quoted
/// scalar), YAML 1.2 readers do not.
fn yaml11_line_break(text: &str) -> Option<DecodeError> {
    let at = text.find(['\u{85}', '\u{2028}', '\u{2029}'])?;
    let before = &text[..at];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    let code = text[at..].chars().next().map_or(0, u32::from);
    Some(DecodeError::LineBreak { code, at: Place { line, column } })
}

fn reading(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        _ => "a number",
    }
}

/// A scalar as every reader reads it; quoted and block scalars are strings.
fn scalar(text: Cow<str>, style: ScalarStyle, at: Place) -> Result<Value, DecodeError> {
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.into()));
    }
    let number = match &*text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        plain => match yaml11(plain) {
            Some(kind) => return Err(DecodeError::Yaml11Scalar { text: text.into(), kind, at }),
            None if is_integer(plain) => integer(plain),
            None if is_float(plain) => float(plain),
            None => return Ok(Value::String(text.into())),
        },
    };
    number.ok_or_else(|| DecodeError::OutOfRange { text: text.into(), at })
}

/// How YAML 1.1 (go-yaml v2) reads a plain scalar differently from YAML 1.2, or `None` when
/// they agree.
fn yaml11(text: &str) -> Option<Yaml11> {
    const BOOLEANS: [&str; 16] =
        ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"];
    const INFINITIES: [&str; 5] = ["inf", ".inf", "infinity", "nan", ".nan"];
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let bytes = unsigned.as_bytes();
    if BOOLEANS.contains(&text) {
        Some(Yaml11::Boolean)
    } else if INFINITIES.iter().any(|word| unsigned.eq_ignore_ascii_case(word)) {
        Some(Yaml11::InfinityOrNan)
    } else if is_base_prefixed(bytes) {
        Some(Yaml11::BasePrefix)
    } else if bytes.len() > 1 && bytes[0] == b'0' && bytes[1].is_ascii_digit() && is_float(unsigned) {
        Some(Yaml11::LeadingZero)
    } else if is_sexagesimal(unsigned) {
        Some(Yaml11::Sexagesimal)
    } else if is_underscored_number(text) {
        Some(Yaml11::Underscore)
    } else {
        None
    }
}

/// go-yaml drops the underscores of a scalar that starts like a number, then reads the rest.
fn is_underscored_number(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') && text.contains('_') && {
        let plain = text.replace('_', "");
        is_float(&plain) || yaml11(&plain).is_some()
    }
}

/// `0x1F`, `0o17`, `0b101` (underscores as Go takes them) and hex floats (`0x1.8p3`), unsigned.
fn is_base_prefixed(bytes: &[u8]) -> bool {
    let [b'0', base, digits @ ..] = bytes else { return false };
    !digits.is_empty()
        && match base.to_ascii_lowercase() {
            b'x' => digits.iter().all(|b| b.is_ascii_hexdigit() || b"_.pP+-".contains(b)),
            b'o' => digits.iter().all(|b| matches!(b, b'0'..=b'7' | b'_')),
            b'b' => digits.iter().all(|b| matches!(b, b'0' | b'1' | b'_')),
            _ => false,
        }
}

/// YAML 1.1's base 60, unsigned: `[0-9][0-9_]*(:[0-9]{1,2})+(\.[0-9_]*)?`.
fn is_sexagesimal(unsigned: &str) -> bool {
    let Some((head, tail)) = unsigned.split_once(':') else { return false };
    let (tail, fraction) = tail.split_once('.').unwrap_or((tail, ""));
    head.starts_with(|c: char| c.is_ascii_digit())
        && head.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && tail.split(':').all(|part| (1..=2).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
        && fraction.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}

/// `[-+]?(0|[1-9][0-9]*)`
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'))
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)))
}

fn integer(text: &str) -> Option<Value> {
    if let Ok(signed) = text.parse::<i64>() {
        return Some(Value::from(signed));
    }
    // Beyond i64, go-yaml reads an integer only without a sign (ParseUint takes none).
    if text.starts_with(['-', '+']) {
        return None;
    }
    text.parse::<u64>().ok().map(Value::from)
}

/// A float as Go's `json.Marshal` writes a float64: integral values below 1e21 as the integer
/// digits of the double (as far as JSON numbers here can hold them: within 64-bit integers).
fn float(text: &str) -> Option<Value> {
    // 2^63: the first integral double an i64 cannot hold.
    const I64_END: f64 = 9_223_372_036_854_775_808.0;
    let value: f64 = text.parse().ok()?;
    if value.fract() == 0.0 && value.abs() < 1e21 {
        if (-I64_END..I64_END).contains(&value) {
            return Some(Value::from(value as i64));
        }
        if value > 0.0 && value < 2.0 * I64_END {
            return Some(Value::from(value as u64));
        }
    }
    Number::from_f64(value).map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(yaml(deep.as_bytes()), Err(DecodeError::TooDeep { limit: MAX_DEPTH, .. })));
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(yaml(fine.as_bytes()).is_ok());
    }

    #[test]
    fn scalar_matchers() {
        for (text, expected) in [
            ("yes", Some(Yaml11::Boolean)),
            ("YES", Some(Yaml11::Boolean)),
            ("yEs", None),
            ("-INF", Some(Yaml11::InfinityOrNan)),
            ("+.nan", Some(Yaml11::InfinityOrNan)),
            ("0XfF", Some(Yaml11::BasePrefix)),
            ("0x", None),
            ("0xdead_beef", Some(Yaml11::BasePrefix)),
            ("0b102", None),
            ("00", Some(Yaml11::LeadingZero)),
            ("01.5", Some(Yaml11::LeadingZero)),
            ("0123abc", None),
            ("0.5", None),
            ("12:30", Some(Yaml11::Sexagesimal)),
            ("1:2:3", Some(Yaml11::Sexagesimal)),
            ("1:", None),
            ("1:234", None),
            ("a:1", None),
            ("_1", None),
            ("1_a", None),
            ("-1__", Some(Yaml11::Underscore)),
            ("0_777", Some(Yaml11::Underscore)),
            ("1.2.3", None),
        ] {
            assert_eq!(yaml11(text), expected, "{text}");
        }
        for (text, integer, float) in [
            ("0", true, true),
            ("-0", true, true),
            ("+12", true, true),
            ("012", false, true),
            ("1.", false, true),
            (".5", false, true),
            ("-.5e-3", false, true),
            ("1e+5", false, true),
            (".", false, false),
            ("1e", false, false),
            ("e5", false, false),
            ("+", false, false),
            ("1.5.", false, false),
            ("--1", false, false),
        ] {
            assert_eq!((is_integer(text), is_float(text)), (integer, float), "{text}");
        }
    }
}
