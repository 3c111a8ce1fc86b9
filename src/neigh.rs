//! Neighbour entries (`ip neigh`) and bridge/VXLAN forwarding-database entries
//! (`bridge fdb`), rtnetlink(7) `RTM_*NEIGH`: what an overlay writes so that a remote
//! container's MAC and address are reached through the right tunnel endpoint.

use std::fmt;
use std::net::IpAddr;

use netlink_packet_core::Parseable;
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};

use crate::error::{Error, Op, Result};
use crate::link::{Dev, MacAddr};
use crate::request::Request;
use crate::rtnl::Rtnl;
use crate::wire::neigh::{self as wn, NeighMsg};
use crate::wire::{self, MsgBuf, NlmF, RawMsg};

/// A permanent neighbour entry (`ip neigh replace ADDR lladdr MAC dev DEV nud permanent`).
///
/// ```
/// use netplumb::neigh::Neigh;
/// let n = Neigh::new(5, "10.0.0.3".parse().unwrap(), [2, 0x42, 10, 0, 0, 3].into());
/// assert_eq!(n.to_string(), "ip neigh replace 10.0.0.3 lladdr 02:42:0a:00:00:03 dev if5 nud permanent");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Neigh {
    dev: Dev,
    addr: IpAddr,
    mac: MacAddr,
    delete: bool,
}

impl Neigh {
    /// `addr` is at `mac` on link `dev`.
    pub fn new(dev: impl Into<Dev>, addr: IpAddr, mac: MacAddr) -> Self {
        Neigh {
            dev: dev.into(),
            addr,
            mac,
            delete: false,
        }
    }

    /// Deletes the entry instead (`ip neigh del`).
    pub fn delete(mut self) -> Self {
        self.delete = true;
        self
    }
}

impl fmt::Display for Neigh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.delete {
            write!(f, "ip neigh del {} dev {}", self.addr, self.dev)
        } else {
            write!(
                f,
                "ip neigh replace {} lladdr {} dev {} nud permanent",
                self.addr, self.mac, self.dev
            )
        }
    }
}

impl Request for Neigh {
    fn op(&self) -> Op {
        if self.delete {
            Op::DelNeigh
        } else {
            Op::AddNeigh
        }
    }

    fn validate(&self) -> Result<()> {
        self.dev.check()?;
        if self.mac.is_multicast() {
            return Err(Error::invalid("lladdr", self.mac, "must be unicast"));
        }
        Ok(())
    }

    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        let (ty, flags) = if self.delete {
            (wn::RTM_DELNEIGH, NlmF::CHANGE)
        } else {
            (wn::RTM_NEWNEIGH, NlmF::NEW_REPLACE)
        };
        let msg = NeighMsg {
            family: wire::addr::family_of(&self.addr),
            index: self.dev.index,
            state: wn::NUD_PERMANENT,
            flags: 0,
            dst: Some(self.addr),
            lladdr: (!self.delete).then_some(self.mac.0),
            vni: None,
        };
        wn::neigh_msg(buf, ty, flags, seq, &msg);
    }
}

/// A forwarding-database entry of a VXLAN device: frames for `mac` go to the tunnel
/// endpoint `dst` (`bridge fdb append MAC dev DEV dst ADDR self permanent`). The all-zero
/// MAC is the default destination for broadcast and unknown unicast.
///
/// ```
/// use netplumb::neigh::Fdb;
/// let e = Fdb::new(7, [0; 6].into()).dst("192.0.2.2".parse().unwrap());
/// assert_eq!(e.to_string(), "bridge fdb append 00:00:00:00:00:00 dev if7 dst 192.0.2.2 self permanent");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Fdb {
    dev: Dev,
    mac: MacAddr,
    dst: Option<IpAddr>,
    vni: Option<u32>,
    delete: bool,
}

impl Fdb {
    /// An entry for `mac` on device `dev`.
    pub fn new(dev: impl Into<Dev>, mac: MacAddr) -> Self {
        Fdb {
            dev: dev.into(),
            mac,
            dst: None,
            vni: None,
            delete: false,
        }
    }

    /// The remote tunnel endpoint (`dst ADDR`).
    pub fn dst(mut self, addr: IpAddr) -> Self {
        self.dst = Some(addr);
        self
    }

    /// The VNI (`vni N`), for devices that carry several.
    pub fn vni(mut self, vni: u32) -> Self {
        self.vni = Some(vni);
        self
    }

