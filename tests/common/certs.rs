//! Certificates for TLS tests, made at run time by the `openssl` command (Debian package
//! openssl) in a temp dir: a CA, and leaf certificates it signs, with the names and
//! addresses a test asks for. EC P-256 keys, valid for two days.
//!
//! The openssl CLI, rather than a crate, so that the certificates come from a tool
//! independent of the TLS stack under test (rustls and ring), the way etcd's own docs
//! make them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::TempDir;

/// The `openssl req` options of a new key: EC P-256, unencrypted.
const NEW_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    /// The certificate.
    pub cert: PathBuf,
    /// The private key (PKCS#8).
    pub key: PathBuf,
}

/// A folder of certificates; removed on drop.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    /// An empty folder. Skips the current test when `openssl` is missing.
    pub fn new() -> Self {
        super::need("openssl");
        Pki {
            dir: TempDir::new("pki"),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// A path in the folder, for files a test writes itself.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    /// A self-signed CA named `name` (its files are `NAME.pem` and `NAME.key`).
    pub fn ca(&self, name: &str) -> Pair {
        let cnf = self.path(&format!("{name}.cnf"));
        std::fs::write(
            &cnf,
            format!(
                "[req]\ndistinguished_name=dn\nprompt=no\nx509_extensions=ext\n\
                 [dn]\nCN={name}\n\
                 [ext]\nbasicConstraints=critical,CA:TRUE\n\
                 keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n"
            ),
        )
        .expect("write CA config");
        let pair = self.pair(name);
        openssl(
            &[
                &["req", "-x509", "-new"][..],
                &NEW_KEY,
                &[
                    "-days",
                    "2",
                    "-config",
                    s(&cnf),
                    "-keyout",
                    s(&pair.key),
                    "-out",
                    s(&pair.cert),
                ],
            ]
            .concat(),
        );
        pair
    }

    /// A certificate for `name` signed by `ca`, for TLS servers and clients alike
    /// (etcd's gateway uses the server's certificate as a client too), with the subject
    /// alternative names `san` (`"IP:127.0.0.1"`, `"DNS:etcd-0"`, comma-separated).
    pub fn leaf(&self, name: &str, ca: &Pair, san: &str) -> Pair {
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName={san}\n"
            ),
        )
        .expect("write extensions");
        let pair = self.pair(name);
        let csr = self.path(&format!("{name}.csr"));
        openssl(
            &[
                &["req", "-new"][..],
                &NEW_KEY,
                &[
                    "-subj",
                    &format!("/CN={name}"),
                    "-keyout",
                    s(&pair.key),
                    "-out",
                    s(&csr),
                ],
            ]
            .concat(),
        );
        let serial = format!("0x{:016x}", super::Rng::from_clock().next() >> 1);
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&ca.cert),
            "-CAkey",
            s(&ca.key),
            "-set_serial",
            &serial,
            "-days",
            "2",
            "-extfile",
            s(&ext),
            "-out",
            s(&pair.cert),
        ]);
        pair
    }

    fn pair(&self, name: &str) -> Pair {
        Pair {
            cert: self.path(&format!("{name}.pem")),
            key: self.path(&format!("{name}.key")),
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

fn openssl(args: &[&str]) {
    let out = Command::new(super::need("openssl"))
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
