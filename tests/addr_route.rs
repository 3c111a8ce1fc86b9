//! Addresses and routes against the real kernel, IPv4 and IPv6, and H1.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use netplumb::addr::Addr;
use netplumb::link::{Bridge, LinkSet, Veth};
use netplumb::route::{Route, Scope};
use netplumb::{Netns, Rtnl};

fn bridge_up(r: &mut Rtnl, name: &str) -> netplumb::link::Link {
    r.execute(&Bridge::new(name).up()).unwrap();
    r.link(name).unwrap()
}

#[test]
fn add_list_replace_delete_flush_addresses() {
    common::sandbox("add_list_replace_delete_flush_addresses", |s| {
        let mut r = common::rtnl(s);
        let br = bridge_up(&mut r, "br0");
        r.execute(&Addr::new(&br, "172.17.0.1/16".parse().unwrap()).auto_broadcast())
            .unwrap();
        r.execute(&Addr::new(&br, "fd00:1::1/64".parse().unwrap()).nodad())
            .unwrap();
        let addrs = r.addrs(Some((&br).into())).unwrap();
        let v4 = addrs.iter().find(|a| a.addr.addr().is_ipv4()).unwrap();
        assert_eq!(v4.addr, "172.17.0.1/16".parse().unwrap());
        assert_eq!(v4.broadcast, Some(Ipv4Addr::new(172, 17, 255, 255)));
        assert!(addrs
            .iter()
            .any(|a| a.addr == "fd00:1::1/64".parse().unwrap()));

        // Adding it again: exists, nothing changes. Replacing it: fine.
        let dup = Addr::new(&br, "172.17.0.1/16".parse().unwrap());
        assert!(r.execute(&dup).unwrap_err().is_exists());
        r.execute(&dup.replace()).unwrap();

        r.execute(&Addr::new(&br, "172.17.0.1/16".parse().unwrap()).delete())
            .unwrap();
        let left = r.addrs(Some((&br).into())).unwrap();
        assert!(left.iter().all(|a| !a.addr.addr().is_ipv4()), "{left:?}");
        let e = r
            .execute(&Addr::new(&br, "172.17.0.1/16".parse().unwrap()).delete())
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");

        r.execute(&Addr::new(&br, "10.1.0.1/24".parse().unwrap()))
            .unwrap();
        r.execute(&Addr::new(&br, "10.2.0.1/24".parse().unwrap()))
            .unwrap();
        let n = r.flush_addrs(&br).unwrap();
        assert!(n >= 3, "flushed {n}");
        let left: Vec<_> = r
            .addrs(Some((&br).into()))
            .unwrap()
            .into_iter()
            .filter(|a| a.scope == 0)
            .collect();
        assert!(left.is_empty(), "{left:?}");
    });
}

#[test]
fn address_on_a_missing_link_is_a_typed_error() {
    common::sandbox("address_on_a_missing_link_is_a_typed_error", |s| {
        let mut r = common::rtnl(s);
        let before = r.addrs(None).unwrap();
        let e = r
            .execute(&Addr::new(4242, "10.9.0.1/24".parse().unwrap()))
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(
            e.to_string()
                .contains("ip address add 10.9.0.1/24 dev if4242"),
            "{e}"
        );
        assert_eq!(r.addrs(None).unwrap(), before, "nothing half-made");
        // Invalid combinations are refused before the kernel.
        let lo = r.link("lo").unwrap();
        let e = r
            .execute(
                &Addr::new(&lo, "10.0.0.1/8".parse().unwrap()).peer("fd00::1".parse().unwrap()),
            )
            .unwrap_err();
        assert!(
            matches!(e, netplumb::Error::InvalidInput { field: "peer", .. }),
            "{e}"
        );
        let e = r
            .execute(&Addr::new(&lo, "10.0.0.1/8".parse().unwrap()).nodad())
            .unwrap_err();
        assert!(e.is_invalid(), "{e}");
        let e = r
            .execute(&Addr::new(0, "10.0.0.1/8".parse().unwrap()))
            .unwrap_err();
        assert!(e.is_invalid(), "{e}");
    });
}

