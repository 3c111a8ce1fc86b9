//! The [`Store`] trait every IPAM backend implements, and [`MemoryStore`].
//!
//! # The transaction model
//!
//! Every IPAM call is one [`StoreTxn`]: read what it needs, write, [`commit`]. Stores
//! implement it in one of two ways, and [`super::Ipam`] works with both:
//!
//! - **Pessimistic**: [`Store::begin`] takes a lock ([`MemoryStore`]: a mutex;
//!   [`super::SqliteStore`]: `BEGIN IMMEDIATE`, the database's write lock, shared by every
//!   process) so nothing can change underneath and `commit` never conflicts.
//! - **Optimistic** (a distributed key-value store with compare-and-swap, such as etcd):
//!   reads record the revision they saw, writes are buffered, and `commit` applies them in
//!   one conditional transaction, "if every network I read still has the revision I read".
//!   If not it returns [`IpamError::Conflict`] and `Ipam` runs the whole call again.
//!
//! The unit of the compare-and-swap is the network: [`Network::revision`] goes up with
//! every committed change to a network or its leases (the `update_network` of each
//! allocation and release), so a single key per network is all an optimistic store has to
//! compare. For etcd the mapping is one key per network (`…/networks/NAME`, the
//! [`Network`] record) and one per lease (`…/leases/NAME/ADDRESS` → owner, with the
//! address written fixed-width so that key order is address order and
//! [`StoreTxn::first_free`] is a range read).
//!
//! A transaction dropped without `commit` is rolled back.
//!
//! [`commit`]: StoreTxn::commit

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::pool::{from_u128, to_u128};
use super::{IpamError, Lease, Network, Owner};

/// A place where IPAM state lives. See the [module docs](self) for the transaction model.
pub trait Store: Send + Sync {
    /// Starts a transaction.
    fn begin(&self) -> Result<Box<dyn StoreTxn + '_>, IpamError>;
}

/// A store's read-write transaction: one atomic unit of reads and writes on a [`Store`],
/// begun by [`Store::begin`]. Dropping it without [`commit`](StoreTxn::commit) rolls it
/// back. (The undo journal of kernel changes is another thing, [`crate::journal::Txn`].)
///
/// Addresses passed to a network's methods are of that network's family. Every method
/// may fail with [`IpamError::Store`]; the writes may also fail with
/// [`IpamError::Conflict`], after which the caller drops the transaction and retries.
#[doc(alias = "Transaction")]
pub trait StoreTxn {
    /// The network named `name`.
    fn network(&mut self, name: &str) -> Result<Option<Network>, IpamError>;
    /// Every network, in name order.
    fn networks(&mut self) -> Result<Vec<Network>, IpamError>;
    /// Adds a network; [`IpamError::Conflict`] if one of that name exists.
    fn create_network(&mut self, network: &Network) -> Result<(), IpamError>;
    /// Replaces a network's record, with compare-and-swap: `network.revision` is the
    /// revision that was read, and the stored revision becomes `network.revision + 1`.
    /// [`IpamError::Conflict`] if the stored revision differs.
    fn update_network(&mut self, network: &Network) -> Result<(), IpamError>;
    /// Removes a network and its leases, with the same compare-and-swap as
    /// [`update_network`](StoreTxn::update_network).
    fn delete_network(&mut self, network: &Network) -> Result<(), IpamError>;
    /// Who holds `address` in `network`.
    fn owner_of(&mut self, network: &str, address: IpAddr) -> Result<Option<Owner>, IpamError>;
    /// Which address `owner` holds in `network` (one lease per owner and network).
    fn address_of(&mut self, network: &str, owner: &Owner) -> Result<Option<IpAddr>, IpamError>;
    /// Every lease of `network`, in address order.
    fn leases(&mut self, network: &str) -> Result<Vec<(IpAddr, Owner)>, IpamError>;
    /// The lowest address in `from..=to` that no lease of `network` holds. This is the
    /// allocation hot path: it must not scan per address (an IPv6 /64 has 2^64), and
    /// should cost O(log n) in the number of leases.
    fn first_free(
        &mut self,
        network: &str,
        from: IpAddr,
        to: IpAddr,
    ) -> Result<Option<IpAddr>, IpamError>;
    /// Records that `owner` holds `address` in `network`. [`IpamError::Conflict`] if the
    /// address or the owner already has a lease there.
    fn hold(&mut self, network: &str, address: IpAddr, owner: &Owner) -> Result<(), IpamError>;
    /// Removes the lease on `address`, returning its owner, or `None` if it had none.
    fn free(&mut self, network: &str, address: IpAddr) -> Result<Option<Owner>, IpamError>;
    /// Makes every write of this transaction visible and durable, or none of them.
    fn commit(self: Box<Self>) -> Result<(), IpamError>;
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn begin(&self) -> Result<Box<dyn StoreTxn + '_>, IpamError> {
        (**self).begin()
    }
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn begin(&self) -> Result<Box<dyn StoreTxn + '_>, IpamError> {
        (**self).begin()
    }
}

/// Held addresses as maximal runs `first → last`: the first free address at or after `x`
/// is one lookup, however full the network is.
#[derive(Debug, Default, Clone)]
struct Runs(BTreeMap<u128, u128>);

