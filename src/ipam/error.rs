//! [`IpamError`]: the closed set of ways an IPAM call can fail. Every variant names the
//! network, subnet or value it is about, so a message never needs a second lookup.

use std::net::IpAddr;

use ipnet::IpNet;

use super::Owner;
use crate::error::ErrorKind;

/// Why an IPAM call failed.
///
/// It converts into [`crate::Error`] with `?`; [`crate::Error::kind`] then classifies it
/// (see [`IpamError::kind`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpamError {
    /// A prefix in CIDR notation is malformed or not usable as given.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidCidr {
        /// Which parameter (`"subnet"`, `"ip-range"`, `"pool"`).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Any other value (an address, a network name, an owner) is malformed or unusable.
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        /// Which parameter (`"gateway"`, `"address"`, `"network name"`, …).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An address or range lies outside the network's subnet.
    #[error("{field} {value} is outside subnet {subnet}")]
    OutOfSubnet {
        /// Which parameter (`"gateway"`, `"ip-range"`, `"reserved address"`, `"address"`).
        field: &'static str,
        /// The value given.
        value: String,
        /// The subnet it had to be in.
        subnet: IpNet,
    },
    /// A new network's subnet overlaps the subnet of an existing network.
    #[error("subnet {subnet} of network {network:?} overlaps subnet {other_subnet} of network {other_network:?}")]
    Overlap {
        /// The network being created.
        network: String,
        /// Its subnet.
        subnet: IpNet,
        /// The existing network it collides with.
        other_network: String,
        /// That network's subnet.
        other_subnet: IpNet,
    },
    /// A network of that name already exists.
    #[error("network {network:?} already exists")]
    NetworkExists {
        /// The name.
        network: String,
    },
    /// No network of that name exists.
    #[error("network {network:?} not found")]
    NetworkNotFound {
        /// The name.
        network: String,
    },
    /// A network cannot be removed while it still has leases.
    #[error("network {network:?} still has {leases} lease(s)")]
    NetworkInUse {
        /// The name.
        network: String,
        /// How many leases it holds.
        leases: usize,
    },
    /// Every subnet of the address pools of this family overlaps an existing network.
    #[error("no free {family} subnet left in the address pools for network {network:?}")]
    PoolsExhausted {
        /// The network being created.
        network: String,
        /// `"IPv4"` or `"IPv6"`.
        family: &'static str,
    },
    /// Every address of the network's allocation range is taken.
    #[error("no free address left in {range} of network {network:?} ({subnet})")]
    Exhausted {
        /// The network.
        network: String,
        /// Its subnet.
        subnet: IpNet,
        /// Its allocation range (the subnet unless an ip-range was given).
        range: IpNet,
    },
    /// The requested address is held by another owner.
    #[error("address {address} of network {network:?} is held by {owner}")]
    AddressTaken {
        /// The network.
        network: String,
        /// The address.
        address: IpAddr,
        /// Who holds it.
        owner: Owner,
    },
    /// The requested address is the gateway or a user-reserved address.
    #[error("address {address} of network {network:?} is reserved ({reason})")]
    AddressReserved {
        /// The network.
        network: String,
        /// The address.
        address: IpAddr,
        /// `"gateway"` or `"reserved address"`.
        reason: &'static str,
    },
    /// The owner already holds a different address on this network (one lease per
    /// owner and network).
    #[error("{owner} already holds {address} on network {network:?}")]
    OwnerHasLease {
        /// The network.
        network: String,
        /// The owner.
        owner: Owner,
        /// The address it holds.
        address: IpAddr,
    },
    /// A transaction lost a compare-and-swap race on this network. [`super::Ipam`] retries
    /// these; it returns one only when the retries ran out.
    #[error("network {network:?} kept changing under concurrent updates")]
    Conflict {
        /// The network.
        network: String,
    },
    /// The store failed (I/O, locking, the database itself).
    #[error("IPAM store {context}: {source}")]
    Store {
        /// What the store was doing, and where (a path, a statement).
        context: String,
        /// The underlying error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store holds data this version cannot use: a newer schema, or state that breaks
    /// an invariant.
    #[error("IPAM store {context}: {reason}")]
    Corrupt {
        /// Where.
        context: String,
        /// What is wrong.
        reason: String,
    },
}

impl IpamError {
    /// The crate-wide class of this failure: taken or overlapping things are
    /// [`ErrorKind::Exists`], bad input is [`ErrorKind::Invalid`], a missing network is
    /// [`ErrorKind::NotFound`], no free subnet or address is [`ErrorKind::Exhausted`], a
    /// network in use or a lost race is [`ErrorKind::Busy`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            IpamError::InvalidCidr { .. }
            | IpamError::Invalid { .. }
            | IpamError::OutOfSubnet { .. } => ErrorKind::Invalid,
            IpamError::Overlap { .. }
            | IpamError::NetworkExists { .. }
            | IpamError::AddressTaken { .. }
            | IpamError::AddressReserved { .. }
            | IpamError::OwnerHasLease { .. } => ErrorKind::Exists,
            IpamError::NetworkNotFound { .. } => ErrorKind::NotFound,
            IpamError::PoolsExhausted { .. } | IpamError::Exhausted { .. } => ErrorKind::Exhausted,
            IpamError::NetworkInUse { .. } | IpamError::Conflict { .. } => ErrorKind::Busy,
            #[cfg(feature = "etcd")]
            IpamError::Store { source, .. } => {
                match source.downcast_ref::<crate::etcd::EtcdError>() {
                    // A store that could not be reached or did not answer in time.
                    Some(e) => e.kind(),
                    None => ErrorKind::Other,
                }
            }
            #[cfg(not(feature = "etcd"))]
            IpamError::Store { .. } => ErrorKind::Other,
            IpamError::Corrupt { .. } => ErrorKind::Other,
        }
    }

    pub(super) fn invalid(field: &'static str, value: impl ToString, reason: &'static str) -> Self {
        IpamError::Invalid {
            field,
            value: value.to_string(),
            reason,
        }
    }

    pub(super) fn cidr(field: &'static str, value: impl ToString, reason: &'static str) -> Self {
        IpamError::InvalidCidr {
            field,
            value: value.to_string(),
            reason,
        }
    }

    pub(super) fn outside(field: &'static str, value: impl ToString, subnet: IpNet) -> Self {
        IpamError::OutOfSubnet {
            field,
            value: value.to_string(),
            subnet,
        }
    }
}
