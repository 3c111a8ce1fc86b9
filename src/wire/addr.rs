//! `RTM_{NEW,DEL,GET}ADDR` requests (rtnetlink(7), `ip address`): `ifaddrmsg` and `IFA_*`.

use std::net::IpAddr;

use super::{MsgBuf, NlmF};

/// `RTM_NEWADDR`.
pub const RTM_NEWADDR: u16 = 20;
/// `RTM_DELADDR`.
pub const RTM_DELADDR: u16 = 21;
/// `RTM_GETADDR`.
pub const RTM_GETADDR: u16 = 22;

/// `IFA_ADDRESS`: the prefix address, or the peer on point-to-point links.
pub const IFA_ADDRESS: u16 = 1;
/// `IFA_LOCAL`: the local address.
pub const IFA_LOCAL: u16 = 2;
/// `IFA_LABEL`.
pub const IFA_LABEL: u16 = 3;
/// `IFA_BROADCAST`.
pub const IFA_BROADCAST: u16 = 4;
/// `IFA_FLAGS` (32-bit flags).
pub const IFA_FLAGS: u16 = 8;

/// `IFA_F_NODAD`.
pub const IFA_F_NODAD: u32 = 0x02;
/// `AF_INET`.
pub const AF_INET: u8 = 2;
/// `AF_INET6`.
pub const AF_INET6: u8 = 10;

/// An address request's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrMsg<'a> {
    /// `ifa_index`.
    pub index: u32,
    /// The local address.
    pub local: IpAddr,
    /// `ifa_prefixlen`.
    pub prefix_len: u8,
    /// `ifa_scope`.
    pub scope: u8,
    /// The point-to-point peer (`IFA_ADDRESS` instead of the local address).
    pub peer: Option<IpAddr>,
    /// `IFA_BROADCAST` (IPv4 only).
    pub broadcast: Option<IpAddr>,
    /// `IFA_LABEL`.
    pub label: Option<&'a [u8]>,
    /// `IFA_FLAGS`; 0 writes none.
    pub flags: u32,
}

/// The address family of `ip`.
#[inline]
pub fn family_of(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

#[inline(always)]
fn put_ip(buf: &mut MsgBuf, ty: u16, ip: &IpAddr) {
    match ip {
        IpAddr::V4(a) => buf.attr_word(ty, a.octets()),
        IpAddr::V6(a) => buf.attr_array(ty, &a.octets()),
    }
}

/// Writes an `RTM_NEWADDR` / `RTM_DELADDR` message (`ip addr add|del`).
#[inline(always)]
pub fn addr_msg(buf: &mut MsgBuf, ty: u16, flags: NlmF, seq: u32, a: &AddrMsg<'_>) {
    // struct ifaddrmsg: family, prefixlen, flags (0: they go in IFA_FLAGS), scope, index.
    let mut h = [0u8; 8];
    h[0] = family_of(&a.local);
    h[1] = a.prefix_len;
    h[3] = a.scope;
    h[4..8].copy_from_slice(&a.index.to_ne_bytes());
    let m = buf.begin_msg_with(ty, flags.bits(), seq, &h);
    put_ip(buf, IFA_LOCAL, &a.local);
    put_ip(buf, IFA_ADDRESS, a.peer.as_ref().unwrap_or(&a.local));
    if let Some(b) = &a.broadcast {
        put_ip(buf, IFA_BROADCAST, b);
    }
    if let Some(l) = a.label {
        buf.attr_str(IFA_LABEL, l);
    }
    if a.flags != 0 {
        buf.attr_u32(IFA_FLAGS, a.flags);
    }
    buf.end_msg(m);
}

/// `RTM_GETADDR` dump of one family (`AF_UNSPEC` for both), optionally of one link.
pub fn dump_addrs(buf: &mut MsgBuf, seq: u32, family: u8, index: u32) {
    let m = buf.begin_msg(RTM_GETADDR, NlmF::GET_DUMP.bits(), seq);
    let mut h = [0u8; 8];
    h[0] = family;
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    buf.put(&h);
    buf.end_msg(m);
}
