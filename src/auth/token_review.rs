//! Bearer tokens checked by TokenReview against the upstream apiserver, built to hold under a
//! flood of tokens. Accepted tokens are trusted for `ttl` in an LRU of their own; refused ones are
//! refused for `negative_ttl` in a second, smaller LRU, so a flood of bad tokens can never push
//! out a good one. Concurrent requests with one new token share a single review (single-flight),
//! and each client address may ask for reviews of unknown tokens only at a bounded rate. Cache
//! keys are SHA-256 digests: raw tokens are kept only while their review is in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::Identity;
use super::lru::Lru;
use super::rate_limit::RateLimiter;
use crate::config::TokenReviewConfig;
use crate::metrics::TokenReviewMetrics;

/// Why a token could not be checked (as opposed to being refused).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReviewError {
    /// The TokenReview call to the upstream failed.
    #[error("TokenReview failed: {0}")]
    Upstream(Arc<kube::Error>),
    /// The upstream did not answer the TokenReview in time (a paused or overloaded apiserver).
    #[error("TokenReview got no answer within {0:?}")]
    TimedOut(Duration),
    /// The client asked for too many reviews of unknown tokens; it may ask again after the delay.
    #[error("too many unknown tokens from this client")]
    RateLimited(Duration),
}

type Key = [u8; 32];

/// A review in flight, awaited by every request that presents its token.
type Review = Shared<BoxFuture<'static, Result<Option<Identity>, ReviewError>>>;

/// Checks tokens with the upstream's TokenReview API.
#[derive(Clone)]
pub struct TokenReviewer {
    // Shared by every serving thread's pipeline.
    inner: Arc<Inner>,
}

struct Inner {
    api: Api<TokenReview>,
    config: TokenReviewConfig,
    accepted: Mutex<Lru<Key, (Identity, Instant)>>,
    refused: Mutex<Lru<Key, Instant>>,
    in_flight: Mutex<HashMap<Key, Review>>,
    limiter: Mutex<RateLimiter>,
    metrics: TokenReviewMetrics,
}

/// The guarded value even if a thread panicked holding the lock: every critical section here
/// leaves its map consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenReviewer {
    /// A reviewer that asks through `client`.
    pub fn new(client: kube::Client, config: TokenReviewConfig, metrics: TokenReviewMetrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                api: Api::all(client),
                accepted: Mutex::new(Lru::new(config.max_entries)),
                refused: Mutex::new(Lru::new(config.max_refused_entries)),
                in_flight: Mutex::new(HashMap::new()),
                limiter: Mutex::new(RateLimiter::new(config.unknown_tokens_per_second, config.unknown_token_burst)),
                config,
                metrics,
            }),
        }
    }

    /// The identity `token` belongs to, `None` if the apiserver refuses it. A token that needs
    /// a review counts against `client`'s rate (no client: a trusted caller, not limited).
    pub async fn review(&self, token: &str, client: Option<IpAddr>) -> Result<Option<Identity>, ReviewError> {
        let key: Key = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some(verdict) = self.inner.cached(&key, now) {
            return Ok(self.inner.counted(verdict));
        }
        self.inner.metrics.cache_misses.inc();
        let review = {
            let mut in_flight = lock(&self.inner.in_flight);
            match in_flight.get(&key) {
                Some(review) => review.clone(),
                None => {
                    if let Some(client) = client
                        && let Err(retry_after) = lock(&self.inner.limiter).take(client, now)
                    {
                        self.inner.metrics.rate_limited.inc();
                        return Err(ReviewError::RateLimited(retry_after));
                    }
                    let review = Arc::clone(&self.inner).ask(key, token.to_owned()).boxed().shared();
                    in_flight.insert(key, review.clone());
                    review
                }
            }
        };
        review.await.map(|verdict| self.inner.counted(verdict))
    }

    /// Number of cached verdicts, accepted and refused (for tests).
    pub fn cached(&self) -> (usize, usize) {
        (lock(&self.inner.accepted).len(), lock(&self.inner.refused).len())
    }
}

impl Inner {
    /// `verdict`, counted as a refusal if it is one.
    fn counted(&self, verdict: Option<Identity>) -> Option<Identity> {
        if verdict.is_none() {
            self.metrics.refusals.inc();
        }
        verdict
    }

    /// A fresh cached verdict: `Some(Some(identity))` accepted, `Some(None)` refused.
    fn cached(&self, key: &Key, now: Instant) -> Option<Option<Identity>> {
        {
            let mut accepted = lock(&self.accepted);
            match accepted.get(key) {
                Some((identity, expires)) if *expires > now => {
                    self.metrics.cache_hits_accepted.inc();
                    return Some(Some(identity.clone()));
                }
                Some(_) => accepted.remove(key),
                None => {}
            }
        }
        let mut refused = lock(&self.refused);
        match refused.get(key) {
            Some(expires) if *expires > now => {
                self.metrics.cache_hits_refused.inc();
                Some(None)
            }
            Some(_) => {
                refused.remove(key);
                None
            }
            None => None,
        }
    }

