//! `metadata.namespace` inside a Kubernetes protobuf request body. Clients such as kubectl send
//! built-in objects as protobuf (`k8s\0` + `runtime.Unknown`), whose `raw` field (2) holds the
//! object; every built-in object keeps its `ObjectMeta` in field 1, with the namespace in
//! field 3. Only that string — and, in (Cluster)RoleBindings, each subject's namespace (field 4)
//! and ServiceAccount user or group name (field 3) — is rewritten; every other byte is copied
//! as it came.
//! Self access and rules reviews, which Canopy decides itself, are read into JSON, as are the
//! references of Roles, RoleBindings and Pods when Canopy explains a write the apiserver refused.

/// Why a body could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf request body")]
pub struct Malformed;

const MAGIC: &[u8] = b"k8s\x00";

/// Replaces the contents of one length-delimited field.
type Replace<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, Malformed>;

/// Rewrites the object's `metadata.namespace` with `map` (names it refuses stay as they are).
pub fn map_namespace(body: &[u8], map: &dyn Fn(&str) -> Option<String>) -> Result<Vec<u8>, Malformed> {
    let envelope = body.strip_prefix(MAGIC).ok_or(Malformed)?;
    // The kind decides whether subjects are rewritten; a type meta that does not parse names none.
    let type_meta = strings(envelope)?.into_iter().find(|(n, _)| *n == 1).map(|(_, b)| b).unwrap_or_default();
    let kind = strings(type_meta).unwrap_or_default().into_iter().find(|(n, _)| *n == 2).map(|(_, b)| b);
    let kind = kind.unwrap_or_default();
    let binding = kind == b"RoleBinding" || kind == b"ClusterRoleBinding";
    let namespace = |ns: &[u8]| {
        let name = std::str::from_utf8(ns).map_err(|_| Malformed)?;
        Ok(map(name).map_or_else(|| ns.to_vec(), String::into_bytes))
    };
    let unknown = rewrite_field(envelope, 2, &|raw| {
        let raw = rewrite_field(raw, 1, &|meta| rewrite_field(meta, 3, &namespace))?;
        if !binding {
            return Ok(raw);
        }
        rewrite_field(&raw, 2, &|subject| {
            let subject = rewrite_field(subject, 4, &namespace)?;
            rewrite_field(&subject, 3, &|name| {
                let mut text = String::from_utf8(name.to_vec()).map_err(|_| Malformed)?;
                super::json::map_service_account_name(&mut text, map);
                Ok(text.into_bytes())
            })
        })
    })?;
    Ok([MAGIC, &unknown].concat())
}

/// A SelfSubjectAccessReview or SelfSubjectRulesReview sent as protobuf, as the JSON document
/// it stands for (spec only: the rest is output).
pub fn review_to_json(body: &[u8]) -> Result<serde_json::Value, Malformed> {
    let envelope = body.strip_prefix(MAGIC).ok_or(Malformed)?;
    let unknown = strings(envelope)?;
    let type_meta = strings(field(&unknown, 1).unwrap_or_default())?;
    let text = |fields: &[(u64, &[u8])], n| field(fields, n).map(|b| String::from_utf8_lossy(b).into_owned());
    let kind = text(&type_meta, 2).unwrap_or_default();
    let api_version = text(&type_meta, 1).unwrap_or_default();
    let object = strings(field(&unknown, 2).ok_or(Malformed)?)?;
    let spec = strings(field(&object, 2).unwrap_or_default())?;
    let mut spec_json = serde_json::Map::new();
    if kind == "SelfSubjectRulesReview" {
        spec_json.insert("namespace".into(), text(&spec, 1).unwrap_or_default().into());
    } else {
        const RESOURCE: [(u64, &str); 7] = [
            (1, "namespace"),
            (2, "verb"),
            (3, "group"),
            (4, "version"),
            (5, "resource"),
            (6, "subresource"),
            (7, "name"),
        ];
        const NON_RESOURCE: [(u64, &str); 2] = [(1, "path"), (2, "verb")];
        for (number, key, names) in
            [(1, "resourceAttributes", &RESOURCE[..]), (2, "nonResourceAttributes", &NON_RESOURCE[..])]
        {
            let Some(bytes) = field(&spec, number) else { continue };
            let attributes = strings(bytes)?;
            let object: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .filter_map(|(n, name)| Some(((*name).to_owned(), text(&attributes, *n)?.into())))
                .collect();
            spec_json.insert(key.into(), object.into());
        }
    }
    Ok(serde_json::json!({ "kind": kind, "apiVersion": api_version, "metadata": {}, "spec": spec_json }))
}

