//! The tenancy tree applied to a request, as a chain of phase layers. Each does one thing and
//! hands a typed decision to the next in the request's extensions; a request no phase claims
//! passes on unchanged, and with an empty tree every caller is forwarded as themselves.
//!
//! 1. [`ViewLayer`]: the view and the pure decision ([`crate::policy::decide`]) → [`Decision`].
//! 2. [`RevokeLayer`]: a watch or tunnel ends when a reload changes the caller's standing.
//! 3. [`NegotiateLayer`]: the answer leaves in the encoding the client negotiated.
//! 4. [`DiscoveryLayer`]: discovery and OpenAPI documents filtered to the ceiling.
//! 5. [`RewriteLayer`]: virtual names to physical ones in the request → [`Rewritten`]; back to
//!    virtual ones in the answer.
//! 6. [`ReviewLayer`]: access reviews answered in the view.
//! 7. [`CreateNamespaceLayer`]: a tenant's namespace created within the view's quota.
//! 8. [`FanOutLayer`]: lists and watches across the view's namespaces (`-A`).
//! 9. [`GateLayer`]: writes judged by their gates and committed as judged; single secrets read
//!    or deleted by type.

mod create_namespace;
mod discovery;
mod fan_out;
mod gates;
mod negotiate;
mod phase;
mod review;
mod revoke;
mod rewrite;
mod view;

#[cfg(test)]
mod tests;

pub use phase::{Inner, Phase, PhaseLayer, PhaseService};

/// See [`view::View`].
pub type ViewLayer = PhaseLayer<view::View>;
/// See [`revoke::Revoke`].
pub type RevokeLayer = PhaseLayer<revoke::Revoke>;
/// See [`negotiate::Negotiate`].
pub type NegotiateLayer = PhaseLayer<negotiate::Negotiate>;
/// See [`discovery::Discovery`].
pub type DiscoveryLayer = PhaseLayer<discovery::Discovery>;
/// See [`rewrite::Rewrite`].
pub type RewriteLayer = PhaseLayer<rewrite::Rewrite>;
/// See [`review::Review`].
pub type ReviewLayer = PhaseLayer<review::Reviews>;
/// See [`create_namespace::CreateNamespace`].
pub type CreateNamespaceLayer = PhaseLayer<create_namespace::CreateNamespace>;
/// See [`fan_out::Across`].
pub type FanOutLayer = PhaseLayer<fan_out::Across>;
/// See [`gates::Gates`].
pub type GateLayer = PhaseLayer<gates::Gates>;

use std::sync::Arc;

use crate::auth::Identity;
use crate::mask::Mask;
use crate::policy::Plan;
use crate::request::RequestInfo;
use crate::transform::Translation;
use crate::tree::{NodeId, Tree};

/// What [`ViewLayer`] decided about a request in a tree.
#[derive(Debug)]
pub struct Decision {
    /// The tree snapshot the request is decided and answered in: a reload is in force for the
    /// very next request, never halfway through one.
    pub tree: Arc<Tree>,
    pub view: NodeId,
    pub plan: Plan,
    /// The node the request answers to: the owner of its namespace (whose ceiling, secret types
    /// and masks narrow the view's), else the view.
    pub governing: NodeId,
    pub identity: Identity,
    pub info: RequestInfo,
}

/// What [`RewriteLayer`] made of a resource request.
pub struct Rewritten {
    /// How the answer is translated back into the view.
    pub translation: Translation,
    /// The query as it goes upstream, decoded.
    pub query: Vec<(String, String)>,
    /// The masks on the request's resource, for the write gates.
    pub mask: Option<Arc<Mask>>,
}

/// Marks an answer already in the view's terms, which [`RewriteLayer`] must not translate again.
#[derive(Debug, Clone, Copy)]
pub struct InView;

/// Claims a request for the phase that answers it: the later phases pass it, and what the phase
/// sends on the caller's behalf, on as it is.
fn claim(extensions: &mut http::Extensions) {
    extensions.remove::<Arc<Decision>>();
    extensions.remove::<Arc<Rewritten>>();
}

/// The answer a phase gives itself, marked as in the view's terms.
fn in_view(mut response: http::Response<crate::body::Body>) -> http::Response<crate::body::Body> {
    response.extensions_mut().insert(InView);
    response
}
