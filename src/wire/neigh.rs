//! `RTM_{NEW,DEL,GET}NEIGH` requests (`ip neigh`, `bridge fdb`): `ndmsg` and `NDA_*`.

use std::net::IpAddr;

use super::{MsgBuf, NlmF};

/// `RTM_NEWNEIGH`.
pub const RTM_NEWNEIGH: u16 = 28;
/// `RTM_DELNEIGH`.
pub const RTM_DELNEIGH: u16 = 29;
/// `RTM_GETNEIGH`.
pub const RTM_GETNEIGH: u16 = 30;

/// `NDA_DST`: the neighbour's address (for FDB entries of a VXLAN device: the remote
/// tunnel endpoint).
pub const NDA_DST: u16 = 1;
/// `NDA_LLADDR`: the link-layer address.
pub const NDA_LLADDR: u16 = 2;
/// `NDA_VNI`.
pub const NDA_VNI: u16 = 7;
/// `NDA_MASTER`.
pub const NDA_MASTER: u16 = 9;

/// `NUD_PERMANENT`.
pub const NUD_PERMANENT: u16 = 0x80;
/// `NUD_NOARP`.
pub const NUD_NOARP: u16 = 0x40;
/// `NTF_SELF`: the entry belongs to the device itself (a VXLAN FDB entry).
pub const NTF_SELF: u8 = 0x02;
/// `NTF_MASTER`: the entry belongs to the bridge the device is a port of.
pub const NTF_MASTER: u8 = 0x04;
/// `AF_BRIDGE`: FDB entries.
pub const AF_BRIDGE: u8 = 7;

/// A neighbour or FDB request's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighMsg {
    /// `ndm_family`: `AF_INET`/`AF_INET6` for neighbours, `AF_BRIDGE` for FDB entries.
    pub family: u8,
    /// `ndm_ifindex`.
    pub index: u32,
    /// `ndm_state` (`NUD_*`).
    pub state: u16,
    /// `ndm_flags` (`NTF_*`).
    pub flags: u8,
    /// `NDA_DST`.
    pub dst: Option<IpAddr>,
    /// `NDA_LLADDR`.
    pub lladdr: Option<[u8; 6]>,
    /// `NDA_VNI`.
    pub vni: Option<u32>,
}

/// Writes an `RTM_NEWNEIGH` / `RTM_DELNEIGH` message.
#[inline]
pub fn neigh_msg(buf: &mut MsgBuf, ty: u16, flags: NlmF, seq: u32, n: &NeighMsg) {
    let m = buf.begin_msg(ty, flags.bits(), seq);
    let mut h = [0u8; 12];
    h[0] = n.family;
    h[4..8].copy_from_slice(&n.index.to_ne_bytes());
    h[8..10].copy_from_slice(&n.state.to_ne_bytes());
    h[10] = n.flags;
    buf.put(&h);
    match n.dst {
        Some(IpAddr::V4(a)) => buf.attr(NDA_DST, &a.octets()),
        Some(IpAddr::V6(a)) => buf.attr(NDA_DST, &a.octets()),
        None => {}
    }
    if let Some(l) = &n.lladdr {
        buf.attr(NDA_LLADDR, l);
    }
    if let Some(v) = n.vni {
        buf.attr_u32(NDA_VNI, v);
    }
    buf.end_msg(m);
}

/// `NDA_IFINDEX`: the device filter of a strict neighbour dump.
pub const NDA_IFINDEX: u16 = 8;

/// `RTM_GETNEIGH` dump of one family, optionally of one device. Neighbour dumps filter
/// by the `NDA_IFINDEX` attribute; FDB dumps (`AF_BRIDGE`) by the header's index.
pub fn dump_neighs(buf: &mut MsgBuf, seq: u32, family: u8, index: u32) {
    let m = buf.begin_msg(RTM_GETNEIGH, NlmF::GET_DUMP.bits(), seq);
    let mut h = [0u8; 12];
    h[0] = family;
    if family == AF_BRIDGE {
        h[4..8].copy_from_slice(&index.to_ne_bytes());
    }
    buf.put(&h);
    if family != AF_BRIDGE && index != 0 {
        buf.attr_u32(NDA_IFINDEX, index);
    }
    buf.end_msg(m);
}