/// A Role, RoleBinding or Pod sent as protobuf, as the JSON of what it references: a Role's
/// rules, a RoleBinding's subjects and roleRef, a Pod's ServiceAccount; any object's kind and
/// name. Enough for Canopy to explain why it refuses a write the apiserver refused too (see
/// `policy::reference_gate`); nothing is sent upstream from it.
pub fn references_to_json(body: &[u8]) -> Result<serde_json::Value, Malformed> {
    use serde_json::{Value, json};
    let unknown = strings(body.strip_prefix(MAGIC).ok_or(Malformed)?)?;
    let type_meta = strings(field(&unknown, 1).unwrap_or_default())?;
    let object = strings(field(&unknown, 2).ok_or(Malformed)?)?;
    let text = |fields: &[(u64, &[u8])], n| Value::from(String::from_utf8_lossy(field(fields, n).unwrap_or_default()));
    let texts = |fields: &[(u64, &[u8])], n| -> Value {
        fields.iter().filter(|(m, _)| *m == n).map(|(_, b)| Value::from(String::from_utf8_lossy(b))).collect()
    };
    let messages = |n| object.iter().filter(move |(m, _)| *m == n).map(|(_, b)| strings(b));
    let kind = text(&type_meta, 2);
    let metadata = strings(field(&object, 1).unwrap_or_default())?;
    let mut json = json!({ "kind": kind, "metadata": { "name": text(&metadata, 1) } });
    match kind.as_str().unwrap_or_default() {
        "Role" => {
            let rules = messages(2)
                .map(|rule| {
                    let rule = rule?;
                    Ok(json!({"verbs": texts(&rule, 1), "apiGroups": texts(&rule, 2), "resources": texts(&rule, 3)}))
                })
                .collect::<Result<Vec<Value>, Malformed>>()?;
            json["rules"] = rules.into();
        }
        "RoleBinding" => {
            let subjects = messages(2)
                .map(|subject| {
                    let s = subject?;
                    Ok(json!({"kind": text(&s, 1), "apiGroup": text(&s, 2), "name": text(&s, 3), "namespace": text(&s, 4)}))
                })
                .collect::<Result<Vec<Value>, Malformed>>()?;
            let role = strings(field(&object, 3).unwrap_or_default())?;
            json["subjects"] = subjects.into();
            json["roleRef"] = json!({"apiGroup": text(&role, 1), "kind": text(&role, 2), "name": text(&role, 3)});
        }
        "Pod" => {
            let spec = strings(field(&object, 2).unwrap_or_default())?;
            json["spec"] = json!({"serviceAccountName": text(&spec, 8), "serviceAccount": text(&spec, 9)});
        }
        _ => {}
    }
    Ok(json)
}

/// The `metadata.name` of the object in a protobuf body.
pub fn object_name(body: &[u8]) -> Result<String, Malformed> {
    let unknown = strings(body.strip_prefix(MAGIC).ok_or(Malformed)?)?;
    let object = strings(field(&unknown, 2).ok_or(Malformed)?)?;
    let metadata = strings(field(&object, 1).ok_or(Malformed)?)?;
    Ok(String::from_utf8_lossy(field(&metadata, 1).unwrap_or_default()).into_owned())
}

