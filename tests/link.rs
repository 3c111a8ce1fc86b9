//! Links against the real kernel: scenarios B1–B6 and the error paths.

mod common;

use netplumb::link::{Link, LinkDel, LinkSet, Veth, Vxlan};
use netplumb::{addr::Addr, Netns, Rtnl};

fn veths(r: &mut Rtnl) -> Vec<Link> {
    r.links()
        .unwrap()
        .into_iter()
        .filter(|l| l.is_kind("veth"))
        .collect()
}

#[test]
fn b1_anonymous_veth_gets_kernel_names() {
    common::sandbox("b1_anonymous_veth_gets_kernel_names", |s| {
        let mut r = common::rtnl(s);
        r.execute(&Veth::anonymous()).unwrap();
        let v = veths(&mut r);
        let mut names: Vec<_> = v.iter().map(|l| l.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["veth0", "veth1"]);
        assert_eq!(v[0].link, Some(v[1].index), "ends point at each other");
        assert_eq!(v[1].link, Some(v[0].index));
    });
}

#[test]
fn b1_named_veth_with_peer_created_in_namespace() {
    common::sandbox("b1_named_veth_with_peer_created_in_namespace", |s| {
        let ctr = s.netns_dir().create("ctr1").unwrap();
        let mut host = common::rtnl(s);
        let v = Veth::new("veth3f2a1c0")
            .peer("eth0")
            .peer_netns(&ctr)
            .mtu(1400)
            .peer_mtu(1400)
            .mac([0x02, 0x42, 0xac, 0x11, 0, 1])
            .peer_mac([0x02, 0x42, 0xac, 0x11, 0, 2])
            .up();
        assert_eq!(
            v.to_string(),
            "ip link add veth3f2a1c0 mtu 1400 address 02:42:ac:11:00:01 up type veth peer name eth0 mtu 1400 address 02:42:ac:11:00:02 netns ctr1"
        );
        host.execute(&v).unwrap();
        let h = host.link("veth3f2a1c0").unwrap();
        assert!(h.is_up());
        assert_eq!(h.mtu, 1400);
        assert_eq!(h.mac.unwrap().to_string(), "02:42:ac:11:00:01");
        assert!(
            host.link("eth0").unwrap_err().is_not_found(),
            "peer must not appear on the host"
        );
        let mut inside = Rtnl::open_in(&ctr).unwrap();
        let e = inside.link("eth0").unwrap();
        assert_eq!(e.mtu, 1400);
        assert_eq!(e.mac.unwrap().to_string(), "02:42:ac:11:00:02");
        assert!(!e.is_up());
    });
}

#[test]
fn b2_move_to_namespace_by_handle_and_by_pid() {
    common::sandbox("b2_move_to_namespace_by_handle_and_by_pid", |s| {
        let a = s.netns_dir().create("a").unwrap();
        let mut host = common::rtnl(s);
        host.execute(&Veth::new("va").peer("vb")).unwrap();
        let vb = host.link("vb").unwrap();
        host.execute(&LinkSet::new(&vb).netns(&a)).unwrap();
        assert!(
            host.link("vb").unwrap_err().is_not_found(),
            "moved end left the source"
        );
        assert!(
            Rtnl::open_in(&a).unwrap().link("vb").is_ok(),
            "moved end is in the target"
        );

        // By pid: a process living in namespace b.
        let b = s.netns_dir().create("b").unwrap();
        let mut child = b
            .spawn(std::process::Command::new("sleep").arg("30"))
            .unwrap();
        let va = host.link("va").unwrap();
        let moved = host.execute(&LinkSet::new(&va).netns(child.id()));
        let _ = child.kill();
        let _ = child.wait();
        moved.unwrap();
        assert!(host.link("va").unwrap_err().is_not_found());
        assert!(Rtnl::open_in(&b).unwrap().link("va").is_ok());
    });
}

