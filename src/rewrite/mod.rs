//! Pure rewriting between what a view shows and what upstream holds: namespace names
//! ([`names`]), the JSON and protobuf documents that carry them ([`json`], [`protobuf`]) and field
//! selectors ([`selector`]); [`fields`] lists every place a name travels, [`links`] how a linked
//! copy names its source, [`hidden`] how a write brings back a namespace the view could not read.

pub mod fields;
pub mod hidden;
pub mod json;
pub mod links;
pub mod names;
#[cfg(test)]
mod props;
pub mod protobuf;
pub mod selector;

pub use names::{HIDDEN_NAMESPACE, ViewNames};
