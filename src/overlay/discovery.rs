//! [`PeerDiscovery`]: how the hosts of an overlay network learn about each other and about
//! each other's containers.
//!
//! Every host that has containers on an overlay network *joins* it (announcing its
//! underlay address) and *publishes* each of its endpoints there (the container's overlay
//! address and MAC). The overlay driver reads the [`PeerView`] of every network it serves
//! and turns it into kernel state: one FDB and one neighbour entry per remote endpoint,
//! and one VXLAN allowance per remote host. [`PeerDiscovery::wait`] lets it follow
//! changes as they happen.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::Result;
use crate::link::MacAddr;

/// A host taking part in an overlay network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerHost {
    /// The host's unique, stable identifier (a hostname, a machine id).
    pub id: String,
    /// The host's underlay address: where VXLAN packets for its containers go.
    pub underlay: IpAddr,
}

/// A container endpoint on an overlay network.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerEndpoint {
    /// The [`PeerHost::id`] of the host the container runs on.
    pub host: String,
    /// The container's address on the overlay network.
    pub ip: IpAddr,
    /// The MAC address of the container's overlay interface.
    pub mac: MacAddr,
}

/// Everything discovery knows of one overlay network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerView {
    /// Goes up with every change of the network's hosts or endpoints; pass it to
    /// [`PeerDiscovery::wait`].
    pub revision: u64,
    /// Every host that has joined, in id order.
    pub hosts: Vec<PeerHost>,
    /// Every published endpoint, in (host, address) order.
    pub endpoints: Vec<PeerEndpoint>,
}

/// Where the hosts of overlay networks meet. Implementations: [`StaticPeers`] (a list held
/// in memory, shared by clones) and, with the `etcd` feature, an etcd-backed one whose
/// host registrations expire with the host's etcd lease.
pub trait PeerDiscovery: Send + Sync {
    /// Announces `host` as a member of `network`. Idempotent.
    fn join(&self, network: &str, host: &PeerHost) -> Result<()>;
    /// Withdraws host `host_id` and every endpoint it published from `network`. Idempotent.
    fn leave(&self, network: &str, host_id: &str) -> Result<()>;
    /// Publishes an endpoint on `network` (replacing one with the same host and address).
    fn publish(&self, network: &str, endpoint: &PeerEndpoint) -> Result<()>;
    /// Withdraws the endpoint of host `host_id` with address `ip`. Idempotent.
    fn withdraw(&self, network: &str, host_id: &str, ip: IpAddr) -> Result<()>;
    /// The current view of `network` (empty if nobody joined).
    fn view(&self, network: &str) -> Result<PeerView>;
    /// The view of `network` as this handle follows it through [`wait`](Self::wait): an
    /// implementation that receives the changes themselves may build it from them
    /// instead of asking its store, current as of the last change a `wait` took in. The
    /// default asks, as [`view`](Self::view).
    fn view_followed(&self, network: &str) -> Result<PeerView> {
        self.view(network)
    }
    /// Blocks until the view of `network` has a revision above `revision`, or `timeout`
    /// passes. Returns the new revision, or `None` on timeout.
    fn wait(&self, network: &str, revision: u64, timeout: Duration) -> Result<Option<u64>>;
}

/// A [`PeerDiscovery`] held in memory: a static list of hosts and endpoints given up front,
/// plus whatever is joined or published later. Clones share the list, so the hosts of a
/// test (or of one process managing several namespaces) see each other.
#[derive(Debug, Clone, Default)]
pub struct StaticPeers {
    inner: std::sync::Arc<(std::sync::Mutex<StaticState>, std::sync::Condvar)>,
}

#[derive(Debug, Default)]
struct StaticState {
    revision: u64,
    nets: std::collections::BTreeMap<String, (Vec<PeerHost>, Vec<PeerEndpoint>)>,
}

impl StaticPeers {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `hosts` and `endpoints` to `network` (builder form of `join` and `publish`).
    ///
    /// ```
    /// use netplumb::overlay::{PeerDiscovery, PeerEndpoint, PeerHost, StaticPeers};
    /// let peers = StaticPeers::new().with(
    ///     "ov1",
    ///     [PeerHost { id: "h2".into(), underlay: "192.0.2.2".parse().unwrap() }],
    ///     [PeerEndpoint {
    ///         host: "h2".into(),
    ///         ip: "10.0.0.3".parse().unwrap(),
    ///         mac: "02:42:0a:00:00:03".parse().unwrap(),
    ///     }],
    /// );
    /// assert_eq!(peers.view("ov1")?.hosts.len(), 1);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn with(
        self,
        network: &str,
        hosts: impl IntoIterator<Item = PeerHost>,
        endpoints: impl IntoIterator<Item = PeerEndpoint>,
    ) -> Self {
        for h in hosts {
            self.update(network, |hs, _| upsert(hs, h, |a, b| a.id == b.id));
        }
        for e in endpoints {
            self.update(network, |_, es| {
                upsert(es, e, |a, b| a.host == b.host && a.ip == b.ip)
            });
        }
        self
    }

    fn update(&self, network: &str, f: impl FnOnce(&mut Vec<PeerHost>, &mut Vec<PeerEndpoint>)) {
        let (lock, cv) = &*self.inner;
        let mut st = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (hs, es) = st.nets.entry(network.to_owned()).or_default();
        let before = (hs.clone(), es.clone());
        f(hs, es);
        hs.sort();
        es.sort();
        if before != (hs.clone(), es.clone()) {
            st.revision += 1;
            cv.notify_all();
        }
    }
}

fn upsert<T>(v: &mut Vec<T>, item: T, same: impl Fn(&T, &T) -> bool) {
    match v.iter_mut().find(|x| same(x, &item)) {
        Some(x) => *x = item,
        None => v.push(item),
    }
}

impl PeerDiscovery for StaticPeers {
    fn join(&self, network: &str, host: &PeerHost) -> Result<()> {
        self.update(network, |hs, _| {
            upsert(hs, host.clone(), |a, b| a.id == b.id)
        });
        Ok(())
    }

    fn leave(&self, network: &str, host_id: &str) -> Result<()> {
        self.update(network, |hs, es| {
            hs.retain(|h| h.id != host_id);
            es.retain(|e| e.host != host_id);
        });
        Ok(())
    }

    fn publish(&self, network: &str, endpoint: &PeerEndpoint) -> Result<()> {
        self.update(network, |_, es| {
            upsert(es, endpoint.clone(), |a, b| {
                a.host == b.host && a.ip == b.ip
            })
        });
        Ok(())
    }

    fn withdraw(&self, network: &str, host_id: &str, ip: IpAddr) -> Result<()> {
        self.update(network, |_, es| {
            es.retain(|e| !(e.host == host_id && e.ip == ip))
        });
        Ok(())
    }

    fn view(&self, network: &str) -> Result<PeerView> {
        let st = self.inner.0.lock().unwrap_or_else(|e| e.into_inner());
        let (hosts, endpoints) = st.nets.get(network).cloned().unwrap_or_default();
        Ok(PeerView {
            revision: st.revision,
            hosts,
            endpoints,
        })
    }

    fn wait(&self, _network: &str, revision: u64, timeout: Duration) -> Result<Option<u64>> {
        let (lock, cv) = &*self.inner;
        let st = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (st, _) = cv
            .wait_timeout_while(st, timeout, |s| s.revision <= revision)
            .unwrap_or_else(|e| e.into_inner());
        Ok((st.revision > revision).then_some(st.revision))
    }
}
