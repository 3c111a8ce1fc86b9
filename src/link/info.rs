//! [`Link`]: what a dump says about a link, decoded with netlink-packet-route, and the
//! queries that produce it.

use std::net::IpAddr;

use netlink_packet_core::Parseable;
use netlink_packet_route::link::{
    InfoBridge, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVxlan, LinkAttribute,
    LinkInfo, LinkMessage, State,
};

use super::{LinkId, MacAddr};
use crate::error::{Errno, Error, Object, Op, Result};
use crate::netns::Netns;
use crate::rtnl::Rtnl;
use crate::wire::{self, RawMsg};

/// `IF_OPER_*`: the RFC 2863 operational state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum OperState {
    /// `UNKNOWN` (as `lo` reports).
    #[default]
    Unknown,
    /// `NOTPRESENT`.
    NotPresent,
    /// `DOWN`.
    Down,
    /// `LOWERLAYERDOWN` (a veth whose peer is down).
    LowerLayerDown,
    /// `TESTING`.
    Testing,
    /// `DORMANT`.
    Dormant,
    /// `UP`.
    Up,
}

/// Bridge settings as the kernel reports them (`ip -d link show type bridge`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BridgeInfo {
    /// STP enabled.
    pub stp: bool,
    /// Forward delay in centiseconds.
    pub forward_delay: u32,
    /// VLAN filtering enabled.
    pub vlan_filtering: bool,
    /// The bridge id as `brctl show` prints it (`8000.0242ac110002`).
    pub bridge_id: String,
}

/// A bridge port's settings (`bridge -d link show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BridgePortInfo {
    /// Hairpin mode: frames may go back out of the port they came in.
    pub hairpin: bool,
    /// Isolated: no traffic to other isolated ports.
    pub isolated: bool,
    /// MAC learning.
    pub learning: bool,
    /// Unknown-unicast flooding.
    pub flood: bool,
}

/// VXLAN settings as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VxlanInfo {
    /// The VNI.
    pub vni: u32,
    /// The UDP destination port.
    pub port: u16,
    /// Learning enabled.
    pub learning: bool,
    /// The local address.
    pub local: Option<IpAddr>,
    /// The remote or group address.
    pub remote: Option<IpAddr>,
    /// The underlay device index.
    pub dev: Option<u32>,
}

/// A link as a dump reports it (observed state; the specs are what you ask for).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind (`veth`, `bridge`, `vxlan`, …); `None` for `lo` and physical devices.
    pub kind: Option<String>,
    /// `IFF_*` flags.
    pub flags: u32,
    /// MTU.
    pub mtu: u32,
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// Index of the controller (bridge) the link is a port of.
    pub controller: Option<u32>,
    /// Interface group.
    pub group: u32,
    /// Index of the peer or parent link (`IFLA_LINK`: for a veth, its peer's index, which
    /// lives in the namespace [`Link::link_netnsid`] names).
    pub link: Option<u32>,
    /// The id (in this namespace) of the namespace the peer or parent lives in; `None` when
    /// it is this namespace.
    pub link_netnsid: Option<i32>,
    /// Operational state.
    pub operstate: OperState,
    /// Bridge settings, for bridges.
    pub bridge: Option<BridgeInfo>,
    /// Port settings, for bridge ports.
    pub port: Option<BridgePortInfo>,
    /// VXLAN settings, for VXLAN devices.
    pub vxlan: Option<VxlanInfo>,
}

impl Link {
    /// `IFF_UP`: administratively up.
    pub fn is_up(&self) -> bool {
        self.flags & wire::link::IFF_UP != 0
    }

    /// `IFF_LOWER_UP`: carrier.
    pub fn has_carrier(&self) -> bool {
        self.flags & wire::link::IFF_LOWER_UP != 0
    }

    /// The link's kind is `kind`.
    pub fn is_kind(&self, kind: &str) -> bool {
        self.kind.as_deref() == Some(kind)
    }
}

fn oper(s: &State) -> OperState {
    match s {
        State::Up => OperState::Up,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::NotPresent => OperState::NotPresent,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        _ => OperState::Unknown,
    }
}

