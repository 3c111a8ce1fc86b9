//! Self-repair: [`Host::reconcile`] puts back the firewall objects of every recorded
//! network after someone else removed them (`nft flush ruleset`, a firewalld reload that
//! deleted and re-created tables, `iptables -F DOCKER`, deleted jumps), and
//! [`Host::watch_firewall`] does it by itself as soon as such a removal happens.
//!
//! What the records say each network needs is built exactly as connecting and
//! disconnecting build it (the network's rules with its attachments' `--link`
//! allowances, the published ports of its attachments), and handed to the backend's
//! [`Firewall::repair`], which rewrites only what is missing or damaged.

use std::time::Duration;

use ipnet::IpNet;

use super::host::Host;
use crate::error::Result;
use crate::firewall::{Firewall, FirewallWatch, NetworkRules, PortRule, Repaired};
use crate::ports::PublishedPort;

/// What [`Host::reconcile`] restored.
///
/// ```
/// use netplumb::network::ReconcileReport;
/// let r = ReconcileReport::default();
/// assert!(r.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// What the firewall backend put back.
    pub firewall: Repaired,
    /// Networks left alone because their records name another firewall backend than the
    /// host's.
    pub skipped: Vec<String>,
}

impl ReconcileReport {
    /// Whether nothing was restored (and nothing skipped).
    ///
    /// ```
    /// # use netplumb::network::ReconcileReport;
    /// assert!(ReconcileReport::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.firewall.is_empty() && self.skipped.is_empty()
    }
}

/// The firewall rules of published ports: each host port to the container's address of
/// the host address's family (as connecting publishes them).
fn port_rules(network: &str, addrs: &[IpNet], ports: &[PublishedPort]) -> Vec<PortRule> {
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        let family = |a: &&IpNet| a.addr().is_ipv4() == p.host_ip.is_ipv4();
        let Some(c) = addrs.iter().find(family) else {
            log::warn!("{network}: no container address for published port {p}");
            continue;
        };
        let mut r = PortRule::new(network, p.proto, p.host_port, c.addr(), p.container_port);
        if !p.host_ip.is_unspecified() {
            r = r.host_ip(p.host_ip);
        }
        out.push(r);
    }
    out
}

/// Whether the records of a network name `backend` (or no backend: older records).
fn same_backend(recorded: &str, backend: &str) -> bool {
    recorded.is_empty() || recorded == backend
}

impl Host {
    /// Restores the firewall objects of every recorded network from the records: the
    /// backend's shared tables, chains, sets and jumps, each network's masquerade,
    /// isolation, ICC and `--link` rules, and the published ports of its containers.
    /// Only what is missing or damaged is rewritten, in one atomic change per backend
    /// transaction; on an intact ruleset nothing is written and the report is empty.
    ///
    /// Networks whose records name another backend than this host's are skipped and
    /// listed in [`ReconcileReport::skipped`].
    ///
    /// It works from the records as they are when it reads them: a network or container
    /// that another process removes at that very moment may get its rules back, until
    /// that removal's own teardown (or the next reconcile) takes them away again.
    ///
    /// ```no_run
    /// use netplumb::network::Host;
    /// let mut host = Host::open_in(&netplumb::Netns::current()?, "/var/lib/netplumb")?;
    /// // ... `nft flush ruleset` ran ...
    /// let report = host.reconcile()?;
    /// println!("{}", report.firewall); // restored table ip netplumb, ...; networks bridge; 2 port(s)
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    #[doc(alias = "repair")]
    pub fn reconcile(&mut self) -> Result<ReconcileReport> {
        let (nets, ports, skipped) = self.wanted_firewall()?;
        let firewall = self.fw.repair(&nets, &ports)?;
        if !firewall.is_empty() {
            log::info!("reconcile: {firewall}");
        }
        Ok(ReconcileReport { firewall, skipped })
    }

    /// The rules and ports the records say the firewall should hold, and the networks of
    /// another backend.
    fn wanted_firewall(&self) -> Result<(Vec<NetworkRules>, Vec<PortRule>, Vec<String>)> {
        let backend = self.fw.backend();
        let (mut nets, mut ports, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        for info in self.state.networks()? {
            if !same_backend(&info.firewall, backend.as_str()) {
                skipped.push(info.name.clone());
                continue;
            }
            let atts = self.state.attachments(Some(&info.name))?;
            for a in &atts {
                ports.extend(port_rules(&info.name, &a.addrs, &a.ports));
            }
            nets.push(self.rules(&info, &atts));
        }
        Ok((nets, ports, skipped))
    }

    /// Starts a [`FirewallWatch`] that runs [`Host::reconcile`] (on a host context of its
    /// own, over the same records and backend) once `debounce` has passed after another
    /// process deleted some of this host's firewall objects. Stop it with
    /// [`FirewallWatch::stop`] or by dropping it.
    ///
    /// It reacts to nf_tables notifications: with the nf_tables backend, deletions in the
    /// `netplumb` tables; with iptables-nft, in the `nat` and `filter` tables.
    /// iptables-legacy sends none, so with it, call [`Host::reconcile`] on a timer.
    /// Changes this process makes through netplumb are never taken for damage.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use netplumb::network::Host;
    /// let host = Host::open_in(&netplumb::Netns::current()?, "/var/lib/netplumb")?;
    /// let watch = host.watch_firewall(Duration::from_millis(250))?;
    /// // ... runs until stopped ...
    /// let stats = watch.stop();
    /// println!("{} repairs", stats.repairs);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn watch_firewall(&self, debounce: Duration) -> Result<FirewallWatch> {
        let backend = self.fw.backend();
        let mut own = Host::open_with(&self.netns, self.state_dir.clone(), backend)?;
        let tables: Vec<String> = match &self.fw {
            crate::firewall::AnyFirewall::Nftables(fw) => vec![fw.table().to_owned()],
            #[cfg(feature = "iptables")]
            crate::firewall::AnyFirewall::Iptables(fw) => {
                if fw.version().contains("legacy") {
                    log::warn!("iptables-legacy sends no change notifications: the firewall watch will not see its rules go");
                }
                vec!["nat".to_owned(), "filter".to_owned()]
            }
        };
        let names: Vec<&str> = tables.iter().map(String::as_str).collect();
        let repair = Box::new(move || own.reconcile().map(|r| !r.firewall.is_empty()));
        FirewallWatch::start(&self.netns, &names, debounce, repair)
    }
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
        let r = port_rules("n", &addrs, &ports);
        assert_eq!(r[0].to_string(), "n: tcp 0.0.0.0:8080 -> 172.17.0.2:80");
        assert_eq!(r[1].to_string(), "n: udp [::1]:5353 -> [fd00::2]:53");
        assert!(port_rules("n", &addrs[..1], &ports[1..]).is_empty());
        assert!(same_backend("", "nftables") && !same_backend("iptables", "nftables"));
    }
}
