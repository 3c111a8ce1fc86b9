//! [`NetworkSpec`] (what a caller asks for: `docker network create --subnet … --gateway …
//! --ip-range … --aux-address …`) and [`Network`] (what the store holds), with the
//! validation that turns one into the other.

use std::net::IpAddr;

use ipnet::IpNet;

use super::pool::{from_u128, overlaps, to_u128, usable};
use super::{IpamError, Pools};

/// The gateway a spec asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GatewaySpec {
    FirstUsable,
    Given(IpAddr),
    None,
}

/// A network to create: a name, and optionally its subnet, gateway, allocation range and
/// reserved addresses. Unset parts are chosen by [`super::Ipam::create_network`].
///
/// ```
/// use netplumb::ipam::NetworkSpec;
/// // docker network create --subnet 172.26.0.0/16 --gateway 172.26.0.1 --ip-range 172.26.5.0/24 mybr0
/// let spec = NetworkSpec::new("mybr0")
///     .subnet("172.26.0.0/16".parse()?)
///     .gateway("172.26.0.1".parse()?)
///     .ip_range("172.26.5.0/24".parse()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct NetworkSpec {
    name: String,
    subnet: Option<IpNet>,
    gateway: GatewaySpec,
    ip_range: Option<IpNet>,
    reserved: Vec<IpAddr>,
    ipv6: bool,
    avoid: Vec<IpNet>,
}

impl NetworkSpec {
    /// A network named `name`, with its subnet taken from the address pools and its
    /// gateway the first usable address.
    pub fn new(name: impl Into<String>) -> Self {
        NetworkSpec {
            name: name.into(),
            subnet: None,
            gateway: GatewaySpec::FirstUsable,
            ip_range: None,
            reserved: Vec::new(),
            ipv6: false,
            avoid: Vec::new(),
        }
    }

    /// The subnet (`docker network create --subnet`). It must not overlap an existing
    /// network and must have no host bits set.
    pub fn subnet(mut self, subnet: IpNet) -> Self {
        self.subnet = Some(subnet);
        self
    }

    /// Subnet and gateway in one address/prefix, as Docker's `bip` (`192.168.5.1/24`:
    /// subnet 192.168.5.0/24, gateway 192.168.5.1).
    pub fn bip(mut self, bip: IpNet) -> Self {
        self.subnet = Some(bip.trunc());
        self.gateway = GatewaySpec::Given(bip.addr());
        self
    }

    /// The gateway address (`--gateway`, `default-gateway`); it must lie in the subnet.
    /// Without it the gateway is the subnet's first usable address.
    #[doc(alias = "default-gateway")]
    pub fn gateway(mut self, gateway: IpAddr) -> Self {
        self.gateway = GatewaySpec::Given(gateway);
        self
    }

    /// No gateway address at all (a network with no way out, or one whose gateway lives
    /// outside this IPAM).
    pub fn no_gateway(mut self) -> Self {
        self.gateway = GatewaySpec::None;
        self
    }

    /// The range addresses are handed out from (`--ip-range`, `fixed-cidr`); it must lie
    /// in the subnet. Specific addresses may still be requested anywhere in the subnet.
    #[doc(alias = "fixed-cidr")]
    #[doc(alias = "ip-range")]
    pub fn ip_range(mut self, range: IpNet) -> Self {
        self.ip_range = Some(range);
        self
    }

    /// An address never handed out (`--aux-address`); it must lie in the subnet.
    #[doc(alias = "aux-address")]
    pub fn reserve(mut self, address: IpAddr) -> Self {
        self.reserved.push(address);
        self
    }

    /// Take the subnet from the IPv6 pools instead of the IPv4 ones (only matters when no
    /// subnet is given).
    pub fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// A prefix the automatic subnet choice must not overlap, such as a route of the host
    /// (Docker skips subnets that collide with host routes). Ignored when a subnet is given.
    pub fn avoid(mut self, prefix: IpNet) -> Self {
        self.avoid.push(prefix);
        self
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the spec against the existing networks and pools and returns the network to
    /// store.
    pub(super) fn resolve(
        &self,
        existing: &[Network],
        pools: &Pools,
    ) -> Result<Network, IpamError> {
        check_name(&self.name)?;
        if existing.iter().any(|n| n.name == self.name) {
            return Err(IpamError::NetworkExists {
                network: self.name.clone(),
            });
        }
        let subnet = self.choose_subnet(existing, pools)?;
        let gateway = match self.gateway {
            GatewaySpec::FirstUsable => Some(from_u128(usable(&subnet).0, is_v6(&subnet))),
            GatewaySpec::Given(g) => Some(check_in_subnet("gateway", g, &subnet)?),
            GatewaySpec::None => None,
        };
        let range = match self.ip_range {
            None => subnet,
            Some(r) if r.trunc() != r => {
                return Err(IpamError::cidr("ip-range", r, "host bits are set"))
            }
            Some(r) if !subnet.contains(&r) => {
                return Err(IpamError::outside("ip-range", r, subnet))
            }
            Some(r) => r,
        };
        let mut reserved = Vec::with_capacity(self.reserved.len());
        for &a in &self.reserved {
            if !subnet.contains(&a) {
                return Err(IpamError::outside("reserved address", a, subnet));
            }
            if !reserved.contains(&a) {
                reserved.push(a);
            }
        }
        Ok(Network {
            name: self.name.clone(),
            subnet,
            gateway,
            range,
            reserved,
            cursor: None,
            last_released: None,
            revision: 0,
        })
    }

    fn choose_subnet(&self, existing: &[Network], pools: &Pools) -> Result<IpNet, IpamError> {
        let Some(subnet) = self.subnet else {
            let ipv6 = self.ipv6;
            let mut taken: Vec<IpNet> = existing.iter().map(|n| n.subnet).collect();
            taken.extend(self.avoid.iter().copied());
            taken.retain(|t| is_v6(t) == ipv6);
            let family = if ipv6 { "IPv6" } else { "IPv4" };
            return pools
                .first_free(ipv6, &taken)
                .ok_or_else(|| IpamError::PoolsExhausted {
                    network: self.name.clone(),
                    family,
                });
        };
        if subnet.trunc() != subnet {
            return Err(IpamError::cidr("subnet", subnet, "host bits are set"));
        }
        if let Some(other) = existing.iter().find(|n| overlaps(&n.subnet, &subnet)) {
            return Err(IpamError::Overlap {
                network: self.name.clone(),
                subnet,
                other_network: other.name.clone(),
                other_subnet: other.subnet,
            });
        }
        Ok(subnet)
    }
}

/// A network as the store holds it: its addressing, and the allocation state shared by
/// every process using the store.
///
/// This is observed state ([`super::Ipam::network`]) and the record a [`super::Store`]
/// persists; the fields are public so that other stores can be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// The unique name.
    pub name: String,
    /// The subnet.
    pub subnet: IpNet,
    /// The gateway, never handed out.
    pub gateway: Option<IpAddr>,
    /// The allocation range: the subnet, or the `--ip-range`/`fixed-cidr` within it.
    pub range: IpNet,
    /// User-reserved addresses, never handed out.
    pub reserved: Vec<IpAddr>,
    /// The address most recently handed out by next-free allocation; the next search
    /// starts after it.
    pub cursor: Option<IpAddr>,
    /// The address most recently released; not handed back while another is free.
    pub last_released: Option<IpAddr>,
    /// Incremented by every committed change to this network or its leases; stores
    /// compare it before writing (compare-and-swap).
    pub revision: u64,
}