fn bridge_info(v: &[InfoBridge]) -> BridgeInfo {
    let mut b = BridgeInfo::default();
    for a in v {
        match a {
            InfoBridge::StpState(s) => b.stp = u32::from(*s) != 0,
            InfoBridge::ForwardDelay(d) => b.forward_delay = *d,
            InfoBridge::VlanFiltering(f) => b.vlan_filtering = *f,
            InfoBridge::BridgeId(id) => {
                let m = id.address;
                b.bridge_id = format!(
                    "{:04x}.{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                    id.priority, m[0], m[1], m[2], m[3], m[4], m[5]
                );
            }
            _ => {}
        }
    }
    b
}

fn port_info(v: &[InfoBridgePort]) -> BridgePortInfo {
    let mut p = BridgePortInfo::default();
    for a in v {
        match a {
            InfoBridgePort::HairpinMode(x) => p.hairpin = *x,
            InfoBridgePort::Isolated(x) => p.isolated = *x,
            InfoBridgePort::Learning(x) => p.learning = *x,
            InfoBridgePort::UnicastFlood(x) => p.flood = *x,
            _ => {}
        }
    }
    p
}

fn vxlan_info(v: &[InfoVxlan]) -> VxlanInfo {
    let mut x = VxlanInfo::default();
    for a in v {
        match a {
            InfoVxlan::Id(i) => x.vni = *i,
            InfoVxlan::Port(p) => x.port = *p,
            InfoVxlan::Learning(l) => x.learning = *l,
            InfoVxlan::Local(a) => x.local = Some((*a).into()),
            InfoVxlan::Local6(a) => x.local = Some((*a).into()),
            InfoVxlan::Group(a) => x.remote = Some((*a).into()),
            InfoVxlan::Group6(a) => x.remote = Some((*a).into()),
            InfoVxlan::Link(l) => x.dev = Some(*l),
            _ => {}
        }
    }
    x
}

fn apply_info(l: &mut Link, infos: &[LinkInfo]) {
    for i in infos {
        match i {
            LinkInfo::Kind(k) => {
                l.kind = Some(match k {
                    InfoKind::Other(s) => s.clone(),
                    k => k.to_string(),
                })
            }
            LinkInfo::Data(InfoData::Bridge(v)) => l.bridge = Some(bridge_info(v)),
            LinkInfo::Data(InfoData::Vxlan(v)) => l.vxlan = Some(vxlan_info(v)),
            LinkInfo::PortData(InfoPortData::BridgePort(v)) => l.port = Some(port_info(v)),
            _ => {}
        }
    }
}

/// Decodes an `RTM_NEWLINK` message; other messages give `None`.
pub(crate) fn parse_link(m: &RawMsg<'_>) -> Result<Option<Link>> {
    if m.ty != wire::link::RTM_NEWLINK {
        return Ok(None);
    }
    let Ok(msg) = LinkMessage::parse(m.payload) else {
        // A link the full parser refuses (a name that is not UTF-8, set by someone else)
        // must not fail the whole dump: keep what every caller needs.
        return lenient_link(m.payload).map(Some);
    };
    let mut l = Link {
        index: msg.header.index,
        flags: msg.header.flags.bits(),
        ..Link::default()
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Mtu(v) => l.mtu = *v,
            LinkAttribute::Address(b) if b.len() == 6 => {
                l.mac = Some(MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]]))
            }
            LinkAttribute::Controller(c) => l.controller = Some(*c),
            LinkAttribute::Group(g) => l.group = *g,
            LinkAttribute::Link(i) => l.link = Some(*i),
            LinkAttribute::LinkNetNsId(id) => l.link_netnsid = Some(*id),
            LinkAttribute::OperState(s) => l.operstate = oper(s),
            LinkAttribute::LinkInfo(infos) => apply_info(&mut l, infos),
            _ => {}
        }
    }
    Ok(Some(l))
}

