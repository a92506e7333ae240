//! Phase 1: the view a request is made from and what it may do there. The decision is the pure
//! [`decide`]; this phase applies it to the request and records it for the audit line.

use std::sync::Arc;

use http::{Request, Response};
use tokio::sync::watch;

use super::{Decision, Inner, Phase, PhaseLayer};
use crate::audit::AuditSlot;
use crate::auth::Identity;
use crate::body::Body;
use crate::policy::{AsCanopy, decide, resolve_view};
use crate::request::{RequestInfo, ViewPath};
use crate::status::Status;
use crate::tree::Tree;

/// Decides each request against the newest tree and hands on an `Arc<`[`Decision`]`>`.
#[derive(Clone)]
pub struct View {
    trees: watch::Receiver<Arc<Tree>>,
}

impl PhaseLayer<View> {
    /// Decides each request against the newest tree in `trees`.
    pub fn new(trees: watch::Receiver<Arc<Tree>>) -> Self {
        PhaseLayer(View { trees })
    }
}

impl Phase for View {
    async fn serve<S: Inner>(&self, mut request: Request<Body>, mut inner: S) -> Result<Response<Body>, Status> {
        // One snapshot per request: a reload is in force for the very next request.
        let tree = self.trees.borrow().clone();
        let view_path = request.extensions().get::<ViewPath>().cloned().unwrap_or_default();
        if tree.nodes.is_empty() {
            if view_path.0.is_some() {
                return Err(Status::not_found("this Canopy has no tenancy tree, so no views"));
            }
            return inner.call(request).await;
        }
        let decision = Arc::new(decision(tree, &request, &view_path)?);
        if decision.plan.as_canopy {
            request.extensions_mut().insert(AsCanopy);
        }
        request.extensions_mut().insert(decision);
        inner.call(request).await
    }
}

/// The decision about `request` in `tree`, recorded for the audit line.
fn decision(tree: Arc<Tree>, request: &Request<Body>, view_path: &ViewPath) -> Result<Decision, Status> {
    let identity = request.extensions().get::<Identity>().cloned().ok_or_else(|| Status::internal("no identity"))?;
    let info =
        request.extensions().get::<RequestInfo>().cloned().ok_or_else(|| Status::internal("unclassified request"))?;
    let view = resolve_view(&tree, &identity, view_path)?;
    AuditSlot::on(request, |r| r.view = Some(tree.nodes[view].path.clone()));
    let plan = decide(&tree, view, &identity, &info)?;
    AuditSlot::on(request, |r| {
        r.decision = "allowed";
        r.reason = plan.rule.to_owned();
        r.physical_namespace = plan.namespace.as_ref().map(|(physical, _)| physical.clone());
    });
    let governing = tree.answering(view, plan.namespace.as_ref().map(|(physical, _)| physical.as_str()));
    Ok(Decision { tree, view, plan, governing, identity, info })
}
