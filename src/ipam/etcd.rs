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
//! revision of its last change (0: absent), and [`commit`](Transaction::commit) sends
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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::pool::{from_u128, to_u128};
use super::{IpamError, Network, Owner, Store, Transaction};
use crate::error::Error;
use crate::etcd::{prefix_end, CmpOp, Compare, Etcd, EtcdError, KeyValue, Txn, TxnOp};

/// Keys read per request when scanning leases or networks.
const PAGE: i64 = 256;

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

    fn net_key(&self, name: &str) -> Vec<u8> {
        format!("{}networks/{}", self.prefix, seg(name)).into_bytes()
    }

    fn index_key(&self) -> Vec<u8> {
        format!("{}index", self.prefix).into_bytes()
    }

    fn lease_prefix(&self, net: &str) -> Vec<u8> {
        format!("{}leases/{}/", self.prefix, seg(net)).into_bytes()
    }

    fn lease_key(&self, net: &str, a: u128) -> Vec<u8> {
        let mut k = self.lease_prefix(net);
        k.extend_from_slice(format!("{a:032x}").as_bytes());
        k
    }

    fn owner_prefix(&self, net: &str) -> Vec<u8> {
        format!("{}owners/{}/", self.prefix, seg(net)).into_bytes()
    }

    fn owner_key(&self, net: &str, o: &Owner) -> Vec<u8> {
        let mut k = self.owner_prefix(net);
        k.extend_from_slice(format!("{}/{}", seg(&o.container), seg(&o.ifname)).as_bytes());
        k
    }
}

impl Store for EtcdStore {
    fn begin(&self) -> Result<Box<dyn Transaction + '_>, IpamError> {
        Ok(Box::new(EtcdTx {
            store: self,
            snapshot: 0,
            compares: BTreeMap::new(),
            cache: HashMap::new(),
            writes: BTreeMap::new(),
            cleared: Vec::new(),
            network: String::new(),
        }))
    }
}

/// Percent-encodes `%`, `/` and control characters of a key segment.
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '%' || c == '/' || c.is_control() {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A [`Network`] as stored: addresses and prefixes as text.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    name: String,
    subnet: String,
    gateway: Option<String>,
    range: String,
    reserved: Vec<String>,
    cursor: Option<String>,
    last_released: Option<String>,
    revision: u64,
}

impl From<&Network> for Record {
    fn from(n: &Network) -> Self {
        let text = |a: &IpAddr| a.to_string();
        Record {
            name: n.name.clone(),
            subnet: n.subnet.to_string(),
            gateway: n.gateway.as_ref().map(text),
            range: n.range.to_string(),
            reserved: n.reserved.iter().map(text).collect(),
            cursor: n.cursor.as_ref().map(text),
            last_released: n.last_released.as_ref().map(text),
            revision: n.revision,
        }
    }
}

impl TryFrom<Record> for Network {
    type Error = String;
    fn try_from(r: Record) -> Result<Self, String> {
        fn addr(s: &str) -> Result<IpAddr, String> {
            s.parse().map_err(|_| format!("bad address {s:?}"))
        }
        fn net(s: &str) -> Result<IpNet, String> {
            s.parse().map_err(|_| format!("bad prefix {s:?}"))
        }
        Ok(Network {
            subnet: net(&r.subnet)?,
            gateway: r.gateway.as_deref().map(addr).transpose()?,
            range: net(&r.range)?,
            reserved: r
                .reserved
                .iter()
                .map(|s| addr(s))
                .collect::<Result<_, _>>()?,
            cursor: r.cursor.as_deref().map(addr).transpose()?,
            last_released: r.last_released.as_deref().map(addr).transpose()?,
            revision: r.revision,
            name: r.name,
        })
    }
}

/// An [`Owner`] as stored.
#[derive(Debug, Serialize, Deserialize)]
struct OwnerRecord {
    container: String,
    ifname: String,
}

/// One optimistic transaction: a snapshot, the keys read, the writes buffered.
pub(crate) struct EtcdTx<'a> {
    store: &'a EtcdStore,
    /// The revision every read sees; 0 until the first read.
    snapshot: i64,
    /// Keys read one by one, with the revision of their last change (0: absent).
    compares: BTreeMap<Vec<u8>, i64>,
    /// Values as of the snapshot (`None`: absent), from any read.
    cache: HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Buffered writes: `Some` puts, `None` deletes.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Buffered deletions of every key under these prefixes.
    cleared: Vec<Vec<u8>>,
    /// The network a conflict is reported on.
    network: String,
}

