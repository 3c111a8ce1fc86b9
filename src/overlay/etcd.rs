//! Overlay networks shared through etcd: [`EtcdNetworks`] holds the definitions (subnet,
//! gateway, VNI) every host reads, and [`EtcdDiscovery`] is the [`PeerDiscovery`] whose
//! host registrations live under the host's etcd lease.
//!
//! # Keys
//!
//! Under a prefix (default [`DEFAULT_PREFIX`], `/netplumb/overlay/`):
//!
//! | key | value | written by |
//! |---|---|---|
//! | `networks/NAME` | the definition, JSON | [`EtcdNetworks::create`] |
//! | `vni/VNI` (8 decimal digits) | the network's name: the VNI claim | [`EtcdNetworks::create`] |
//! | `peers/NAME/hosts/HOST` | `{"id", "underlay"}`, under HOST's lease | [`PeerDiscovery::join`] |
//! | `peers/NAME/endpoints/HOST/IP` | `{"host", "ip", "mac"}`, under HOST's lease | [`PeerDiscovery::publish`] |
//!
//! The subnet is claimed in the IPAM store ([`crate::ipam::EtcdStore`]) first: its
//! compare-and-swap on the network index makes two hosts creating networks at once pick
//! different subnets. The definition and the VNI claim are then written in one etcd
//! transaction that succeeds only if neither key exists yet, so no two networks share a
//! VNI; a transaction that loses the race tries the next free VNI.
//!
//! A host's registrations are attached to one lease that a background thread keeps alive
//! ([`LeaseKeeper`]). When the host (or its process) dies, the lease expires after its
//! TTL, etcd deletes its keys, and the other hosts' watchers remove its FDB and neighbour
//! entries and its VXLAN allowance. A lease lost while etcd was out of reach is replaced,
//! and everything this handle registered is written again under the new one, on the next
//! call.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{json, Value};

use super::config::{OverlayNetwork, VNI_POOL};
use super::discovery::{PeerDiscovery, PeerEndpoint, PeerHost, PeerView};
use crate::error::{Error, Result};
use crate::etcd::{prefix_end, CmpOp, Compare, Etcd, EtcdError, LeaseKeeper, Txn, TxnOp};
use crate::ipam::{Ipam, IpamError, NetworkSpec, Pool, Pools, Store};
use crate::link::MacAddr;

/// The default key prefix of overlay definitions and peers.
pub const DEFAULT_PREFIX: &str = "/netplumb/overlay/";

/// The default TTL of a host's registrations: how long a dead host stays known.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

fn corrupt(key: &[u8], what: &str) -> Error {
    EtcdError::Protocol {
        op: "overlay record",
        detail: format!(
            "key {}: bad or missing {what}",
            String::from_utf8_lossy(key)
        ),
    }
    .into()
}

/// What [`EtcdNetworks::create`] is asked for: `docker network create -d overlay`.
///
/// ```
/// use netplumb::overlay::OverlaySpec;
/// let spec = OverlaySpec::new("ov1").subnet("10.0.9.0/24".parse().unwrap()).vni(4097);
/// assert_eq!(spec.name(), "ov1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct OverlaySpec {
    name: String,
    subnet: Option<IpNet>,
    gateway: Option<IpAddr>,
    vni: Option<u32>,
    mtu: Option<u32>,
}

impl OverlaySpec {
    /// A network `name` with its subnet taken from the address pools and the lowest free
    /// VNI of the pool.
    pub fn new(name: &str) -> Self {
        OverlaySpec {
            name: name.to_owned(),
            subnet: None,
            gateway: None,
            vni: None,
            mtu: None,
        }
    }

    /// The subnet (`--subnet`).
    pub fn subnet(mut self, subnet: IpNet) -> Self {
        self.subnet = Some(subnet);
        self
    }

    /// The reserved gateway (`--gateway`).
    pub fn gateway(mut self, gw: IpAddr) -> Self {
        self.gateway = Some(gw);
        self
    }

    /// A specific VNI instead of the lowest free one of the pool.
    pub fn vni(mut self, vni: u32) -> Self {
        self.vni = Some(vni);
        self
    }

