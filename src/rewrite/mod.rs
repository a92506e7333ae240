//! Pure rewriting between what a view shows and what upstream holds: namespace names
//! ([`names`]) and the JSON documents that carry them ([`json`]).

pub mod json;
pub mod names;
pub mod protobuf;

pub use names::ViewNames;
