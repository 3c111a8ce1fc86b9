//! [`Overlay`]: the VXLAN overlay driver of one host — network definitions in the shared
//! IPAM store, the per-network bridge and VXLAN device, reconciliation with discovery.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::config::OverlayNetwork;
use super::discovery::{PeerDiscovery, PeerHost};
use crate::error::{Error, Object, Result};
use crate::firewall::VxlanGuard;
use crate::ipam::{Ipam, IpamError, Network, NetworkSpec, Store};
use crate::link::Link;
use crate::netns::Netns;
use crate::network::Host;
use crate::rtnl::Rtnl;

/// Bytes VXLAN adds to every frame over an IPv4 underlay (outer IPv4 20, UDP 8, VXLAN 8,
/// inner Ethernet 14).
pub const VXLAN_OVERHEAD_V4: u32 = 50;
/// Bytes VXLAN adds to every frame over an IPv6 underlay.
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// The overlay driver of one host: Docker's `overlay` network driver without swarm.
///
/// One per host namespace and process. It owns the [`Host`] (whose gateway bridge network
/// gives containers their way out), knows this host as a [`PeerHost`], shares an IPAM
/// store with every other host (so overlay addresses are unique cluster-wide) and meets
/// the other hosts through a [`PeerDiscovery`].
///
/// What it makes, per overlay network and host (all in the host namespace):
///
/// | object | equivalent command | when |
/// |---|---|---|
/// | bridge `ov-VNI` | `ip link add ov-000100 mtu 1450 type bridge stp_state 0 up` | first local container |
/// | VXLAN guard | `nft add table ip netplumb_vxlan` … (drop UDP 4789 of the VNI from non-peers) | first local container |
/// | VXLAN device `vx-VNI` | `ip link add vx-000100 mtu 1450 master ov-000100 up type vxlan id 256 local UNDERLAY dev ETH dstport 4789 nolearning proxy` | first local container |
/// | veth `veth…`/`eth0` | `ip link add vethXXXXXXX master ov-000100 up type veth peer name eth0 netns CTR address 02:42:…` | each container |
/// | `eth1` on `docker_gwbridge` | [`Host::connect`]: address, default route, masquerade | each container |
/// | FDB, neighbours, allowances | see [`Overlay::sync`] | each sync |
///
/// ```no_run
/// use std::sync::Arc;
/// use netplumb::ipam::{Ipam, MemoryStore};
/// use netplumb::network::{Container, Host};
/// use netplumb::overlay::{Overlay, OverlayNetwork, PeerHost, StaticPeers};
///
/// let ns = netplumb::Netns::current()?;
/// let host = Host::open_in(&ns, "/var/lib/netplumb")?;
/// let me = PeerHost { id: "node1".into(), underlay: "192.168.99.1".parse().unwrap() };
/// let store = Arc::new(MemoryStore::new()); // the cluster store, shared by every host
/// let mut ov = Overlay::new(host, me, Ipam::new(store), Arc::new(StaticPeers::new()))?;
/// let ov1 = OverlayNetwork::new("ov1", "10.0.9.0/24".parse().unwrap()).vni(256);
/// ov.create_network(&ov1)?;
/// let watch = ov.watch(&ov1)?; // follows the other hosts from now on
/// let ctr = netplumb::NetnsDir::default().create("web")?;
/// let att = ov.connect(&ov1, &Container::new("3f2a1c0d9e8b", &ctr))?;
/// println!("{} on {} (gateway bridge {})", att.addr, att.vxlan, att.gateway.addrs[0]);
/// ov.disconnect(&ov1, "3f2a1c0d9e8b")?;
/// watch.stop();
/// # Ok::<(), netplumb::Error>(())
/// ```
pub struct Overlay<S: Store + 'static> {
    pub(super) host: Host,
    pub(super) me: PeerHost,
    pub(super) underlay: Link,
    pub(super) ipam: Arc<Ipam<S>>,
    pub(super) discovery: Arc<dyn PeerDiscovery>,
    pub(super) guard: Option<VxlanGuard>,
    /// Held by every change of overlay state in this host, by this handle and its
    /// watchers alike, so that a sync never sees a half-made network.
    pub(super) lock: Arc<Mutex<()>>,
}

impl<S: Store + 'static> std::fmt::Debug for Overlay<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("host", &self.host.netns())
            .field("me", &self.me)
            .field("underlay", &self.underlay.name)
            .finish_non_exhaustive()
    }
}

