//! [`EtcdTx`]: the optimistic transaction of [`EtcdStore`](super::EtcdStore), one etcd
//! snapshot read and one compare-and-swap [`TxnRequest`] at commit (see the
//! [module docs](super) for the model).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::super::pool::{from_u128, to_u128};
use super::super::{IpamError, Network, Owner, StoreTxn};
use super::keys::{lease_addr, text, Keys};
use super::record::{network_value, owner_value, parse_address, parse_network, parse_owner};
use crate::error::Error;
use crate::etcd::{
    prefix_end, CmpOp, Compare, Etcd, EtcdError, KeyValue, TxnOp, TxnOpResponse, TxnRequest,
};

/// Keys read per request when scanning leases or networks.
const PAGE: i64 = 256;

/// One optimistic transaction: a snapshot, the keys read, the writes buffered.
pub(super) struct EtcdTx<'a> {
    etcd: &'a Etcd,
    keys: Keys<'a>,
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
    /// Key ranges (`from..to`) read whole as of the snapshot: a key in one that the read
    /// did not return was absent, and needs no read of its own.
    covered: Vec<(Vec<u8>, Vec<u8>)>,
    /// The network a conflict is reported on.
    network: String,
}

impl<'a> EtcdTx<'a> {
    /// A transaction on `etcd`, with keys under `keys`; it reads nothing until asked.
    pub(super) fn new(etcd: &'a Etcd, keys: Keys<'a>) -> Self {
        EtcdTx {
            etcd,
            keys,
            snapshot: 0,
            compares: BTreeMap::new(),
            cache: HashMap::new(),
            writes: BTreeMap::new(),
            cleared: Vec::new(),
            covered: Vec::new(),
            network: String::new(),
        }
    }

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
        let k = key.to_vec();
        if self
            .covered
            .iter()
            .any(|(from, to)| (from..to).contains(&&k))
        {
            // Absent as of the snapshot: compared as absent at commit, as if read.
            self.compares.insert(k.clone(), 0);
            self.cache.insert(k, None);
            return Ok(None);
        }
        let r = self
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

    /// Reads `keys` in one request (a read-only etcd transaction, one revision for all)
    /// when they are this transaction's first reads; otherwise leaves them to [`get`].
    ///
    /// [`get`]: EtcdTx::get
    fn read_first(&mut self, keys: &[Vec<u8>]) -> Result<(), IpamError> {
        if self.snapshot != 0 || !self.writes.is_empty() || !self.cleared.is_empty() {
            return Ok(());
        }
        let mut txn = TxnRequest::new();
        for k in keys {
            txn = txn.then(TxnOp::range(k, None, 0));
        }
        let r = self
            .etcd
            .txn(&txn)
            .map_err(|e| self.err("read", &keys[0], e))?;
        self.snapshot = r.revision;
        for (k, resp) in keys.iter().zip(r.responses) {
            let TxnOpResponse::Range(rr) = resp else {
                continue;
            };
            let kv = rr.kvs.into_iter().next();
            self.compares
                .insert(k.clone(), kv.as_ref().map_or(0, |kv| kv.mod_revision));
            self.cache.insert(k.clone(), kv.map(|kv| kv.value));
        }
        Ok(())
    }

    /// Up to [`PAGE`] keys of `from..end` as of the snapshot (buffered writes not
    /// applied), and whether more follow.
    fn page(&mut self, from: &[u8], end: &[u8]) -> Result<(Vec<KeyValue>, bool), IpamError> {
        let r = self
            .etcd
            .range_at(from, Some(end), PAGE, self.snapshot)
            .map_err(|e| self.err("range read from", from, e))?;
        self.snapshot = r.revision;
        for kv in &r.kvs {
            self.cache.insert(kv.key.clone(), Some(kv.value.clone()));
        }
        let to = match r.kvs.last() {
            Some(last) if r.more => [last.key.as_slice(), &[0]].concat(),
            _ if r.more => from.to_vec(),
            _ => end.to_vec(),
        };
        self.covered.push((from.to_vec(), to));
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
        parse_owner(key, &v).map(Some)
    }

