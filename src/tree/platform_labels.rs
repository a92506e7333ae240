//! Labels the platform sets on every namespace of a subtree (`namespaceLabels` of a node), such as
//! `pod-security.kubernetes.io/enforce`: cluster components act on them, so they come from the
//! config, never from a tenant. They are inherited down the tree, and a child may add keys but
//! never change an ancestor's value (a nested scope never holds more than its parent).

use std::collections::BTreeMap;

use super::dns::is_dns_subdomain;

/// The labels in force at a node whose own entries are `own` below a parent with `inherited`;
/// an error names the key (as a config path suffix) and what is wrong.
pub fn compile(
    inherited: &BTreeMap<String, String>,
    own: &BTreeMap<String, String>,
    domain: &str,
) -> Result<BTreeMap<String, String>, (String, String)> {
    let mut labels = inherited.clone();
    for (key, value) in own {
        let at = format!("namespaceLabels.{key}");
        if !is_label_key(key) {
            return Err((at, "is not a label key (an optional DNS subdomain and '/', then a name)".into()));
        }
        if !is_label_value(value) {
            return Err((at, format!("{value:?} is not a label value")));
        }
        let tree_label = key.starts_with(&format!("tree.{domain}/")) || key.contains(&format!(".tree.{domain}/"));
        if tree_label || key == "kubernetes.io/metadata.name" || key == super::labels::MANAGED_BY {
            return Err((at, "is set by Canopy or the apiserver".into()));
        }
        match inherited.get(key) {
            Some(parent) if parent != value => {
                return Err((at, format!("an ancestor sets it to {parent:?}; a child may not change it")));
            }
            _ => labels.insert(key.clone(), value.clone()),
        };
    }
    Ok(labels)
}

/// A label key: `[prefix/]name`, the name at most 63 characters of `[A-Za-z0-9_.-]` starting and
/// ending alphanumeric, the prefix a DNS subdomain.
fn is_label_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]` starting and ending
/// alphanumeric.
fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.is_empty()
        || (bytes.len() <= 63
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn children_add_keys_and_keep_their_ancestors_values() {
        let parent = map(&[("pod-security.kubernetes.io/enforce", "baseline")]);
        let child = compile(&parent, &map(&[("pod-security.kubernetes.io/warn", "restricted")]), "canopy.dev").unwrap();
        assert_eq!(child.len(), 2);
        let same = compile(&parent, &parent, "canopy.dev").unwrap();
        assert_eq!(same, parent);
        let (at, message) =
            compile(&parent, &map(&[("pod-security.kubernetes.io/enforce", "privileged")]), "canopy.dev").unwrap_err();
        assert_eq!(at, "namespaceLabels.pod-security.kubernetes.io/enforce");
        assert!(message.contains("\"baseline\""), "{message}");
    }

    #[test]
    fn keys_values_and_reserved_labels_are_checked() {
        let none = BTreeMap::new();
        for (key, value) in [
            ("bad key", "x"),
            ("/x", "x"),
            ("ok", "-bad"),
            ("tree.canopy.dev/node", "x"),
            ("acme.tree.canopy.dev/depth", "0"),
            ("kubernetes.io/metadata.name", "x"),
            ("app.kubernetes.io/managed-by", "me"),
        ] {
            assert!(compile(&none, &map(&[(key, value)]), "canopy.dev").is_err(), "{key}={value}");
        }
        assert!(compile(&none, &map(&[("team", "")]), "canopy.dev").is_ok());
    }
}