impl Runs {
    fn run_at(&self, a: u128) -> Option<(u128, u128)> {
        let (&first, &last) = self.0.range(..=a).next_back()?;
        (last >= a).then_some((first, last))
    }

    fn first_free(&self, from: u128, to: u128) -> Option<u128> {
        let c = match self.run_at(from) {
            Some((_, last)) => last.checked_add(1)?,
            None => from,
        };
        (c <= to).then_some(c)
    }

    fn insert(&mut self, a: u128) {
        let left = a
            .checked_sub(1)
            .and_then(|p| self.run_at(p))
            .map(|(f, _)| f);
        let right = a.checked_add(1).and_then(|n| self.0.remove(&n));
        let last = right.unwrap_or(a);
        match left {
            Some(f) => self.0.insert(f, last),
            None => self.0.insert(a, last),
        };
    }

    fn remove(&mut self, a: u128) {
        let Some((first, last)) = self.run_at(a) else {
            return;
        };
        if first < a {
            self.0.insert(first, a - 1);
        } else {
            self.0.remove(&first);
        }
        if last > a {
            self.0.insert(a + 1, last);
        }
    }
}

#[derive(Debug, Clone)]
struct NetState {
    record: Network,
    leases: BTreeMap<u128, Owner>,
    by_owner: HashMap<Owner, u128>,
    runs: Runs,
}

#[derive(Debug, Default)]
struct State {
    networks: BTreeMap<String, NetState>,
}

/// What a rolled-back transaction must put back.
enum Undo {
    Network(String, Option<NetState>),
    Record(String, Network),
    Held(String, u128),
    Freed(String, u128, Owner),
}

/// State in memory, behind a mutex: for tests, and for embedders that persist state
/// their own way ([`MemoryStore::snapshot`], [`MemoryStore::from_snapshot`]).
///
/// ```
/// use netplumb::ipam::{Ipam, MemoryStore, NetworkSpec, Owner};
/// let ipam = Ipam::new(MemoryStore::new());
/// ipam.create_network(&NetworkSpec::new("bridge"))?;
/// let lease = ipam.allocate("bridge", &Owner::new("3f2a1c0", "eth0"))?;
/// assert_eq!(lease.cidr().to_string(), "172.17.0.2/16");
/// # Ok::<(), netplumb::ipam::IpamError>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every network and every lease, for an embedder to persist.
    pub fn snapshot(&self) -> (Vec<Network>, Vec<Lease>) {
        let st = self.lock();
        let nets = st.networks.values().map(|n| n.record.clone()).collect();
        let leases = st
            .networks
            .values()
            .flat_map(|n| {
                n.leases.iter().map(move |(&a, o)| {
                    Lease::new(&n.record, from_u128(a, n.record.is_ipv6()), o.clone())
                })
            })
            .collect();
        (nets, leases)
    }

    /// A store holding what [`snapshot`](MemoryStore::snapshot) returned.
    pub fn from_snapshot(networks: Vec<Network>, leases: Vec<Lease>) -> Result<Self, IpamError> {
        let store = MemoryStore::new();
        {
            let mut tx = MemoryTx {
                state: store.lock(),
                undo: Vec::new(),
                committed: false,
            };
            for n in &networks {
                tx.create_network(n)?;
            }
            for l in &leases {
                tx.hold(&l.network, l.address, &l.owner)?;
            }
            tx.committed = true;
        }
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside a transaction rolled it back during unwinding.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn begin(&self) -> Result<Box<dyn StoreTxn + '_>, IpamError> {
        Ok(Box::new(MemoryTx {
            state: self.lock(),
            undo: Vec::new(),
            committed: false,
        }))
    }
}

struct MemoryTx<'a> {
    state: MutexGuard<'a, State>,
    undo: Vec<Undo>,
    committed: bool,
}

impl MemoryTx<'_> {
    fn net(&mut self, name: &str) -> Result<&mut NetState, IpamError> {
        self.state
            .networks
            .get_mut(name)
            .ok_or_else(|| IpamError::NetworkNotFound {
                network: name.to_string(),
            })
    }

    fn check_revision(&mut self, network: &Network) -> Result<(), IpamError> {
        if self.net(&network.name)?.record.revision != network.revision {
            return Err(IpamError::Conflict {
                network: network.name.clone(),
            });
        }
        Ok(())
    }
}

impl Drop for MemoryTx<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let nets = &mut self.state.networks;
        for u in self.undo.drain(..).rev() {
            match u {
                Undo::Network(name, None) => drop(nets.remove(&name)),
                Undo::Network(name, Some(st)) => drop(nets.insert(name, st)),
                Undo::Record(name, rec) => {
                    nets.get_mut(&name).expect("undo of a known network").record = rec
                }
                Undo::Held(name, a) => {
                    let n = nets.get_mut(&name).expect("undo of a known network");
                    let owner = n.leases.remove(&a).expect("undo of a held address");
                    n.by_owner.remove(&owner);
                    n.runs.remove(a);
                }
                Undo::Freed(name, a, owner) => {
                    let n = nets.get_mut(&name).expect("undo of a known network");
                    n.by_owner.insert(owner.clone(), a);
                    n.leases.insert(a, owner);
                    n.runs.insert(a);
                }
            }
        }
    }
}

