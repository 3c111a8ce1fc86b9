//! The crate's error type: every kernel failure names the operation, the object (as the
//! equivalent `ip` command), the errno and the kernel's extended ACK message.

use std::fmt;
use std::path::PathBuf;

mod errno;
pub use errno::Errno;
pub(crate) use errno::IntoErrno;

#[cfg(feature = "etcd")]
use crate::etcd::EtcdError;
use crate::ipam::IpamError;
use crate::ports::{AllocError, PortSpecError};
use crate::wire;

/// The text of [`Error::Conflict`].
fn conflict_text(object: Object, name: &str, network: &str, differs: &[&str]) -> String {
    let what = differs.join(", ");
    match object {
        Object::Network => {
            format!("{object} {name} is defined with another {what}; it has containers attached")
        }
        _ => format!(
            "{object} {name} is already connected to network {network} with another {what}; disconnect it first"
        ),
    }
}

/// What the library was doing when the kernel refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// `ip link add`.
    AddLink,
    /// `ip link set`.
    SetLink,
    /// `ip link del`.
    DelLink,
    /// `ip link show`.
    GetLink,
    /// `ip address add`.
    AddAddr,
    /// `ip address replace`.
    ReplaceAddr,
    /// `ip address del`.
    DelAddr,
    /// `ip address show`.
    GetAddr,
    /// `ip route add`.
    AddRoute,
    /// `ip route replace`.
    ReplaceRoute,
    /// `ip route del`.
    DelRoute,
    /// `ip route show`.
    GetRoute,
    /// `ip netns set`.
    SetNsid,
    /// `ip netns list-id`.
    GetNsid,
    /// Opening a netlink socket.
    Socket,
    /// Sending or receiving on a netlink socket.
    Transfer,
    /// `ip neigh replace` / `bridge fdb append`.
    AddNeigh,
    /// `ip neigh del` / `bridge fdb del`.
    DelNeigh,
    /// `ip neigh show` / `bridge fdb show`.
    GetNeigh,
    /// Applying an nf_tables batch.
    Firewall,
    /// Reading nf_tables objects back.
    GetFirewall,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::AddLink => "add link",
            Op::SetLink => "set link",
            Op::DelLink => "delete link",
            Op::GetLink => "get link",
            Op::AddAddr => "add address",
            Op::ReplaceAddr => "replace address",
            Op::DelAddr => "delete address",
            Op::GetAddr => "list addresses",
            Op::AddRoute => "add route",
            Op::ReplaceRoute => "replace route",
            Op::DelRoute => "delete route",
            Op::GetRoute => "list routes",
            Op::SetNsid => "set netnsid",
            Op::GetNsid => "get netnsid",
            Op::Socket => "open netlink socket",
            Op::Transfer => "netlink transfer",
            Op::AddNeigh => "add neighbour",
            Op::DelNeigh => "delete neighbour",
            Op::GetNeigh => "list neighbours",
            Op::Firewall => "apply firewall batch",
            Op::GetFirewall => "list firewall objects",
        })
    }
}

/// A coarse classification of failures, so callers never compare errno numbers or strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object already exists (`EEXIST`).
    Exists,
    /// The object does not exist (`ENODEV`, `ENOENT`, `ESRCH`, `EADDRNOTAVAIL`, a lookup).
    NotFound,
    /// The object is in use or in a state that forbids this (`EBUSY`).
    Busy,
    /// Missing privileges (`EPERM`, `EACCES`), or credentials refused by a remote store
    /// (etcd: a wrong password, a certificate not accepted, a user's roles).
    PermissionDenied,
    /// The kernel or the library rejected the input (`EINVAL`, `ERANGE`, validation).
    Invalid,
    /// The kernel lacks the feature or the link kind (`EOPNOTSUPP`).
    NotSupported,
    /// A pool ran out: no free address in a network, no free subnet in the address pools,
    /// no free host port in a range.
    Exhausted,
    /// A remote store could not be reached or did not answer in time.
    Unavailable,
    /// The object exists, but not as the request asks ([`Error::Conflict`]).
    Conflict,
    /// Anything else.
    Other,
}

