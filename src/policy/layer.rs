//! The tenancy layer: resolves the view, applies the [`decide`](super::decide) plan to the
//! request (physical namespace in the path, subtree selector on namespace lists and watches,
//! namespace names in JSON bodies) and translates the response back to virtual names. With an
//! empty tree it forwards every caller as themselves.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, header};
use tokio::sync::watch;
use tower::{Layer, Service};

use super::{Plan, decide, resolve_view};
use crate::auth::Identity;
use crate::body::Body;
use crate::request::{RequestInfo, ViewPath};
use crate::rewrite::ViewNames;
use crate::status::Status;
use crate::transform::{self, Translation};
use crate::tree::Tree;

/// Adds tenancy in front of a service.
#[derive(Clone)]
pub struct TenancyLayer {
    trees: watch::Receiver<Arc<Tree>>,
}

impl TenancyLayer {
    /// Decides each request against the newest tree in `trees`.
    pub fn new(trees: watch::Receiver<Arc<Tree>>) -> Self {
        Self { trees }
    }
}

impl<S> Layer<S> for TenancyLayer {
    type Service = TenancyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenancyService { trees: self.trees.clone(), inner }
    }
}

/// See [`TenancyLayer`].
#[derive(Clone)]
pub struct TenancyService<S> {
    trees: watch::Receiver<Arc<Tree>>,
    inner: S,
}

impl<S> Service<Request<Body>> for TenancyService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Status>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // One snapshot per request: a reload is in force for the very next request.
        let tree = self.trees.borrow().clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            if tree.nodes.is_empty() {
                if request.extensions().get::<ViewPath>().is_some_and(|v| v.0.is_some()) {
                    return Err(Status::not_found("this Canopy has no tenancy tree, so no views"));
                }
                return inner.call(request).await;
            }
            let (request, translation) = confine(&tree, request).await?;
            let response = inner.call(request).await?;
            Ok(match translation {
                Some(translation) => transform::response(response, translation),
                None => response,
            })
        })
    }
}

/// Applies the tenancy decision to `request`; returns it rewritten, and how to translate the
/// response (`None`: nothing to translate).
async fn confine(tree: &Arc<Tree>, mut request: Request<Body>) -> Result<(Request<Body>, Option<Translation>), Status> {
    let identity = request.extensions().get::<Identity>().cloned().ok_or_else(|| Status::internal("no identity"))?;
    let info =
        request.extensions().get::<RequestInfo>().cloned().ok_or_else(|| Status::internal("unclassified request"))?;
    let view_path = request.extensions().get::<ViewPath>().cloned().unwrap_or_default();
    let view = resolve_view(tree, &identity, &view_path)?;
    let Plan { namespace, selector, as_canopy } = decide(tree, view, &identity, &info)?;
    if as_canopy {
        request.extensions_mut().insert(super::AsCanopy);
    }
    if namespace.is_none() && selector.is_none() && !info.is_resource_request {
        return Ok((request, None));
    }
    let mut path = match &namespace {
        Some((physical, _)) => info.path_with_namespace(physical),
        None => request.uri().path().to_owned(),
    };
    let query = match (request.uri().query(), &selector) {
        (query, Some(selector)) => Some(with_label_selector(query, selector)),
        (query, None) => query.map(str::to_owned),
    };
    if let Some(query) = query {
        path = format!("{path}?{query}");
    }
    *request.uri_mut() = path.parse().map_err(|_| Status::bad_request("invalid request URI"))?;

    // Responses are translated, so ask for JSON; protobuf passes only where nothing is rewritten.
    let headers = request.headers_mut();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.is_empty() || accept.contains("protobuf") {
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    }
    headers.remove(header::ACCEPT_ENCODING);

    let translation = Translation {
        tree: Arc::clone(tree),
        view,
        namespace: namespace.clone(),
        watch: info.verb == "watch",
        namespaces: info.resource == "namespaces",
    };
    let names = ViewNames::new(tree, view);
    let request = transform::request(request, &|virtual_name: &str| names.to_physical(virtual_name)).await?;
    Ok((request, Some(translation)))
}

/// `query` with `labelSelector` ANDed with `selector`.
fn with_label_selector(query: Option<&str>, selector: &str) -> String {
    let mut pairs: Vec<(String, String)> = crate::request::info::form_pairs(query.unwrap_or("")).collect();
    match pairs.iter_mut().find(|(k, _)| k == "labelSelector") {
        Some((_, value)) if !value.trim().is_empty() => *value = format!("{value},{selector}"),
        Some((_, value)) => *value = selector.to_owned(),
        None => pairs.push(("labelSelector".into(), selector.to_owned())),
    }
    let encode = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selector_is_anded() {
        assert_eq!(with_label_selector(None, "a.tree/depth"), "labelSelector=a%2Etree%2Fdepth");
        assert_eq!(with_label_selector(Some("labelSelector=x%3Dy&watch=1"), "k"), "labelSelector=x%3Dy%2Ck&watch=1");
    }
}
