//! A connect of a container id that is already connected: the same request is done
//! already; a different one (a fresh namespace after a restart, other ports, another
//! address…) is refused with what differs and changes nothing; a second container with a
//! name the network has is refused, as Docker refuses it.

#![cfg(feature = "store")]

mod common;

use common::no_dad;

use netplumb::error::{Error, ErrorKind, Object};
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::Netns;

fn host(s: &Sandbox) -> Host {
    no_dad(s.host());
    let mut h = Host::open_in(s.host(), "/run/netplumb-test").unwrap();
    h.create_network(&NetworkConfig::new("n").subnet("10.61.0.0/24".parse().unwrap()))
        .unwrap();
    h
}

fn ctr_ns(s: &Sandbox, name: &str) -> Netns {
    let ns = s.netns_dir().create(name).unwrap();
    no_dad(&ns);
    ns
}

fn differs(e: Error) -> Vec<&'static str> {
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.is_conflict() && !e.is_exists());
    assert!(e.to_string().contains("disconnect it first"), "{e}");
    match e {
        Error::Conflict {
            object,
            name,
            network,
            differs,
        } => {
            assert_eq!(
                (object, name.as_str(), network.as_str()),
                (Object::Container, "c1", "n")
            );
            differs
        }
        e => panic!("not a conflict: {e}"),
    }
}

fn links_in(ns: &Netns) -> Vec<String> {
    let mut r = netplumb::Rtnl::open_in(ns).unwrap();
    common::link_names(&mut r)
}

#[test]
fn same_request_again_is_done_already() {
    common::sandbox("same_request_again_is_done_already", |s| {
        let mut h = host(s);
        let ns = ctr_ns(s, "a");
        let c = Container::new("c1", &ns)
            .name("web")
            .ip("10.61.0.5".parse().unwrap())
            .alias("www")
            .publish("8080:80".parse().unwrap());
        let a = h.connect("n", &c).unwrap();
        let again = h.connect("n", &c).unwrap();
        assert_eq!(a, again);
        // An unnamed namespace: the same one again is done already too.
        let anon = Netns::new().unwrap();
        let c2 = Container::new("c2", &anon);
        let a2 = h.connect("n", &c2).unwrap();
        assert_eq!(h.connect("n", &c2).unwrap(), a2);
    });
}

#[test]
fn a_fresh_namespace_is_refused_and_gets_nothing() {
    common::sandbox("a_fresh_namespace_is_refused_and_gets_nothing", |s| {
        let mut h = host(s);
        let old = ctr_ns(s, "a");
        let c = Container::new("c1", &old);
        let a = h.connect("n", &c).unwrap();
        // Another namespace, and the same name made again (a restarted container).
        let other = ctr_ns(s, "b");
        assert_eq!(
            differs(h.connect("n", &Container::new("c1", &other)).unwrap_err()),
            ["namespace"]
        );
        assert!(!links_in(&other).contains(&"eth0".to_owned()));
        drop(old);
        s.netns_dir().delete("a").unwrap();
        let fresh = ctr_ns(s, "a");
        let e = h.connect("n", &Container::new("c1", &fresh)).unwrap_err();
        assert_eq!(differs(e), ["namespace"]);
        assert_eq!(h.attachments(Some("n")).unwrap(), [a]);
        // What the runtime does instead: disconnect, then connect.
        h.disconnect("n", "c1").unwrap();
        let b = h.connect("n", &Container::new("c1", &fresh)).unwrap();
        assert!(links_in(&fresh).contains(&b.ifname));
        // Unnamed namespaces are told apart by the link they hold.
        let anon = Netns::new().unwrap();
        h.connect("n", &Container::new("c9", &anon)).unwrap();
        let anon2 = Netns::new().unwrap();
        let e = h.connect("n", &Container::new("c9", &anon2)).unwrap_err();
        assert!(
            matches!(e, Error::Conflict { ref differs, .. } if differs == &["namespace"]),
            "{e}"
        );
    });
}

#[test]
fn other_ports_address_mac_or_aliases_are_refused() {
    common::sandbox("other_ports_address_mac_or_aliases_are_refused", |s| {
        let mut h = host(s);
        let ns = ctr_ns(s, "a");
        let c = Container::new("c1", &ns).publish("8080:80".parse().unwrap());
        let a = h.connect("n", &c).unwrap();
        let base = || Container::new("c1", &ns);
        let cases = [
            (base(), vec!["ports"]),
            (base().publish("8081:80".parse().unwrap()), vec!["ports"]),
            (
                base()
                    .publish("8080:80".parse().unwrap())
                    .ip("10.61.0.77".parse().unwrap()),
                vec!["ip"],
            ),
            (
                base()
                    .publish("8080:80".parse().unwrap())
                    .mac("02:00:00:00:00:01".parse().unwrap())
                    .alias("x"),
                vec!["mac", "aliases"],
            ),
            (
                base()
                    .publish("8080:80".parse().unwrap())
                    .name("other")
                    .ifname("eth1"),
                vec!["name", "interface name"],
            ),
        ];
        for (c, want) in cases {
            assert_eq!(differs(h.connect("n", &c).unwrap_err()), want);
        }
        assert_eq!(h.attachments(Some("n")).unwrap(), std::slice::from_ref(&a));
        // The address it has, asked for explicitly, is the same request.
        let same = base()
            .publish("8080:80".parse().unwrap())
            .ip(a.addrs[0].addr())
            .mac(a.mac.unwrap());
        assert_eq!(h.connect("n", &same).unwrap(), a);
    });
}

#[test]
fn a_name_the_network_has_is_refused() {
    common::sandbox("a_name_the_network_has_is_refused", |s| {
        let mut h = host(s);
        let a = ctr_ns(s, "a");
        h.connect("n", &Container::new("c1", &a).name("web"))
            .unwrap();
        let b = ctr_ns(s, "b");
        let before = common::link_names(&mut common::rtnl(s));
        let e = h
            .connect("n", &Container::new("c2", &b).name("web"))
            .unwrap_err();
        assert!(e.is_exists(), "{e}");
        match &e {
            Error::Exists {
                object: Object::Endpoint,
                name,
                detail: Some(d),
            } => {
                assert_eq!(name, "web");
                assert!(d.contains("in network n") && d.contains("c1"), "{d}");
            }
            e => panic!("{e:?}"),
        }
        assert!(e.to_string().starts_with("endpoint with name web"), "{e}");
        assert_eq!(common::link_names(&mut common::rtnl(s)), before);
        assert_eq!(h.attachments(Some("n")).unwrap().len(), 1);
        // Another network, or another name: fine.
        h.connect("n", &Container::new("c2", &b).name("web2"))
            .unwrap();
    });
}