#[test]
fn routes_v4_and_v6() {
    common::sandbox("routes_v4_and_v6", |s| {
        let mut r = common::rtnl(s);
        let br = bridge_up(&mut r, "br0");
        r.execute(&Addr::new(&br, "172.17.0.1/16".parse().unwrap()))
            .unwrap();
        r.execute(&Addr::new(&br, "fd00:1::1/64".parse().unwrap()).nodad())
            .unwrap();
        // Carrier is needed for routes via a gateway on the link: give the bridge a port.
        r.execute(&Veth::new("p0").peer("p1").up()).unwrap();
        r.execute(&LinkSet::new("p1").up()).unwrap();
        r.execute(&LinkSet::new("p0").controller(br.index)).unwrap();

        let gw4: IpAddr = "172.17.0.254".parse().unwrap();
        r.execute(&Route::default_v4().via(gw4).dev(&br).metric(100))
            .unwrap();
        r.execute(
            &Route::new("10.50.0.0/24".parse().unwrap())
                .dev(&br)
                .src("172.17.0.1".parse().unwrap()),
        )
        .unwrap();
        r.execute(
            &Route::new("10.60.0.0/24".parse().unwrap())
                .via(gw4)
                .table(1000),
        )
        .unwrap();
        r.execute(
            &Route::default_v6()
                .via("fd00:1::fe".parse().unwrap())
                .dev(&br),
        )
        .unwrap();

        let routes = r.routes().unwrap();
        let def = routes
            .iter()
            .find(|x| x.is_default() && x.dst.addr().is_ipv4())
            .unwrap();
        assert_eq!(
            (def.via, def.oif, def.metric, def.table),
            (Some(gw4), Some(br.index), Some(100), 254)
        );
        let link_route = routes
            .iter()
            .find(|x| x.dst == "10.50.0.0/24".parse().unwrap())
            .unwrap();
        assert_eq!(link_route.scope, 253, "scope link without a gateway");
        assert_eq!(link_route.src, Some("172.17.0.1".parse().unwrap()));
        let t = routes
            .iter()
            .find(|x| x.dst == "10.60.0.0/24".parse().unwrap())
            .unwrap();
        assert_eq!(t.table, 1000);
        assert!(!r.main_routes().unwrap().iter().any(|x| x.table == 1000));
        assert!(routes
            .iter()
            .any(|x| x.is_default() && x.via == Some("fd00:1::fe".parse().unwrap())));

        // Duplicate, replace, delete.
        let def4 = Route::default_v4().via(gw4).dev(&br).metric(100);
        assert!(r.execute(&def4).unwrap_err().is_exists());
        r.execute(&def4.replace()).unwrap();
        r.execute(&Route::default_v4().metric(100).delete())
            .unwrap();
        assert!(!r
            .main_routes()
            .unwrap()
            .iter()
            .any(|x| x.is_default() && x.dst.addr().is_ipv4()));
        assert!(r
            .execute(&Route::default_v4().metric(100).delete())
            .unwrap_err()
            .is_not_found());
    });
}

#[test]
fn invalid_routes_are_refused_before_the_kernel() {
    let cases = [
        (
            Route::default_v4().via("fd00::1".parse().unwrap()),
            "gateway",
        ),
        (
            Route::new("10.0.0.1/24".parse().unwrap()).dev(1),
            "destination",
        ),
        (Route::new("10.0.0.0/24".parse().unwrap()), "route"),
        (
            Route::default_v6().dev(1).src("10.0.0.1".parse().unwrap()),
            "source",
        ),
        (Route::default_v4().dev(1).table(0), "table"),
    ];
    for (route, field) in cases {
        match netplumb::Request::validate(&route) {
            Err(netplumb::Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{route}"),
            other => panic!("{route}: expected invalid {field}, got {other:?}"),
        }
    }
}

/// H1: two containers with `--net=none` joined by a veth pair with /32 addresses and a host
/// route to each other over the link.
#[test]
fn h1_point_to_point() {
    common::sandbox("h1_point_to_point", |s| {
        let (a, b) = (Netns::new().unwrap(), Netns::new().unwrap());
        let mut ra = Rtnl::open_in(&a).unwrap();
        let mut rb = Rtnl::open_in(&b).unwrap();
        for r in [&mut ra, &mut rb] {
            r.execute(&LinkSet::new("lo").up()).unwrap();
        }
        ra.execute(&Veth::new("A").peer("B").peer_netns(&b).up())
            .unwrap();
        let la = ra.link("A").unwrap();
        let lb = rb.link("B").unwrap();
        rb.execute(&LinkSet::new(&lb).up()).unwrap();
        let (ipa, ipb): (IpAddr, IpAddr) =
            ("10.1.1.1".parse().unwrap(), "10.1.1.2".parse().unwrap());
        ra.execute(&Addr::new(&la, "10.1.1.1/32".parse().unwrap()).peer(ipb))
            .unwrap();
        rb.execute(&Addr::new(&lb, "10.1.1.2/32".parse().unwrap()))
            .unwrap();
        rb.execute(
            &Route::new("10.1.1.1/32".parse().unwrap())
                .dev(&lb)
                .scope(Scope::Link),
        )
        .unwrap();

        let aa = ra.addrs(Some((&la).into())).unwrap();
        assert_eq!(aa[0].addr, "10.1.1.1/32".parse().unwrap());
        assert_eq!(aa[0].peer, Some(ipb));
        let rt = rb.main_routes().unwrap();
        assert!(rt
            .iter()
            .any(|x| x.dst == "10.1.1.1/32".parse().unwrap() && x.oif == Some(lb.index)));
        // The peer address gives A its host route.
        assert!(ra
            .main_routes()
            .unwrap()
            .iter()
            .any(|x| x.dst == "10.1.1.2/32".parse().unwrap()));

        assert!(common::tcp_reaches(&a, (ipa, 0).into(), &b));
        assert!(common::tcp_reaches(&b, (ipb, 0).into(), &a));
        let _ = s;
    });
}