impl StoreTxn for MemoryTx<'_> {
    fn network(&mut self, name: &str) -> Result<Option<Network>, IpamError> {
        Ok(self.state.networks.get(name).map(|n| n.record.clone()))
    }

    fn networks(&mut self) -> Result<Vec<Network>, IpamError> {
        Ok(self
            .state
            .networks
            .values()
            .map(|n| n.record.clone())
            .collect())
    }

    fn create_network(&mut self, network: &Network) -> Result<(), IpamError> {
        if self.state.networks.contains_key(&network.name) {
            return Err(IpamError::Conflict {
                network: network.name.clone(),
            });
        }
        let st = NetState {
            record: network.clone(),
            leases: BTreeMap::new(),
            by_owner: HashMap::new(),
            runs: Runs::default(),
        };
        self.state.networks.insert(network.name.clone(), st);
        self.undo.push(Undo::Network(network.name.clone(), None));
        Ok(())
    }

    fn update_network(&mut self, network: &Network) -> Result<(), IpamError> {
        self.check_revision(network)?;
        let n = self.net(&network.name)?;
        let mut rec = network.clone();
        rec.revision += 1;
        let old = std::mem::replace(&mut n.record, rec);
        self.undo.push(Undo::Record(network.name.clone(), old));
        Ok(())
    }

    fn delete_network(&mut self, network: &Network) -> Result<(), IpamError> {
        self.check_revision(network)?;
        let old = self.state.networks.remove(&network.name);
        self.undo.push(Undo::Network(network.name.clone(), old));
        Ok(())
    }

    fn owner_of(&mut self, network: &str, address: IpAddr) -> Result<Option<Owner>, IpamError> {
        Ok(self.net(network)?.leases.get(&to_u128(address)).cloned())
    }

    fn address_of(&mut self, network: &str, owner: &Owner) -> Result<Option<IpAddr>, IpamError> {
        let n = self.net(network)?;
        let v6 = n.record.is_ipv6();
        Ok(n.by_owner.get(owner).map(|&a| from_u128(a, v6)))
    }

    fn leases(&mut self, network: &str) -> Result<Vec<(IpAddr, Owner)>, IpamError> {
        let n = self.net(network)?;
        let v6 = n.record.is_ipv6();
        Ok(n.leases
            .iter()
            .map(|(&a, o)| (from_u128(a, v6), o.clone()))
            .collect())
    }

    fn first_free(
        &mut self,
        network: &str,
        from: IpAddr,
        to: IpAddr,
    ) -> Result<Option<IpAddr>, IpamError> {
        let n = self.net(network)?;
        let v6 = n.record.is_ipv6();
        Ok(n.runs
            .first_free(to_u128(from), to_u128(to))
            .map(|a| from_u128(a, v6)))
    }

    fn hold(&mut self, network: &str, address: IpAddr, owner: &Owner) -> Result<(), IpamError> {
        let n = self.net(network)?;
        let a = to_u128(address);
        if n.leases.contains_key(&a) || n.by_owner.contains_key(owner) {
            return Err(IpamError::Conflict {
                network: network.to_string(),
            });
        }
        n.leases.insert(a, owner.clone());
        n.by_owner.insert(owner.clone(), a);
        n.runs.insert(a);
        self.undo.push(Undo::Held(network.to_string(), a));
        Ok(())
    }

    fn free(&mut self, network: &str, address: IpAddr) -> Result<Option<Owner>, IpamError> {
        let n = self.net(network)?;
        let a = to_u128(address);
        let Some(owner) = n.leases.remove(&a) else {
            return Ok(None);
        };
        n.by_owner.remove(&owner);
        n.runs.remove(a);
        self.undo
            .push(Undo::Freed(network.to_string(), a, owner.clone()));
        Ok(Some(owner))
    }

    fn commit(mut self: Box<Self>) -> Result<(), IpamError> {
        self.committed = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Runs;

    /// Runs against a plain set, for every insert/remove order of a small universe.
    #[test]
    fn runs_match_a_set() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200 {
            let mut runs = Runs::default();
            let mut set = std::collections::BTreeSet::new();
            for _ in 0..200 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let a = (seed % 40) as u128;
                if set.contains(&a) {
                    set.remove(&a);
                    runs.remove(a);
                } else {
                    set.insert(a);
                    runs.insert(a);
                }
                for from in 0..40u128 {
                    let want = (from..40).find(|x| !set.contains(x));
                    assert_eq!(
                        runs.first_free(from, 39),
                        want,
                        "from {from} in {set:?}: {runs:?}"
                    );
                }
            }
            let held: usize = runs.0.iter().map(|(f, l)| (l - f + 1) as usize).sum();
            assert_eq!(held, set.len());
            assert!(
                runs.0
                    .iter()
                    .zip(runs.0.iter().skip(1))
                    .all(|((_, l), (f, _))| l + 1 < *f),
                "runs are maximal"
            );
        }
    }
}