    /// The containers' MTU (default: underlay MTU − 50).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn def_json(net: &OverlayNetwork) -> Value {
    json!({
        "name": net.name(),
        "subnet": net.subnet().to_string(),
        "gateway": net.gateway_ip().to_string(),
        "vni": net.vxlan_id(),
        "mtu": net.mtu,
    })
}

/// A stored overlay network definition (JSON), or an error naming `key`.
pub(crate) fn def_parse(key: &[u8], v: &[u8]) -> Result<OverlayNetwork> {
    let bad = |what: &str| corrupt(key, what);
    let v: Value = serde_json::from_slice(v).map_err(|e| bad(&e.to_string()))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| bad(k));
    let subnet: IpNet = s("subnet")?.parse().map_err(|_| bad("subnet"))?;
    let gateway: IpAddr = s("gateway")?.parse().map_err(|_| bad("gateway"))?;
    let vni = v
        .get("vni")
        .and_then(Value::as_u64)
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| bad("vni"))?;
    let mut net = OverlayNetwork::new(s("name")?, subnet)
        .gateway(gateway)
        .vni(vni);
    if let Some(mtu) = v.get("mtu").and_then(Value::as_u64) {
        net = net.mtu(u32::try_from(mtu).map_err(|_| bad("mtu"))?);
    }
    Ok(net)
}

/// Overlay network definitions in etcd, shared by every host of a cluster.
///
/// ```no_run
/// use netplumb::etcd::{Etcd, EtcdConfig};
/// use netplumb::ipam::{EtcdStore, Ipam};
/// use netplumb::overlay::{EtcdNetworks, OverlaySpec};
/// let etcd = Etcd::connect(EtcdConfig::new("etcd://127.0.0.1:2379")?)?;
/// let ipam = Ipam::new(EtcdStore::new(etcd.clone()));
/// let nets = EtcdNetworks::new(etcd);
/// let ov1 = nets.create(&ipam, &OverlaySpec::new("ov1"))?;   // on host 1
/// let same = nets.get("ov1")?;                                // on any host
/// assert_eq!(same.as_ref(), Some(&ov1));
/// println!("{} vni {}", ov1.subnet(), ov1.vxlan_id());
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct EtcdNetworks {
    etcd: Etcd,
    prefix: String,
    vnis: RangeInclusive<u32>,
    pools: Pools,
}

/// The pools overlay subnets come from when none is given: Docker swarm's default,
/// `10.0.0.0/8` cut into `/24`s, apart from the local bridge networks' `172.17.0.0/16`….
pub fn default_overlay_pools() -> Pools {
    Pools::new(vec![
        Pool::new("10.0.0.0/8".parse().expect("literal"), 24).expect("valid pool")
    ])
}

impl EtcdNetworks {
    /// Definitions under [`DEFAULT_PREFIX`], VNIs from [`VNI_POOL`].
    pub fn new(etcd: Etcd) -> Self {
        EtcdNetworks {
            etcd,
            prefix: DEFAULT_PREFIX.to_owned(),
            vnis: VNI_POOL,
            pools: default_overlay_pools(),
        }
    }

    /// Other address pools for subnets not given ([`default_overlay_pools`] by default).
    pub fn pools(mut self, pools: Pools) -> Self {
        self.pools = pools;
        self
    }

    /// Another key prefix (several clusters in one etcd).
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Another VNI pool.
    pub fn vni_pool(mut self, vnis: RangeInclusive<u32>) -> Self {
        self.vnis = vnis;
        self
    }

    fn net_key(&self, name: &str) -> String {
        format!("{}networks/{name}", self.prefix)
    }

    fn vni_key(&self, vni: u32) -> String {
        format!("{}vni/{vni:08}", self.prefix)
    }

