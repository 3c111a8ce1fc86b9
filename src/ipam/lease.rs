//! [`Lease`]: an address an [`Owner`] holds on a network, and [`Released`], what a release
//! did.

use std::net::IpAddr;

use ipnet::IpNet;

use super::network::Network;
use super::owner::Owner;

/// An address held by an owner on a network, with what the container needs to use it.
///
/// With feature `serde`: an object with the fields below, addresses as text, `owner` as in
/// [`Owner`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Lease {
    /// The network's name.
    pub network: String,
    /// The address.
    pub address: IpAddr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The network's gateway (the container's default route).
    pub gateway: Option<IpAddr>,
    /// Who holds it.
    pub owner: Owner,
}

impl Lease {
    pub(super) fn new(net: &Network, address: IpAddr, owner: Owner) -> Self {
        Lease {
            network: net.name.clone(),
            address,
            prefix_len: net.subnet.prefix_len(),
            gateway: net.gateway,
            owner,
        }
    }

    /// The address with the subnet's prefix length, as `ip address add` takes it
    /// (`172.17.0.2/16`).
    pub fn cidr(&self) -> IpNet {
        IpNet::new(self.address, self.prefix_len)
            .expect("prefix length of the address's own subnet")
    }
}

/// What a release did. Releasing an address nobody holds is not an error (teardown is
/// idempotent), but it is told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Released {
    /// The lease existed and is gone.
    Freed(Lease),
    /// Nothing was held; nothing changed.
    NotHeld,
}

impl Released {
    /// Whether a lease was actually released.
    pub fn was_held(&self) -> bool {
        matches!(self, Released::Freed(_))
    }
}
