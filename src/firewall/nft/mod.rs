//! The native nf_tables backend: rules as nf_tables objects over `NETLINK_NETFILTER`,
//! every change one atomic batch.
//!
//! Its files, each importing only those listed before it: `layout` (the names of our
//! tables, chains, sets and comments), `exprs` (expression building blocks), `elems`
//! (port elements' keys and values), `dump` (reading our tables back), `batch` (one
//! batch being built and sent), `prune` (deleting a table nothing needs any more),
//! `ports`, `skeleton`, `network` and `spoof` (what goes in a batch), `repair` (putting
//! back what someone else removed), `nftables` (the backend itself); `watch` stands
//! apart.

mod batch;
pub(crate) mod dump;
pub(crate) mod elems;
mod exprs;
pub(crate) mod layout;
mod network;
mod nftables;
mod ports;
mod prune;
mod repair;
mod skeleton;
mod spoof;
mod watch;

pub use layout::{DEFAULT_TABLE, USER};
pub use nftables::Nftables;
pub use watch::{FirewallWatch, RepairFn, WatchStats};
