//! [`AllocError`]: why a host port could not be published, by the allocator or its
//! registry file.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::error::Errno;

use super::range::{PortRange, Proto};
use crate::error::ErrorKind;

/// Why a host port could not be published.
///
/// Classified by [`AllocError::kind`], which [`Error::kind`](crate::Error::kind) passes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// The host port was already published through this registry.
    #[error("bind for {addr}/{proto} failed: port is already allocated")]
    AlreadyPublished {
        /// The protocol.
        proto: Proto,
        /// The host address and port.
        addr: SocketAddr,
    },
    /// A socket in the namespace already uses the host port.
    #[error("bind for {addr}/{proto} failed: address already in use")]
    InUse {
        /// The protocol.
        proto: Proto,
        /// The host address and port.
        addr: SocketAddr,
    },
    /// Every port of the range is published or in use.
    #[error("no free {proto} port in {range} on {host_ip}: all ports are allocated")]
    Exhausted {
        /// The protocol.
        proto: Proto,
        /// The host address.
        host_ip: IpAddr,
        /// The range searched.
        range: PortRange,
    },
    /// Binding a socket to check that a port is free failed for another reason than the
    /// port being in use (for instance a host address the namespace does not have).
    #[error("cannot bind {addr}/{proto} to check that it is free: {source}")]
    Probe {
        /// The protocol.
        proto: Proto,
        /// The host address and port.
        addr: SocketAddr,
        /// The error of `bind(2)`.
        source: io::Error,
    },
    /// A port on the IPv6 loopback address (`-p [::1]:8080:80`), which cannot be served:
    /// IPv6 has no `route_localnet`, so the kernel drops a connection to `::1` that is
    /// DNATed to a container, and netplumb runs no userland proxy (Docker's and
    /// netavark's way to serve it). 127.0.0.1 works (see [`PortAllocator`](super::PortAllocator)).
    #[error(
        "cannot publish {proto} ports on {host_ip}: IPv6 has no route_localnet, so the kernel \
         cannot hand ::1 to a container without a userland proxy, which netplumb does not run; \
         publish on 127.0.0.1 instead"
    )]
    Ipv6Loopback {
        /// The protocol.
        proto: Proto,
        /// The host address (`::1`).
        host_ip: IpAddr,
    },
    /// A line of the registry file is not a record.
    #[error("{}:{line}: malformed port registry record", path.display())]
    CorruptRegistry {
        /// The registry file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
}

impl AllocError {
    /// The system error behind the failure: `EADDRINUSE` for [`AllocError::InUse`], the
    /// bind error for [`AllocError::Probe`].
    pub fn errno(&self) -> Option<Errno> {
        match self {
            AllocError::InUse { .. } => Some(Errno::EADDRINUSE),
            AllocError::Probe { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// The class of the failure: a published port is [`ErrorKind::Exists`], a port a
    /// socket uses [`ErrorKind::Busy`], a full range [`ErrorKind::Exhausted`]; a failed
    /// probe follows its errno (`EADDRNOTAVAIL`, a host address the namespace lacks, is
    /// [`ErrorKind::NotFound`]); a corrupt registry is [`ErrorKind::Other`]; a port on
    /// `::1` is [`ErrorKind::NotSupported`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            AllocError::AlreadyPublished { .. } => ErrorKind::Exists,
            AllocError::InUse { .. } => ErrorKind::Busy,
            AllocError::Exhausted { .. } => ErrorKind::Exhausted,
            AllocError::Probe { .. } => match self.errno() {
                Some(Errno::EADDRNOTAVAIL) => ErrorKind::NotFound,
                Some(Errno::EACCES | Errno::EPERM) => ErrorKind::PermissionDenied,
                Some(Errno::EAFNOSUPPORT) => ErrorKind::NotSupported,
                _ => ErrorKind::Other,
            },
            AllocError::CorruptRegistry { .. } => ErrorKind::Other,
            AllocError::Ipv6Loopback { .. } => ErrorKind::NotSupported,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn errors_are_classified() {
        let addr: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let busy: Error = AllocError::InUse {
            proto: Proto::Tcp,
            addr,
        }
        .into();
        assert!(busy.is_busy(), "{busy}");
        assert_eq!(busy.kind(), ErrorKind::Busy);
        assert_eq!(busy.errno(), Some(Errno::EADDRINUSE));
        assert_eq!(
            busy.to_string(),
            "bind for 0.0.0.0:8080/tcp failed: address already in use"
        );
        let taken: Error = AllocError::AlreadyPublished {
            proto: Proto::Udp,
            addr,
        }
        .into();
        assert!(taken.is_exists());
        assert_eq!(
            taken.to_string(),
            "bind for 0.0.0.0:8080/udp failed: port is already allocated"
        );
        let range = PortRange::new(1, 2).unwrap();
        let full: Error = AllocError::Exhausted {
            proto: Proto::Tcp,
            host_ip: addr.ip(),
            range,
        }
        .into();
        assert!(full.is_exhausted());
        assert_eq!(
            full.to_string(),
            "no free tcp port in 1-2 on 0.0.0.0: all ports are allocated"
        );
        let source = io::Error::from_raw_os_error(Errno::EADDRNOTAVAIL.raw());
        let probe: Error = AllocError::Probe {
            proto: Proto::Tcp,
            addr,
            source,
        }
        .into();
        assert!(probe.is_not_found(), "{probe}");
        let spec: Error = crate::ports::PortSpecError::Empty.into();
        assert!(spec.is_invalid());
    }
}
