//! PartialObjectMetadata and PartialObjectMetadataList in Kubernetes protobuf, encoded by Canopy
//! from the JSON document it asked upstream for and translated (design invariant 10: what
//! leaves is Canopy's own serialization of what it filtered). The encoding is the apiserver's
//! byte for byte: `k8s\0` and a `runtime.Unknown` envelope around the message, fields in
//! ascending order, non-pointer strings and integers written even when empty, pointer fields
//! only when set, map entries sorted by key (field numbers from apimachinery's
//! `pkg/apis/meta/v1/generated.proto` and `pkg/runtime/generated.proto`). Watch events are
//! `WatchEvent{type, object: RawExtension{raw}}` frames, each after its length as four
//! big-endian bytes; an ERROR event holds a `Status`, which is encoded too. Every other kind is
//! [`Unencodable`]: Canopy does not guess a schema.

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

use crate::rewrite::protobuf::{put_field, put_varint};

/// The media type of the answers encoded here.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// The media type of watch streams of them.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

const MAGIC: &[u8] = b"k8s\x00";
const API_VERSION: &str = "meta.k8s.io/v1";

/// Why a JSON document cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unencodable {
    /// The document is of a kind whose protobuf schema Canopy does not encode.
    #[error("Canopy encodes only meta.k8s.io/v1 PartialObjectMetadata(List) and v1 Status in protobuf, not {0}")]
    Kind(String),
    /// A field does not hold what the schema says it holds.
    #[error("field {0} does not hold what its protobuf schema says")]
    Field(&'static str),
    /// A watch event is not `{"type": ..., "object": ...}`.
    #[error("a watch event without a type and an object")]
    Event,
}

type Result<T> = std::result::Result<T, Unencodable>;

/// The document `doc` (a PartialObjectMetadata, a PartialObjectMetadataList, or a Status such as
/// a watch's ERROR event holds) as the apiserver serves it in protobuf: `k8s\0` and a
/// `runtime.Unknown`.
pub fn encode(doc: &Value) -> Result<Vec<u8>> {
    let object = doc.as_object().ok_or_else(|| Unencodable::Kind("a document that is not an object".into()))?;
    let kind = string(object, "kind", "kind")?;
    let api_version = string(object, "apiVersion", "apiVersion")?;
    let raw = match (api_version, kind) {
        (API_VERSION, "PartialObjectMetadata") => partial_object_metadata(object)?,
        (API_VERSION, "PartialObjectMetadataList") => partial_object_metadata_list(object)?,
        ("v1", "Status") => status(object)?,
        _ => return Err(Unencodable::Kind(format!("{api_version} {kind}"))),
    };
    let mut type_meta = Vec::new();
    put_string(&mut type_meta, 1, api_version);
    put_string(&mut type_meta, 2, kind);
    let mut out = MAGIC.to_vec();
    put_field(&mut out, 1, &type_meta);
    put_field(&mut out, 2, &raw);
    // contentEncoding and contentType: empty, and written as the apiserver writes them.
    put_string(&mut out, 3, "");
    put_string(&mut out, 4, "");
    Ok(out)
}

/// One watch event (`{"type": ..., "object": ...}`) as a protobuf watch stream frames it.
pub fn encode_event(event: &Value) -> Result<Vec<u8>> {
    let kind = event.get("type").and_then(Value::as_str).ok_or(Unencodable::Event)?;
    let object = event.get("object").ok_or(Unencodable::Event)?;
    let mut raw_extension = Vec::new();
    put_field(&mut raw_extension, 1, &encode(object)?);
    let mut message = Vec::new();
    put_string(&mut message, 1, kind);
    put_field(&mut message, 2, &raw_extension);
    let length = u32::try_from(message.len()).map_err(|_| Unencodable::Event)?;
    Ok([&length.to_be_bytes()[..], &message].concat())
}

fn partial_object_metadata(object: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    put_field(&mut out, 1, &object_meta(section(object, "metadata")?)?);
    Ok(out)
}

fn partial_object_metadata_list(list: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    put_field(&mut out, 1, &list_meta(section(list, "metadata")?)?);
    for item in array(list, "items", "items")? {
        let item = item.as_object().ok_or(Unencodable::Field("items"))?;
        put_field(&mut out, 2, &partial_object_metadata(item)?);
    }
    Ok(out)
}

