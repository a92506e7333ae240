//! Authentication: who is calling. Front-proxy headers from a trusted frontend ([`front_proxy`]),
//! client certificates (verified in the TLS handshake), static tokens for development, and bearer
//! tokens checked by TokenReview — the same sources, in the same order, that kube-apiserver
//! consults; in sidecar mode a request with none of these presents the pod's own token
//! ([`PodToken`]). [`AuthenticateLayer`] puts the resulting [`Identity`] on the request or
//! answers 401.

mod client_cert;
pub mod front_proxy;
mod identity;
mod layer;
mod lru;
mod pod_token;
mod rate_limit;
mod static_tokens;
mod token_review;

pub use client_cert::identity_from_der;
pub use front_proxy::{FrontProxy, FrontProxyNames};
pub use identity::{ClientAddr, Identity, PeerIdentity};
pub use layer::{AuthenticateLayer, AuthenticateService};
pub use pod_token::{PodToken, PodTokenError};
pub use static_tokens::{StaticTokens, TokenFileError};
pub use token_review::{ReviewError, TokenReviewer};

use crate::status::Status;

/// The credential a request presents, besides its connection's certificate. Its `Debug` never
/// shows the token.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer …`, or the WebSocket subprotocol form browsers use.
    Bearer(String),
    /// No credential in the request.
    None,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Credential::None => f.write_str("None"),
        }
    }
}

/// All configured ways to establish an identity.
#[derive(Clone, Default)]
pub struct Authenticator {
    static_tokens: Option<std::sync::Arc<StaticTokens>>,
    token_review: Option<TokenReviewer>,
    default_token: Option<PodToken>,
}

impl Authenticator {
    /// An authenticator over the given sources; client certificates are always honoured when
    /// the listener verified one.
    pub fn new(static_tokens: Option<StaticTokens>, token_review: Option<TokenReviewer>) -> Self {
        Self { static_tokens: static_tokens.map(std::sync::Arc::new), token_review, default_token: None }
    }

    /// Sidecar mode: a request without a credential of its own presents `token` instead, so the
    /// frontend acts as the token's identity (the pod's ServiceAccount).
    pub fn with_default_token(mut self, token: PodToken) -> Self {
        self.default_token = Some(token);
        self
    }

    /// Identifies the caller: certificate first, then the bearer token (the request's own, else
    /// the sidecar's default) by static tokens, then TokenReview. A token TokenReview has yet to
    /// see counts against `client`'s rate; `None` for callers that are not limited.
    pub async fn authenticate(
        &self,
        peer: &PeerIdentity,
        credential: &Credential,
        client: Option<std::net::IpAddr>,
    ) -> Result<Identity, Status> {
        if let Some(identity) = &peer.0 {
            return Ok(identity.clone());
        }
        let default;
        let token = match (credential, &self.default_token) {
            (Credential::Bearer(token), _) => token.as_str(),
            (Credential::None, Some(source)) => {
                default = source.current().await;
                &*default
            }
            (Credential::None, None) => return Err(Status::unauthorized("Unauthorized")),
        };
        if let Some(identity) = self.static_tokens.as_ref().and_then(|t| t.lookup(token)) {
            return Ok(identity.clone());
        }
        if let Some(reviewer) = &self.token_review {
            match reviewer.review(token, client).await {
                Ok(Some(identity)) => return Ok(identity),
                Ok(None) => {}
                Err(ReviewError::RateLimited(retry_after)) => {
                    return Err(Status::too_many_requests(
                        "too many new bearer tokens from this address; try again later",
                        retry_after,
                    ));
                }
                Err(error @ (ReviewError::Upstream(_) | ReviewError::TimedOut(_))) => {
                    tracing::warn!(%error, "cannot verify a bearer token");
                    return Err(Status::service_unavailable(
                        "cannot verify the bearer token right now: the upstream apiserver is unavailable",
                    ));
                }
            }
        }
        Err(Status::unauthorized("Unauthorized"))
    }
}
