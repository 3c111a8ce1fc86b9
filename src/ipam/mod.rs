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

/// How many leases one garbage-collection transaction frees at most.
const GC_CHUNK: usize = 50;
mod error;
#[cfg(feature = "etcd")]
pub mod etcd_store;
mod network;
mod pool;
pub mod sqlite;
pub mod store;
pub(crate) mod undo;

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;

pub use error::IpamError;
#[cfg(feature = "etcd")]
pub use etcd_store::EtcdStore;
pub use network::{Network, NetworkSpec};
pub use pool::{parse_address, parse_subnet, Pool, Pools};
pub use sqlite::{SqliteOptions, SqliteStore};
pub use store::{MemoryStore, Store, StoreTxn};

use alloc::Holder;

/// How often a call that lost a compare-and-swap race is run again before
/// [`IpamError::Conflict`] is returned (optimistic stores only).
const MAX_ATTEMPTS: u32 = 64;

/// Who holds a lease: a container and its interface (CNI's `CNI_CONTAINERID` and
/// `CNI_IFNAME`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// The container id.
    pub container: String,
    /// The interface name inside the container.
    pub ifname: String,
}

impl Owner {
    /// The owner `container`/`ifname`.
    pub fn new(container: impl Into<String>, ifname: impl Into<String>) -> Self {
        Owner {
            container: container.into(),
            ifname: ifname.into(),
        }
    }

    fn check(&self) -> Result<(), IpamError> {
        if self.container.is_empty() {
            return Err(IpamError::invalid(
                "container id",
                &self.container,
                "is empty",
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "container {} ({})", self.container, self.ifname)
    }
}

/// An address held by an owner on a network, with what the container needs to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The network's name.
    pub network: String,
    /// The address.
    pub address: IpAddr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The network's gateway (the container's default route).
    pub gateway: Option<IpAddr>,
    /// Who holds it.
    pub owner: Owner,
}

impl Lease {
    fn new(net: &Network, address: IpAddr, owner: Owner) -> Self {
        Lease {
            network: net.name.clone(),
            address,
            prefix_len: net.subnet.prefix_len(),
            gateway: net.gateway,
            owner,
        }
    }

    /// The address with the subnet's prefix length, as `ip address add` takes it
    /// (`172.17.0.2/16`).
    pub fn cidr(&self) -> IpNet {
        IpNet::new(self.address, self.prefix_len)
            .expect("prefix length of the address's own subnet")
    }
}

/// What a release did. Releasing an address nobody holds is not an error (teardown is
/// idempotent), but it is told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Released {
    /// The lease existed and is gone.
    Freed(Lease),
    /// Nothing was held; nothing changed.
    NotHeld,
}

impl Released {
    /// Whether a lease was actually released.
    pub fn was_held(&self) -> bool {
        matches!(self, Released::Freed(_))
    }
}

/// The IPAM handle: networks and leases in a [`Store`], subnets from [`Pools`].
///
/// Every method is one transaction of the store, so each call either happens entirely or
/// not at all, and calls from several threads (`Ipam` is `Sync`) and processes are
/// serialised by the store.
#[derive(Debug)]
pub struct Ipam<S = SqliteStore> {
    store: S,
    pools: Pools,
}

impl Ipam<SqliteStore> {
    /// IPAM over the SQLite database at `path` (created if missing).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IpamError> {
        Ok(Ipam::new(SqliteStore::open(path)?))
    }

    /// IPAM over the SQLite database at [`SqliteStore::DEFAULT_PATH`].
    pub fn open_default() -> Result<Self, IpamError> {
        Ok(Ipam::new(SqliteStore::open_default()?))
    }
}

impl<S: Store> Ipam<S> {
    /// IPAM over `store`, with Docker's default address pools.
    pub fn new(store: S) -> Self {
        Ipam {
            store,
            pools: Pools::default(),
        }
    }