    /// Creates an overlay network: claims its subnet in `ipam` (from the pools unless
    /// given), then writes its definition and claims its VNI (the lowest free one of the
    /// pool unless given) in one transaction. [`Error::Exists`] if the name or a requested
    /// VNI is taken; [`crate::ErrorKind::Exhausted`] when the pool has no free VNI. Nothing
    /// is left behind on failure.
    pub fn create<S: Store>(&self, ipam: &Ipam<S>, spec: &OverlaySpec) -> Result<OverlayNetwork> {
        let probe = OverlayNetwork::new(
            &spec.name,
            spec.subnet
                .unwrap_or_else(|| "10.0.0.0/24".parse().expect("literal")),
        );
        // Name (and, if given, the rest) checked before anything is written.
        let mut probe = probe;
        if let Some(v) = spec.vni {
            probe = probe.vni(v);
        }
        if let Some(m) = spec.mtu {
            probe = probe.mtu(m);
        }
        if let Some(g) = spec.gateway {
            probe = probe.gateway(g);
        }
        probe.validate()?;
        if let Some(v) = spec.vni {
            if self.etcd.get(self.vni_key(v))?.is_some() {
                return Err(Error::Exists(format!("VNI {v} (taken by another network)")));
            }
        }
        if self.etcd.get(self.net_key(&spec.name))?.is_some() {
            return Err(Error::Exists(format!("overlay network {}", spec.name)));
        }
        let claimed = self.claim_subnet(ipam, spec)?;
        match self.write_definition(&claimed, spec) {
            Ok(net) => Ok(net),
            Err(e) => {
                if let Err(undo) = ipam.remove_network(&spec.name) {
                    log::warn!("undo of network {} in IPAM failed: {undo}", spec.name);
                }
                Err(e)
            }
        }
    }

