//! [`NetworkRules`]: what one container network needs from the firewall (subnets,
//! masquerade or SNAT, ICC, isolation, `--link` allowances, anti-spoofing endpoints),
//! its validation, and the hashes whose text tags its rules.

use std::net::IpAddr;

use ipnet::IpNet;

use super::proto::Proto;
use crate::error::{Error, Result};

/// The longest network name the backends accept (it tags rules and chains).
pub const NETWORK_NAME_MAX: usize = 64;

pub(crate) fn check_network_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= NETWORK_NAME_MAX
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "network name",
            name,
            "must be 1 to 64 of [A-Za-z0-9_.-]",
        ))
    }
}

/// A `--link`-style allowance: `a` may reach `b` on one port, and `b` may answer (Docker
/// writes both directions: `ACCEPT tcp a -> b dpt:P` and `ACCEPT tcp b -> a spt:P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkAllow {
    /// The client container's address.
    pub from: IpAddr,
    /// The server container's address.
    pub to: IpAddr,
    /// The protocol.
    pub proto: Proto,
    /// The server's port.
    pub port: u16,
}

/// What one bridge network needs from the firewall (Docker's bridge driver rules).
///
/// ```
/// use netplumb::firewall::NetworkRules;
/// let net = NetworkRules::new("mybr0", "br-mybr0")
///     .subnet("172.26.0.0/16".parse().unwrap())
///     .icc(false);
/// net.validate()?;
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct NetworkRules {
    pub(crate) name: String,
    pub(crate) bridge: String,
    pub(crate) subnets: Vec<IpNet>,
    pub(crate) masquerade: bool,
    pub(crate) snat: Vec<IpAddr>,
    pub(crate) icc: bool,
    pub(crate) internal: bool,
    pub(crate) links: Vec<LinkAllow>,
    pub(crate) loopback: bool,
    pub(crate) endpoints: Vec<(String, IpAddr)>,
    /// The network has no addresses, by design (a `Host` network without IP): the
    /// backends keep no rules for it. Rules without subnets that do not say so are
    /// refused.
    pub(crate) addressless: bool,
}

impl NetworkRules {
    /// Rules for network `name` on bridge `bridge`: masquerade on, ICC on, not internal.
    pub fn new(name: &str, bridge: &str) -> Self {
        NetworkRules {
            name: name.to_owned(),
            bridge: bridge.to_owned(),
            subnets: Vec::new(),
            masquerade: true,
            snat: Vec::new(),
            icc: true,
            internal: false,
            links: Vec::new(),
            loopback: false,
            endpoints: Vec::new(),
            addressless: false,
        }
    }

    /// Adds a subnet of the network (IPv4 or IPv6).
    pub fn subnet(mut self, net: IpNet) -> Self {
        self.subnets.push(net.trunc());
        self
    }

    /// Outbound masquerade of the subnets, except towards the bridge itself
    /// (`com.docker.network.bridge.enable_ip_masquerade`; on by default).
    pub fn masquerade(mut self, on: bool) -> Self {
        self.masquerade = on;
        self
    }

    /// SNAT outbound traffic to `addr` instead of masquerading (Docker's
    /// `com.docker.network.host_ipv4`); one per address family.
    pub fn snat(mut self, addr: IpAddr) -> Self {
        self.snat.push(addr);
        self
    }

    /// Inter-container communication on the bridge (`icc`; on by default).
    pub fn icc(mut self, on: bool) -> Self {
        self.icc = on;
        self
    }

    /// An internal network: no traffic in or out, only between its containers.
    pub fn internal(mut self, on: bool) -> Self {
        self.internal = on;
        self
    }

    /// Lets the host itself reach ports published on `127.0.0.1` (off by default): the
    /// DNATed connection leaves with a loopback source, which is masqueraded to the
    /// bridge's address. The kernel also needs `net.ipv4.conf.BRIDGE.route_localnet = 1`
    /// ([`Sysctl::RouteLocalnet`](crate::sysctl::Sysctl::RouteLocalnet)), which the caller
    /// sets: it stays off unless asked. Docker gets the same with `--userland-proxy=false`.
    /// [`Host`](crate::network::Host) turns both on for every network that is not
    /// internal. New connections to 127.0.0.0/8 that come in on the bridge are dropped
    /// (CVE-2020-8558): the nf_tables backend drops them from every interface, always;
    /// the iptables backend adds the drop for the bridge with this option.
    pub fn loopback_ports(mut self, on: bool) -> Self {
        self.loopback = on;
        self
    }

    /// A `--link` allowance between two containers of the network.
    pub fn link(mut self, allow: LinkAllow) -> Self {
        self.links.push(allow);
        self
    }

    /// Registers `addr` as an address of the container behind bridge port `dev` (the
    /// host end of its veth), for anti-spoofing: with ICC off, a packet whose source is a
    /// registered address but that comes in on another port of the bridge is dropped, so
    /// a container cannot pose as another to pass a `--link` allowance or to join
    /// another's connection. Addresses that are not registered are not checked (a
    /// container may route other subnets). Nothing is enforced with ICC on, where every
    /// container may reach every other anyway.
    ///
    /// ```
    /// use netplumb::firewall::NetworkRules;
    /// let net = NetworkRules::new("mybr0", "br-mybr0")
    ///     .subnet("172.26.0.0/16".parse().unwrap())
    ///     .icc(false)
    ///     .endpoint("veth3f2a1c0", "172.26.0.2".parse().unwrap());
    /// net.validate()?;
    /// assert_eq!(net.endpoints().count(), 1);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    #[doc(alias = "anti-spoofing")]
    pub fn endpoint(mut self, dev: &str, addr: IpAddr) -> Self {
        self.endpoints.push((dev.to_owned(), addr));
        self
    }