#[test]
fn b3_rename_updown_mtu_mac() {
    common::sandbox("b3_rename_updown_mtu_mac", |s| {
        let mut r = common::rtnl(s);
        r.execute(&Veth::new("v0").peer("v1")).unwrap();
        let v0 = r.link("v0").unwrap();
        r.execute(
            &LinkSet::new(v0.index)
                .name("eth7")
                .mtu(9000)
                .mac([0x02, 0, 0, 0, 0, 7]),
        )
        .unwrap();
        let l = r.link(v0.index).unwrap();
        assert_eq!((l.name.as_str(), l.mtu), ("eth7", 9000));
        assert_eq!(l.mac.unwrap().to_string(), "02:00:00:00:00:07");
        r.execute(&LinkSet::new("eth7").up()).unwrap();
        assert!(r.link("eth7").unwrap().is_up());

        // Renaming a link that is up: kernels before 6.x refuse (EBUSY) and the error says
        // so, leaving the name; newer kernels rename it.
        match r.execute(&LinkSet::new(v0.index).name("eth8")) {
            Err(e) => {
                assert!(e.is_busy(), "{e}");
                assert!(e.to_string().contains("ip link set dev if"), "{e}");
                assert!(r.link("eth7").is_ok(), "name unchanged");
            }
            Ok(()) => {
                assert!(r.link("eth7").unwrap_err().is_not_found());
                r.execute(&LinkSet::new(v0.index).name("eth7")).unwrap();
            }
        }

        // `rename` handles a running link on every kernel.
        let up = r.link("eth7").unwrap();
        r.rename(&up, "eth8").unwrap();
        let l = r.link(v0.index).unwrap();
        assert_eq!(l.name, "eth8");
        assert!(l.is_up(), "still up after the rename");
        r.rename(&l, "eth7").unwrap();
        let e = r.rename(&l, "bad/name").unwrap_err();
        assert!(e.is_invalid(), "{e}");

        r.execute(&LinkSet::new("eth7").down()).unwrap();
        assert!(!r.link("eth7").unwrap().is_up());
        // A rename must address the link by index (a name would be ambiguous).
        let e = r.execute(&LinkSet::new("eth7").name("eth9")).unwrap_err();
        assert!(e.is_invalid(), "{e}");
    });
}

#[test]
fn b4_find_veth_peer_across_namespaces() {
    common::sandbox("b4_find_veth_peer_across_namespaces", |s| {
        let ctr = s.netns_dir().create("ctr").unwrap();
        let other = s.netns_dir().create("other").unwrap();
        let mut host = common::rtnl(s);
        host.execute(&Veth::new("veth1234567").peer("eth0").peer_netns(&ctr))
            .unwrap();
        let mut inside = Rtnl::open_in(&ctr).unwrap();
        let eth0 = inside.link("eth0").unwrap();
        assert!(
            eth0.link_netnsid.is_some(),
            "peer lives in another namespace"
        );
        let (ns, peer) = inside
            .veth_peer(&eth0, &[other.clone(), s.host().clone()])
            .unwrap();
        assert_eq!(&ns, s.host());
        assert_eq!(peer.name, "veth1234567");
        // And back from the host side.
        let hv = host.link("veth1234567").unwrap();
        let (ns, peer) = host.veth_peer(&hv, &[other, ctr.clone()]).unwrap();
        assert_eq!(ns, ctr);
        assert_eq!(peer.index, eth0.index);
        // Not a veth: a typed error.
        let lo = host.link("lo").unwrap();
        assert!(host.veth_peer(&lo, &[]).unwrap_err().is_invalid());
        // Peer's namespace not among the candidates: not found.
        assert!(inside.veth_peer(&eth0, &[]).unwrap_err().is_not_found());
    });
}

#[test]
fn b5_devices_that_cannot_move_give_a_clear_error() {
    common::sandbox("b5_devices_that_cannot_move_give_a_clear_error", |s| {
        let a = Netns::new().unwrap();
        let mut r = common::rtnl(s);
        r.execute(&netplumb::link::Bridge::new("br0")).unwrap();
        for name in ["lo", "br0"] {
            let before = r.link(name).unwrap();
            let e = r.execute(&LinkSet::new(name).netns(&a)).unwrap_err();
            assert!(e.is_invalid(), "{name}: {e}");
            assert!(e.to_string().contains(name), "error names the link: {e}");
            assert!(
                e.extack().is_some_and(|m| m.contains("netns")),
                "kernel says why: {e}"
            );
            assert_eq!(r.link(name).unwrap().index, before.index, "{name} stayed");
        }
        // A VXLAN device can move on current kernels (its socket stays behind).
        r.execute(&Vxlan::new("vx0", 42).port(4789)).unwrap();
        r.execute(&LinkSet::new("vx0").netns(&a)).unwrap();
        assert!(Rtnl::open_in(&a).unwrap().link("vx0").is_ok());
    });
}

