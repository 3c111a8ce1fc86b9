//! A synchronous etcd v3 client (feature `etcd`): keys, ranges, transactions, leases and
//! watches, as plain blocking calls (`etcdctl get/put/del/txn/lease/watch`).
//!
//! It speaks JSON to etcd's HTTP gateway (`POST /v3/kv/range`, `/v3/kv/txn`,
//! `/v3/lease/grant`, `/v3/watch`, …; etcd 3.4 and later), over a minimal HTTP/1.1 client
//! of its own on [`std::net::TcpStream`], or on TLS over one: `POST` with
//! `Content-Length` on keep-alive connections, responses framed by `Content-Length` or
//! chunked encoding, watch messages read one JSON object at a time from the chunked
//! stream. There is no async runtime and no HTTP crate, because
//!
//! - the library is synchronous, and a runtime would be a heavy thing to start for a few
//!   requests;
//! - the gateway needs no more HTTP than this;
//! - connections must be openable inside a chosen network namespace
//!   ([`EtcdConfig::dial_in`]): the socket is created on a helper thread inside it and
//!   keeps that namespace, which is one [`Netns::run`](crate::Netns::run) around the
//!   connect here.
//!
//! # Calls
//!
//! Every call has a deadline ([`EtcdConfig::timeout`], 5 s by default, connecting
//! included) and fails with an [`EtcdError`] inside [`crate::Error::Etcd`]: an endpoint
//! that refuses or does not answer in time is [`ErrorKind::Unavailable`], so callers can
//! tell "etcd is down" from "etcd said no" without matching strings.
//!
//! ```no_run
//! use std::time::Duration;
//! use netplumb::etcd::{CmpOp, Compare, Etcd, EtcdConfig, LeaseKeeper, TxnRequest, TxnOp};
//!
//! let etcd = Etcd::connect(EtcdConfig::new("http://10.0.0.5:2379,10.0.0.6:2379")?)?;
//!
//! // etcdctl put / get
//! etcd.put("/netplumb/config", "{}", None)?;
//! let cfg = etcd.get("/netplumb/config")?.expect("written above");
//!
//! // Compare-and-swap: write only if nobody changed it since we read it.
//! let r = etcd.txn(&TxnRequest::new()
//!     .when(Compare::mod_revision("/netplumb/config", CmpOp::Equal, cfg.mod_revision))
//!     .then(TxnOp::put("/netplumb/config", r#"{"mtu":1450}"#, None)))?;
//! assert!(r.succeeded);
//!
//! // A key that lives as long as this process: it expires 10 s after a crash.
//! let lease = LeaseKeeper::grant(&etcd, Duration::from_secs(10))?;
//! etcd.put("/netplumb/hosts/host-a", "10.0.0.5", Some(lease.id()))?;
//! # Ok::<(), netplumb::Error>(())
//! ```
//!
//! # TLS
//!
//! `https://` endpoints are spoken to over TLS (rustls, with its `ring` crypto
//! provider), as etcdctl's `--cacert`, `--cert` and `--key` have it: the servers'
//! certificates are checked against the CA file of [`EtcdConfig::ca_file`] (or the
//! system's CA bundle without one), for the endpoint's host name or IP address (etcd's
//! certificates usually carry IP addresses), and [`EtcdConfig::client_cert`] presents a
//! client certificate to a server that asks for one (`--client-cert-auth`). The files
//! are read once, by [`Etcd::connect`]; one that cannot be used fails there with
//! [`EtcdError::TlsFile`] naming it. A certificate refused either way is
//! [`EtcdError::Certificate`] (kind [`ErrorKind::PermissionDenied`]), naming the
//! endpoint: it is a configuration to fix, not a server that is down.
//!
//! ```no_run
//! use netplumb::etcd::{Etcd, EtcdConfig};
//! let etcd = Etcd::connect(
//!     EtcdConfig::new("https://10.0.0.5:2379,https://10.0.0.6:2379")?
//!         .ca_file("/etc/etcd/pki/ca.pem")
//!         .client_cert("/etc/etcd/pki/client.pem", "/etc/etcd/pki/client-key.pem"),
//! )?;
//! # Ok::<(), netplumb::Error>(())
//! ```
//!
//!
//! # Authentication
//!
//! With [`EtcdConfig::user`] (etcdctl's `--user name:password`), the client asks etcd for
//! a token (`POST /v3/auth/authenticate`) and sends it as the `Authorization` header of
//! every call, watches included. etcd's tokens expire (simple tokens after
//! `--auth-token-ttl` unused, JWTs at their expiry): when etcd refuses one, the client
//! authenticates again and retries the call once, so callers never see an expired
//! token. A wrong user name or password is [`EtcdError::Auth`] (kind
//! [`ErrorKind::PermissionDenied`]), naming the user and never the password; a call the
//! user's roles do not allow is an [`EtcdError::Server`] of the same kind.
//!
//! ```no_run
//! use netplumb::etcd::{Etcd, EtcdConfig};
//! let etcd = Etcd::connect(
//!     EtcdConfig::new("https://10.0.0.5:2379")?
//!         .ca_file("/etc/etcd/pki/ca.pem")
//!         .user("netplumb", std::env::var("ETCD_PASSWORD").unwrap_or_default()),
//! )?;
//! # Ok::<(), netplumb::Error>(())
//! ```
//!
//! [`ErrorKind::Unavailable`]: crate::ErrorKind::Unavailable
//! [`ErrorKind::PermissionDenied`]: crate::ErrorKind::PermissionDenied

mod auth;
pub(crate) mod client;
mod config;
mod error;
pub(crate) mod http;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod reply;
mod stream;
mod tls;
pub(crate) mod watch;

pub use client::Etcd;
pub use config::EtcdConfig;
pub use error::EtcdError;
pub use kv::{
    CmpOp, Compare, KeyValue, RangeResponse, TxnOp, TxnOpResponse, TxnRequest, TxnResponse,
};
pub use lease::LeaseKeeper;
pub use watch::{Event, EventKind, Watch};

/// The range end that makes `key..range_end` cover every key starting with `prefix`: the
/// prefix with its last byte below `0xff` incremented and the rest cut off. For an empty
/// prefix (or all `0xff`), `"\0"`, which etcd reads as "every key from here on".
///
/// ```
/// use netplumb::etcd::prefix_end;
/// assert_eq!(prefix_end(b"/hosts/"), b"/hosts0");
/// assert_eq!(prefix_end(b"a\xff"), b"b");
/// assert_eq!(prefix_end(b""), b"\0");
/// ```
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}