    /// The registered endpoints, as (bridge port, address).
    ///
    /// ```
    /// use netplumb::firewall::NetworkRules;
    /// let net = NetworkRules::new("n", "br0").endpoint("veth1", "10.0.0.2".parse().unwrap());
    /// assert_eq!(net.endpoints().collect::<Vec<_>>(), [("veth1", "10.0.0.2".parse().unwrap())]);
    /// ```
    pub fn endpoints(&self) -> impl Iterator<Item = (&str, IpAddr)> + '_ {
        self.endpoints.iter().map(|(d, a)| (d.as_str(), *a))
    }

    /// The endpoints the backends enforce: all of them with ICC off, none with ICC on.
    pub(crate) fn enforced_endpoints(&self) -> &[(String, IpAddr)] {
        if self.icc {
            &[]
        } else {
            &self.endpoints
        }
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.bridge
    }

    /// The subnets.
    pub fn subnets(&self) -> &[IpNet] {
        &self.subnets
    }

    /// A hash of every setting, stable across processes and builds: the backends put it
    /// in their rule comments, so a re-apply with the same settings is recognised and one
    /// with new settings replaces.
    ///
    /// Endpoints are left out (they come and go with containers, and the nf_tables backend
    /// keeps them as set elements); the text hashed is what `Debug` printed before they
    /// existed, so the hashes of existing networks stay the same.
    pub(crate) fn settings_hash(&self) -> u64 {
        #[derive(Debug)]
        #[allow(dead_code)] // read through `Debug` only
        struct NetworkRules<'a> {
            name: &'a String,
            bridge: &'a String,
            subnets: &'a Vec<IpNet>,
            masquerade: bool,
            snat: &'a Vec<IpAddr>,
            icc: bool,
            internal: bool,
            links: &'a Vec<LinkAllow>,
            loopback: bool,
        }
        let settings = NetworkRules {
            name: &self.name,
            bridge: &self.bridge,
            subnets: &self.subnets,
            masquerade: self.masquerade,
            snat: &self.snat,
            icc: self.icc,
            internal: self.internal,
            links: &self.links,
            loopback: self.loopback,
        };
        fnv(format!("{settings:?}").as_bytes(), 0xcbf2_9ce4_8422_2325)
    }

    /// [`settings_hash`](Self::settings_hash) with the enforced endpoints folded in (the
    /// iptables backend renders endpoints as rules of the network, so its tag must change
    /// with them).
    #[cfg_attr(not(feature = "iptables"), allow(dead_code))]
    pub(crate) fn full_hash(&self) -> u64 {
        let eps = self.enforced_endpoints();
        if eps.is_empty() {
            return self.settings_hash();
        }
        fnv(format!("{eps:?}").as_bytes(), self.settings_hash())
    }

    /// Checks the rules without a backend.
    pub fn validate(&self) -> Result<()> {
        check_network_name(&self.name)?;
        crate::link::IfName::unchecked(&self.bridge).check_as("bridge")?;
        if self.subnets.is_empty() {
            return Err(Error::invalid(
                "subnets",
                &self.name,
                "a network needs at least one subnet",
            ));
        }
        let covered = |ip: &IpAddr| self.subnets.iter().any(|n| n.contains(ip));
        let has_family = |ip: &IpAddr| {
            self.subnets
                .iter()
                .any(|n| n.addr().is_ipv4() == ip.is_ipv4())
        };
        for (i, a) in self.snat.iter().enumerate() {
            if !has_family(a) {
                return Err(Error::invalid(
                    "snat",
                    a,
                    "no subnet of that address family",
                ));
            }
            if self.snat[..i].iter().any(|b| b.is_ipv4() == a.is_ipv4()) {
                return Err(Error::invalid(
                    "snat",
                    a,
                    "one SNAT address per address family",
                ));
            }
        }
        for l in &self.links {
            for ip in [l.from, l.to] {
                if !covered(&ip) {
                    return Err(Error::invalid(
                        "link",
                        ip,
                        "address outside the network's subnets",
                    ));
                }
            }
            if l.from.is_ipv4() != l.to.is_ipv4() {
                return Err(Error::invalid("link", l.to, "address families differ"));
            }
            if l.port == 0 {
                return Err(Error::invalid("link port", 0, "must not be 0"));
            }
        }
        self.validate_endpoints(&covered)
    }

    fn validate_endpoints(&self, covered: &dyn Fn(&IpAddr) -> bool) -> Result<()> {
        for (i, (dev, addr)) in self.endpoints.iter().enumerate() {
            crate::link::IfName::unchecked(dev).check_as("endpoint port")?;
            if !covered(addr) {
                return Err(Error::invalid(
                    "endpoint address",
                    addr,
                    "address outside the network's subnets",
                ));
            }
            if self.endpoints[..i]
                .iter()
                .any(|(d, a)| a == addr && d != dev)
            {
                return Err(Error::invalid(
                    "endpoint address",
                    addr,
                    "registered for two bridge ports",
                ));
            }
        }
        Ok(())
    }
}

/// FNV-1a over `bytes`, from `h`.
pub(super) fn fnv(bytes: &[u8], h: u64) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}