impl Network {
    /// Whether the network is IPv6.
    pub fn is_ipv6(&self) -> bool {
        is_v6(&self.subnet)
    }

    /// The first and last address next-free allocation may hand out: the allocation range
    /// without the subnet's network address and (IPv4) broadcast address. `None` when the
    /// range has no usable address.
    pub fn bounds(&self) -> Option<(IpAddr, IpAddr)> {
        let (lo, hi) = self.bounds_u128()?;
        Some((from_u128(lo, self.is_ipv6()), from_u128(hi, self.is_ipv6())))
    }

    pub(super) fn bounds_u128(&self) -> Option<(u128, u128)> {
        let (slo, shi) = usable(&self.subnet);
        let lo = to_u128(self.range.network()).max(slo);
        let hi = to_u128(self.range.broadcast()).min(shi);
        (lo <= hi).then_some((lo, hi))
    }

    /// How many addresses next-free allocation can hand out in total: the bounds, less the
    /// gateway and reserved addresses that fall inside them.
    pub fn capacity(&self) -> u128 {
        let Some((lo, hi)) = self.bounds_u128() else {
            return 0;
        };
        // Only addresses of the network's family can block one (a stored record may hold
        // others, whose integers could equal an address inside the bounds).
        let inside =
            |a: &&IpAddr| a.is_ipv6() == self.is_ipv6() && (lo..=hi).contains(&to_u128(**a));
        let mut excluded: Vec<&IpAddr> = self
            .gateway
            .iter()
            .chain(&self.reserved)
            .filter(inside)
            .collect();
        excluded.sort();
        excluded.dedup();
        let excluded = excluded.len();
        // An IPv6 range of 2^128 addresses saturates; nothing real gets there.
        (hi - lo).saturating_add(1) - excluded as u128
    }

    /// Why `address` can never be held in this network, if it cannot: outside the subnet,
    /// the network or broadcast address, the gateway or a reserved address.
    pub(super) fn refuse(&self, address: IpAddr) -> Option<IpamError> {
        if !self.subnet.contains(&address) {
            return Some(IpamError::outside("address", address, self.subnet));
        }
        let (lo, hi) = usable(&self.subnet);
        let a = to_u128(address);
        if a < lo {
            return Some(IpamError::invalid(
                "address",
                address,
                "is the subnet's network address",
            ));
        }
        if a > hi {
            return Some(IpamError::invalid(
                "address",
                address,
                "is the subnet's broadcast address",
            ));
        }
        let reason = if self.gateway == Some(address) {
            "gateway"
        } else if self.reserved.contains(&address) {
            "reserved address"
        } else {
            return None;
        };
        Some(IpamError::AddressReserved {
            network: self.name.clone(),
            address,
            reason,
        })
    }
}

fn is_v6(net: &IpNet) -> bool {
    matches!(net, IpNet::V6(_))
}

fn check_name(name: &str) -> Result<(), IpamError> {
    let reason = if name.is_empty() {
        "is empty"
    } else if name.len() > 255 {
        "is longer than 255 bytes"
    } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        "contains whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(IpamError::invalid("network name", name, reason))
}

fn check_in_subnet(field: &'static str, a: IpAddr, subnet: &IpNet) -> Result<IpAddr, IpamError> {
    if !subnet.contains(&a) {
        return Err(IpamError::outside(field, a, *subnet));
    }
    let (lo, hi) = usable(subnet);
    if !(lo..=hi).contains(&to_u128(a)) {
        return Err(IpamError::invalid(
            field,
            a,
            "is the subnet's network or broadcast address",
        ));
    }
    Ok(a)
}
