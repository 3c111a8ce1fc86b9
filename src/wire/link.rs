//! `RTM_{NEW,DEL,SET,GET}LINK` requests (rtnetlink(7), `ip link`): `ifinfomsg`, `IFLA_*`,
//! and the kind-specific `IFLA_INFO_DATA` of veth, bridge and VXLAN, and bridge ports'
//! `IFLA_INFO_SLAVE_DATA`.

use std::net::IpAddr;

use super::{Msg, MsgBuf, NlmF};

/// `RTM_NEWLINK`.
pub const RTM_NEWLINK: u16 = 16;
/// `RTM_DELLINK`.
pub const RTM_DELLINK: u16 = 17;
/// `RTM_GETLINK`.
pub const RTM_GETLINK: u16 = 18;
/// `RTM_SETLINK`.
pub const RTM_SETLINK: u16 = 19;

/// `IFLA_ADDRESS`.
pub const IFLA_ADDRESS: u16 = 1;
/// `IFLA_IFNAME`.
pub const IFLA_IFNAME: u16 = 3;
/// `IFLA_MTU`.
pub const IFLA_MTU: u16 = 4;
/// `IFLA_LINK`.
pub const IFLA_LINK: u16 = 5;
/// `IFLA_MASTER`.
pub const IFLA_MASTER: u16 = 10;
/// `IFLA_TXQLEN`.
pub const IFLA_TXQLEN: u16 = 13;
/// `IFLA_LINKINFO`.
pub const IFLA_LINKINFO: u16 = 18;
/// `IFLA_NET_NS_PID`.
pub const IFLA_NET_NS_PID: u16 = 19;
/// `IFLA_GROUP`.
pub const IFLA_GROUP: u16 = 27;
/// `IFLA_NET_NS_FD`.
pub const IFLA_NET_NS_FD: u16 = 28;
/// `IFLA_EXT_MASK`.
pub const IFLA_EXT_MASK: u16 = 29;
/// `IFLA_NUM_TX_QUEUES`.
pub const IFLA_NUM_TX_QUEUES: u16 = 31;
/// `IFLA_NUM_RX_QUEUES`.
pub const IFLA_NUM_RX_QUEUES: u16 = 32;
/// `IFLA_AF_SPEC`: per address family settings, nested by family.
pub const IFLA_AF_SPEC: u16 = 26;
/// `IFLA_INET6_ADDR_GEN_MODE` (u8) inside `IFLA_AF_SPEC` / `AF_INET6`.
pub const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
/// `IFLA_INET_CONF` inside `IFLA_AF_SPEC` / `AF_INET`: the device's IPv4 settings, one
/// u32 attribute per setting, its type the `IPV4_DEVCONF_*` index.
pub const IFLA_INET_CONF: u16 = 1;
/// `IPV4_DEVCONF_ROUTE_LOCALNET` (`net.ipv4.conf.DEV.route_localnet`).
pub const IPV4_DEVCONF_ROUTE_LOCALNET: u16 = 26;

/// `IFLA_INFO_KIND`.
pub const IFLA_INFO_KIND: u16 = 1;
/// `IFLA_INFO_DATA`.
pub const IFLA_INFO_DATA: u16 = 2;
/// `IFLA_INFO_SLAVE_KIND`.
pub const IFLA_INFO_SLAVE_KIND: u16 = 4;
/// `IFLA_INFO_SLAVE_DATA`.
pub const IFLA_INFO_SLAVE_DATA: u16 = 5;

/// `VETH_INFO_PEER`.
pub const VETH_INFO_PEER: u16 = 1;

/// `IFLA_BR_FORWARD_DELAY`.
pub const IFLA_BR_FORWARD_DELAY: u16 = 1;
/// `IFLA_BR_STP_STATE`.
pub const IFLA_BR_STP_STATE: u16 = 5;
/// `IFLA_BR_VLAN_FILTERING`.
pub const IFLA_BR_VLAN_FILTERING: u16 = 7;
/// `IFLA_BR_MCAST_SNOOPING`.
pub const IFLA_BR_MCAST_SNOOPING: u16 = 23;

