//! `RTM_{NEW,DEL,GET}ROUTE` requests (rtnetlink(7), `ip route`): `rtmsg` and `RTA_*`.

use std::net::IpAddr;

use super::{MsgBuf, NlmF};

/// `RTM_NEWROUTE`.
pub const RTM_NEWROUTE: u16 = 24;
/// `RTM_DELROUTE`.
pub const RTM_DELROUTE: u16 = 25;
/// `RTM_GETROUTE`.
pub const RTM_GETROUTE: u16 = 26;

/// `RTA_DST`.
pub const RTA_DST: u16 = 1;
/// `RTA_OIF`.
pub const RTA_OIF: u16 = 4;
/// `RTA_GATEWAY`.
pub const RTA_GATEWAY: u16 = 5;
/// `RTA_PRIORITY` (the metric).
pub const RTA_PRIORITY: u16 = 6;
/// `RTA_PREFSRC`.
pub const RTA_PREFSRC: u16 = 7;
/// `RTA_TABLE`.
pub const RTA_TABLE: u16 = 15;

/// `RT_TABLE_UNSPEC`.
pub const RT_TABLE_UNSPEC: u8 = 0;
/// `RT_TABLE_MAIN`.
pub const RT_TABLE_MAIN: u8 = 254;
/// `RTPROT_BOOT`: what `ip route add` writes by default.
pub const RTPROT_BOOT: u8 = 3;
/// `RTPROT_STATIC`.
pub const RTPROT_STATIC: u8 = 4;
/// `RT_SCOPE_UNIVERSE`.
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_LINK`.
pub const RT_SCOPE_LINK: u8 = 253;
/// `RT_SCOPE_HOST`.
pub const RT_SCOPE_HOST: u8 = 254;
/// `RTN_UNICAST`.
pub const RTN_UNICAST: u8 = 1;
/// `RTNH_F_ONLINK`.
pub const RTNH_F_ONLINK: u32 = 4;

/// A route request's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMsg {
    /// `rtm_family`.
    pub family: u8,
    /// The destination; `None` with `dst_len == 0` is the default route.
    pub dst: Option<IpAddr>,
    /// `rtm_dst_len`.
    pub dst_len: u8,
    /// The table; values above 255 go in `RTA_TABLE`.
    pub table: u32,
    /// `rtm_protocol`.
    pub protocol: u8,
    /// `rtm_scope`.
    pub scope: u8,
    /// `rtm_type`.
    pub kind: u8,
    /// `rtm_flags`.
    pub flags: u32,
    /// `RTA_GATEWAY`.
    pub gateway: Option<IpAddr>,
    /// `RTA_OIF`.
    pub oif: Option<u32>,
    /// `RTA_PRIORITY`.
    pub metric: Option<u32>,
    /// `RTA_PREFSRC`.
    pub prefsrc: Option<IpAddr>,
}

#[inline(always)]
fn put_ip(buf: &mut MsgBuf, ty: u16, ip: &IpAddr) {
    match ip {
        IpAddr::V4(a) => buf.attr_word(ty, a.octets()),
        IpAddr::V6(a) => buf.attr_array(ty, &a.octets()),
    }
}

/// Writes an `RTM_NEWROUTE` / `RTM_DELROUTE` message (`ip route add|replace|del`).
#[inline(always)]
pub fn route_msg(buf: &mut MsgBuf, ty: u16, flags: NlmF, seq: u32, r: &RouteMsg) {
    let small_table = if r.table < 256 {
        r.table as u8
    } else {
        RT_TABLE_UNSPEC
    };
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    let mut h = [0u8; 12];
    h[0] = r.family;
    h[1] = r.dst_len;
    h[4] = small_table;
    h[5] = r.protocol;
    h[6] = r.scope;
    h[7] = r.kind;
    h[8..12].copy_from_slice(&r.flags.to_ne_bytes());
    let m = buf.begin_msg_with(ty, flags.bits(), seq, &h);
    if let Some(d) = &r.dst {
        put_ip(buf, RTA_DST, d);
    }
    if let Some(g) = &r.gateway {
        put_ip(buf, RTA_GATEWAY, g);
    }
    if let Some(o) = r.oif {
        buf.attr_u32(RTA_OIF, o);
    }
    if let Some(p) = r.metric {
        buf.attr_u32(RTA_PRIORITY, p);
    }
    if let Some(s) = &r.prefsrc {
        put_ip(buf, RTA_PREFSRC, s);
    }
    if r.table >= 256 {
        buf.attr_u32(RTA_TABLE, r.table);
    }
    buf.end_msg(m);
}

/// `RTM_GETROUTE` dump of one family.
pub fn dump_routes(buf: &mut MsgBuf, seq: u32, family: u8) {
    let m = buf.begin_msg(RTM_GETROUTE, NlmF::GET_DUMP.bits(), seq);
    let mut h = [0u8; 12];
    h[0] = family;
    buf.put(&h);
    buf.end_msg(m);
}
