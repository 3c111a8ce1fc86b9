//! IP address management: a subnet for every network, an address for every container,
//! shared by every process on the host and kept across crashes. There is no netlink and
//! no namespace in here: IPAM only decides addresses; [`crate::addr`] and
//! [`crate::route`] (or anything else) put them on links.
//!
//! The model is Docker's (`docker network create --subnet --gateway --ip-range
//! --aux-address`, `docker run --ip`) and CNI host-local's (one lease per container and
//! interface, idempotent release, garbage collection against the live containers).
//!
//! # Using IPAM on its own
//!
//! A runtime that has its own idea of networks uses [`Ipam`] directly: open the store once
//! per process, create each network once, then allocate on container start and release on
//! stop. Several runtime processes may do this at the same time on the same database.
//!
//! ```
//! use netplumb::ipam::{Ipam, IpamError, NetworkSpec, Owner, Released};
//!
//! # let dir = std::env::temp_dir().join(format!("netplumb-ipam-doc-{}", std::process::id()));
//! # let path = dir.join("ipam.db");
//! // Ipam::open_default() uses /var/lib/netplumb/ipam.db.
//! let ipam = Ipam::open(&path)?;
//!
//! // Once per network. Without .subnet(), the first free subnet of the pools (172.17.0.0/16, …).
//! let spec = NetworkSpec::new("mybr0").subnet("172.26.0.0/16".parse().unwrap());
//! match ipam.create_network(&spec) {
//!     Ok(_) | Err(IpamError::NetworkExists { .. }) => {}
//!     Err(e) => return Err(e),
//! }
//!
//! // Container start (CNI ADD): one lease per container and interface.
//! let owner = Owner::new("3f2a1c0d", "eth0");
//! let lease = ipam.allocate("mybr0", &owner)?;
//! assert_eq!(lease.cidr().to_string(), "172.26.0.2/16");     // ip address add … dev eth0
//! assert_eq!(lease.gateway, Some("172.26.0.1".parse().unwrap())); // ip route add default via …
//! // Asking again (say, after a crash between allocating and configuring) gives the same lease.
//! assert_eq!(ipam.allocate("mybr0", &owner)?, lease);
//!
//! // A specific address (docker run --ip).
//! let web = ipam.allocate_addr("mybr0", &Owner::new("9b1e", "eth0"), "172.26.0.10".parse().unwrap())?;
//!
//! // Container stop (CNI DEL): releasing twice is not an error, and says so.
//! assert!(matches!(ipam.release_owner("mybr0", &owner)?, Released::Freed(_)));
//! assert_eq!(ipam.release_owner("mybr0", &owner)?, Released::NotHeld);
//!
//! // After a runtime crash: release every lease whose owner is no longer live.
//! let live = [Owner::new("9b1e", "eth0")];
//! assert!(ipam.gc(&live)?.is_empty());
//! ipam.release("mybr0", web.address)?;
//! ipam.remove_network("mybr0")?;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), IpamError>(())
//! ```
//!
//! # The rules
//!
//! - **Subnets.** A new network's subnet must overlap no existing network
//!   ([`IpamError::Overlap`] names both networks and both subnets). Without one, the
//!   first free `/size` subnet of the [`Pools`] is taken; the default pools are Docker's.
//! - **Reserved addresses.** The subnet's network address and (IPv4) broadcast address,
//!   the gateway (the first usable address unless given) and the user-reserved addresses
//!   are never handed out.
//! - **Next-free allocation** hands out addresses of the allocation range (the subnet, or
//!   the `--ip-range`/`fixed-cidr`) in order, starting after the last one handed out and
//!   going round at the end; the address released last is skipped while any other is free,
//!   so an address does not pass to a new container at once. The cost is O(log n) in the
//!   number of leases, whether the network is empty or full, IPv4 or an IPv6 /64: held
//!   addresses are indexed as runs, never as a per-address bitmap.
//! - **Specific addresses** may lie anywhere in the subnet, also outside the range.
//! - **Leases** are keyed by network and address, and record their [`Owner`]; an owner
//!   holds at most one address per network.
//!
//! # Stores
//!
//! [`SqliteStore`] (the default of [`Ipam::open`]) keeps everything in one SQLite
//! database, by default `/var/lib/netplumb/ipam.db` ([`SqliteStore::DEFAULT_PATH`]),
//! with its `-wal` and `-shm` files beside it. It is crash-safe (every call is one
//! transaction, written ahead to a log) and shared by any number of processes (each
//! transaction holds the database's write lock). Its schema is in the [`sqlite`] module
//! docs; inspect it with `sqlite3 /var/lib/netplumb/ipam.db 'SELECT network, ip,
//! container, ifname FROM leases'`.
//!
//! [`MemoryStore`] keeps state in memory, for tests and for embedders that persist it
//! themselves. Other stores implement [`Store`]; its transactions are designed so that a
//! distributed store with compare-and-swap (etcd) fits: see the [`store`] module docs.

mod alloc;
mod error;
#[cfg(feature = "etcd")]
pub mod etcd_store;
mod handle;
mod lease;
mod network;
mod owner;
mod pool;
#[cfg(feature = "store")]
pub mod sqlite;
pub mod store;
pub(crate) mod undo;

pub use error::IpamError;
#[cfg(feature = "etcd")]
pub use etcd_store::EtcdStore;
pub use handle::Ipam;
pub use lease::{Lease, Released};
pub use network::{Network, NetworkSpec};
pub use owner::Owner;
pub use pool::{parse_address, parse_subnet, Pool, Pools};
#[cfg(feature = "store")]
pub(crate) use sqlite::SqliteTx;
#[cfg(feature = "store")]
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{MemoryStore, Store, StoreTxn};
