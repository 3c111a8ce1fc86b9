//! User/password authentication (etcdctl's `--user`): the credentials, the token etcd
//! gives for them (`POST /v3/auth/authenticate`, then the token alone as the
//! `Authorization` header of every call), and which answers mean that the token must be
//! renewed.
//!
//! etcd's answers are told apart by its error texts where the gRPC code does not say
//! enough (etcd's own Go client compares the same texts, `rpctypes.Err…`).

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{EtcdError, UNAUTHENTICATED};

/// gRPC's FAILED_PRECONDITION: from `authenticate`, authentication is off.
const FAILED_PRECONDITION: i64 = 9;
/// The token sent is unknown to the server, or has expired (gRPC code 16).
const INVALID_TOKEN: &str = "etcdserver: invalid auth token";
/// No token was sent, and the server has authentication on (gRPC code 3).
const USER_EMPTY: &str = "etcdserver: user name is empty";
/// The token predates a change of users or roles (gRPC code 3).
const OLD_REVISION: &str = "etcdserver: revision of auth store is old";

/// A user name and its password. `Debug` shows the name only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    name: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("name", &self.name)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    pub(super) fn new(name: String, password: String) -> Self {
        Credentials { name, password }
    }

    /// The user name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The body of `POST /v3/auth/authenticate`.
    pub(super) fn request(&self) -> Value {
        json!({ "name": self.name, "password": self.password })
    }

    /// The error of an `authenticate` call that etcd refused (`e`, from its answer), or
    /// `None` when the answer says authentication is off (the calls then need no token,
    /// as etcd's Go client has it).
    pub(super) fn refused(&self, e: EtcdError) -> Option<EtcdError> {
        match e {
            EtcdError::Server {
                code: FAILED_PRECONDITION,
                ..
            } => None,
            EtcdError::Server { message, .. } => Some(EtcdError::Auth {
                user: Some(self.name.clone()),
                message,
            }),
            e => Some(e),
        }
    }
}

/// What a client knows of its token.
#[derive(Debug, Clone, Default)]
pub(super) enum Token {
    /// Not asked for yet, or dropped after etcd refused it.
    #[default]
    Unknown,
    /// etcd has authentication off.
    NotNeeded,
    /// The token to send.
    Held(Arc<str>),
}

impl Token {
    /// The token to send, if any.
    pub(super) fn value(&self) -> Option<Arc<str>> {
        match self {
            Token::Held(t) => Some(t.clone()),
            _ => None,
        }
    }
}

/// The reply of `authenticate`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireToken {
    token: String,
}

/// The token of an `authenticate` reply. It becomes a header line, so only visible
/// ASCII is accepted.
pub(super) fn parse_token(body: &[u8]) -> Result<Token, EtcdError> {
    let w: WireToken = serde_json::from_slice(body)
        .map_err(|e| EtcdError::protocol("authenticate", e.to_string()))?;
    if w.token.is_empty() || !w.token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(EtcdError::protocol(
            "authenticate",
            "the token is empty or not printable ASCII",
        ));
    }
    Ok(Token::Held(w.token.into()))
}

/// Whether etcd's answer `e` says that the token sent (or its absence) is not accepted,
/// so that authenticating again may help.
pub(super) fn token_rejected(e: &EtcdError) -> bool {
    match e {
        EtcdError::Server { code, message, .. } => {
            *code == UNAUTHENTICATED
                || [INVALID_TOKEN, USER_EMPTY, OLD_REVISION].contains(&message.as_str())
        }
        _ => false,
    }
}

/// `e`, or [`EtcdError::Auth`] if it refuses the token (or its absence) and
/// authenticating again did not cure it, or no user is configured to try.
pub(super) fn explain(e: EtcdError, user: Option<&Credentials>) -> EtcdError {
    if !token_rejected(&e) {
        return e;
    }
    match e {
        EtcdError::Server { message, .. } => EtcdError::Auth {
            user: user.map(|u| u.name.clone()),
            message,
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: i64, message: &str) -> EtcdError {
        EtcdError::Server {
            op: "range",
            code,
            message: message.into(),
        }
    }

    #[test]
    fn which_answers_renew_the_token() {
        assert!(token_rejected(&server(16, INVALID_TOKEN)));
        assert!(token_rejected(&server(3, USER_EMPTY)));
        assert!(token_rejected(&server(3, OLD_REVISION)));
        assert!(!token_rejected(&server(7, "etcdserver: permission denied")));
        assert!(!token_rejected(&server(
            3,
            "etcdserver: key is not provided"
        )));
        let e = EtcdError::Timeout {
            endpoint: "a:1".into(),
            op: "range",
        };
        assert!(!token_rejected(&e));
    }

    #[test]
    fn refusals_name_the_user_not_the_password() {
        let c = Credentials::new("root".into(), "hunter2".into());
        let e = c
            .refused(server(3, "etcdserver: authentication failed"))
            .unwrap();
        let text = format!("{e} {e:?} {c:?}");
        assert!(text.contains("\"root\""), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(c.refused(server(9, "auth is not enabled")).is_none());
        let e = explain(server(3, USER_EMPTY), None);
        assert!(e.to_string().contains("no user was given"), "{e}");
    }

    #[test]
    fn tokens_must_be_printable() {
        assert!(parse_token(br#"{"token":"abc.12"}"#).is_ok());
        assert!(parse_token(br#"{"token":"a\r\nX-Evil: 1"}"#).is_err());
        assert!(parse_token(br#"{"token":""}"#).is_err());
        assert!(parse_token(b"nope").is_err());
    }
}