/// `IFLA_BRPORT_MODE` (hairpin).
pub const IFLA_BRPORT_MODE: u16 = 4;
/// `IFLA_BRPORT_LEARNING`.
pub const IFLA_BRPORT_LEARNING: u16 = 8;
/// `IFLA_BRPORT_UNICAST_FLOOD`.
pub const IFLA_BRPORT_UNICAST_FLOOD: u16 = 9;
/// `IFLA_BRPORT_ISOLATED`.
pub const IFLA_BRPORT_ISOLATED: u16 = 33;

/// `IFLA_VXLAN_ID`.
pub const IFLA_VXLAN_ID: u16 = 1;
/// `IFLA_VXLAN_GROUP`.
pub const IFLA_VXLAN_GROUP: u16 = 2;
/// `IFLA_VXLAN_LINK`.
pub const IFLA_VXLAN_LINK: u16 = 3;
/// `IFLA_VXLAN_LOCAL`.
pub const IFLA_VXLAN_LOCAL: u16 = 4;
/// `IFLA_VXLAN_TTL`.
pub const IFLA_VXLAN_TTL: u16 = 5;
/// `IFLA_VXLAN_LEARNING`.
pub const IFLA_VXLAN_LEARNING: u16 = 7;
/// `IFLA_VXLAN_PROXY`: answer ARP/ND from the device's neighbour table.
pub const IFLA_VXLAN_PROXY: u16 = 11;
/// `IFLA_VXLAN_PORT` (network byte order).
pub const IFLA_VXLAN_PORT: u16 = 15;
/// `IFLA_VXLAN_GROUP6`.
pub const IFLA_VXLAN_GROUP6: u16 = 16;
/// `IFLA_VXLAN_LOCAL6`.
pub const IFLA_VXLAN_LOCAL6: u16 = 17;

/// `IFF_UP`.
pub const IFF_UP: u32 = 0x1;
/// `IFF_LOWER_UP`.
pub const IFF_LOWER_UP: u32 = 0x1_0000;
/// `AF_UNSPEC`.
pub const AF_UNSPEC: u8 = 0;
/// `AF_BRIDGE`.
pub const AF_BRIDGE: u8 = 7;
/// `RTEXT_FILTER_SKIP_STATS` bit of `IFLA_EXT_MASK`: dumps leave out the counters.
pub const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

/// `struct ifinfomsg`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfInfo {
    /// `ifi_family`.
    pub family: u8,
    /// `ifi_type` (ARPHRD_*).
    pub ty: u16,
    /// `ifi_index`; 0 when addressing by name or creating.
    pub index: i32,
    /// `ifi_flags`.
    pub flags: u32,
    /// `ifi_change`: which bits of `flags` to apply.
    pub change: u32,
}

impl IfInfo {
    /// An `ifinfomsg` addressing link `index`.
    pub const fn index(index: u32) -> IfInfo {
        IfInfo {
            family: AF_UNSPEC,
            ty: 0,
            index: index as i32,
            flags: 0,
            change: 0,
        }
    }

    /// The 16 bytes of the `ifinfomsg`.
    #[inline(always)]
    fn bytes(&self) -> [u8; 16] {
        // Whole-field copies (not byte by byte) so that each field stays one store.
        let mut b = [0u8; 16];
        b[0] = self.family;
        b[2..4].copy_from_slice(&self.ty.to_ne_bytes());
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        b[12..16].copy_from_slice(&self.change.to_ne_bytes());
        b
    }

    #[inline(always)]
    fn put(&self, buf: &mut MsgBuf) {
        buf.put_array(&self.bytes());
    }
}

/// Which namespace a link goes to (`IFLA_NET_NS_FD` or `IFLA_NET_NS_PID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsTarget {
    /// A namespace file descriptor.
    Fd(i32),
    /// The namespace of a process.
    Pid(u32),
}

