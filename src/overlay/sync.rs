//! Reconciling one host's kernel state with the [`PeerView`](super::PeerView) of an
//! overlay network: VXLAN allowances for the remote hosts, FDB entries for their tunnel
//! endpoints, permanent neighbour entries for their containers.
//!
//! | for | kernel state | equivalent command |
//! |---|---|---|
//! | each remote host | guard allowance | `nft add element ip netplumb_vxlan … { VNI . UNDERLAY }` |
//! | each remote host | BUM flooding | `bridge fdb append 00:00:00:00:00:00 dev VX dst UNDERLAY` |
//! | each remote endpoint | unicast | `bridge fdb append MAC dev VX dst UNDERLAY` |
//! | each remote endpoint | proxy ARP/ND | `ip neigh replace IP lladdr MAC dev VX nud permanent` |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use super::config::{veth_name, OverlayNetwork};
use super::discovery::{PeerEndpoint, PeerHost, PeerView};
use super::driver::{hold, open_guard, Overlay};
use crate::error::{Result, ResultExt};
use crate::firewall::VxlanGuard;
use crate::ipam::{IpamError, Store};
use crate::link::{Link, MacAddr};
use crate::neigh::{Fdb, Neigh};
use crate::netns::Netns;
use crate::rtnl::Rtnl;

/// `NUD_PERMANENT` (neighbour state of entries written by hand).
const NUD_PERMANENT: u16 = 0x80;

/// One piece of kernel state an overlay sync added or removed.
///
/// ```
/// use netplumb::overlay::OverlayEntry;
/// let e = OverlayEntry::Fdb { mac: [0; 6].into(), dst: "192.168.99.2".parse().unwrap() };
/// assert_eq!(e.to_string(), "fdb 00:00:00:00:00:00 dst 192.168.99.2");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OverlayEntry {
    /// VXLAN packets of the network's VNI from this remote host are let in.
    Peer {
        /// The remote host's underlay address.
        underlay: IpAddr,
    },
    /// Frames for `mac` go through the tunnel to `dst` (the all-zero MAC: broadcast and
    /// unknown unicast, one entry per remote host).
    Fdb {
        /// The destination MAC.
        mac: MacAddr,
        /// The remote tunnel endpoint.
        dst: IpAddr,
    },
    /// `ip` is at `mac` (answered locally by the VXLAN device's ARP/ND proxy).
    Neigh {
        /// The remote container's overlay address.
        ip: IpAddr,
        /// Its MAC.
        mac: MacAddr,
    },
}

impl fmt::Display for OverlayEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverlayEntry::Peer { underlay } => write!(f, "vxlan peer {underlay}"),
            OverlayEntry::Fdb { mac, dst } => write!(f, "fdb {mac} dst {dst}"),
            OverlayEntry::Neigh { ip, mac } => write!(f, "neigh {ip} lladdr {mac}"),
        }
    }
}

/// What a [`sync`](super::Overlay::sync) changed.
///
/// ```
/// use netplumb::overlay::SyncReport;
/// assert!(SyncReport::default().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncReport {
    /// Entries written, in the order they were written.
    pub added: Vec<OverlayEntry>,
    /// Entries removed, in the order they were removed.
    pub removed: Vec<OverlayEntry>,
}