/// The error of every fallible netplumb call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused a request.
    #[error("{op} ({target}): {} ({errno:?}){}", errno.desc(), ExtackSuffix(extack))]
    Kernel {
        /// What was being done.
        op: Op,
        /// The object, as the equivalent `ip` command line.
        target: String,
        /// The kernel's error.
        errno: Errno,
        /// The kernel's extended ACK message, if it sent one.
        extack: Option<String>,
    },
    /// One request of a batch failed; the requests before it were applied.
    #[error("request {index} of a batch of {count}: {source}")]
    Batch {
        /// Position of the failed request in the batch (0-based).
        index: usize,
        /// Number of requests in the batch.
        count: usize,
        /// Why it failed.
        source: Box<Error>,
    },
    /// Input rejected before any syscall.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidInput {
        /// Which parameter.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A lookup found nothing: `link veth0 not found`.
    #[error("{object} {name}{} not found", Detail(detail))]
    NotFound {
        /// What kind of object was looked for.
        object: Object,
        /// Its name (or address, or number), as given.
        name: String,
        /// Where it was looked for, when that is part of the message.
        detail: Option<String>,
    },
    /// The object already exists: `network mynet already exists`.
    #[error("{object} {name}{} already exists", Detail(detail))]
    Exists {
        /// What kind of object.
        object: Object,
        /// Its name (or number).
        name: String,
        /// What the existing one is, when that is part of the message.
        detail: Option<String>,
    },
    /// The object is in use: `network mynet has active endpoints (web, db)`.
    #[error("{object} {name} has active endpoints ({})", endpoints.join(", "))]
    Busy {
        /// What kind of object.
        object: Object,
        /// Its name.
        name: String,
        /// What uses it (the names of the containers attached to a network).
        endpoints: Vec<String>,
    },
    /// A container is already connected to a network, and the request differs from its
    /// attachment: `container 3f2a1c0d9e8b is already connected to network n with
    /// another namespace, ports; disconnect it first`; or a network is defined otherwise
    /// than asked while containers use it: `network n is defined with another subnets;
    /// it has containers attached`. Nothing was changed. Its kind is
    /// [`ErrorKind::Conflict`], not [`ErrorKind::Exists`], so that a caller that takes
    /// "exists" for "done" does not take this one for done.
    #[error("{}", conflict_text(*object, name, network, differs))]
    Conflict {
        /// What kind of object ([`Object::Container`], or [`Object::Network`] from
        /// `Host::ensure_network`).
        object: Object,
        /// Its name (the container's id).
        name: String,
        /// The network it is connected to.
        network: String,
        /// What differs between the attachment and the request: `namespace`, `name`,
        /// `interface name`, `ip`, `ip6`, `mac`, `ports`, `exposed ports`, `links`,
        /// `aliases`, `files`, `hostname`.
        differs: Vec<&'static str>,
    },
    /// A namespace path or name could not be used.
    #[error("network namespace {}: {reason}{}", path.display(), errno.map(|e| format!(" ({e:?})")).unwrap_or_default())]
    Netns {
        /// The path (or name) of the namespace.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
        /// The system error behind it, if any.
        errno: Option<Errno>,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The system error.
        source: std::io::Error,
    },
    /// An address management call failed.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// A malformed `-p` port spec; the error names the bad part.
    #[error(transparent)]
    PortSpec(#[from] PortSpecError),
    /// A host port could not be published.
    #[error(transparent)]
    PortAlloc(#[from] AllocError),
    /// A call to etcd failed (feature `etcd`).
    #[cfg(feature = "etcd")]
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// The kernel sent a reply we could not parse.
    #[error("malformed netlink reply: {0}")]
    Protocol(#[from] wire::Error),
    /// A dump kept being interrupted by concurrent changes.
    #[error("dump of {0} interrupted by concurrent changes, retries exhausted")]
    DumpInterrupted(&'static str),
    /// The calling context lacks privileges for a namespace operation.
    #[error("{what}: {} ({errno:?}); needs root or CAP_NET_ADMIN+CAP_SYS_ADMIN", errno.desc())]
    Privilege {
        /// What was attempted.
        what: &'static str,
        /// The system error.
        errno: Errno,
    },
    /// A step failed and the steps before it were rolled back, some of them not cleanly.
    #[error("{original} (rollback left {} failure(s): {})", undo.len(), undo.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    RolledBack {
        /// The failure that started the rollback.
        original: Box<Error>,
        /// The inverses that failed.
        undo: Vec<Error>,
    },
    /// A failure injected by the test-only fault hook (feature `_fault-injection`, unstable):
    /// step `step` (0-based) of the operation, named `what`, was armed to fail. Its
    /// [`kind`](Error::kind) is [`ErrorKind::Other`]: it is none of busy, not found or
    /// exists, so no caller mistakes it for a real failure it would retry or ignore.
    #[cfg(feature = "_fault-injection")]
    #[error("injected fault at step {step} ({what})")]
    Injected {
        /// The armed step, counted from 0 since the hook was armed.
        step: usize,
        /// The step's name.
        what: &'static str,
    },
}

/// The kind of object an error names ([`Error::NotFound`], [`Error::Exists`],
/// [`Error::Busy`]), so that callers match on it rather than on the message. Its
/// `Display` is the word the messages use.
///
/// ```
/// use netplumb::error::{Error, Object};
/// let e = Error::not_found(Object::Network, "mynet");
/// assert_eq!(e.to_string(), "network mynet not found");
/// assert!(matches!(e, Error::NotFound { object: Object::Network, ref name, .. } if name == "mynet"));
/// assert!(e.is_not_found());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Object {
    /// A link (`link`).
    Link,
    /// The other end of a veth (`peer of`, followed by the veth's name).
    VethPeer,
    /// A bridge network (`network`).
    Network,
    /// The address pool (IPAM network) of a bridge network (`address pool of network`,
    /// followed by the network's name).
    AddressPool,
    /// A container, by name or id (`container`).
    Container,
    /// An overlay network (`overlay network`).
    OverlayNetwork,
    /// A VXLAN network identifier (`VNI`).
    Vni,
    /// The underlay address of an overlay host (`underlay address`).
    UnderlayAddress,
    /// An address on a link (`address`, followed by the address with its prefix).
    Address,
    /// A route (`route`, followed by its destination and gateway: `default via 10.0.0.1`).
    Route,
    /// A container's name on a network (`endpoint with name`), as Docker's
    /// "endpoint with name web already exists in network n".
    Endpoint,
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Object::Link => "link",
            Object::VethPeer => "peer of",
            Object::Network => "network",
            Object::AddressPool => "address pool of network",
            Object::Container => "container",
            Object::OverlayNetwork => "overlay network",
            Object::Vni => "VNI",
            Object::UnderlayAddress => "underlay address",
            Object::Address => "address",
            Object::Route => "route",
            Object::Endpoint => "endpoint with name",
        })
    }
}