/// The attributes shared by every link kind, written in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkAttrs<'a> {
    /// `IFLA_IFNAME` (no NUL; one is appended).
    pub name: Option<&'a [u8]>,
    /// `IFLA_MTU`.
    pub mtu: Option<u32>,
    /// `IFLA_ADDRESS`.
    pub mac: Option<[u8; 6]>,
    /// `IFLA_TXQLEN`.
    pub txqlen: Option<u32>,
    /// `IFLA_MASTER` (0 detaches).
    pub master: Option<u32>,
    /// `IFLA_GROUP`.
    pub group: Option<u32>,
    /// `IFLA_LINK` (underlay / parent index).
    pub link: Option<u32>,
    /// `IFLA_NET_NS_FD` / `IFLA_NET_NS_PID`.
    pub netns: Option<NsTarget>,
    /// `IFLA_AF_SPEC` / `AF_INET6` / `IFLA_INET6_ADDR_GEN_MODE`.
    pub addr_gen_mode: Option<u8>,
    /// `IFLA_AF_SPEC` / `AF_INET` / `IFLA_INET_CONF` / `IPV4_DEVCONF_ROUTE_LOCALNET`.
    pub route_localnet: Option<bool>,
    /// `IFLA_NUM_TX_QUEUES` and `IFLA_NUM_RX_QUEUES`, both the same (creation only).
    pub queues: Option<u32>,
}

impl LinkAttrs<'_> {
    /// Appends the attributes that are set, in the order of the fields.
    #[inline(always)]
    pub fn put(&self, buf: &mut MsgBuf) {
        if let Some(n) = self.name {
            buf.attr_str(IFLA_IFNAME, n);
        }
        if let Some(v) = self.mtu {
            buf.attr_u32(IFLA_MTU, v);
        }
        if let Some(m) = &self.mac {
            buf.attr_array(IFLA_ADDRESS, m);
        }
        if let Some(v) = self.txqlen {
            buf.attr_u32(IFLA_TXQLEN, v);
        }
        if let Some(v) = self.master {
            buf.attr_u32(IFLA_MASTER, v);
        }
        if let Some(v) = self.group {
            buf.attr_u32(IFLA_GROUP, v);
        }
        if let Some(v) = self.link {
            buf.attr_u32(IFLA_LINK, v);
        }
        match self.netns {
            Some(NsTarget::Fd(fd)) => buf.attr_i32(IFLA_NET_NS_FD, fd),
            Some(NsTarget::Pid(pid)) => buf.attr_u32(IFLA_NET_NS_PID, pid),
            None => {}
        }
        if let Some(q) = self.queues {
            buf.attr_u32(IFLA_NUM_TX_QUEUES, q);
            buf.attr_u32(IFLA_NUM_RX_QUEUES, q);
        }
        if self.addr_gen_mode.is_some() || self.route_localnet.is_some() {
            let spec = buf.begin_nest(IFLA_AF_SPEC);
            if let Some(on) = self.route_localnet {
                let inet = buf.begin_nest(crate::wire::addr::AF_INET as u16);
                let conf = buf.begin_nest(IFLA_INET_CONF);
                buf.attr_u32(IPV4_DEVCONF_ROUTE_LOCALNET, u32::from(on));
                buf.end_nest(conf);
                buf.end_nest(inet);
            }
            if let Some(m) = self.addr_gen_mode {
                let inet6 = buf.begin_nest(crate::wire::addr::AF_INET6 as u16);
                buf.attr_u8(IFLA_INET6_ADDR_GEN_MODE, m);
                buf.end_nest(inet6);
            }
            buf.end_nest(spec);
        }
    }
}

/// `IFLA_INFO_DATA` of a bridge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeData {
    /// `IFLA_BR_FORWARD_DELAY` in centiseconds.
    pub forward_delay: Option<u32>,
    /// `IFLA_BR_STP_STATE`.
    pub stp: Option<bool>,
    /// `IFLA_BR_VLAN_FILTERING`.
    pub vlan_filtering: Option<bool>,
    /// `IFLA_BR_MCAST_SNOOPING`.
    pub mcast_snooping: Option<bool>,
}

