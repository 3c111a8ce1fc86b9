//! For stateless callers, which send the whole network and container with every call
//! (Podman's network tool contract, CNI): [`Host::ensure_network`] and
//! [`Host::ensure_connected`].

use super::config::NetworkConfig;
use super::container::Container;
use super::host::Host;
use super::state::{Attachment, NetworkInfo};
use crate::error::{Error, Object, Result};

/// What of a network's definition differs from `cfg`: only what `cfg` sets (a subnet or
/// bridge left to the defaults matches whatever was chosen).
fn differs(cfg: &NetworkConfig, info: &NetworkInfo) -> Vec<&'static str> {
    let mut d = Vec::new();
    if cfg.bridge.as_ref().is_some_and(|b| *b != info.bridge) {
        d.push("bridge");
    }
    if !cfg.subnets.is_empty() && cfg.subnets != info.subnets {
        d.push("subnets");
    }
    if !cfg.gateways.is_empty() && cfg.gateways != info.gateways {
        d.push("gateways");
    }
    if cfg.ip_range.is_some() && cfg.ip_range != info.ip_range {
        d.push("ip range");
    }
    if cfg.mtu != info.mtu {
        d.push("mtu");
    }
    if cfg.internal != info.internal {
        d.push("internal");
    }
    if cfg.icc != info.icc {
        d.push("icc");
    }
    if cfg.masquerade != info.masquerade {
        d.push("masquerade");
    }
    if cfg.ipv6 != info.ipv6 {
        d.push("ipv6");
    }
    d
}

