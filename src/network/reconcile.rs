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

use super::host::Host;
use super::rules::port_rule;
use crate::error::Result;
use crate::firewall::{Firewall, FirewallWatch, NetworkRules, PortRule, Repaired};

/// What [`Host::reconcile`] restored.
///
/// ```
/// use netplumb::network::ReconcileReport;
/// let r = ReconcileReport::default();
/// assert!(r.is_empty());
/// ```
///
/// With feature `serde`: an object with the fields below (missing ones empty), `firewall`
/// as in [`Repaired`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
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
        for info in self.defs.list()? {
            if !same_backend(&info.firewall, backend.as_str()) {
                skipped.push(info.name.clone());
                continue;
            }
            let atts = self.attachments(Some(&info.name))?;
            for (a, p) in atts
                .iter()
                .flat_map(|a| a.ports.iter().map(move |p| (a, p)))
            {
                match port_rule(&info.name, &a.addrs, p) {
                    Some(r) => ports.push(r),
                    None => {
                        log::warn!("{}: no container address for published port {p}", info.name)
                    }
                }
            }
            nets.push(self.rules(&info, &atts));
        }
        if self.one_rule_per_port() {
            // A host port a container publishes on several networks: one entry
            // (shared_ports.rs).
            ports = super::shared_ports::holders(&ports);
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
        let mut own = self.opts.clone().backend(backend).open(&self.netns)?;
        let tables: Vec<String> = match &self.fw {
            crate::firewall::AnyFirewall::Nftables(fw) => vec![fw.table().to_owned()],
            #[cfg(feature = "iptables")]
            crate::firewall::AnyFirewall::Iptables(fw) => {
                if fw.version().contains("legacy") {
                    log::warn!("iptables-legacy sends no change notifications: the firewall watch will not see its rules go");
                }
                vec!["nat".to_owned(), "filter".to_owned()]
            }
            // No rules, nothing to watch: the watch idles until stopped.
            crate::firewall::AnyFirewall::Disabled(_) => Vec::new(),
        };
        let names: Vec<&str> = tables.iter().map(String::as_str).collect();
        let repair = Box::new(move || own.reconcile().map(|r| !r.firewall.is_empty()));
        FirewallWatch::start(&self.netns, &names, debounce, repair)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_another_backend_are_skipped() {
        assert!(same_backend("", "nftables") && !same_backend("iptables", "nftables"));
    }
}
