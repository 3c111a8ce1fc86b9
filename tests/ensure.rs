//! Stateless callers: `Host::ensure_network` and `Host::ensure_connected`, checked against
//! the kernel's links and addresses.

#![cfg(feature = "store")]

mod common;

use netplumb::error::{Error, ErrorKind, Object};
use netplumb::link::LinkDel;
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::Rtnl;

fn cfg(subnet: &str) -> NetworkConfig {
    NetworkConfig::new("podman")
        .bridge("podman0")
        .subnet(subnet.parse().unwrap())
}

#[test]
fn ensure_network_is_idempotent_remakes_a_lost_bridge_and_refuses_a_change_in_use() {
    common::sandbox("ensure_network", |s| {
        common::no_dad(s.host());
        let mut h = Host::open_in(s.host(), "/run/netplumb-ensure").unwrap();
        let mut r = common::rtnl(s);
        let first = h.ensure_network(&cfg("10.88.0.0/16")).unwrap();
        let again = h.ensure_network(&cfg("10.88.0.0/16")).unwrap();
        assert_eq!(first.id, again.id, "made twice");
        assert_eq!(
            first.gateways,
            ["10.88.0.1".parse::<std::net::IpAddr>().unwrap()]
        );

        // The bridge goes behind our back: still defined, and the next connect makes it
        // again with its gateway address.
        r.execute(&LinkDel::new("podman0")).unwrap();
        assert_eq!(h.ensure_network(&cfg("10.88.0.0/16")).unwrap().id, first.id);
        let ns = s.netns_dir().create("a").unwrap();
        let att = h
            .connect("podman", &Container::new("aaaa00000001", &ns))
            .unwrap();
        let br = r.link("podman0").unwrap();
        let addrs = r.addrs(Some((&br).into())).unwrap();
        assert!(
            addrs.iter().any(|a| a.addr.to_string() == "10.88.0.1/16"),
            "{addrs:?}"
        );

        // Another subnet while a container is attached: refused, nothing changed.
        let e = h.ensure_network(&cfg("10.99.0.0/16")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
        match &e {
            Error::Conflict {
                object: Object::Network,
                differs,
                ..
            } => assert_eq!(differs, &["subnets"]),
            e => panic!("{e:?}"),
        }
        assert!(e.to_string().contains("has containers attached"), "{e}");
        assert_eq!(h.network("podman").unwrap().subnets, first.subnets);
        assert_eq!(h.attachments(Some("podman")).unwrap(), [att]);

        // Unused: made again as described.
        h.disconnect("podman", "aaaa00000001").unwrap();
        let moved = h.ensure_network(&cfg("10.99.0.0/16")).unwrap();
        assert_ne!(moved.id, first.id);
        assert_eq!(moved.subnets, ["10.99.0.0/16".parse().unwrap()]);
        let br = r.link("podman0").unwrap();
        let addrs: Vec<String> = r
            .addrs(Some((&br).into()))
            .unwrap()
            .iter()
            .filter(|a| a.addr.addr().is_ipv4())
            .map(|a| a.addr.to_string())
            .collect();
        assert_eq!(addrs, ["10.99.0.1/16"]);
        h.remove_network("podman", false).unwrap();
        assert!(r.link("podman0").unwrap_err().is_not_found());
    });
}

#[test]
fn ensure_connected_repeats_the_same_and_replaces_a_stale_attachment() {
    common::sandbox("ensure_connected", |s| {
        common::no_dad(s.host());
        let mut h = Host::open_in(s.host(), "/run/netplumb-ensure").unwrap();
        let mut r = common::rtnl(s);
        h.ensure_network(&cfg("10.88.0.0/16")).unwrap();
        let old = s.netns_dir().create("old").unwrap();
        let ctr = |ns: &netplumb::Netns| {
            Container::new("bbbb00000001", ns)
                .ip("10.88.0.7".parse().unwrap())
                .mac("02:00:00:00:00:07".parse().unwrap())
        };
        let first = h.ensure_connected("podman", &ctr(&old)).unwrap();
        assert_eq!(h.ensure_connected("podman", &ctr(&old)).unwrap(), first);
        // A restart that skipped the teardown: a fresh namespace, the old one gone.
        s.netns_dir().delete("old").unwrap();
        let new = s.netns_dir().create("new").unwrap();
        let second = h.ensure_connected("podman", &ctr(&new)).unwrap();
        assert_eq!(second.addrs, first.addrs);
        let mut inside = Rtnl::open_in(&new).unwrap();
        let eth0 = inside.link("eth0").unwrap();
        assert_eq!(
            eth0.mac.map(|m| m.to_string()).as_deref(),
            Some("02:00:00:00:00:07")
        );
        let have = inside.addrs(Some((&eth0).into())).unwrap();
        assert!(have.iter().any(|a| a.addr == second.addrs[0]), "{have:?}");
        // One port on the bridge: the new one.
        assert_eq!(
            common::bridge_ports(&mut r, "podman0"),
            [second.host_veth.clone()].into_iter().collect()
        );
        h.disconnect("podman", "bbbb00000001").unwrap();
        h.remove_network("podman", false).unwrap();
    });
}

#[test]
fn a_network_without_addresses_connects_and_repairs_like_the_others() {
    common::sandbox("network_without_addresses", |s| {
        common::no_dad(s.host());
        let mut h = Host::open_in(s.host(), "/run/netplumb-ensure").unwrap();
        let mut r = common::rtnl(s);
        let info = h
            .ensure_network(&NetworkConfig::new("l2").bridge("br-l2").ipv4(false))
            .unwrap();
        assert!(
            info.subnets.is_empty() && info.gateways.is_empty(),
            "{info:?}"
        );
        // Beside it, a network with addresses, whose rules the repairs must keep.
        h.ensure_network(&cfg("10.88.0.0/16")).unwrap();
        let ns = s.netns_dir().create("l2c").unwrap();
        let att = h
            .connect("l2", &Container::new("cccc00000001", &ns))
            .unwrap();
        assert!(att.addrs.is_empty(), "{att:?}");
        let mac = att.mac.expect("a MAC").octets();
        assert_eq!(
            mac[0] & 0x03,
            0x02,
            "unicast, locally administered: {mac:02x?}"
        );
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let eth0 = inside.link("eth0").unwrap();
        assert!(eth0.is_up());
        assert!(inside.addrs(Some((&eth0).into())).unwrap().is_empty());
        assert_eq!(
            common::bridge_ports(&mut r, "br-l2"),
            [att.host_veth.clone()].into_iter().collect()
        );
        // Ports need addresses.
        let ns2 = s.netns_dir().create("l2p").unwrap();
        let e = h
            .connect(
                "l2",
                &Container::new("cccc00000002", &ns2).publish("80".parse().unwrap()),
            )
            .unwrap_err();
        assert!(
            e.is_invalid() && e.to_string().contains("without addresses"),
            "{e}"
        );
        // gc and reconcile find nothing to do, and do not trip on it.
        assert_eq!(h.gc(&["cccc00000001"]).unwrap(), Default::default());
        let report = h.reconcile().unwrap();
        assert!(report.is_empty(), "{report:?}");
        h.disconnect("l2", "cccc00000001").unwrap();
        h.remove_network("l2", false).unwrap();
        h.remove_network("podman", false).unwrap();
        assert!(r.link("br-l2").unwrap_err().is_not_found());
    });
}

#[test]
fn an_address_held_by_a_dead_attachment_is_released_for_a_new_container() {
    common::sandbox("ensure_dead_attachment", |s| {
        common::no_dad(s.host());
        let mut h = Host::open_in(s.host(), "/run/netplumb-ensure").unwrap();
        let mut r = common::rtnl(s);
        h.ensure_network(&cfg("10.88.0.0/16")).unwrap();
        let ip: std::net::IpAddr = "10.88.0.9".parse().unwrap();
        let old = s.netns_dir().create("old").unwrap();
        let dead = h
            .ensure_connected("podman", &Container::new("dddd00000001", &old).ip(ip))
            .unwrap();
        // Its container died with no teardown, and its veth went with it.
        r.execute(&LinkDel::new(dead.host_veth.as_str())).unwrap();
        let new = s.netns_dir().create("new").unwrap();
        let fresh = Container::new("dddd00000002", &new).ip(ip);
        // connect alone refuses: the address is leased.
        assert!(h.connect("podman", &fresh).unwrap_err().is_exists());
        let att = h.ensure_connected("podman", &fresh).unwrap();
        assert_eq!(att.addrs[0].addr(), ip);
        let ids: Vec<String> = h
            .attachments(Some("podman"))
            .unwrap()
            .into_iter()
            .map(|a| a.container)
            .collect();
        assert_eq!(ids, ["dddd00000002"]);
        h.disconnect("podman", "dddd00000002").unwrap();
        h.remove_network("podman", false).unwrap();
    });
}

#[test]
fn a_container_interface_name_held_by_a_veth_another_host_left_is_freed_by_the_next_connect() {
    common::sandbox("ensure_left_veth", |s| {
        common::no_dad(s.host());
        let ns = s.netns_dir().create("l").unwrap();
        let dir = "/run/netplumb-left";
        let mut first = Host::open_in(s.host(), dir).unwrap();
        first.ensure_network(&cfg("10.88.0.0/16")).unwrap();
        first
            .connect("podman", &Container::new("left00000001", &ns))
            .unwrap();
        // A process that disconnects and exits, leaving the veth's deletion for later.
        first.leave_link_deletion(true);
        first.disconnect("podman", "left00000001").unwrap();
        std::mem::forget(first);
        let mut inside = Rtnl::open_in(&ns).unwrap();
        assert!(inside.link("eth0").is_ok(), "eth0 was deleted at once");
        // The next process connects another container with the same interface name.
        let mut next = Host::open_in(s.host(), dir).unwrap();
        let att = next
            .connect("podman", &Container::new("left00000002", &ns))
            .unwrap();
        let eth0 = inside.link("eth0").unwrap();
        assert_eq!(eth0.mac, att.mac, "eth0 is not the new container's");
    });
}