/// A `Status` (errors, and the object of a watch's ERROR event).
fn status(object: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    put_field(&mut out, 1, &list_meta(section(object, "metadata")?)?);
    put_string(&mut out, 2, string(object, "status", "status")?);
    put_string(&mut out, 3, string(object, "message", "message")?);
    put_string(&mut out, 4, string(object, "reason", "reason")?);
    if optional(object, "details").is_some() {
        let details = section(object, "details")?;
        let mut encoded = Vec::new();
        put_string(&mut encoded, 1, string(details, "name", "details.name")?);
        put_string(&mut encoded, 2, string(details, "group", "details.group")?);
        put_string(&mut encoded, 3, string(details, "kind", "details.kind")?);
        for cause in array(details, "causes", "details.causes")? {
            let cause = cause.as_object().ok_or(Unencodable::Field("details.causes"))?;
            let mut entry = Vec::new();
            for (number, key) in [(1, "reason"), (2, "message"), (3, "field")] {
                put_string(&mut entry, number, string(cause, key, "details.causes")?);
            }
            put_field(&mut encoded, 4, &entry);
        }
        let retry = integer(details, "retryAfterSeconds", "details.retryAfterSeconds")?;
        put_integer(&mut encoded, 5, retry.unwrap_or(0));
        put_string(&mut encoded, 6, string(details, "uid", "details.uid")?);
        put_field(&mut out, 5, &encoded);
    }
    put_integer(&mut out, 6, integer(object, "code", "code")?.unwrap_or(0));
    Ok(out)
}

fn list_meta(meta: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    put_string(&mut out, 1, string(meta, "selfLink", "metadata.selfLink")?);
    put_string(&mut out, 2, string(meta, "resourceVersion", "metadata.resourceVersion")?);
    put_string(&mut out, 3, string(meta, "continue", "metadata.continue")?);
    if let Some(count) = integer(meta, "remainingItemCount", "metadata.remainingItemCount")? {
        put_integer(&mut out, 4, count);
    }
    if let Some(shard) = optional(meta, "shardInfo") {
        let shard = shard.as_object().ok_or(Unencodable::Field("metadata.shardInfo"))?;
        let mut info = Vec::new();
        put_string(&mut info, 1, string(shard, "selector", "metadata.shardInfo.selector")?);
        put_field(&mut out, 5, &info);
    }
    Ok(out)
}

fn object_meta(meta: &Map<String, Value>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (number, key, what) in [
        (1, "name", "metadata.name"),
        (2, "generateName", "metadata.generateName"),
        (3, "namespace", "metadata.namespace"),
        (4, "selfLink", "metadata.selfLink"),
        (5, "uid", "metadata.uid"),
        (6, "resourceVersion", "metadata.resourceVersion"),
    ] {
        put_string(&mut out, number, string(meta, key, what)?);
    }
    put_integer(&mut out, 7, integer(meta, "generation", "metadata.generation")?.unwrap_or(0));
    // creationTimestamp is not a pointer: an unset one is an empty Time.
    let created = time(meta, "creationTimestamp", "metadata.creationTimestamp")?;
    put_field(&mut out, 8, &created.unwrap_or_default());
    if let Some(deleted) = time(meta, "deletionTimestamp", "metadata.deletionTimestamp")? {
        put_field(&mut out, 9, &deleted);
    }
    if let Some(grace) = integer(meta, "deletionGracePeriodSeconds", "metadata.deletionGracePeriodSeconds")? {
        put_integer(&mut out, 10, grace);
    }
    put_map(&mut out, 11, meta, "labels", "metadata.labels")?;
    put_map(&mut out, 12, meta, "annotations", "metadata.annotations")?;
    for owner in array(meta, "ownerReferences", "metadata.ownerReferences")? {
        let owner = owner.as_object().ok_or(Unencodable::Field("metadata.ownerReferences"))?;
        put_field(&mut out, 13, &owner_reference(owner)?);
    }
    for finalizer in array(meta, "finalizers", "metadata.finalizers")? {
        put_string(&mut out, 14, finalizer.as_str().ok_or(Unencodable::Field("metadata.finalizers"))?);
    }
    for entry in array(meta, "managedFields", "metadata.managedFields")? {
        let entry = entry.as_object().ok_or(Unencodable::Field("metadata.managedFields"))?;
        put_field(&mut out, 17, &managed_fields_entry(entry)?);
    }
    Ok(out)
}

fn owner_reference(owner: &Map<String, Value>) -> Result<Vec<u8>> {
    const WHAT: &str = "metadata.ownerReferences";
    let mut out = Vec::new();
    put_string(&mut out, 1, string(owner, "kind", WHAT)?);
    put_string(&mut out, 3, string(owner, "name", WHAT)?);
    put_string(&mut out, 4, string(owner, "uid", WHAT)?);
    put_string(&mut out, 5, string(owner, "apiVersion", WHAT)?);
    for (number, key) in [(6, "controller"), (7, "blockOwnerDeletion")] {
        if let Some(flag) = optional(owner, key) {
            put_integer(&mut out, number, i64::from(flag.as_bool().ok_or(Unencodable::Field(WHAT))?));
        }
    }
    Ok(out)
}

