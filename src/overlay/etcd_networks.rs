//! [`EtcdNetworks`]: overlay network definitions (subnet, gateway, VNI) in etcd, which
//! every host reads; the keys are in [`etcd_records`](super::etcd_records).
//!
//! The subnet is claimed in the IPAM store ([`crate::ipam::EtcdStore`]) first: its
//! compare-and-swap on the network index makes two hosts creating networks at once pick
//! different subnets. The definition and the VNI claim are then written in one etcd
//! transaction that succeeds only if neither key exists yet, so no two networks share a
//! VNI; a transaction that loses the race tries the next free VNI.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;

use super::config::{OverlayNetwork, VNI_POOL};
use super::etcd_records::{def_json, def_parse, DEFAULT_PREFIX};
use crate::error::{Error, Object, Result};
use crate::etcd::{CmpOp, Compare, Etcd, TxnOp, TxnRequest};
use crate::ipam::{Ipam, IpamError, NetworkSpec, Pool, Pools, Store};

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
                return Err(vni_taken(v));
            }
        }
        if self.etcd.get(self.net_key(&spec.name))?.is_some() {
            return Err(Error::exists(Object::OverlayNetwork, &spec.name));
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
                    return Err(Error::exists(Object::OverlayNetwork, &spec.name))
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
            let txn = TxnRequest::new()
                .when(Compare::create_revision(&net_key, CmpOp::Equal, 0))
                .when(Compare::create_revision(self.vni_key(vni), CmpOp::Equal, 0))
                .then(TxnOp::put(&net_key, def_json(&candidate).to_string(), None))
                .then(TxnOp::put(self.vni_key(vni), spec.name.as_bytes(), None));
            if self.etcd.txn(&txn)?.succeeded {
                return Ok(candidate);
            }
            if self.etcd.get(&net_key)?.is_some() {
                return Err(Error::exists(Object::OverlayNetwork, &spec.name));
            }
            if spec.vni.is_some() {
                return Err(vni_taken(vni));
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
        let mut txn = TxnRequest::new().then(TxnOp::delete(self.net_key(name)));
        if let Some(d) = def {
            txn = txn.then(TxnOp::delete(self.vni_key(d.vxlan_id())));
        }
        self.etcd.txn(&txn)?;
        Ok(())
    }
}

/// VNI `vni` is claimed by another overlay network.
fn vni_taken(vni: u32) -> Error {
    Error::Exists {
        object: Object::Vni,
        name: vni.to_string(),
        detail: Some("(taken by another network)".into()),
    }
}
