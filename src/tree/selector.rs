//! Label selectors as Kubernetes reads them: `matchLabels`/`matchExpressions` from config, and
//! the string form of a request's `labelSelector` (`a=b,c!=d,e in (x,y),!f,g`). Deny rules choose
//! objects by one ([`super::deny`]). A list or watch escapes such a rule only when its own
//! selector provably selects none of the objects the rule covers ([`Selector::excludes`]): the
//! apiserver filters by the request's selector, so nothing it answers can match the rule's.
//! A request selector Canopy cannot read (`gt`, `lt`, odd syntax) excludes nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::raw_tree::{RawLabelSelector, RawSelectorOperator};

/// A conjunction of requirements on labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(BTreeSet<String>),
    /// Objects without the label match too, as in Kubernetes.
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
}

/// Why a selector cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

impl Selector {
    /// Compiles a selector from config; errors name the field (`matchExpressions[1].values`).
    pub fn compile(raw: &RawLabelSelector) -> Result<Self, (String, SelectorError)> {
        let mut requirements = Vec::new();
        for (key, value) in &raw.match_labels {
            let at = format!("matchLabels.{key}");
            check_key(key).map_err(|e| (at.clone(), e))?;
            check_value(value).map_err(|e| (at, e))?;
            requirements.push(Requirement { key: key.clone(), op: Op::In(BTreeSet::from([value.clone()])) });
        }
        for (i, expression) in raw.match_expressions.iter().enumerate() {
            let at = |field: &str| format!("matchExpressions[{i}].{field}");
            check_key(&expression.key).map_err(|e| (at("key"), e))?;
            for value in &expression.values {
                check_value(value).map_err(|e| (at("values"), e))?;
            }
            let values: BTreeSet<String> = expression.values.iter().cloned().collect();
            let op = match (expression.operator, values.is_empty()) {
                (RawSelectorOperator::In, false) => Op::In(values),
                (RawSelectorOperator::NotIn, false) => Op::NotIn(values),
                (RawSelectorOperator::Exists, true) => Op::Exists,
                (RawSelectorOperator::DoesNotExist, true) => Op::DoesNotExist,
                (RawSelectorOperator::In | RawSelectorOperator::NotIn, true) => {
                    return Err((at("values"), SelectorError("In and NotIn need at least one value".into())));
                }
                (_, false) => {
                    return Err((at("values"), SelectorError("Exists and DoesNotExist take no values".into())));
                }
            };
            requirements.push(Requirement { key: expression.key.clone(), op });
        }
        if requirements.is_empty() {
            return Err((String::new(), SelectorError("must hold matchLabels or matchExpressions".into())));
        }
        Ok(Selector { requirements })
    }

    /// Reads the string form a request's `labelSelector` takes.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(text)? {
            let term = term.trim();
            if term.is_empty() {
                // `a=b,` and an empty selector: the apiserver selects everything for the latter.
                if text.trim().is_empty() {
                    continue;
                }
                return Err(SelectorError(format!("empty requirement in {text:?}")));
            }
            requirements.push(parse_term(term)?);
        }
        Ok(Selector { requirements })
    }

    /// Whether an object with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.op.allows(labels.get(&r.key).map(String::as_str)))
    }

    /// Whether no object at all can be selected by both `self` and `other`.
    pub fn excludes(&self, other: &Selector) -> bool {
        let keys: BTreeSet<&str> =
            self.requirements.iter().chain(&other.requirements).map(|r| r.key.as_str()).collect();
        keys.into_iter().any(|key| {
            let both = self.requirements.iter().chain(&other.requirements).filter(|r| r.key == key);
            both.fold(Values::any(), |values, r| values.and(Values::of(&r.op))).is_empty()
        })
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |values: &BTreeSet<String>| values.iter().map(String::as_str).collect::<Vec<_>>().join(",");
        for (i, Requirement { key, op }) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match op {
                Op::In(values) if values.len() == 1 => write!(f, "{key}={}", join(values))?,
                Op::In(values) => write!(f, "{key} in ({})", join(values))?,
                Op::NotIn(values) if values.len() == 1 => write!(f, "{key}!={}", join(values))?,
                Op::NotIn(values) => write!(f, "{key} notin ({})", join(values))?,
                Op::Exists => write!(f, "{key}")?,
                Op::DoesNotExist => write!(f, "!{key}")?,
            }
        }
        Ok(())
    }
}

