//! The impersonation headers that carry the authenticated caller to the apiserver, so its own
//! RBAC and audit see the real user (design invariant 7).

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::auth::Identity;

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
pub fn impersonation_headers(identity: &Identity, headers: &mut HeaderMap) -> Result<(), HeaderError> {
    let value = |field: &str, v: &str| HeaderValue::from_str(v).map_err(|_| HeaderError { field: field.to_owned() });
    headers.insert(HeaderName::from_static("impersonate-user"), value("user", &identity.user)?);
    if let Some(uid) = &identity.uid {
        headers.insert(HeaderName::from_static("impersonate-uid"), value("uid", uid)?);
    }
    for group in &identity.groups {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_of_the_identity_becomes_a_header() {
        let mut identity = Identity::new("alice", ["dev", "system:authenticated"]);
        identity.uid = Some("42".into());
        identity.extra.insert("example.org/Scopes".into(), vec!["a".into(), "b".into()]);
        let mut headers = HeaderMap::new();
        impersonation_headers(&identity, &mut headers).unwrap();
        assert_eq!(headers["impersonate-user"], "alice");
        assert_eq!(headers["impersonate-uid"], "42");
        let groups: Vec<_> = headers.get_all("impersonate-group").iter().collect();
        assert_eq!(groups, ["dev", "system:authenticated"]);
        let extras: Vec<_> = headers.get_all("impersonate-extra-example.org%2fscopes").iter().collect();
        assert_eq!(extras, ["a", "b"]);
    }

    #[test]
    fn control_characters_are_refused() {
        let identity = Identity::new("eve\r\nimpersonate-user: admin", Vec::<String>::new());
        assert!(impersonation_headers(&identity, &mut HeaderMap::new()).is_err());
    }
}