fn managed_fields_entry(entry: &Map<String, Value>) -> Result<Vec<u8>> {
    const WHAT: &str = "metadata.managedFields";
    let mut out = Vec::new();
    put_string(&mut out, 1, string(entry, "manager", WHAT)?);
    put_string(&mut out, 2, string(entry, "operation", WHAT)?);
    put_string(&mut out, 3, string(entry, "apiVersion", WHAT)?);
    if let Some(time) = time(entry, "time", WHAT)? {
        put_field(&mut out, 4, &time);
    }
    put_string(&mut out, 6, string(entry, "fieldsType", WHAT)?);
    if let Some(fields) = optional(entry, "fieldsV1") {
        // FieldsV1 holds the JSON of the field set as bytes.
        let raw = serde_json::to_vec(fields).map_err(|_| Unencodable::Field(WHAT))?;
        let mut fields_v1 = Vec::new();
        put_field(&mut fields_v1, 1, &raw);
        put_field(&mut out, 7, &fields_v1);
    }
    put_string(&mut out, 8, string(entry, "subresource", WHAT)?);
    Ok(out)
}

/// The object under `key`; absent or null is an empty one.
fn section<'a>(object: &'a Map<String, Value>, key: &'static str) -> Result<&'a Map<String, Value>> {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    match optional(object, key) {
        None => Ok(&EMPTY),
        Some(value) => value.as_object().ok_or(Unencodable::Field(key)),
    }
}

/// The value under `key` unless absent or null (JSON's way of leaving a field unset).
fn optional<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn string<'a>(object: &'a Map<String, Value>, key: &str, what: &'static str) -> Result<&'a str> {
    optional(object, key).map_or(Ok(""), |v| v.as_str().ok_or(Unencodable::Field(what)))
}

fn integer(object: &Map<String, Value>, key: &str, what: &'static str) -> Result<Option<i64>> {
    optional(object, key).map(|v| v.as_i64().ok_or(Unencodable::Field(what))).transpose()
}

fn array<'a>(object: &'a Map<String, Value>, key: &str, what: &'static str) -> Result<&'a [Value]> {
    optional(object, key).map_or(Ok(&[][..]), |v| v.as_array().map(Vec::as_slice).ok_or(Unencodable::Field(what)))
}

/// A `metav1.Time` (RFC 3339, whole seconds in JSON) as `Time{seconds, nanos}`; both are
/// written, as the apiserver writes them.
fn time(object: &Map<String, Value>, key: &str, what: &'static str) -> Result<Option<Vec<u8>>> {
    let Some(value) = optional(object, key) else { return Ok(None) };
    let stamp: Timestamp = value.as_str().and_then(|t| t.parse().ok()).ok_or(Unencodable::Field(what))?;
    let mut out = Vec::new();
    put_integer(&mut out, 1, stamp.as_second());
    put_integer(&mut out, 2, i64::from(stamp.subsec_nanosecond()));
    Ok(Some(out))
}

/// A `map<string, string>` field: one entry message per key, sorted as Go's `sort.Strings`.
fn put_map(out: &mut Vec<u8>, number: u64, object: &Map<String, Value>, key: &str, what: &'static str) -> Result<()> {
    let Some(map) = optional(object, key) else { return Ok(()) };
    let map = map.as_object().ok_or(Unencodable::Field(what))?;
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, value) in entries {
        let mut entry = Vec::new();
        put_string(&mut entry, 1, name);
        put_string(&mut entry, 2, value.as_str().ok_or(Unencodable::Field(what))?);
        put_field(out, number, &entry);
    }
    Ok(())
}

fn put_string(out: &mut Vec<u8>, number: u64, text: &str) {
    put_field(out, number, text.as_bytes());
}

