//! [`EtcdDiscovery`]: the [`PeerDiscovery`] whose host and endpoint registrations live in
//! etcd under the host's lease; the keys are in [`etcd_records`](super::etcd_records).
//!
//! A host's registrations are attached to one lease that a background thread keeps alive
//! ([`LeaseKeeper`]). When the host (or its process) dies, the lease expires after its
//! TTL, etcd deletes its keys, and the other hosts' watchers remove its FDB and neighbour
//! entries and its VXLAN allowance. A lease lost while etcd was out of reach is replaced,
//! and everything this handle registered is written again under the new one, on the next
//! call.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::discovery::{PeerDiscovery, PeerEndpoint, PeerHost, PeerView};
use super::etcd_follow::Follow;
use super::etcd_records::{ep_json, host_json, parse_ep, parse_host, DEFAULT_PREFIX};
use crate::error::Result;
use crate::etcd::{prefix_end, Etcd, LeaseKeeper, TxnOp, TxnRequest, Watch};

/// The default TTL of a host's registrations: how long a dead host stays known.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// What this handle registered, to write again under a new lease.
#[derive(Debug, Default)]
struct Registered {
    keeper: Option<LeaseKeeper>,
    hosts: BTreeMap<(String, String), PeerHost>,
    endpoints: BTreeMap<(String, String, IpAddr), PeerEndpoint>,
}

/// A [`PeerDiscovery`] in etcd. One per host process: its registrations share one lease,
/// kept alive by a background thread, so they expire [`ttl`](EtcdDiscovery::ttl) after
/// the process dies. Dropping it stops the keep-alive without deleting anything (a
/// restarting runtime's containers stay reachable until the TTL);
/// [`shutdown`](EtcdDiscovery::shutdown) deletes everything at once.
///
/// ```no_run
/// use std::sync::Arc;
/// use netplumb::etcd::{Etcd, EtcdConfig};
/// use netplumb::overlay::{EtcdDiscovery, PeerDiscovery, PeerHost};
/// let etcd = Etcd::connect(EtcdConfig::new("etcd://127.0.0.1:2379")?)?;
/// let discovery = Arc::new(EtcdDiscovery::new(etcd));
/// discovery.join("ov1", &PeerHost { id: "h1".into(), underlay: "192.168.99.1".parse().unwrap() })?;
/// println!("{:?}", discovery.view("ov1")?.hosts);
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug)]
pub struct EtcdDiscovery {
    etcd: Etcd,
    prefix: String,
    ttl: Duration,
    reg: Mutex<Registered>,
    /// The open watch of each network being waited on, with the revision it started
    /// from: kept across [`wait`](PeerDiscovery::wait)s, so that a watcher that finds
    /// nothing in one wait does not open a new watch for the next (five times a second).
    watches: Mutex<BTreeMap<String, (Watch, u64)>>,
    /// The keys of each network waited on, kept current from its watch's events
    /// ([`view_followed`](PeerDiscovery::view_followed)).
    follow: Follow,
}

impl EtcdDiscovery {
    /// Discovery under [`DEFAULT_PREFIX`] with registrations living [`DEFAULT_TTL`] after
    /// their host stops renewing them.
    pub fn new(etcd: Etcd) -> Self {
        EtcdDiscovery {
            etcd,
            prefix: DEFAULT_PREFIX.to_owned(),
            ttl: DEFAULT_TTL,
            reg: Mutex::new(Registered::default()),
            watches: Mutex::new(BTreeMap::new()),
            follow: Follow::default(),
        }
    }

