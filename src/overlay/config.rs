//! [`OverlayNetwork`]: the definition of an overlay network that every host shares
//! (`docker network create -d overlay --subnet --gateway -o com.docker.network.driver.mtu`),
//! validated before anything is created.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::link::veth_name as hashed_veth_name;

/// The VNIs a network gets when none is given: its name is hashed into this range, so
/// every host derives the same one (Docker's overlay driver hands out VNIs from 256 on).
pub const VNI_POOL: RangeInclusive<u32> = 256..=1000;

/// The largest VNI: VXLAN identifiers have 24 bits.
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// An overlay network: a subnet spanning hosts, carried between them in VXLAN with one VNI.
///
/// The same definition is given to the [`Overlay`](super::Overlay) of every host. The
/// gateway is reserved in the subnet (Docker shows it in `docker network inspect`) but
/// lives on no bridge: the overlay is pure layer 2, and containers leave it through the
/// gateway bridge ([`GWBRIDGE_NETWORK`](super::GWBRIDGE_NETWORK)).
///
/// ```
/// use netplumb::overlay::OverlayNetwork;
/// // docker network create -d overlay --subnet 10.0.9.0/24 -o com.docker.network.driver.mtu=1400 ov1
/// let ov1 = OverlayNetwork::new("ov1", "10.0.9.0/24".parse().unwrap()).vni(4097).mtu(1400);
/// ov1.validate()?;
/// assert_eq!(ov1.gateway_ip().to_string(), "10.0.9.1");
/// assert_eq!((ov1.vxlan_name(), ov1.bridge_name()), ("vx-001001".into(), "ov-001001".into()));
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct OverlayNetwork {
    pub(crate) name: String,
    pub(crate) subnet: IpNet,
    pub(crate) gateway: Option<IpAddr>,
    pub(crate) vni: Option<u32>,
    pub(crate) mtu: Option<u32>,
}

impl OverlayNetwork {
    /// An overlay network `name` on `subnet`; the gateway is the subnet's first usable
    /// address and the VNI is derived from the name ([`VNI_POOL`]).
    pub fn new(name: &str, subnet: IpNet) -> Self {
        OverlayNetwork {
            name: name.to_owned(),
            subnet,
            gateway: None,
            vni: None,
            mtu: None,
        }
    }

    /// The reserved gateway address (`--gateway`); it must lie in the subnet.
    pub fn gateway(mut self, gw: IpAddr) -> Self {
        self.gateway = Some(gw);
        self
    }

    /// The VXLAN network identifier (`-o com.docker.network.driver.overlay.vxlanid_list`),
    /// 1 to 2^24 − 1. Give every overlay network of a cluster its own.
    #[doc(alias = "vxlanid_list")]
    pub fn vni(mut self, vni: u32) -> Self {
        self.vni = Some(vni);
        self
    }

    /// The MTU of the containers' overlay interfaces (`com.docker.network.driver.mtu`);
    /// default: the underlay link's MTU less the VXLAN overhead (50 bytes over IPv4).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subnet.
    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    /// The gateway in effect: the given one, or the subnet's first usable address.
    pub fn gateway_ip(&self) -> IpAddr {
        self.gateway.unwrap_or_else(|| first_usable(&self.subnet))
    }

