//! Request bodies read exactly as kube-apiserver reads them, or refused. A body Canopy judges must
//! mean to Canopy what it means to the apiserver, or Canopy would judge one object and the
//! apiserver store another; so wherever two readers of JSON or YAML could disagree (a key given
//! twice, YAML anchors, aliases, tags and merge keys, several documents, plain scalars such as `yes`
//! or `0777` that sigs.k8s.io/yaml reads by YAML 1.1 and other readers by YAML 1.2), the body is
//! refused with the construct and its place named, never guessed at. [`json`] and [`yaml`] are pure
//! functions from bytes to the `serde_json::Value` Canopy judges and forwards.

use std::fmt;

mod json;
mod yaml;

pub use json::{json, json_last_scalar};
pub use yaml::yaml;

/// Why a body cannot be read in one unambiguous way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not one JSON value (serde_json's reason, with its line and column).
    #[error("{0}")]
    Json(String),
    /// A key given twice in one JSON object: readers keep either value, Canopy cannot tell which.
    #[error("duplicate field {key:?} in {} at line {line} column {column}", object(.path))]
    JsonDuplicateKey { key: String, path: String, line: usize, column: usize },
    /// YAML bytes that are not UTF-8, from this byte on.
    #[error("the YAML body is not UTF-8 from byte {at_byte} on")]
    Utf8 { at_byte: usize },
    /// Not YAML at all (the parser's reason and place).
    #[error("not YAML: {0}")]
    Syntax(String),
    /// NEL, LS or PS: a line break to YAML 1.1 (go-yaml v2), text to YAML 1.2.
    #[error("the character U+{code:04X} at {at} is a line break to YAML 1.1 and text to YAML 1.2; remove it")]
    LineBreak { code: u32, at: Place },
    /// A `%YAML` or `%TAG` directive, which changes how the document reads.
    #[error("a YAML directive (%YAML, %TAG) at {at}: directives are refused")]
    Directive { at: Place },
    /// A stream without a document.
    #[error("the YAML body holds no document")]
    NoDocument,
    /// A second document: the apiserver reads only the first.
    #[error("a second YAML document at {at}: send exactly one")]
    SecondDocument { at: Place },
    /// An anchor (`&a`), which aliases repeat.
    #[error("the YAML anchor &{name} at {at}: anchors and aliases are refused; write the value out")]
    Anchor { name: String, at: Place },
    /// An alias (`*a`), which repeats an anchored node.
    #[error("a YAML alias at {at}: anchors and aliases are refused; write the value out")]
    Alias { at: Place },
    /// An explicit tag (`!`, `!!str`, `!foo`, `!<…>`), which changes how a node reads.
    #[error("the YAML tag {tag} at {at}: tags are refused; write the value plainly")]
    Tag { tag: String, at: Place },
    /// A merge key `<<` (plain or quoted), which merges a mapping in for YAML 1.1 readers only.
    #[error("the YAML merge key << at {at}: merge keys are refused; write the keys out")]
    MergeKey { at: Place },
    /// A key given twice in one YAML mapping.
    #[error("duplicate field {key:?} at {at}")]
    DuplicateKey { key: String, at: Place },
    /// A sequence or mapping used as a mapping key.
    #[error("a YAML {kind} as a mapping key at {at}: keys must be strings")]
    CollectionKey { kind: &'static str, at: Place },
    /// A plain key that resolves to null, a boolean or a number, which readers turn into
    /// different strings.
    #[error("the YAML key {key} at {at} is {reading}, not a string; quote it")]
    NonStringKey { key: String, reading: &'static str, at: Place },
    /// A plain scalar YAML 1.1 and YAML 1.2 read differently, or JSON cannot hold.
    #[error("the plain scalar {text:?} at {at} is {kind}; quote it")]
    Yaml11Scalar { text: String, kind: Yaml11, at: Place },
    /// A number outside 64-bit integers or finite doubles.
    #[error("the number {text} at {at} is out of range; quote it")]
    OutOfRange { text: String, at: Place },
    /// Nesting deeper than Canopy reads.
    #[error("the YAML body nests deeper than {limit} levels at {at}")]
    TooDeep { limit: usize, at: Place },
}

/// How a plain scalar reads differently between YAML 1.1 (go-yaml v2, the apiserver's reader)
/// and YAML 1.2, or why JSON cannot hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Yaml11 {
    /// `yes`, `no`, `on`, `off`, `y`, `n` in their spellings.
    Boolean,
    /// `0777`, `-012`.
    LeadingZero,
    /// `0x1F`, `0o17`, `0b101`, hex floats.
    BasePrefix,
    /// `1_000`.
    Underscore,
    /// `1:20`, `190:20:30`.
    Sexagesimal,
    /// `.inf`, `-.Inf`, `.nan`, `infinity`, `nan`.
    InfinityOrNan,
}

