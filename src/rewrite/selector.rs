//! Namespace names inside field selectors (`metadata.namespace=dev`, Events'
//! `involvedObject.namespace`, a Namespace's own `metadata.name`). A name the view does not own
//! becomes `-`, which no namespace can be called, so the term matches nothing (or, with `!=`,
//! everything) without revealing whether the name exists elsewhere.

/// Fields holding a namespace name in any resource.
const NAMESPACE_FIELDS: [&str; 3] = ["metadata.namespace", "involvedObject.namespace", "regarding.namespace"];

/// A name no namespace can have.
pub const NO_NAMESPACE: &str = "-";

/// `selector` with namespace names mapped by `map`; `names_too` also maps `metadata.name` (for
/// selectors on Namespace objects).
pub fn map_field_selector(selector: &str, names_too: bool, map: &dyn Fn(&str) -> Option<String>) -> String {
    split_terms(selector)
        .into_iter()
        .map(|term| {
            let Some((key, op, value)) = parse_term(&term) else { return term };
            let is_namespace = NAMESPACE_FIELDS.contains(&key) || (names_too && key == "metadata.name");
            if !is_namespace {
                return term;
            }
            let mapped = map(value).unwrap_or_else(|| NO_NAMESPACE.to_owned());
            format!("{key}{op}{mapped}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The namespace an equality term on `metadata.namespace` asks for, if any.
pub fn namespace_equal(selector: &str) -> Option<String> {
    split_terms(selector).iter().find_map(|term| match parse_term(term)? {
        ("metadata.namespace", "=" | "==", value) => Some(value.to_owned()),
        _ => None,
    })
}

/// Terms split at commas that are not escaped.
fn split_terms(selector: &str) -> Vec<String> {
    let mut terms = vec![String::new()];
    let mut escaped = false;
    for c in selector.chars() {
        match c {
            ',' if !escaped => terms.push(String::new()),
            _ => {
                if let Some(term) = terms.last_mut() {
                    term.push(c);
                }
            }
        }
        escaped = c == '\\' && !escaped;
    }
    terms
}

/// `(key, operator, value)` of a term, trimmed.
fn parse_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for op in ["!=", "==", "="] {
        if let Some((key, value)) = term.split_once(op) {
            return Some((key.trim(), op, value.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str) -> Option<String> {
        (name == "dev").then(|| "acme-web-dev".to_owned())
    }

    #[test]
    fn namespace_terms_are_mapped_and_others_kept() {
        assert_eq!(
            map_field_selector("metadata.namespace=dev,status.phase!=Running", false, &map),
            "metadata.namespace=acme-web-dev,status.phase!=Running"
        );
        assert_eq!(
            map_field_selector("involvedObject.namespace==dev", false, &map),
            "involvedObject.namespace==acme-web-dev"
        );
        assert_eq!(map_field_selector("metadata.name=dev", false, &map), "metadata.name=dev");
        assert_eq!(map_field_selector("metadata.name=dev", true, &map), "metadata.name=acme-web-dev");
    }

    #[test]
    fn names_outside_the_view_match_no_namespace() {
        assert_eq!(map_field_selector("metadata.namespace=globex-main", false, &map), "metadata.namespace=-");
        assert_eq!(map_field_selector("metadata.namespace!=kube-system", false, &map), "metadata.namespace!=-");
    }

    #[test]
    fn escaped_commas_stay_inside_a_term() {
        assert_eq!(
            map_field_selector("a=x\\,y,metadata.namespace=dev", false, &map),
            "a=x\\,y,metadata.namespace=acme-web-dev"
        );
    }

    #[test]
    fn equality_on_the_namespace_is_found() {
        assert_eq!(namespace_equal("a=b, metadata.namespace == dev").as_deref(), Some("dev"));
        assert_eq!(namespace_equal("metadata.namespace!=dev"), None);
    }
}
