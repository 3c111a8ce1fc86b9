//! Bridges and their ports against the real kernel (C1, C3 at the link level).

mod common;

use netplumb::addr::Addr;
use netplumb::link::{Bridge, BridgePort, LinkSet, OperState, Veth};
use netplumb::Rtnl;

#[test]
fn bridge_settings_are_read_back() {
    common::sandbox("bridge_settings_are_read_back", |s| {
        let mut r = common::rtnl(s);
        let br = Bridge::new("docker0")
            .stp(true)
            .forward_delay(400)
            .mtu(1400);
        r.execute(&br).unwrap();
        let l = r.link("docker0").unwrap();
        assert!(l.is_kind("bridge"));
        assert_eq!(l.mtu, 1400);
        let b = l.bridge.unwrap();
        assert!(b.stp && !b.vlan_filtering);
        assert_eq!(b.forward_delay, 400);
        assert!(b.bridge_id.starts_with("8000."), "{}", b.bridge_id);
        r.execute(&Bridge::new("nostp").stp(false)).unwrap();
        assert!(!r.link("nostp").unwrap().bridge.unwrap().stp);
        // VLAN filtering needs CONFIG_BRIDGE_VLAN_FILTERING; without it: not supported.
        match r.execute(&Bridge::new("vf0").vlan_filtering(true)) {
            Ok(()) => assert!(r.link("vf0").unwrap().bridge.unwrap().vlan_filtering),
            Err(e) => {
                assert!(e.is_not_supported(), "{e}");
                assert!(
                    r.link("vf0").unwrap_err().is_not_found(),
                    "nothing half-made"
                );
            }
        }
        let e = r.execute(&Bridge::new("docker0")).unwrap_err();
        assert!(e.is_exists(), "{e}");
        let e = r
            .execute(&Bridge::new("b1").stp(true).forward_delay(50))
            .unwrap_err();
        assert!(e.is_invalid(), "{e}");
    });
}

#[test]
fn bridge_gets_carrier_when_the_first_port_joins_and_lists_its_ports() {
    common::sandbox(
        "bridge_gets_carrier_when_the_first_port_joins_and_lists_its_ports",
        |s| {
            let mut r = common::rtnl(s);
            r.execute(&Bridge::new("br0").stp(false).up()).unwrap();
            let br = r.link("br0").unwrap();
            assert!(br.is_up());
            // Without ports a bridge is not operationally up (DOWN/NO-CARRIER on older kernels,
            // UNKNOWN on current ones).
            assert_ne!(br.operstate, OperState::Up);
            assert!(r.bridge_ports("br0").unwrap().is_empty());

            let ctr = s.netns_dir().create("c1").unwrap();
            r.execute(&Veth::new("vethaaaaaaa").peer("eth0").peer_netns(&ctr).up())
                .unwrap();
            r.execute(&LinkSet::new("vethaaaaaaa").controller(br.index))
                .unwrap();
            let mut inside = Rtnl::open_in(&ctr).unwrap();
            inside.execute(&LinkSet::new("eth0").up()).unwrap();

            let ports = r.bridge_ports("br0").unwrap();
            assert_eq!(
                ports.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
                ["vethaaaaaaa"]
            );
            assert!(ports[0].port.is_some(), "port settings are reported");
            let br = r.link("br0").unwrap();
            assert!(br.has_carrier(), "bridge has carrier once a port is up");
            assert_eq!(br.operstate, OperState::Up);

            r.execute(&LinkSet::new("vethaaaaaaa").no_controller())
                .unwrap();
            assert!(r.bridge_ports("br0").unwrap().is_empty());
            assert_eq!(r.link("vethaaaaaaa").unwrap().controller, None);
        },
    );
}

#[test]
fn port_flags_hairpin_and_isolated() {
    common::sandbox("port_flags_hairpin_and_isolated", |s| {
        let mut r = common::rtnl(s);
        r.execute(&Bridge::new("br0")).unwrap();
        let br = r.link("br0").unwrap();
        r.execute(&Veth::new("p0").peer("q0")).unwrap();
        r.execute(&LinkSet::new("p0").controller(br.index)).unwrap();
        let before = r.link("p0").unwrap().port.unwrap();
        assert!(!before.hairpin && !before.isolated);
        r.execute(
            &BridgePort::new("p0")
                .hairpin(true)
                .isolated(true)
                .learning(false),
        )
        .unwrap();
        let after = r.link("p0").unwrap().port.unwrap();
        assert!(after.hairpin && after.isolated && !after.learning);
        r.execute(&BridgePort::new("p0").hairpin(false)).unwrap();
        assert!(!r.link("p0").unwrap().port.unwrap().hairpin);
        // Port settings on a link that is not a port: the kernel refuses.
        r.execute(&Veth::new("p1").peer("q1")).unwrap();
        assert!(r.execute(&BridgePort::new("p1").hairpin(true)).is_err());
    });
}

#[test]
fn containers_on_one_bridge_reach_each_other() {
    common::sandbox("containers_on_one_bridge_reach_each_other", |s| {
        let mut host = common::rtnl(s);
        host.execute(&Bridge::new("br0").up()).unwrap();
        let br = host.link("br0").unwrap();
        host.execute(&Addr::new(&br, "10.88.0.1/24".parse().unwrap()))
            .unwrap();
        let mut ctrs = Vec::new();
        for i in 1..=2u8 {
            let ns = s.netns_dir().create(&format!("c{i}")).unwrap();
            let hname = format!("veth000000{i}");
            host.execute(&Veth::new(&hname).peer("eth0").peer_netns(&ns).up())
                .unwrap();
            host.execute(&LinkSet::new(hname.as_str()).controller(br.index))
                .unwrap();
            let mut r = Rtnl::open_in(&ns).unwrap();
            let eth0 = r.link("eth0").unwrap();
            r.execute(&LinkSet::new(&eth0).up()).unwrap();
            r.execute(&Addr::new(
                &eth0,
                format!("10.88.0.{}/24", i + 1).parse().unwrap(),
            ))
            .unwrap();
            ctrs.push(ns);
        }
        assert!(common::tcp_reaches(
            &ctrs[0],
            "10.88.0.2:0".parse().unwrap(),
            &ctrs[1]
        ));
        assert!(common::tcp_reaches(
            &ctrs[1],
            "10.88.0.3:0".parse().unwrap(),
            &ctrs[0]
        ));
        assert!(common::tcp_reaches(
            s.host(),
            "10.88.0.1:0".parse().unwrap(),
            &ctrs[0]
        ));
        // Isolated ports cannot talk to each other any more.
        for i in 1..=2 {
            host.execute(&BridgePort::new(format!("veth000000{i}").as_str()).isolated(true))
                .unwrap();
        }
        assert!(!common::tcp_reaches(
            &ctrs[0],
            "10.88.0.2:0".parse().unwrap(),
            &ctrs[1]
        ));
    });
}
