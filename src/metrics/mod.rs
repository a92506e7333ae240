//! Prometheus metrics: requests by verb and code, latency, upstream errors, open watches and
//! upgraded connections. One [`Metrics`] handle is cloned into every layer that records.

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
        Self { registry: Arc::new(registry), requests, latency, upstream_errors, open_watches, open_upgrades }
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
