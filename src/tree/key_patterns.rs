//! Label and annotation keys tenants may set on the namespaces they create: exact keys, or
//! prefixes ending in `*` (`example.com/*`). Namespace metadata is read by cluster components
//! (`pod-security.kubernetes.io/enforce`, node selectors, mesh injection), so nothing is allowed
//! unless the platform lists it, and a child lists only what its parent allows.

/// Compiled key patterns of one list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPatterns(Vec<String>);

impl KeyPatterns {
    /// Compiles a written list (config key `key`), refusing blanks and a `*` anywhere but last.
    pub fn compile(raw: &[String], key: &str) -> Result<Self, (String, String)> {
        for (i, pattern) in raw.iter().enumerate() {
            let stem = pattern.strip_suffix('*').unwrap_or(pattern);
            if pattern.trim().is_empty() || stem.contains('*') || pattern.contains(char::is_whitespace) {
                return Err((
                    format!("{key}[{i}]"),
                    format!("{pattern:?} is not a key or a prefix ending in '*' (e.g. \"team\", \"example.com/*\")"),
                ));
            }
        }
        Ok(KeyPatterns(raw.to_vec()))
    }

    /// Whether `key` may be set.
    pub fn allows(&self, key: &str) -> bool {
        self.0.iter().any(|pattern| covers(pattern, key))
    }

    /// Why `self` (config key `key`) allows more than `parent`: its first pattern the parent's do
    /// not cover.
    pub fn excess_over(&self, parent: &KeyPatterns, key: &str) -> Option<(String, String)> {
        let (i, pattern) = self.0.iter().enumerate().find(|(_, p)| !parent.0.iter().any(|q| covers(q, p)))?;
        Some((format!("{key}[{i}]"), format!("allows {pattern:?}, which the parent does not")))
    }
}

/// Whether `pattern` allows every key `other` (a key or a pattern) allows.
fn covers(pattern: &str, other: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => other.starts_with(prefix),
        None => pattern == other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(raw: &[&str]) -> KeyPatterns {
        KeyPatterns::compile(&raw.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "labels").unwrap()
    }

    #[test]
    fn keys_and_prefixes_allow_what_they_name() {
        let allowed = patterns(&["team", "example.com/*"]);
        assert!(allowed.allows("team") && allowed.allows("example.com/owner"));
        assert!(!allowed.allows("teams") && !allowed.allows("pod-security.kubernetes.io/enforce"));
        assert!(!KeyPatterns::default().allows("team"), "nothing unless listed");
    }

    #[test]
    fn a_child_lists_only_what_its_parent_allows() {
        let parent = patterns(&["team", "example.com/*"]);
        assert_eq!(patterns(&["example.com/a*", "team"]).excess_over(&parent, "labels"), None);
        assert_eq!(patterns(&["team", "example.*"]).excess_over(&parent, "labels").unwrap().0, "labels[1]");
        assert_eq!(patterns(&["*"]).excess_over(&parent, "labels").unwrap().0, "labels[0]");
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in ["", "a*b", "*a", "a b"] {
            let error = KeyPatterns::compile(&[bad.to_owned()], "labels").unwrap_err();
            assert_eq!(error.0, "labels[0]", "{bad:?}");
        }
    }
}
