//! JSON as the apiserver's strict decoder reads it: serde_json's reading, with a key that appears
//! twice in one object refused (sigs.k8s.io/json keeps the last value silently and strict field
//! validation rejects it; Canopy must not judge one value and forward the other).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::DecodeError;

/// A JSON body, duplicate object keys refused at any depth.
pub fn json(bytes: &[u8]) -> Result<Value, DecodeError> {
    read(bytes, false).map(|(value, _)| value)
}

/// A JSON body read as the apiserver reads it when field validation is `Warn` or `Ignore`: a
/// key given twice with a scalar both times keeps its last value, as every reader does, and is
/// listed (as a field path, `data.a`); a key given twice with an object or array refused as by
/// [`json`], since Go merges those into typed fields and replaces them elsewhere.
pub fn json_last_scalar(bytes: &[u8]) -> Result<(Value, Vec<String>), DecodeError> {
    read(bytes, true)
}

fn read(bytes: &[u8], last_scalar: bool) -> Result<(Value, Vec<String>), DecodeError> {
    let duplicate = Cell::new(None);
    let (way, kept) = (RefCell::new(Vec::new()), RefCell::new(Vec::new()));
    let seed = Strict { duplicate: &duplicate, last_scalar, way: &way, kept: &kept };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let read = seed.deserialize(&mut deserializer);
    let value = read.and_then(|value| deserializer.end().map(|()| value)).map_err(|error| match duplicate.take() {
        Some(Duplicate { key, way }) => {
            DecodeError::JsonDuplicateKey { key, path: path(&way), line: error.line(), column: error.column() }
        }
        None => DecodeError::Json(error.to_string()),
    })?;
    Ok((value, kept.into_inner()))
}

/// A key found twice, and the way from it out to the top (innermost step first).
struct Duplicate {
    key: String,
    way: Vec<Step>,
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Builds a `Value`, refusing duplicate keys; the error of one is told through `duplicate`.
/// With `last_scalar`, a key given twice with scalars keeps the last and is listed in `kept`
/// (`way` is the way in to the value being read).
#[derive(Clone, Copy)]
struct Strict<'a> {
    duplicate: &'a Cell<Option<Duplicate>>,
    last_scalar: bool,
    way: &'a RefCell<Vec<Step>>,
    kept: &'a RefCell<Vec<String>>,
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

impl Strict<'_> {
    /// The error for `key` given twice in the object being read.
    fn refuse_duplicate<E: serde::de::Error>(self, key: String) -> E {
        let error = E::custom(format!("duplicate field {key:?}"));
        self.duplicate.set(Some(Duplicate { key, way: Vec::new() }));
        error
    }

