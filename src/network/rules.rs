//! The firewall rules of a container's published ports, as connecting, disconnecting,
//! garbage collection and reconciliation all build them.

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::firewall::PortRule;
use crate::ports::PublishedPort;

/// The rule of published port `p`: the host port to the container's address of the host
/// address's family; `None` when the container has no address of that family.
pub(crate) fn port_rule(network: &str, addrs: &[IpNet], p: &PublishedPort) -> Option<PortRule> {
    let c = addrs
        .iter()
        .find(|a| a.addr().is_ipv4() == p.host_ip.is_ipv4())?;
    let r = PortRule::new(network, p.proto, p.host_port, c.addr(), p.container_port);
    Some(if p.host_ip.is_unspecified() {
        r
    } else {
        r.host_ip(p.host_ip)
    })
}

/// The rules of all of `ports`; a port whose family the container has no address of is
/// an error.
pub(crate) fn port_rules(
    network: &str,
    addrs: &[IpNet],
    ports: &[PublishedPort],
) -> Result<Vec<PortRule>> {
    ports
        .iter()
        .map(|p| {
            port_rule(network, addrs, p).ok_or_else(|| {
                Error::invalid(
                    "host address",
                    p.host_ip,
                    "the container has no address of that family",
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::Proto;

    #[test]
    fn ports_follow_the_host_address_family() {
        let addrs: Vec<IpNet> = vec![
            "172.17.0.2/16".parse().unwrap(),
            "fd00::2/64".parse().unwrap(),
        ];
        let ports = [
            PublishedPort::new(Proto::Tcp, "0.0.0.0".parse().unwrap(), 8080, 80),
            PublishedPort::new(Proto::Udp, "::1".parse().unwrap(), 5353, 53),
        ];
        let r = port_rules("n", &addrs, &ports).unwrap();
        assert_eq!(r[0].to_string(), "n: tcp 0.0.0.0:8080 -> 172.17.0.2:80");
        assert_eq!(r[1].to_string(), "n: udp [::1]:5353 -> [fd00::2]:53");
        assert!(port_rule("n", &addrs[..1], &ports[1]).is_none());
        assert!(port_rules("n", &addrs[..1], &ports)
            .unwrap_err()
            .is_invalid());
    }
}