fn text(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

impl EtcdTx<'_> {
    fn err(&self, what: &str, key: &[u8], e: Error) -> IpamError {
        let source: Box<dyn std::error::Error + Send + Sync> = match e {
            Error::Etcd(EtcdError::Compacted { .. }) => {
                // The snapshot is gone: start over with a fresh one.
                return IpamError::Conflict {
                    network: self.network.clone(),
                };
            }
            Error::Etcd(e) => Box::new(e),
            e => Box::new(e),
        };
        IpamError::Store {
            context: format!("etcd {what} {}", text(key)),
            source,
        }
    }

    fn corrupt(key: &[u8], reason: impl Into<String>) -> IpamError {
        IpamError::Corrupt {
            context: format!("etcd key {}", text(key)),
            reason: reason.into(),
        }
    }

    fn conflict(&self) -> IpamError {
        IpamError::Conflict {
            network: self.network.clone(),
        }
    }

    /// Whether a buffered write or prefix deletion decides `key`, and how.
    fn buffered(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if let Some(w) = self.writes.get(key) {
            return Some(w.clone());
        }
        self.cleared
            .iter()
            .any(|p| key.starts_with(p))
            .then_some(None)
    }

    /// The value of `key` as this transaction sees it; a key fetched from etcd is
    /// compared at commit.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, IpamError> {
        if let Some(b) = self.buffered(key) {
            return Ok(b);
        }
        if let Some(c) = self.cache.get(key) {
            return Ok(c.clone());
        }
        let r = self
            .store
            .etcd
            .range_at(key, None, 0, self.snapshot)
            .map_err(|e| self.err("read", key, e))?;
        self.snapshot = r.revision;
        let kv = r.kvs.into_iter().next();
        self.compares
            .insert(key.to_vec(), kv.as_ref().map_or(0, |kv| kv.mod_revision));
        let value = kv.map(|kv| kv.value);
        self.cache.insert(key.to_vec(), value.clone());
        Ok(value)
    }

    /// Up to [`PAGE`] keys of `from..end` as of the snapshot (buffered writes not
    /// applied), and whether more follow.
    fn page(&mut self, from: &[u8], end: &[u8]) -> Result<(Vec<KeyValue>, bool), IpamError> {
        let r = self
            .store
            .etcd
            .range_at(from, Some(end), PAGE, self.snapshot)
            .map_err(|e| self.err("range read from", from, e))?;
        self.snapshot = r.revision;
        for kv in &r.kvs {
            self.cache.insert(kv.key.clone(), Some(kv.value.clone()));
        }
        Ok((r.kvs, r.more))
    }

    /// Every key under `prefix` as this transaction sees it, in key order.
    fn scan(&mut self, prefix: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, IpamError> {
        let end = prefix_end(prefix);
        let mut out = BTreeMap::new();
        let mut from = prefix.to_vec();
        loop {
            let (kvs, more) = self.page(&from, &end)?;
            if let Some(last) = kvs.last() {
                from = last.key.clone();
                from.push(0);
            }
            out.extend(kvs.into_iter().map(|kv| (kv.key, kv.value)));
            if !more {
                break;
            }
        }
        if self.cleared.iter().any(|p| prefix.starts_with(p)) {
            out.clear();
        }
        for (k, w) in self.writes.range(prefix.to_vec()..end) {
            match w {
                Some(v) => out.insert(k.clone(), v.clone()),
                None => out.remove(k),
            };
        }
        Ok(out)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// A stored network record (JSON), or [`IpamError::Corrupt`] naming `key`.
    pub(crate) fn parse_network(key: &[u8], value: &[u8]) -> Result<Network, IpamError> {
        let r: Record =
            serde_json::from_slice(value).map_err(|e| Self::corrupt(key, e.to_string()))?;
        Network::try_from(r).map_err(|e| Self::corrupt(key, e))
    }

    /// The network record, which must exist.
    fn existing(&mut self, name: &str) -> Result<Network, IpamError> {
        self.network = name.to_string();
        self.network(name)?
            .ok_or_else(|| IpamError::NetworkNotFound {
                network: name.to_string(),
            })
    }

    fn owner_at(&mut self, key: &[u8]) -> Result<Option<Owner>, IpamError> {
        let Some(v) = self.get(key)? else {
            return Ok(None);
        };
        let o: OwnerRecord =
            serde_json::from_slice(&v).map_err(|e| Self::corrupt(key, e.to_string()))?;
        Ok(Some(Owner::new(o.container, o.ifname)))
    }

    /// The address in a lease key.
    fn lease_addr(&self, key: &[u8], v6: bool) -> Result<u128, IpamError> {
        let hex = key.rsplit(|&b| b == b'/').next().unwrap_or_default();
        std::str::from_utf8(hex)
            .ok()
            .filter(|h| h.len() == 32)
            .and_then(|h| u128::from_str_radix(h, 16).ok())
            .filter(|&a| v6 || a <= u128::from(u32::MAX))
            .ok_or_else(|| Self::corrupt(key, "not a lease key"))
    }

    /// The first address at or after `c` (up to `to`) that no buffered write holds.
    fn skip_buffered(&self, net: &str, mut c: u128, to: u128) -> Option<u128> {
        while c <= to {
            let k = self.store.lease_key(net, c);
            if !matches!(self.writes.get(&k), Some(Some(_))) {
                return Some(c);
            }
            c = c.checked_add(1)?;
        }
        None
    }

    /// Checks `network`'s revision against the stored one (compare-and-swap).
    fn check_revision(&mut self, network: &Network) -> Result<(), IpamError> {
        if self.existing(&network.name)?.revision != network.revision {
            return Err(self.conflict());
        }
        Ok(())
    }

    fn bump_index(&mut self, name: &str) {
        let key = self.store.index_key();
        self.put(key, name.as_bytes().to_vec());
    }
}

impl Transaction for EtcdTx<'_> {
    fn network(&mut self, name: &str) -> Result<Option<Network>, IpamError> {
        let key = self.store.net_key(name);
        match self.get(&key)? {
            Some(v) => Ok(Some(Self::parse_network(&key, &v)?)),
            None => Ok(None),
        }
    }

    fn networks(&mut self) -> Result<Vec<Network>, IpamError> {
        // Read the index so that a network created or removed meanwhile is a conflict.
        self.get(&self.store.index_key())?;
        let prefix = format!("{}networks/", self.store.prefix).into_bytes();
        let mut nets = BTreeMap::new();
        for (k, v) in self.scan(&prefix)? {
            let n = Self::parse_network(&k, &v)?;
            nets.insert(n.name.clone(), n);
        }
        Ok(nets.into_values().collect())
    }

    fn create_network(&mut self, network: &Network) -> Result<(), IpamError> {
        self.network = network.name.clone();
        let key = self.store.net_key(&network.name);
        if self.get(&key)?.is_some() {
            return Err(self.conflict());
        }
        let value = serde_json::to_vec(&Record::from(network))
            .map_err(|e| Self::corrupt(&key, e.to_string()))?;
        self.put(key, value);
        self.bump_index(&network.name);
        Ok(())
    }

    fn update_network(&mut self, network: &Network) -> Result<(), IpamError> {
        self.check_revision(network)?;
        let key = self.store.net_key(&network.name);
        let mut rec = Record::from(network);
        rec.revision += 1;
        let value = serde_json::to_vec(&rec).map_err(|e| Self::corrupt(&key, e.to_string()))?;
        self.put(key, value);
        Ok(())
    }

    fn delete_network(&mut self, network: &Network) -> Result<(), IpamError> {
        self.check_revision(network)?;
        let name = &network.name;
        self.delete(self.store.net_key(name));
        for p in [self.store.lease_prefix(name), self.store.owner_prefix(name)] {
            // etcd refuses a transaction that both writes and deletes a key.
            let end = prefix_end(&p);
            let inside: Vec<_> = self
                .writes
                .range(p.clone()..end)
                .map(|(k, _)| k.clone())
                .collect();
            for k in inside {
                self.writes.remove(&k);
            }
            self.cleared.push(p);
        }
        self.bump_index(name);
        Ok(())
    }

    fn owner_of(&mut self, network: &str, address: IpAddr) -> Result<Option<Owner>, IpamError> {
        self.existing(network)?;
        let key = self.store.lease_key(network, to_u128(address));
        self.owner_at(&key)
    }

    fn address_of(&mut self, network: &str, owner: &Owner) -> Result<Option<IpAddr>, IpamError> {
        self.existing(network)?;
        let key = self.store.owner_key(network, owner);
        let Some(v) = self.get(&key)? else {
            return Ok(None);
        };
        let a = std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok());
        a.map(Some)
            .ok_or_else(|| Self::corrupt(&key, "value is not an address"))
    }

    fn leases(&mut self, network: &str) -> Result<Vec<(IpAddr, Owner)>, IpamError> {
        let v6 = self.existing(network)?.is_ipv6();
        let mut out = Vec::new();
        for (k, v) in self.scan(&self.store.lease_prefix(network))? {
            let a = self.lease_addr(&k, v6)?;
            let o: OwnerRecord =
                serde_json::from_slice(&v).map_err(|e| Self::corrupt(&k, e.to_string()))?;
            out.push((from_u128(a, v6), Owner::new(o.container, o.ifname)));
        }
        Ok(out)
    }

    fn first_free(
        &mut self,
        network: &str,
        from: IpAddr,
        to: IpAddr,
    ) -> Result<Option<IpAddr>, IpamError> {
        let v6 = self.existing(network)?.is_ipv6();
        let (mut c, to) = (to_u128(from), to_u128(to));
        if c > to {
            return Ok(None);
        }
        // Page through the held addresses from `from` on, merged with buffered writes.
        let mut start = self.store.lease_key(network, c);
        let mut end = self.store.lease_key(network, to);
        end.push(0);
        loop {
            let (kvs, more) = self.page(&start, &end)?;
            for kv in &kvs {
                if self.writes.get(&kv.key) == Some(&None) {
                    continue; // freed in this transaction
                }
                let a = self.lease_addr(&kv.key, v6)?;
                let Some(free) = self.skip_buffered(network, c, to) else {
                    return Ok(None);
                };
                c = free;
                if a > c {
                    return Ok(Some(from_u128(c, v6)));
                }
                if a == c {
                    let Some(next) = c.checked_add(1) else {
                        return Ok(None);
                    };
                    c = next;
                }
            }
            match kvs.last() {
                Some(last) if more => {
                    start = last.key.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(self.skip_buffered(network, c, to).map(|a| from_u128(a, v6)))
    }

    fn hold(&mut self, network: &str, address: IpAddr, owner: &Owner) -> Result<(), IpamError> {
        self.existing(network)?;
        let lease = self.store.lease_key(network, to_u128(address));
        let by_owner = self.store.owner_key(network, owner);
        if self.get(&lease)?.is_some() || self.get(&by_owner)?.is_some() {
            return Err(self.conflict());
        }
        let rec = OwnerRecord {
            container: owner.container.clone(),
            ifname: owner.ifname.clone(),
        };
        let value = serde_json::to_vec(&rec).map_err(|e| Self::corrupt(&lease, e.to_string()))?;
        self.put(lease, value);
        self.put(by_owner, address.to_string().into_bytes());
        Ok(())
    }

    fn free(&mut self, network: &str, address: IpAddr) -> Result<Option<Owner>, IpamError> {
        self.existing(network)?;
        let lease = self.store.lease_key(network, to_u128(address));
        let Some(owner) = self.owner_at(&lease)? else {
            return Ok(None);
        };
        self.delete(lease);
        self.delete(self.store.owner_key(network, &owner));
        Ok(Some(owner))
    }

    fn commit(self: Box<Self>) -> Result<(), IpamError> {
        if self.writes.is_empty() && self.cleared.is_empty() {
            return Ok(()); // read only: the snapshot was consistent
        }
        let mut txn = Txn::new();
        for (k, &rev) in &self.compares {
            txn = txn.when(Compare::mod_revision(k, CmpOp::Equal, rev));
        }
        for (k, w) in &self.writes {
            txn = txn.then(match w {
                Some(v) => TxnOp::put(k, v, None),
                None => TxnOp::delete(k),
            });
        }
        for p in &self.cleared {
            txn = txn.then(TxnOp::delete_range(p, prefix_end(p)));
        }
        let r = self
            .store
            .etcd
            .txn(&txn)
            .map_err(|e| self.err("commit under", self.store.prefix.as_bytes(), e))?;
        if !r.succeeded {
            return Err(self.conflict());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_collide() {
        assert_eq!(seg("br0"), "br0");
        assert_eq!(seg("a/b"), "a%2Fb");
        assert_eq!(seg("50%"), "50%25");
        assert_eq!(seg("x\ny"), "x%0Ay");
        assert_ne!(seg("a%2Fb"), seg("a/b"));
    }

    #[test]
    fn records_round_trip() {
        let n = Network {
            name: "n".into(),
            subnet: "fd00::/64".parse().unwrap(),
            gateway: Some("fd00::1".parse().unwrap()),
            range: "fd00::/80".parse().unwrap(),
            reserved: vec!["fd00::5".parse().unwrap()],
            cursor: None,
            last_released: Some("fd00::9".parse().unwrap()),
            revision: 7,
        };
        let json = serde_json::to_vec(&Record::from(&n)).unwrap();
        assert_eq!(EtcdTx::parse_network(b"k", &json).unwrap(), n);
        let bad = br#"{"name":"n","subnet":"nope","range":"fd00::/80","reserved":[],"revision":1}"#;
        assert!(matches!(
            EtcdTx::parse_network(b"k", bad),
            Err(IpamError::Corrupt { .. })
        ));
    }
}
