//! TLS for the listeners (`wss://`, `https://`, `text+tls://`, `api+tls://`): certificates
//! read and checked from PEM files ([`Acceptor::load`]), the per-listener rustls settings,
//! the choice of certificate by SNI, one connection's session ([`session::TlsSession`]), and
//! our own record layer ([`record`]) that carries a session on after a reload's hand-over
//! ([`carry`]). Also the client settings of kefu's own outbound TLS (webhooks, [`client`]).
//!
//! rustls with the `ring` provider: it builds with a C compiler alone (aws-lc-rs needs cmake
//! or a prebuilt library), and the handshake runs inside the worker's mio loop: rustls is a
//! state machine fed bytes, so nothing blocks and no thread is spent per connection.

pub mod carry;
pub mod client;
pub mod record;
mod scratch;
pub mod session;
mod steps;
mod writer;

use crate::config::{SniFiles, TlsFiles};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A PEM file larger than this is refused: a chain of a few certificates is a few KiB.
const MAX_PEM: u64 = 1024 * 1024;

/// Why a listener's certificate cannot be used.
#[derive(Debug)]
pub enum TlsError {
    /// The file could not be read.
    Read(PathBuf, std::io::Error),
    /// The file is larger than any certificate chain or key.
    TooLarge(PathBuf),
    /// The PEM text is malformed.
    Pem(PathBuf, String),
    /// No `CERTIFICATE` block in the certificate file.
    NoCertificate(PathBuf),
    /// No private key block in the key file.
    NoKey(PathBuf),
    /// The key is of a kind or size rustls does not sign with.
    BadKey(PathBuf, rustls::Error),
    /// The certificate does not parse, or its public key is not the key file's.
    Mismatch {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// What rustls found.
        why: rustls::Error,
    },
    /// An SNI name that is no host name.
    BadName(String),
    /// rustls refused the settings.
    Settings(rustls::Error),
    /// A certificate of an extra CA file is not one rustls can trust as a root.
    BadCa(PathBuf, rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            TlsError::TooLarge(p) => {
                write!(f, "{} is over {MAX_PEM} bytes: not a PEM file", p.display())
            }
            TlsError::Pem(p, e) => write!(f, "{}: bad PEM: {e}", p.display()),
            TlsError::NoCertificate(p) => {
                write!(f, "{}: no CERTIFICATE block (expected PEM)", p.display())
            }
            TlsError::NoKey(p) => write!(
                f,
                "{}: no PRIVATE KEY block (expected PEM: PKCS#8, RSA or EC)",
                p.display()
            ),
            TlsError::BadKey(p, e) => write!(f, "{}: unusable private key: {e}", p.display()),
            TlsError::Mismatch { cert, key, why } => write!(
                f,
                "certificate {} and key {} do not belong together: {why}",
                cert.display(),
                key.display()
            ),
            TlsError::BadName(n) => write!(f, "sni name {n:?} is not a host name"),
            TlsError::Settings(e) => write!(f, "tls settings refused: {e}"),
            TlsError::BadCa(p, e) => write!(f, "{}: not a usable CA certificate: {e}", p.display()),
        }
    }
}

impl std::error::Error for TlsError {}

/// The TLS side of one listener: its rustls settings, shared by all its connections.
#[derive(Debug, Clone)]
pub struct Acceptor {
    config: Arc<rustls::ServerConfig>,
}

impl Acceptor {
    /// Read and check the listener's certificates and keys (blocking file reads: call at
    /// start, outside any loop turn serving clients). `http` announces ALPN `http/1.1`
    /// (WebSocket and HTTP listeners; the text protocol has no ALPN name).
    pub fn load(files: &TlsFiles, http: bool) -> Result<Acceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let default = certified_key(&files.cert, &files.key, &provider)?;
        let mut by_name = Vec::new();
        for SniFiles { names, cert, key } in &files.sni {
            let ck = certified_key(cert, key, &provider)?;
            for n in names {
                let n = n.trim().to_ascii_lowercase();
                let host = n.strip_prefix("*.").unwrap_or(&n);
                if rustls::pki_types::DnsName::try_from(host).is_err() {
                    return Err(TlsError::BadName(n));
                }
                by_name.push((n, ck.clone()));
            }
        }
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Settings)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Certs { default, by_name }));
        if http {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        // A reload hands established sessions to the next worker with their traffic keys
        // (`session::TlsSession::detach`, `record.rs`); they go only over the hand-over
        // socketpair between two workers of this master, never to a log.
        config.enable_secret_extraction = true;
        Ok(Acceptor {
            config: Arc::new(config),
        })
    }

    /// A session for a freshly accepted connection.
    pub fn session(&self) -> Result<session::TlsSession, rustls::Error> {
        session::TlsSession::new(self.config.clone())
    }
}

/// Read a file of at most [`MAX_PEM`] bytes.
fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let f = std::fs::File::open(path).map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    let mut bytes = Vec::new();
    f.take(MAX_PEM + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TlsError::Read(path.to_path_buf(), e))?;
    if bytes.len() as u64 > MAX_PEM {
        return Err(TlsError::TooLarge(path.to_path_buf()));
    }
    Ok(bytes)
}

/// The chain in `cert` and the key in `key`, checked to belong together.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let pem = read_pem(cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(cert.to_path_buf(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let pem = read_pem(key)?;
    let der = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey(key.to_path_buf()))
        }
        Err(e) => return Err(TlsError::Pem(key.to_path_buf(), e.to_string())),
    };
    let signer = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::BadKey(key.to_path_buf(), e))?;
    let ck = CertifiedKey::new(chain, signer);
    match ck.keys_match() {
        Ok(()) => {}
        // The provider cannot tell the key's public half: nothing to compare.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(why) => {
            return Err(TlsError::Mismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                why,
            })
        }
    }
    Ok(Arc::new(ck))
}

/// The certificates of one listener: by SNI name, else the default.
#[derive(Debug)]
struct Certs {
    default: Arc<CertifiedKey>,
    /// Lower-case names, `*.` prefixed for a wildcard; few, so a scan beats a map.
    by_name: Vec<(String, Arc<CertifiedKey>)>,
}

impl Certs {
    fn pick(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        let parent = name.split_once('.').map(|(_, p)| p);
        self.by_name
            .iter()
            .find(|(n, _)| *n == name)
            .or_else(|| {
                let parent = parent?;
                self.by_name
                    .iter()
                    .find(|(n, _)| n.strip_prefix("*.") == Some(parent))
            })
            .map(|(_, ck)| ck)
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let picked = hello.server_name().and_then(|n| self.pick(n));
        Some(picked.unwrap_or(&self.default).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bad_files_are_typed_errors() {
        let dir = std::env::temp_dir().join(format!("kefu-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = |c: &str, k: &str| TlsFiles {
            cert: dir.join(c),
            key: dir.join(k),
            sni: Vec::new(),
        };
        let e = Acceptor::load(&files("none.pem", "none.key"), true).unwrap_err();
        assert!(matches!(e, TlsError::Read(..)), "{e}");
        std::fs::write(dir.join("junk.pem"), b"hello\n").unwrap();
        let e = Acceptor::load(&files("junk.pem", "junk.pem"), true).unwrap_err();
        assert!(matches!(e, TlsError::NoCertificate(..)), "{e}");
        std::fs::write(
            dir.join("broken.pem"),
            b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = Acceptor::load(&files("broken.pem", "junk.pem"), true).unwrap_err();
        assert!(matches!(e, TlsError::Pem(..)), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