    /// Another key prefix.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Another registration TTL (etcd's minimum is a few seconds).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Revokes this handle's lease: every host registration and endpoint it wrote is
    /// deleted at once, and peers drop them on their next sync.
    pub fn shutdown(self) -> Result<()> {
        let keeper = self.lock().keeper.take();
        match keeper {
            Some(k) => k.revoke(),
            None => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registered> {
        self.reg.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn net_prefix(&self, network: &str) -> String {
        format!("{}peers/{network}/", self.prefix)
    }

    fn host_key(&self, network: &str, id: &str) -> String {
        format!("{}hosts/{id}", self.net_prefix(network))
    }

    fn ep_prefix(&self, network: &str, host: &str) -> String {
        format!("{}endpoints/{host}/", self.net_prefix(network))
    }

    /// The live lease, granting a new one (and writing every registration again under
    /// it) if there is none or the old one expired.
    fn lease(&self, reg: &mut Registered) -> Result<i64> {
        if let Some(k) = &reg.keeper {
            if k.is_alive() {
                return Ok(k.id());
            }
        }
        let keeper = LeaseKeeper::grant(&self.etcd, self.ttl)?;
        let id = keeper.id();
        let mut txn = TxnRequest::new();
        for ((net, hid), h) in &reg.hosts {
            txn = txn.then(TxnOp::put(
                self.host_key(net, hid),
                host_json(h).to_string(),
                Some(id),
            ));
        }
        for ((net, host, ip), e) in &reg.endpoints {
            txn = txn.then(TxnOp::put(
                format!("{}{ip}", self.ep_prefix(net, host)),
                ep_json(e).to_string(),
                Some(id),
            ));
        }
        if txn.size() != (0, 0) {
            self.etcd.txn(&txn)?;
        }
        reg.keeper = Some(keeper);
        Ok(id)
    }
}

impl EtcdDiscovery {
    /// Keeps `network`'s watch (started from revision `from`) for the next wait.
    fn keep(&self, network: &str, w: Watch, from: u64) {
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(network.to_owned(), (w, from));
    }
}

impl PeerDiscovery for EtcdDiscovery {
    fn join(&self, network: &str, host: &PeerHost) -> Result<()> {
        let mut reg = self.lock();
        let key = (network.to_owned(), host.id.clone());
        let live = reg.keeper.as_ref().is_some_and(LeaseKeeper::is_alive);
        if live && reg.hosts.get(&key) == Some(host) {
            // Written under the live lease already: nothing to do (every connect joins).
            return Ok(());
        }
        let lease = self.lease(&mut reg)?;
        self.etcd.put(
            self.host_key(network, &host.id),
            host_json(host).to_string(),
            Some(lease),
        )?;
        reg.hosts
            .insert((network.to_owned(), host.id.clone()), host.clone());
        Ok(())
    }

    fn leave(&self, network: &str, host_id: &str) -> Result<()> {
        let mut reg = self.lock();
        let eps = self.ep_prefix(network, host_id);
        let txn = TxnRequest::new()
            .then(TxnOp::delete(self.host_key(network, host_id)))
            .then(TxnOp::delete_range(&eps, prefix_end(eps.as_bytes())));
        self.etcd.txn(&txn)?;
        reg.hosts.remove(&(network.to_owned(), host_id.to_owned()));
        reg.endpoints
            .retain(|(n, h, _), _| !(n == network && h == host_id));
        Ok(())
    }

    fn publish(&self, network: &str, endpoint: &PeerEndpoint) -> Result<()> {
        let mut reg = self.lock();
        let key = (network.to_owned(), endpoint.host.clone(), endpoint.ip);
        let live = reg.keeper.as_ref().is_some_and(LeaseKeeper::is_alive);
        if live && reg.endpoints.get(&key) == Some(endpoint) {
            return Ok(()); // written under the live lease already
        }
        let lease = self.lease(&mut reg)?;
        self.etcd.put(
            format!("{}{}", self.ep_prefix(network, &endpoint.host), endpoint.ip),
            ep_json(endpoint).to_string(),
            Some(lease),
        )?;
        reg.endpoints.insert(
            (network.to_owned(), endpoint.host.clone(), endpoint.ip),
            endpoint.clone(),
        );
        Ok(())
    }

    fn withdraw(&self, network: &str, host_id: &str, ip: IpAddr) -> Result<()> {
        let mut reg = self.lock();
        self.etcd
            .delete(format!("{}{ip}", self.ep_prefix(network, host_id)))?;
        reg.endpoints
            .remove(&(network.to_owned(), host_id.to_owned(), ip));
        Ok(())
    }

    fn view(&self, network: &str) -> Result<PeerView> {
        {
            // Re-register after a lost lease before reading, so our own entries are there.
            let mut reg = self.lock();
            if !(reg.hosts.is_empty() && reg.endpoints.is_empty()) {
                self.lease(&mut reg)?;
            }
        }
        let p = self.net_prefix(network);
        let r = self.etcd.range(&p, Some(&prefix_end(p.as_bytes())), 0)?;
        let revision = u64::try_from(r.revision).unwrap_or(0);
        self.follow.ranged(network, revision, &r.kvs);
        let kvs = r.kvs.into_iter().map(|kv| (kv.key, kv.value));
        build_view(p.len(), revision, kvs)
    }

    fn view_followed(&self, network: &str) -> Result<PeerView> {
        match self.follow.copy(network) {
            Some((revision, kvs)) => build_view(self.net_prefix(network).len(), revision, kvs),
            None => self.view(network),
        }
    }

    fn wait(&self, network: &str, revision: u64, timeout: Duration) -> Result<Option<u64>> {
        let deadline = std::time::Instant::now() + timeout;
        // The network's open watch, if it started early enough to hold every change after
        // `revision`; else a new one from there.
        let kept = self
            .watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(network)
            .filter(|(_, from)| *from <= revision + 1);
        let (mut w, from) = match kept {
            Some(k) => k,
            None => {
                let p = self.net_prefix(network);
                let start = i64::try_from(revision).unwrap_or(i64::MAX - 1) + 1;
                let w = self
                    .etcd
                    .watch(&p, Some(&prefix_end(p.as_bytes())), Some(start))
                    .inspect_err(|_| self.follow.lost(network))?;
                (w, revision + 1)
            }
        };
        self.follow.watching_from(network, from);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // A failed watch is dropped (the next wait opens a new one), and with it the
            // keys followed through it.
            let next = w.next(left).inspect_err(|_| self.follow.lost(network))?;
            let Some(events) = next else {
                self.keep(network, w, from);
                return Ok(None);
            };
            self.follow.events(network, &events);
            let rev = events
                .iter()
                .map(|e| e.kv.mod_revision)
                .max()
                .unwrap_or(w.revision());
            let rev = u64::try_from(rev).unwrap_or(0);
            // Changes the caller's view has already are skipped.
            if rev > revision {
                self.keep(network, w, from);
                return Ok(Some(rev));
            }
            if left.is_zero() {
                self.keep(network, w, from);
                return Ok(None);
            }
        }
    }
}

/// The view made of a network's keys (`prefix_len` bytes of prefix), read at `revision`.
fn build_view(
    prefix_len: usize,
    revision: u64,
    kvs: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<PeerView> {
    let mut view = PeerView {
        revision,
        ..PeerView::default()
    };
    for (key, value) in kvs {
        let rest = &key[prefix_len.min(key.len())..];
        if rest.starts_with(b"hosts/") {
            view.hosts.push(parse_host(&key, &value)?);
        } else if rest.starts_with(b"endpoints/") {
            view.endpoints.push(parse_ep(&key, &value)?);
        }
    }
    view.hosts.sort();
    view.endpoints.sort();
    Ok(view)
}
