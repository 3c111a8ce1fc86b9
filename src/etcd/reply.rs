//! The shape of the gateway's replies shared by every call: its error body, the
//! `{"result": …}` / `{"error": …}` envelope of streamed messages, and how a failed
//! exchange becomes an [`EtcdError`].

use std::io;

use serde::Deserialize;

use super::error::{EtcdError, PERMISSION_DENIED};
use super::http::HttpError;

/// Whether an I/O error is a read or write timeout (`EAGAIN` from a socket timeout).
pub(crate) fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// The error of an HTTP-level failure on a connection to `endpoint`.
pub(crate) fn http_err(endpoint: &str, op: &'static str, e: HttpError) -> EtcdError {
    match e {
        HttpError::Io(e) => EtcdError::io(endpoint, op, e),
        HttpError::Framing(d) => EtcdError::protocol(op, d),
    }
}

/// The gateway's error body: `{"error": …, "message": …, "code": N}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct WireError {
    pub(super) message: String,
    pub(super) error: String,
    pub(super) code: i64,
    /// In errors inside a stream.
    pub(super) grpc_code: i64,
}

impl WireError {
    pub(super) fn into_error(self, op: &'static str) -> EtcdError {
        let message = if self.message.is_empty() {
            self.error
        } else {
            self.message
        };
        let code = if self.code != 0 {
            self.code
        } else {
            self.grpc_code
        };
        EtcdError::Server { op, code, message }
    }
}

/// The error of a response that is not a 200.
pub(crate) fn status_err(op: &'static str, status: u16, body: &[u8]) -> EtcdError {
    match serde_json::from_slice::<WireError>(body) {
        Ok(e) if !(e.message.is_empty() && e.error.is_empty()) => e.into_error(op),
        _ => EtcdError::protocol(op, format!("HTTP status {status}: {}", snippet(body))),
    }
}

/// The start of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    format!("{s:?}")
}

/// The gRPC status written out in a watch's `cancel_reason`: `rpc error: code =
/// Unauthenticated desc = etcdserver: invalid auth token` becomes code 16 and the text
/// after `desc = `. etcd's own reasons without that frame are returned as they are, with
/// code 0, except "permission denied" (code 7, the user may not watch that range).
pub(crate) fn cancel_status(reason: &str) -> (i64, String) {
    let Some(rest) = reason.strip_prefix("rpc error: code = ") else {
        let denied = reason == "etcdserver: permission denied";
        let code = if denied { PERMISSION_DENIED } else { 0 };
        return (code, reason.to_string());
    };
    let (name, desc) = rest.split_once(" desc = ").unwrap_or((rest, ""));
    let code = GRPC_CODES
        .iter()
        .position(|c| *c == name.trim())
        .map_or(0, |i| i as i64);
    (code, desc.to_string())
}

/// gRPC's status codes by number, as Go's `codes.Code` prints them.
const GRPC_CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// A message of a streaming call: `{"result": …}` or `{"error": …}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Streamed<T> {
    pub(super) result: Option<T>,
    pub(super) error: Option<WireError>,
}

impl<T> Streamed<T> {
    pub(crate) fn into_result(self, op: &'static str) -> Result<T, EtcdError> {
        match (self.result, self.error) {
            (_, Some(e)) => Err(e.into_error(op)),
            (Some(r), None) => Ok(r),
            (None, None) => Err(EtcdError::protocol(op, "neither result nor error")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_reasons_carry_their_code() {
        let r = "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token";
        assert_eq!(
            cancel_status(r),
            (16, "etcdserver: invalid auth token".to_string())
        );
        let r = "rpc error: code = InvalidArgument desc = etcdserver: user name is empty";
        assert_eq!(cancel_status(r).0, 3);
        assert_eq!(cancel_status("etcdserver: permission denied").0, 7);
        assert_eq!(
            cancel_status("rpc error: code = Bogus desc = x"),
            (0, "x".into())
        );
        assert_eq!(
            cancel_status("mvcc: required revision"),
            (0, "mvcc: required revision".into())
        );
    }
}
