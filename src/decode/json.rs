//! JSON as the apiserver's strict decoder reads it: serde_json's reading, with a key that
//! appears twice in one object refused (sigs.k8s.io/json keeps the last value silently, and
//! strict field validation rejects it; Canopy must not judge one value and forward the other).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::DecodeError;

/// A JSON body, duplicate object keys refused at any depth.
pub fn json(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Strict.deserialize(&mut deserializer).map_err(|e| DecodeError::Json(e.to_string()))?;
    deserializer.end().map_err(|e| DecodeError::Json(e.to_string()))?;
    Ok(value)
}

/// Builds a `Value`, refusing duplicate keys.
#[derive(Clone, Copy)]
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
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
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate field {key:?}")));
            }
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json as value;

    #[test]
    fn objects_read_as_serde_json_reads_them() {
        let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"}},
            "spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}]}],"x":1.5,"n":null,"big":18446744073709551615,"neg":-3}}"#;
        assert_eq!(json(pod).unwrap(), serde_json::from_slice::<Value>(pod).unwrap());
        assert_eq!(json(b" [1, true, \"\\u00e9\"] ").unwrap(), value!([1, true, "é"]));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [r#"{"spec": {}, "spec": {}}"#, r#"{"a": [{"b": 1, "b": 2}]}"#, r#"{"a": {"x": {"y": 1, "y": 1}}}"#]
        {
            let error = json(text.as_bytes()).unwrap_err().to_string();
            assert!(error.contains("duplicate field"), "{text}: {error}");
        }
        assert!(json(br#"{"a": 1, "A": 2}"#).is_ok(), "keys are case-sensitive, as in the apiserver");
    }

    #[test]
    fn what_is_not_one_json_value_is_refused() {
        for text in ["", "{", "{} {}", "{\"a\": 1,}", "[1] x"] {
            assert!(json(text.as_bytes()).is_err(), "{text:?}");
        }
    }
}