    /// Creates the IPAM network: the given subnet, or the first one of the pools that no
    /// network overlaps (another host may take it first: then the next one).
    fn claim_subnet<S: Store>(
        &self,
        ipam: &Ipam<S>,
        spec: &OverlaySpec,
    ) -> Result<crate::ipam::Network> {
        let mut tries = 0;
        loop {
            let subnet = match spec.subnet {
                Some(s) => s,
                None => {
                    let taken: Vec<IpNet> = ipam.networks()?.iter().map(|n| n.subnet).collect();
                    self.pools.first_free(false, &taken).ok_or_else(|| {
                        Error::Ipam(IpamError::PoolsExhausted {
                            network: spec.name.clone(),
                            family: "IPv4",
                        })
                    })?
                }
            };
            let mut ns = NetworkSpec::new(spec.name.clone()).subnet(subnet);
            if let Some(g) = spec.gateway {
                ns = ns.gateway(g);
            }
            match ipam.create_network(&ns) {
                Ok(n) => return Ok(n),
                Err(IpamError::NetworkExists { .. }) => {
                    return Err(Error::Exists(format!("overlay network {}", spec.name)))
                }
                Err(IpamError::Overlap { .. }) if spec.subnet.is_none() && tries < 64 => {
                    tries += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn write_definition(
        &self,
        claimed: &crate::ipam::Network,
        spec: &OverlaySpec,
    ) -> Result<OverlayNetwork> {
        let mut net = OverlayNetwork::new(&spec.name, claimed.subnet);
        if let Some(g) = claimed.gateway {
            net = net.gateway(g);
        }
        if let Some(m) = spec.mtu {
            net = net.mtu(m);
        }
        let net_key = self.net_key(&spec.name);
        loop {
            let vni = match spec.vni {
                Some(v) => v,
                None => self.free_vni()?,
            };
            let candidate = net.clone().vni(vni);
            let txn = Txn::new()
                .when(Compare::create_revision(&net_key, CmpOp::Equal, 0))
                .when(Compare::create_revision(self.vni_key(vni), CmpOp::Equal, 0))
                .then(TxnOp::put(&net_key, def_json(&candidate).to_string(), None))
                .then(TxnOp::put(self.vni_key(vni), spec.name.as_bytes(), None));
            if self.etcd.txn(&txn)?.succeeded {
                return Ok(candidate);
            }
            if self.etcd.get(&net_key)?.is_some() {
                return Err(Error::Exists(format!("overlay network {}", spec.name)));
            }
            if spec.vni.is_some() {
                return Err(Error::Exists(format!(
                    "VNI {vni} (taken by another network)"
                )));
            }
            // Another host claimed this VNI first: take the next free one.
        }
    }

    fn free_vni(&self) -> Result<u32> {
        let p = format!("{}vni/", self.prefix);
        let used: std::collections::BTreeSet<u32> = self
            .etcd
            .prefix(&p)?
            .iter()
            .filter_map(|kv| kv.key_str()?.strip_prefix(&p)?.parse().ok())
            .collect();
        self.vnis
            .clone()
            .find(|v| !used.contains(v))
            .ok_or_else(|| {
                Error::Ipam(IpamError::PoolsExhausted {
                    network: format!(
                        "VNI pool {}-{} (every VNI is taken)",
                        self.vnis.start(),
                        self.vnis.end()
                    ),
                    family: "VNI",
                })
            })
    }

    /// The definition of `name`, if it exists.
    pub fn get(&self, name: &str) -> Result<Option<OverlayNetwork>> {
        let key = self.net_key(name);
        match self.etcd.get(&key)? {
            Some(kv) => Ok(Some(def_parse(&kv.key, &kv.value)?)),
            None => Ok(None),
        }
    }

    /// Every definition, in name order.
    pub fn list(&self) -> Result<Vec<OverlayNetwork>> {
        self.etcd
            .prefix(format!("{}networks/", self.prefix))?
            .iter()
            .map(|kv| def_parse(&kv.key, &kv.value))
            .collect()
    }

    /// Removes `name`: its IPAM network (refused while any container holds an address
    /// there: [`crate::ErrorKind::Busy`]), then its definition and VNI claim. A network
    /// that is not there is not an error.
    pub fn remove<S: Store>(&self, ipam: &Ipam<S>, name: &str) -> Result<()> {
        let def = self.get(name)?;
        match ipam.remove_network(name) {
            Ok(()) | Err(IpamError::NetworkNotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut txn = Txn::new().then(TxnOp::delete(self.net_key(name)));
        if let Some(d) = def {
            txn = txn.then(TxnOp::delete(self.vni_key(d.vxlan_id())));
        }
        self.etcd.txn(&txn)?;
        Ok(())
    }
}

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
        let mut txn = Txn::new();
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

fn host_json(h: &PeerHost) -> Value {
    json!({ "id": h.id, "underlay": h.underlay.to_string() })
}

fn ep_json(e: &PeerEndpoint) -> Value {
    json!({ "host": e.host, "ip": e.ip.to_string(), "mac": e.mac.to_string() })
}

/// A stored host registration (JSON), or an error naming `key`.
pub(crate) fn parse_host(key: &[u8], v: &[u8]) -> Result<PeerHost> {
    let bad = |what: &str| corrupt(key, what);
    let v: Value = serde_json::from_slice(v).map_err(|e| bad(&e.to_string()))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| bad(k));
    Ok(PeerHost {
        id: s("id")?.to_owned(),
        underlay: s("underlay")?.parse().map_err(|_| bad("underlay"))?,
    })
}

/// A stored endpoint registration (JSON), or an error naming `key`.
pub(crate) fn parse_ep(key: &[u8], v: &[u8]) -> Result<PeerEndpoint> {
    let bad = |what: &str| corrupt(key, what);
    let v: Value = serde_json::from_slice(v).map_err(|e| bad(&e.to_string()))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| bad(k));
    Ok(PeerEndpoint {
        host: s("host")?.to_owned(),
        ip: s("ip")?.parse().map_err(|_| bad("ip"))?,
        mac: s("mac")?.parse::<MacAddr>().map_err(|_| bad("mac"))?,
    })
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
        let txn = Txn::new()
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
        let mut view = PeerView {
            revision: u64::try_from(r.revision).unwrap_or(0),
            ..PeerView::default()
        };
        for kv in &r.kvs {
            let rest = &kv.key[p.len()..];
            if rest.starts_with(b"hosts/") {
                view.hosts.push(parse_host(&kv.key, &kv.value)?);
            } else if rest.starts_with(b"endpoints/") {
                view.endpoints.push(parse_ep(&kv.key, &kv.value)?);
            }
        }
        view.hosts.sort();
        view.endpoints.sort();
        Ok(view)
    }

    fn wait(&self, network: &str, revision: u64, timeout: Duration) -> Result<Option<u64>> {
        let p = self.net_prefix(network);
        let start = i64::try_from(revision).unwrap_or(i64::MAX - 1) + 1;
        let mut w = self
            .etcd
            .watch(&p, Some(&prefix_end(p.as_bytes())), Some(start))?;
        match w.next(timeout)? {
            Some(events) => {
                let rev = events
                    .iter()
                    .map(|e| e.kv.mod_revision)
                    .max()
                    .unwrap_or(w.revision());
                Ok(Some(u64::try_from(rev.max(start)).unwrap_or(revision + 1)))
            }
            None => Ok(None),
        }
    }
}
