//! VXLAN overlay networks spanning several hosts: Docker's `overlay` driver without
//! swarm, with a gateway bridge for the way out.
//!
//! - [`OverlayNetwork`] is the definition every host shares: name, subnet, reserved
//!   gateway, VNI, MTU.
//! - [`Overlay`] is one host's driver. It puts each network's addresses in a shared IPAM
//!   store, connects containers ([`Overlay::connect`]), and reconciles the kernel with what
//!   [`PeerDiscovery`] says about the other hosts ([`Overlay::sync`], continuously with
//!   [`Overlay::watch`]).
//! - Discovery: [`StaticPeers`] in memory (one process, tests); with the `etcd` feature,
//!   `EtcdDiscovery`, and `EtcdNetworks` for the definitions.
//!
//! # What a container on an overlay network gets
//!
//! ```text
//!  container                host namespace                               other hosts
//!  eth0 10.0.9.2/24 ──veth── ov-000100 (bridge, no address) ── vx-000100 ══ UDP 4789 ══▶ vx-000100
//!       mtu 1450                                             id 256, nolearning, proxy
//!  eth1 172.17.0.2/16 ─veth── docker_gwbridge 172.17.0.1 ── routing + masquerade ──▶ underlay
//!       default route
//! ```
//!
//! The equivalent commands on one host, for the first container of network `ov1`
//! (VNI 256, underlay 192.168.99.1 on `eth0`, a remote host 192.168.99.2 with container
//! 10.0.9.3):
//!
//! ```text
//! ip link add ov-000100 mtu 1450 type bridge stp_state 0 && ip link set ov-000100 up
//! nft add table ip netplumb_vxlan …          # drop UDP 4789 of VNI 256 unless from a peer
//! ip link add vx-000100 mtu 1450 master ov-000100 up type vxlan id 256 \
//!     local 192.168.99.1 dev eth0 dstport 4789 nolearning proxy
//! ip link add veth1a2b3c4 mtu 1450 master ov-000100 up type veth \
//!     peer name eth0 mtu 1450 address 02:42:0a:00:09:02 netns CTR
//! ip -n CTR addr add 10.0.9.2/24 dev eth0      # no default route on the overlay
//! docker network connect docker_gwbridge CTR   # eth1, default route, masquerade
//! nft add element … { 256 . 192.168.99.2 }    # the remote host may send
//! bridge fdb append 00:00:00:00:00:00 dev vx-000100 dst 192.168.99.2
//! bridge fdb append 02:42:0a:00:09:03 dev vx-000100 dst 192.168.99.2
//! ip neigh replace 10.0.9.3 lladdr 02:42:0a:00:09:03 dev vx-000100 nud permanent
//! ```
//!
//! With learning off and the proxy on, nothing is flooded to learn addresses: ARP for a
//! remote container is answered by the local VXLAN device from its neighbour table, and
//! unicast frames go straight to the right host. The guard
//! ([`VxlanGuard`](crate::firewall::VxlanGuard)) drops VXLAN packets of the network's VNI
//! from any address that is not a known peer, so a machine on the underlay cannot inject
//! frames into the overlay.
//!
//! # Consistency
//!
//! Every connect is one undo journal ([`crate::journal::Txn`]): a failure at any step
//! undoes the earlier ones, kernel objects, guard, discovery entries, lease and gateway
//! bridge alike. Changes of one [`Overlay`] and of its watchers are serialised, so a sync
//! never sees a half-made network.

mod agent;
mod config;
mod discovery;
mod driver;
mod endpoint;
mod gc;
mod gwbridge;
mod sync;
mod watch;

pub use agent::{Agent, NetworkList};
pub use config::{OverlayNetwork, VNI_MAX, VNI_POOL};
pub use discovery::{PeerDiscovery, PeerEndpoint, PeerHost, PeerView, StaticPeers};
pub use driver::{Overlay, VXLAN_OVERHEAD_V4, VXLAN_OVERHEAD_V6};
pub use endpoint::OverlayAttachment;
pub use gwbridge::{GWBRIDGE_BRIDGE, GWBRIDGE_IFNAME, GWBRIDGE_LABEL, GWBRIDGE_NETWORK};
pub use sync::{OverlayEntry, SyncReport};
pub use watch::OverlayWatch;

// etcd-backed definitions and discovery (feature `etcd`): the network catalog, the peer
// registrations under a lease, and the keys and values both keep in etcd.
#[cfg(feature = "etcd")]
mod etcd_discovery;
#[cfg(feature = "etcd")]
mod etcd_follow;
#[cfg(feature = "etcd")]
mod etcd_networks;
#[cfg(feature = "etcd")]
pub(crate) mod etcd_records;
#[cfg(feature = "etcd")]
pub use etcd_discovery::{EtcdDiscovery, DEFAULT_TTL as ETCD_TTL};
#[cfg(feature = "etcd")]
pub use etcd_networks::{default_overlay_pools, EtcdNetworks, OverlaySpec};
#[cfg(feature = "etcd")]
pub use etcd_records::DEFAULT_PREFIX as ETCD_PREFIX;
