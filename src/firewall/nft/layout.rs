//! The names of what the nf_tables backend creates, in one place: the tables' default
//! name, the chains and sets of the `ip`/`ip6` tables, the chain and sets of the
//! `bridge` table (anti-spoofing), the families, and the comments that tag a network's
//! rules and elements. Every other file of the backend reads them from here.

use crate::firewall::rule::NetworkRules;
use crate::wire::nft;

pub(crate) use crate::wire::nft::NFPROTO_BRIDGE;

/// The default name of our tables (`ip netplumb`, `ip6 netplumb`, `bridge netplumb`).
pub const DEFAULT_TABLE: &str = "netplumb";

/// Chain names.
pub(super) const PREROUTING: &str = "prerouting";
pub(super) const OUTPUT: &str = "output";
pub(super) const POSTROUTING: &str = "postrouting";
pub(super) const FORWARD: &str = "forward";
/// The chain that consults the port maps (not `dnat`, which is an `nft` keyword).
pub(super) const DNAT: &str = "portmap";
/// The chain a runtime's users fill (Docker's DOCKER-USER); netplumb never touches it
/// after creating it.
pub const USER: &str = "user";

/// Set names.
pub(super) const PORTS: &str = "ports";
pub(super) const PORTS_ANY: &str = "ports_any";
pub(super) const PUBLISHED: &str = "published";
pub(super) const BRIDGES: &str = "bridges";

/// Our chains, in the order they are created.
pub(super) const CHAINS: [&str; 6] = [PREROUTING, OUTPUT, POSTROUTING, FORWARD, DNAT, USER];

/// Our sets, in the order they are created.
pub(super) const SET_NAMES: [&str; 4] = [PORTS, PORTS_ANY, PUBLISHED, BRIDGES];

/// The chain of the bridge table (anti-spoofing).
pub(super) const BRIDGE_CHAIN: &str = "prerouting";
/// The sets of the bridge table: every registered address, and the port it belongs to.
pub(super) const ADDRS4: &str = "addrs4";
pub(super) const OWNERS4: &str = "owners4";
pub(super) const ADDRS6: &str = "addrs6";
pub(super) const OWNERS6: &str = "owners6";
/// The bridge table's sets, in the order they are created.
pub(super) const BRIDGE_SETS: [&str; 4] = [ADDRS4, OWNERS4, ADDRS6, OWNERS6];

/// The name `nft` gives family `af`.
pub(super) fn family_name(af: u8) -> &'static str {
    match af {
        nft::NFPROTO_IPV4 => "ip",
        nft::NFPROTO_IPV6 => "ip6",
        NFPROTO_BRIDGE => "bridge",
        _ => "inet",
    }
}

/// What every comment of ours starts with.
pub(super) const NET_TAG: &str = "netplumb net=";

/// The comment that marks a network's rules: its name and a hash of its settings, so a
/// re-apply with the same settings is recognised and one with new settings replaces.
pub(super) fn tag(net: &NetworkRules) -> String {
    format!("{}{} h={:016x}", NET_TAG, net.name, net.settings_hash())
}

/// The comment of a network's set elements (no hash: elements are per port).
pub(super) fn elem_tag(network: &str) -> String {
    format!("{NET_TAG}{network}")
}

/// The network a comment of ours names.
pub(crate) fn network_of(comment: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(comment).ok()?.strip_prefix(NET_TAG)?;
    Some(s.split(' ').next().unwrap_or(s))
}