impl Host {
    /// Makes sure network `cfg` exists as described, for a caller that keeps no state of
    /// its own and describes the network again with every call.
    ///
    /// - Not defined: created, as [`Host::create_network`] does.
    /// - Defined as described (what `cfg` leaves to the defaults matches anything): the
    ///   definition is returned; if its bridge is gone (a reboot, someone's `ip link
    ///   del`), the next connect makes it again with its addresses and firewall rules.
    /// - Defined otherwise: with no container attached, removed and created as described;
    ///   with containers attached, refused with [`Error::Conflict`] naming what differs,
    ///   and nothing changes.
    ///
    /// The caller's description is the truth: attachments whose veth the kernel no
    /// longer has (their container died without a teardown) do not count as containers,
    /// and a network of another name that holds the bridge or an overlapping subnet,
    /// with no live container, is removed to make way. Do not mix this with networks a
    /// user made by hand on the same state folder.
    ///
    /// ```no_run
    /// use netplumb::network::{Host, NetworkConfig};
    /// let mut host = Host::open_in(&netplumb::Netns::current()?, "/run/my-runtime/net")?;
    /// let cfg = NetworkConfig::new("podman").bridge("podman0").subnet("10.88.0.0/16".parse().unwrap());
    /// let first = host.ensure_network(&cfg)?;
    /// let again = host.ensure_network(&cfg)?;      // the same network, nothing made twice
    /// assert_eq!(first.id, again.id);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn ensure_network(&mut self, cfg: &NetworkConfig) -> Result<NetworkInfo> {
        cfg.validate()?;
        let Some(info) = self.defs.get(&cfg.name)? else {
            return match self.create_network(cfg) {
                // Another process created it meanwhile: look again (once: it is defined).
                Err(e) if e.is_exists() && self.defs.get(&cfg.name)?.is_some() => {
                    self.ensure_network(cfg)
                }
                // A network left from before holds the subnet or the bridge: gone with
                // it when nothing of it is alive, then once more.
                Err(e) if e.is_exists() && self.clear_way(cfg)? => self.create_network(cfg),
                r => r,
            };
        };
        let d = differs(cfg, &info);
        if d.is_empty() {
            return Ok(info);
        }
        // Attachments whose veth the kernel no longer has do not keep a network in use.
        self.drop_stale(&cfg.name)?;
        if !self.attachments(Some(&cfg.name))?.is_empty() {
            return Err(Error::Conflict {
                object: Object::Network,
                name: cfg.name.clone(),
                network: cfg.name.clone(),
                differs: d,
            });
        }
        log::info!(
            target: "netplumb::network",
            "network {} is defined with another {}: made again",
            cfg.name,
            d.join(", ")
        );
        self.remove_network(&cfg.name, false)?;
        self.create_network(cfg)
    }

    /// Connects `ctr` to `network` as asked, whatever an earlier call left: the existing
    /// attachment when it is the same request (a call repeated after a crash or a
    /// timeout), else, when the container is attached otherwise (a fresh namespace after
    /// a restart that skipped the teardown, other ports or addresses), that attachment is
    /// disconnected first and the container connected as asked now.
    ///
    /// [`Host::connect`] refuses the second case with [`Error::Conflict`], since it cannot
    /// tell a restart from two containers given one id; a caller for whom the id names one
    /// container for good (Podman, CNI) uses this.
    ///
    /// An address or name held by an attachment whose veth the kernel no longer has (its
    /// container died with no teardown, the host's namespace was made anew) is released
    /// by disconnecting that attachment, and the connect is tried again.
    pub fn ensure_connected(&mut self, network: &str, ctr: &Container) -> Result<Attachment> {
        match self.connect_replacing(network, ctr) {
            Err(e) if e.is_exists() && self.drop_stale(network)? > 0 => {
                self.connect_replacing(network, ctr)
            }
            r => r,
        }
    }

    /// Removes the other networks that stand in `cfg`'s way (same bridge, or a subnet
    /// that overlaps) and have no live attachment; whether any went.
    fn clear_way(&mut self, cfg: &NetworkConfig) -> Result<bool> {
        let mut cleared = false;
        for other in self.networks()? {
            let in_way = cfg.bridge.as_ref() == Some(&other.bridge)
                || cfg.subnets.iter().any(|s| {
                    other
                        .subnets
                        .iter()
                        .any(|o| o.contains(&s.network()) || s.contains(&o.network()))
                });
            if other.name == cfg.name || !in_way {
                continue;
            }
            self.drop_stale(&other.name)?;
            if self.attachments(Some(&other.name))?.is_empty() {
                log::info!(
                    target: "netplumb::network",
                    "network {} stands in the way of {} and has no container: removed",
                    other.name,
                    cfg.name
                );
                self.remove_network(&other.name, false)?;
                cleared = true;
            }
        }
        Ok(cleared)
    }

    /// Disconnects the attachments of `network` whose host veth is gone from the host
    /// namespace; returns how many.
    fn drop_stale(&mut self, network: &str) -> Result<usize> {
        let atts = self.attachments(Some(network))?;
        if atts.is_empty() {
            return Ok(0);
        }
        let links = self.rtnl.links()?;
        let dead: Vec<&str> = atts
            .iter()
            .filter(|a| !links.iter().any(|l| l.name == a.host_veth))
            .map(|a| a.container.as_str())
            .collect();
        if dead.is_empty() {
            return Ok(0);
        }
        log::info!(
            target: "netplumb::network",
            "network {network}: {} attachment(s) whose veth is gone dropped: {}",
            dead.len(),
            dead.join(", ")
        );
        self.disconnect_many(network, &dead)?;
        Ok(dead.len())
    }

    fn connect_replacing(&mut self, network: &str, ctr: &Container) -> Result<Attachment> {
        match self.connect(network, ctr) {
            Err(Error::Conflict { differs, .. }) => {
                log::info!(
                    target: "netplumb::network",
                    "container {} is attached to network {network} with another {}: connected again",
                    ctr.id,
                    differs.join(", ")
                );
                self.disconnect(network, &ctr.id)?;
                self.connect(network, ctr)
            }
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_config_sets_is_compared() {
        let info = NetworkInfo {
            name: "n".into(),
            bridge: "br-0123456789ab".into(),
            subnets: vec!["172.18.0.0/16".parse().unwrap()],
            gateways: vec!["172.18.0.1".parse().unwrap()],
            icc: true,
            masquerade: true,
            ..NetworkInfo::default()
        };
        assert!(differs(&NetworkConfig::new("n"), &info).is_empty());
        let other = NetworkConfig::new("n")
            .bridge("podman1")
            .subnet("10.89.0.0/24".parse().unwrap())
            .internal(true);
        assert_eq!(differs(&other, &info), ["bridge", "subnets", "internal"]);
    }
}
