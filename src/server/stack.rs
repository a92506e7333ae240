//! The request pipeline: one tower stack, one concern per layer, outermost first.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response};
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use http::header;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::audit::{AuditLayer, AuditSink};
use crate::auth::{AuthenticateLayer, Authenticator};
use crate::body::Body;
use crate::metrics::{Metrics, MetricsLayer};
use crate::policy::TenancyLayer;
use crate::request::{ClassifyLayer, IdentityGuardLayer};
use crate::server::body_limit::BodyLimitLayer;
use crate::server::drain_body::DrainRequestBodyLayer;
use crate::status::RenderStatusLayer;
use crate::tree::Tree;
use crate::upstream::{Forward, Tunnels, Upstream};

/// The whole pipeline as one service; it never fails, every error is a `Status` response.
pub type ProxyService = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// Assembles the pipeline.
pub fn proxy_stack(
    authenticator: Authenticator,
    trees: watch::Receiver<Arc<Tree>>,
    upstream: &Upstream,
    tunnels: Tunnels,
    metrics: Metrics,
    audit: Option<AuditSink>,
    bodies: BodyLimitLayer,
) -> ProxyService {
    let stack = ServiceBuilder::new()
        // Outermost: a body refused unread is still read to its end (bounded), so an HTTP/2
        // client gets the Status and a clean end of stream, not a reset.
        .layer(DrainRequestBodyLayer)
        // Credentials are marked sensitive before anything could log or print a request.
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::PROXY_AUTHORIZATION,
            header::COOKIE,
        ]))
        // Every `Status` error from the layers below becomes a Kubernetes Status response here,
        // so no layer renders its own and kubectl prints each one as it would the apiserver's.
        .layer(RenderStatusLayer)
        // One audit line per request, refusals included: outside everything that can refuse.
        .layer(AuditLayer::new(audit))
        // Classify once, first: every later layer (and metrics) reads the RequestInfo, and a
        // path that could be read two ways never gets further.
        .layer(ClassifyLayer)
        // Metrics sit outside authentication so refusals are counted with their codes.
        .layer(MetricsLayer::new(metrics.clone()))
        // Authenticate before looking at what the caller asks for: 401 comes before 403, as in
        // the apiserver. The credential is removed from the request here.
        .layer(AuthenticateLayer::new(authenticator))
        // A known caller still may not pick its upstream identity.
        .layer(IdentityGuardLayer)
        // Bodies are bounded once the caller is known: a stranger's body is never buffered (the
        // outermost layer drains it, bounded), and a caller's waits for room in the budget.
        .layer(bodies)
        // The tenancy tree: view, confinement, ceilings, virtual names both ways. Innermost
        // but for forwarding, so it rewrites exactly what goes upstream and what comes back.
        .layer(TenancyLayer::new(trees))
        // Innermost: send upstream as the caller, stream the answer back.
        .service(Forward::new(upstream.http.clone(), tunnels, metrics));
    BoxCloneSyncService::new(stack)
}
