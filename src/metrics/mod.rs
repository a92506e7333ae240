//! Prometheus metrics: requests by verb and code, latency, upstream errors, open watches and
//! upgraded connections, open client connections, and how bearer tokens fared with TokenReview
//! ([`TokenReviewMetrics`]). One [`Metrics`] handle is cloned into every layer that records.

mod layer;

pub use layer::{MetricsLayer, MetricsService};

use std::borrow::Cow;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: Cow<'static, str>,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbLabels {
    verb: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// Verbs the apiserver knows, and the methods that stand for verbs on non-resource paths.
const VERBS: [&str; 15] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "proxy",
    "post",
    "put",
    "head",
    "options",
    "connect",
    "unknown",
];

/// `verb` as a label without allocating on every request for the verbs that nearly all are.
pub(crate) fn verb_label(verb: &str) -> Cow<'static, str> {
    match VERBS.iter().find(|known| **known == verb) {
        Some(known) => Cow::Borrowed(*known),
        None => Cow::Owned(verb.to_owned()),
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~32 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Handles to every metric, and the registry that exposes them.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<VerbLabels, Histogram, fn() -> Histogram>,
    upstream_errors: Family<KindLabels, Counter>,
    /// Watches currently streaming.
    pub open_watches: Gauge,
    /// Upgraded connections (exec, attach, port-forward) currently tunnelled.
    pub open_upgrades: Gauge,
    /// Client connections currently open on the tenant-facing listener.
    pub open_connections: Gauge,
    /// How bearer tokens fared with TokenReview.
    pub token_review: TokenReviewMetrics,
}

/// Counters of the TokenReview authenticator; clones count into the same series.
#[derive(Clone)]
pub struct TokenReviewMetrics {
    /// Tokens answered from the accepted cache.
    pub cache_hits_accepted: Counter,
    /// Tokens answered from the refused cache.
    pub cache_hits_refused: Counter,
    /// Tokens found in neither cache (joining a review in flight or starting one).
    pub cache_misses: Counter,
    /// TokenReviews sent upstream.
    pub reviews: Counter,
    /// Requests whose token TokenReview refused, fresh or cached.
    pub refusals: Counter,
    /// Requests answered 429 because their client asked for too many reviews.
    pub rate_limited: Counter,
}

impl TokenReviewMetrics {
    fn registered(registry: &mut Registry) -> Self {
        let hits = Family::<VerdictLabels, Counter>::default();
        // Handles cloned out of the family count into its series.
        let hit = |verdict| hits.get_or_create(&VerdictLabels { verdict }).clone();
        let metrics = Self {
            cache_hits_accepted: hit("accepted"),
            cache_hits_refused: hit("refused"),
            cache_misses: Counter::default(),
            reviews: Counter::default(),
            refusals: Counter::default(),
            rate_limited: Counter::default(),
        };
        registry.register("token_review_cache_hits", "Bearer tokens answered from the cache, by verdict", hits);
        registry.register(
            "token_review_cache_misses",
            "Bearer tokens found in neither cache",
            metrics.cache_misses.clone(),
        );
        registry.register("token_reviews", "TokenReviews sent to the apiserver", metrics.reviews.clone());
        registry.register(
            "token_review_refusals",
            "Requests whose bearer token TokenReview refused (fresh or cached)",
            metrics.refusals.clone(),
        );
        registry.register(
            "token_review_rate_limited",
            "Requests refused with 429 for asking for too many TokenReviews of unknown tokens",
            metrics.rate_limited.clone(),
        );
        metrics
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("canopy");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<VerbLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let upstream_errors = Family::<KindLabels, Counter>::default();
        let open_watches = Gauge::default();
        let open_upgrades = Gauge::default();
        let open_connections = Gauge::default();
        registry.register("requests", "Requests answered, by verb and HTTP code", requests.clone());
        registry.register("request_duration_seconds", "Time to response headers, by verb", latency.clone());
        registry.register(
            "upstream_errors",
            "Requests that could not reach the apiserver, by kind",
            upstream_errors.clone(),
        );
        registry.register("open_watches", "Watches currently streaming", open_watches.clone());
        registry.register(
            "open_upgrades",
            "Upgraded connections (exec, attach, port-forward) currently open",
            open_upgrades.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections currently open on the tenant-facing listener",
            open_connections.clone(),
        );
        let token_review = TokenReviewMetrics::registered(&mut registry);
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            upstream_errors,
            open_watches,
            open_upgrades,
            open_connections,
            token_review,
        }
    }

    /// Records one answered request.
    /// `verb` is the label [`verb_label`] made of the request's verb.
    pub fn request(&self, verb: Cow<'static, str>, code: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { verb: verb.clone(), code }).inc();
        self.latency.get_or_create(&VerbLabels { verb }).observe(seconds);
    }

    /// Records a request that could not reach the apiserver.
    pub fn upstream_error(&self, kind: &str) {
        self.upstream_errors.get_or_create(&KindLabels { kind: kind.to_owned() }).inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric() {
        let metrics = Metrics::new();
        metrics.request(verb_label("get"), 200, 0.01);
        metrics.upstream_error("connect");
        let text = metrics.encode();
        for name in [
            "canopy_requests_total{verb=\"get\",code=\"200\"} 1",
            "canopy_request_duration_seconds_bucket",
            "canopy_upstream_errors_total{kind=\"connect\"} 1",
            "canopy_open_watches 0",
            "canopy_open_upgrades 0",
            "canopy_open_connections 0",
            "canopy_token_review_cache_hits_total{verdict=\"refused\"} 0",
            "canopy_token_reviews_total 0",
            "canopy_token_review_rate_limited_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }

    #[test]
    fn verbs_outside_the_known_set_keep_their_own_label() {
        let metrics = Metrics::new();
        metrics.request(verb_label("list"), 200, 0.01);
        metrics.request(verb_label("purge"), 405, 0.01);
        let text = metrics.encode();
        assert!(text.contains("canopy_requests_total{verb=\"list\",code=\"200\"} 1"), "{text}");
        assert!(text.contains("canopy_requests_total{verb=\"purge\",code=\"405\"} 1"), "{text}");
    }
}
