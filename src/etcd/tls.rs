//! The TLS settings of [`EtcdConfig`](super::EtcdConfig) (etcdctl's `--cacert`, `--cert`
//! and `--key`) and the rustls client configuration made from their PEM files, once, when
//! a client is made.
//!
//! rustls runs with its `ring` provider, passed explicitly rather than installed as the
//! process default, so an application that uses rustls with another provider is not
//! disturbed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::error::EtcdError;

/// Where the system's CA bundle is, by distribution (the first one found is used when no
/// CA file is given): Debian and Ubuntu, Fedora and RHEL, openSUSE, Alpine.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The PEM files of a TLS configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TlsFiles {
    /// The CA certificates that sign the servers' certificates (`--cacert`).
    pub(super) ca: Option<PathBuf>,
    /// The client certificate and its key (`--cert`, `--key`), for mutual TLS.
    pub(super) client: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    /// Whether any file is set.
    pub(super) fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }

    /// Reads the files and makes the rustls client configuration. Without a CA file, the
    /// servers are checked against the system's CA bundle (`SSL_CERT_FILE`, or the
    /// distribution's file), as etcdctl does.
    pub(super) fn client_config(&self) -> Result<Arc<ClientConfig>, EtcdError> {
        let client = match &self.client {
            Some((cert, key)) => {
                Some((certificates(cert, "client certificate")?, private_key(key)?))
            }
            None => None,
        };
        let roots = match &self.ca {
            Some(path) => ca_roots(path)?,
            None => system_roots()?,
        };
        // rustls 0.23.48 deprecates the ring provider because it has no post-quantum key
        // exchange; it is kept because it builds from plain C and assembly (aws-lc-rs
        // needs cmake and more), and etcd (Go 1.19 in etcd 3.4) offers none either.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| EtcdError::protocol("TLS setup", e.to_string()))?
            .with_root_certificates(roots);
        let config = match (client, &self.client) {
            (Some((chain, der)), Some((cert, key))) => builder
                .with_client_auth_cert(chain, der)
                .map_err(|e| key_error(cert, key, &e))?,
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

fn file_error(what: &'static str, path: &Path, reason: impl Into<String>) -> EtcdError {
    EtcdError::TlsFile {
        what,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|e| file_error(what, path, e.to_string()))
}

/// Every certificate of a PEM file; at least one.
fn certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, EtcdError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|e| file_error(what, path, format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            what,
            path,
            "has no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

fn ca_roots(path: &Path) -> Result<RootCertStore, EtcdError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, "CA file")? {
        roots
            .add(cert)
            .map_err(|e| file_error("CA file", path, format!("has a bad certificate: {e}")))?;
    }
    Ok(roots)
}

/// The CA bundle of the system; certificates rustls cannot use are skipped.
fn system_roots() -> Result<RootCertStore, EtcdError> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let found = from_env.or_else(|| {
        SYSTEM_CA_FILES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    });
    let Some(path) = found else {
        return Err(file_error(
            "CA file",
            Path::new(SYSTEM_CA_FILES[0]),
            "not given (EtcdConfig::ca_file), and the system has no CA bundle",
        ));
    };
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates(&path, "system CA bundle")?);
    if added == 0 {
        return Err(file_error(
            "system CA bundle",
            &path,
            "has no certificate rustls can use",
        ));
    }
    Ok(roots)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, EtcdError> {
    let bytes = read("client key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let reason = match e {
            pem::Error::NoItemsFound => {
                "has no PEM private key (PKCS#8, RSA or EC PRIVATE KEY)".to_string()
            }
            e => format!("is not valid PEM: {e}"),
        };
        file_error("client key", path, reason)
    })
}

/// The error of a certificate and key rustls would not pair.
fn key_error(cert: &Path, key: &Path, e: &rustls::Error) -> EtcdError {
    use rustls::{Error, InconsistentKeys};
    let reason = match e {
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            format!("does not match the certificate in {}", cert.display())
        }
        e => format!(
            "cannot be used with the certificate in {}: {e}",
            cert.display()
        ),
    };
    file_error("client key", key, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netplumb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn err(files: TlsFiles) -> String {
        let e = files.client_config().unwrap_err();
        assert!(matches!(e, EtcdError::TlsFile { .. }), "{e:?}");
        e.to_string()
    }

    #[test]
    fn bad_files_are_named() {
        let missing = PathBuf::from("/nonexistent/ca.pem");
        let msg = err(TlsFiles {
            ca: Some(missing.clone()),
            client: None,
        });
        assert!(msg.contains("CA file /nonexistent/ca.pem"), "{msg}");

        let text = temp("not-pem.txt", "just some text\n");
        let msg = err(TlsFiles {
            ca: Some(text.clone()),
            client: None,
        });
        assert!(msg.contains(&text.display().to_string()), "{msg}");
        assert!(msg.contains("no PEM certificate"), "{msg}");

        let broken = temp(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let msg = err(TlsFiles {
            ca: Some(broken.clone()),
            client: None,
        });
        assert!(msg.contains("broken.pem: has a bad certificate"), "{msg}");

        // The certificate parses as PEM; the key is not a key (read before any CA file).
        let msg = err(TlsFiles {
            ca: Some(missing),
            client: Some((broken.clone(), text.clone())),
        });
        assert!(msg.contains("client key"), "{msg}");
        assert!(msg.contains("no PEM private key"), "{msg}");
        std::fs::remove_dir_all(text.parent().unwrap()).unwrap();
    }
}
