//! Identities from verified client certificates: the subject's CommonName is the user and each
//! Organization a group, as kube-apiserver reads them. Verification itself happens in the TLS
//! handshake against the configured client CA; this only reads the already-trusted certificate.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::Identity;

/// The identity in a DER certificate, `None` if it has no usable CommonName.
pub fn identity_from_der(der: &[u8]) -> Option<Identity> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let user = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    if user.is_empty() {
        return None;
    }
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_owned).collect::<Vec<_>>();
    Some(Identity::new(user, groups))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

    #[test]
    fn common_name_is_user_and_organizations_are_groups() {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "frank");
        dn.push(DnType::OrganizationName, "devs");
        params.distinguished_name = dn;
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let identity = identity_from_der(cert.der()).unwrap();
        assert_eq!(identity.user, "frank");
        assert_eq!(identity.groups, ["devs"]);
    }
}
