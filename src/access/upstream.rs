//! The apiserver, asked with Canopy's own upstream credentials: aggregated discovery, and
//! SelfSubjectAccessReviews sent with the caller's `Impersonate-*` headers — the same headers
//! (from the same function) the proxy sends with every forwarded request and with a tenant's own
//! access review, so the apiserver answers exactly as it would for them.

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use http::header::CONTENT_TYPE;
use serde_json::{Value, json};

use super::resources::{self, ApiResource};
use super::{AccessError, Ask, Question};
use crate::auth::Identity;
use crate::config::UpstreamConfig;
use crate::upstream::{HeaderError, Upstream, impersonation_headers};

/// Bound on each call, so an unreachable apiserver fails the command instead of hanging it.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Reviews in flight at once: quick for a whole matrix, gentle on the apiserver.
const CONCURRENCY: usize = 8;
const REVIEWS: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

/// A client on Canopy's upstream credentials.
#[derive(Clone)]
pub struct Reviewer {
    client: kube::Client,
}

impl Reviewer {
    /// Connects as `config` says, the way `canopy serve` does.
    pub async fn connect(config: &UpstreamConfig) -> Result<Self, AccessError> {
        Ok(Self { client: Upstream::connect(config).await?.kube })
    }

    /// Every resource the apiserver serves.
    pub async fn discover(&self) -> Result<Vec<ApiResource>, AccessError> {
        let core = bounded(self.client.list_core_api_versions_aggregated()).await?.map_err(AccessError::Discovery)?;
        let apis = bounded(self.client.list_api_groups_aggregated()).await?.map_err(AccessError::Discovery)?;
        Ok(resources::from_discovery(&[core, apis]))
    }

    /// Upstream's answer to each question, in order.
    pub async fn review_all(&self, questions: &[Question]) -> Result<Vec<Value>, AccessError> {
        futures_util::stream::iter(questions).map(|q| self.review(q)).buffered(CONCURRENCY).try_collect().await
    }

    /// The SelfSubjectAccessReview of `question`, as upstream answers it.
    async fn review(&self, question: &Question) -> Result<Value, AccessError> {
        let request = review_request(question)?;
        bounded(self.client.request::<Value>(request))
            .await?
            .map_err(|source| AccessError::Review { user: question.identity.user.clone(), source })
    }
}

/// The review's HTTP request: the attributes in the body, the identity in headers.
fn review_request(question: &Question) -> Result<http::Request<Vec<u8>>, AccessError> {
    let Ask { verb, group, resource, subresource, namespace } = &question.ask;
    let body = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": { "resourceAttributes": {
            "namespace": namespace, "verb": verb, "group": group, "resource": resource, "subresource": subresource,
        }},
    });
    let mut request = http::Request::new(serde_json::to_vec(&body).unwrap_or_default());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(REVIEWS);
    request.headers_mut().insert(CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    impersonation_headers(&question.identity, request.headers_mut())?;
    Ok(request)
}

/// Whether `identity` can be sent as impersonation headers at all.
pub fn check_identity(identity: &Identity) -> Result<(), HeaderError> {
    impersonation_headers(identity, &mut http::HeaderMap::new())
}

async fn bounded<T>(call: impl Future<Output = T>) -> Result<T, AccessError> {
    tokio::time::timeout(CALL_TIMEOUT, call).await.map_err(|_| AccessError::Timeout(CALL_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_carry_the_attributes_in_the_body_and_the_caller_in_headers() {
        let question = Question {
            identity: super::super::identity("bob", &[]),
            ask: Ask {
                verb: "create".into(),
                group: "apps".into(),
                resource: "deployments".into(),
                namespace: "acme-web-dev".into(),
                ..Ask::default()
            },
        };
        let request = review_request(&question).unwrap();
        assert_eq!((request.method(), request.uri().path()), (&http::Method::POST, REVIEWS));
        assert_eq!(request.headers()["impersonate-user"], "bob");
        assert_eq!(request.headers()["impersonate-group"], "system:authenticated");
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(body["kind"], "SelfSubjectAccessReview");
        assert_eq!(
            body["spec"]["resourceAttributes"],
            json!({"namespace": "acme-web-dev", "verb": "create", "group": "apps", "resource": "deployments", "subresource": ""})
        );
    }

    #[test]
    fn identities_that_are_not_headers_are_refused() {
        assert!(check_identity(&super::super::identity("bob", &[])).is_ok());
        assert!(check_identity(&super::super::identity("eve\nimpersonate-user: admin", &[])).is_err());
    }
}