/// The header, the name (decoded lossily), MTU, MAC, controller and peer of a link
/// message that [`LinkMessage::parse`] refused.
fn lenient_link(payload: &[u8]) -> Result<Link> {
    let bad = || Error::Protocol(wire::Error::BadLength("link message"));
    // struct ifinfomsg: family, pad, type (u16), index (i32), flags (u32), change (u32).
    let hdr = payload.get(..16).ok_or_else(bad)?;
    let word = |at: usize| u32::from_ne_bytes([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]]);
    let mut l = Link {
        index: word(4),
        flags: word(8),
        ..Link::default()
    };
    for a in wire::parse::Attrs::new(&payload[16..]) {
        let (ty, p) = a.map_err(|_| bad())?;
        match ty {
            wire::link::IFLA_IFNAME => {
                let n = p.split(|&b| b == 0).next().unwrap_or(p);
                l.name = String::from_utf8_lossy(n).into_owned();
            }
            wire::link::IFLA_MTU => l.mtu = wire::parse::u32_of(p).map_err(|_| bad())?,
            wire::link::IFLA_ADDRESS if p.len() == 6 => {
                l.mac = Some(MacAddr([p[0], p[1], p[2], p[3], p[4], p[5]]))
            }
            wire::link::IFLA_MASTER => l.controller = wire::parse::u32_of(p).ok(),
            wire::link::IFLA_LINK => l.link = wire::parse::u32_of(p).ok(),
            _ => {}
        }
    }
    Ok(l)
}

impl Rtnl {
    /// Every link of the namespace (`ip link show`), by index.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let enc =
            |b: &mut wire::MsgBuf, s| wire::link::dump_links(b, s, wire::link::AF_UNSPEC, None);
        let mut v = self.dump("links", Op::GetLink, &enc, &mut parse_link)?;
        v.sort_by_key(|l| l.index);
        Ok(v)
    }

    /// One link, by name or index (`ip link show dev NAME`). A missing link is
    /// [`Error::NotFound`].
    pub fn link(&mut self, id: impl Into<LinkId>) -> Result<Link> {
        let id = id.into();
        id.check()?;
        let mut found = None;
        let target = || format!("ip link show dev {id}");
        let r = self.query(
            Op::GetLink,
            &target,
            &|b, s| wire::link::get_link(b, s, id.index(), id.name()),
            &mut |m| {
                found = parse_link(m)?.or(found.take());
                Ok(())
            },
        );
        match r {
            Err(e) if e.errno() == Some(Errno::ENODEV) => Err(Error::not_found(Object::Link, id)),
            Err(e) => Err(e),
            Ok(()) => found.ok_or_else(|| Error::not_found(Object::Link, id)),
        }
    }

    /// The ports of a bridge (`bridge link show master BR`, `brctl show`).
    pub fn bridge_ports(&mut self, bridge: impl Into<LinkId>) -> Result<Vec<Link>> {
        let br = self.link(bridge)?;
        Ok(self
            .links()?
            .into_iter()
            .filter(|l| l.controller == Some(br.index))
            .collect())
    }

    /// Finds the other end of veth `link` (the `ifN@ifM` pairing of `ip link`): in this
    /// namespace, or in whichever of `candidates` the kernel's `link-netnsid` points to.
    /// Returns the peer's namespace and link.
    pub fn veth_peer(&mut self, link: &Link, candidates: &[Netns]) -> Result<(Netns, Link)> {
        if !link.is_kind("veth") {
            return Err(Error::invalid("link", &link.name, "is not a veth"));
        }
        let peer = link
            .link
            .ok_or_else(|| Error::not_found(Object::VethPeer, &link.name))?;
        let Some(nsid) = link.link_netnsid else {
            return Ok((self.netns().clone(), self.link(peer)?));
        };
        for ns in candidates {
            if self.nsid_of(ns)? == Some(nsid) {
                let mut there = Rtnl::open_in(ns)?;
                return Ok((ns.clone(), there.link(peer)?));
            }
        }
        Err(Error::NotFound {
            object: Object::VethPeer,
            name: link.name.clone(),
            detail: Some(format!(
                "(if{peer} in netnsid {nsid}) among the given namespaces"
            )),
        })
    }
}