/// An int64, int32 or bool field; negative numbers take ten bytes, as Go's `uint64(v)` gives.
fn put_integer(out: &mut Vec<u8>, number: u64, value: i64) {
    put_varint(out, number << 3);
    put_varint(out, value as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (Value, Vec<u8>) {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/transform/testdata");
        let json = std::fs::read(format!("{dir}/metadata-{name}.json")).unwrap();
        let protobuf = std::fs::read(format!("{dir}/metadata-{name}.pb")).unwrap();
        (serde_json::from_slice(&json).unwrap(), protobuf)
    }

    #[test]
    fn lists_are_encoded_as_the_apiserver_encodes_them() {
        // Labels, annotations (non-ASCII, empty), owner references with and without flags,
        // finalizers, managed fields, a deletion in progress, generateName.
        let (json, protobuf) = fixture("list");
        assert_eq!(encode(&json).unwrap(), protobuf);
    }

    #[test]
    fn pages_carry_continue_and_remaining_item_count() {
        let (json, protobuf) = fixture("page");
        assert_eq!(encode(&json).unwrap(), protobuf);
    }

    #[test]
    fn single_objects_are_encoded_as_the_apiserver_encodes_them() {
        let (json, protobuf) = fixture("object");
        assert_eq!(encode(&json).unwrap(), protobuf);
    }

    #[test]
    fn watch_events_are_framed_as_the_apiserver_frames_them() {
        // The recorded stream starts with the ADDED event of the list's first item.
        let (list, _) = fixture("list");
        let mut item = list["items"][0].clone();
        item["kind"] = "PartialObjectMetadata".into();
        let frame = encode_event(&serde_json::json!({"type": "ADDED", "object": item})).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/transform/testdata");
        let stream = std::fs::read(format!("{dir}/metadata-watch.pb")).unwrap();
        assert_eq!(frame, stream[..frame.len()]);
    }

    #[test]
    fn watch_error_events_are_encoded_as_the_apiserver_encodes_them() {
        // Recorded from the apiserver: a metadata watch from a compacted resourceVersion, in
        // protobuf and in JSON.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/transform/testdata");
        let event: Value = serde_json::from_slice(&std::fs::read(format!("{dir}/watch-error.json")).unwrap()).unwrap();
        let recorded = std::fs::read(format!("{dir}/watch-error.pb")).unwrap();
        assert_eq!(encode_event(&event).unwrap(), recorded);
    }

    #[test]
    fn other_kinds_and_misshapen_fields_are_refused() {
        let pod = serde_json::json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "x"}});
        assert_eq!(encode(&pod), Err(Unencodable::Kind("v1 Pod".into())));
        let older = serde_json::json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1beta1"});
        assert!(matches!(encode(&older), Err(Unencodable::Kind(_))));
        let labels = serde_json::json!({
            "kind": "PartialObjectMetadata", "apiVersion": API_VERSION, "metadata": {"labels": {"a": 1}}
        });
        assert_eq!(encode(&labels), Err(Unencodable::Field("metadata.labels")));
        let time = serde_json::json!({
            "kind": "PartialObjectMetadata", "apiVersion": API_VERSION, "metadata": {"creationTimestamp": "soon"}
        });
        assert_eq!(encode(&time), Err(Unencodable::Field("metadata.creationTimestamp")));
        assert!(encode(&Value::from("k8s")).is_err());
        assert_eq!(encode_event(&serde_json::json!({"type": "ADDED"})), Err(Unencodable::Event));
    }

    #[test]
    fn statuses_are_encoded_for_watch_error_events() {
        let gone = serde_json::json!({
            "type": "ERROR",
            "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version: 1 (2)", "reason": "Expired", "code": 410}
        });
        let frame = encode_event(&gone).unwrap();
        let mut status = vec![0x0a, 0x06, 0x0a, 0, 0x12, 0, 0x1a, 0, 0x12, 7];
        status.extend_from_slice(b"Failure");
        status.extend_from_slice(&[0x1a, 31]);
        status.extend_from_slice(b"too old resource version: 1 (2)");
        status.extend_from_slice(&[0x22, 7]);
        status.extend_from_slice(b"Expired");
        status.extend_from_slice(&[0x30, 0x9a, 0x03]);
        let mut envelope = b"k8s\0\x0a\x0c\x0a\x02v1\x12\x06Status\x12".to_vec();
        envelope.push(status.len() as u8);
        envelope.extend_from_slice(&status);
        envelope.extend_from_slice(&[0x1a, 0, 0x22, 0]);
        assert!(frame.ends_with(&envelope), "{frame:?}");
        assert_eq!(frame[4..11], *b"\x0a\x05ERROR");
        let details = serde_json::json!({"kind": "Status", "apiVersion": "v1",
            "details": {"name": "a", "causes": [{"reason": "FieldValueInvalid", "field": "x"}]}});
        let encoded = encode(&details).unwrap();
        let cause = b"\x22\x18\x0a\x11FieldValueInvalid\x12\x00\x1a\x01x";
        assert!(encoded.windows(cause.len()).any(|w| w == cause), "{encoded:?}");
    }

    #[test]
    fn empty_metadata_is_written_as_go_writes_zero_values() {
        let doc = serde_json::json!({"kind": "PartialObjectMetadata", "apiVersion": API_VERSION});
        let encoded = encode(&doc).unwrap();
        // ObjectMeta: six empty strings, generation 0, an empty creationTimestamp.
        let meta = [0x0a, 0, 0x12, 0, 0x1a, 0, 0x22, 0, 0x2a, 0, 0x32, 0, 0x38, 0, 0x42, 0];
        assert!(encoded.windows(meta.len()).any(|w| w == meta), "{encoded:?}");
    }
}
