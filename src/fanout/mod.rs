//! `kubectl get -A`: lists and watches of a namespaced resource across a view's namespaces.
//!
//! Strategy: fan-out — one upstream request per namespace of the view's subtree, each made as the
//! caller, merged into one answer. Chosen over a shared cluster-wide watch cache because its cost
//! grows with the tenant's namespaces, not with the cluster; because upstream RBAC still decides
//! every namespace (Canopy needs no cluster-wide read access to tenants' objects); and because
//! there is no second copy of the cluster to keep coherent. The price is one upstream watch per
//! namespace for an `-A` watch.
//!
//! - Lists ([`list`]): the first namespace's answer fixes a resourceVersion R and the others are
//!   read at exactly R, so the merged list is one consistent snapshot and a watch from R misses
//!   nothing. `limit` is honoured across namespaces; Canopy's continue token names the namespace,
//!   the upstream token within it and R; `remainingItemCount` is given where it is known exactly
//!   ([`count`]). Each namespace's page streams into the answer item by
//!   item ([`page`]), translated as plain lists are, so memory does not grow with a page.
//! - Watches ([`watch`]): events are relayed as they arrive; bookmarks are merged into one whose
//!   resourceVersion every namespace has reached, so resuming from it loses no event.
//!
//! A namespace where the caller is refused (403) or that does not exist yet (404) is skipped; when
//! no namespace answers, the first refusal is the answer.

mod count;
mod list;
mod page;
#[cfg(test)]
mod tests;
mod watch;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use tower::{Service, ServiceExt};

use crate::auth::Identity;
use crate::body::{self, Body};
use crate::request::RequestInfo;
use crate::request::query::encode_pairs;
use crate::rewrite::ViewNames;
use crate::status::Status;
use crate::transform::{self, Translation};

/// One `-A` request and what it needs to be made once per namespace.
pub struct FanOut {
    /// Physical namespaces of the view's subtree, sorted.
    pub namespaces: Vec<String>,
    pub info: RequestInfo,
    pub identity: Identity,
    /// The caller's headers, already cleaned by the outer layers.
    pub headers: HeaderMap,
    /// The caller's query, decoded.
    pub query: Vec<(String, String)>,
    pub translation: Translation,
}

impl FanOut {
    /// Answers the request.
    pub async fn serve<S>(self, inner: S) -> Result<Response<Body>, Status>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Status> + Clone + Send + 'static,
        S::Future: Send,
    {
        if self.translation.watch { watch::serve(self, inner).await } else { list::serve(self, inner).await }
    }

    /// The value of query parameter `key`.
    fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The caller's request, made in `namespace` with `query`.
    fn request(&self, namespace: &str, query: &[(String, String)]) -> Result<Request<Body>, Status> {
        let mut uri = self.info.path_in_namespace(namespace);
        if !query.is_empty() {
            uri = format!("{uri}?{}", encode_pairs(query));
        }
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .body(body::empty())
            .map_err(|_| Status::bad_request("invalid request URI"))?;
        *request.headers_mut() = self.headers.clone();
        request.extensions_mut().insert(self.identity.clone());
        Ok(request)
    }

    /// The caller's query without `keys`.
    fn query_without(&self, keys: &[&str]) -> Vec<(String, String)> {
        self.query.iter().filter(|(k, _)| !keys.contains(&k.as_str())).cloned().collect()
    }

    /// An upstream failure in `namespace`, in view terms.
    fn relay(&self, failure: Failure) -> Response<Body> {
        let mut translation = self.translation.clone();
        let names = ViewNames::new(&translation.tree, translation.view);
        translation.namespace = names.to_virtual(&failure.namespace).map(|v| (failure.namespace, v));
        transform::response(failure.response, translation)
    }
}

/// One namespace's answer.
enum Answer {
    /// A successful answer.
    Ok(Response<Body>),
    /// 403 or 404: skipped unless no namespace answers.
    Refused(Failure),
    /// Any other failure, relayed.
    Failed(Failure),
}

/// An upstream failure and the physical namespace it is about.
struct Failure {
    response: Response<Body>,
    namespace: String,
}

/// Makes the request in `namespace`.
async fn call<S>(inner: S, fan: &FanOut, namespace: &str, query: &[(String, String)]) -> Result<Answer, Status>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Status>,
{
    let response = inner.oneshot(fan.request(namespace, query)?).await?;
    Ok(Answer::of(response, namespace))
}

impl Answer {
    fn of(response: Response<Body>, namespace: &str) -> Self {
        let failure = |response| Failure { response, namespace: namespace.to_owned() };
        match response.status() {
            s if s.is_success() => Answer::Ok(response),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Answer::Refused(failure(response)),
            _ => Answer::Failed(failure(response)),
        }
    }
}

/// The first 403 among `refusals`: the answer when no namespace answered. (404s only mean the
/// namespace does not exist yet; with nothing else, the answer is an empty one.)
fn first_forbidden(mut refusals: Vec<Failure>) -> Option<Failure> {
    let forbidden = refusals.iter().position(|r| r.response.status() == StatusCode::FORBIDDEN)?;
    Some(refusals.swap_remove(forbidden))
}
