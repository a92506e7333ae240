//! Query strings read as kube-apiserver reads them, and re-encoded so upstream reads the same.
//!
//! The apiserver takes Go's `url.Values`: pairs split on `&`, pairs holding `;` or a broken
//! `%` escape dropped without a word, and for every option but a few lists only the *first*
//! value of a repeated parameter. Booleans are read by `Convert_Slice_string_To_bool`: anything
//! but `0` or `false` (any case) is true, so `?watch=yes` and a bare `?watch` are watches, while
//! the apiserver's own authorizer reads `watch` with `strconv.ParseBool` and calls them lists.
//! Canopy reads each parameter once, the way the handler will, refuses what Go would drop or
//! read as other bytes, and forwards only its canonical encoding: one value per parameter,
//! booleans spelled `true`/`false`. Upstream then executes the one meaning Canopy judged.

use percent_encoding::percent_decode_str;

/// Parameters whose every value counts: `[]string` fields of the apiserver's options.
const LISTS: [&str; 3] = ["dryRun", "command", "ports"];

/// Boolean parameters of the apiserver's options (list, watch, delete, patch, log, exec, attach).
const BOOLEANS: [&str; 14] = [
    "watch",
    "allowWatchBookmarks",
    "sendInitialEvents",
    "orphanDependents",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "force",
    "follow",
    "previous",
    "timestamps",
    "insecureSkipTLSVerifyBackend",
    "stdin",
    "stdout",
    "stderr",
    "tty",
];

/// Why a query string cannot be read one way only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A pair holds `;`, which Go drops (older readers took it as a separator).
    #[error("the query parameter {0:?} holds a ';', which readers split differently")]
    Semicolon(String),
    /// A `%` not followed by two hex digits, which Go drops with its pair.
    #[error("the query parameter {0:?} has an invalid percent-escape")]
    BadEscape(String),
    /// Decoded bytes that are not UTF-8.
    #[error("the query parameter {0:?} is not valid UTF-8 once decoded")]
    NotUtf8(String),
}

/// A query string as the apiserver reads it: parameters in order of first appearance, one value
/// each (every value for [`LISTS`]), booleans canonical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Reads a raw (still encoded) query string.
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            if pair.contains(';') {
                return Err(QueryError::Semicolon(pair.to_owned()));
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = (decode(key, pair)?, decode(value, pair)?);
            let repeated = pairs.iter().any(|(known, _)| *known == key);
            if repeated && !LISTS.contains(&key.as_str()) {
                continue;
            }
            let value = if BOOLEANS.contains(&key.as_str()) { go_bool(&value).to_string() } else { value };
            pairs.push((key, value));
        }
        Ok(Query(pairs))
    }

    /// The value of `key`: the only one, or the first of a list.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether boolean `key` is present and true.
    pub fn is_true(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }

    /// The parameters in order.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The canonical encoding.
    pub fn encode(&self) -> String {
        encode_pairs(&self.0)
    }
}

impl From<QueryError> for crate::status::Status {
    fn from(error: QueryError) -> Self {
        crate::status::Status::bad_request(error.to_string())
    }
}

/// Encodes `pairs` as a query string, every byte but ASCII letters and digits escaped.
pub fn encode_pairs(pairs: &[(String, String)]) -> String {
    let encode = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// `Convert_Slice_string_To_bool` of one value.
fn go_bool(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

/// Go's `QueryUnescape`: `+` is a space, `%` must start a two-digit hex escape.
fn decode(raw: &str, pair: &str) -> Result<String, QueryError> {
    let bytes = raw.as_bytes();
    for (i, _) in raw.match_indices('%') {
        let hex = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_hexdigit);
        if !(hex(i + 1) && hex(i + 2)) {
            return Err(QueryError::BadEscape(pair.to_owned()));
        }
    }
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| QueryError::NotUtf8(pair.to_owned()))
}

/// ANDs `selector` into the `labelSelector` of `query`.
pub fn and_label_selector(query: &mut Vec<(String, String)>, selector: &str) {
    match query.iter_mut().find(|(k, _)| k == "labelSelector") {
        Some((_, value)) if !value.trim().is_empty() => *value = format!("{value},{selector}"),
        Some((_, value)) => *value = selector.to_owned(),
        None => query.push(("labelSelector".into(), selector.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(raw: &str) -> String {
        Query::parse(raw).unwrap().encode()
    }

    #[test]
    fn booleans_read_as_the_handler_reads_them() {
        for raw in ["watch=yes", "watch", "watch=", "watch=TRUE", "watch=1", "watch=on", "watch=no"] {
            assert_eq!(canonical(raw), "watch=true", "{raw}");
        }
        for raw in ["watch=0", "watch=false", "watch=False", "watch=0&watch=1"] {
            assert_eq!(canonical(raw), "watch=false", "{raw}");
        }
        assert!(!Query::parse("").unwrap().is_true("watch"));
    }

    #[test]
    fn repeated_parameters_keep_the_first_value() {
        assert_eq!(canonical("labelSelector=a&labelSelector=b&limit=1"), "labelSelector=a&limit=1");
        assert_eq!(Query::parse("fieldSelector=x%3D1&fieldSelector=y%3D2").unwrap().get("fieldSelector"), Some("x=1"));
    }

    #[test]
    fn list_parameters_keep_every_value() {
        assert_eq!(canonical("command=sh&command=-c&stdout=1"), "command=sh&command=%2Dc&stdout=true");
        assert_eq!(canonical("dryRun=All&dryRun=All"), "dryRun=All&dryRun=All");
    }

    #[test]
    fn forms_go_drops_are_refused() {
        assert!(matches!(Query::parse("watch=1;labelSelector=x"), Err(QueryError::Semicolon(_))));
        assert!(matches!(Query::parse("labelSelector=%zz&watch=1"), Err(QueryError::BadEscape(_))));
        assert!(matches!(Query::parse("limit=%4"), Err(QueryError::BadEscape(_))));
        assert!(matches!(Query::parse("labelSelector=%ff"), Err(QueryError::NotUtf8(_))));
    }

    #[test]
    fn decoding_is_go_form_decoding() {
        let query = Query::parse("labelSelector=a+b%2Cc&&x").unwrap();
        assert_eq!(query.get("labelSelector"), Some("a b,c"));
        assert_eq!(query.get("x"), Some(""));
        assert_eq!(query.encode(), "labelSelector=a%20b%2Cc&x=");
    }

    #[test]
    fn canonical_encoding_reads_back_unchanged() {
        for raw in ["a=1&b=%2F&c=%C3%A9&watch=yes", "labelSelector=x+in+(a,b)&limit=5", ""] {
            let once = Query::parse(raw).unwrap();
            assert_eq!(Query::parse(&once.encode()).unwrap(), once, "{raw}");
        }
    }

    #[test]
    fn label_selector_is_anded() {
        let mut query = vec![];
        and_label_selector(&mut query, "a.tree/depth");
        assert_eq!(encode_pairs(&query), "labelSelector=a%2Etree%2Fdepth");
        let mut query = Query::parse("labelSelector=x%3Dy&watch=1").unwrap().into_pairs();
        and_label_selector(&mut query, "k");
        assert_eq!(encode_pairs(&query), "labelSelector=x%3Dy%2Ck&watch=true");
    }
}
