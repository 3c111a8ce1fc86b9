//! Byte-for-byte identity of netplumb's request encoder with netlink-packet-route.
//!
//! For every request kind netplumb sends, the same request is built with
//! netlink-packet-route's typed API (same header flags, sequence number, and attributes in
//! the same order), serialized, and compared with netplumb's bytes. netplumb's bytes are
//! also parsed back with netlink-packet-route and compared with the typed message.
//!
//! The expected side uses netlink-packet-core's `NLM_F_*` constants and
//! netlink-packet-route's own attribute types, never netplumb's constants, so that a wrong
//! constant or layout on either side shows up as a difference.
//!
//! None of these tests touch the kernel: `Netns::current()` only opens a file, to have a
//! real namespace file descriptor number to put in `IFLA_NET_NS_FD`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, RawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeader, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, BridgeStpState, In6AddrGenMode, InfoBridge, InfoBridgePort,
    InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags,
    LinkHeader, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use netplumb::addr::Addr;
use netplumb::link::{AddrGenMode, Bridge, BridgePort, Dummy, Ifb, LinkDel, LinkSet, Veth, Vxlan};
use netplumb::route::Route;
use netplumb::wire::MsgBuf;
use netplumb::{Netns, Request};

/// The sequence number every request is encoded with.
const SEQ: u32 = 0x0102_0304;

/// `ip link add`, `ip addr add`, `ip route add`: create, fail if it exists.
const F_NEW_EXCL: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
/// `... replace`: create or replace.
const F_NEW_REPLACE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
/// `ip link set`, `... del`: change or delete.
const F_CHANGE: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// Wraps `inner` in a finalized netlink message with `flags` and [`SEQ`].
fn nl(flags: u16, inner: RouteNetlinkMessage) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = SEQ;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    msg.finalize();
    msg
}

/// What netlink-packet-route serializes for `msg`.
fn nlpr_bytes(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Vec<u8> {
    let mut out = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut out);
    out
}

/// What netplumb encodes for `req`, in a fresh buffer.
fn netplumb_bytes(req: &impl Request) -> Vec<u8> {
    let mut buf = MsgBuf::new();
    req.encode(&mut buf, SEQ);
    buf.as_bytes().to_vec()
}

/// A hex dump, 16 bytes a line, to make a difference readable in a failure.
fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let line: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("{:04x}: {}\n", i * 16, line.join(" "))
        })
        .collect()
}

/// Asserts that netplumb encodes `req` exactly as netlink-packet-route serializes
/// `expected` (sent with `flags`), and that netlink-packet-route parses netplumb's bytes
/// back into `expected`.
#[track_caller]
fn assert_same(req: &impl Request, flags: u16, expected: RouteNetlinkMessage) {
    req.validate()
        .unwrap_or_else(|e| panic!("`{req}` does not validate: {e}"));
    let ours = netplumb_bytes(req);
    let msg = nl(flags, expected);
    let theirs = nlpr_bytes(&msg);
    assert!(
        ours == theirs,
        "`{req}`: netplumb and netlink-packet-route differ\nnetplumb ({} bytes):\n{}\
         netlink-packet-route ({} bytes):\n{}",
        ours.len(),
        hex(&ours),
        theirs.len(),
        hex(&theirs)
    );
    let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&ours)
        .unwrap_or_else(|e| panic!("`{req}`: netlink-packet-route cannot parse: {e}"));
    assert_eq!(parsed, msg, "`{req}`: parsed back differently");
}

fn link_msg(header: LinkHeader, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header = header;
    m.attributes = attributes;
    m
}

fn header_index(index: u32) -> LinkHeader {
    LinkHeader {
        index,
        ..LinkHeader::default()
    }
}

fn header_flags(index: u32, flags: LinkFlags, change: LinkFlags) -> LinkHeader {
    LinkHeader {
        index,
        flags,
        change_mask: change,
        ..LinkHeader::default()
    }
}

fn name(s: &str) -> LinkAttribute {
    LinkAttribute::IfName(s.to_string())
}

/// `IFLA_LINKINFO { IFLA_INFO_KIND veth, IFLA_INFO_DATA { VETH_INFO_PEER peer } }`.
fn veth_info(peer: LinkMessage) -> LinkAttribute {
    LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ])
}

