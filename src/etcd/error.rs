//! [`EtcdError`]: the closed set of ways a call to etcd can fail.

use std::io;
use std::path::PathBuf;

use crate::error::ErrorKind;

/// gRPC's DEADLINE_EXCEEDED.
const DEADLINE_EXCEEDED: i64 = 4;
/// gRPC's PERMISSION_DENIED (etcd: the user lacks a role that allows the call).
pub(super) const PERMISSION_DENIED: i64 = 7;
/// gRPC's UNAVAILABLE (etcd: no leader, leader changed, request timed out).
const UNAVAILABLE: i64 = 14;
/// gRPC's UNAUTHENTICATED (etcd: the token is invalid or has expired).
pub(super) const UNAUTHENTICATED: i64 = 16;

/// Why a call to etcd failed.
///
/// It converts into [`crate::Error`] with `?` (as [`crate::Error::Etcd`]);
/// [`EtcdError::kind`] classifies it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// No endpoint accepted a connection, or a connection broke before the answer came.
    #[error("etcd at {endpoint} unreachable: {source}")]
    Unreachable {
        /// The endpoint (`host:port`), or every endpoint tried, comma-separated.
        endpoint: String,
        /// The system error.
        source: io::Error,
    },
    /// The server did not answer within the configured timeout.
    #[error("etcd at {endpoint}: {op} timed out")]
    Timeout {
        /// The endpoint (`host:port`).
        endpoint: String,
        /// The call (`"range"`, `"txn"`, `"lease grant"`, …).
        op: &'static str,
    },
    /// The server refused the call.
    #[error("etcd {op}: {message} (code {code})")]
    Server {
        /// The call.
        op: &'static str,
        /// The gRPC status code (3: invalid argument, 5: not found, 11: out of range, …).
        code: i64,
        /// The server's message.
        message: String,
    },
    /// The answer was not HTTP or JSON as etcd's gateway speaks it.
    #[error("etcd {op}: malformed reply: {detail}")]
    Protocol {
        /// The call.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A watch (or a read at an old revision) asked for history the server has compacted
    /// away; start again from `revision` or later.
    #[error("etcd revision compacted: the oldest revision available is {revision}")]
    Compacted {
        /// The compaction revision: the oldest one still available.
        revision: i64,
    },
    /// etcd refused the user name and password of
    /// [`EtcdConfig::user`](super::EtcdConfig::user), or has authentication on and the
    /// configuration names no user. The password is never part of the message.
    #[error("{}", auth_text(user.as_deref(), message))]
    Auth {
        /// The user name given, if any.
        user: Option<String>,
        /// The server's message.
        message: String,
    },
    /// A certificate was not accepted while setting up TLS with `endpoint`: the server's,
    /// by this client (not signed by the CA of
    /// [`EtcdConfig::ca_file`](super::EtcdConfig::ca_file), not issued for the
    /// endpoint's host name or address, expired), or this client's (or its lack of one),
    /// by the server.
    #[error("etcd at {endpoint}: TLS certificate not accepted: {reason}")]
    Certificate {
        /// The endpoint (`host:port`).
        endpoint: String,
        /// What was refused, and rustls's reason.
        reason: String,
    },
    /// TLS with `endpoint` failed for another reason than a certificate: most often, the
    /// endpoint does not speak TLS (an `http://` endpoint given as `https://`).
    #[error("etcd at {endpoint}: TLS failed: {reason}")]
    Tls {
        /// The endpoint (`host:port`).
        endpoint: String,
        /// rustls's reason.
        reason: String,
    },
    /// A TLS file of the configuration could not be used: it is missing or unreadable,
    /// is not PEM, holds nothing of its kind, or (a key) does not match its certificate.
    #[error("etcd {what} {}: {reason}", path.display())]
    TlsFile {
        /// `"CA file"`, `"client certificate"`, `"client key"`, or `"system CA bundle"`
        /// (used when no CA file is given).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The text of [`EtcdError::Auth`].
fn auth_text(user: Option<&str>, message: &str) -> String {
    match user {
        Some(user) => format!("etcd authentication failed for user {user:?}: {message}"),
        None => format!(
            "etcd requires authentication and no user was given (EtcdConfig::user): {message}"
        ),
    }
}

impl EtcdError {
    /// The crate-wide class of this failure:
    ///
    /// - [`ErrorKind::Unavailable`]: an unreachable or silent server, or one that answers
    ///   "unavailable" (gRPC codes 14 and 4: no leader yet, leader changed, request timed
    ///   out inside the cluster);
    /// - [`ErrorKind::PermissionDenied`]: credentials refused, which no retry fixes:
    ///   [`Auth`](EtcdError::Auth), [`Certificate`](EtcdError::Certificate), and a server
    ///   answer of gRPC code 7 (the user's roles do not allow the call) or 16 (not
    ///   authenticated);
    /// - [`ErrorKind::Invalid`]: a [`TlsFile`](EtcdError::TlsFile) that cannot be used;
    /// - [`ErrorKind::Other`]: everything else.
    ///
    /// ```
    /// use netplumb::etcd::EtcdError;
    /// use netplumb::ErrorKind;
    /// let e = EtcdError::Timeout { endpoint: "10.0.0.5:2379".into(), op: "put" };
    /// assert_eq!(e.kind(), ErrorKind::Unavailable);
    /// let e = EtcdError::Auth { user: Some("root".into()), message: "invalid password".into() };
    /// assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            EtcdError::Unreachable { .. } | EtcdError::Timeout { .. } => ErrorKind::Unavailable,
            EtcdError::Server {
                code: UNAVAILABLE | DEADLINE_EXCEEDED,
                ..
            } => ErrorKind::Unavailable,
            EtcdError::Server {
                code: PERMISSION_DENIED | UNAUTHENTICATED,
                ..
            }
            | EtcdError::Auth { .. }
            | EtcdError::Certificate { .. } => ErrorKind::PermissionDenied,
            EtcdError::TlsFile { .. } => ErrorKind::Invalid,
            _ => ErrorKind::Other,
        }
    }

    pub(super) fn protocol(op: &'static str, detail: impl Into<String>) -> Self {
        EtcdError::Protocol {
            op,
            detail: detail.into(),
        }
    }

    /// The error of an I/O failure on a connection to `endpoint`: a timeout, a broken
    /// connection, or a TLS failure (a [`rustls::Error`] inside).
    pub(super) fn io(endpoint: &str, op: &'static str, e: io::Error) -> Self {
        if let Some(tls) = EtcdError::tls_failure(endpoint, &e) {
            return tls;
        }
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => EtcdError::Timeout {
                endpoint: endpoint.to_string(),
                op,
            },
            _ => EtcdError::Unreachable {
                endpoint: endpoint.to_string(),
                source: e,
            },
        }
    }

    /// The error of a TLS failure with `endpoint`, if `e` is one (it wraps a
    /// [`rustls::Error`]).
    pub(super) fn tls_failure(endpoint: &str, e: &io::Error) -> Option<Self> {
        let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(EtcdError::tls(endpoint, tls))
    }

    /// The error of a TLS failure with `endpoint`, with a hint at the usual cause.
    fn tls(endpoint: &str, e: &rustls::Error) -> Self {
        use rustls::{AlertDescription as Alert, CertificateError as Cert, Error as E};
        let endpoint = endpoint.to_string();
        let hint = match e {
            E::InvalidCertificate(Cert::UnknownIssuer) => {
                "the server's certificate is not signed by a CA this client trusts \
                 (EtcdConfig::ca_file)"
            }
            E::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
                "the server's certificate is not issued for this host name or address"
            }
            E::InvalidCertificate(
                Cert::Expired
                | Cert::ExpiredContext { .. }
                | Cert::NotValidYet
                | Cert::NotValidYetContext { .. },
            ) => "the server's certificate has expired or is not valid yet",
            E::InvalidCertificate(_) => "the server's certificate is not valid",
            E::NoCertificatesPresented => "the server sent no certificate",
            E::AlertReceived(
                Alert::BadCertificate
                | Alert::CertificateRequired
                | Alert::UnsupportedCertificate
                | Alert::CertificateRevoked
                | Alert::CertificateExpired
                | Alert::CertificateUnknown
                | Alert::UnknownCA
                | Alert::AccessDenied,
            ) => {
                "the server refused this client's certificate, or the lack of one \
                 (EtcdConfig::client_cert)"
            }
            E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
                let reason = format!("the endpoint does not speak TLS (an http:// one?): {e}");
                return EtcdError::Tls { endpoint, reason };
            }
            _ => {
                let reason = e.to_string();
                return EtcdError::Tls { endpoint, reason };
            }
        };
        EtcdError::Certificate {
            endpoint,
            reason: format!("{hint} ({e})"),
        }
    }
}
