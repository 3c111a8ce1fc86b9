//! Encoding cost of one request: netplumb's `Request::encode` into a warm, reused
//! [`MsgBuf`], against what a user of netlink-packet-route does per request (build the
//! typed `NetlinkMessage`, finalize it, serialize it into a reused `Vec` sized with
//! `buffer_len`).
//!
//! Both sides produce the same bytes (checked once per group before measuring, and in
//! detail by `tests/wire_oracle.rs`). No kernel is involved: `Netns::current()` only opens
//! a file, for a real `IFLA_NET_NS_FD` number.
//!
//! `cargo bench --bench messages -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, RawFd};

use criterion::{criterion_group, criterion_main, Criterion};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeader, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkHeader, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use netplumb::addr::Addr;
use netplumb::link::{Bridge, LinkSet, Veth};
use netplumb::route::Route;
use netplumb::wire::MsgBuf;
use netplumb::{Netns, Request};

const SEQ: u32 = 42;
const F_NEW_EXCL: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const F_CHANGE: u16 = NLM_F_REQUEST | NLM_F_ACK;

/// netlink-packet-route's side, per request: header, finalize, size, serialize.
#[inline(always)]
fn nlpr_serialize(flags: u16, seq: u32, inner: RouteNetlinkMessage, out: &mut Vec<u8>) {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(inner));
    msg.finalize();
    out.clear();
    out.resize(msg.buffer_len(), 0);
    msg.serialize(&mut out[..]);
}

fn link_message(header: LinkHeader, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header = header;
    m.attributes = attributes;
    m
}

// The typed builders below take their inputs as arguments so that the benchmark can
// `black_box` them; each one builds the whole message from scratch, as a caller does.

fn nlpr_veth(name: &str, peer: &str, fd: RawFd) -> RouteNetlinkMessage {
    let peer = link_message(
        LinkHeader::default(),
        vec![
            LinkAttribute::IfName(peer.to_string()),
            LinkAttribute::NetNsFd(fd),
        ],
    );
    RouteNetlinkMessage::NewLink(link_message(
        LinkHeader::default(),
        vec![
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ],
    ))
}

fn nlpr_bridge(name: &str) -> RouteNetlinkMessage {
    RouteNetlinkMessage::NewLink(link_message(
        LinkHeader::default(),
        vec![
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
        ],
    ))
}

fn nlpr_link_up(index: u32) -> RouteNetlinkMessage {
    let header = LinkHeader {
        index,
        flags: LinkFlags::Up,
        change_mask: LinkFlags::Up,
        ..LinkHeader::default()
    };
    RouteNetlinkMessage::SetLink(link_message(header, vec![]))
}

fn nlpr_set_master(index: u32, master: u32) -> RouteNetlinkMessage {
    let header = LinkHeader {
        index,
        ..LinkHeader::default()
    };
    RouteNetlinkMessage::SetLink(link_message(
        header,
        vec![LinkAttribute::Controller(master)],
    ))
}

fn nlpr_addr(index: u32, ip: IpAddr, prefix_len: u8) -> RouteNetlinkMessage {
    let mut m = AddressMessage::default();
    m.header = AddressHeader {
        family: AddressFamily::Inet,
        prefix_len,
        index,
        ..AddressHeader::default()
    };
    m.attributes = vec![AddressAttribute::Local(ip), AddressAttribute::Address(ip)];
    RouteNetlinkMessage::NewAddress(m)
}

fn nlpr_route(gw: Ipv4Addr, oif: u32) -> RouteNetlinkMessage {
    let mut m = RouteMessage::default();
    m.header = RouteHeader {
        address_family: AddressFamily::Inet,
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Boot,
        scope: RouteScope::Universe,
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    m.attributes = vec![
        RouteAttribute::Gateway(RouteAddress::Inet(gw)),
        RouteAttribute::Oif(oif),
    ];
    RouteNetlinkMessage::NewRoute(m)
}

/// One group: `netplumb` encodes `req` into a warm buffer, `netlink-packet-route` builds
/// and serializes with `build`. Checks first that both write the same bytes.
fn group(
    c: &mut Criterion,
    name: &str,
    req: &impl Request,
    flags: u16,
    build: impl Fn() -> RouteNetlinkMessage,
) {
    let mut buf = MsgBuf::new();
    req.encode(&mut buf, SEQ);
    let mut out = Vec::new();
    nlpr_serialize(flags, SEQ, build(), &mut out);
    assert_eq!(
        buf.as_bytes(),
        &out[..],
        "{name}: the two encoders disagree"
    );

    let mut g = c.benchmark_group(name);
    g.bench_function("netplumb", |b| {
        b.iter(|| {
            buf.clear();
            black_box(req).encode(&mut buf, black_box(SEQ));
            black_box(&buf);
        })
    });
    g.bench_function("netlink-packet-route", |b| {
        b.iter(|| {
            nlpr_serialize(flags, black_box(SEQ), build(), &mut out);
            black_box(&out);
        })
    });
    g.finish();
}

fn messages(c: &mut Criterion) {
    let ns = Netns::current().expect("open /proc/thread-self/ns/net");
    let fd = ns.as_fd().as_raw_fd();

    let veth = Veth::new("veth3f2a1c0").peer("eth0").peer_netns(&ns);
    group(c, "veth_create", &veth, F_NEW_EXCL, || {
        nlpr_veth(black_box("veth3f2a1c0"), black_box("eth0"), black_box(fd))
    });

    let bridge = Bridge::new("docker0");
    group(c, "bridge_create", &bridge, F_NEW_EXCL, || {
        nlpr_bridge(black_box("docker0"))
    });

    let up = LinkSet::new(7).up();
    group(c, "link_up", &up, F_CHANGE, || nlpr_link_up(black_box(7)));

    let master = LinkSet::new(7).controller(3);
    group(c, "set_master", &master, F_CHANGE, || {
        nlpr_set_master(black_box(7), black_box(3))
    });

    let ip = IpAddr::V4(Ipv4Addr::new(172, 17, 0, 2));
    let addr = Addr::new(5, netplumb::IpNet::new(ip, 16).unwrap());
    group(c, "addr_add", &addr, F_NEW_EXCL, || {
        nlpr_addr(black_box(5), black_box(ip), black_box(16))
    });

    let gw = Ipv4Addr::new(172, 17, 0, 1);
    let route = Route::default_v4().via(gw.into()).dev(7);
    group(c, "route_add", &route, F_NEW_EXCL, || {
        nlpr_route(black_box(gw), black_box(7))
    });
}

criterion_group!(benches, messages);
criterion_main!(benches);
