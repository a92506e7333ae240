//! Phase 6: access reviews answered in the view (see [`crate::policy::review`]).
//!
//! - A self access review is decided against the tree first and asked of upstream, as the
//!   caller, only where the tree allows the request; a self rules review is narrowed to the
//!   ceiling.
//! - A (local) subject access review is confined to the view: its namespace and the subject's
//!   service-account namespaces must be the view's, the request it describes must be one the
//!   tree allows there, and only then does upstream RBAC decide, asked by Canopy (tenants hold no
//!   cluster permission to ask).
//! - A token review is asked by Canopy; a token of a service account outside the view answers
//!   as not authenticated, and the user's names come back virtual.
//!
//! Names go upstream physical and come back virtual, failures included.

use std::sync::Arc;

use http::request::Parts;
use http::{Method, Request, Response, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Decision, Inner, Phase, Rewritten, claim, in_view};
use crate::auth::Identity;
use crate::body::{self, Body};
use crate::policy::review::{self, Review, Verdict, map_subject};
use crate::policy::{AsCanopy, across_namespaces};
use crate::rewrite::ViewNames;
use crate::status::Status;
use crate::transform::{self, DocumentMap, Translation};

const SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

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
        let (mut parts, body) = request.into_parts();
        claim(&mut parts.extensions);
        let document = transform::read_review(body, &mut parts.headers).await?;
        let answer = match review {
            Review::Access | Review::Rules => {
                self_review(&decision, parts, document, review, translation, inner).await?
            }
            Review::Subject => subject_review(&decision, document, translation, inner).await?,
            Review::Token => token_review(&decision, document, translation, inner).await?,
        };
        Ok(in_view(answer))
    }
}

/// A self access review decided against the tree first, or a self rules review narrowed to the
/// ceiling and the deny rules.
async fn self_review<S: Inner>(
    decision: &Decision,
    parts: Parts,
    document: Value,
    review: Review,
    translation: Translation,
    mut inner: S,
) -> Result<Response<Body>, Status> {
    let Decision { tree, view, identity, .. } = decision;
    let names = ViewNames::new(tree, *view);
    let mut except = None;
    if review == Review::Access {
        let (verdict, excepted) = review::verdict(tree, *view, identity, &document);
        except = excepted;
        let decided = match verdict {
            Verdict::Denied(reason) => Some(Err(reason)),
            Verdict::Allowed(reason) => Some(Ok(reason)),
            Verdict::Across(info) => {
                let namespaces = across_namespaces(tree, *view, identity, &info);
                let ask = Asker { identity, path: parts.uri.path(), as_canopy: false };
                Some(review_across(&names, &ask, &document, &namespaces, inner.clone()).await?)
            }
            Verdict::Upstream => None,
        };
        match decided {
            Some(Ok(reason)) => return Ok(review::allowed(document, reason, except.as_deref())),
            Some(Err(reason)) => return Ok(review::denied(document, &reason)),
            None => {}
        }
    }
    let virtual_name = document.pointer("/spec/resourceAttributes/namespace").or(document.pointer("/spec/namespace"));
    let namespace = virtual_name.and_then(Value::as_str).and_then(|v| Some((names.to_physical(v)?, v.to_owned())));
    let request = transform::with_document(parts, document, &|v: &str| names.to_physical(v))?;
    let response = inner.call(request).await?;
    if !response.status().is_success() {
        return Ok(transform::response(response, translation));
    }
    let ceiling = tree.nodes[*view].ceiling.clone();
    let (tree, view, identity) = (Arc::clone(tree), *view, identity.clone());
    let map = DocumentMap::Json(Box::new(move |doc| {
        translation.apply(doc);
        match review {
            Review::Rules => {
                review::narrow_rules(&ceiling, doc);
                let asked = namespace.as_ref().map_or("", |(_, virtual_name)| virtual_name.as_str());
                crate::policy::rules_review::deny_rules(&tree, view, &identity, asked, doc);
            }
            _ => {
                if let Some((physical, virtual_name)) = &namespace {
                    review::scrub_reason(doc, physical, virtual_name);
                }
                if let Some(except) = &except {
                    review::add_exception(doc, except);
                }
            }
        }
    }));
    Ok(transform::map_document(response, map))
}

/// A SubjectAccessReview or LocalSubjectAccessReview, confined to the view and cut by the tree.
async fn subject_review<S: Inner>(
    decision: &Decision,
    asked: Value,
    translation: Translation,
    inner: S,
) -> Result<Response<Body>, Status> {
    let Decision { tree, view, identity, info, .. } = decision;
    let names = ViewNames::new(tree, *view);
    if info.resource == "localsubjectaccessreviews" {
        local_review_fits(&asked, &info.namespace)?;
    }
    let mut spec = asked.get("spec").cloned().unwrap_or(Value::Null);
    if let Err(name) = map_subject(&mut spec, "user", &|v: &str| names.to_physical(v)) {
        return Ok(review::denied(asked, &format!("{name:?} is not a subject of view {}", tree.nodes[*view].path)));
    }
    let text = |key: &str| spec.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let subject = Identity::new(text("user"), groups);
    let virtual_namespace = asked.pointer("/spec/resourceAttributes/namespace").and_then(Value::as_str).unwrap_or("");
    let physical = names.to_physical(virtual_namespace);
    if let Some(namespace) = spec.pointer_mut("/resourceAttributes/namespace") {
        // A namespace outside the view passed the tree only for a cluster-scoped resource, which
        // is then asked about without it.
        *namespace = physical.clone().unwrap_or_default().into();
    }
    let sent = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
    let ask = Asker { identity, path: SUBJECT_ACCESS_REVIEWS, as_canopy: true };
    let (verdict, except) = review::verdict(tree, *view, &subject, &asked);
    let verdict = match verdict {
        Verdict::Denied(reason) => Err(reason),
        Verdict::Across(info) => {
            let namespaces = across_namespaces(tree, *view, &subject, &info);
            review_across(&names, &ask, &sent, &namespaces, inner).await?
        }
        Verdict::Allowed(_) | Verdict::Upstream => {
            let answer = ask.send(&sent, inner).await?;
            if !answer.status().is_success() {
                return Ok(transform::response(answer, translation));
            }
            let mut answer = read_json(answer).await?;
            if let Some(physical) = &physical {
                review::scrub_reason(&mut answer, physical, virtual_namespace);
            }
            if let Some(except) = &except {
                review::add_exception(&mut answer, except);
            }
            return Ok(review::answered(asked, answer["status"].take()));
        }
    };
    Ok(match verdict {
        Ok(reason) => review::allowed(asked, reason, except.as_deref()),
        Err(reason) => review::denied(asked, &reason),
    })
}

