//! [`NetworkConfig`]: what `docker network create` takes, validated before anything is
//! created.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::link::IfName;

/// The name of Docker's default network, whose bridge is `docker0`.
pub const DEFAULT_NETWORK: &str = "bridge";
/// The default network's bridge.
pub const DEFAULT_BRIDGE: &str = "docker0";

/// A bridge network to create (`docker network create -d bridge ...`).
///
/// ```
/// use netplumb::network::NetworkConfig;
/// let cfg = NetworkConfig::new("mybr0")
///     .subnet("172.26.0.0/16".parse().unwrap())
///     .gateway("172.26.0.1".parse().unwrap())
///     .icc(false);
/// cfg.validate()?;
/// # Ok::<(), netplumb::Error>(())
/// ```
///
/// With feature `serde`: an object whose fields are named as the builder methods
/// (`name`, `bridge`, `subnets`, `gateways`, `ip_range`, `mtu`, `internal`, `icc`,
/// `masquerade`, `host_binding`, `ipv4`, `ipv6`, `labels`, `multicast_snooping`), networks as
/// text (`"172.26.0.0/16"`). Only `name` is required: missing fields take the defaults of
/// [`NetworkConfig::new`]. Like the builder, deserializing does not check the
/// configuration: [`NetworkConfig::validate`] does, and so does
/// [`Host::create_network`](super::Host::create_network) before it touches anything.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use netplumb::network::NetworkConfig;
/// let cfg: NetworkConfig = serde_json::from_str(r#"{"name": "mybr0", "icc": false}"#).unwrap();
/// assert_eq!(cfg, NetworkConfig::new("mybr0").icc(false));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[must_use]
pub struct NetworkConfig {
    pub(crate) name: String,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) bridge: Option<String>,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) subnets: Vec<IpNet>,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) gateways: Vec<IpAddr>,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) ip_range: Option<IpNet>,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) mtu: Option<u32>,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) internal: bool,
    #[cfg_attr(feature = "serde", serde(default = "on"))]
    pub(crate) icc: bool,
    #[cfg_attr(feature = "serde", serde(default = "on"))]
    pub(crate) masquerade: bool,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) host_binding: Option<IpAddr>,
    #[cfg_attr(feature = "serde", serde(default = "on"))]
    pub(crate) ipv4: bool,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) ipv6: bool,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) labels: BTreeMap<String, String>,
    #[cfg_attr(feature = "serde", serde(default))]
    pub(crate) multicast_snooping: bool,
}

/// The default of `icc` and `masquerade` in a deserialized configuration, as in
/// [`NetworkConfig::new`].
#[cfg(feature = "serde")]
fn on() -> bool {
    true
}

impl NetworkConfig {
    /// A bridge network named `name`: subnet from the address pools, ICC and masquerade
    /// on, published ports on every host address.
    pub fn new(name: &str) -> Self {
        NetworkConfig {
            name: name.to_owned(),
            bridge: None,
            subnets: Vec::new(),
            gateways: Vec::new(),
            ip_range: None,
            mtu: None,
            internal: false,
            icc: true,
            masquerade: true,
            host_binding: None,
            ipv4: true,
            ipv6: false,
            labels: BTreeMap::new(),
            multicast_snooping: false,
        }
    }

    /// The bridge's name (`-o com.docker.network.bridge.name`); an existing bridge of that
    /// name is reused. Default: `docker0` for the network `bridge`, else `br-` and the
    /// first 12 hex digits of the network id.
    pub fn bridge(mut self, name: &str) -> Self {
        self.bridge = Some(name.to_owned());
        self
    }

    /// A subnet (`--subnet`); one IPv4 and, with [`NetworkConfig::ipv6`], one IPv6.
    pub fn subnet(mut self, net: IpNet) -> Self {
        self.subnets.push(net);
        self
    }

    /// The gateway of the subnet of the same family (`--gateway`, `default-gateway`).
    pub fn gateway(mut self, gw: IpAddr) -> Self {
        self.gateways.push(gw);
        self
    }

    /// The IPv4 range containers get addresses from (`--ip-range`, `fixed-cidr`).
    pub fn ip_range(mut self, range: IpNet) -> Self {
        self.ip_range = Some(range);
        self
    }

    /// The MTU of the bridge and of every container link (`com.docker.network.driver.mtu`).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// An internal network: no outbound traffic, no default route, no published ports.
    pub fn internal(mut self, on: bool) -> Self {
        self.internal = on;
        self
    }

    /// Inter-container communication (`com.docker.network.bridge.enable_icc`).
    pub fn icc(mut self, on: bool) -> Self {
        self.icc = on;
        self
    }

