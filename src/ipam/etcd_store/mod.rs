//! [`EtcdStore`] (feature `etcd`): IPAM state in etcd, shared by every host of a cluster,
//! with the optimistic transactions of the [`store`](super::store) module docs.
//!
//! # Layout
//!
//! Under a prefix (default `/netplumb/ipam/`, [`EtcdStore::prefix`]):
//!
//! | key | value |
//! |---|---|
//! | `networks/NAME` | the [`Network`] record as JSON (subnet, gateway, cursor, revision, …) |
//! | `index` | rewritten by every network creation and removal |
//! | `leases/NAME/ADDRESS` | the [`Owner`] as JSON; ADDRESS is 32 hex digits, so key order is address order |
//! | `owners/NAME/CONTAINER/IFNAME` | the address the owner holds |
//!
//! Names are written with `%` and `/` (and control characters) percent-encoded, so that
//! network `a` never sees the leases of network `a/b`. Inspect with
//! `etcdctl get --prefix /netplumb/ipam/leases/NAME/`.
//!
//! # Transactions
//!
//! A transaction reads one snapshot: the first read fixes a revision and every later read
//! asks for that revision. Writes are buffered, and reads see them. Every key read on its
//! own (a network record, the index, a lease or owner key) is remembered with the
//! revision of its last change (0: absent), and [`commit`](super::StoreTxn::commit) sends
//! *one* etcd transaction: "if each of those keys is unchanged, apply every buffered
//! write". If another host got there first it returns [`IpamError::Conflict`] and
//! [`super::Ipam`] runs the call again; nothing of the losing call reaches etcd.
//!
//! Range reads (all leases, the first free address) are not compared key by key: every
//! change to a network's leases also rewrites its record (the record's revision), and
//! every creation or removal rewrites the index, which `networks()` reads. So two hosts
//! allocating on one network, or creating networks without a subnet, conflict and retry
//! rather than both taking one address or overlapping subnets.
//!
//! Failures of etcd are [`IpamError::Store`] with the [`EtcdError`] as source (an
//! unreachable or silent server is [`ErrorKind::Unavailable`](crate::ErrorKind)). A
//! failed commit leaves etcd as it was, except after a timeout, when the transaction may
//! have been applied or not: calling again is safe, since allocating for an owner that
//! already holds an address returns that address.
//!
//! # Limits
//!
//! etcd refuses a transaction of more than `--max-txn-ops` (default 128) writes. A call
//! writes two keys per lease it takes or frees, so [`super::Ipam::gc`] frees leases in
//! transactions of at most 50.
//!
//! # Files
//!
//! `keys.rs` builds the keys above, `record.rs` encodes and parses their values, and
//! `tx.rs` is the transaction ([`StoreTxn`]) that reads and writes them.
//!
//! [`Network`]: super::Network
//! [`Owner`]: super::Owner
//! [`EtcdError`]: crate::etcd::EtcdError

mod keys;
pub(crate) mod record;
mod tx;

use super::{IpamError, Store, StoreTxn};
use crate::etcd::Etcd;
use keys::Keys;
use tx::EtcdTx;

/// IPAM state in etcd. See the [module docs](self) for the layout and the transaction
/// model.
///
/// ```no_run
/// use netplumb::etcd::{Etcd, EtcdConfig};
/// use netplumb::ipam::{EtcdStore, Ipam, NetworkSpec, Owner};
/// let etcd = Etcd::connect(EtcdConfig::new("http://10.0.0.5:2379")?)?;
/// let ipam = Ipam::new(EtcdStore::new(etcd));
/// ipam.create_network(&NetworkSpec::new("overlay0").subnet("10.20.0.0/16".parse()?))?;
/// let lease = ipam.allocate("overlay0", &Owner::new("3f2a1c0", "eth0"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct EtcdStore {
    etcd: Etcd,
    prefix: String,
}

impl EtcdStore {
    /// The prefix of every key unless [`prefix`](EtcdStore::prefix) says otherwise.
    pub const DEFAULT_PREFIX: &'static str = "/netplumb/ipam/";

    /// A store on `etcd`, under [`EtcdStore::DEFAULT_PREFIX`].
    ///
    /// ```no_run
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let store = netplumb::ipam::EtcdStore::new(etcd);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn new(etcd: Etcd) -> Self {
        EtcdStore {
            etcd,
            prefix: Self::DEFAULT_PREFIX.to_string(),
        }
    }

    /// Keeps every key under `prefix` instead (a `/` is added if it does not end in one),
    /// so that several independent IPAM domains can share one etcd.
    ///
    /// ```no_run
    /// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
    /// let store = netplumb::ipam::EtcdStore::new(etcd).prefix("/cluster-b/ipam");
    /// assert_eq!(store.key_prefix(), "/cluster-b/ipam/");
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_string();
        if !self.prefix.ends_with('/') {
            self.prefix.push('/');
        }
        self
    }

    /// The prefix of every key.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The etcd client.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }
}

impl Store for EtcdStore {
    fn begin(&self) -> Result<Box<dyn StoreTxn + '_>, IpamError> {
        Ok(Box::new(EtcdTx::new(&self.etcd, Keys::new(&self.prefix))))
    }
}
