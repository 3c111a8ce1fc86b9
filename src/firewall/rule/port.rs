//! [`PortRule`]: one published port (`-p`), and its validation.

use std::fmt;
use std::net::IpAddr;

use super::network::check_network_name;
use super::proto::Proto;
use crate::error::{Error, Result};

/// One published port: traffic to `host_ip:host_port` (any local address when `host_ip`
/// is `None`) goes to `container_ip:container_port` (`-p`).
///
/// ```
/// use netplumb::firewall::{PortRule, Proto};
/// let p = PortRule::new("bridge", Proto::Tcp, 8080, "172.17.0.2".parse().unwrap(), 80);
/// assert_eq!(p.to_string(), "bridge: tcp 0.0.0.0:8080 -> 172.17.0.2:80");
/// ```
///
/// With feature `serde`: an object with the fields below, `proto` as `"tcp"`, addresses
/// as text. Deserializing does not check it: the backends do, before they write anything.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
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
    /// The order the backends list ports in: network, protocol, host address, host port.
    pub(crate) fn order_key(&self) -> (&str, super::Proto, Option<std::net::IpAddr>, u16) {
        (&self.network, self.proto, self.host_ip, self.host_port)
    }

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
