//! Front-proxy identities: a trusted frontend names the signed-in end user in `X-Remote-User`,
//! `X-Remote-Group` (one header per group) and `X-Remote-Extra-<key>` headers, as
//! kube-apiserver's request-header authenticator reads them. Trust belongs to the connection, not
//! to the request: the listener marks a connection [`FrontProxy`] when it reaches the sidecar over
//! loopback, or presents a verified client certificate whose CommonName the config trusts. Only
//! then are the headers read — and always removed. From anyone else they stay on the request and
//! the identity guard refuses them with 403, so a forged header never chooses an identity and
//! never travels upstream.

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::percent_decode_str;

use super::Identity;
use crate::status::Status;

const USER: &str = "x-remote-user";
const GROUP: &str = "x-remote-group";
const EXTRA_PREFIX: &str = "x-remote-extra-";

/// Set by the listener on every request of a connection that may state identities in
/// front-proxy headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct FrontProxy;

/// The CommonNames of client certificates trusted as front proxies (`authentication.frontProxyNames`).
/// Empty trusts no certificate: the client CA also signs ordinary users' certificates.
#[derive(Debug, Clone, Default)]
pub struct FrontProxyNames(std::sync::Arc<[String]>);

impl FrontProxyNames {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        Self(names.into_iter().collect())
    }

    /// Whether a verified client certificate with this CommonName is a front proxy.
    pub fn trusts(&self, common_name: &str) -> bool {
        self.0.iter().any(|name| name == common_name)
    }
}

/// Removes every front-proxy header this module understands and returns the identity they state;
/// `None` when the request names no user. Call only for [`FrontProxy`] connections. Headers it
/// does not understand (`X-Remote-Uid`, …) are left for the identity guard to refuse, rather than
/// dropped silently.
pub fn take_identity(headers: &mut HeaderMap) -> Result<Option<Identity>, Status> {
    let users = take_values(headers, &HeaderName::from_static(USER))?;
    let groups = take_values(headers, &HeaderName::from_static(GROUP))?;
    let extra_names: Vec<HeaderName> =
        headers.keys().filter(|name| name.as_str().starts_with(EXTRA_PREFIX)).cloned().collect();
    let mut extra = BTreeMap::new();
    for name in extra_names {
        let key = extra_key(&name.as_str()[EXTRA_PREFIX.len()..])?;
        let values = take_values(headers, &name)?;
        extra.entry(key).or_insert_with(Vec::new).extend(values);
    }
    let user = match users.as_slice() {
        [] if groups.is_empty() && extra.is_empty() => return Ok(None),
        [] => return Err(Status::bad_request("X-Remote-Group and X-Remote-Extra-* need an X-Remote-User header")),
        [user] if !user.is_empty() => user.clone(),
        [_] => return Err(Status::bad_request("the X-Remote-User header is empty")),
        _ => return Err(Status::bad_request("more than one X-Remote-User header")),
    };
    Ok(Some(Identity { user, uid: None, groups, extra }))
}

/// Removes all values of `name`, each one value (as kube-apiserver reads them: no comma split).
fn take_values(headers: &mut HeaderMap, name: &HeaderName) -> Result<Vec<String>, Status> {
    let values: Vec<HeaderValue> = match headers.entry(name) {
        http::header::Entry::Occupied(entry) => entry.remove_entry_mult().1.collect(),
        http::header::Entry::Vacant(_) => return Ok(Vec::new()),
    };
    values
        .iter()
        .map(|value| {
            value.to_str().map(|v| v.trim().to_owned()).map_err(|_| {
                Status::bad_request(format!("the {name} header holds characters that are not visible ASCII"))
            })
        })
        .collect()
}

/// The extra key in a header name suffix: percent-decoded, lower case (header names are
/// case-insensitive, so kube-apiserver lower-cases keys too).
fn extra_key(encoded: &str) -> Result<String, Status> {
    let key = percent_decode_str(encoded)
        .decode_utf8()
        .map_err(|_| Status::bad_request(format!("X-Remote-Extra-{encoded}: the key is not UTF-8")))?;
    if key.is_empty() {
        return Err(Status::bad_request("an X-Remote-Extra- header without a key"));
    }
    Ok(key.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn user_groups_and_extras_are_read_and_removed() {
        let mut h = headers(&[
            ("X-Remote-User", "dave"),
            ("X-Remote-Group", "ops"),
            ("X-Remote-Group", "devs, qa"),
            ("X-Remote-Extra-Scopes", "a"),
            ("X-Remote-Extra-scopes", "b"),
            ("X-Remote-Extra-example.org%2FTeam", "x"),
            ("Accept", "application/json"),
        ]);
        let identity = take_identity(&mut h).unwrap().unwrap();
        assert_eq!(identity.user, "dave");
        assert_eq!(identity.groups, ["ops", "devs, qa"]);
        assert_eq!(identity.extra["scopes"], ["a", "b"]);
        assert_eq!(identity.extra["example.org/team"], ["x"]);
        assert_eq!(h.len(), 1, "only Accept stays: {h:?}");
    }

    #[test]
    fn no_headers_is_no_identity() {
        let mut h = headers(&[("Accept", "application/json")]);
        assert_eq!(take_identity(&mut h).unwrap(), None);
    }

    #[test]
    fn ambiguous_or_partial_headers_are_refused() {
        for pairs in [
            &[("X-Remote-Group", "ops")][..],
            &[("X-Remote-Extra-Scopes", "a")],
            &[("X-Remote-User", "")],
            &[("X-Remote-User", "a"), ("X-Remote-User", "b")],
            &[("X-Remote-User", "a"), ("X-Remote-Extra-", "b")],
        ] {
            let err = take_identity(&mut headers(pairs)).unwrap_err();
            assert_eq!(err.code, 400, "{pairs:?}");
        }
    }

    #[test]
    fn unknown_remote_headers_stay_for_the_guard() {
        let mut h = headers(&[("X-Remote-User", "dave"), ("X-Remote-Uid", "1")]);
        take_identity(&mut h).unwrap();
        assert!(h.contains_key("x-remote-uid"));
    }

    #[test]
    fn names_are_trusted_exactly() {
        let names = FrontProxyNames::new(["console".to_owned()]);
        assert!(names.trusts("console"));
        assert!(!names.trusts("Console"));
        assert!(!FrontProxyNames::default().trusts(""));
    }
}
