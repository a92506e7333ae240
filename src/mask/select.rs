//! Selectors over read-masked fields. `?fieldSelector=spec.nodeName=X` on pods would answer
//! whether a hidden value equals a guess (the list is empty or not), and a label selector does the
//! same for a masked label, so a selector naming a read-masked path — or anything above or below
//! one — is refused. Keys are compared by their leading member names, so a mask written with
//! wildcards or filters is covered by the part of it that is plain names.

use super::Mask;

/// The read-masked field that `field_selector` or `label_selector` names, if any.
pub fn masked_selector(mask: &Mask, field_selector: &str, label_selector: &str) -> Option<String> {
    let field_keys = terms(field_selector, false).map(|key| key.split('.').map(str::to_owned).collect::<Vec<_>>());
    let label_keys = terms(label_selector, true)
        .map(|key| ["metadata".to_owned(), "labels".to_owned(), key.to_owned()].to_vec())
        .collect::<Vec<_>>();
    let keys: Vec<Vec<String>> = field_keys.chain(label_keys).collect();
    mask.read.iter().find_map(|path| {
        let names = path.leading_names();
        let overlaps = |key: &Vec<String>| key.iter().zip(&names).all(|(a, b)| a == b);
        keys.iter().any(overlaps).then(|| path.field().to_owned())
    })
}

/// The keys of a selector's terms: commas outside parentheses separate terms; a term's key is
/// what precedes its operator (`!key`, `key in (…)`, `key=v`, `key!=v`, `key>1`).
fn terms(selector: &str, label: bool) -> impl Iterator<Item = &str> {
    let mut depth = 0usize;
    let mut start = 0;
    let mut escaped = false;
    let mut cuts = Vec::new();
    for (i, c) in selector.char_indices() {
        match c {
            '(' if label => depth += 1,
            ')' if label => depth = depth.saturating_sub(1),
            ',' if depth == 0 && !escaped => {
                cuts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        escaped = c == '\\' && !escaped;
    }
    cuts.push(&selector[start..]);
    cuts.into_iter().filter_map(|term| {
        let term = term.trim().trim_start_matches('!').trim_start();
        let end = term.find(|c: char| c.is_whitespace() || "=!<>(".contains(c)).unwrap_or(term.len());
        Some(&term[..end]).filter(|key| !key.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::mask::MaskPath;

    fn mask(read: &[&str]) -> Mask {
        let read = read.iter().map(|p| Arc::new(MaskPath::compile(p).unwrap())).collect();
        Mask { read, write: Vec::new(), view: "acme/web".into() }
    }

    #[test]
    fn field_selectors_on_masked_paths_are_found() {
        let pods = mask(&["$.spec.nodeName", "$.status.hostIPs[*].ip"]);
        assert_eq!(masked_selector(&pods, "spec.nodeName=node-1", ""), Some("spec.nodeName".into()));
        assert_eq!(masked_selector(&pods, "status.phase=Running, spec.nodeName!=x", ""), Some("spec.nodeName".into()));
        assert_eq!(masked_selector(&pods, "status.hostIPs=10.0.0.1", ""), Some("status.hostIPs[*].ip".into()));
        assert_eq!(masked_selector(&pods, "spec=x", ""), Some("spec.nodeName".into()), "above a masked path");
        assert_eq!(masked_selector(&pods, "status.phase=Running,metadata.name=p", ""), None);
        assert_eq!(masked_selector(&pods, "", ""), None);
    }

    #[test]
    fn label_selectors_on_masked_labels_are_found() {
        let labelled = mask(&["$.metadata.labels['tenant.example/tier']"]);
        for selector in [
            "tenant.example/tier=gold",
            "app=x,!tenant.example/tier",
            "tenant.example/tier in (gold,silver)",
            "app in (a,b), tenant.example/tier notin (x)",
            "tenant.example/tier>1",
        ] {
            assert_eq!(
                masked_selector(&labelled, "", selector).as_deref(),
                Some("metadata.labels['tenant.example/tier']")
            );
        }
        assert_eq!(masked_selector(&labelled, "", "app in (tenant.example/tier),tier=x"), None);
        assert!(masked_selector(&mask(&["$.metadata.labels"]), "", "app").is_some(), "every label masked");
    }
}