#[test]
fn b6_two_namespaces_joined_by_a_veth_reach_each_other() {
    common::sandbox("b6_two_namespaces_joined_by_a_veth_reach_each_other", |s| {
        let (ns1, ns2) = (
            s.netns_dir().create("ns1").unwrap(),
            s.netns_dir().create("ns2").unwrap(),
        );
        let mut r1 = Rtnl::open_in(&ns1).unwrap();
        r1.execute(&Veth::new("veth0").peer("veth1").peer_netns(&ns2).up())
            .unwrap();
        let mut r2 = Rtnl::open_in(&ns2).unwrap();
        let (v0, v1) = (r1.link("veth0").unwrap(), r2.link("veth1").unwrap());
        assert!(!v0.has_carrier(), "no carrier while the peer is down");
        r2.execute(&LinkSet::new(&v1).up()).unwrap();
        assert!(
            r1.link("veth0").unwrap().has_carrier(),
            "carrier once both ends are up"
        );
        r1.execute(&Addr::new(&v0, "10.0.0.1/24".parse().unwrap()))
            .unwrap();
        // Unreachable before the peer has an address and is up? It is up; no address yet.
        let to: std::net::SocketAddr = "10.0.0.1:7000".parse().unwrap();
        assert!(
            common::udp_send_error(&ns2, to).is_some(),
            "no route yet from ns2"
        );
        r2.execute(&Addr::new(&v1, "10.0.0.2/24".parse().unwrap()))
            .unwrap();
        assert!(common::tcp_reaches(
            &ns1,
            "10.0.0.1:0".parse().unwrap(),
            &ns2
        ));
        assert!(common::tcp_reaches(
            &ns2,
            "10.0.0.2:0".parse().unwrap(),
            &ns1
        ));
    });
}

#[test]
fn duplicate_and_missing_links_are_typed_errors_that_change_nothing() {
    common::sandbox(
        "duplicate_and_missing_links_are_typed_errors_that_change_nothing",
        |s| {
            let mut r = common::rtnl(s);
            r.execute(&Veth::new("dup0").peer("dup1")).unwrap();
            let before = common::link_names(&mut r);
            let e = r.execute(&Veth::new("dup0").peer("other")).unwrap_err();
            assert!(e.is_exists(), "{e}");
            assert!(e.to_string().contains("ip link add dup0"), "{e}");
            assert_eq!(common::link_names(&mut r), before);

            let e = r.link("nosuch").unwrap_err();
            assert!(e.is_not_found(), "{e}");
            let e = r.execute(&LinkSet::new("nosuch").up()).unwrap_err();
            assert!(e.is_not_found(), "{e}");
            let e = r.execute(&LinkDel::new(9999)).unwrap_err();
            assert!(e.is_not_found(), "{e}");
        },
    );
}

#[test]
fn bad_names_are_refused_before_the_kernel() {
    common::sandbox("bad_names_are_refused_before_the_kernel", |s| {
        let mut r = common::rtnl(s);
        let before = common::link_names(&mut r);
        for (name, peer) in [
            ("veth%d", "p"),
            ("a", "b/c"),
            ("averyverylongname0", "p"),
            ("", "p"),
            ("..", "p"),
            ("sp ace", "p"),
        ] {
            let e = r.execute(&Veth::new(name).peer(peer)).unwrap_err();
            assert!(
                matches!(e, netplumb::Error::InvalidInput { .. }),
                "{name}/{peer}: {e}"
            );
        }
        assert_eq!(common::link_names(&mut r), before, "nothing was created");
    });
}

