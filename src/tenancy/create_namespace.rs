//! Phase 7: a tenant's namespace, created within the view's quota (see
//! [`crate::policy::namespaces`]); the request was rewritten to its physical name already.

use std::sync::Arc;

use http::{Request, Response};

use super::{Decision, Inner, Phase, Rewritten, claim};
use crate::body::Body;
use crate::policy::namespaces::{Creation, Creations};
use crate::status::Status;

/// Creates namespaces, one at a time per view.
#[derive(Clone, Default)]
pub struct CreateNamespace {
    creations: Creations,
}

impl Phase for CreateNamespace {
    async fn serve<S: Inner>(&self, mut request: Request<Body>, mut inner: S) -> Result<Response<Body>, Status> {
        let (Some(decision), Some(rewritten)) =
            (request.extensions().get::<Arc<Decision>>(), request.extensions().get::<Arc<Rewritten>>())
        else {
            return inner.call(request).await;
        };
        let (true, Some((physical, _))) = (decision.plan.create_namespace, &rewritten.translation.namespace) else {
            return inner.call(request).await;
        };
        let (decision, physical) = (Arc::clone(decision), physical.clone());
        claim(request.extensions_mut());
        let creation = Creation { request, physical, view: decision.view };
        creation.run(&decision.tree, &self.creations, inner).await
    }
}
