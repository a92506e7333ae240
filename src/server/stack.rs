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
use crate::request::{ClassifyLayer, IdentityGuardLayer};
use crate::server::body_limit::BodyLimitLayer;
use crate::server::drain_body::DrainRequestBodyLayer;
use crate::status::RenderStatusLayer;
use crate::tenancy::{
    CreateNamespaceLayer, DiscoveryLayer, FanOutLayer, GateLayer, NegotiateLayer, ReviewLayer, RevokeLayer,
    RewriteLayer, ViewLayer,
};
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
        // The tenancy tree, in phases (crate::tenancy), each handing its decision to the next.
        // The view and what the caller may do there: the pure decision, audited; refusals end
        // here. With an empty tree every caller passes on as themselves.
        .layer(ViewLayer::new(trees.clone()))
        // A watch or tunnel ends when a reload changes what its decision rested on.
        .layer(RevokeLayer::new(trees))
        // Answers leave in the encoding the client negotiated, rendered by Canopy from JSON.
        .layer(NegotiateLayer::default())
        // Discovery and OpenAPI documents show only what the ceiling allows.
        .layer(DiscoveryLayer::default())
        // Virtual names become physical ones in path, query and body (read here, once), and
        // every answer below is translated back, masked and filtered by secret type.
        .layer(RewriteLayer::default())
        // Access reviews are answered in the view: the tree first, upstream RBAC where it allows.
        .layer(ReviewLayer::default())
        // A tenant's namespace is created within the view's quota, one at a time per view.
        .layer(CreateNamespaceLayer::default())
        // `-A` lists and watches span the view's namespaces, one upstream request per namespace.
        .layer(FanOutLayer::default())
        // Writes the gates judge are dry-run once and committed exactly as judged; linked
        // copies are read-only; a single secret is answered only if its type is the view's.
        .layer(GateLayer::default())
        // Innermost: send upstream as the caller, stream the answer back.
        .service(Forward::new(upstream.http.clone(), tunnels, metrics));
    BoxCloneSyncService::new(stack)
}