/// The body with the object's `metadata.resourceVersion` (field 6 of `ObjectMeta`) set to
/// `version`: appended, since the last value of a protobuf field is the one read.
pub fn with_resource_version(body: &[u8], version: &str) -> Result<Vec<u8>, Malformed> {
    let envelope = body.strip_prefix(MAGIC).ok_or(Malformed)?;
    let unknown = rewrite_field(envelope, 2, &|raw| {
        rewrite_field(raw, 1, &|meta| {
            let mut meta = meta.to_vec();
            put_field(&mut meta, 6, version.as_bytes());
            Ok(meta)
        })
    })?;
    Ok([MAGIC, &unknown].concat())
}

/// The `deleteOptions.preconditions.resourceVersion` an Eviction asks for (Eviction field 2,
/// DeleteOptions field 2, Preconditions field 2), if any: the last value met, as a reader merging
/// the message fields met more than once reads it.
pub fn eviction_precondition(body: &[u8]) -> Result<Option<String>, Malformed> {
    let unknown = strings(body.strip_prefix(MAGIC).ok_or(Malformed)?)?;
    let mut asked = None;
    for options in each(&strings(field(&unknown, 2).ok_or(Malformed)?)?, 2) {
        for preconditions in each(&strings(options)?, 2) {
            if let Some(version) = each(&strings(preconditions)?, 2).last() {
                asked = Some(String::from_utf8(version.to_vec()).map_err(|_| Malformed)?);
            }
        }
    }
    Ok(asked)
}

/// The Eviction with `deleteOptions.preconditions.resourceVersion` set to `version`: appended,
/// since a message field met twice is merged and a string's last value is the one read.
pub fn eviction_with_precondition(body: &[u8], version: &str) -> Result<Vec<u8>, Malformed> {
    let envelope = body.strip_prefix(MAGIC).ok_or(Malformed)?;
    let nested = |contents: &[u8]| {
        let mut out = Vec::with_capacity(contents.len() + 4);
        put_field(&mut out, 2, contents);
        out
    };
    let appended = nested(&nested(&nested(version.as_bytes())));
    let unknown = rewrite_field(envelope, 2, &|raw| Ok([raw, &appended].concat()))?;
    Ok([MAGIC, &unknown].concat())
}

/// Every length-delimited field `number` among `fields`, in order.
fn each<'a, 'f>(fields: &'f [(u64, &'a [u8])], number: u64) -> impl Iterator<Item = &'a [u8]> + 'f {
    fields.iter().filter(move |(n, _)| *n == number).map(|(_, b)| *b)
}

/// The first length-delimited field `number` among `fields`.
fn field<'a>(fields: &[(u64, &'a [u8])], number: u64) -> Option<&'a [u8]> {
    fields.iter().find(|(n, _)| *n == number).map(|(_, b)| *b)
}

/// The length-delimited fields of `message`, in order (other wire types are skipped).
fn strings(message: &[u8]) -> Result<Vec<(u64, &[u8])>, Malformed> {
    let mut fields = Vec::new();
    let mut rest = message;
    while !rest.is_empty() {
        if let (tag, Some(contents)) = next_field(&mut rest)? {
            fields.push((tag >> 3, contents));
        }
    }
    Ok(fields)
}

/// Copies `message`, replacing each length-delimited field `field` by `f(contents)`.
fn rewrite_field(message: &[u8], field: u64, f: Replace<'_>) -> Result<Vec<u8>, Malformed> {
    let mut out = Vec::with_capacity(message.len() + 16);
    let mut rest = message;
    while !rest.is_empty() {
        let start = rest;
        match next_field(&mut rest)? {
            (tag, Some(contents)) if tag >> 3 == field => {
                let replaced = f(contents)?;
                put_varint(&mut out, tag);
                put_varint(&mut out, replaced.len() as u64);
                out.extend_from_slice(&replaced);
            }
            _ => out.extend_from_slice(&start[..start.len() - rest.len()]),
        }
    }
    Ok(out)
}

