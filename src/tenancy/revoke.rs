//! Phase 2: a request that opens a long stream (a watch, an upgraded exec, attach or
//! port-forward) keeps what its decision rested on, and ends when a reload changes that (see
//! [`crate::policy::revoke`]).

use std::sync::Arc;

use http::{Request, Response};
use tokio::sync::watch;

use super::{Decision, Inner, Phase, PhaseLayer};
use crate::body::Body;
use crate::policy::revoke::{Revocation, Standing};
use crate::request::ViewPath;
use crate::request::headers::is_upgrade;
use crate::status::Status;
use crate::tree::Tree;

/// Ends streams whose standing a reload changes.
#[derive(Clone)]
pub struct Revoke {
    trees: watch::Receiver<Arc<Tree>>,
}

impl PhaseLayer<Revoke> {
    /// Compares open streams' standing with every tree `trees` gets.
    pub fn new(trees: watch::Receiver<Arc<Tree>>) -> Self {
        PhaseLayer(Revoke { trees })
    }
}

impl Phase for Revoke {
    async fn serve<S: Inner>(&self, mut request: Request<Body>, mut inner: S) -> Result<Response<Body>, Status> {
        let Some(revocation) = self.revocation(&request) else { return inner.call(request).await };
        // The tunnel reads it from the request; a watch's answer is wrapped below.
        request.extensions_mut().insert(revocation.stream_end());
        Ok(revocation.end_watch(inner.call(request).await?))
    }
}

impl Revoke {
    /// What ends `request`'s stream, if it opens one.
    fn revocation(&self, request: &Request<Body>) -> Option<Revocation> {
        let decision = request.extensions().get::<Arc<Decision>>()?;
        let Decision { tree, info, identity, .. } = &**decision;
        if info.verb != "watch" && !is_upgrade(request.headers()) {
            return None;
        }
        let view_path = request.extensions().get::<ViewPath>().cloned().unwrap_or_default();
        let standing = Standing::of(tree, identity, info, &view_path)?;
        Some(Revocation::watch(self.trees.clone(), identity.clone(), info.clone(), view_path, standing))
    }
}