#[test]
fn a_kind_the_kernel_lacks_is_not_supported() {
    common::sandbox("a_kind_the_kernel_lacks_is_not_supported", |s| {
        let mut r = common::rtnl(s);
        // This kernel has no dummy module; a kernel that has it creates the link instead.
        match r.execute(&netplumb::link::Dummy::new("dummy0")) {
            Err(e) => assert!(e.is_not_supported(), "{e}"),
            Ok(()) => assert!(r.link("dummy0").unwrap().is_kind("dummy")),
        }
    });
}

#[test]
fn vxlan_is_created_with_its_settings() {
    common::sandbox("vxlan_is_created_with_its_settings", |s| {
        let mut r = common::rtnl(s);
        r.execute(&netplumb::link::Bridge::new("under").up())
            .unwrap();
        let under = r.link("under").unwrap();
        r.execute(&Addr::new(&under, "192.0.2.1/24".parse().unwrap()))
            .unwrap();
        let v = Vxlan::new("vxlan256", 256)
            .port(4789)
            .learning(false)
            .local("192.0.2.1".parse().unwrap())
            .remote("192.0.2.2".parse().unwrap())
            .dev(under.index)
            .mtu(1450);
        r.execute(&v).unwrap();
        let l = r.link("vxlan256").unwrap();
        assert!(l.is_kind("vxlan"));
        assert_eq!(l.mtu, 1450);
        let x = l.vxlan.unwrap();
        assert_eq!((x.vni, x.port, x.learning), (256, 4789, false));
        assert_eq!(x.local, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(x.remote, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(x.dev, Some(under.index));
        let e = r.execute(&Vxlan::new("vx1", 1 << 24)).unwrap_err();
        assert!(e.is_invalid(), "{e}");
    });
}

#[test]
fn bulk_delete_removes_every_link_in_one_batch() {
    common::sandbox("bulk_delete_removes_every_link_in_one_batch", |s| {
        let mut r = common::rtnl(s);
        let specs: Vec<Veth> = (0..50)
            .map(|i| Veth::new(&format!("bv{i}")).peer(&format!("bp{i}")))
            .collect();
        r.execute_batch(&specs).unwrap();
        assert_eq!(veths(&mut r).len(), 100);
        let keep = Veth::new("keep0").peer("keep1");
        r.execute(&keep).unwrap();
        let idx: Vec<u32> = veths(&mut r)
            .iter()
            .filter(|l| l.name.starts_with("bv"))
            .map(|l| l.index)
            .collect();
        assert_eq!(r.delete_links(&idx).unwrap(), 50);
        let left: Vec<String> = veths(&mut r).into_iter().map(|l| l.name).collect();
        assert_eq!(left.len(), 2, "only the pair we kept: {left:?}");
        assert!(left.iter().all(|n| n.starts_with("keep")));
        assert_eq!(
            r.delete_links(&idx).unwrap(),
            0,
            "already gone is not an error"
        );
    });
}

#[test]
fn batch_reports_the_failed_request() {
    common::sandbox("batch_reports_the_failed_request", |s| {
        let mut r = common::rtnl(s);
        r.execute(&Veth::new("x1").peer("y1")).unwrap();
        let specs = [
            Veth::new("x0").peer("y0"),
            Veth::new("x1").peer("z1"),
            Veth::new("x2").peer("y2"),
        ];
        let e = r.execute_batch(&specs).unwrap_err();
        match &e {
            netplumb::Error::Batch {
                index,
                count,
                source,
            } => {
                assert_eq!((*index, *count), (1, 3));
                assert!(source.is_exists(), "{source}");
            }
            other => panic!("expected a batch error, got {other}"),
        }
        assert!(e.to_string().contains("ip link add x1"), "{e}");
        // rtnetlink applies each request on its own: the others went through.
        assert!(r.link("x0").is_ok() && r.link("x2").is_ok());
        // Validation happens before anything is sent.
        let bad = [Veth::new("ok0").peer("ok1"), Veth::new("bad%d").peer("p")];
        let e = r.execute_batch(&bad).unwrap_err();
        assert!(e.is_invalid(), "{e}");
        assert!(r.link("ok0").unwrap_err().is_not_found());
    });
}