    /// The first address at or after `c` (up to `to`) that no buffered write holds.
    fn skip_buffered(&self, net: &str, mut c: u128, to: u128) -> Option<u128> {
        while c <= to {
            let k = self.keys.lease(net, c);
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
        let key = self.keys.index();
        self.put(key, name.as_bytes().to_vec());
    }
}

impl StoreTxn for EtcdTx<'_> {
    fn network(&mut self, name: &str) -> Result<Option<Network>, IpamError> {
        let key = self.keys.network(name);
        match self.get(&key)? {
            Some(v) => Ok(Some(parse_network(&key, &v)?)),
            None => Ok(None),
        }
    }

    fn networks(&mut self) -> Result<Vec<Network>, IpamError> {
        // Read the index so that a network created or removed meanwhile is a conflict.
        self.get(&self.keys.index())?;
        let prefix = self.keys.networks();
        let mut nets = BTreeMap::new();
        for (k, v) in self.scan(&prefix)? {
            let n = parse_network(&k, &v)?;
            nets.insert(n.name.clone(), n);
        }
        Ok(nets.into_values().collect())
    }

    fn create_network(&mut self, network: &Network) -> Result<(), IpamError> {
        self.network = network.name.clone();
        let key = self.keys.network(&network.name);
        if self.get(&key)?.is_some() {
            return Err(self.conflict());
        }
        let value = network_value(&key, network, network.revision)?;
        self.put(key, value);
        self.bump_index(&network.name);
        Ok(())
    }

    fn update_network(&mut self, network: &Network) -> Result<(), IpamError> {
        self.check_revision(network)?;
        let key = self.keys.network(&network.name);
        let value = network_value(&key, network, network.revision + 1)?;
        self.put(key, value);
        Ok(())
    }

    fn delete_network(&mut self, network: &Network) -> Result<(), IpamError> {
        self.check_revision(network)?;
        let name = &network.name;
        self.delete(self.keys.network(name));
        for p in [self.keys.lease_prefix(name), self.keys.owner_prefix(name)] {
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
        let key = self.keys.lease(network, to_u128(address));
        self.owner_at(&key)
    }

    fn address_of(&mut self, network: &str, owner: &Owner) -> Result<Option<IpAddr>, IpamError> {
        let key = self.keys.owner(network, owner);
        // The first reads of an allocation: both keys in one request.
        self.read_first(&[self.keys.network(network), key.clone()])?;
        self.existing(network)?;
        let Some(v) = self.get(&key)? else {
            return Ok(None);
        };
        parse_address(&key, &v).map(Some)
    }

    fn leases(&mut self, network: &str) -> Result<Vec<(IpAddr, Owner)>, IpamError> {
        let v6 = self.existing(network)?.is_ipv6();
        let mut out = Vec::new();
        for (k, v) in self.scan(&self.keys.lease_prefix(network))? {
            let a = lease_addr(&k, v6)?;
            out.push((from_u128(a, v6), parse_owner(&k, &v)?));
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
        let mut start = self.keys.lease(network, c);
        let mut end = self.keys.lease(network, to);
        end.push(0);
        loop {
            let (kvs, more) = self.page(&start, &end)?;
            for kv in &kvs {
                if self.writes.get(&kv.key) == Some(&None) {
                    continue; // freed in this transaction
                }
                let a = lease_addr(&kv.key, v6)?;
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
        let lease = self.keys.lease(network, to_u128(address));
        let by_owner = self.keys.owner(network, owner);
        if self.get(&lease)?.is_some() || self.get(&by_owner)?.is_some() {
            return Err(self.conflict());
        }
        let value = owner_value(&lease, owner)?;
        self.put(lease, value);
        self.put(by_owner, address.to_string().into_bytes());
        Ok(())
    }

    fn free(&mut self, network: &str, address: IpAddr) -> Result<Option<Owner>, IpamError> {
        self.existing(network)?;
        let lease = self.keys.lease(network, to_u128(address));
        let Some(owner) = self.owner_at(&lease)? else {
            return Ok(None);
        };
        self.delete(lease);
        self.delete(self.keys.owner(network, &owner));
        Ok(Some(owner))
    }

    fn commit(self: Box<Self>) -> Result<(), IpamError> {
        if self.writes.is_empty() && self.cleared.is_empty() {
            return Ok(()); // read only: the snapshot was consistent
        }
        let mut txn = TxnRequest::new();
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
            .etcd
            .txn(&txn)
            .map_err(|e| self.err("commit under", self.keys.prefix().as_bytes(), e))?;
        if !r.succeeded {
            return Err(self.conflict());
        }
        Ok(())
    }
}
