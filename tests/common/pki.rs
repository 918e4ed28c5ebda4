//! A throwaway certificate authority for the TLS tests, made with the `openssl` command at
//! test time: a CA, a server certificate for `localhost` / 127.0.0.1 and one for `b.test`
//! (SNI), each chain file holding the leaf then the CA.

use super::Instance;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The files of one test CA.
pub struct Pki {
    /// The CA certificate (what clients trust).
    pub ca: PathBuf,
    /// Chain for `localhost` and 127.0.0.1.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// Chain for `b.test`.
    pub other_cert: PathBuf,
    /// Its key.
    pub other_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Make a leaf `name` signed by the CA in `dir`, valid for `san`; returns (chain, key).
pub fn leaf(dir: &Path, name: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    let (key, csr, crt, ext) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    let mut chain = std::fs::read(dir.join(&crt)).unwrap();
    chain.extend(std::fs::read(dir.join("ca.pem")).unwrap());
    let pem = dir.join(format!("{name}.pem"));
    std::fs::write(&pem, chain).unwrap();
    (pem, dir.join(key))
}

/// A CA and two server certificates in `dir`.
pub fn make(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=kefu test CA",
        ],
    );
    let (cert, key) = leaf(dir, "server", "localhost", "DNS:localhost,IP:127.0.0.1");
    let (other_cert, other_key) = leaf(dir, "other", "b.test", "DNS:b.test");
    Pki {
        ca: dir.join("ca.pem"),
        cert,
        key,
        other_cert,
        other_key,
    }
}

/// An instance of `app` with listeners `schemes` (TLS ones get the test CA's `localhost`
/// certificate, `wss` also `b.test` by SNI), plus `toml`.
pub fn instance(app: &str, schemes: &[&str], toml: &str) -> (Instance, Pki) {
    let k = Instance::new(app, 1, schemes);
    let pki = make(&k.dir.join("pki"));
    let mut cfg = String::new();
    for s in schemes {
        let url = format!("{s}://127.0.0.1:{}", k.port(s));
        cfg += &match *s {
            "wss" => format!(
                "[[listen]]\nurl = \"{url}\"\ncert = {:?}\nkey = {:?}\n\
                 [[listen.sni]]\nnames = [\"b.test\"]\ncert = {:?}\nkey = {:?}\n",
                pki.cert, pki.key, pki.other_cert, pki.other_key
            ),
            "https" | "text+tls" | "api+tls" => format!(
                "[[listen]]\nurl = \"{url}\"\ncert = {:?}\nkey = {:?}\n",
                pki.cert, pki.key
            ),
            _ => format!("[[listen]]\nurl = \"{url}\"\n"),
        };
    }
    // Tables of the file come after its keys.
    cfg = format!("{toml}\n{cfg}");
    (k.config(&cfg), pki)
}
