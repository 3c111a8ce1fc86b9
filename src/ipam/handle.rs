//! [`Ipam`]: the handle that runs every call as one transaction of its [`Store`].

use std::collections::HashSet;
use std::net::IpAddr;
#[cfg(feature = "store")]
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::alloc::{self, Holder};
use super::error::IpamError;
use super::lease::{Lease, Released};
use super::network::{Network, NetworkSpec};
use super::owner::Owner;
use super::pool::Pools;
#[cfg(feature = "store")]
use super::sqlite::SqliteStore;
use super::store::{Store, StoreTxn};

/// How many leases one garbage-collection transaction frees at most.
const GC_CHUNK: usize = 50;

/// How often a call that lost a compare-and-swap race is run again before
/// [`IpamError::Conflict`] is returned (optimistic stores only).
const MAX_ATTEMPTS: u32 = 64;

macro_rules! ipam_handle {
    ($($default:tt)*) => {
        /// The IPAM handle: networks and leases in a [`Store`], subnets from [`Pools`].
        ///
        /// Every method is one transaction of the store, so each call either happens entirely or
        /// not at all, and calls from several threads (`Ipam` is `Sync`) and processes are
        /// serialised by the store.
        #[derive(Debug)]
        pub struct Ipam<S $($default)*> {
            store: S,
            pools: Pools,
        }
    };
}

// With the SQLite store, `Ipam` alone means IPAM over it.
#[cfg(feature = "store")]
ipam_handle!(= SqliteStore);
#[cfg(not(feature = "store"))]
ipam_handle!();

#[cfg(feature = "store")]
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

    /// [`Ipam::allocate`] (`want` `None`) or [`Ipam::allocate_addr`] inside the caller's
    /// transaction.
    pub(crate) fn allocate_in(
        &self,
        tx: &mut dyn StoreTxn,
        network: &str,
        owner: &Owner,
        want: Option<IpAddr>,
    ) -> Result<Lease, IpamError> {
        alloc::allocate(tx, network, owner, want)
    }

    /// [`Ipam::allocate`] (`want` `None`) or [`Ipam::allocate_addr`], in one transaction
    /// with the look-up that says whether `owner` held the lease before (`true`): then
    /// it is not the caller's to release on undo.
    pub(crate) fn allocate_noting_held(
        &self,
        network: &str,
        owner: &Owner,
        want: Option<IpAddr>,
    ) -> Result<(Lease, bool), IpamError> {
        self.transact(network, |tx| {
            let held = tx.address_of(network, owner)?.is_some();
            alloc::allocate(tx, network, owner, want).map(|l| (l, held))
        })
    }

    /// [`Ipam::release_owner`] inside the caller's transaction.
    pub(crate) fn release_owner_in(
        &self,
        tx: &mut dyn StoreTxn,
        network: &str,
        owner: &Owner,
    ) -> Result<Released, IpamError> {
        alloc::release(tx, network, Holder::Owner(owner))
    }

    /// [`Ipam::remove_network`] inside the caller's transaction.
    pub(crate) fn remove_network_in(
        &self,
        tx: &mut dyn StoreTxn,
        name: &str,
    ) -> Result<(), IpamError> {
        alloc::remove(tx, name)
    }

    /// [`Ipam::gc`] of one network inside the caller's transaction (no chunks: a SQLite
    /// transaction has no write limit).
    pub(crate) fn gc_in(
        &self,
        tx: &mut dyn StoreTxn,
        network: &str,
        live: &HashSet<&Owner>,
    ) -> Result<Vec<Lease>, IpamError> {
        alloc::gc(tx, network, live, usize::MAX)
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