/// A real namespace file descriptor, opened without touching the kernel's network stack.
fn current_ns() -> (Netns, RawFd) {
    let ns = Netns::current().expect("open /proc/thread-self/ns/net");
    let fd = ns.as_fd().as_raw_fd();
    (ns, fd)
}

const MAC_A: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x02];
const MAC_B: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x03];

// ---------------------------------------------------------------------------------------
// veth
// ---------------------------------------------------------------------------------------

#[test]
fn veth_create_peer_in_netns_fd() {
    let (ns, fd) = current_ns();
    let req = Veth::new("veth3f2a1c0").peer("eth0").peer_netns(&ns);
    let peer = link_msg(
        LinkHeader::default(),
        vec![name("eth0"), LinkAttribute::NetNsFd(fd)],
    );
    let expected = link_msg(
        LinkHeader::default(),
        vec![name("veth3f2a1c0"), veth_info(peer)],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
    // The size the benchmarks quote.
    assert_eq!(netplumb_bytes(&req).len(), 108);
}

#[test]
fn veth_create_peer_in_netns_pid() {
    let req = Veth::new("veth0").peer("eth0").peer_netns(4242u32);
    let peer = link_msg(
        LinkHeader::default(),
        vec![name("eth0"), LinkAttribute::NetNsPid(4242)],
    );
    let expected = link_msg(LinkHeader::default(), vec![name("veth0"), veth_info(peer)]);
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn veth_create_mtu_mac_both_ends() {
    let (ns, fd) = current_ns();
    let req = Veth::new("veth1")
        .mtu(1450)
        .mac(MAC_A)
        .peer("eth0")
        .peer_mtu(1400)
        .peer_mac(MAC_B)
        .peer_netns(&ns);
    let peer = link_msg(
        LinkHeader::default(),
        vec![
            name("eth0"),
            LinkAttribute::Mtu(1400),
            LinkAttribute::Address(MAC_B.to_vec()),
            LinkAttribute::NetNsFd(fd),
        ],
    );
    let expected = link_msg(
        LinkHeader::default(),
        vec![
            name("veth1"),
            LinkAttribute::Mtu(1450),
            LinkAttribute::Address(MAC_A.to_vec()),
            veth_info(peer),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn veth_create_up_with_group() {
    // Only the first end can be created up; the peer's ifinfomsg stays empty.
    let req = Veth::new("veth2").up().group(7).peer("eth1");
    let peer = link_msg(LinkHeader::default(), vec![name("eth1")]);
    let expected = link_msg(
        header_flags(0, LinkFlags::Up, LinkFlags::Up),
        vec![name("veth2"), LinkAttribute::Group(7), veth_info(peer)],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn veth_create_anonymous() {
    let req = Veth::anonymous();
    // No name on either end: the peer is an empty ifinfomsg.
    let peer = link_msg(LinkHeader::default(), vec![]);
    let expected = link_msg(LinkHeader::default(), vec![veth_info(peer)]);
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

// ---------------------------------------------------------------------------------------
// bridge, bridge ports
// ---------------------------------------------------------------------------------------

#[test]
fn bridge_create_plain() {
    let req = Bridge::new("br0");
    // Without options there is no IFLA_INFO_DATA at all (as `ip link add br0 type bridge`).
    let expected = link_msg(
        LinkHeader::default(),
        vec![
            name("br0"),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn bridge_create_with_options() {
    let req = Bridge::new("docker0")
        .mtu(1500)
        .stp(true)
        .forward_delay(1500)
        .vlan_filtering(true)
        .up();
    let expected = link_msg(
        header_flags(0, LinkFlags::Up, LinkFlags::Up),
        vec![
            name("docker0"),
            LinkAttribute::Mtu(1500),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Bridge),
                LinkInfo::Data(InfoData::Bridge(vec![
                    InfoBridge::ForwardDelay(1500),
                    InfoBridge::StpState(BridgeStpState::KernelStp),
                    InfoBridge::VlanFiltering(true),
                ])),
            ]),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn bridge_create_stp_off() {
    let req = Bridge::new("br1").stp(false).vlan_filtering(false);
    let expected = link_msg(
        LinkHeader::default(),
        vec![
            name("br1"),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Bridge),
                LinkInfo::Data(InfoData::Bridge(vec![
                    InfoBridge::StpState(BridgeStpState::Disabled),
                    InfoBridge::VlanFiltering(false),
                ])),
            ]),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn dummy_and_ifb_create() {
    let req = Dummy::new("dummy0").mtu(1400).mac(MAC_A);
    let expected = link_msg(
        LinkHeader::default(),
        vec![
            name("dummy0"),
            LinkAttribute::Mtu(1400),
            LinkAttribute::Address(MAC_A.to_vec()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Dummy)]),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));

    let req = Ifb::new("ifb0").up();
    let expected = link_msg(
        header_flags(0, LinkFlags::Up, LinkFlags::Up),
        vec![
            name("ifb0"),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Ifb)]),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

fn bridge_port_info(data: Vec<InfoBridgePort>) -> LinkAttribute {
    LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(data)),
    ])
}

#[test]
fn bridge_port_hairpin_isolated_by_index() {
    let req = BridgePort::new(12).hairpin(true).isolated(true);
    let expected = link_msg(
        header_index(12),
        vec![bridge_port_info(vec![
            InfoBridgePort::HairpinMode(true),
            InfoBridgePort::Isolated(true),
        ])],
    );
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn bridge_port_all_options_by_name() {
    let req = BridgePort::new("veth0")
        .hairpin(false)
        .learning(false)
        .flood(true)
        .isolated(false);
    let expected = link_msg(
        LinkHeader::default(),
        vec![
            name("veth0"),
            bridge_port_info(vec![
                InfoBridgePort::HairpinMode(false),
                InfoBridgePort::Learning(false),
                InfoBridgePort::UnicastFlood(true),
                InfoBridgePort::Isolated(false),
            ]),
        ],
    );
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::NewLink(expected));
}

// ---------------------------------------------------------------------------------------
// vxlan
// ---------------------------------------------------------------------------------------

#[test]
fn vxlan_create_full() {
    let req = Vxlan::new("vxlan0", 4096)
        .remote(Ipv4Addr::new(192, 0, 2, 2).into())
        .local(Ipv4Addr::new(192, 0, 2, 1).into())
        .port(4789)
        .learning(false)
        .proxy(true)
        .dev(3)
        .ttl(64)
        .mtu(1450);
    let expected = link_msg(
        LinkHeader::default(),
        vec![
            name("vxlan0"),
            LinkAttribute::Mtu(1450),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(vec![
                    InfoVxlan::Id(4096),
                    InfoVxlan::Group(Ipv4Addr::new(192, 0, 2, 2)),
                    InfoVxlan::Link(3),
                    InfoVxlan::Local(Ipv4Addr::new(192, 0, 2, 1)),
                    InfoVxlan::Ttl(64),
                    InfoVxlan::Learning(false),
                    InfoVxlan::Proxy(true),
                    InfoVxlan::Port(4789),
                ])),
            ]),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn vxlan_create_v6() {
    let remote: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let local: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let req = Vxlan::new("vxlan6", 42)
        .remote(remote.into())
        .local(local.into());
    let expected = link_msg(
        LinkHeader::default(),
        vec![
            name("vxlan6"),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(vec![
                    InfoVxlan::Id(42),
                    InfoVxlan::Group6(remote),
                    InfoVxlan::Local6(local),
                ])),
            ]),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

// ---------------------------------------------------------------------------------------
// ip link set
// ---------------------------------------------------------------------------------------

#[test]
fn link_set_up() {
    let req = LinkSet::new(7).up();
    let expected = link_msg(header_flags(7, LinkFlags::Up, LinkFlags::Up), vec![]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_up_by_name() {
    let req = LinkSet::new("eth0").up();
    let expected = link_msg(
        header_flags(0, LinkFlags::Up, LinkFlags::Up),
        vec![name("eth0")],
    );
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_addr_gen_mode() {
    let req = LinkSet::new(7).addr_gen_mode(AddrGenMode::None);
    let expected = link_msg(
        header_index(7),
        vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
        )])],
    );
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn veth_create_one_queue_each_end() {
    let req = Veth::new("veth0").queues(1).peer("eth0");
    let peer = link_msg(
        LinkHeader::default(),
        vec![
            name("eth0"),
            LinkAttribute::NumTxQueues(1),
            LinkAttribute::NumRxQueues(1),
        ],
    );
    let expected = link_msg(
        LinkHeader::default(),
        vec![
            name("veth0"),
            LinkAttribute::NumTxQueues(1),
            LinkAttribute::NumRxQueues(1),
            veth_info(peer),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn bridge_create_without_multicast_snooping() {
    let req = Bridge::new("br2").stp(false).multicast_snooping(false);
    let expected = link_msg(
        LinkHeader::default(),
        vec![
            name("br2"),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Bridge),
                LinkInfo::Data(InfoData::Bridge(vec![
                    InfoBridge::StpState(BridgeStpState::Disabled),
                    InfoBridge::MulticastSnooping(false),
                ])),
            ]),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
}

#[test]
fn link_set_down() {
    let req = LinkSet::new(7).down();
    let expected = link_msg(header_flags(7, LinkFlags::empty(), LinkFlags::Up), vec![]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_mtu() {
    let req = LinkSet::new(7).mtu(9000);
    let expected = link_msg(header_index(7), vec![LinkAttribute::Mtu(9000)]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_mac_and_group() {
    let req = LinkSet::new(7).mac(MAC_A).group(9);
    let expected = link_msg(
        header_index(7),
        vec![
            LinkAttribute::Address(MAC_A.to_vec()),
            LinkAttribute::Group(9),
        ],
    );
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_rename() {
    let req = LinkSet::new(7).name("eth9");
    let expected = link_msg(header_index(7), vec![name("eth9")]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_master() {
    let req = LinkSet::new(7).controller(3);
    let expected = link_msg(header_index(7), vec![LinkAttribute::Controller(3)]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_master_and_up() {
    let req = LinkSet::new(7).controller(3).up();
    let expected = link_msg(
        header_flags(7, LinkFlags::Up, LinkFlags::Up),
        vec![LinkAttribute::Controller(3)],
    );
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_nomaster() {
    let req = LinkSet::new(7).no_controller();
    // `ip link set DEV nomaster` sends IFLA_MASTER 0.
    let expected = link_msg(header_index(7), vec![LinkAttribute::Controller(0)]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_netns_fd() {
    let (ns, fd) = current_ns();
    let req = LinkSet::new(7).netns(&ns);
    let expected = link_msg(header_index(7), vec![LinkAttribute::NetNsFd(fd)]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

#[test]
fn link_set_netns_pid() {
    let req = LinkSet::new(7).netns(31337u32);
    let expected = link_msg(header_index(7), vec![LinkAttribute::NetNsPid(31337)]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::SetLink(expected));
}

// ---------------------------------------------------------------------------------------
// ip link del
// ---------------------------------------------------------------------------------------

#[test]
fn link_del_by_index() {
    let req = LinkDel::new(7);
    let expected = link_msg(header_index(7), vec![]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::DelLink(expected));
}

#[test]
fn link_del_by_name() {
    let req = LinkDel::new("veth0");
    let expected = link_msg(LinkHeader::default(), vec![name("veth0")]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::DelLink(expected));
}

#[test]
fn link_del_by_group() {
    let req = LinkDel::group(0x6e70_0001);
    let expected = link_msg(
        LinkHeader::default(),
        vec![LinkAttribute::Group(0x6e70_0001)],
    );
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::DelLink(expected));
}

// ---------------------------------------------------------------------------------------
// ip address
// ---------------------------------------------------------------------------------------

fn addr_msg(
    family: AddressFamily,
    prefix_len: u8,
    index: u32,
    attributes: Vec<AddressAttribute>,
) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header = AddressHeader {
        family,
        prefix_len,
        scope: AddressScope::Universe,
        index,
        ..AddressHeader::default()
    };
    m.attributes = attributes;
    m
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn addr_add_v4() {
    let req = Addr::new(5, "172.17.0.2/24".parse().unwrap());
    let expected = addr_msg(
        AddressFamily::Inet,
        24,
        5,
        vec![
            AddressAttribute::Local(ip("172.17.0.2")),
            AddressAttribute::Address(ip("172.17.0.2")),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewAddress(expected));
}

#[test]
fn addr_add_v4_broadcast() {
    let req = Addr::new(5, "172.17.0.2/16".parse().unwrap()).auto_broadcast();
    let expected = addr_msg(
        AddressFamily::Inet,
        16,
        5,
        vec![
            AddressAttribute::Local(ip("172.17.0.2")),
            AddressAttribute::Address(ip("172.17.0.2")),
            AddressAttribute::Broadcast(Ipv4Addr::new(172, 17, 255, 255)),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewAddress(expected));
}

#[test]
fn addr_add_v4_point_to_point() {
    // `ip addr add 10.0.0.1 peer 10.0.0.2/32 dev if5`: IFA_ADDRESS carries the peer.
    let req = Addr::new(5, "10.0.0.1/32".parse().unwrap()).peer(ip("10.0.0.2"));
    let expected = addr_msg(
        AddressFamily::Inet,
        32,
        5,
        vec![
            AddressAttribute::Local(ip("10.0.0.1")),
            AddressAttribute::Address(ip("10.0.0.2")),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewAddress(expected));
}

#[test]
fn addr_add_v6_nodad() {
    let req = Addr::new(5, "2001:db8::2/64".parse().unwrap()).nodad();
    let expected = addr_msg(
        AddressFamily::Inet6,
        64,
        5,
        vec![
            AddressAttribute::Local(ip("2001:db8::2")),
            AddressAttribute::Address(ip("2001:db8::2")),
            AddressAttribute::Flags(AddressFlags::Nodad),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewAddress(expected));
}

#[test]
fn addr_delete() {
    let req = Addr::new(5, "172.17.0.2/24".parse().unwrap()).delete();
    let expected = addr_msg(
        AddressFamily::Inet,
        24,
        5,
        vec![
            AddressAttribute::Local(ip("172.17.0.2")),
            AddressAttribute::Address(ip("172.17.0.2")),
        ],
    );
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::DelAddress(expected));
}

#[test]
fn addr_replace() {
    let req = Addr::new(5, "172.17.0.2/24".parse().unwrap()).replace();
    let expected = addr_msg(
        AddressFamily::Inet,
        24,
        5,
        vec![
            AddressAttribute::Local(ip("172.17.0.2")),
            AddressAttribute::Address(ip("172.17.0.2")),
        ],
    );
    assert_same(
        &req,
        F_NEW_REPLACE,
        RouteNetlinkMessage::NewAddress(expected),
    );
}

// ---------------------------------------------------------------------------------------
// ip route
// ---------------------------------------------------------------------------------------

fn route_header(family: AddressFamily, dst_len: u8, table: u8, scope: RouteScope) -> RouteHeader {
    RouteHeader {
        address_family: family,
        destination_prefix_length: dst_len,
        source_prefix_length: 0,
        tos: 0,
        table,
        protocol: RouteProtocol::Boot,
        scope,
        kind: RouteType::Unicast,
        flags: RouteFlags::empty(),
    }
}

fn route_msg(header: RouteHeader, attributes: Vec<RouteAttribute>) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header = header;
    m.attributes = attributes;
    m
}

fn v4(s: &str) -> RouteAddress {
    RouteAddress::Inet(s.parse().unwrap())
}

fn v6(s: &str) -> RouteAddress {
    RouteAddress::Inet6(s.parse().unwrap())
}

#[test]
fn route_add_default_v4_via() {
    let req = Route::default_v4().via(ip("172.17.0.1"));
    let expected = route_msg(
        route_header(AddressFamily::Inet, 0, 254, RouteScope::Universe),
        vec![RouteAttribute::Gateway(v4("172.17.0.1"))],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewRoute(expected));
}

#[test]
fn route_add_default_v4_via_dev() {
    let req = Route::default_v4().via(ip("172.17.0.1")).dev(7);
    let expected = route_msg(
        route_header(AddressFamily::Inet, 0, 254, RouteScope::Universe),
        vec![
            RouteAttribute::Gateway(v4("172.17.0.1")),
            RouteAttribute::Oif(7),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewRoute(expected));
}

#[test]
fn route_add_default_v6_via() {
    let req = Route::default_v6().via(ip("fe80::1")).dev(7);
    let expected = route_msg(
        route_header(AddressFamily::Inet6, 0, 254, RouteScope::Universe),
        vec![
            RouteAttribute::Gateway(v6("fe80::1")),
            RouteAttribute::Oif(7),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewRoute(expected));
}

#[test]
fn route_add_dev_only_scope_link() {
    let req = Route::new("10.1.0.0/16".parse().unwrap()).dev(7);
    let expected = route_msg(
        route_header(AddressFamily::Inet, 16, 254, RouteScope::Link),
        vec![
            RouteAttribute::Destination(v4("10.1.0.0")),
            RouteAttribute::Oif(7),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewRoute(expected));
}

#[test]
fn route_add_metric_src_onlink() {
    let req = Route::new("10.2.0.0/24".parse().unwrap())
        .via(ip("192.0.2.1"))
        .dev(7)
        .metric(100)
        .src(ip("192.0.2.10"))
        .onlink();
    let mut header = route_header(AddressFamily::Inet, 24, 254, RouteScope::Universe);
    header.flags = RouteFlags::Onlink;
    let expected = route_msg(
        header,
        vec![
            RouteAttribute::Destination(v4("10.2.0.0")),
            RouteAttribute::Gateway(v4("192.0.2.1")),
            RouteAttribute::Oif(7),
            RouteAttribute::Priority(100),
            RouteAttribute::PrefSource(v4("192.0.2.10")),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewRoute(expected));
}

#[test]
fn route_add_small_table_in_header() {
    let req = Route::default_v4().via(ip("172.17.0.1")).table(100);
    let expected = route_msg(
        route_header(AddressFamily::Inet, 0, 100, RouteScope::Universe),
        vec![RouteAttribute::Gateway(v4("172.17.0.1"))],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewRoute(expected));
}

#[test]
fn route_add_table_1000() {
    // Tables above 255 do not fit rtm_table: RT_TABLE_UNSPEC there, the id in RTA_TABLE.
    let req = Route::default_v4().via(ip("172.17.0.1")).table(1000);
    let expected = route_msg(
        route_header(AddressFamily::Inet, 0, 0, RouteScope::Universe),
        vec![
            RouteAttribute::Gateway(v4("172.17.0.1")),
            RouteAttribute::Table(1000),
        ],
    );
    assert_same(&req, F_NEW_EXCL, RouteNetlinkMessage::NewRoute(expected));
}

#[test]
fn route_replace_v6() {
    let req = Route::new("2001:db8:1::/48".parse().unwrap())
        .via(ip("2001:db8::1"))
        .replace();
    let expected = route_msg(
        route_header(AddressFamily::Inet6, 48, 254, RouteScope::Universe),
        vec![
            RouteAttribute::Destination(v6("2001:db8:1::")),
            RouteAttribute::Gateway(v6("2001:db8::1")),
        ],
    );
    assert_same(&req, F_NEW_REPLACE, RouteNetlinkMessage::NewRoute(expected));
}

#[test]
fn route_delete() {
    // `ip route del`: protocol and type unspecified, scope RT_SCOPE_NOWHERE (match any).
    let req = Route::new("10.1.0.0/16".parse().unwrap()).dev(7).delete();
    let mut header = route_header(AddressFamily::Inet, 16, 254, RouteScope::NoWhere);
    header.protocol = RouteProtocol::Unspec;
    header.kind = RouteType::Unspec;
    let expected = route_msg(
        header,
        vec![
            RouteAttribute::Destination(v4("10.1.0.0")),
            RouteAttribute::Oif(7),
        ],
    );
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::DelRoute(expected));
}

#[test]
fn route_delete_default_table_1000() {
    let req = Route::default_v4().table(1000).delete();
    let mut header = route_header(AddressFamily::Inet, 0, 0, RouteScope::NoWhere);
    header.protocol = RouteProtocol::Unspec;
    header.kind = RouteType::Unspec;
    let expected = route_msg(header, vec![RouteAttribute::Table(1000)]);
    assert_same(&req, F_CHANGE, RouteNetlinkMessage::DelRoute(expected));
}

// ---------------------------------------------------------------------------------------
// batches
// ---------------------------------------------------------------------------------------

#[test]
fn batch_is_concatenation_of_messages() {
    let a = LinkSet::new(7).up();
    let b = LinkDel::new(8);
    let mut buf = MsgBuf::new();
    a.encode(&mut buf, SEQ);
    b.encode(&mut buf, SEQ);
    let mut want = nlpr_bytes(&nl(
        F_CHANGE,
        RouteNetlinkMessage::SetLink(link_msg(
            header_flags(7, LinkFlags::Up, LinkFlags::Up),
            vec![],
        )),
    ));
    want.extend(nlpr_bytes(&nl(
        F_CHANGE,
        RouteNetlinkMessage::DelLink(link_msg(header_index(8), vec![])),
    )));
    assert_eq!(buf.as_bytes(), &want[..]);
}

// ---------------------------------------------------------------------------------------
// golden bytes (native little-endian), annotated like netlink-packet-route's own tests
// ---------------------------------------------------------------------------------------

#[cfg(target_endian = "little")]
mod golden {
    use super::*;

    /// `ip link add veth3f2a1c0 type veth peer name eth0 netns 4242`.
    #[rustfmt::skip]
    const VETH_CREATE: [u8; 108] = [
        // nlmsghdr
        0x6c, 0x00, 0x00, 0x00, // nlmsg_len 108
        0x10, 0x00,             // nlmsg_type RTM_NEWLINK (16)
        0x05, 0x06,             // nlmsg_flags REQUEST|ACK|EXCL|CREATE (0x605)
        0x04, 0x03, 0x02, 0x01, // nlmsg_seq 0x01020304
        0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
        // ifinfomsg
        0x00, 0x00,             // ifi_family AF_UNSPEC, padding
        0x00, 0x00,             // ifi_type 0
        0x00, 0x00, 0x00, 0x00, // ifi_index 0
        0x00, 0x00, 0x00, 0x00, // ifi_flags 0
        0x00, 0x00, 0x00, 0x00, // ifi_change 0
        // IFLA_IFNAME "veth3f2a1c0\0"
        0x10, 0x00, 0x03, 0x00, // len 16, type 3
        b'v', b'e', b't', b'h', b'3', b'f', b'2', b'a', b'1', b'c', b'0', 0x00,
        // IFLA_LINKINFO (nested, no NLA_F_NESTED bit, as iproute2)
        0x3c, 0x00, 0x12, 0x00, // len 60, type 18
            // IFLA_INFO_KIND "veth\0" + 3 bytes padding
            0x09, 0x00, 0x01, 0x00, // len 9, type 1
            b'v', b'e', b't', b'h', 0x00, 0x00, 0x00, 0x00,
            // IFLA_INFO_DATA
            0x2c, 0x00, 0x02, 0x00, // len 44, type 2
                // VETH_INFO_PEER: an ifinfomsg then the peer's attributes
                0x28, 0x00, 0x01, 0x00, // len 40, type 1
                0x00, 0x00, 0x00, 0x00, // ifi_family, pad, ifi_type
                0x00, 0x00, 0x00, 0x00, // ifi_index
                0x00, 0x00, 0x00, 0x00, // ifi_flags
                0x00, 0x00, 0x00, 0x00, // ifi_change
                // IFLA_IFNAME "eth0\0" + 3 bytes padding
                0x09, 0x00, 0x03, 0x00, // len 9, type 3
                b'e', b't', b'h', b'0', 0x00, 0x00, 0x00, 0x00,
                // IFLA_NET_NS_PID 4242
                0x08, 0x00, 0x13, 0x00, // len 8, type 19
                0x92, 0x10, 0x00, 0x00, // 4242
    ];

    #[test]
    fn veth_create_golden() {
        let req = Veth::new("veth3f2a1c0").peer("eth0").peer_netns(4242u32);
        assert_eq!(netplumb_bytes(&req), VETH_CREATE);
        let peer = link_msg(
            LinkHeader::default(),
            vec![name("eth0"), LinkAttribute::NetNsPid(4242)],
        );
        let expected = link_msg(
            LinkHeader::default(),
            vec![name("veth3f2a1c0"), veth_info(peer)],
        );
        let msg = nl(F_NEW_EXCL, RouteNetlinkMessage::NewLink(expected));
        assert_eq!(nlpr_bytes(&msg), VETH_CREATE);
    }

    #[test]
    fn veth_create_netns_fd_golden() {
        // The same message with IFLA_NET_NS_FD (type 28) and a real fd number.
        let (ns, fd) = current_ns();
        let req = Veth::new("veth3f2a1c0").peer("eth0").peer_netns(&ns);
        let mut want = VETH_CREATE;
        want[102..104].copy_from_slice(&28u16.to_le_bytes());
        want[104..108].copy_from_slice(&fd.to_le_bytes());
        assert_eq!(netplumb_bytes(&req), want);
    }

    /// `ip address add 172.17.0.2/24 dev if5`.
    #[rustfmt::skip]
    const ADDR_ADD: [u8; 40] = [
        // nlmsghdr
        0x28, 0x00, 0x00, 0x00, // nlmsg_len 40
        0x14, 0x00,             // nlmsg_type RTM_NEWADDR (20)
        0x05, 0x06,             // nlmsg_flags REQUEST|ACK|EXCL|CREATE (0x605)
        0x04, 0x03, 0x02, 0x01, // nlmsg_seq 0x01020304
        0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
        // ifaddrmsg
        0x02,                   // ifa_family AF_INET
        0x18,                   // ifa_prefixlen 24
        0x00,                   // ifa_flags 0
        0x00,                   // ifa_scope RT_SCOPE_UNIVERSE
        0x05, 0x00, 0x00, 0x00, // ifa_index 5
        // IFA_LOCAL 172.17.0.2
        0x08, 0x00, 0x02, 0x00, // len 8, type 2
        0xac, 0x11, 0x00, 0x02,
        // IFA_ADDRESS 172.17.0.2
        0x08, 0x00, 0x01, 0x00, // len 8, type 1
        0xac, 0x11, 0x00, 0x02,
    ];

    #[test]
    fn addr_add_golden() {
        let req = Addr::new(5, "172.17.0.2/24".parse().unwrap());
        assert_eq!(netplumb_bytes(&req), ADDR_ADD);
        let expected = addr_msg(
            AddressFamily::Inet,
            24,
            5,
            vec![
                AddressAttribute::Local(ip("172.17.0.2")),
                AddressAttribute::Address(ip("172.17.0.2")),
            ],
        );
        let msg = nl(F_NEW_EXCL, RouteNetlinkMessage::NewAddress(expected));
        assert_eq!(nlpr_bytes(&msg), ADDR_ADD);
    }

    /// `ip address add 2001:db8::2/64 dev if5 nodad`.
    #[rustfmt::skip]
    const ADDR_ADD_V6_NODAD: [u8; 72] = [
        // nlmsghdr
        0x48, 0x00, 0x00, 0x00, // nlmsg_len 72
        0x14, 0x00,             // nlmsg_type RTM_NEWADDR (20)
        0x05, 0x06,             // nlmsg_flags REQUEST|ACK|EXCL|CREATE (0x605)
        0x04, 0x03, 0x02, 0x01, // nlmsg_seq 0x01020304
        0x00, 0x00, 0x00, 0x00, // nlmsg_pid 0
        // ifaddrmsg
        0x0a,                   // ifa_family AF_INET6
        0x40,                   // ifa_prefixlen 64
        0x00,                   // ifa_flags 0 (the flags go in IFA_FLAGS)
        0x00,                   // ifa_scope RT_SCOPE_UNIVERSE
        0x05, 0x00, 0x00, 0x00, // ifa_index 5
        // IFA_LOCAL 2001:db8::2
        0x14, 0x00, 0x02, 0x00, // len 20, type 2
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        // IFA_ADDRESS 2001:db8::2
        0x14, 0x00, 0x01, 0x00, // len 20, type 1
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        // IFA_FLAGS IFA_F_NODAD
        0x08, 0x00, 0x08, 0x00, // len 8, type 8
        0x02, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn addr_add_v6_nodad_golden() {
        let req = Addr::new(5, "2001:db8::2/64".parse().unwrap()).nodad();
        assert_eq!(netplumb_bytes(&req), ADDR_ADD_V6_NODAD);
    }
}