/// A detail after an object's name, with its space.
struct Detail<'a>(&'a Option<String>);

impl fmt::Display for Detail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(d) => write!(f, " {d}"),
            None => Ok(()),
        }
    }
}

struct ExtackSuffix<'a>(&'a Option<String>);

impl fmt::Display for ExtackSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(m) => write!(f, ": {m}"),
            None => Ok(()),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// "Not there" as an answer rather than a failure, for calls on objects that may already
/// be gone: one name for what teardown, undo and lookups all mean by it.
///
/// Implemented for [`Result`] (where "not there" is [`Error::is_not_found`]) and for
/// [`std::io::Result`] (where it is [`std::io::ErrorKind::NotFound`]).
///
/// ```
/// use netplumb::error::ResultExt;
/// use netplumb::{Error, Result};
/// let gone: Result<()> = Err(Error::Kernel {
///     op: netplumb::error::Op::DelLink,
///     target: "ip link del dev veth0".into(),
///     errno: netplumb::error::Errno::ENODEV,
///     extack: None,
/// });
/// assert!(gone.or_gone().is_ok()); // deleting a link already deleted: done
/// let missing = std::fs::read_to_string("/nonexistent/hosts").optional()?;
/// assert_eq!(missing, None);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ResultExt<T, E> {
    /// `Ok(())` when the object is already gone (the call's own value is dropped).
    fn or_gone(self) -> std::result::Result<(), E>;
    /// `Ok(None)` when the object is not there, `Ok(Some(value))` when it is.
    fn optional(self) -> std::result::Result<Option<T>, E>;
}

