//! What a namespace's firewall holds, whichever backend wrote it: [`FirewallState`],
//! what a backend has installed, and whether the namespace already has iptables-legacy
//! tables (which decides the automatic choice of backend and the iptables binaries).

use super::rule::PortRule;
use crate::error::Result;
use crate::netns::Netns;

/// What a backend has installed, read back from the kernel
/// ([`Firewall::state`](crate::firewall::Firewall::state)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FirewallState {
    /// The families our tables exist in (`ip`, `ip6`).
    pub families: Vec<&'static str>,
    /// The networks that have rules, sorted.
    pub networks: Vec<String>,
    /// How many rules each network owns, in `networks` order.
    pub rules: Vec<usize>,
    /// Every published port, sorted.
    pub ports: Vec<PortRule>,
}

impl FirewallState {
    /// Puts networks (with their rule counts) and ports in a stable order, whatever order
    /// the backend read them in.
    pub(crate) fn sort(&mut self) {
        let mut pairs: Vec<(String, usize)> =
            self.networks.drain(..).zip(self.rules.drain(..)).collect();
        pairs.sort();
        (self.networks, self.rules) = pairs.into_iter().unzip();
        self.ports.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    }
}

/// Whether namespace `ns` has iptables-legacy tables (read inside it, from
/// `/proc/thread-self/net`: `/proc/net` follows the main thread's namespace).
pub(crate) fn legacy_tables_in_use(ns: &Netns) -> Result<bool> {
    ns.run(|| {
        ["ip_tables_names", "ip6_tables_names"].iter().any(|f| {
            std::fs::read_to_string(format!("/proc/thread-self/net/{f}"))
                .is_ok_and(|s| !s.trim().is_empty())
        })
    })
}