impl<S: Store + 'static> Overlay<S> {
    /// The overlay driver of `host`, known to the others as `me`. The underlay link is the
    /// link of `host`'s namespace that carries `me.underlay` ([`Error::NotFound`] if none
    /// does); overlay addresses come from `ipam`, peers from `discovery`. See the
    /// [type docs](Overlay) for an example.
    pub fn new(
        mut host: Host,
        me: PeerHost,
        ipam: Ipam<S>,
        discovery: Arc<dyn PeerDiscovery>,
    ) -> Result<Self> {
        if me.id.is_empty() {
            return Err(Error::invalid("host id", &me.id, "is empty"));
        }
        let underlay = underlay_link(host.rtnl(), me.underlay)?;
        Ok(Overlay {
            host,
            me,
            underlay,
            ipam: Arc::new(ipam),
            discovery,
            guard: None,
            lock: Arc::new(Mutex::new(())),
        })
    }

    /// The host context (its bridge networks, firewall and handle).
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The host context, mutably.
    pub fn host_mut(&mut self) -> &mut Host {
        &mut self.host
    }

    /// Gives the host context back.
    pub fn into_host(self) -> Host {
        self.host
    }

    /// This host as the other hosts know it.
    pub fn peer_host(&self) -> &PeerHost {
        &self.me
    }

    /// The underlay link (the one carrying [`PeerHost::underlay`]), as found at creation.
    pub fn underlay(&self) -> &Link {
        &self.underlay
    }

    /// The shared address manager of the overlay subnets.
    pub fn ipam(&self) -> &Ipam<S> {
        &self.ipam
    }

    /// The MTU of `net`'s containers on this host: the network's own, or the underlay
    /// link's less the VXLAN overhead. Fails when the network's MTU does not fit.
    ///
    /// ```no_run
    /// # fn f(ov: &mut netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>,
    /// #      ov1: &netplumb::overlay::OverlayNetwork) -> netplumb::Result<()> {
    /// assert_eq!(ov.mtu_of(ov1)?, ov.underlay().mtu - 50); // an IPv4 underlay, no MTU given
    /// # Ok(()) }
    /// ```
    pub fn mtu_of(&mut self, net: &OverlayNetwork) -> Result<u32> {
        let link = self.host.rtnl().link(self.underlay.index)?;
        let overhead = if self.me.underlay.is_ipv4() {
            VXLAN_OVERHEAD_V4
        } else {
            VXLAN_OVERHEAD_V6
        };
        let max = link.mtu.saturating_sub(overhead);
        match net.mtu {
            Some(m) if m > max => Err(Error::invalid(
                "mtu",
                m,
                "larger than the underlay MTU less the VXLAN overhead",
            )),
            Some(m) => Ok(m),
            None if max < 68 => Err(Error::invalid(
                "mtu",
                link.mtu,
                "the underlay MTU leaves no room for VXLAN",
            )),
            None => Ok(max),
        }
    }

    /// Creates the network in the shared IPAM store (`docker network create -d overlay`):
    /// its subnet, with the gateway reserved. Creating it again with the same subnet and
    /// gateway (as every host may) returns the existing one; a different definition under
    /// the same name is [`Error::Exists`].
    ///
    /// ```no_run
    /// # fn f(ov: &mut netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>) -> netplumb::Result<()> {
    /// use netplumb::overlay::OverlayNetwork;
    /// let ov1 = OverlayNetwork::new("ov1", "10.0.9.0/24".parse().unwrap()).vni(256);
    /// let n = ov.create_network(&ov1)?;
    /// assert_eq!(n.gateway, Some("10.0.9.1".parse().unwrap()));
    /// assert_eq!(ov.create_network(&ov1)?, n); // the same definition again: fine
    /// # Ok(()) }
    /// ```
    pub fn create_network(&mut self, net: &OverlayNetwork) -> Result<Network> {
        net.validate()?;
        let spec = NetworkSpec::new(net.name.clone())
            .subnet(net.subnet)
            .gateway(net.gateway_ip());
        match self.ipam.create_network(&spec) {
            Ok(n) => Ok(n),
            Err(IpamError::NetworkExists { .. }) => {
                let n = self.ipam.network(&net.name)?;
                if n.subnet == net.subnet && n.gateway == Some(net.gateway_ip()) {
                    Ok(n)
                } else {
                    Err(Error::Exists {
                        object: Object::OverlayNetwork,
                        name: n.name,
                        detail: Some(format!(
                            "with subnet {} and gateway {:?}",
                            n.subnet, n.gateway
                        )),
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the network from the shared IPAM store (`docker network rm`). Refused while
    /// any host has a container on it; a network that is not there is not an error.
    ///
    /// ```no_run
    /// # fn f(ov: &mut netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>) -> netplumb::Result<()> {
    /// ov.remove_network("ov1")?;
    /// ov.remove_network("ov1")?; // gone already: fine
    /// # Ok(()) }
    /// ```
    pub fn remove_network(&mut self, name: &str) -> Result<()> {
        match self.ipam.remove_network(name) {
            Ok(()) | Err(IpamError::NetworkNotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The guard handle, opened on first use.
    pub(super) fn guard(&mut self) -> Result<&mut VxlanGuard> {
        let g = match self.guard.take() {
            Some(g) => g,
            None => open_guard(self.host.netns(), self.me.underlay)?,
        };
        Ok(self.guard.insert(g))
    }
}

/// Takes the overlay lock; a panic elsewhere while it was held does not make it unusable.
pub(super) fn hold(lock: &Mutex<()>) -> MutexGuard<'_, ()> {
    lock.lock().unwrap_or_else(|e| e.into_inner())
}

/// The link of `rtnl`'s namespace that carries `addr`.
fn underlay_link(rtnl: &mut Rtnl, addr: IpAddr) -> Result<Link> {
    let a = rtnl
        .addrs(None)?
        .into_iter()
        .find(|a| a.addr.addr() == addr)
        .ok_or_else(|| Error::NotFound {
            object: Object::UnderlayAddress,
            name: addr.to_string(),
            detail: Some("on any link".into()),
        })?;
    rtnl.link(a.index)
}

/// A guard handle for namespace `ns`, guarding IPv6 too when the underlay is IPv6.
pub(super) fn open_guard(ns: &Netns, underlay: IpAddr) -> Result<VxlanGuard> {
    Ok(VxlanGuard::open(ns)?.ipv6(underlay.is_ipv6()))
}

/// Stops guarding `vni`; deletes the guard's tables when nothing else is guarded or
/// allowed, so a host without overlay networks keeps no trace of them.
pub(super) fn unguard(g: &mut VxlanGuard, vni: u32) -> Result<()> {
    g.unguard(vni)?;
    if g.vnis()?.is_empty() && g.peers()?.is_empty() {
        g.remove()?;
    }
    Ok(())
}
