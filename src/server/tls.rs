//! The listener's TLS: a serving certificate from files or generated at start (signed by a CA
//! that is kept on disk so kubeconfigs stay valid across restarts), ALPN for HTTP/2 and
//! HTTP/1.1, and optional client-certificate verification against the configured client CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use crate::config::{ServerConfig, TlsSource};

/// Why TLS could not be set up; each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{setting} ({path}): {message}")]
    Pem { setting: &'static str, path: PathBuf, message: String },
    /// The generated CA directory could not be written.
    #[error("server.tls.generatedDir ({path}): {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// Certificate generation failed.
    #[error("generating the serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the material.
    #[error("server TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA bundle is unusable.
    #[error("server.clientCaFile: {0}")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// The rustls server configuration for the tenant-facing listener.
pub fn server_config(config: &ServerConfig) -> Result<rustls::ServerConfig, TlsError> {
    let (chain, key) = match &config.tls {
        TlsSource::Files { cert, key } => (
            read_certs("server.tls.certFile", cert)?,
            PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("server.tls.keyFile", key, e))?,
        ),
        TlsSource::Generated { dir, extra_sans } => generate_serving(dir, &sans(config, extra_sans))?,
    };
    let builder = rustls::ServerConfig::builder();
    let builder = match &config.client_ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs("server.clientCaFile", path)? {
                roots.add(cert)?;
            }
            // Client certificates are optional: bearer tokens remain a way in.
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).allow_unauthenticated().build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut tls = builder.with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

/// The PEM of the CA tenants should trust, for kubeconfigs.
pub fn trust_anchor_pem(config: &ServerConfig) -> Result<String, TlsError> {
    let path = match &config.tls {
        TlsSource::Files { cert, .. } => cert.clone(),
        TlsSource::Generated { dir, .. } => {
            ensure_ca(dir)?;
            dir.join("ca.crt")
        }
    };
    let certs = read_certs("server.tls", &path)?;
    // A chain file ends with its root; a lone self-signed certificate is its own anchor.
    let anchor = certs.last().ok_or_else(|| pem_error("server.tls", &path, "no certificate"))?;
    Ok(pem::encode(&pem::Pem::new("CERTIFICATE", anchor.to_vec())))
}

fn sans(config: &ServerConfig, extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    if !config.listen.ip().is_unspecified() {
        sans.push(config.listen.ip().to_string());
    }
    if let Some(host) = config
        .public_url
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_owned()))
    {
        sans.push(host);
    }
    sans.extend(extra.iter().cloned());
    sans.sort();
    sans.dedup();
    sans
}

/// Loads the CA from `dir`, creating it on first use.
fn ensure_ca(dir: &Path) -> Result<(String, KeyPair), TlsError> {
    let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    if cert_path.exists() && key_path.exists() {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| pem_error("server.tls.generatedDir", p, e));
        let key = KeyPair::from_pem(&read(&key_path)?)?;
        return Ok((read(&cert_path)?, key));
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, "canopy-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = params.self_signed(&key)?;
    write(dir, "ca.key", &key.serialize_pem(), true)?;
    write(dir, "ca.crt", &cert.pem(), false)?;
    Ok((cert.pem(), key))
}

fn generate_serving(
    dir: &Path,
    sans: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let (ca_pem, ca_key) = ensure_ca(dir)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(sans.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, "canopy");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = params.signed_by(&key, &issuer)?;
    let key_der =
        PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| pem_error("server.tls.generatedDir", dir, e))?;
    Ok((vec![cert.der().clone()], key_der))
}

fn write(dir: &Path, name: &str, contents: &str, private: bool) -> Result<(), TlsError> {
    let path = dir.join(name);
    let io = |source| TlsError::Write { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let _ = private;
    use std::io::Write;
    options.open(&path).and_then(|mut f| f.write_all(contents.as_bytes())).map_err(io)
}

fn read_certs(setting: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(setting, path, e))?;
    if certs.is_empty() {
        return Err(pem_error(setting, path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn pem_error(setting: &'static str, path: &Path, error: impl std::fmt::Display) -> TlsError {
    TlsError::Pem { setting, path: path.to_owned(), message: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn generated_ca_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        let config = Config::from_str(&file, "").unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        server_config(&config.server).unwrap();
        let first = trust_anchor_pem(&config.server).unwrap();
        server_config(&config.server).unwrap();
        assert_eq!(first, trust_anchor_pem(&config.server).unwrap());
        assert!(dir.path().join(".canopy/ca.key").exists());
    }
}
