//! The tower layer that authenticates each request and stores its [`Identity`] in the request's
//! extensions, removing the credential so it can never travel upstream. On a connection the
//! listener marked [`FrontProxy`], the front-proxy headers are consumed first and, when they name
//! a user, are the identity; elsewhere they are left for the identity guard to refuse. The
//! client's address ([`ClientAddr`]) bounds how many unknown tokens it may have reviewed,
//! except on trusted front-proxy connections, which speak for many users.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service};

use super::{Authenticator, ClientAddr, Credential, FrontProxy, PeerIdentity, front_proxy};
use crate::body::Body;
use crate::status::Status;

/// WebSocket clients that cannot set headers send `base64url.bearer.authorization.k8s.io.<token>`
/// as a subprotocol; kube-apiserver accepts it, so Canopy does too.
const WS_BEARER_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// Adds authentication in front of a service.
#[derive(Clone)]
pub struct AuthenticateLayer {
    // Shared: the service is cloned for every request.
    authenticator: Arc<Authenticator>,
}

impl AuthenticateLayer {
    pub fn new(authenticator: Authenticator) -> Self {
        Self { authenticator: Arc::new(authenticator) }
    }
}

impl<S> Layer<S> for AuthenticateLayer {
    type Service = AuthenticateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthenticateService { authenticator: self.authenticator.clone(), inner }
    }
}

/// See [`AuthenticateLayer`].
#[derive(Clone)]
pub struct AuthenticateService<S> {
    authenticator: Arc<Authenticator>,
    inner: S,
}

impl<S> Service<Request<Body>> for AuthenticateService<S>
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

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let authenticator = Arc::clone(&self.authenticator);
        // The clone is the one that was polled ready; see tower's "cloning services" guidance.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let peer = request.extensions().get::<PeerIdentity>().cloned().unwrap_or_default();
            let trusted = request.extensions().get::<FrontProxy>().is_some();
            let stated = if trusted { front_proxy::take_identity(request.headers_mut())? } else { None };
            let client = if trusted { None } else { request.extensions().get::<ClientAddr>().map(|addr| addr.0.ip()) };
            // Taken even when the headers decide, so a client's credential never goes upstream.
            let credential = take_credential(request.headers_mut());
            let identity = match stated {
                Some(identity) => identity,
                None => authenticator.authenticate(&peer, &credential, client).await?,
            };
            crate::audit::AuditSlot::on(&request, |r| r.identity(&identity));
            request.extensions_mut().insert(identity);
            inner.call(request).await
        })
    }
}

/// Removes and returns the request's bearer credential.
fn take_credential(headers: &mut http::HeaderMap) -> Credential {
    if let Some(value) = headers.remove(header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        return match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                Credential::Bearer(token.trim().to_owned())
            }
            _ => Credential::None,
        };
    }
    take_websocket_bearer(headers).map_or(Credential::None, Credential::Bearer)
}

fn take_websocket_bearer(headers: &mut http::HeaderMap) -> Option<String> {
    let protocols = headers.get(header::SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?.to_owned();
    let mut token = None;
    let kept: Vec<&str> = protocols
        .split(',')
        .map(str::trim)
        .filter(|p| match p.strip_prefix(WS_BEARER_PREFIX) {
            Some(encoded) => {
                token = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(encoded.trim_end_matches('='))
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok());
                false
            }
            None => true,
        })
        .collect();
    match HeaderValue::from_str(&kept.join(", ")) {
        Ok(value) if !kept.is_empty() => headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value),
        _ => headers.remove(header::SEC_WEBSOCKET_PROTOCOL),
    };
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Identity, PodToken, StaticTokens};
    use tower::ServiceExt;

    /// Authenticates `request` with static tokens `t-bob` (bob) and `t-carol` (carol), the
    /// default token `t-bob` in sidecar mode; returns the identity and the headers passed on.
    async fn authenticate(request: Request<Body>, sidecar: bool) -> Result<(Identity, http::HeaderMap), Status> {
        let tokens = StaticTokens::parse("t.csv", "t-bob,bob\nt-carol,carol\n").unwrap();
        let mut authenticator = Authenticator::new(Some(tokens), None);
        let dir = tempfile::tempdir().unwrap();
        if sidecar {
            std::fs::write(dir.path().join("token"), "t-bob").unwrap();
            authenticator = authenticator.with_default_token(PodToken::load(&dir.path().join("token")).await.unwrap());
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let record = std::sync::Arc::clone(&seen);
        let inner = tower::service_fn(move |request: Request<Body>| {
            let identity = request.extensions().get::<Identity>().cloned().unwrap();
            *record.lock().unwrap() = Some((identity, request.headers().clone()));
            async { Ok::<_, Status>(Response::new(crate::body::empty())) }
        });
        AuthenticateLayer::new(authenticator).layer(inner).oneshot(request).await?;
        let seen = seen.lock().unwrap().take().unwrap();
        Ok(seen)
    }

    fn request(headers: &[(&str, &str)], front_proxy: bool) -> Request<Body> {
        let mut builder = Request::get("/api/v1/namespaces");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(crate::body::empty()).unwrap();
        if front_proxy {
            request.extensions_mut().insert(FrontProxy);
        }
        request
    }

    #[tokio::test]
    async fn trusted_front_proxy_headers_decide_and_are_removed() {
        let headers = [("X-Remote-User", "dave"), ("X-Remote-Group", "ops"), ("Authorization", "Bearer t-carol")];
        let (identity, passed) = authenticate(request(&headers, true), true).await.unwrap();
        assert_eq!((identity.user.as_str(), identity.groups.as_slice()), ("dave", ["ops".to_owned()].as_slice()));
        assert!(passed.is_empty(), "{passed:?}");
    }

    #[tokio::test]
    async fn untrusted_front_proxy_headers_are_left_for_the_guard() {
        let headers = [("X-Remote-User", "dave"), ("Authorization", "Bearer t-carol")];
        let (identity, passed) = authenticate(request(&headers, false), false).await.unwrap();
        assert_eq!(identity.user, "carol");
        assert_eq!(passed["x-remote-user"], "dave");
    }

    #[tokio::test]
    async fn sidecar_uses_the_request_token_then_its_own() {
        let (identity, _) = authenticate(request(&[("Authorization", "Bearer t-carol")], true), true).await.unwrap();
        assert_eq!(identity.user, "carol");
        let (identity, _) = authenticate(request(&[], true), true).await.unwrap();
        assert_eq!(identity.user, "bob");
        let err = authenticate(request(&[], false), false).await.unwrap_err();
        assert_eq!(err.code, 401);
    }

    #[test]
    fn bearer_header_is_taken_and_removed() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(take_credential(&mut headers), Credential::Bearer("abc".into()));
        assert!(headers.is_empty());
    }

    #[test]
    fn basic_auth_is_no_credential() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
        assert_eq!(take_credential(&mut headers), Credential::None);
    }

    #[test]
    fn websocket_subprotocol_bearer_is_taken_and_removed() {
        let mut headers = http::HeaderMap::new();
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("tok");
        let value = format!("v5.channel.k8s.io, {WS_BEARER_PREFIX}{encoded}");
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(&value).unwrap());
        assert_eq!(take_credential(&mut headers), Credential::Bearer("tok".into()));
        assert_eq!(headers[header::SEC_WEBSOCKET_PROTOCOL], "v5.channel.k8s.io");
    }
}
