//! The specification's error result: a code, a message and details.

use serde_json::json;

/// A failure as the specification reports it (`code`, `msg`, `details`).
#[derive(Debug)]
pub struct CniError {
    /// 1 incompatible version, 2 unsupported field, 3 unknown container, 4 invalid
    /// environment, 5 I/O, 6 decode, 7 invalid configuration, 11 try again later, 50 not
    /// available (STATUS), 100 and up: this plugin's own.
    pub code: u32,
    /// What failed.
    pub msg: String,
    /// More about it.
    pub details: String,
}

/// A command's outcome.
pub type Res<T = ()> = Result<T, CniError>;

/// This plugin's own code: the library refused or failed (its message says why).
pub const FAILED: u32 = 100;

impl CniError {
    /// An error with `code`.
    pub fn new(code: u32, msg: impl Into<String>, details: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// A library failure while doing `what`, with the code its kind calls for.
    pub fn lib(what: &str, e: &netplumb::Error) -> Self {
        use netplumb::error::ErrorKind;
        let code = match e.kind() {
            ErrorKind::Invalid | ErrorKind::Conflict | ErrorKind::Exists => 7,
            ErrorKind::Busy | ErrorKind::Unavailable | ErrorKind::Exhausted => 11,
            _ if matches!(e, netplumb::Error::Io { .. }) => 5,
            _ => FAILED,
        };
        CniError::new(code, format!("{what}: {e}"), "")
    }

    /// The error result, in the configuration's version.
    pub fn to_json(&self, version: &str) -> serde_json::Value {
        json!({
            "cniVersion": version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}