impl SyncReport {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

impl<S: Store + 'static> Overlay<S> {
    /// Reconciles this host's kernel state for `net` with discovery's view: for every
    /// remote host, a VXLAN allowance (the guard's exact peer list) and an all-zero-MAC FDB
    /// entry (broadcast and unknown unicast); for every remote endpoint, an FDB entry to
    /// its host and a permanent neighbour entry that the VXLAN device's proxy answers ARP
    /// from; entries no longer in the view are removed. Does nothing for a network with no
    /// container on this host.
    ///
    /// It first [announces](Overlay::announce) this host and its containers again, so a
    /// runtime that restarted (and whose old registrations expire with its old process's
    /// lease) stays reachable: call `sync` (or start a [`watch`](Overlay::watch)) for each
    /// overlay network after opening the driver.
    ///
    /// ```no_run
    /// # fn f(ov: &mut netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>,
    /// #      ov1: &netplumb::overlay::OverlayNetwork) -> netplumb::Result<()> {
    /// let report = ov.sync(ov1)?;
    /// for e in &report.added {
    ///     println!("+ {e}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn sync(&mut self, net: &OverlayNetwork) -> Result<SyncReport> {
        let lock = self.lock.clone();
        let _held = hold(&lock);
        self.announce_locked(net)?;
        self.sync_locked(net)
    }

    /// Tells discovery again that this host is a member of `net` and which of its
    /// containers are there (each local container whose overlay veth exists and holds a
    /// lease), with the MAC discovery knew for it or, failing that, the one derived from
    /// its address. Returns how many endpoints were announced; 0 and nothing written for a
    /// network with no container on this host. Cheap when nothing changed: a discovery
    /// implementation skips what it holds already.
    ///
    /// ```no_run
    /// # fn f(ov: &mut netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>,
    /// #      ov1: &netplumb::overlay::OverlayNetwork) -> netplumb::Result<()> {
    /// println!("{} containers announced", ov.announce(ov1)?);
    /// # Ok(()) }
    /// ```
    pub fn announce(&mut self, net: &OverlayNetwork) -> Result<usize> {
        let lock = self.lock.clone();
        let _held = hold(&lock);
        self.announce_locked(net)
    }

    fn announce_locked(&mut self, net: &OverlayNetwork) -> Result<usize> {
        let vxn = net.vxlan_name();
        if self.host.rtnl().link(vxn.as_str()).optional()?.is_none() {
            return Ok(0);
        }
        let leases = match self.ipam.leases(&net.name) {
            Ok(l) => l,
            Err(IpamError::NetworkNotFound { .. }) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let known = self.discovery.view(&net.name)?.endpoints;
        let mut local = Vec::new();
        for l in leases {
            let veth = veth_name(&l.owner.container, &net.name);
            if self.host.rtnl().link(veth.as_str()).optional()?.is_some() {
                local.push(l);
            }
        }
        if local.is_empty() {
            return Ok(0);
        }
        self.discovery.join(&net.name, &self.me)?;
        for l in &local {
            let mac = known
                .iter()
                .find(|e| e.host == self.me.id && e.ip == l.address)
                .map(|e| e.mac)
                .unwrap_or_else(|| MacAddr::from_ip(l.address));
            self.discovery.publish(
                &net.name,
                &PeerEndpoint {
                    host: self.me.id.clone(),
                    ip: l.address,
                    mac,
                },
            )?;
        }
        Ok(local.len())
    }

    pub(super) fn sync_locked(&mut self, net: &OverlayNetwork) -> Result<SyncReport> {
        let view = self.discovery.view(&net.name)?;
        self.sync_locked_with(net, &view)
    }

    /// [`sync_locked`](Self::sync_locked) to `view`, read by the caller.
    pub(super) fn sync_locked_with(
        &mut self,
        net: &OverlayNetwork,
        view: &PeerView,
    ) -> Result<SyncReport> {
        let netns = self.host.netns().clone();
        let mut r = Reconciler {
            rtnl: self.host.rtnl(),
            guard: &mut self.guard,
            netns: &netns,
            me: &self.me,
        };
        r.apply(net, view)
    }
}

/// What a reconciliation works with: handles in the host namespace.
pub(crate) struct Reconciler<'a> {
    pub(crate) rtnl: &'a mut Rtnl,
    /// Opened on first need: a host without the network gets no guard table.
    pub(crate) guard: &'a mut Option<VxlanGuard>,
    pub(crate) netns: &'a Netns,
    pub(crate) me: &'a PeerHost,
}

/// What the view asks for.
#[derive(Default)]
struct Desired {
    peers: BTreeSet<IpAddr>,
    fdb: BTreeSet<(MacAddr, IpAddr)>,
    neigh: BTreeSet<(IpAddr, MacAddr)>,
}