impl Op {
    fn allows(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Op::In(values), Some(value)) => values.contains(value),
            (Op::In(_), None) => false,
            (Op::NotIn(values), Some(value)) => !values.contains(value),
            (Op::NotIn(_), None) | (Op::DoesNotExist, None) | (Op::Exists, Some(_)) => true,
            (Op::Exists, None) | (Op::DoesNotExist, Some(_)) => false,
        }
    }
}

/// What one label may be: absent or not, and which values.
struct Values {
    absent: bool,
    present: Present,
}

enum Present {
    Only(BTreeSet<String>),
    AllBut(BTreeSet<String>),
}

impl Values {
    fn any() -> Self {
        Values { absent: true, present: Present::AllBut(BTreeSet::new()) }
    }

    fn of(op: &Op) -> Self {
        match op {
            Op::In(values) => Values { absent: false, present: Present::Only(values.clone()) },
            Op::NotIn(values) => Values { absent: true, present: Present::AllBut(values.clone()) },
            Op::Exists => Values { absent: false, present: Present::AllBut(BTreeSet::new()) },
            Op::DoesNotExist => Values { absent: true, present: Present::Only(BTreeSet::new()) },
        }
    }

    fn and(self, other: Values) -> Self {
        let present = match (self.present, other.present) {
            (Present::Only(a), Present::Only(b)) => Present::Only(a.intersection(&b).cloned().collect()),
            (Present::Only(a), Present::AllBut(b)) | (Present::AllBut(b), Present::Only(a)) => {
                Present::Only(a.difference(&b).cloned().collect())
            }
            (Present::AllBut(a), Present::AllBut(b)) => Present::AllBut(a.union(&b).cloned().collect()),
        };
        Values { absent: self.absent && other.absent, present }
    }

    /// Label values are unbounded, so only a finite set can run out.
    fn is_empty(&self) -> bool {
        !self.absent && matches!(&self.present, Present::Only(values) if values.is_empty())
    }
}

/// Splits at the commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, SelectorError> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            ')' if depth == 1 => depth = 0,
            '(' | ')' => return Err(SelectorError(format!("unbalanced parentheses in {text:?}"))),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(SelectorError(format!("unbalanced parentheses in {text:?}")));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn parse_term(term: &str) -> Result<Requirement, SelectorError> {
    let unreadable = || SelectorError(format!("cannot read the requirement {term:?}"));
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Requirement { key: key.to_owned(), op: Op::DoesNotExist });
    }
    for (operator, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(operator) {
            let (key, value) = (key.trim(), value.trim());
            check_key(key)?;
            check_value(value)?;
            let values = BTreeSet::from([value.to_owned()]);
            let op = if negated { Op::NotIn(values) } else { Op::In(values) };
            return Ok(Requirement { key: key.to_owned(), op });
        }
    }
    if let Some(open) = term.find('(') {
        let (head, rest) = term.split_at(open);
        let list = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(unreadable)?;
        let mut words = head.split_whitespace();
        let (Some(key), Some(operator), None) = (words.next(), words.next(), words.next()) else {
            return Err(unreadable());
        };
        check_key(key)?;
        let values: BTreeSet<String> = list.split(',').map(|v| v.trim().to_owned()).collect();
        // `(a,)` is left unread: whether its empty entry is a value is not worth guessing.
        if values.iter().any(String::is_empty) {
            return Err(unreadable());
        }
        for value in &values {
            check_value(value)?;
        }
        let op = match operator {
            "in" => Op::In(values),
            "notin" => Op::NotIn(values),
            _ => return Err(unreadable()),
        };
        return Ok(Requirement { key: key.to_owned(), op });
    }
    check_key(term).map_err(|_| unreadable())?;
    Ok(Requirement { key: term.to_owned(), op: Op::Exists })
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn check_key(key: &str) -> Result<(), SelectorError> {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let prefix_ok = key.find('/') == key.rfind('/')
        && prefix.len() <= 253
        && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !prefix_ok || name.is_empty() || !is_label_text(name) || (key.contains('/') && prefix.is_empty()) {
        return Err(SelectorError(format!("{key:?} is not a label key")));
    }
    Ok(())
}