    /// Deletes the entry instead (`bridge fdb del`).
    pub fn delete(mut self) -> Self {
        self.delete = true;
        self
    }
}

impl fmt::Display for Fdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.delete { "del" } else { "append" };
        write!(f, "bridge fdb {verb} {} dev {}", self.mac, self.dev)?;
        if let Some(d) = self.dst {
            write!(f, " dst {d}")?;
        }
        if let Some(v) = self.vni {
            write!(f, " vni {v}")?;
        }
        f.write_str(" self")?;
        if !self.delete {
            f.write_str(" permanent")?;
        }
        Ok(())
    }
}

impl Request for Fdb {
    fn op(&self) -> Op {
        if self.delete {
            Op::DelNeigh
        } else {
            Op::AddNeigh
        }
    }

    fn validate(&self) -> Result<()> {
        self.dev.check()?;
        if matches!(self.vni, Some(v) if v >= 1 << 24) {
            return Err(Error::invalid(
                "vni",
                self.vni.unwrap_or(0),
                "must be below 2^24",
            ));
        }
        Ok(())
    }

    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        // `append`: several entries for one MAC (the all-zero one lists every peer).
        let (ty, flags) = if self.delete {
            (wn::RTM_DELNEIGH, NlmF::CHANGE)
        } else {
            (
                wn::RTM_NEWNEIGH,
                NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::APPEND,
            )
        };
        let msg = NeighMsg {
            family: wn::AF_BRIDGE,
            index: self.dev.index,
            state: wn::NUD_PERMANENT | wn::NUD_NOARP,
            flags: wn::NTF_SELF,
            dst: self.dst,
            lladdr: Some(self.mac.0),
            vni: self.vni,
        };
        wn::neigh_msg(buf, ty, flags, seq, &msg);
    }
}

/// A neighbour or FDB entry as a dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NeighInfo {
    /// The link's index.
    pub index: u32,
    /// The address (`NDA_DST`: for FDB entries, the tunnel endpoint).
    pub dst: Option<IpAddr>,
    /// The link-layer address.
    pub mac: Option<MacAddr>,
    /// `ndm_state`.
    pub state: u16,
    /// `ndm_flags`.
    pub flags: u8,
}

/// Decodes an `RTM_NEWNEIGH` message of a neighbour dump; other messages give `None`.
pub(crate) fn parse_neigh(m: &RawMsg<'_>) -> Result<Option<NeighInfo>> {
    if m.ty != wn::RTM_NEWNEIGH {
        return Ok(None);
    }
    let msg = NeighbourMessage::parse(m.payload)
        .map_err(|_| Error::Protocol(wire::Error::BadLength("neighbour message")))?;
    let mut n = NeighInfo {
        index: msg.header.ifindex,
        dst: None,
        mac: None,
        state: u16::from(msg.header.state),
        flags: msg.header.flags.bits(),
    };
    for a in msg.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => n.dst = Some(v.into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => n.dst = Some(v.into()),
            // FDB entries are AF_BRIDGE: their tunnel endpoint comes as raw bytes.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                n.dst = match b.len() {
                    4 => <[u8; 4]>::try_from(&b[..]).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(&b[..]).ok().map(IpAddr::from),
                    _ => None,
                }
            }
            NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => {
                n.mac = Some(MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]]))
            }
            _ => {}
        }
    }
    Ok(Some(n))
}

impl Rtnl {
    /// The IPv4 and IPv6 neighbour entries of link `dev` (`ip neigh show dev DEV`).
    pub fn neighs(&mut self, dev: impl Into<Dev>) -> Result<Vec<NeighInfo>> {
        let index = dev.into().index;
        let mut out = Vec::new();
        for fam in [wire::addr::AF_INET, wire::addr::AF_INET6] {
            let enc = move |b: &mut MsgBuf, s| wn::dump_neighs(b, s, fam, index);
            out.extend(self.dump("neighbours", Op::GetNeigh, &enc, &mut parse_neigh)?);
        }
        Ok(out)
    }

    /// The forwarding-database entries of device `dev` (`bridge fdb show dev DEV`).
    pub fn fdb(&mut self, dev: impl Into<Dev>) -> Result<Vec<NeighInfo>> {
        let index = dev.into().index;
        let enc = move |b: &mut MsgBuf, s| wn::dump_neighs(b, s, wn::AF_BRIDGE, index);
        let mut v = self.dump("fdb", Op::GetNeigh, &enc, &mut parse_neigh)?;
        v.retain(|n| n.index == index);
        Ok(v)
    }
}
