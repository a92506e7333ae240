//! A namespace the view could not read, brought back by a write. Answers show a namespace of the
//! tree outside the view (a RoleBinding subject an admin pointed at another tenant's
//! ServiceAccount, a pod affinity term, an Event's object) as [`HIDDEN_NAMESPACE`]. A write that
//! sends the placeholder back gets the stored name back only where it sends the entry holding it
//! (the object or list that directly contains it) exactly as it was shown, at the same place: a
//! tenant keeps what it cannot read, but can neither aim a new reference at it nor move it to
//! another entry. A placeholder left anywhere else is refused, never stored.

use serde_json::Value;

use super::HIDDEN_NAMESPACE;
use super::json::{LAST_APPLIED, map_namespaces};

/// Whether `value` holds the placeholder in any string.
pub fn carries(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains(HIDDEN_NAMESPACE),
        Value::Array(items) => items.iter().any(carries),
        Value::Object(fields) => fields.values().any(carries),
        _ => false,
    }
}

/// Where `value` holds the placeholder first, as a field path (`subjects[0].namespace`); the
/// last-applied annotation, a copy of the object, only when nothing else does.
pub fn placeholder_at(value: &Value) -> Option<String> {
    let mut bare = value.clone();
    if let Some(Value::Object(annotations)) = bare.pointer_mut("/metadata/annotations") {
        annotations.remove(LAST_APPLIED);
    }
    find(&bare, String::new()).or_else(|| find(value, String::new()))
}

fn find(value: &Value, path: String) -> Option<String> {
    match value {
        Value::String(text) => text.contains(HIDDEN_NAMESPACE).then_some(path),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| find(item, format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, field)| match path.is_empty() {
            true => find(field, key.clone()),
            false => find(field, format!("{path}.{key}")),
        }),
        _ => None,
    }
}

/// Puts back in `sent` (a write in physical names) the namespaces of `stored` that the view read
/// as the placeholder, where `sent` holds the entry as shown; `hide` maps a physical namespace to
/// the placeholder when the view may not read it.
pub fn restore(stored: &Value, sent: &mut Value, hide: &dyn Fn(&str) -> Option<String>) {
    let mut shown = stored.clone();
    map_namespaces(&mut shown, hide);
    restore_at(stored, &shown, sent);
    // `kubectl replace` rewrites the last-applied annotation as the object it sends: its
    // entries are restored from the stored object, at the same places.
    if let Some(Value::String(text)) =
        sent.pointer_mut(&format!("/metadata/annotations/{}", LAST_APPLIED.replace('/', "~1")))
        && text.contains(HIDDEN_NAMESPACE)
        && let Ok(mut embedded) = serde_json::from_str::<Value>(text)
    {
        restore_at(stored, &shown, &mut embedded);
        if !carries(&embedded)
            && let Ok(restored) = serde_json::to_string(&embedded)
        {
            *text = format!("{restored}\n");
        }
    }
}

fn restore_at(stored: &Value, shown: &Value, sent: &mut Value) {
    if holds_placeholder(sent) && sent == shown {
        *sent = stored.clone();
        return;
    }
    match (sent, stored, shown) {
        (Value::Object(sent), Value::Object(stored), Value::Object(shown)) => {
            for (key, field) in sent.iter_mut() {
                if let (Some(stored), Some(shown)) = (stored.get(key), shown.get(key)) {
                    restore_at(stored, shown, field);
                }
            }
        }
        (Value::Array(sent), Value::Array(stored), Value::Array(shown)) => {
            for ((field, stored), shown) in sent.iter_mut().zip(stored).zip(shown) {
                restore_at(stored, shown, field);
            }
        }
        _ => {}
    }
}