    /// The VNI in effect: the given one, or one derived from the name in [`VNI_POOL`].
    pub fn vxlan_id(&self) -> u32 {
        self.vni.unwrap_or_else(|| {
            let h = self.name.bytes().fold(0x811c_9dc5u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
            });
            VNI_POOL.start() + h % (VNI_POOL.end() - VNI_POOL.start() + 1)
        })
    }

    /// The network's id, as `docker network ls` shows one: 64 hex digits derived from the
    /// definition (name, subnet, VNI), so that every host shows the same id for it.
    ///
    /// ```
    /// use netplumb::overlay::OverlayNetwork;
    /// let ov1 = OverlayNetwork::new("ov1", "10.0.0.0/24".parse().unwrap());
    /// assert_eq!(ov1.id().len(), 64);
    /// assert_eq!(ov1.id(), ov1.clone().id());
    /// assert_ne!(ov1.id(), OverlayNetwork::new("ov2", "10.0.0.0/24".parse().unwrap()).id());
    /// ```
    pub fn id(&self) -> String {
        let text = format!("{}|{}|{}", self.name, self.subnet, self.vxlan_id());
        // Four FNV-1a hashes with different offsets: stable across builds and hosts.
        (0u64..4)
            .map(|k| {
                let h = text.bytes().fold(
                    0xcbf2_9ce4_8422_2325u64 ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3),
                );
                format!("{h:016x}")
            })
            .collect()
    }

    /// The name of this network's VXLAN device on every host: `vx-` and the VNI in six hex
    /// digits (`vx-000100`).
    pub fn vxlan_name(&self) -> String {
        format!("vx-{:06x}", self.vxlan_id())
    }

    /// The name of this network's bridge on every host: `ov-` and the VNI in six hex
    /// digits (`ov-000100`).
    pub fn bridge_name(&self) -> String {
        format!("ov-{:06x}", self.vxlan_id())
    }

    /// Checks the definition without touching anything; every error names its field
    /// (`name`, `subnet`, `gateway`, `vni`, `mtu`).
    ///
    /// ```
    /// use netplumb::overlay::OverlayNetwork;
    /// let bad = OverlayNetwork::new("ov1", "10.0.9.0/24".parse().unwrap()).vni(1 << 24);
    /// assert!(matches!(bad.validate(), Err(netplumb::Error::InvalidInput { field: "vni", .. })));
    /// ```
    pub fn validate(&self) -> Result<()> {
        check_name(&self.name)?;
        let s = self.subnet;
        if s.trunc() != s {
            return Err(Error::invalid("subnet", s, "host bits are set"));
        }
        if s.prefix_len() + 2 > s.max_prefix_len() {
            return Err(Error::invalid(
                "subnet",
                s,
                "too small: no room for a gateway and a container",
            ));
        }
        if let Some(g) = self.gateway {
            if !s.contains(&g) {
                return Err(Error::invalid("gateway", g, "outside the subnet"));
            }
            if g == s.network() || (g.is_ipv4() && g == s.broadcast()) {
                return Err(Error::invalid(
                    "gateway",
                    g,
                    "is the subnet's network or broadcast address",
                ));
            }
        }
        if let Some(v) = self.vni {
            if v == 0 || v > VNI_MAX {
                return Err(Error::invalid("vni", v, "must be 1 to 2^24 - 1"));
            }
        }
        if let Some(m) = self.mtu {
            if !(68..=65535).contains(&m) {
                return Err(Error::invalid("mtu", m, "must be 68 to 65535"));
            }
        }
        Ok(())
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    let reason = if name.is_empty() {
        "is empty"
    } else if name.len() > 64 {
        "is longer than 64 bytes"
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) || !name.chars().all(ok_char) {
        "must be [a-zA-Z0-9][a-zA-Z0-9_.-]*"
    } else {
        return Ok(());
    };
    Err(Error::invalid("name", name, reason))
}

/// The subnet's network address plus one.
fn first_usable(s: &IpNet) -> IpAddr {
    match s.network() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(1)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(1)).into()),
    }
}

/// The host end of `container`'s veth on overlay network `network`: `veth` and 7 hex
/// digits, so that a disconnect finds it from the container id alone.
pub(super) fn veth_name(container: &str, network: &str) -> String {
    hashed_veth_name(&format!("overlay/{container}/{network}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> OverlayNetwork {
        OverlayNetwork::new("ov1", "10.0.9.0/24".parse().unwrap())
    }

    fn field(r: Result<()>) -> &'static str {
        match r {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected an invalid input, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_derived() {
        let n = net();
        n.validate().unwrap();
        assert_eq!(n.gateway_ip(), "10.0.9.1".parse::<IpAddr>().unwrap());
        assert!(VNI_POOL.contains(&n.vxlan_id()));
        assert_eq!(n.vxlan_id(), net().vxlan_id(), "the same on every host");
        assert_eq!(n.vxlan_name().len(), 9);
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(
            field(OverlayNetwork::new("", net().subnet).validate()),
            "name"
        );
        assert_eq!(
            field(OverlayNetwork::new("a b", net().subnet).validate()),
            "name"
        );
        let host_bits = OverlayNetwork::new("ov1", "10.0.9.1/24".parse().unwrap());
        assert_eq!(field(host_bits.validate()), "subnet");
        let tiny = OverlayNetwork::new("ov1", "10.0.9.0/31".parse().unwrap());
        assert_eq!(field(tiny.validate()), "subnet");
        let outside = net().gateway("10.0.10.1".parse().unwrap());
        assert_eq!(field(outside.validate()), "gateway");
        let bcast = net().gateway("10.0.9.255".parse().unwrap());
        assert_eq!(field(bcast.validate()), "gateway");
        assert_eq!(field(net().vni(0).validate()), "vni");
        assert_eq!(field(net().vni(1 << 24).validate()), "vni");
        net().vni(VNI_MAX).validate().unwrap();
        assert_eq!(field(net().mtu(67).validate()), "mtu");
    }
}