    /// Sends one TokenReview and caches its verdict. Whichever waiter polls it drives it, so it
    /// completes even if the request that started it is gone.
    async fn ask(self: Arc<Self>, key: Key, token: String) -> Result<Option<Identity>, ReviewError> {
        let review = TokenReview { spec: TokenReviewSpec { token, ..Default::default() }, ..Default::default() };
        self.metrics.reviews.inc();
        let answer = tokio::time::timeout(self.config.timeout, self.api.create(&PostParams::default(), &review)).await;
        let result = match answer {
            Ok(Ok(answer)) => {
                let identity = answer.status.and_then(identity_of);
                let expires = Instant::now();
                match &identity {
                    Some(identity) => {
                        lock(&self.accepted).insert(key, (identity.clone(), expires + self.config.ttl));
                    }
                    None => {
                        lock(&self.refused).insert(key, expires + self.config.negative_ttl);
                    }
                }
                Ok(identity)
            }
            Ok(Err(error)) => Err(ReviewError::Upstream(Arc::new(error))),
            Err(_) => Err(ReviewError::TimedOut(self.config.timeout)),
        };
        // After the verdict is cached, so a request arriving in between finds one or the other.
        lock(&self.in_flight).remove(&key);
        result
    }
}

/// The identity an authenticated review names; none for a refusal or an empty user name.
fn identity_of(status: TokenReviewStatus) -> Option<Identity> {
    if status.authenticated != Some(true) {
        return None;
    }
    let user = status.user?;
    let identity = Identity {
        user: user.username.unwrap_or_default(),
        uid: user.uid.filter(|uid| !uid.is_empty()),
        groups: user.groups.unwrap_or_default(),
        extra: user.extra.unwrap_or_default().into_iter().collect(),
    };
    (!identity.user.is_empty()).then_some(identity)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use serde_json::json;

    use super::*;
    use crate::body::BoxError;
    use crate::metrics::Metrics;

    fn config() -> TokenReviewConfig {
        TokenReviewConfig {
            ttl: Duration::from_secs(120),
            negative_ttl: Duration::from_secs(10),
            max_entries: 100,
            max_refused_entries: 10,
            unknown_tokens_per_second: 1_000.0,
            unknown_token_burst: 1_000,
            timeout: Duration::from_secs(10),
        }
    }

    /// A reviewer whose upstream accepts `good-<user>` as `<user>` and refuses everything else,
    /// answering after a second (of paused time); it counts the reviews it gets.
    fn reviewer(config: TokenReviewConfig) -> (TokenReviewer, Arc<AtomicUsize>, Metrics) {
        let reviews = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&reviews);
        let upstream = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            count.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = request.into_body().collect().await?.to_bytes();
                let review: TokenReview = serde_json::from_slice(&body)?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                let status = match review.spec.token.strip_prefix("good-") {
                    Some(user) => json!({"authenticated": true, "user": {"username": user}}),
                    None => json!({"authenticated": false}),
                };
                let answer = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status});
                Ok::<_, BoxError>(http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                    answer.to_string(),
                ))))
            }
        });
        let metrics = Metrics::new();
        let client = kube::Client::new(upstream, "default");
        (TokenReviewer::new(client, config, metrics.token_review.clone()), reviews, metrics)
    }

    async fn user(reviewer: &TokenReviewer, token: &str) -> Option<String> {
        reviewer.review(token, None).await.unwrap().map(|identity| identity.user)
    }

    #[tokio::test(start_paused = true)]
    async fn accepted_tokens_leave_least_recently_used_first() {
        let (reviewer, reviews, _) = reviewer(TokenReviewConfig { max_entries: 2, ..config() });
        assert_eq!(user(&reviewer, "good-a").await.as_deref(), Some("a"));
        user(&reviewer, "good-b").await;
        // a is used again, so b is the one c pushes out.
        user(&reviewer, "good-a").await;
        user(&reviewer, "good-c").await;
        assert_eq!(reviews.load(Ordering::SeqCst), 3);
        user(&reviewer, "good-a").await;
        user(&reviewer, "good-c").await;
        assert_eq!(reviews.load(Ordering::SeqCst), 3, "a and c are still cached");
        assert_eq!(user(&reviewer, "good-b").await.as_deref(), Some("b"));
        assert_eq!(reviews.load(Ordering::SeqCst), 4, "b was evicted");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_with_one_new_token_send_one_review() {
        let (reviewer, reviews, metrics) = reviewer(config());
        let users = futures_util::future::join_all((0..50).map(|_| user(&reviewer, "good-new"))).await;
        assert!(users.iter().all(|u| u.as_deref() == Some("new")), "{users:?}");
        assert_eq!(reviews.load(Ordering::SeqCst), 1);
        let refused = futures_util::future::join_all((0..50).map(|_| user(&reviewer, "bad"))).await;
        assert!(refused.iter().all(Option::is_none));
        assert_eq!(reviews.load(Ordering::SeqCst), 2);
        let text = metrics.encode();
        assert!(text.contains("canopy_token_reviews_total 2"), "{text}");
        assert!(text.contains("canopy_token_review_cache_misses_total 100"), "{text}");
        assert!(text.contains("canopy_token_review_refusals_total 50"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_review_outlives_the_request_that_started_it() {
        let (reviewer, reviews, _) = reviewer(config());
        // The first request gives up half way; the second one finishes the same review.
        let gave_up = tokio::time::timeout(Duration::from_millis(500), user(&reviewer, "good-late")).await;
        assert!(gave_up.is_err());
        assert_eq!(user(&reviewer, "good-late").await.as_deref(), Some("late"));
        assert_eq!(reviews.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_review_upstream_does_not_answer_in_time_fails_and_is_not_cached() {
        // The upstream answers after a second.
        let (reviewer, reviews, _) = reviewer(TokenReviewConfig { timeout: Duration::from_millis(200), ..config() });
        let error = reviewer.review("good-slow", None).await.unwrap_err();
        assert!(matches!(error, ReviewError::TimedOut(_)), "{error}");
        assert!(matches!(reviewer.review("good-slow", None).await, Err(ReviewError::TimedOut(_))));
        assert_eq!(reviews.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refused_tokens_cannot_evict_accepted_ones() {
        let (reviewer, reviews, _) = reviewer(TokenReviewConfig { max_entries: 2, max_refused_entries: 3, ..config() });
        user(&reviewer, "good-a").await;
        user(&reviewer, "good-b").await;
        for n in 0..100 {
            assert_eq!(user(&reviewer, &format!("bad-{n}")).await, None);
        }
        assert_eq!(reviewer.cached(), (2, 3));
        assert_eq!(user(&reviewer, "good-a").await.as_deref(), Some("a"));
        assert_eq!(user(&reviewer, "good-b").await.as_deref(), Some("b"));
        assert_eq!(reviews.load(Ordering::SeqCst), 102);
    }

    #[tokio::test(start_paused = true)]
    async fn verdicts_expire_after_their_ttl() {
        let (reviewer, reviews, _) = reviewer(config());
        user(&reviewer, "good-a").await;
        user(&reviewer, "bad").await;
        tokio::time::advance(Duration::from_secs(9)).await;
        user(&reviewer, "bad").await;
        assert_eq!(reviews.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_secs(2)).await;
        user(&reviewer, "bad").await;
        assert_eq!(reviews.load(Ordering::SeqCst), 3, "the refusal expired after 10 s");
        tokio::time::advance(Duration::from_secs(120)).await;
        user(&reviewer, "good-a").await;
        assert_eq!(reviews.load(Ordering::SeqCst), 4, "the acceptance expired after 120 s");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_tokens_are_rate_limited_per_client() {
        let config = TokenReviewConfig { unknown_tokens_per_second: 1.0, unknown_token_burst: 2, ..config() };
        let (reviewer, reviews, metrics) = reviewer(config);
        let (flooder, other) = (Some("10.0.0.1".parse().unwrap()), Some("10.0.0.2".parse().unwrap()));
        reviewer.review("good-a", flooder).await.unwrap();
        // Four random tokens at once against a bucket of two.
        let flood = (1..=4).map(|n| {
            let reviewer = reviewer.clone();
            async move { reviewer.review(&format!("random-{n}"), flooder).await }
        });
        let results = futures_util::future::join_all(flood).await;
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2, "{results:?}");
        for limited in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(
                matches!(limited, ReviewError::RateLimited(wait) if *wait <= Duration::from_secs(1)),
                "{limited:?}"
            );
        }
        // Known tokens still pass, other clients and trusted callers are not limited.
        assert!(reviewer.review("good-a", flooder).await.unwrap().is_some());
        assert!(reviewer.review("random-5", other).await.is_ok());
        assert!(reviewer.review("random-6", None).await.is_ok());
        assert_eq!(reviews.load(Ordering::SeqCst), 5);
        assert!(metrics.encode().contains("canopy_token_review_rate_limited_total 2"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_client_gets_429_with_retry_after() {
        // Half a token a second: the one-second review of the first token refills half of one.
        let config = TokenReviewConfig { unknown_tokens_per_second: 0.5, unknown_token_burst: 1, ..config() };
        let authenticator = crate::auth::Authenticator::new(None, Some(reviewer(config).0));
        let (peer, client) = (crate::auth::PeerIdentity::default(), Some("10.0.0.1".parse().unwrap()));
        let token = |t: &str| crate::auth::Credential::Bearer(t.into());
        let first = authenticator.authenticate(&peer, &token("random-1"), client).await;
        assert_eq!(first.unwrap_err().code, 401);
        let second = authenticator.authenticate(&peer, &token("random-2"), client).await;
        let response = second.unwrap_err().into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
    }
}
