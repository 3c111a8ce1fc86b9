//! A container's default routes on several networks. Without a route metric, only its
//! first network gives it one (Docker). With a metric, every network adds its own beside
//! the others' (netavark): after the first network goes, the container still has a way
//! out through the second, and joining the first again adds its route back.

#![cfg(feature = "store")]

mod common;

use std::net::{IpAddr, SocketAddr};

use common::no_dad;
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::{Netns, Rtnl};

fn host(s: &Sandbox) -> Host {
    no_dad(s.host());
    let mut h = Host::open_in(s.host(), "/run/netplumb-test").unwrap();
    for (name, subnet) in [("n1", "10.81.0.0/24"), ("n2", "10.82.0.0/24")] {
        h.create_network(&NetworkConfig::new(name).subnet(subnet.parse().unwrap()))
            .unwrap();
    }
    h
}

/// The container's IPv4 default routes: (gateway, metric), sorted.
fn defaults(ns: &Netns) -> Vec<(IpAddr, Option<u32>)> {
    let mut v: Vec<_> = Rtnl::open_in(ns)
        .unwrap()
        .main_routes()
        .unwrap()
        .into_iter()
        .filter(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv4())
        .map(|r| (r.via.unwrap(), r.metric))
        .collect();
    v.sort();
    v
}

fn gw(n: u8) -> IpAddr {
    IpAddr::from([10, 80 + n, 0, 1])
}

#[test]
fn with_a_metric_every_network_gives_a_default_route() {
    common::sandbox("with_a_metric_every_network_gives_a_default_route", |s| {
        let mut h = host(s);
        let out = common::outside(s);
        let port = common::serve_peer(&out, SocketAddr::from(([0, 0, 0, 0], 0)));
        let ns = s.netns_dir().create("c").unwrap();
        no_dad(&ns);
        let c = Container::new("c0ffee", &ns).route_metric(100);
        h.connect("n1", &c).unwrap();
        h.connect("n2", &c.clone().ifname("eth1")).unwrap();
        assert_eq!(defaults(&ns), [(gw(1), Some(100)), (gw(2), Some(100))]);

        // The first network goes: the second's route stays, and traffic leaves by it.
        h.disconnect("n1", "c0ffee").unwrap();
        assert_eq!(defaults(&ns), [(gw(2), Some(100))]);
        let to = SocketAddr::new(IpAddr::from([192, 0, 2, 2]), port);
        assert!(common::call_peer(&ns, to).is_some(), "out through n2");

        // Joining n1 again adds its route beside n2's.
        h.connect("n1", &c).unwrap();
        assert_eq!(defaults(&ns), [(gw(1), Some(100)), (gw(2), Some(100))]);
    });
}

#[test]
fn without_a_metric_only_the_first_network_does() {
    common::sandbox("without_a_metric_only_the_first_network_does", |s| {
        let mut h = host(s);
        let ns = s.netns_dir().create("c").unwrap();
        no_dad(&ns);
        let c = Container::new("c0ffee", &ns);
        h.connect("n1", &c).unwrap();
        h.connect("n2", &c.clone().ifname("eth1")).unwrap();
        assert_eq!(defaults(&ns), [(gw(1), None)]);
        // A container that asks for none gets none, metric or not.
        let ns2 = s.netns_dir().create("d").unwrap();
        no_dad(&ns2);
        let d = Container::new("d0ffee", &ns2)
            .route_metric(100)
            .default_route(false);
        h.connect("n1", &d).unwrap();
        h.connect("n2", &d.clone().ifname("eth1")).unwrap();
        assert_eq!(defaults(&ns2), []);
    });
}
