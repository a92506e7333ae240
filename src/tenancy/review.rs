//! Phase 6: access reviews answered in the view. A self access review is decided against the
//! tree first and asked of upstream only where the tree allows it; a self rules review is
//! narrowed to the ceiling (see [`crate::policy::review`]). Names go upstream physical and
//! come back virtual, failures included.

use std::sync::Arc;

use http::{Request, Response};
use serde_json::Value;
use tower::ServiceExt;

use super::{Decision, Inner, Phase, Rewritten, claim, in_view};
use crate::auth::Identity;
use crate::body::Body;
use crate::policy::across_namespaces;
use crate::policy::review::{self, Review, Verdict};
use crate::rewrite::ViewNames;
use crate::status::Status;
use crate::transform::{self, DocumentMap, Translation};
use crate::tree::{NodeId, Tree};

/// Answers access reviews.
#[derive(Clone, Default)]
pub struct Reviews;

impl Phase for Reviews {
    async fn serve<S: Inner>(&self, request: Request<Body>, mut inner: S) -> Result<Response<Body>, Status> {
        let (Some(decision), Some(rewritten)) =
            (request.extensions().get::<Arc<Decision>>(), request.extensions().get::<Arc<Rewritten>>())
        else {
            return inner.call(request).await;
        };
        let Some(review) = Review::of(&decision.info) else { return inner.call(request).await };
        let (decision, translation) = (Arc::clone(decision), rewritten.translation.clone());
        let Decision { tree, view, identity, .. } = &*decision;
        let (mut parts, body) = request.into_parts();
        claim(&mut parts.extensions);
        let document = transform::read_review(body, &mut parts.headers).await?;
        if review == Review::Access {
            let answer = match review::verdict(tree, *view, identity, &document) {
                Verdict::Denied(reason) => review::denied(document, &reason),
                Verdict::Allowed(reason) => review::allowed(document, reason),
                Verdict::Across(info) => {
                    let namespaces = across_namespaces(tree, *view, &info);
                    review_across(tree, *view, identity, &parts, document, &namespaces, inner).await?
                }
                Verdict::Upstream => {
                    return review_upstream(tree, *view, parts, document, review, translation, inner).await;
                }
            };
            return Ok(in_view(answer));
        }
        review_upstream(tree, *view, parts, document, review, translation, inner).await
    }
}

/// A self access review of a request across the view (`-A`): allowed when upstream allows it in
/// every namespace the fan-out reaches, asked as the caller, one namespace at a time.
async fn review_across<S: Inner>(
    tree: &Tree,
    view: NodeId,
    identity: &Identity,
    parts: &http::request::Parts,
    document: Value,
    namespaces: &[String],
    inner: S,
) -> Result<Response<Body>, Status> {
    let names = ViewNames::new(tree, view);
    for physical in namespaces {
        let mut asked = document.clone();
        asked["spec"]["resourceAttributes"]["namespace"] = physical.as_str().into();
        let bytes = serde_json::to_vec(&asked).map_err(|e| Status::internal(e.to_string()))?;
        let mut request = Request::builder()
            .method(http::Method::POST)
            .uri(parts.uri.path())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(crate::body::full(bytes))
            .map_err(|_| Status::bad_request("invalid review path"))?;
        request.extensions_mut().insert(identity.clone());
        let answer = inner.clone().oneshot(request).await?;
        if !answer.status().is_success() {
            let virtual_name = names.to_virtual(physical).unwrap_or_default();
            return Err(Status::from_code(
                answer.status(),
                format!("the access review in namespace {virtual_name:?} answered {}", answer.status()),
            ));
        }
        let answer = transform::read_bytes(answer.into_body()).await?;
        let answer: Value = serde_json::from_slice(&answer)
            .map_err(|e| Status::bad_gateway(format!("the upstream review is not JSON: {e}")))?;
        if answer.pointer("/status/allowed") != Some(&Value::Bool(true)) {
            let virtual_name = names.to_virtual(physical).unwrap_or_default();
            return Ok(review::denied(document, &format!("not allowed in namespace {virtual_name:?} of the view")));
        }
    }
    Ok(review::allowed(document, "allowed in every namespace of the view"))
}

/// A review upstream RBAC decides, its names translated both ways.
async fn review_upstream<S: Inner>(
    tree: &Arc<Tree>,
    view: NodeId,
    parts: http::request::Parts,
    document: Value,
    review: Review,
    translation: Translation,
    mut inner: S,
) -> Result<Response<Body>, Status> {
    let names = ViewNames::new(tree, view);
    let virtual_name = document.pointer("/spec/resourceAttributes/namespace").or(document.pointer("/spec/namespace"));
    let namespace = virtual_name.and_then(Value::as_str).and_then(|v| Some((names.to_physical(v)?, v.to_owned())));
    let request = transform::with_document(parts, document, &|v: &str| names.to_physical(v))?;
    let response = inner.call(request).await?;
    if !response.status().is_success() {
        return Ok(in_view(transform::response(response, translation)));
    }
    let ceiling = tree.nodes[view].ceiling.clone();
    let map = DocumentMap::Json(Box::new(move |doc| {
        translation.apply(doc);
        match review {
            Review::Access => {
                if let Some((physical, virtual_name)) = &namespace {
                    review::scrub_reason(doc, physical, virtual_name);
                }
            }
            Review::Rules => review::narrow_rules(&ceiling, doc),
        }
    }));
    Ok(in_view(transform::map_document(response, map)))
}
