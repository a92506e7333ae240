//! The impersonation headers that carry the authenticated caller to the apiserver, so its own
//! RBAC and audit see the real user (design invariant 7).

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::auth::Identity;

/// Marks a request that goes upstream under Canopy's own identity, not impersonating the caller:
/// Canopy has decided it and narrowed it (a subtree's namespace list), which tenants' own RBAC
/// could not express.
#[derive(Debug, Clone, Copy)]
pub struct AsCanopy;

/// Characters escaped in `Impersonate-Extra-<key>` names: everything that is not a header token
/// character, plus `%` itself, as client-go does.
const EXTRA_KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'*')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Why an identity cannot be expressed in headers.
#[derive(Debug, thiserror::Error)]
#[error("identity field {field} cannot be sent as an HTTP header")]
pub struct HeaderError {
    /// Which part of the identity.
    pub field: String,
}

/// Adds `Impersonate-User`, `-Uid`, one `-Group` per group and `-Extra-<key>` per extra value.
/// `system:authenticated` is left out where the apiserver adds it itself: it authorizes every
/// impersonated group separately, so sending it would cost one more check per request.
pub fn impersonation_headers(identity: &Identity, headers: &mut HeaderMap) -> Result<(), HeaderError> {
    let value = |field: &str, v: &str| HeaderValue::from_str(v).map_err(|_| HeaderError { field: field.to_owned() });
    headers.insert(HeaderName::from_static("impersonate-user"), value("user", &identity.user)?);
    if let Some(uid) = &identity.uid {
        headers.insert(HeaderName::from_static("impersonate-uid"), value("uid", uid)?);
    }
    let implied = authenticated_is_implied(identity);
    for group in identity.groups.iter().filter(|g| !(implied && *g == AUTHENTICATED)) {
        headers.append(HeaderName::from_static("impersonate-group"), value("group", group)?);
    }
    for (key, values) in &identity.extra {
        let name = format!("impersonate-extra-{}", utf8_percent_encode(&key.to_lowercase(), EXTRA_KEY_ESCAPE));
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError { field: format!("extra {key}") })?;
        for v in values {
            headers.append(name.clone(), value(&format!("extra {key}"), v)?);
        }
    }
    Ok(())
}

const AUTHENTICATED: &str = "system:authenticated";

/// Whether the apiserver gives the impersonated user `system:authenticated` without being told:
/// once any group is impersonated, it adds that one to every user but `system:anonymous`, unless
/// `system:unauthenticated` is among them (k8s.io/apiserver, endpoints/filters/impersonation).
/// With no group at all it would pick groups itself (a service account's), so then it is sent.
fn authenticated_is_implied(identity: &Identity) -> bool {
    identity.user != "system:anonymous"
        && identity.groups.iter().any(|g| g != AUTHENTICATED)
        && !identity.groups.iter().any(|g| g == "system:unauthenticated")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_the_identity_becomes_a_header() {
        let mut identity = Identity::new("alice", ["dev", "ops"]);
        identity.uid = Some("42".into());
        identity.extra.insert("example.org/Scopes".into(), vec!["a".into(), "b".into()]);
        let mut headers = HeaderMap::new();
        impersonation_headers(&identity, &mut headers).unwrap();
        assert_eq!(headers["impersonate-user"], "alice");
        assert_eq!(headers["impersonate-uid"], "42");
        let groups: Vec<_> = headers.get_all("impersonate-group").iter().collect();
        assert_eq!(groups, ["dev", "ops"]);
        let extras: Vec<_> = headers.get_all("impersonate-extra-example.org%2fscopes").iter().collect();
        assert_eq!(extras, ["a", "b"]);
    }

    fn groups_sent(user: &str, groups: &[&str]) -> Vec<String> {
        let mut headers = HeaderMap::new();
        impersonation_headers(&Identity::new(user, groups.iter().copied()), &mut headers).unwrap();
        headers.get_all("impersonate-group").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn authenticated_is_sent_only_where_the_apiserver_would_not_add_it() {
        assert_eq!(groups_sent("alice", &["dev", "system:authenticated"]), ["dev"]);
        assert_eq!(groups_sent("alice", &["system:authenticated"]), ["system:authenticated"]);
        assert_eq!(
            groups_sent("system:serviceaccount:ns:sa", &["system:serviceaccounts", "system:authenticated"]),
            ["system:serviceaccounts"]
        );
        assert_eq!(
            groups_sent("alice", &["system:unauthenticated", "system:authenticated"]),
            ["system:unauthenticated", "system:authenticated"]
        );
        assert_eq!(groups_sent("system:anonymous", &["system:authenticated"]), ["system:authenticated"]);
    }

    #[test]
    fn control_characters_are_refused() {
        let identity = Identity::new("eve\r\nimpersonate-user: admin", Vec::<String>::new());
        assert!(impersonation_headers(&identity, &mut HeaderMap::new()).is_err());
    }
}
