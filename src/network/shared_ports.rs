//! A host port that one container publishes on several of its networks, as netavark
//! does: each network maps the container's ports to the container's address on it.
//!
//! - In the port registry the port is held once, and stays held while any of the
//!   container's attachments has it (a connect of the same mapping on another network is
//!   no conflict; a disconnect releases it only when no other attachment has it).
//! - In the firewall, the iptables backend holds each network's rule (the first in the
//!   chain answers); the nf_tables backend, whose maps hold one entry per host port, holds
//!   the rule of the network whose name sorts first ("the holder"), and hands the port to
//!   the next network when the holder leaves.

use std::net::IpAddr;

use super::host::Host;
use super::rules::port_rules;
use super::state::Attachment;
use crate::error::Result;
use crate::firewall::{self, Firewall};
use crate::firewall::{Backend, PortRule, Proto};
use crate::journal::Txn;
use crate::ports::book::PortBook;
use crate::ports::registry::CursorKey;
use crate::ports::PublishedPort;

/// What one nf_tables map entry is keyed by: protocol, family, host address, host port.
pub(crate) fn key(r: &PortRule) -> (Proto, bool, Option<IpAddr>, u16) {
    let ip = r.host_ip.filter(|i| !i.is_unspecified());
    (r.proto, r.container_ip.is_ipv4(), ip, r.host_port)
}

/// Of `rules` (of several networks, which may share host ports), the holders: per key,
/// the rule of the network whose name sorts first.
pub(crate) fn holders(rules: &[PortRule]) -> Vec<PortRule> {
    let mut out: Vec<PortRule> = Vec::new();
    for r in rules {
        match out.iter_mut().find(|o| key(o) == key(r)) {
            Some(o) if r.network < o.network => *o = r.clone(),
            Some(_) => {}
            None => out.push(r.clone()),
        }
    }
    out
}

/// The port rules of `atts` (each on its own network).
pub(crate) fn rules_of(atts: &[Attachment]) -> Result<Vec<PortRule>> {
    let mut out = Vec::new();
    for a in atts {
        out.extend(port_rules(&a.network, &a.addrs, &a.ports)?);
    }
    Ok(out)
}

/// The firewall changes of a connect that publishes `rules` when the container's other
/// attachments already publish `others`: the rules to publish, and the other networks'
/// rules to withdraw first (the new network takes the port over).
pub(crate) fn connect_changes(
    one_per_port: bool,
    rules: Vec<PortRule>,
    others: &[PortRule],
) -> (Vec<PortRule>, Vec<PortRule>) {
    if !one_per_port || others.is_empty() {
        return (rules, Vec::new());
    }
    let current = holders(others);
    let (mut publish, mut take) = (Vec::new(), Vec::new());
    for r in rules {
        match current.iter().find(|o| key(o) == key(&r)) {
            None => publish.push(r),
            Some(o) if r.network < o.network => {
                take.push(o.clone());
                publish.push(r);
            }
            Some(_) => {}
        }
    }
    (publish, take)
}

/// The firewall changes of a disconnect of an attachment publishing `rules` when the
/// container's other attachments publish `survivors`: the rules to withdraw, and the
/// survivors' rules to publish after (they take the ports over).
pub(crate) fn disconnect_changes(
    one_per_port: bool,
    rules: Vec<PortRule>,
    survivors: &[PortRule],
) -> (Vec<PortRule>, Vec<PortRule>) {
    if !one_per_port || survivors.is_empty() {
        return (rules, Vec::new());
    }
    let mut all = rules.clone();
    all.extend(survivors.iter().cloned());
    let before = holders(&all);
    let after = holders(survivors);
    let held: Vec<PortRule> = rules.into_iter().filter(|r| before.contains(r)).collect();
    let next = after
        .into_iter()
        .filter(|s| held.iter().any(|r| key(r) == key(s)))
        .collect();
    (held, next)
}

impl Host {
    /// Whether the backend holds one rule per host port (nf_tables maps).
    pub(crate) fn one_rule_per_port(&self) -> bool {
        self.fw.backend() == Backend::Nftables
    }

    /// Publishes `rules`, the rules of the other networks that take over the leaving
    /// containers' host ports (the last firewall step of a teardown).
    pub(crate) fn republish(&mut self, rules: &[PortRule], tx: &mut Txn) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let (ns, backend, undo) = (self.netns.clone(), self.fw.backend(), rules.to_vec());
        tx.record(
            format!("unpublish {} port(s) again", undo.len()),
            move || firewall::open(backend, &ns)?.unpublish(&undo),
        );
        self.fw.publish(rules)
    }
}

/// The registry as a connect of a container sees it: the ports its other attachments
/// hold are no conflict.
pub(crate) struct SharedBook<'a, B: PortBook> {
    pub(crate) inner: B,
    pub(crate) held: &'a [PublishedPort],
}

impl<B: PortBook> PortBook for SharedBook<'_, B> {
    fn conflict(&mut self, proto: Proto, ip: IpAddr, port: u16) -> Result<bool> {
        let mine = self
            .held
            .iter()
            .any(|p| p.proto == proto && p.host_port == port && p.host_ip == ip);
        if mine {
            return Ok(false);
        }
        self.inner.conflict(proto, ip, port)
    }

    fn cursor(&mut self, key: &CursorKey) -> Result<Option<u16>> {
        self.inner.cursor(key)
    }

    fn set_cursor(&mut self, key: CursorKey, port: u16) -> Result<()> {
        self.inner.set_cursor(key, port)
    }

    fn insert(&mut self, p: PublishedPort) -> Result<()> {
        self.inner.insert(p)
    }

    fn remove(&mut self, p: &PublishedPort) -> Result<bool> {
        self.inner.remove(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(net: &str, ip: &str) -> PortRule {
        PortRule::new(net, Proto::Tcp, 8080, ip.parse().unwrap(), 80)
    }

    #[test]
    fn the_network_that_sorts_first_holds_the_port_and_hands_it_on() {
        let (a, b) = (rule("a", "10.0.1.2"), rule("b", "10.0.2.2"));
        assert_eq!(holders(&[b.clone(), a.clone()]), vec![a.clone()]);
        // b connects while a holds: b is shadowed.
        assert_eq!(
            connect_changes(true, vec![b.clone()], std::slice::from_ref(&a)),
            (vec![], vec![])
        );
        // a connects while b holds: a takes over.
        assert_eq!(
            connect_changes(true, vec![a.clone()], std::slice::from_ref(&b)),
            (vec![a.clone()], vec![b.clone()])
        );
        // a leaves: b takes over; b leaves: nothing changes.
        assert_eq!(
            disconnect_changes(true, vec![a.clone()], std::slice::from_ref(&b)),
            (vec![a.clone()], vec![b.clone()])
        );
        assert_eq!(
            disconnect_changes(true, vec![b.clone()], std::slice::from_ref(&a)),
            (vec![], vec![])
        );
        // One rule per network (iptables): every rule goes in and out.
        assert_eq!(
            connect_changes(false, vec![b.clone()], std::slice::from_ref(&a)),
            (vec![b.clone()], vec![])
        );
        // IPv4 and IPv6 rules of one port are separate entries.
        let v6 = rule("b", "fd00::2");
        assert_eq!(holders(&[a.clone(), v6.clone()]).len(), 2);
    }
}