/// What the apiserver checks of a LocalSubjectAccessReview before deciding it.
fn local_review_fits(review: &Value, namespace: &str) -> Result<(), Status> {
    if review.pointer("/spec/nonResourceAttributes").is_some_and(|v| !v.is_null()) {
        return Err(Status::invalid(
            "LocalSubjectAccessReview.authorization.k8s.io is invalid: spec.nonResourceAttributes: disallowed on this kind of request",
        ));
    }
    let asked = review.pointer("/spec/resourceAttributes/namespace").and_then(Value::as_str).unwrap_or("");
    if asked != namespace {
        return Err(Status::bad_request(format!(
            "spec.resourceAttributes.namespace must match namespace: {namespace}"
        )));
    }
    Ok(())
}

/// A TokenReview asked by Canopy; the user it names comes back in the view's terms, or not at
/// all when it is a service account of a namespace outside the view.
async fn token_review<S: Inner>(
    decision: &Decision,
    asked: Value,
    translation: Translation,
    inner: S,
) -> Result<Response<Body>, Status> {
    let Decision { tree, view, identity, .. } = decision;
    let names = ViewNames::new(tree, *view);
    let sent = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": asked["spec"]});
    let ask = Asker { identity, path: TOKEN_REVIEWS, as_canopy: true };
    let answer = ask.send(&sent, inner).await?;
    if !answer.status().is_success() {
        return Ok(transform::response(answer, translation));
    }
    let mut status = read_json(answer).await?["status"].take();
    if let Some(user) = status.get_mut("user").filter(|u| u.is_object()) {
        if map_subject(user, "username", &|p: &str| names.to_virtual(p)).is_err() {
            status = json!({"authenticated": false, "user": {}, "error": "the token is not valid in this view"});
        } else if let Some(extra) = user.get_mut("extra").and_then(Value::as_object_mut) {
            // Where the pod holding the token runs is the platform's to know.
            extra.retain(|key, _| !key.starts_with("authentication.kubernetes.io/node-"));
        }
    }
    Ok(review::answered(asked, status))
}

/// How the reviews of a phase are asked upstream.
struct Asker<'a> {
    identity: &'a Identity,
    path: &'a str,
    /// Asked by Canopy rather than as the caller.
    as_canopy: bool,
}

impl Asker<'_> {
    /// Sends `review` upstream.
    async fn send<S: Inner>(&self, review: &Value, inner: S) -> Result<Response<Body>, Status> {
        let bytes = serde_json::to_vec(review).map_err(|e| Status::internal(e.to_string()))?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(body::full(bytes))
            .map_err(|_| Status::bad_request("invalid review path"))?;
        request.extensions_mut().insert(self.identity.clone());
        if self.as_canopy {
            request.extensions_mut().insert(AsCanopy);
        }
        inner.oneshot(request).await
    }
}

/// An access review of a request across the view (`-A`): allowed when upstream allows it in
/// every namespace the fan-out reaches, asked one namespace at a time; the reason either way.
async fn review_across<S: Inner>(
    names: &ViewNames<'_>,
    ask: &Asker<'_>,
    review: &Value,
    namespaces: &[String],
    inner: S,
) -> Result<Result<&'static str, String>, Status> {
    for physical in namespaces {
        let mut asked = review.clone();
        asked["spec"]["resourceAttributes"]["namespace"] = physical.as_str().into();
        let answer = ask.send(&asked, inner.clone()).await?;
        let virtual_name = names.to_virtual(physical).unwrap_or_default();
        if !answer.status().is_success() {
            return Err(Status::from_code(
                answer.status(),
                format!("the access review in namespace {virtual_name:?} answered {}", answer.status()),
            ));
        }
        if read_json(answer).await?.pointer("/status/allowed") != Some(&Value::Bool(true)) {
            return Ok(Err(format!("not allowed in namespace {virtual_name:?} of the view")));
        }
    }
    Ok(Ok("allowed in every namespace of the view"))
}

/// A successful upstream answer as JSON.
async fn read_json(answer: Response<Body>) -> Result<Value, Status> {
    let bytes = transform::read_bytes(answer.into_body()).await?;
    serde_json::from_slice(&bytes).map_err(|e| Status::bad_gateway(format!("the upstream review is not JSON: {e}")))
}