impl fmt::Display for Yaml11 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Boolean => "a boolean to YAML 1.1 and a string to YAML 1.2",
            Self::LeadingZero => "a number with a leading zero, octal to YAML 1.1 and decimal to YAML 1.2",
            Self::BasePrefix => "a number with a base prefix, which YAML readers read differently",
            Self::Underscore => "a number with underscores to YAML 1.1 and a string to YAML 1.2",
            Self::Sexagesimal => "a base-60 number to YAML 1.1 and a string to YAML 1.2",
            Self::InfinityOrNan => "an infinity or NaN, which JSON cannot hold",
        })
    }
}

/// A place in a YAML body: line and column (in characters), both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The line, from 1.
    pub line: usize,
    /// The column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The object a JSON path names, for messages.
fn object(path: &str) -> &str {
    if path.is_empty() { "the top-level object" } else { path }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{DecodeError, yaml};

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
            (
                "---\na: [1, -2, +3, 0, -0, 1.5, .5, -.5, 1e3, 2.50, 1., 1.e2, 0.0, 0e3, 1e-400]\n",
                json!({"a": [1, -2, 3, 0, 0, 1.5, 0.5, -0.5, 1000, 2.5, 1, 100, 0, 0, 0]}),
            ),
            (
                "big: [9223372036854775807, -9223372036854775808, 18446744073709551615, 9007199254740992.0, 1e16, 1e19, 1e20, 1e300]",
                json!({"big": [i64::MAX, i64::MIN, u64::MAX, 9007199254740992i64, 10000000000000000i64, 10000000000000000000u64, 1e20, 1e300]}),
            ),
            (
                "a: ~\nb: null\nc:\nd: true\ne: False\nf: NULL\ng: TRUE\n",
                json!({"a": null, "b": null, "c": null, "d": true, "e": false, "f": null, "g": true}),
            ),
            (
                concat!(
                    "v: 1.2.3\nimage: nginx:1.25\nt: 2001-12-14\nq: 'yes'\nr: \"0777\"\n",
                    "sha: 0b7a2c9\nw: yesterday\nx: 1e\n"
                ),
                json!({
                    "v": "1.2.3", "image": "nginx:1.25", "t": "2001-12-14", "q": "yes", "r": "0777",
                    "sha": "0b7a2c9", "w": "yesterday", "x": "1e",
                }),
            ),
            (
                "s: |\n  line one\n  line two\n# a comment\nu: >\n  folded\n  text\nend: |\n  no line feed",
                json!({"s": "line one\nline two\n", "u": "folded text\n", "end": "no line feed"}),
            ),
            ("\"1\": quoted key\n'true': also\n\"~\": too\n", json!({"1": "quoted key", "true": "also", "~": "too"})),
            (
                "{\"json\": [\"is\", \"yaml\"], \"n\": 18446744073709551615}",
                json!({"json": ["is", "yaml"], "n": 18446744073709551615u64}),
            ),
            ("--- text\n...\n", json!("text")),
            ("\u{feff}- a\n- 'b''s'\n- \"\\u00e9\\t\"\n", json!(["a", "b's", "é\t"])),
        ];
        for (text, expected) in cases {
            assert_eq!(read(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn constructs_readers_disagree_on_are_refused() {
        let cases = [
            ("spec: {! <<: {nodeSelector: {x: \"1\"}}, containers: []}", "tag ! at 1:8"),
            ("spec:\n  <<: {nodeSelector: {x: \"1\"}}\n", "merge key << at 2:3"),
            ("spec:\n  \"<<\": {}\n", "merge key << at 2:3"),
            ("a: &x 1\nb: *x\n", "anchor &x at 1:4"),
            ("&k a: 1\n", "anchor &k at 1:1"),
            ("a: [*missing]\n", "alias at 1:5"),
            ("a: !!str 1\n", "tag !!str at 1:4"),
            ("a: !foo x\n", "tag !foo at 1:4"),
            ("a: !<tag:yaml.org,2002:str> x\n", "tag !<tag:yaml.org,2002:str> at 1:4"),
            ("--- !!map\na: 1\n", "tag !!map at 1:5"),
            ("a: 1\nb: 2\na: 3\n", "duplicate field \"a\" at 3:1"),
            ("a: 1\n'a': 2\n", "duplicate field \"a\" at 2:1"),
            ("1: x\n", "key 1 at 1:1 is a number"),
            ("true: x\n", "key true at 1:1 is a boolean"),
            ("~: x\n", "key ~ at 1:1 is null"),
            ("1.5: x\n", "key 1.5 at 1:1 is a number"),
            ("? [a]\n: x\n", "sequence as a mapping key at 1:3"),
            ("? {a: 1}\n: x\n", "mapping as a mapping key at 1:3"),
            ("a: 1\n---\nb: 2\n", "second YAML document at 2:1"),
            ("a: 1\n---\n", "second YAML document at 2:1"),
            ("%YAML 1.1\n---\na: 1\n", "directive (%YAML, %TAG) at 1:1"),
            ("%TAG !e! tag:example.com,2000:\n---\na: 1\n", "directive (%YAML, %TAG) at 1:1"),
            ("", "no document"),
            ("# only a comment\n", "no document"),
            ("a: yes\n", "\"yes\" at 1:4 is a boolean to YAML 1.1"),
            ("a: [y, Y, n, No, on, OFF]\n", "\"y\" at 1:5 is a boolean"),
            ("on: x\n", "\"on\" at 1:1 is a boolean"),
            ("mode: 0777\n", "\"0777\" at 1:7 is a number with a leading zero"),
            ("a: -012\n", "leading zero"),
            ("a: 0x1F\n", "base prefix"),
            ("a: -0X1f\n", "base prefix"),
            ("a: 0o17\n", "base prefix"),
            ("a: 0b101\n", "base prefix"),
            ("a: 0x1.8p3\n", "base prefix"),
            ("a: 1_000\n", "underscores"),
            ("a: 1_0e3\n", "underscores"),
            ("a: 1:20\n", "base-60"),
            ("a: 190:20:30.15\n", "base-60"),
            ("a: .inf\n", "infinity or NaN"),
            ("a: -.Inf\n", "infinity or NaN"),
            ("a: +.INF\n", "infinity or NaN"),
            ("a: .NaN\n", "infinity or NaN"),
            ("a: +Infinity\n", "infinity or NaN"),
            ("a: nan\n", "infinity or NaN"),
            ("a: 99999999999999999999\n", "number 99999999999999999999 at 1:4 is out of range"),
            ("a: +18446744073709551615\n", "out of range"),
            ("a: 1e400\n", "out of range"),
            ("a: x\u{2028}b: y\n", "U+2028 at 1:5 is a line break"),
            ("a: 1 # x\u{85}b: 2\n", "U+0085 at 1:9"),
            ("a: [1\n", "not YAML"),
        ];
        for (text, expected) in cases {
            let error = read(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        assert_eq!(yaml(b"a: \xff\n").unwrap_err(), DecodeError::Utf8 { at_byte: 3 });
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::DecodeError;

    /// JSON values without floats (whose text forms differ between writers) or duplicate keys.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            "[ -~\\x01\\t\\né日😀]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[ -~]{0,10}|<<", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn has_merge_key(value: &Value) -> bool {
        match value {
            Value::Object(map) => map.iter().any(|(key, value)| key == "<<" || has_merge_key(value)),
            Value::Array(items) => items.iter().any(has_merge_key),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn json_text_reads_the_same_as_json_and_as_yaml(value in value()) {
            let text = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(&super::json(&text).unwrap(), &value);
            match super::yaml(&text) {
                // A key `<<` is refused even quoted: a merge key to some readers.
                Err(DecodeError::MergeKey { .. }) => prop_assert!(has_merge_key(&value)),
                read => prop_assert_eq!(read.unwrap(), value),
            }
        }
    }
}
