//! Neighbour and VXLAN FDB entries against the real kernel, and their bytes against
//! netlink-packet-route's.

mod common;

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netplumb::addr::Addr;
use netplumb::link::{Bridge, MacAddr, Vxlan};
use netplumb::neigh::{Fdb, Neigh};
use netplumb::wire::MsgBuf;
use netplumb::Request;

fn nlpr_bytes(msg: NeighbourMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut hdr = NetlinkHeader::default();
    hdr.flags = flags;
    hdr.sequence_number = seq;
    let mut m = NetlinkMessage::new(
        hdr,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(msg)),
    );
    m.finalize();
    let mut out = vec![0; m.buffer_len()];
    m.serialize(&mut out);
    out
}

#[test]
fn neigh_and_fdb_bytes_match_netlink_packet_route() {
    let mac = MacAddr([2, 0x42, 10, 0, 0, 3]);
    let mut b = MsgBuf::new();
    Neigh::new(5, "10.0.0.3".parse().unwrap(), mac).encode(&mut b, 9);
    let mut want = NeighbourMessage::default();
    want.header.family = AddressFamily::Inet;
    want.header.ifindex = 5;
    want.header.state = NeighbourState::Permanent;
    want.attributes = vec![
        NeighbourAttribute::Destination(NeighbourAddress::Inet("10.0.0.3".parse().unwrap())),
        NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()),
    ];
    assert_eq!(
        b.as_bytes(),
        nlpr_bytes(want, 0x0100 | 0x0400 | 0x04 | 0x01, 9)
    );

    b.clear();
    Fdb::new(7, MacAddr([0; 6]))
        .dst("192.0.2.2".parse().unwrap())
        .encode(&mut b, 3);
    let mut want = NeighbourMessage::default();
    want.header.family = AddressFamily::Bridge;
    want.header.ifindex = 7;
    want.header.state = NeighbourState::from(0x80u16 | 0x40);
    want.header.flags = NeighbourFlags::from_bits_retain(0x02);
    want.attributes = vec![
        NeighbourAttribute::Destination(NeighbourAddress::Inet("192.0.2.2".parse().unwrap())),
        NeighbourAttribute::LinkLayerAddress(vec![0; 6]),
    ];
    assert_eq!(
        b.as_bytes(),
        nlpr_bytes(want, 0x0800 | 0x0400 | 0x04 | 0x01, 3)
    );
}

#[test]
fn vxlan_fdb_and_neighbour_entries() {
    common::sandbox("vxlan_fdb_and_neighbour_entries", |s| {
        let mut r = common::rtnl(s);
        r.execute(&Bridge::new("under").up()).unwrap();
        let under = r.link("under").unwrap();
        r.execute(&Addr::new(&under, "192.0.2.1/24".parse().unwrap()))
            .unwrap();
        r.execute(
            &Vxlan::new("vx256", 256)
                .port(4789)
                .learning(false)
                .local("192.0.2.1".parse().unwrap())
                .dev(under.index)
                .up(),
        )
        .unwrap();
        let vx = r.link("vx256").unwrap();
        let zero = MacAddr([0; 6]);
        let remote = MacAddr([2, 0x42, 10, 0, 0, 3]);
        for dst in ["192.0.2.2", "192.0.2.3"] {
            r.execute(&Fdb::new(&vx, zero).dst(dst.parse().unwrap()))
                .unwrap();
        }
        r.execute(&Fdb::new(&vx, remote).dst("192.0.2.2".parse().unwrap()))
            .unwrap();
        let fdb = r.fdb(&vx).unwrap();
        let dsts: Vec<_> = fdb
            .iter()
            .filter(|e| e.mac == Some(zero))
            .filter_map(|e| e.dst)
            .collect();
        assert_eq!(dsts.len(), 2, "{fdb:?}");
        assert!(fdb
            .iter()
            .any(|e| e.mac == Some(remote) && e.dst == Some("192.0.2.2".parse().unwrap())));
        r.execute(&Neigh::new(&vx, "10.0.0.3".parse().unwrap(), remote))
            .unwrap();
        let n = r.neighs(&vx).unwrap();
        assert!(
            n.iter().any(|e| e.dst == Some("10.0.0.3".parse().unwrap())
                && e.mac == Some(remote)
                && e.state & 0x80 != 0),
            "{n:?}"
        );
        r.execute(&Neigh::new(&vx, "10.0.0.3".parse().unwrap(), remote).delete())
            .unwrap();
        assert!(r
            .neighs(&vx)
            .unwrap()
            .iter()
            .all(|e| e.dst != Some("10.0.0.3".parse().unwrap())));
        r.execute(
            &Fdb::new(&vx, remote)
                .dst("192.0.2.2".parse().unwrap())
                .delete(),
        )
        .unwrap();
        assert!(!r.fdb(&vx).unwrap().iter().any(|e| e.mac == Some(remote)));
        let e = r.execute(&Fdb::new(&vx, remote).delete()).unwrap_err();
        assert!(e.is_not_found(), "{e}");
    });
}
