//! Phase 4: discovery and OpenAPI documents filtered to the view's ceiling, so `kubectl
//! api-resources` and `kubectl explain` show the virtual cluster. Other non-resource requests
//! (`/version`, health checks) pass on as they are.

use std::sync::Arc;

use http::{Request, Response};

use super::{Decision, Inner, Phase};
use crate::body::Body;
use crate::discovery::Document;
use crate::status::Status;
use crate::transform::negotiate::Encoding;
use crate::transform::{self, DocumentMap};

/// Filters discovery answers.
#[derive(Clone, Default)]
pub struct Discovery;

impl Phase for Discovery {
    async fn serve<S: Inner>(&self, request: Request<Body>, mut inner: S) -> Result<Response<Body>, Status> {
        let Some(decision) = request.extensions().get::<Arc<Decision>>().cloned() else {
            return inner.call(request).await;
        };
        let document = match decision.info.is_resource_request {
            true => None,
            false => Document::of(&decision.info),
        };
        let Some(document) = document else { return inner.call(request).await };
        let ceiling = decision.tree.nodes[decision.view].ceiling.clone();
        if !document.visible(&ceiling) {
            return Err(Status::not_found("the server could not find the requested resource"));
        }
        let map = match request.extensions().get::<Encoding>() {
            Some(Encoding::OpenApiV2Protobuf) => DocumentMap::OpenApiV2Protobuf(ceiling),
            _ => DocumentMap::Json(Box::new(move |doc| document.filter(&ceiling, doc))),
        };
        Ok(transform::map_document(inner.call(request).await?, map))
    }
}
