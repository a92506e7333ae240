//! Phase 9: the gates. A write any gate judges (write masks, secret types, references,
//! namespace labels, value bounds, protobuf bodies, a namespace the view could not read sent
//! back) goes through the write driver, which judges the object the apiserver would store and
//! commits exactly that ([`crate::policy::write`]); linked copies are refused before anything is written; a single secret is read or deleted only if its type
//! is the view's; an object a deny rule chooses by label is neither read, written nor deleted.
//! Everything else goes upstream as rewritten.

use std::sync::Arc;

use http::{Request, Response};
use tower::util::BoxCloneService;

use super::{Decision, Inner, Phase, Rewritten, claim};
use crate::body::Body;
use crate::policy::AsCanopy;
use crate::policy::bound_gate::BoundGate;
use crate::policy::deny_gate::{DenyCheck, DenyGate};
use crate::policy::hidden_gate::HiddenGate;
use crate::policy::links::LinkGuard;
use crate::policy::mask_gate::MaskGate;
use crate::policy::namespace_gate::NamespaceGate;
use crate::policy::protobuf_gate::ProtobufGate;
use crate::policy::reference_gate::ReferenceGate;
use crate::policy::secret_gate::{SecretCheck, SecretGate};
use crate::policy::write::{WriteDriver, WriteGate};
use crate::status::Status;
use crate::transform::{self, CarriesHidden};

/// Judges writes and secret lookups.
#[derive(Clone, Default)]
pub struct Gates;

impl Phase for Gates {
    async fn serve<S: Inner>(&self, mut request: Request<Body>, mut inner: S) -> Result<Response<Body>, Status> {
        let (Some(decision), Some(rewritten)) = (
            request.extensions().get::<Arc<Decision>>().cloned(),
            request.extensions().get::<Arc<Rewritten>>().cloned(),
        ) else {
            return inner.call(request).await;
        };
        claim(request.extensions_mut());
        let Decision { tree, view, plan, identity, info, .. } = &*decision;
        let as_canopy = request.extensions().get::<AsCanopy>().copied();
        // Deny rules choosing objects by label: judged on the object, before anything else.
        let mut labelled = None;
        match DenyGate::of(tree, *view, info, identity, plan) {
            Some(DenyCheck::Lookup(gate)) => gate.check(inner.clone(), as_canopy).await?,
            Some(DenyCheck::Delete(gate)) => request = gate.guard_delete(inner.clone(), request).await?,
            Some(DenyCheck::Answer(gate)) => {
                let answer = gated(&decision, &rewritten, request, inner.clone(), None).await?;
                return gate.judge_answer(inner, as_canopy, answer).await;
            }
            Some(DenyCheck::Write(gate)) => labelled = Some(gate),
            None => {}
        }
        gated(&decision, &rewritten, request, inner, labelled).await
    }
}

/// Answers `request` through the gates, `labelled` judging writes first.
async fn gated<S: Inner>(
    decision: &Decision,
    rewritten: &Rewritten,
    mut request: Request<Body>,
    mut inner: S,
    labelled: Option<DenyGate>,
) -> Result<Response<Body>, Status> {
    let Decision { tree, view, plan, governing, identity, info } = decision;
    let namespace = &plan.namespace;
    let node = &tree.nodes[*governing];
    let secrets = SecretGate::of(&node.ceiling, &node.path, info, identity, namespace)?;
    // Linked copies are read-only: checked before anything is written, dry runs included.
    if let Some(guard) = LinkGuard::of(tree, *view, info, identity, namespace) {
        request = guard.check(inner.clone(), request).await?;
    }
    // Hidden namespaces and masks first: an update gets what the view hid back before anything
    // judges it.
    let mut gates: Vec<Box<dyn WriteGate>> = Vec::new();
    if request.extensions().get::<CarriesHidden>().is_some() {
        gates.push(Box::new(HiddenGate::new(tree, *view, info)));
    }
    if let Some(gate) = labelled {
        gates.push(Box::new(gate));
    }
    if let Some(mask) = &rewritten.mask
        && let Some(gate) = MaskGate::of(mask, info, identity)?
    {
        gates.push(Box::new(gate));
    }
    match secrets {
        Some(SecretCheck::Write(gate)) => gates.push(Box::new(gate)),
        Some(SecretCheck::Lookup(gate, lookup)) => return gate.serve(lookup, inner, request).await,
        None => {}
    }
    if let Some(gate) = ReferenceGate::of(tree, *governing, info, identity, namespace) {
        gates.push(Box::new(gate));
    }
    if let Some(gate) = NamespaceGate::of(tree, *governing, info) {
        gates.push(Box::new(gate));
    }
    // Bounds judge what would be stored, whichever way the write says it.
    if let Some(gate) = BoundGate::of(tree, *governing, info, &rewritten.translation) {
        gates.push(Box::new(gate));
    }
    // A protobuf body is read only where its own namespace is: what else it names is judged
    // on the dry-run result.
    if transform::is_protobuf(request.headers())
        && namespace.is_some()
        && matches!(info.verb.as_str(), "create" | "update")
    {
        gates.push(Box::new(ProtobufGate { tree: Arc::clone(tree), view: *view }));
    }
    if gates.is_empty() {
        return inner.call(request).await;
    }
    let driver = WriteDriver { gates, identity: identity.clone() };
    driver.serve(BoxCloneService::new(inner), request).await
}
