//! [`Firewall`]: the four verbs every backend implements for container networks (add and
//! remove a network's rules, publish and withdraw ports), plus reading back what is
//! installed and repairing what someone else removed.

use super::repair::Repaired;
use super::rule::{NetworkRules, PortRule};
use super::state::FirewallState;
use crate::error::Result;

/// What every firewall backend does for container networks.
pub trait Firewall {
    /// Installs (or, when they differ, replaces) the rules of a network. Applying the same
    /// rules twice changes nothing.
    fn add_network(&mut self, net: &NetworkRules) -> Result<()>;

    /// Removes every rule and published port of network `name`; a network that is not
    /// there is not an error.
    fn remove_network(&mut self, name: &str) -> Result<()>;

    /// Publishes ports, all or none. Publishing a port that is already published with the
    /// same target changes nothing.
    fn publish(&mut self, ports: &[PortRule]) -> Result<()>;

    /// Withdraws published ports; ports that are not published are skipped.
    fn unpublish(&mut self, ports: &[PortRule]) -> Result<()>;

    /// Reads back what the backend has installed.
    fn state(&mut self) -> Result<FirewallState>;

    /// Puts back what is missing of what `networks` and `ports` need, after someone else
    /// removed it (`nft flush ruleset`, a firewalld reload, `iptables -F`): the shared
    /// tables, chains, sets and jumps, each network's rules and anti-spoofing elements,
    /// each published port. Parts that are intact are not touched, so on an intact
    /// ruleset this writes nothing and returns an empty [`Repaired`]. Rules and ports of
    /// networks not listed are left alone; the users' chain keeps its rules unless it was
    /// deleted.
    ///
    /// ```no_run
    /// use netplumb::firewall::{Firewall, Nftables, NetworkRules};
    /// let mut fw = Nftables::open_in(&netplumb::Netns::current()?)?;
    /// let net = NetworkRules::new("bridge", "docker0").subnet("172.17.0.0/16".parse().unwrap());
    /// fw.add_network(&net)?;
    /// // ... someone runs `nft flush ruleset` ...
    /// let fixed = fw.repair(&[net], &[])?;
    /// println!("{fixed}");
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    fn repair(&mut self, networks: &[NetworkRules], ports: &[PortRule]) -> Result<Repaired>;
}