    /// Outbound masquerade (`com.docker.network.bridge.enable_ip_masquerade`).
    pub fn masquerade(mut self, on: bool) -> Self {
        self.masquerade = on;
        self
    }

    /// The host address of published ports that name none (`host_binding_ipv4`).
    ///
    /// Unset, the default, a port without a host address (`-p 8080:80`) is published on
    /// every IPv4 address (`0.0.0.0`) and, on a network with an IPv6 subnet, on every
    /// IPv6 address (`[::]`) too, with the same host port, as Docker 27+ and netavark do.
    /// Set, it is published on that address alone: `host_binding(0.0.0.0)` keeps such
    /// ports IPv4-only on a dual-stack network (as before, and as Docker before 27).
    pub fn host_binding(mut self, ip: IpAddr) -> Self {
        self.host_binding = Some(ip);
        self
    }

    /// IPv4 on the network (on by default; `--ipv4=false`, as Docker 28): off, with
    /// [`NetworkConfig::ipv6`], makes an IPv6-only network, which gets no IPv4 subnet
    /// from the pools, and whose containers, bridge and rules have IPv6 alone.
    ///
    /// Off without IPv6 makes a network without addresses (Podman's IPAM driver `none`):
    /// a bridge, and containers' interfaces on it with their MACs, up, but no address,
    /// no route, no address management and no published ports.
    ///
    /// ```
    /// use netplumb::network::NetworkConfig;
    /// assert!(NetworkConfig::new("l2").ipv4(false).validate().is_ok());
    /// ```
    pub fn ipv4(mut self, on: bool) -> Self {
        self.ipv4 = on;
        self
    }

    /// IPv6 on the network (`--ipv6`); needs an IPv6 [`NetworkConfig::subnet`].
    pub fn ipv6(mut self, on: bool) -> Self {
        self.ipv6 = on;
        self
    }

    /// Multicast snooping on a bridge this network creates (default: off; an existing
    /// bridge is left as it is).
    ///
    /// Off, multicast between containers is flooded to every port, as a switch without
    /// snooping does; without a querier on the bridge, snooping would only forget
    /// listeners after a few minutes and flood anyway. It is off because with it on,
    /// every port added or removed restarts the multicast timers of every other port, so
    /// each connect costs more than the last on a bridge with many containers.
    pub fn multicast_snooping(mut self, on: bool) -> Self {
        self.multicast_snooping = on;
        self
    }

    /// A label (`--label key=value`).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the configuration without touching anything.
    pub fn validate(&self) -> Result<()> {
        crate::firewall::NetworkRules::new(&self.name, "x")
            .subnet("10.0.0.0/8".parse().unwrap_or_default())
            .validate()?;
        if let Some(b) = &self.bridge {
            IfName::unchecked(b).check_as("bridge")?;
        }
        let fam = |v4: bool| {
            self.subnets
                .iter()
                .filter(move |s| s.addr().is_ipv4() == v4)
                .count()
        };
        if fam(true) > 1 || fam(false) > 1 {
            return Err(Error::invalid(
                "subnet",
                &self.name,
                "at most one IPv4 and one IPv6 subnet",
            ));
        }
        if fam(false) == 1 && !self.ipv6 {
            return Err(Error::invalid(
                "subnet",
                &self.name,
                "an IPv6 subnet needs ipv6 enabled",
            ));
        }
        if self.ipv6 && fam(false) == 0 {
            return Err(Error::invalid("ipv6", &self.name, "give an IPv6 subnet"));
        }
        if !self.ipv4 && !self.ipv6 && self.internal {
            return Err(Error::invalid(
                "internal",
                &self.name,
                "a network without addresses has no way out to close",
            ));
        }
        if !self.ipv4 && (fam(true) > 0 || self.ip_range.is_some()) {
            return Err(Error::invalid(
                "subnet",
                &self.name,
                "an IPv4 subnet or ip-range needs ipv4 enabled",
            ));
        }
        for g in &self.gateways {
            let Some(s) = self
                .subnets
                .iter()
                .find(|s| s.addr().is_ipv4() == g.is_ipv4())
            else {
                return Err(Error::invalid(
                    "gateway",
                    g,
                    "no subnet of its address family",
                ));
            };
            if !s.contains(g) {
                return Err(Error::invalid("gateway", g, "outside the subnet"));
            }
        }
        if let Some(r) = &self.ip_range {
            if !self.subnets.iter().any(|s| s.contains(r)) {
                return Err(Error::invalid(
                    "ip range",
                    r,
                    "not inside a subnet of the network",
                ));
            }
        }
        if matches!(self.mtu, Some(m) if !(68..=65535).contains(&m)) {
            return Err(Error::invalid(
                "mtu",
                self.mtu.unwrap_or(0),
                "must be 68 to 65535",
            ));
        }
        Ok(())
    }
}