impl<T> ResultExt<T, Error> for Result<T> {
    fn or_gone(self) -> Result<()> {
        self.optional().map(drop)
    }

    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<T> ResultExt<T, std::io::Error> for std::io::Result<T> {
    fn or_gone(self) -> std::io::Result<()> {
        self.optional().map(drop)
    }

    fn optional(self) -> std::io::Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Error {
    /// Builds an [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, value: impl fmt::Display, reason: &'static str) -> Self {
        Error::InvalidInput {
            field,
            value: value.to_string(),
            reason,
        }
    }

    /// Builds an [`Error::NotFound`]: no `object` named `name`.
    pub fn not_found(object: Object, name: impl fmt::Display) -> Self {
        Error::NotFound {
            object,
            name: name.to_string(),
            detail: None,
        }
    }

    /// Builds an [`Error::Exists`]: an `object` named `name` exists already.
    ///
    /// ```
    /// use netplumb::error::{Error, Object};
    /// let e = Error::exists(Object::OverlayNetwork, "ov1");
    /// assert_eq!(e.to_string(), "overlay network ov1 already exists");
    /// assert!(e.is_exists());
    /// ```
    pub fn exists(object: Object, name: impl fmt::Display) -> Self {
        Error::Exists {
            object,
            name: name.to_string(),
            detail: None,
        }
    }

    /// The kind and name of the object this error names as missing, existing or in use.
    pub fn object(&self) -> Option<(Object, &str)> {
        match self {
            Error::NotFound { object, name, .. }
            | Error::Exists { object, name, .. }
            | Error::Busy { object, name, .. }
            | Error::Conflict { object, name, .. } => Some((*object, name)),
            Error::Batch { source, .. } => source.object(),
            Error::RolledBack { original, .. } => original.object(),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The system error behind this failure, if there is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Kernel { errno, .. } | Error::Privilege { errno, .. } => Some(*errno),
            Error::Netns { errno, .. } => *errno,
            Error::Io { source, .. } => source.raw_os_error().map(Errno::from_raw),
            Error::Batch { source, .. } => source.errno(),
            Error::RolledBack { original, .. } => original.errno(),
            Error::PortAlloc(e) => e.errno(),
            _ => None,
        }
    }

    /// The kernel's extended ACK message, if it sent one.
    pub fn extack(&self) -> Option<&str> {
        match self {
            Error::Kernel { extack, .. } => extack.as_deref(),
            Error::Batch { source, .. } => source.extack(),
            _ => None,
        }
    }

    /// The class of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput { .. } | Error::Protocol(_) => ErrorKind::Invalid,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Exists { .. } => ErrorKind::Exists,
            Error::Busy { .. } => ErrorKind::Busy,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Batch { source, .. } => source.kind(),
            Error::RolledBack { original, .. } => original.kind(),
            Error::Ipam(e) => e.kind(),
            Error::PortSpec(_) => ErrorKind::Invalid,
            Error::PortAlloc(e) => e.kind(),
            #[cfg(feature = "etcd")]
            Error::Etcd(e) => e.kind(),
            // A path refused without a syscall error: not a namespace, or not a network one.
            Error::Netns { errno: None, .. } => ErrorKind::Invalid,
            _ => match self.errno() {
                Some(Errno::EEXIST) => ErrorKind::Exists,
                Some(Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL) => {
                    ErrorKind::NotFound
                }
                Some(Errno::EBUSY) => ErrorKind::Busy,
                Some(Errno::EPERM | Errno::EACCES) => ErrorKind::PermissionDenied,
                Some(Errno::EINVAL | Errno::ERANGE) => ErrorKind::Invalid,
                Some(Errno::EOPNOTSUPP) => ErrorKind::NotSupported,
                _ => ErrorKind::Other,
            },
        }
    }

    /// The object already exists.
    pub fn is_exists(&self) -> bool {
        self.kind() == ErrorKind::Exists
    }

    /// The object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// The object is busy (for instance, renaming a link that is up).
    pub fn is_busy(&self) -> bool {
        self.kind() == ErrorKind::Busy
    }

    /// The object exists, but not as the request asks ([`Error::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        self.kind() == ErrorKind::Conflict
    }

    /// Missing privileges.
    pub fn is_permission_denied(&self) -> bool {
        self.kind() == ErrorKind::PermissionDenied
    }

    /// The input was invalid.
    pub fn is_invalid(&self) -> bool {
        self.kind() == ErrorKind::Invalid
    }

    /// A pool ran out (no free address or subnet).
    pub fn is_exhausted(&self) -> bool {
        self.kind() == ErrorKind::Exhausted
    }

    /// A remote store (etcd) could not be reached or did not answer in time.
    pub fn is_unavailable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }

    /// The kernel does not support this (for instance, a link kind whose module is missing).
    pub fn is_not_supported(&self) -> bool {
        self.kind() == ErrorKind::NotSupported
    }
}

#[cfg(test)]
mod tests;