/// Reads one field from `rest`: its tag, and its contents if length-delimited.
pub(crate) fn next_field<'a>(rest: &mut &'a [u8]) -> Result<(u64, Option<&'a [u8]>), Malformed> {
    let tag = varint(rest)?;
    match tag & 7 {
        0 => {
            varint(rest)?;
        }
        1 => *rest = rest.get(8..).ok_or(Malformed)?,
        5 => *rest = rest.get(4..).ok_or(Malformed)?,
        2 => {
            let len = usize::try_from(varint(rest)?).map_err(|_| Malformed)?;
            let contents = rest.get(..len).ok_or(Malformed)?;
            *rest = &rest[len..];
            return Ok((tag, Some(contents)));
        }
        _ => return Err(Malformed),
    }
    Ok((tag, None))
}

fn varint(input: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(Malformed)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

/// Writes length-delimited field `number` holding `contents`.
pub(crate) fn put_field(out: &mut Vec<u8>, number: u64, contents: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, contents.len() as u64);
    out.extend_from_slice(contents);
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, contents: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_field(&mut out, number, contents);
        out
    }

    fn body(namespace: &str) -> Vec<u8> {
        let meta = [field(1, b"cm"), field(3, namespace.as_bytes()), vec![0x28, 0x05]].concat();
        let object = [field(1, &meta), field(2, b"data")].concat();
        let unknown =
            [field(1, b"typemeta"), field(2, &object), field(4, b"application/vnd.kubernetes.protobuf")].concat();
        [MAGIC, &unknown].concat()
    }

    #[test]
    fn only_the_namespace_changes() {
        let mapped = map_namespace(&body("dev"), &|ns| (ns == "dev").then(|| "acme-web-dev".to_owned())).unwrap();
        assert_eq!(mapped, body("acme-web-dev"));
        let untouched = map_namespace(&body("other"), &|_| None).unwrap();
        assert_eq!(untouched, body("other"));
    }

    #[test]
    fn a_resource_version_is_appended_to_the_object_meta() {
        let meta = [field(1, b"cm"), field(3, b"dev"), vec![0x28, 0x05], field(6, b"42")].concat();
        let object = [field(1, &meta), field(2, b"data")].concat();
        let unknown =
            [field(1, b"typemeta"), field(2, &object), field(4, b"application/vnd.kubernetes.protobuf")].concat();
        assert_eq!(with_resource_version(&body("dev"), "42").unwrap(), [MAGIC, &unknown].concat());
        assert_eq!(with_resource_version(b"not protobuf", "1"), Err(Malformed));
    }

    #[test]
    fn an_eviction_is_pinned_by_appending_a_precondition_that_merges_into_its_delete_options() {
        let eviction = |options: &[u8]| {
            let type_meta = [field(1, b"policy/v1"), field(2, b"Eviction")].concat();
            let object = [field(1, &field(1, b"web")), options.to_vec()].concat();
            [MAGIC, &[field(1, &type_meta), field(2, &object)].concat()].concat()
        };
        let bare = eviction(&[]);
        assert_eq!(eviction_precondition(&bare), Ok(None));
        let pinned = eviction_with_precondition(&bare, "7").unwrap();
        assert_eq!(pinned, eviction(&field(2, &field(2, &field(2, b"7")))));
        assert_eq!(eviction_precondition(&pinned), Ok(Some("7".into())));
        // Asked by the client, with a grace period beside it; the last value met counts.
        let asked =
            eviction(&field(2, &[vec![0x08, 0x00], field(2, &[field(1, b"uid"), field(2, b"6")].concat())].concat()));
        assert_eq!(eviction_precondition(&asked), Ok(Some("6".into())));
        let repinned = eviction_with_precondition(&asked, "7").unwrap();
        assert_eq!(eviction_precondition(&repinned), Ok(Some("7".into())));
        assert_eq!(eviction_precondition(b"k8s\0\x12"), Err(Malformed));
    }

    #[test]
    fn rolebinding_subjects_are_mapped() {
        let map = |ns: &str| (ns == "dev").then(|| "acme-web-dev".to_owned());
        let binding = |ns: &str, group: &str| {
            let type_meta = [field(1, b"rbac.authorization.k8s.io/v1"), field(2, b"RoleBinding")].concat();
            let subjects = [
                field(2, &[field(1, b"ServiceAccount"), field(3, b"builder"), field(4, ns.as_bytes())].concat()),
                field(2, &[field(1, b"Group"), field(3, group.as_bytes())].concat()),
            ]
            .concat();
            let object = [field(1, &field(3, ns.as_bytes())), subjects].concat();
            [MAGIC, &[field(1, &type_meta), field(2, &object)].concat()].concat()
        };
        let mapped = map_namespace(&binding("dev", "system:serviceaccounts:dev"), &map).unwrap();
        assert_eq!(mapped, binding("acme-web-dev", "system:serviceaccounts:acme-web-dev"));
    }

    #[test]
    fn reviews_are_read_into_json() {
        let type_meta = [field(1, b"authorization.k8s.io/v1"), field(2, b"SelfSubjectAccessReview")].concat();
        let attributes = [field(1, b"dev"), field(2, b"get"), field(3, b""), field(5, b"configmaps")].concat();
        let object = [field(1, &[]), field(2, &field(1, &attributes)), field(3, &[])].concat();
        let body = [MAGIC, &[field(1, &type_meta), field(2, &object)].concat()].concat();
        let review = review_to_json(&body).unwrap();
        assert_eq!(review["kind"], "SelfSubjectAccessReview");
        assert_eq!(
            review["spec"]["resourceAttributes"],
            serde_json::json!({"namespace": "dev", "verb": "get", "group": "", "resource": "configmaps"})
        );
        assert_eq!(review_to_json(b"k8s\x00\x12\x03abc"), Err(Malformed));
    }

    #[test]
    fn references_are_read_into_json() {
        let envelope = |kind: &[u8], object: Vec<u8>| {
            let type_meta = [field(1, b"rbac.authorization.k8s.io/v1"), field(2, kind)].concat();
            [MAGIC, &[field(1, &type_meta), field(2, &object)].concat()].concat()
        };
        let meta = field(1, &[field(1, b"rb"), field(3, b"acme-web-dev")].concat());
        let subject = field(2, &[field(1, b"ServiceAccount"), field(3, b"x"), field(4, b"main")].concat());
        let role_ref =
            field(3, &[field(1, b"rbac.authorization.k8s.io"), field(2, b"ClusterRole"), field(3, b"admin")].concat());
        let binding =
            references_to_json(&envelope(b"RoleBinding", [meta.clone(), subject, role_ref].concat())).unwrap();
        assert_eq!(binding["metadata"]["name"], "rb");
        assert_eq!(binding["roleRef"]["name"], "admin");
        assert_eq!(
            binding["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "apiGroup": "", "name": "x", "namespace": "main"}])
        );
        let rule = field(2, &[field(1, b"get"), field(2, b""), field(2, b"policy"), field(3, b"pods")].concat());
        let role = references_to_json(&envelope(b"Role", [meta.clone(), rule].concat())).unwrap();
        assert_eq!(
            role["rules"],
            serde_json::json!([{"verbs": ["get"], "apiGroups": ["", "policy"], "resources": ["pods"]}])
        );
        let pod = references_to_json(&envelope(b"Pod", [meta, field(2, &field(8, b"runner"))].concat())).unwrap();
        assert_eq!(pod["spec"]["serviceAccountName"], "runner");
        assert_eq!(references_to_json(&envelope(b"Role", field(2, b"\xff"))), Err(Malformed));
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        assert_eq!(map_namespace(b"k8s\x00\x12\xff", &|_| None), Err(Malformed));
        assert_eq!(map_namespace(b"json", &|_| None), Err(Malformed));
        assert!(map_namespace(b"k8s\x00", &|_| None).unwrap() == b"k8s\x00");
    }
}
