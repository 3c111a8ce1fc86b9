//! The backend-neutral rule model: what a container network needs from the firewall,
//! not a general firewall language. Values are validated before any backend sees them;
//! every error names the bad field.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};

/// A transport protocol of a published port or a link allowance (the `/tcp` of `80/tcp`).
///
/// ```
/// use netplumb::firewall::Proto;
/// assert_eq!("UDP".parse::<Proto>().unwrap(), Proto::Udp);
/// assert_eq!(Proto::Sctp.to_string(), "sctp");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Proto {
    /// TCP, the default when a port spec names no protocol.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The lower-case name Docker prints (`tcp`, `udp`, `sctp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number (`IPPROTO_*`).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// The protocol with IP protocol number `n`, if it is one of ours.
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
fn fnv(bytes: &[u8], h: u64) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// One published port: traffic to `host_ip:host_port` (any local address when `host_ip`
/// is `None`) goes to `container_ip:container_port` (`-p`).
///
/// ```
/// use netplumb::firewall::{PortRule, Proto};
/// let p = PortRule::new("bridge", Proto::Tcp, 8080, "172.17.0.2".parse().unwrap(), 80);
/// assert_eq!(p.to_string(), "bridge: tcp 0.0.0.0:8080 -> 172.17.0.2:80");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortRule {
    /// The network the container is on (tags the rule for removal).
    pub network: String,
    /// The protocol.
    pub proto: Proto,
    /// The host address; `None` is every local address of that family.
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The container's address.
    pub container_ip: IpAddr,
    /// The container's port.
    pub container_port: u16,
}

impl PortRule {
    /// `host_port` on every local address to `container_ip:container_port`.
    pub fn new(
        network: &str,
        proto: Proto,
        host_port: u16,
        container_ip: IpAddr,
        container_port: u16,
    ) -> Self {
        PortRule {
            network: network.to_owned(),
            proto,
            host_ip: None,
            host_port,
            container_ip,
            container_port,
        }
    }

    /// Publishes on one host address only.
    #[must_use]
    pub fn host_ip(mut self, ip: IpAddr) -> Self {
        self.host_ip = Some(ip);
        self
    }

    /// Expands a host port range onto a container port range of the same length
    /// (`-p 8000-8010:80-90`), one rule per port.
    pub fn range(
        network: &str,
        proto: Proto,
        host_ip: Option<IpAddr>,
        (host, container): ((u16, u16), (u16, u16)),
        container_ip: IpAddr,
    ) -> Result<Vec<PortRule>> {
        let (hn, cn) = (
            host.1.checked_sub(host.0),
            container.1.checked_sub(container.0),
        );
        let (Some(hn), Some(cn)) = (hn, cn) else {
            return Err(Error::invalid(
                "port range",
                format!("{}-{}:{}-{}", host.0, host.1, container.0, container.1),
                "start above end",
            ));
        };
        if hn != cn {
            return Err(Error::invalid(
                "port range",
                format!("{}-{}:{}-{}", host.0, host.1, container.0, container.1),
                "host and container ranges differ in length",
            ));
        }
        let rules: Vec<PortRule> = (0..=hn)
            .map(|i| PortRule {
                network: network.to_owned(),
                proto,
                host_ip,
                host_port: host.0 + i,
                container_ip,
                container_port: container.0 + i,
            })
            .collect();
        for r in &rules {
            r.validate()?;
        }
        Ok(rules)
    }

    /// Checks the rule without a backend.
    pub fn validate(&self) -> Result<()> {
        check_network_name(&self.network)?;
        if self.host_port == 0 {
            return Err(Error::invalid("host port", 0, "must not be 0"));
        }
        if self.container_port == 0 {
            return Err(Error::invalid("container port", 0, "must not be 0"));
        }
        if let Some(h) = self.host_ip {
            if h.is_ipv4() != self.container_ip.is_ipv4() {
                return Err(Error::invalid(
                    "host address",
                    h,
                    "address family differs from the container's",
                ));
            }
            if h.is_unspecified() {
                return Err(Error::invalid(
                    "host address",
                    h,
                    "use no host address for every address",
                ));
            }
            if h.is_multicast() {
                return Err(Error::invalid(
                    "host address",
                    h,
                    "must be a unicast address",
                ));
            }
        }
        if self.container_ip.is_unspecified()
            || self.container_ip.is_loopback()
            || self.container_ip.is_multicast()
        {
            return Err(Error::invalid(
                "container address",
                self.container_ip,
                "must be a unicast container address",
            ));
        }
        Ok(())
    }
}