impl Reconciler<'_> {
    /// Brings the kernel state of `net` in line with `view`, discovery's view of it. Does
    /// nothing when this host has no VXLAN device for the network (no local container).
    pub(crate) fn apply(&mut self, net: &OverlayNetwork, view: &PeerView) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let Some(vx) = self.rtnl.link(net.vxlan_name().as_str()).optional()? else {
            return Ok(report);
        };
        let want = self.desired(net, view);
        // Allowances first: replies from a new peer must get in once frames go to it.
        self.allowances(net.vxlan_id(), &want, &mut report)?;
        self.tables(net, &vx, &want, &mut report)?;
        if !report.is_empty() {
            log::debug!(
                "overlay {}: +{} -{} entries",
                net.name,
                report.added.len(),
                report.removed.len()
            );
        }
        Ok(report)
    }

    /// The guard's peers of `vni`: set to the wanted list when they differ.
    fn allowances(&mut self, vni: u32, want: &Desired, report: &mut SyncReport) -> Result<()> {
        let guard = match self.guard.take() {
            Some(g) => g,
            None => open_guard(self.netns, self.me.underlay)?,
        };
        let guard = self.guard.insert(guard);
        let have: BTreeSet<IpAddr> = guard
            .peers()?
            .into_iter()
            .filter(|(v, _)| *v == vni)
            .map(|(_, p)| p)
            .collect();
        if have == want.peers {
            return Ok(());
        }
        let list: Vec<IpAddr> = want.peers.iter().copied().collect();
        guard.set_peers(vni, &list)?;
        for &underlay in want.peers.difference(&have) {
            report.added.push(OverlayEntry::Peer { underlay });
        }
        for &underlay in have.difference(&want.peers) {
            report.removed.push(OverlayEntry::Peer { underlay });
        }
        Ok(())
    }

    /// The FDB and neighbour entries of the VXLAN device `vx`: stale ones out, then missing
    /// ones in.
    fn tables(
        &mut self,
        net: &OverlayNetwork,
        vx: &Link,
        want: &Desired,
        report: &mut SyncReport,
    ) -> Result<()> {
        let have_fdb: BTreeSet<(MacAddr, IpAddr)> = self
            .rtnl
            .fdb(vx)?
            .into_iter()
            .filter_map(|n| Some((n.mac?, n.dst?)))
            .collect();
        let have_neigh: BTreeSet<(IpAddr, MacAddr)> = self
            .rtnl
            .neighs(vx)?
            .into_iter()
            .filter(|n| n.state & NUD_PERMANENT != 0)
            .filter_map(|n| Some((n.dst?, n.mac?)))
            .filter(|(ip, _)| net.subnet.contains(ip))
            .collect();
        for &(mac, dst) in have_fdb.difference(&want.fdb) {
            ignore(self.rtnl.execute(&Fdb::new(vx, mac).dst(dst).delete()))?;
            report.removed.push(OverlayEntry::Fdb { mac, dst });
        }
        for &(ip, mac) in have_neigh.difference(&want.neigh) {
            ignore(self.rtnl.execute(&Neigh::new(vx, ip, mac).delete()))?;
            report.removed.push(OverlayEntry::Neigh { ip, mac });
        }
        for &(mac, dst) in want.fdb.difference(&have_fdb) {
            ignore(self.rtnl.execute(&Fdb::new(vx, mac).dst(dst)))?;
            report.added.push(OverlayEntry::Fdb { mac, dst });
        }
        for &(ip, mac) in want.neigh.difference(&have_neigh) {
            self.rtnl.execute(&Neigh::new(vx, ip, mac))?;
            report.added.push(OverlayEntry::Neigh { ip, mac });
        }
        Ok(())
    }

    fn desired(&self, net: &OverlayNetwork, view: &PeerView) -> Desired {
        let remotes: BTreeMap<&str, IpAddr> = view
            .hosts
            .iter()
            .filter(|h| h.id != self.me.id)
            .map(|h| (h.id.as_str(), h.underlay))
            .collect();
        let mut d = Desired::default();
        for &u in remotes.values() {
            d.peers.insert(u);
            d.fdb.insert((MacAddr([0; 6]), u));
        }
        for e in &view.endpoints {
            let Some(&u) = remotes.get(e.host.as_str()) else {
                continue;
            };
            if net.subnet.contains(&e.ip) {
                d.fdb.insert((e.mac, u));
                d.neigh.insert((e.ip, e.mac));
            }
        }
        d
    }
}

/// An entry already there (adding) or already gone (deleting) is what was wanted.
fn ignore(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_not_found() || e.is_exists() => Ok(()),
        r => r,
    }
}
