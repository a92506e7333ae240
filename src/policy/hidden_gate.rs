//! Writes that send back [`HIDDEN_NAMESPACE`], which the view read in place of a namespace of
//! the tree outside it. Before the dry run, the stored names come back where the write holds
//! the entry as it was shown ([`crate::rewrite::hidden`]); a placeholder left after that is
//! refused with `422`, so it is never stored and never stands for a namespace the tenant picked.
//! A JSON patch is refused outright (its operations name places, not entries), and so is a
//! protobuf body, which Canopy does not read whole.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::precondition::{Patch, Verb};
use super::write::{Proposed, Stored, Upstream, Write, WriteGate};
use crate::request::RequestInfo;
use crate::rewrite::hidden::{carries, placeholder_at, restore};
use crate::rewrite::{HIDDEN_NAMESPACE, ViewNames};
use crate::status::Status;
use crate::tree::{NodeId, Tree};

/// A write whose body holds the placeholder.
pub struct HiddenGate {
    tree: Arc<Tree>,
    view: NodeId,
    resource: String,
    group: String,
    name: String,
}

impl HiddenGate {
    pub fn new(tree: &Arc<Tree>, view: NodeId, info: &RequestInfo) -> Self {
        HiddenGate {
            tree: Arc::clone(tree),
            view,
            resource: info.resource.clone(),
            group: info.api_group.clone(),
            name: info.name.clone(),
        }
    }

    fn refusal(&self, sent: Option<&Value>, field: String, why: &str) -> Status {
        let text = |pointer: &str| sent.and_then(|s| s.pointer(pointer)).and_then(Value::as_str).unwrap_or("");
        let kind = match text("/kind") {
            "" => self.resource.as_str(),
            kind => kind,
        };
        let name = match text("/metadata/name") {
            "" => self.name.as_str(),
            name => name,
        };
        let view = &self.tree.nodes[self.view].path;
        let message = format!(
            "{HIDDEN_NAMESPACE:?} stands for a namespace outside view {view}, which a write cannot name: {why}"
        );
        Status::invalid_fields(kind, &self.group, name, vec![(field, message)])
    }
}

impl WriteGate for HiddenGate {
    fn needs_stored(&self, _verb: Verb) -> bool {
        true
    }

    fn prepare(&self, write: &mut Write, stored: &Stored) -> Result<(), Status> {
        let Some(sent) = &mut write.sent else {
            return Err(self.refusal(None, "body".into(), "send the object as JSON to keep what the view hid"));
        };
        if write.verb == Verb::Patch(Patch::Json) {
            let operations = sent.as_array().into_iter().flatten();
            let operation = operations.filter(|op| carries(op)).find_map(|op| op.get("path")?.as_str());
            let field = operation.unwrap_or("body").to_owned();
            return Err(self.refusal(None, field, "a JSON patch cannot keep it; leave it out of the patch"));
        }
        if let Stored::Found(stored) = stored {
            let names = ViewNames::new(&self.tree, self.view);
            restore(stored, sent, &|physical: &str| names.hidden(physical).then(|| HIDDEN_NAMESPACE.to_owned()));
        }
        match placeholder_at(sent) {
            Some(field) => Err(self.refusal(
                Some(&*sent),
                field,
                "send the entry holding it back as it was read, or name a namespace of the view",
            )),
            None => Ok(()),
        }
    }

    fn judge<'a>(&'a self, _upstream: Upstream, _proposed: Proposed<'a>) -> BoxFuture<'a, Result<(), Status>> {
        Box::pin(async { Ok(()) })
    }
}