impl fmt::Display for PortRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match (self.host_ip, self.container_ip) {
            (Some(IpAddr::V6(h)), _) => format!("[{h}]"),
            (Some(h), _) => h.to_string(),
            (None, IpAddr::V4(_)) => "0.0.0.0".into(),
            (None, IpAddr::V6(_)) => "[::]".into(),
        };
        let ctr = match self.container_ip {
            IpAddr::V6(c) => format!("[{c}]"),
            c => c.to_string(),
        };
        write!(
            f,
            "{}: {} {host}:{} -> {ctr}:{}",
            self.network, self.proto, self.host_port, self.container_port
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: Error) -> &'static str {
        match e {
            Error::InvalidInput { field, .. } => field,
            other => panic!("expected invalid input, got {other}"),
        }
    }

    #[test]
    fn network_rules_validation_names_the_field() {
        let ok = NetworkRules::new("n1", "br0").subnet("10.1.0.0/24".parse().unwrap());
        ok.validate().unwrap();
        assert_eq!(
            field(
                NetworkRules::new("bad name", "br0")
                    .subnet("10.0.0.0/8".parse().unwrap())
                    .validate()
                    .unwrap_err()
            ),
            "network name"
        );
        assert_eq!(
            field(
                NetworkRules::new("n", "br/0")
                    .subnet("10.0.0.0/8".parse().unwrap())
                    .validate()
                    .unwrap_err()
            ),
            "bridge"
        );
        assert_eq!(
            field(NetworkRules::new("n", "br0").validate().unwrap_err()),
            "subnets"
        );
        assert_eq!(
            field(
                ok.clone()
                    .snat("fd00::1".parse().unwrap())
                    .validate()
                    .unwrap_err()
            ),
            "snat"
        );
        let bad_link = LinkAllow {
            from: "10.1.0.2".parse().unwrap(),
            to: "10.9.0.3".parse().unwrap(),
            proto: Proto::Tcp,
            port: 80,
        };
        assert_eq!(field(ok.link(bad_link).validate().unwrap_err()), "link");
    }

    #[test]
    fn port_rule_validation_names_the_field() {
        let c: IpAddr = "172.17.0.2".parse().unwrap();
        PortRule::new("n", Proto::Tcp, 8080, c, 80)
            .validate()
            .unwrap();
        assert_eq!(
            field(
                PortRule::new("n", Proto::Tcp, 0, c, 80)
                    .validate()
                    .unwrap_err()
            ),
            "host port"
        );
        assert_eq!(
            field(
                PortRule::new("n", Proto::Tcp, 1, c, 0)
                    .validate()
                    .unwrap_err()
            ),
            "container port"
        );
        let v6 = PortRule::new("n", Proto::Udp, 53, c, 53).host_ip("::1".parse().unwrap());
        assert_eq!(field(v6.validate().unwrap_err()), "host address");
        assert_eq!(
            field(
                PortRule::new("n", Proto::Tcp, 1, "127.0.0.1".parse().unwrap(), 1)
                    .validate()
                    .unwrap_err()
            ),
            "container address"
        );
        let r = PortRule::range("n", Proto::Tcp, None, ((8000, 8010), (80, 90)), c).unwrap();
        assert_eq!(r.len(), 11);
        assert_eq!((r[10].host_port, r[10].container_port), (8010, 90));
        assert_eq!(
            field(PortRule::range("n", Proto::Tcp, None, ((8000, 8010), (80, 85)), c).unwrap_err()),
            "port range"
        );
        assert_eq!(
            field(PortRule::range("n", Proto::Tcp, None, ((9, 8), (9, 8)), c).unwrap_err()),
            "port range"
        );
    }

    #[test]
    fn the_settings_hash_ignores_endpoints_and_stays_as_it_was() {
        let n = NetworkRules::new("n1", "br0").subnet("10.1.0.0/24".parse().unwrap());
        // What `Debug` printed before endpoints existed: tags of existing networks hold.
        let old = "NetworkRules { name: \"n1\", bridge: \"br0\", subnets: [10.1.0.0/24], \
                   masquerade: true, snat: [], icc: true, internal: false, links: [], loopback: false }";
        assert_eq!(
            n.settings_hash(),
            fnv(old.as_bytes(), 0xcbf2_9ce4_8422_2325)
        );
        let with = n.clone().endpoint("veth1", "10.1.0.2".parse().unwrap());
        assert_eq!(with.settings_hash(), n.settings_hash());
        assert_eq!(with.full_hash(), n.full_hash(), "ICC on: nothing enforced");
        let off = n.clone().icc(false);
        let off_with = with.icc(false);
        assert_ne!(off_with.full_hash(), off.full_hash());
        assert_eq!(off_with.enforced_endpoints().len(), 1);
    }

    #[test]
    fn endpoints_are_checked() {
        let n = NetworkRules::new("n1", "br0").subnet("10.1.0.0/24".parse().unwrap());
        let a: IpAddr = "10.1.0.2".parse().unwrap();
        n.clone().endpoint("veth1", a).validate().unwrap();
        assert_eq!(
            field(n.clone().endpoint("veth/1", a).validate().unwrap_err()),
            "endpoint port"
        );
        assert_eq!(
            field(
                n.clone()
                    .endpoint("veth1", "10.9.0.2".parse().unwrap())
                    .validate()
                    .unwrap_err()
            ),
            "endpoint address"
        );
        let twice = n.endpoint("veth1", a).endpoint("veth2", a);
        assert_eq!(field(twice.validate().unwrap_err()), "endpoint address");
    }

    #[test]
    fn display_is_docker_like() {
        let c: IpAddr = "fd00::2".parse().unwrap();
        let p = PortRule::new("n", Proto::Udp, 53, c, 5353).host_ip("::1".parse().unwrap());
        assert_eq!(p.to_string(), "n: udp [::1]:53 -> [fd00::2]:5353");
    }
}