/// `IFLA_INFO_DATA` of a VXLAN device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanData {
    /// `IFLA_VXLAN_ID`.
    pub vni: u32,
    /// `IFLA_VXLAN_GROUP` / `GROUP6`: the remote or multicast group.
    pub remote: Option<IpAddr>,
    /// `IFLA_VXLAN_LOCAL` / `LOCAL6`.
    pub local: Option<IpAddr>,
    /// `IFLA_VXLAN_LINK`: the underlay device.
    pub dev: Option<u32>,
    /// `IFLA_VXLAN_TTL`.
    pub ttl: Option<u8>,
    /// `IFLA_VXLAN_LEARNING`.
    pub learning: Option<bool>,
    /// `IFLA_VXLAN_PROXY`.
    pub proxy: Option<bool>,
    /// `IFLA_VXLAN_PORT`, host byte order here, written big-endian.
    pub port: Option<u16>,
}

/// `IFLA_INFO_SLAVE_DATA` of a bridge port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgePortData {
    /// `IFLA_BRPORT_MODE`: hairpin.
    pub hairpin: Option<bool>,
    /// `IFLA_BRPORT_LEARNING`.
    pub learning: Option<bool>,
    /// `IFLA_BRPORT_UNICAST_FLOOD`.
    pub flood: Option<bool>,
    /// `IFLA_BRPORT_ISOLATED`.
    pub isolated: Option<bool>,
}

/// The `IFLA_LINKINFO` content of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind<'a> {
    /// `veth`, with the peer's `ifinfomsg` and attributes.
    Veth {
        /// The peer's `ifinfomsg` (flags such as IFF_UP).
        info: IfInfo,
        /// The peer's attributes.
        attrs: LinkAttrs<'a>,
    },
    /// `bridge`.
    Bridge(BridgeData),
    /// `vxlan`.
    Vxlan(VxlanData),
    /// A port of a bridge (`type bridge_slave`).
    BridgePort(BridgePortData),
    /// A kind with no kind-specific data (`dummy`, `ifb`): only `IFLA_INFO_KIND`.
    Plain(&'a [u8]),
}

#[inline(always)]
fn put_bool(buf: &mut MsgBuf, ty: u16, v: Option<bool>) {
    if let Some(v) = v {
        buf.attr_u8(ty, v as u8);
    }
}

#[inline(always)]
fn put_ip(buf: &mut MsgBuf, v4: u16, v6: u16, ip: Option<IpAddr>) {
    match ip {
        Some(IpAddr::V4(a)) => buf.attr_word(v4, a.octets()),
        Some(IpAddr::V6(a)) => buf.attr_array(v6, &a.octets()),
        None => {}
    }
}

impl LinkKind<'_> {
    #[inline]
    fn put(&self, buf: &mut MsgBuf) {
        let info = buf.begin_nest(IFLA_LINKINFO);
        match self {
            LinkKind::Veth { info: pinfo, attrs } => {
                buf.attr_str(IFLA_INFO_KIND, b"veth");
                let data = buf.begin_nest(IFLA_INFO_DATA);
                let peer = buf.begin_nest(VETH_INFO_PEER);
                pinfo.put(buf);
                attrs.put(buf);
                buf.end_nest(peer);
                buf.end_nest(data);
            }
            LinkKind::Bridge(d) => {
                buf.attr_str(IFLA_INFO_KIND, b"bridge");
                if *d != BridgeData::default() {
                    let data = buf.begin_nest(IFLA_INFO_DATA);
                    if let Some(v) = d.forward_delay {
                        buf.attr_u32(IFLA_BR_FORWARD_DELAY, v);
                    }
                    if let Some(v) = d.stp {
                        buf.attr_u32(IFLA_BR_STP_STATE, v as u32);
                    }
                    put_bool(buf, IFLA_BR_VLAN_FILTERING, d.vlan_filtering);
                    put_bool(buf, IFLA_BR_MCAST_SNOOPING, d.mcast_snooping);
                    buf.end_nest(data);
                }
            }
            LinkKind::Vxlan(d) => {
                buf.attr_str(IFLA_INFO_KIND, b"vxlan");
                let data = buf.begin_nest(IFLA_INFO_DATA);
                buf.attr_u32(IFLA_VXLAN_ID, d.vni);
                put_ip(buf, IFLA_VXLAN_GROUP, IFLA_VXLAN_GROUP6, d.remote);
                if let Some(v) = d.dev {
                    buf.attr_u32(IFLA_VXLAN_LINK, v);
                }
                put_ip(buf, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LOCAL6, d.local);
                if let Some(v) = d.ttl {
                    buf.attr_u8(IFLA_VXLAN_TTL, v);
                }
                put_bool(buf, IFLA_VXLAN_LEARNING, d.learning);
                put_bool(buf, IFLA_VXLAN_PROXY, d.proxy);
                if let Some(p) = d.port {
                    buf.attr_be16(IFLA_VXLAN_PORT, p);
                }
                buf.end_nest(data);
            }
            LinkKind::Plain(kind) => buf.attr_str(IFLA_INFO_KIND, kind),
            LinkKind::BridgePort(d) => {
                buf.attr_str(IFLA_INFO_SLAVE_KIND, b"bridge");
                let data = buf.begin_nest(IFLA_INFO_SLAVE_DATA);
                put_bool(buf, IFLA_BRPORT_MODE, d.hairpin);
                put_bool(buf, IFLA_BRPORT_LEARNING, d.learning);
                put_bool(buf, IFLA_BRPORT_UNICAST_FLOOD, d.flood);
                put_bool(buf, IFLA_BRPORT_ISOLATED, d.isolated);
                buf.end_nest(data);
            }
        }
        buf.end_nest(info);
    }
}