/// Whether a string directly in `value` (an object's field or a list's item) holds the
/// placeholder.
fn holds_placeholder(value: &Value) -> bool {
    let direct = |v: &Value| v.as_str().is_some_and(|text| text.contains(HIDDEN_NAMESPACE));
    match value {
        Value::Object(fields) => fields.values().any(direct),
        Value::Array(items) => items.iter().any(direct),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn hide(physical: &str) -> Option<String> {
        physical.starts_with("globex-").then(|| HIDDEN_NAMESPACE.to_owned())
    }

    fn binding(subjects: Value) -> Value {
        json!({"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "acme-web-dev"}, "subjects": subjects})
    }

    fn subject(name: &str, namespace: &str) -> Value {
        json!({"kind": "ServiceAccount", "name": name, "namespace": namespace})
    }

    #[test]
    fn an_entry_sent_back_as_shown_gets_its_stored_namespace_back() {
        let stored = binding(json!([subject("a", "globex-main"), subject("b", "acme-web-dev")]));
        let mut sent = binding(json!([subject("a", HIDDEN_NAMESPACE), subject("c", "acme-web-dev")]));
        restore(&stored, &mut sent, &hide);
        assert_eq!(sent["subjects"], json!([subject("a", "globex-main"), subject("c", "acme-web-dev")]));
        assert!(!carries(&sent));
    }

    #[test]
    fn a_hidden_namespace_cannot_be_aimed_at_another_name_or_moved_to_another_entry() {
        let stored = binding(json!([subject("a", "globex-main"), subject("b", "globex-other")]));
        // Another name beside the placeholder: a new reference into the hidden namespace.
        let mut renamed = binding(json!([subject("x", HIDDEN_NAMESPACE), subject("b", HIDDEN_NAMESPACE)]));
        restore(&stored, &mut renamed, &hide);
        assert_eq!(placeholder_at(&renamed).as_deref(), Some("subjects[0].namespace"));
        assert_eq!(renamed["subjects"][1], subject("b", "globex-other"));
        // Swapped entries: each holds another name beside the placeholder at its place.
        let mut swapped = binding(json!([subject("b", HIDDEN_NAMESPACE), subject("a", HIDDEN_NAMESPACE)]));
        restore(&stored, &mut swapped, &hide);
        assert_eq!(placeholder_at(&swapped).as_deref(), Some("subjects[0].namespace"));
        // An entry appended with the placeholder has no stored counterpart.
        let mut appended = binding(json!([
            subject("a", HIDDEN_NAMESPACE),
            subject("b", HIDDEN_NAMESPACE),
            subject("c", HIDDEN_NAMESPACE)
        ]));
        restore(&stored, &mut appended, &hide);
        assert_eq!(placeholder_at(&appended).as_deref(), Some("subjects[2].namespace"));
    }

    #[test]
    fn lists_of_namespaces_and_service_account_names_come_back_only_unchanged() {
        let stored =
            json!({"namespaces": ["globex-main", "acme-web-dev"], "users": ["system:serviceaccount:globex-main:ci"]});
        let mut sent = json!({"namespaces": [HIDDEN_NAMESPACE, "acme-web-dev"], "users": [format!("system:serviceaccount:{HIDDEN_NAMESPACE}:ci")]});
        restore(&stored, &mut sent, &hide);
        assert_eq!(sent, stored);
        let mut narrowed = json!({"namespaces": [HIDDEN_NAMESPACE]});
        restore(&stored, &mut narrowed, &hide);
        assert_eq!(placeholder_at(&narrowed).as_deref(), Some("namespaces[0]"));
    }

    #[test]
    fn the_last_applied_annotation_kubectl_replace_rewrites_is_restored_from_the_object() {
        let stored = json!({"metadata": {"name": "b"}, "subjects": [subject("a", "globex-main")]});
        let embedded = json!({"metadata": {"name": "b"}, "subjects": [subject("a", HIDDEN_NAMESPACE)]});
        let mut sent = stored.clone();
        sent["subjects"][0]["namespace"] = json!(HIDDEN_NAMESPACE);
        sent["metadata"]["annotations"] = json!({LAST_APPLIED: format!("{embedded}\n")});
        restore(&stored, &mut sent, &hide);
        assert!(!carries(&sent), "{sent}");
        let text = sent["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap();
        let restored: Value = serde_json::from_str(text).unwrap();
        assert_eq!(restored["subjects"][0]["namespace"], "globex-main");
    }

    #[test]
    fn a_write_without_the_placeholder_is_left_as_sent() {
        let stored = binding(json!([subject("a", "globex-main")]));
        let mut sent = binding(json!([subject("a", "acme-web-dev")]));
        let before = sent.clone();
        restore(&stored, &mut sent, &hide);
        assert_eq!(sent, before);
        assert!(!carries(&sent));
    }
}
