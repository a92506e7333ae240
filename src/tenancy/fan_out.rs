//! Phase 8: a list or watch of a namespaced resource across the view (`-A`), answered from one
//! request per namespace the view reaches (see [`crate::fanout`]).

use std::sync::Arc;

use http::{Request, Response};

use super::{Decision, Inner, Phase, Rewritten, in_view};
use crate::body::Body;
use crate::fanout::FanOut;
use crate::policy::across_namespaces;
use crate::rewrite::selector::namespace_equal;
use crate::status::Status;

/// Answers requests across the view's namespaces.
#[derive(Clone, Default)]
pub struct Across;

impl Phase for Across {
    async fn serve<S: Inner>(&self, request: Request<Body>, mut inner: S) -> Result<Response<Body>, Status> {
        let (Some(decision), Some(rewritten)) =
            (request.extensions().get::<Arc<Decision>>(), request.extensions().get::<Arc<Rewritten>>())
        else {
            return inner.call(request).await;
        };
        if !decision.plan.across {
            return inner.call(request).await;
        }
        let Decision { tree, view, identity, info, .. } = &**decision;
        let Rewritten { translation, query, .. } = &**rewritten;
        let mut namespaces = across_namespaces(tree, *view, identity, info);
        // `--field-selector metadata.namespace=X` narrows the fan-out to X.
        let fields = query.iter().find(|(k, _)| k == "fieldSelector").map(|(_, v)| v.as_str()).unwrap_or("");
        if let Some(only) = namespace_equal(fields) {
            namespaces.retain(|n| *n == only);
        }
        let fan_out = FanOut {
            namespaces,
            info: info.clone(),
            identity: identity.clone(),
            headers: request.headers().clone(),
            query: query.clone(),
            translation: translation.clone(),
        };
        Ok(in_view(fan_out.serve(inner).await?))
    }
}