/// A label value: empty, or at most 63 alphanumerics, `-`, `_` and `.`, alphanumeric at each end.
fn check_value(value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || is_label_text(value) {
        Ok(())
    } else {
        Err(SelectorError(format!("{value:?} is not a label value")))
    }
}

fn is_label_text(text: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.len() <= 63
        && edge(text.chars().next())
        && edge(text.chars().last())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(text: &str) -> Selector {
        Selector::parse(text).unwrap()
    }

    #[test]
    fn the_string_form_reads_every_kubernetes_operator() {
        let selector = parse("tier=web, env!=prod,app in (a, b),zone notin (x),team,!legacy,canopy.io/x==y");
        assert!(selector.matches(&labels(&[("tier", "web"), ("app", "a"), ("team", "t"), ("canopy.io/x", "y")])));
        assert!(!selector.matches(&labels(&[("tier", "web"), ("app", "a"), ("team", "t")])));
        assert!(!selector.matches(&labels(&[
            ("tier", "web"),
            ("app", "b"),
            ("team", "t"),
            ("legacy", ""),
            ("canopy.io/x", "y")
        ])));
        assert_eq!(parse("a in (x,y),!b").to_string(), "a in (x,y),!b");
        assert!(parse("").matches(&labels(&[])));
    }

    #[test]
    fn selectors_canopy_cannot_read_are_refused_not_guessed() {
        for text in
            ["a in (b,)", "a gt 1", "a in x", "a=(b)", "a=b,", "a=b c", "(a)", "a in (b", "A/b=c", "a=b)", "/a", "a//b"]
        {
            assert!(Selector::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_request_selector_excludes_a_rule_only_when_no_object_can_match_both() {
        let rule = parse("protected=true");
        for excluding in
            ["protected!=true", "!protected", "protected=false", "protected in (a,b)", "protected notin (true)"]
        {
            assert!(parse(excluding).excludes(&rule), "{excluding}");
        }
        for overlapping in ["", "app=web", "protected", "protected in (true,false)", "protected!=false", "x!=true"] {
            assert!(!parse(overlapping).excludes(&rule), "{overlapping}");
        }
        let rule = parse("tier notin (web)");
        assert!(parse("tier=web").excludes(&rule));
        assert!(!parse("!tier").excludes(&rule), "an object without the label matches notin");
        assert!(parse("a=1,a=2").excludes(&rule), "a selector selecting nothing excludes everything");
    }

    #[test]
    fn config_selectors_name_the_field_at_fault() {
        let raw: RawLabelSelector =
            serde_saphyr::from_str("{matchExpressions: [{key: a, operator: Exists}, {key: b, operator: In}]}").unwrap();
        let (at, _) = Selector::compile(&raw).unwrap_err();
        assert_eq!(at, "matchExpressions[1].values");
        let raw: RawLabelSelector = serde_saphyr::from_str("{matchLabels: {'bad key': x}}").unwrap();
        assert_eq!(Selector::compile(&raw).unwrap_err().0, "matchLabels.bad key");
        let raw: RawLabelSelector = serde_saphyr::from_str(
            "{matchLabels: {protected: 'true'}, matchExpressions: [{key: tier, operator: NotIn, values: [web]}]}",
        )
        .unwrap();
        assert_eq!(Selector::compile(&raw).unwrap().to_string(), "protected=true,tier!=web");
    }
}
