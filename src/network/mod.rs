//! Docker-style networks as library calls: [`Host`] creates bridge networks
//! ([`NetworkConfig`]), connects containers to them ([`Container`]), disconnects and
//! removes them, and collects garbage, each operation inside one undo journal
//! ([`crate::journal::Txn`]) so that a failure at any step leaves nothing behind.
//!
//! What a bridge network is made of (Docker's bridge driver):
//!
//! | step | `ip`/`nft`/`docker` equivalent | undone by |
//! |---|---|---|
//! | subnet and gateway | `docker network create --subnet --gateway` | releasing the IPAM network |
//! | bridge | `ip link add br-… address 02:… type bridge stp_state 0 mcast_snooping 0; ip link set br-… up` (or reuse; IPv6 off on it without an IPv6 subnet) | `ip link del` (if created) |
//! | gateway address | `ip addr add 172.18.0.1/16 dev br-…` | `ip addr del` |
//! | forwarding | `sysctl net.ipv4.ip_forward=1` | restoring the old value |
//! | firewall | masquerade, isolation, ICC ([`crate::firewall`]) | removing the network's rules |
//!
//! Connecting a container: an address lease, a veth pair (host end `veth` + 7 hex digits
//! on the bridge, container end `eth0` created straight in the container's namespace with
//! the MAC derived from the address, `02:42:…`; one queue each end; the host end with
//! IPv6 off, hairpin on, then up), `lo` and `eth0` up (`eth0` without any IPv6 address
//! when the network has no IPv6 subnet), the address, the default route via the gateway
//! (on the container's first network, unless internal), published ports, `--link`
//! allowances, and the container's files.
//!
//! Teardown reads and plans everything first, then removes the records (so a crash
//! part-way leaves garbage that [`Host::gc`] recognises, not a half-live container), then
//! the firewall rules (nothing reaches a half-removed container), the leases and host
//! ports, and last the links, all in one atomic kernel request (an interface group), or,
//! with [`Host::defer_link_deletion`], down and handed to a background thread that deletes
//! them in batches. Every step but that last one has an exact inverse in the journal, so a
//! failure leaves everything as it was.

pub(crate) mod clash;
mod config;
mod container;
mod container_spec;
mod create;
mod durable;
mod endpoint;
mod endpoint_files;
mod ensure;
pub mod files;
mod gc;
mod host;
#[cfg(feature = "serde")]
pub mod inspect;
mod migrate;
mod mode;
mod names;
mod oplog;
mod plan;
mod port_rows;
mod random;
mod reaper;
mod reconcile;
mod reconnect;
mod rules;
mod runtime;
mod shared_ports;
mod state;
mod teardown;

pub use config::{NetworkConfig, DEFAULT_BRIDGE, DEFAULT_NETWORK};
pub use container::Container;
pub use container_spec::ContainerSpec;
pub use gc::GcReport;
pub use host::{Host, HostOptions, DEFAULT_BUSY_TIMEOUT, DEFAULT_RUN_DIR, DEFAULT_STATE_DIR};
pub use mode::NetworkMode;
pub use reconcile::ReconcileReport;
pub use state::{Attachment, NetworkInfo};