    /// Use `pools` for networks created without a subnet (`default-address-pools`).
    #[must_use]
    pub fn with_pools(mut self, pools: Pools) -> Self {
        self.pools = pools;
        self
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Creates a network (`docker network create`); the subnet, unless given, is the first
    /// free one of the pools.
    pub fn create_network(&self, spec: &NetworkSpec) -> Result<Network, IpamError> {
        self.transact(spec.name(), |tx| alloc::create(tx, spec, &self.pools))
    }

    /// Removes a network that holds no leases (`docker network rm`).
    pub fn remove_network(&self, name: &str) -> Result<(), IpamError> {
        self.transact(name, |tx| alloc::remove(tx, name))
    }

    /// The network named `name`.
    pub fn network(&self, name: &str) -> Result<Network, IpamError> {
        self.transact(name, |tx| alloc::network(tx, name))
    }

    /// Every network, in name order.
    pub fn networks(&self) -> Result<Vec<Network>, IpamError> {
        self.transact("", |tx| tx.networks())
    }

    /// Gives `owner` the next free address of the network's allocation range, or the
    /// address it already holds there.
    pub fn allocate(&self, network: &str, owner: &Owner) -> Result<Lease, IpamError> {
        self.transact(network, |tx| alloc::allocate(tx, network, owner, None))
    }

    /// Gives `owner` the address `address` (`docker run --ip`), which may lie anywhere in
    /// the subnet; fails with [`IpamError::AddressTaken`] if someone else holds it.
    #[doc(alias = "ip")]
    pub fn allocate_addr(
        &self,
        network: &str,
        owner: &Owner,
        address: IpAddr,
    ) -> Result<Lease, IpamError> {
        self.transact(network, |tx| {
            alloc::allocate(tx, network, owner, Some(address))
        })
    }

    /// Releases the lease on `address`, whoever holds it.
    pub fn release(&self, network: &str, address: IpAddr) -> Result<Released, IpamError> {
        self.transact(network, |tx| {
            alloc::release(tx, network, Holder::Address(address))
        })
    }

    /// Releases the lease `owner` holds on the network (CNI DEL).
    pub fn release_owner(&self, network: &str, owner: &Owner) -> Result<Released, IpamError> {
        self.transact(network, |tx| {
            alloc::release(tx, network, Holder::Owner(owner))
        })
    }

    /// The lease `owner` holds on the network, if any: one key lookup, however many
    /// leases the network has.
    ///
    /// ```
    /// use netplumb::ipam::{Ipam, MemoryStore, NetworkSpec, Owner};
    /// let ipam = Ipam::new(MemoryStore::new());
    /// ipam.create_network(&NetworkSpec::new("bridge"))?;
    /// let web = Owner::new("3f2a1c0", "eth0");
    /// assert!(ipam.lease_of("bridge", &web)?.is_none());
    /// let lease = ipam.allocate("bridge", &web)?;
    /// assert_eq!(ipam.lease_of("bridge", &web)?, Some(lease));
    /// # Ok::<(), netplumb::ipam::IpamError>(())
    /// ```
    pub fn lease_of(&self, network: &str, owner: &Owner) -> Result<Option<Lease>, IpamError> {
        self.transact(network, |tx| {
            let net = alloc::network(tx, network)?;
            Ok(tx
                .address_of(network, owner)?
                .map(|a| Lease::new(&net, a, owner.clone())))
        })
    }

    /// Every lease of the network, in address order.
    pub fn leases(&self, network: &str) -> Result<Vec<Lease>, IpamError> {
        self.transact(network, |tx| {
            let net = alloc::network(tx, network)?;
            Ok(tx
                .leases(network)?
                .into_iter()
                .map(|(a, o)| Lease::new(&net, a, o))
                .collect())
        })
    }

    /// Releases, on every network, each lease whose owner is not in `live`, and returns
    /// them. Run it after a crash with the containers (and interfaces) still running.
    pub fn gc(&self, live: &[Owner]) -> Result<Vec<Lease>, IpamError> {
        let live: HashSet<&Owner> = live.iter().collect();
        let mut freed = Vec::new();
        for net in self.networks()? {
            // In chunks: an etcd transaction takes at most 128 writes (two per lease).
            loop {
                match self.transact(&net.name, |tx| alloc::gc(tx, &net.name, &live, GC_CHUNK)) {
                    Ok(f) => {
                        let more = f.len() == GC_CHUNK;
                        freed.extend(f);
                        if !more {
                            break;
                        }
                    }
                    Err(IpamError::NetworkNotFound { .. }) => break, // removed meanwhile
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(freed)
    }

    /// Runs `f` in a transaction, again after a lost compare-and-swap race.
    fn transact<T>(
        &self,
        network: &str,
        mut f: impl FnMut(&mut dyn StoreTxn) -> Result<T, IpamError>,
    ) -> Result<T, IpamError> {
        for attempt in 0..MAX_ATTEMPTS {
            let mut tx = self.store.begin()?;
            let result = f(&mut *tx).and_then(|v| tx.commit().map(|()| v));
            match result {
                Err(IpamError::Conflict { .. }) => backoff(attempt),
                r => return r,
            }
        }
        Err(IpamError::Conflict {
            network: network.to_string(),
        })
    }
}

/// Sleeps a little longer after each lost race, with jitter so that racers spread out.
fn backoff(attempt: u32) {
    let jitter = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 50_000);
    let base = 20u64 << attempt.min(10);
    std::thread::sleep(Duration::from_nanos(base * 1000 + jitter as u64));
}