/// Starts an `RTM_*LINK` message: `nlmsghdr` and `ifinfomsg` in one copy. Append the
/// attributes ([`LinkAttrs::put`]), then close it with [`MsgBuf::end_msg`].
#[inline(always)]
pub fn begin_link(buf: &mut MsgBuf, ty: u16, flags: NlmF, seq: u32, info: &IfInfo) -> Msg {
    buf.begin_msg_with(ty, flags.bits(), seq, &info.bytes())
}

/// Writes a whole `RTM_NEWLINK`/`RTM_SETLINK` message: header, `ifinfomsg`, the common
/// attributes, then `IFLA_LINKINFO` when `kind` is given.
#[inline(always)]
pub fn link_msg(
    buf: &mut MsgBuf,
    ty: u16,
    flags: NlmF,
    seq: u32,
    info: &IfInfo,
    attrs: &LinkAttrs<'_>,
    kind: Option<&LinkKind<'_>>,
) {
    let m = begin_link(buf, ty, flags, seq, info);
    attrs.put(buf);
    if let Some(k) = kind {
        k.put(buf);
    }
    buf.end_msg(m);
}

/// `RTM_DELLINK` of link `index`, or, with `index == 0` and a group, of every link of that
/// interface group in one unregister batch (`ip link del group N`).
#[inline]
pub fn del_link(buf: &mut MsgBuf, seq: u32, index: u32, group: Option<u32>) {
    let attrs = LinkAttrs {
        group,
        ..LinkAttrs::default()
    };
    link_msg(
        buf,
        RTM_DELLINK,
        NlmF::CHANGE,
        seq,
        &IfInfo::index(index),
        &attrs,
        None,
    );
}

/// `RTM_GETLINK` of one link, by index or (when `index == 0`) by name.
pub fn get_link(buf: &mut MsgBuf, seq: u32, index: u32, name: Option<&[u8]>) {
    let m = buf.begin_msg(RTM_GETLINK, NlmF::CHANGE.bits(), seq);
    IfInfo::index(index).put(buf);
    if let Some(n) = name {
        buf.attr_str(IFLA_IFNAME, n);
    }
    buf.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    buf.end_msg(m);
}

/// `RTM_GETLINK` dump of every link (of `family`: `AF_UNSPEC`, or `AF_BRIDGE` for ports).
pub fn dump_links(buf: &mut MsgBuf, seq: u32, family: u8, master: Option<u32>) {
    let m = buf.begin_msg(RTM_GETLINK, NlmF::GET_DUMP.bits(), seq);
    IfInfo {
        family,
        ..IfInfo::default()
    }
    .put(buf);
    if let Some(idx) = master {
        buf.attr_u32(IFLA_MASTER, idx);
    }
    buf.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    buf.end_msg(m);
}
