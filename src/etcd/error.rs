//! [`EtcdError`]: the closed set of ways a call to etcd can fail.

use std::io;

use crate::error::ErrorKind;

/// gRPC's DEADLINE_EXCEEDED.
const DEADLINE_EXCEEDED: i64 = 4;
/// gRPC's UNAVAILABLE (etcd: no leader, leader changed, request timed out).
const UNAVAILABLE: i64 = 14;

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
}

impl EtcdError {
    /// The crate-wide class of this failure: an unreachable or silent server, or one
    /// that answers "unavailable" (gRPC codes 14 and 4: no leader yet, leader changed,
    /// request timed out inside the cluster), is [`ErrorKind::Unavailable`]; everything
    /// else is [`ErrorKind::Other`].
    ///
    /// ```
    /// use netplumb::etcd::EtcdError;
    /// use netplumb::ErrorKind;
    /// let e = EtcdError::Timeout { endpoint: "10.0.0.5:2379".into(), op: "put" };
    /// assert_eq!(e.kind(), ErrorKind::Unavailable);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            EtcdError::Unreachable { .. } | EtcdError::Timeout { .. } => ErrorKind::Unavailable,
            EtcdError::Server {
                code: UNAVAILABLE | DEADLINE_EXCEEDED,
                ..
            } => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        }
    }

    pub(super) fn protocol(op: &'static str, detail: impl Into<String>) -> Self {
        EtcdError::Protocol {
            op,
            detail: detail.into(),
        }
    }

    /// The error of an I/O failure on a connection to `endpoint`: a timeout, or a broken
    /// connection.
    pub(super) fn io(endpoint: &str, op: &'static str, e: io::Error) -> Self {
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
}
