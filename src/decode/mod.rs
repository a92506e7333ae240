//! Request bodies read exactly as kube-apiserver reads them, or refused. A body Canopy judges
//! must mean to Canopy what it means to the apiserver: where two readers of JSON or YAML could
//! disagree (duplicate keys, YAML merge keys, tags, anchors, YAML 1.1 scalars such as `yes` or
//! `0777` that sigs.k8s.io/yaml reads as booleans and octal numbers), the body is refused with
//! the construct and its place named, rather than guessed at. Pure functions, unit-tested and
//! fuzzed.

mod json;
mod yaml;

pub use json::json;
pub use yaml::yaml;

/// Why a body cannot be read in one unambiguous way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON (or JSON with a key twice in one object, which readers resolve differently).
    #[error("{0}")]
    Json(String),
    /// Not YAML at all.
    #[error("not YAML: {0}")]
    Syntax(String),
    /// A YAML construct whose meaning differs between readers, at `line:column`.
    #[error("{construct} at line {line} column {column}: readers of YAML disagree on it, write it plainly")]
    Ambiguous { construct: String, line: usize, column: usize },
    /// Not exactly one YAML document.
    #[error("the body holds {0} YAML documents; send exactly one")]
    Documents(usize),
    /// Nesting deeper than Canopy reads.
    #[error("the body nests deeper than {0} levels")]
    TooDeep(usize),
}

/// Deepest nesting read, as serde_json's own default limit.
const MAX_DEPTH: usize = 128;
