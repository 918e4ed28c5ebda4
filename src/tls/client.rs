//! TLS for kefu's own outbound connections (webhook deliveries, `https://` endpoints): one
//! rustls client configuration, built once per delivery thread, that trusts the Mozilla root
//! certificates (`webpki-roots`, compiled in, so a host without a CA bundle verifies the same
//! way) and, if configured, the CA certificates of one extra PEM file (a company CA, or a
//! test's). Certificates are verified by rustls/webpki against the endpoint's host name, or
//! its address for an address literal; nothing here relaxes that.

use super::{read_pem, TlsError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

/// A client configuration trusting the Mozilla roots and every certificate in `extra_ca`
/// (blocking file read: call when a thread starts, not in a loop turn).
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca {
        let pem = read_pem(path)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem(path.to_path_buf(), e.to_string()))?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate(path.to_path_buf()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| TlsError::BadCa(path.to_path_buf(), e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Settings)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("kefu-tls-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(client_config(None).is_ok());
        let missing = client_config(Some(&dir.join("none.pem"))).unwrap_err();
        assert!(matches!(missing, TlsError::Read(..)), "{missing}");
        std::fs::write(dir.join("empty.pem"), b"no pem here\n").unwrap();
        let empty = client_config(Some(&dir.join("empty.pem"))).unwrap_err();
        assert!(matches!(empty, TlsError::NoCertificate(_)), "{empty}");
        std::fs::write(
            dir.join("junk.pem"),
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let junk = client_config(Some(&dir.join("junk.pem"))).unwrap_err();
        assert!(matches!(junk, TlsError::BadCa(..)), "{junk}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
