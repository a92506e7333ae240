//! The tower layer that authenticates each request and stores its [`Identity`] in the request's
//! extensions, removing the credential so it can never travel upstream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine;
use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service};

use super::{Authenticator, Credential, PeerIdentity};
use crate::body::Body;
use crate::status::Status;

/// WebSocket clients that cannot set headers send `base64url.bearer.authorization.k8s.io.<token>`
/// as a subprotocol; kube-apiserver accepts it, so Canopy does too.
const WS_BEARER_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// Adds authentication in front of a service.
#[derive(Clone)]
pub struct AuthenticateLayer {
    authenticator: Authenticator,
}

impl AuthenticateLayer {
    pub fn new(authenticator: Authenticator) -> Self {
        Self { authenticator }
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
    authenticator: Authenticator,
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
        let authenticator = self.authenticator.clone();
        // The clone is the one that was polled ready; see tower's "cloning services" guidance.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let peer = request.extensions().get::<PeerIdentity>().cloned().unwrap_or_default();
            let credential = take_credential(request.headers_mut());
            let identity = authenticator.authenticate(&peer, &credential).await?;
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
