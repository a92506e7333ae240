//! Header hygiene between client, Canopy and upstream. Identity is never chosen by the client
//! (design invariant 7): client `Impersonate-*` headers are refused, and hop-by-hop headers —
//! including any header a client names in `Connection` — are dropped *before* Canopy adds its own
//! impersonation headers, so `Connection: Impersonate-User` cannot make a proxy strip the identity
//! it added and leave the request running as the proxy itself.

use http::{HeaderMap, HeaderName, header};

use crate::status::Status;

/// Hop-by-hop headers of RFC 9110 §7.6.1 and their older relatives.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Refuses requests that try to pick their own upstream identity.
pub fn refuse_identity_headers(headers: &HeaderMap) -> Result<(), Status> {
    if let Some(name) = headers.keys().find(|name| is_identity_header(name.as_str())) {
        return Err(Status::forbidden(format!(
            "the {name} header is not accepted: Canopy sends the authenticated caller upstream"
        )));
    }
    if let Some(token) = connection_tokens(headers).find(|token| is_protected(token)) {
        return Err(Status::forbidden(format!(
            "the Connection header may not name {token}: it would strip a header Canopy sets"
        )));
    }
    Ok(())
}

/// Whether the request asks to switch protocols (exec, attach, port-forward).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).any(|t| t == "upgrade")
}

/// Removes from a client request everything that must not reach upstream: hop-by-hop headers,
/// headers named in `Connection`, the client's own credentials and any identity header.
/// `Connection: Upgrade` and `Upgrade` survive on upgrade requests, which need them end to end.
pub fn strip_request(headers: &mut HeaderMap) {
    let upgrade = is_upgrade(headers);
    let upgrade_value = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST);
    let identity: Vec<HeaderName> = headers.keys().filter(|name| is_identity_header(name.as_str())).cloned().collect();
    for name in identity {
        headers.remove(name);
    }
    if let (true, Some(value)) = (upgrade, upgrade_value) {
        headers.insert(header::CONNECTION, http::HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, value);
    }
}

/// Removes hop-by-hop headers from an upstream response; a `101 Switching Protocols` keeps its
/// `Connection`/`Upgrade` pair so the client sees the protocol switch.
pub fn strip_response(headers: &mut HeaderMap, switching_protocols: bool) {
    if switching_protocols {
        return;
    }
    strip_hop_by_hop(headers);
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> =
        connection_tokens(headers).filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok()).collect();
    // One pass over the names present (a handful) instead of a lookup per hop-by-hop name: most
    // messages carry none of them.
    let present: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name) || *name == header::UPGRADE || named.contains(name))
        .cloned()
        .collect();
    for name in present {
        headers.remove(name);
    }
}

/// Lower-cased tokens of every `Connection` header.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !token.is_empty())
}

/// Headers that carry an identity to the apiserver: impersonation and front-proxy headers.
fn is_identity_header(name: &str) -> bool {
    let starts_with = |prefix: &str| name.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix));
    starts_with("impersonate-") || starts_with("x-remote-")
}

/// Headers a client may not ask Canopy to drop via `Connection`.
fn is_protected(token: &str) -> bool {
    is_identity_header(token) || token == "authorization"
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn client_impersonation_is_refused() {
        for name in
            ["Impersonate-User", "impersonate-group", "Impersonate-Extra-scopes", "Impersonate-Uid", "X-Remote-User"]
        {
            let err = refuse_identity_headers(&headers(&[(name, "x")])).unwrap_err();
            assert_eq!(err.code, 403, "{name}");
        }
    }

    #[test]
    fn connection_naming_identity_headers_is_refused() {
        for value in ["Impersonate-User", "keep-alive, impersonate-group", "Authorization"] {
            let err = refuse_identity_headers(&headers(&[("connection", value)])).unwrap_err();
            assert_eq!(err.code, 403, "{value}");
        }
        assert!(refuse_identity_headers(&headers(&[("connection", "keep-alive")])).is_ok());
    }

    #[test]
    fn strip_request_removes_hop_by_hop_and_named_headers() {
        let mut h = headers(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("authorization", "Bearer t"),
            ("host", "canopy"),
            ("te", "trailers"),
            ("accept", "application/json"),
        ]);
        strip_request(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["accept"], "application/json");
    }

    #[test]
    fn strip_request_keeps_upgrade_pair() {
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        strip_request(&mut h);
        assert_eq!(h["connection"], "Upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["sec-websocket-protocol"], "v5.channel.k8s.io");
    }
}
