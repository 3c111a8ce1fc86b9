//! Firewall rules for container networks: a backend-neutral model ([`NetworkRules`],
//! [`PortRule`]) and two backends that write it:
//! - [`Nftables`], native nf_tables over `NETLINK_NETFILTER`, with no `nft` or `iptables`
//!   binary and no C library (always built);
//! - `Iptables` (feature `iptables`), Docker's chain layout (`DOCKER`, `DOCKER-USER`,
//!   `DOCKER-ISOLATION-STAGE-1/2`) through one `iptables-restore` per change, for hosts
//!   whose admins read `iptables -t nat -nL` or that are managed through iptables-legacy.
//!
//! [`open`] picks one by [`Backend`]: explicitly, or automatically ([`Backend::detect`]:
//! iptables when the namespace already has iptables-legacy tables, else nf_tables when
//! the kernel has it). Both pass the same traffic tests (`tests/firewall.rs`).
//!
//! The rest of this page describes the nf_tables backend.
//!
//! Every change (create a network's rules, publish ports, remove) is one atomic nf_tables
//! batch: all of it applies or none. Published ports are elements of maps keyed by
//! (protocol, host address, host port), so publishing or removing a port is one element
//! change, whatever the number of ports already published.
//!
//! Equivalent `nft` layout (`ip` shown; `ip6` is the same with IPv6 fields):
//!
//! ```text
//! table ip netplumb {
//!   map ports     { type inet_proto . ipv4_addr . inet_service : ipv4_addr . inet_service }
//!   map ports_any { type inet_proto . inet_service : ipv4_addr . inet_service }
//!   set published { type ipv4_addr . inet_proto . inet_service }
//!   set bridges   { type ifname }
//!   chain prerouting  { type nat hook prerouting priority dstnat; ip daddr 127.0.0.0/8 drop; jump portmap }
//!   chain output      { type nat hook output priority dstnat; jump portmap }
//!   chain portmap     { dnat to meta l4proto . ip daddr . th dport map @ports
//!                       fib daddr type local dnat to meta l4proto . th dport map @ports_any }
//!   chain postrouting { type nat hook postrouting priority srcnat; <per network: masquerade, hairpin> }
//!   chain forward     { type filter hook forward priority filter; jump user
//!                       ct status dnat ip daddr . meta l4proto . th dport @published accept
//!                       <per network: invalid drop, established accept, links, icc, isolation> }
//!   chain user        { }   # the runtime's users' chain (Docker's DOCKER-USER); never touched
//! }
//! ```
//!
//! The `ip` table comes with the first network, the `ip6` table with the first network
//! that has an IPv6 subnet; each goes in the batch that removes the last thing of a network
//! in it (a table whose users' chain holds rules stays). Removals carry the ruleset
//! generation they read, so they never delete a table another process has just filled.
//!
//! Traffic between two containers of one bridge meets the forward rules through the
//! kernel's bridge netfilter (`net.bridge.bridge-nf-call-iptables`, on by default, as
//! Docker requires too). With ICC off, frames that are not IP are kept apart by
//! bridge-port isolation ([`BridgePort::isolated`](crate::link::BridgePort::isolated)).
//!
//! Rules and elements carry an `nft` comment naming their network, so removing a network
//! removes exactly what it added.
//!
//! With ICC off, a network's registered endpoints ([`NetworkRules::endpoint`]) are also
//! guarded against address spoofing, in a `bridge netplumb` table (see the nf_tables
//! backend's `spoof` module; the iptables backend uses `-m physdev`).
//!
//! [`Firewall::repair`] puts back what someone else removed (a flushed ruleset, a deleted
//! table, flushed chains), and [`FirewallWatch`] notices such removals as they happen.

mod backend;
#[cfg(feature = "iptables")]
mod iptables;
pub(crate) mod nft;
mod repair;
mod rule;
mod select;
mod state;
mod vxlan;
mod writers;

pub use backend::Firewall;
#[cfg(feature = "iptables")]
pub(crate) use iptables::state_from_save;
#[cfg(feature = "iptables")]
pub use iptables::{
    Iptables, IptablesOptions, IptablesVariant, DEFAULT_IPTABLES_WAIT, DEFAULT_LOCK_DIR,
};
pub use nft::{FirewallWatch, Nftables, RepairFn, WatchStats, DEFAULT_TABLE, USER};
pub use repair::Repaired;
pub use rule::{LinkAllow, NetworkRules, PortRule, Proto, NETWORK_NAME_MAX};
pub use select::{open, AnyFirewall, Backend, NoFirewall};
pub use state::FirewallState;
pub use vxlan::VxlanGuard;