    /// Records, while a duplicate's error goes up, the step it came out of.
    fn step(self, step: Step) {
        if let Some(mut duplicate) = self.duplicate.take() {
            duplicate.way.push(step);
            self.duplicate.set(Some(duplicate));
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            self.way.borrow_mut().push(Step::Index(items.len()));
            let read = seq.next_element_seed(self);
            self.way.borrow_mut().pop();
            match read {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(error) => {
                    self.step(Step::Index(items.len()));
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let again = object.contains_key(&key);
            if again && !self.last_scalar {
                return Err(self.refuse_duplicate(key));
            }
            self.way.borrow_mut().push(Step::Key(key.clone()));
            let read = map.next_value_seed(self);
            let at = self.way.borrow_mut().pop();
            match read {
                Ok(value) if again => {
                    if !is_scalar(&value) || !object.get(&key).is_some_and(is_scalar) {
                        return Err(self.refuse_duplicate(key));
                    }
                    let mut way = self.way.borrow().clone();
                    way.extend(at);
                    way.reverse();
                    self.kept.borrow_mut().push(path(&way));
                    object.insert(key, value);
                }
                Ok(value) => drop(object.insert(key, value)),
                Err(error) => {
                    self.step(Step::Key(key));
                    return Err(error);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// The way to an object as a field path (`spec.containers[0]`), keys that are not names quoted.
fn path(way: &[Step]) -> String {
    let mut path = String::new();
    for step in way.iter().rev() {
        let _ = match step {
            Step::Index(index) => write!(path, "[{index}]"),
            Step::Key(key) if is_name(key) && path.is_empty() => write!(path, "{key}"),
            Step::Key(key) if is_name(key) => write!(path, ".{key}"),
            Step::Key(key) => write!(path, "[{key:?}]"),
        };
    }
    path
}

fn is_name(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json as value;

    #[test]
    fn a_scalar_given_twice_keeps_its_last_value_and_is_named() {
        let (read, kept) = json_last_scalar(br#"{"data": {"a": "1", "a": "2"}, "l": [{"x": 1, "x": 2}]}"#).unwrap();
        assert_eq!(read, value!({"data": {"a": "2"}, "l": [{"x": 2}]}));
        assert_eq!(kept, ["data.a", "l[0].x"]);
        // Objects and arrays given twice are merged by some readers and replaced by others.
        for twice in [r#"{"spec": {"a": 1}, "spec": {"b": 2}}"#, r#"{"l": [1], "l": [2]}"#, r#"{"a": 1, "a": {}}"#] {
            assert!(matches!(json_last_scalar(twice.as_bytes()), Err(DecodeError::JsonDuplicateKey { .. })), "{twice}");
        }
        assert!(json(br#"{"a": "1", "a": "2"}"#).is_err());
    }

    const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"dev",
        "labels":{"app":"web"},"annotations":{"a.b/c":"d"}},"spec":{"containers":[{"name":"c",
        "image":"nginx:1.25","args":["-v"],"ports":[{"containerPort":80,"protocol":"TCP"}],
        "resources":{"limits":{"cpu":"500m","memory":"64Mi"}}}],"terminationGracePeriodSeconds":30,
        "x":1.5,"n":null,"big":18446744073709551615,"neg":-3,"t":true}}"#;

    #[test]
    fn objects_read_as_serde_json_reads_them() {
        assert_eq!(json(POD.as_bytes()).unwrap(), serde_json::from_str::<Value>(POD).unwrap());
        assert_eq!(json(b" [1, true, \"\\u00e9\", 1e2] ").unwrap(), value!([1, true, "é", 100.0]));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let cases = [
            (r#"{"spec": {}, "spec": {}}"#, "duplicate field \"spec\" in the top-level object at line 1 column 19"),
            (r#"{"a": [{"b": 1}, {"b": 1, "b": 2}]}"#, "duplicate field \"b\" in a[1] at"),
            (r#"{"a": {"x.y": {"y": 1, "y": 1}}}"#, "duplicate field \"y\" in a[\"x.y\"] at"),
            (r#"[[{"k": 1, "k": 1}]]"#, "duplicate field \"k\" in [0][0] at"),
        ];
        for (text, expected) in cases {
            let error = json(text.as_bytes()).unwrap_err();
            assert!(matches!(error, DecodeError::JsonDuplicateKey { .. }), "{text}: {error:?}");
            assert!(error.to_string().starts_with(expected), "{text}: {error}");
        }
        assert!(json(br#"{"a": 1, "A": 2}"#).is_ok(), "keys are case-sensitive, as in the apiserver");
        assert!(json(br#"{"a": {"b": 1}, "c": {"b": 1}}"#).is_ok(), "one key in two objects");
    }

    #[test]
    fn what_is_not_one_json_value_is_refused() {
        for text in ["", "{", "{} {}", "{\"a\": 1,}", "[1] x", "NaN", "{\"a\": 1e999}"] {
            assert!(matches!(json(text.as_bytes()), Err(DecodeError::Json(_))), "{text:?}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(matches!(json(deep.as_bytes()), Err(DecodeError::Json(_))), "nesting is bounded");
    }
}
