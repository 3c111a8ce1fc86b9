//! Security properties as traffic tests, for both firewall backends (`nftables::NAME` and,
//! with the `iptables` feature, `iptables::NAME`): what an attacker in another namespace
//! (an "outside" machine on the host's uplink, or another container) must not reach.
//!
//! Topology (every test builds its own, inside its own sandbox):
//!
//! ```text
//! outside (192.0.2.2/24, 198.51.100.2/24)  --veth uplink--  host (192.0.2.1/24, 198.51.100.1/24)
//! host: br0 10.77.0.1/24 fd77::1/64 -- c1 .2/::2 (vethbr01), c2 .3/::3 (vethbr02), c3 .4/::4 (vethbr03)
//! host: br1 10.78.0.1/24            -- c4 10.78.0.2 (vethbr14)   (second network, when asked)
//! ```
//!
//! Packets an ordinary socket cannot send (a loopback destination on the wire, a TCP
//! packet with SYN and FIN) are written as raw Ethernet frames; whether they arrive is
//! seen by a packet socket on the receiver's interface.

#![cfg(feature = "store")]

mod common;

use common::{bridge, fresh_ns, no_dad};

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Duration;

use netplumb::addr::Addr;
use netplumb::firewall::{self, AnyFirewall, Backend, Firewall, LinkAllow, NetworkRules};
use netplumb::firewall::{PortRule, Proto};
use netplumb::link::{LinkSet, Veth};
use netplumb::neigh::Neigh;
use netplumb::netns::Sandbox;
use netplumb::route::Route;
use netplumb::sysctl::{Scope, Sysctl};
use netplumb::{Netns, Rtnl};

struct World {
    host: Netns,
    outside: Netns,
    c: Vec<Netns>,
    fw: AnyFirewall,
    rtnl: Rtnl,
}

backend_tests!(
    a_loopback_port_is_not_reachable_from_other_namespaces,
    a_port_on_one_host_address_is_not_reachable_on_another,
    route_localnet_stays_off_unless_asked,
    a_port_published_on_127_0_0_1_answers_the_host_alone,
    containers_on_different_networks_cannot_reach_each_other,
    a_container_cannot_pose_as_another_to_pass_a_link,
    conntrack_invalid_packets_are_not_forwarded,
);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(self::ip(ip), port)
}

/// A container on `bridge` (host end `veth{bridge}{n}`) with `v4` (and `v6`) and default
/// routes via the bridge.
fn container(host: &mut Rtnl, bridge: &str, n: usize, v4: &str, v6: Option<&str>) -> Netns {
    let ns = fresh_ns();
    let hname = format!("veth{bridge}{n}");
    let br = host.link(bridge).unwrap();
    host.execute(
        &Veth::new(&hname)
            .controller(br.index)
            .up()
            .peer("eth0")
            .peer_netns(&ns),
    )
    .unwrap();
    let mut r = Rtnl::open_in(&ns).unwrap();
    let eth0 = r.link("eth0").unwrap();
    r.execute(&LinkSet::new("lo").up()).unwrap();
    r.execute(&LinkSet::new(&eth0).up()).unwrap();
    r.execute(&Addr::new(&eth0, format!("{v4}/24").parse().unwrap()))
        .unwrap();
    let gw = v4.rsplit_once('.').unwrap().0.to_owned() + ".1";
    r.execute(&Route::default_v4().via(ip(&gw)).dev(&eth0))
        .unwrap();
    if let Some(a) = v6 {
        r.execute(&Addr::new(&eth0, format!("{a}/64").parse().unwrap()).nodad())
            .unwrap();
        r.execute(&Route::default_v6().via(ip("fd77::1")).dev(&eth0))
            .unwrap();
    }
    ns
}

fn world(s: &Sandbox, backend: Backend) -> World {
    let host = s.host().clone();
    no_dad(&host);
    let mut rtnl = common::rtnl(s);
    rtnl.execute(&LinkSet::new("lo").up()).unwrap();
    Sysctl::IpForward.set_bool(&host, true).unwrap();
    Sysctl::Ipv6Forward.set_bool(&host, true).unwrap();
    let outside = fresh_ns();
    rtnl.execute(&Veth::new("uplink").peer("eth0").peer_netns(&outside).up())
        .unwrap();
    let up = rtnl.link("uplink").unwrap();
    for a in ["192.0.2.1/24", "198.51.100.1/24"] {
        rtnl.execute(&Addr::new(&up, a.parse().unwrap())).unwrap();
    }
    let mut o = Rtnl::open_in(&outside).unwrap();
    let oe = o.link("eth0").unwrap();
    o.execute(&LinkSet::new("lo").up()).unwrap();
    o.execute(&LinkSet::new(&oe).up()).unwrap();
    for a in ["192.0.2.2/24", "198.51.100.2/24"] {
        o.execute(&Addr::new(&oe, a.parse().unwrap())).unwrap();
    }
    bridge(&mut rtnl, "br0", "10.77.0.1/24", Some("fd77::1/64"));
    let c = vec![
        container(&mut rtnl, "br0", 1, "10.77.0.2", Some("fd77::2")),
        container(&mut rtnl, "br0", 2, "10.77.0.3", Some("fd77::3")),
        container(&mut rtnl, "br0", 3, "10.77.0.4", Some("fd77::4")),
    ];
    let fw = firewall::open(backend, &host).unwrap();
    World {
        host,
        outside,
        c,
        fw,
        rtnl,
    }
}

fn net0() -> NetworkRules {
    NetworkRules::new("net0", "br0")
        .subnet("10.77.0.0/24".parse().unwrap())
        .subnet("fd77::/64".parse().unwrap())
}

/// A UDP server in `ns` on `bind`: every datagram it gets goes to the returned channel
/// with the source address it came from.
fn udp_server(ns: &Netns, bind: SocketAddr) -> mpsc::Receiver<(Vec<u8>, SocketAddr)> {
    let sock = ns
        .run(|| UdpSocket::bind(bind))
        .expect("enter namespace")
        .expect("bind udp server");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut b = [0u8; 256];
        while let Ok((n, from)) = sock.recv_from(&mut b) {
            if tx.send((b[..n].to_vec(), from)).is_err() {
                return;
            }
        }
    });
    rx
}

/// Sends `payload` from `from` (an address of `ns`, port 0 for any) to `to`, a few times.
fn udp_send(ns: &Netns, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
    ns.run(|| {
        let s = UdpSocket::bind(from).expect("bind udp client");
        for _ in 0..3 {
            let _ = s.send_to(payload, to);
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .expect("enter namespace");
}

/// Whether a datagram with `payload` arrives on `rx` within a second; returns its source.
fn received(rx: &mpsc::Receiver<(Vec<u8>, SocketAddr)>, payload: &[u8]) -> Option<SocketAddr> {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((p, from)) if p == payload => return Some(from),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

fn a_loopback_port_is_not_reachable_from_other_namespaces(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    w.fw.add_network(&net0()).unwrap();
    common::serve_peer(&w.c[0], sa("0.0.0.0", 80));
    let rx = udp_server(&w.c[0], sa("0.0.0.0", 53));
    let c1 = ip("10.77.0.2");
    w.fw.publish(&[
        PortRule::new("net0", Proto::Tcp, 8080, c1, 80).host_ip(ip("127.0.0.1")),
        PortRule::new("net0", Proto::Udp, 5353, c1, 53).host_ip(ip("127.0.0.1")),
        PortRule::new("net0", Proto::Udp, 5354, c1, 53),
    ])
    .unwrap();
    // Through the host's other addresses, from outside and from another container.
    for (who, from) in [("outside", &w.outside), ("c2", &w.c[1])] {
        for host in ["192.0.2.1", "198.51.100.1", "10.77.0.1"] {
            assert_eq!(
                common::call_peer(from, sa(host, 8080)),
                None,
                "{who} -> {host}:8080 must not reach a port published on 127.0.0.1"
            );
            udp_send(from, sa("0.0.0.0", 0), sa(host, 5353), b"via-host");
            assert_eq!(received(&rx, b"via-host"), None, "{who} -> {host}:5353/udp");
        }
    }
    // A frame addressed to the host's MAC with destination 127.0.0.1 (CVE-2020-8558): the
    // control frame, to a port published on every address, proves the frame itself works.
    let (up_idx, up_mac) = raw::nic(&w.host, "uplink");
    let (_, out_mac) = raw::nic(&w.outside, "eth0");
    let _ = up_idx;
    let frame = |dst: Ipv4Addr, port: u16, marker: &[u8]| {
        let udp = raw::udp(Ipv4Addr::new(192, 0, 2, 2), dst, 40000, port, marker);
        raw::ipv4_frame(up_mac, out_mac, Ipv4Addr::new(192, 0, 2, 2), dst, 17, &udp)
    };
    raw::send(
        &w.outside,
        "eth0",
        &frame(Ipv4Addr::new(192, 0, 2, 1), 5354, b"ctl"),
    );
    assert!(received(&rx, b"ctl").is_some(), "control frame reaches c1");
    raw::send(
        &w.outside,
        "eth0",
        &frame(Ipv4Addr::LOCALHOST, 5353, b"lo-wire"),
    );
    assert_eq!(received(&rx, b"lo-wire"), None, "127.0.0.1 on the wire");
    // The same from a container, to the bridge's MAC.
    let (_, br_mac) = raw::nic(&w.host, "br0");
    let (_, c2_mac) = raw::nic(&w.c[1], "eth0");
    let c2 = Ipv4Addr::new(10, 77, 0, 3);
    let udp = raw::udp(c2, Ipv4Addr::LOCALHOST, 40000, 5353, b"lo-bridge");
    let f = raw::ipv4_frame(br_mac, c2_mac, c2, Ipv4Addr::LOCALHOST, 17, &udp);
    raw::send(&w.c[1], "eth0", &f);
    assert_eq!(
        received(&rx, b"lo-bridge"),
        None,
        "127.0.0.1 from a container"
    );
}

fn a_port_on_one_host_address_is_not_reachable_on_another(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    w.fw.add_network(&net0()).unwrap();
    common::serve_peer(&w.c[0], sa("0.0.0.0", 80));
    let rx = udp_server(&w.c[0], sa("0.0.0.0", 53));
    let c1 = ip("10.77.0.2");
    let on = ip("192.0.2.1");
    w.fw.publish(&[
        PortRule::new("net0", Proto::Tcp, 8080, c1, 80).host_ip(on),
        PortRule::new("net0", Proto::Udp, 5353, c1, 53).host_ip(on),
    ])
    .unwrap();
    assert_eq!(
        common::call_peer(&w.outside, sa("192.0.2.1", 8080)).as_deref(),
        Some("192.0.2.2"),
        "reachable on its own address"
    );
    udp_send(&w.outside, sa("0.0.0.0", 0), sa("192.0.2.1", 5353), b"own");
    assert!(received(&rx, b"own").is_some());
    for (who, from) in [("outside", &w.outside), ("c2", &w.c[1])] {
        for other in ["198.51.100.1", "10.77.0.1"] {
            assert_eq!(
                common::call_peer(from, sa(other, 8080)),
                None,
                "{who} -> {other}:8080"
            );
            udp_send(from, sa("0.0.0.0", 0), sa(other, 5353), b"other");
            assert_eq!(received(&rx, b"other"), None, "{who} -> {other}:5353/udp");
        }
    }
}

fn route_localnet_stays_off_unless_asked(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    let keys = [
        Scope::All,
        Scope::Default,
        Scope::dev("br0"),
        Scope::dev("uplink"),
    ];
    let all_off = |w: &World| {
        for k in &keys {
            let key = Sysctl::RouteLocalnet(*k);
            assert_eq!(key.get(&w.host).unwrap(), "0", "{key}");
        }
    };
    all_off(&w);
    w.fw.add_network(&net0()).unwrap();
    let lo = PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80).host_ip(ip("127.0.0.1"));
    w.fw.publish(&[lo]).unwrap();
    all_off(&w);
    // Loopback ports on: the rules allow it, but the sysctl is the caller's to set.
    w.fw.add_network(&net0().loopback_ports(true)).unwrap();
    all_off(&w);
    common::serve_peer(&w.c[0], sa("0.0.0.0", 80));
    assert_eq!(
        common::call_peer(&w.host, sa("127.0.0.1", 8080)),
        None,
        "without route_localnet the host cannot reach it either"
    );
    let br0 = Sysctl::RouteLocalnet(Scope::dev("br0"));
    br0.set_bool(&w.host, true).unwrap();
    assert!(common::call_peer(&w.host, sa("127.0.0.1", 8080)).is_some());
    for host in ["192.0.2.1", "198.51.100.1"] {
        assert_eq!(common::call_peer(&w.outside, sa(host, 8080)), None);
    }
    let up = Sysctl::RouteLocalnet(Scope::dev("uplink"));
    assert_eq!(up.get(&w.host).unwrap(), "0", "only where asked");
}

/// Through `network::Host`, as a runtime publishes: `-p 127.0.0.1:8086:80` answers a
/// client of the host on 127.0.0.1, with `route_localnet` on the network's bridge alone;
/// a frame to 127.0.0.1 from the LAN or from a container reaches neither the container nor
/// the host's own 127.0.0.1 services (CVE-2020-8558).
fn a_port_published_on_127_0_0_1_answers_the_host_alone(s: &Sandbox, backend: Backend) {
    use netplumb::network::{Container, Host, NetworkConfig};
    no_dad(s.host());
    common::rtnl(s).execute(&LinkSet::new("lo").up()).unwrap();
    let outside = common::outside(s);
    let mut h = Host::open_with(s.host(), "/run/netplumb-lo", backend).unwrap();
    let cfg = NetworkConfig::new("lonet")
        .bridge("br9")
        .subnet("10.79.0.0/24".parse().unwrap());
    h.create_network(&cfg).unwrap();
    let (web, peer) = (fresh_ns(), fresh_ns());
    no_dad(&web);
    no_dad(&peer);
    common::serve_peer(&web, sa("0.0.0.0", 80));
    let rx = udp_server(&web, sa("0.0.0.0", 53));
    let ctr = Container::new("web1", &web)
        .publish("127.0.0.1:8086:80".parse().unwrap())
        .publish("127.0.0.1:5353:53/udp".parse().unwrap());
    h.connect("lonet", &ctr).unwrap();
    h.connect("lonet", &Container::new("peer1", &peer)).unwrap();
    assert_eq!(
        common::call_peer(s.host(), sa("127.0.0.1", 8086)).as_deref(),
        Some("10.79.0.1"),
        "the host reaches it on 127.0.0.1, masqueraded to the bridge's address"
    );
    udp_send(
        s.host(),
        sa("127.0.0.1", 0),
        sa("127.0.0.1", 5353),
        b"lo-udp",
    );
    assert!(received(&rx, b"lo-udp").is_some(), "udp on 127.0.0.1");
    for k in [
        Scope::All,
        Scope::Default,
        Scope::dev("uplink"),
        Scope::dev("lo"),
    ] {
        let key = Sysctl::RouteLocalnet(k);
        assert_eq!(key.get(s.host()).unwrap(), "0", "{key}");
    }
    let br = Sysctl::RouteLocalnet(Scope::dev("br9"));
    assert_eq!(br.get(s.host()).unwrap(), "1", "{br}");
    // Not from the LAN, neither through the host's address nor as 127.0.0.1 on the wire.
    assert_eq!(common::call_peer(&outside, sa("192.0.2.1", 8086)), None);
    let (_, up_mac) = raw::nic(s.host(), "uplink");
    let (_, out_mac) = raw::nic(&outside, "eth0");
    let out_ip = Ipv4Addr::new(192, 0, 2, 2);
    let udp = raw::udp(out_ip, Ipv4Addr::LOCALHOST, 40000, 5353, b"lan");
    let f = raw::ipv4_frame(up_mac, out_mac, out_ip, Ipv4Addr::LOCALHOST, 17, &udp);
    raw::send(&outside, "eth0", &f);
    assert_eq!(received(&rx, b"lan"), None, "127.0.0.1 on the LAN's wire");
    // Nor from a container, although its bridge has route_localnet: not the published
    // port, and not a service of the host's own on 127.0.0.1.
    let own = udp_server(s.host(), sa("127.0.0.1", 5399));
    let (_, br_mac) = raw::nic(s.host(), "br9");
    let (_, p_mac) = raw::nic(&peer, "eth0");
    let p_ip = Ipv4Addr::new(10, 79, 0, 3);
    for (port, marker, rx, what) in [
        (5353, b"c-pub", &rx, "published"),
        (5399, b"c-own", &own, "host's own"),
    ] {
        let udp = raw::udp(p_ip, Ipv4Addr::LOCALHOST, 40000, port, marker);
        let f = raw::ipv4_frame(br_mac, p_mac, p_ip, Ipv4Addr::LOCALHOST, 17, &udp);
        raw::send(&peer, "eth0", &f);
        assert_eq!(
            received(rx, marker),
            None,
            "127.0.0.1 from a container: {what}"
        );
    }
    // The control: the host's own service answers on 127.0.0.1.
    udp_send(s.host(), sa("127.0.0.1", 0), sa("127.0.0.1", 5399), b"ctl");
    assert!(received(&own, b"ctl").is_some());
}

fn containers_on_different_networks_cannot_reach_each_other(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    bridge(&mut w.rtnl, "br1", "10.78.0.1/24", None);
    let c4 = container(&mut w.rtnl, "br1", 4, "10.78.0.2", None);
    let net1 = NetworkRules::new("net1", "br1").subnet("10.78.0.0/24".parse().unwrap());
    w.fw.add_network(&net0()).unwrap();
    w.fw.add_network(&net1).unwrap();
    common::serve_peer(&c4, sa("0.0.0.0", 80));
    common::serve_peer(&w.c[0], sa("0.0.0.0", 80));
    let rx4 = udp_server(&c4, sa("0.0.0.0", 53));
    let rx1 = udp_server(&w.c[0], sa("0.0.0.0", 53));
    // The control: same network, and the outside, work.
    assert!(common::call_peer(&w.c[1], sa("10.77.0.2", 80)).is_some());
    let port = common::serve_peer(&w.outside, sa("0.0.0.0", 0));
    assert!(common::call_peer(&c4, sa("192.0.2.2", port)).is_some());
    assert_eq!(common::call_peer(&w.c[0], sa("10.78.0.2", 80)), None);
    assert_eq!(common::call_peer(&c4, sa("10.77.0.2", 80)), None);
    udp_send(&w.c[0], sa("0.0.0.0", 0), sa("10.78.0.2", 53), b"0to1");
    assert_eq!(received(&rx4, b"0to1"), None);
    udp_send(&c4, sa("0.0.0.0", 0), sa("10.77.0.2", 53), b"1to0");
    assert_eq!(received(&rx1, b"1to0"), None);
    // ICC off on one of them changes nothing between them.
    w.fw.add_network(&net0().icc(false)).unwrap();
    assert_eq!(common::call_peer(&c4, sa("10.77.0.2", 80)), None);
    assert_eq!(common::call_peer(&w.c[0], sa("10.78.0.2", 80)), None);
}

fn a_container_cannot_pose_as_another_to_pass_a_link(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    let link = |from: &str, to: &str, port| LinkAllow {
        from: ip(from),
        to: ip(to),
        proto: Proto::Udp,
        port,
    };
    let mut net = net0()
        .icc(false)
        .link(link("10.77.0.2", "10.77.0.3", 5353))
        .link(link("fd77::2", "fd77::3", 5354));
    for (dev, addrs) in [
        ("vethbr01", ["10.77.0.2", "fd77::2"]),
        ("vethbr02", ["10.77.0.3", "fd77::3"]),
        ("vethbr03", ["10.77.0.4", "fd77::4"]),
    ] {
        for a in addrs {
            net = net.endpoint(dev, ip(a));
        }
    }
    w.fw.add_network(&net).unwrap();
    let rx4 = udp_server(&w.c[1], sa("0.0.0.0", 5353));
    let rx6 = udp_server(&w.c[1], sa("::", 5354));
    let (_, c2_mac) = raw::nic(&w.c[1], "eth0");
    // With ICC off, neighbour discovery between two containers is dropped like any other
    // ICMPv6 between them (as with Docker): c1 knows c2's MAC without asking.
    let mut r1 = Rtnl::open_in(&w.c[0]).unwrap();
    let e1 = r1.link("eth0").unwrap();
    r1.execute(&Neigh::new(&e1, ip("fd77::3"), c2_mac.into()))
        .unwrap();
    // The link works for c1, and c3 has no allowance of its own.
    udp_send(&w.c[0], sa("10.77.0.2", 0), sa("10.77.0.3", 5353), b"c1");
    assert!(received(&rx4, b"c1").is_some(), "the link allows c1");
    udp_send(&w.c[0], sa("fd77::2", 0), sa("fd77::3", 5354), b"c1v6");
    assert!(received(&rx6, b"c1v6").is_some(), "the IPv6 link allows c1");
    udp_send(&w.c[2], sa("10.77.0.4", 0), sa("10.77.0.3", 5353), b"c3");
    assert_eq!(received(&rx4, b"c3"), None, "icc off stops c3");
    // c3 takes c1's addresses (as a container with CAP_NET_RAW could forge them) and
    // knows c2's MAC without asking.
    let mut r3 = Rtnl::open_in(&w.c[2]).unwrap();
    let eth0 = r3.link("eth0").unwrap();
    r3.execute(&Addr::new(&eth0, "10.77.0.2/32".parse().unwrap()))
        .unwrap();
    r3.execute(&Addr::new(&eth0, "fd77::2/128".parse().unwrap()).nodad())
        .unwrap();
    for a in ["10.77.0.3", "fd77::3"] {
        r3.execute(&Neigh::new(&eth0, ip(a), c2_mac.into()))
            .unwrap();
    }
    udp_send(&w.c[2], sa("10.77.0.2", 0), sa("10.77.0.3", 5353), b"spoof");
    assert_eq!(
        received(&rx4, b"spoof"),
        None,
        "c3 posing as c1 must not pass c1's link"
    );
    udp_send(&w.c[2], sa("fd77::2", 0), sa("fd77::3", 5354), b"spoof6");
    assert_eq!(received(&rx6, b"spoof6"), None, "nor over IPv6");
    // c1 itself still passes.
    udp_send(
        &w.c[0],
        sa("10.77.0.2", 0),
        sa("10.77.0.3", 5353),
        b"c1-again",
    );
    assert!(received(&rx4, b"c1-again").is_some());
    // The guard is part of what a repair puts back after someone else's flush.
    let flushed = match backend {
        Backend::Nftables => common::witness_in(&w.host, "nft", &["flush", "ruleset"]),
        _ => common::witness_in(&w.host, "iptables", &["-F", "FORWARD"])
            .and_then(|_| common::witness_in(&w.host, "ip6tables", &["-F", "FORWARD"])),
    };
    if flushed.is_some() {
        let fixed = w.fw.repair(std::slice::from_ref(&net), &[]).unwrap();
        assert_eq!(fixed.networks, ["net0"], "{fixed}");
        udp_send(
            &w.c[2],
            sa("10.77.0.2", 0),
            sa("10.77.0.3", 5353),
            b"spoof-r",
        );
        assert_eq!(received(&rx4, b"spoof-r"), None, "repaired guard");
        udp_send(&w.c[0], sa("10.77.0.2", 0), sa("10.77.0.3", 5353), b"c1-r");
        assert!(received(&rx4, b"c1-r").is_some());
        assert!(w.fw.repair(&[net], &[]).unwrap().is_empty());
    }
    // ICC on: nothing is enforced, and the guard's table goes with its last element;
    // removing the network removes its guard.
    w.fw.add_network(&net0().endpoint("vethbr01", ip("10.77.0.2")))
        .unwrap();
    if backend == Backend::Nftables {
        if let Some(l) = common::witness_in(&w.host, "nft", &["list", "tables"]) {
            assert!(!l.contains("table bridge netplumb"), "{l}");
        }
        w.fw.add_network(&net0().icc(false).endpoint("vethbr01", ip("10.77.0.2")))
            .unwrap();
        if let Some(l) =
            common::witness_in(&w.host, "nft", &["list", "table", "bridge", "netplumb"])
        {
            assert!(l.contains("elements"), "{l}");
            assert!(l.contains("iifname . ip saddr != @owners4 drop"), "{l}");
        }
        w.fw.remove_network("net0").unwrap();
        if let Some(l) = common::witness_in(&w.host, "nft", &["list", "tables"]) {
            assert!(!l.contains("table bridge netplumb"), "{l}");
        }
    }
}

fn conntrack_invalid_packets_are_not_forwarded(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    w.fw.add_network(&net0()).unwrap();
    let (c1, c2) = (Ipv4Addr::new(10, 77, 0, 2), Ipv4Addr::new(10, 77, 0, 3));
    let (_, c1_mac) = raw::nic(&w.c[0], "eth0");
    let (_, c2_mac) = raw::nic(&w.c[1], "eth0");
    let (_, br_mac) = raw::nic(&w.host, "br0");
    let outside = Ipv4Addr::new(192, 0, 2, 2);
    // Between two containers (bridged, ICC on) and out through the host (routed).
    let paths = [
        ("c1 -> c2", c2_mac, c2, &w.c[1]),
        ("c1 -> outside", br_mac, outside, &w.outside),
    ];
    for (what, mac, dst, to) in paths {
        let cap = raw::Capture::open(to, "eth0");
        let frame = |flags: u8, marker: &[u8]| {
            let tcp = raw::tcp(c1, dst, 40001, 9, flags, marker);
            raw::ipv4_frame(mac, c1_mac, c1, dst, 6, &tcp)
        };
        raw::send(&w.c[0], "eth0", &frame(raw::SYN, b"np-valid-syn"));
        assert!(cap.saw(b"np-valid-syn"), "{what}: a valid SYN passes");
        raw::send(&w.c[0], "eth0", &frame(raw::SYN | raw::FIN, b"np-syn-fin"));
        assert!(
            !cap.saw(b"np-syn-fin"),
            "{what}: a conntrack-invalid packet (SYN+FIN) is dropped"
        );
    }
}

/// Raw Ethernet frames: sending crafted IPv4 packets, and seeing what arrives.
mod raw {
    #![allow(unsafe_code)]

    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant};

    use netplumb::{Netns, Rtnl};
    use nix::libc;

    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    const ETH_P_ALL: u16 = 0x0003;

    /// The index and MAC of link `name` in `ns`.
    pub fn nic(ns: &Netns, name: &str) -> (u32, [u8; 6]) {
        let l = Rtnl::open_in(ns).unwrap().link(name).unwrap();
        (l.index, l.mac.unwrap().octets())
    }

    fn packet_socket(ifindex: u32) -> libc::c_int {
        crate::common::raw::packet_socket(ifindex, ETH_P_ALL, Duration::from_millis(200))
    }

    /// Sends `frame` on link `name` of `ns`, twice.
    pub fn send(ns: &Netns, name: &str, frame: &[u8]) {
        let (idx, _) = nic(ns, name);
        let fd = ns.run(|| packet_socket(idx)).unwrap();
        // SAFETY: the buffer outlives the call; the fd is ours and closed below.
        unsafe {
            for _ in 0..2 {
                let n = libc::send(fd, frame.as_ptr() as *const libc::c_void, frame.len(), 0);
                assert_eq!(n, frame.len() as isize, "send raw frame");
                std::thread::sleep(Duration::from_millis(20));
            }
            libc::close(fd);
        }
    }

    /// Frames arriving on one link, from the moment it is opened.
    pub struct Capture(libc::c_int);

    impl Capture {
        pub fn open(ns: &Netns, name: &str) -> Capture {
            let (idx, _) = nic(ns, name);
            Capture(ns.run(|| packet_socket(idx)).unwrap())
        }

        /// Whether a frame containing `marker` arrives within a second.
        pub fn saw(&self, marker: &[u8]) -> bool {
            let deadline = Instant::now() + Duration::from_secs(1);
            let mut buf = [0u8; 2048];
            while Instant::now() < deadline {
                // SAFETY: the buffer outlives the call; the fd is ours.
                let n = unsafe {
                    libc::recv(self.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0)
                };
                if n > 0 && buf[..n as usize].windows(marker.len()).any(|w| w == marker) {
                    return true;
                }
            }
            false
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            // SAFETY: the fd is ours.
            unsafe { libc::close(self.0) };
        }
    }

    fn checksum(data: &[u8], mut sum: u32) -> u16 {
        for c in data.chunks(2) {
            let w = u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]);
            sum += u32::from(w);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn pseudo(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> u32 {
        let mut p = Vec::new();
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&[0, proto]);
        p.extend_from_slice(&(len as u16).to_be_bytes());
        p.chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum()
    }

    /// A UDP datagram (header and payload) with its checksum.
    pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
        let len = 8 + data.len();
        let mut u = Vec::with_capacity(len);
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&dport.to_be_bytes());
        u.extend_from_slice(&(len as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(data);
        let c = checksum(&u, pseudo(src, dst, 17, len));
        u[6..8].copy_from_slice(&c.to_be_bytes());
        u
    }

    /// A TCP segment with `flags` and `data`, with its checksum.
    pub fn tcp(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        flags: u8,
        data: &[u8],
    ) -> Vec<u8> {
        let mut t = Vec::with_capacity(20 + data.len());
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&dport.to_be_bytes());
        t.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(&[5 << 4, flags]);
        t.extend_from_slice(&64240u16.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(data);
        let c = checksum(&t, pseudo(src, dst, 6, t.len()));
        t[16..18].copy_from_slice(&c.to_be_bytes());
        t
    }

    /// An Ethernet frame carrying an IPv4 packet with `l4` as its payload.
    pub fn ipv4_frame(
        dst_mac: [u8; 6],
        src_mac: [u8; 6],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        l4: &[u8],
    ) -> Vec<u8> {
        let mut ip = Vec::with_capacity(20 + l4.len());
        ip.extend_from_slice(&[0x45, 0]);
        ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
        ip.extend_from_slice(&src.octets());
        ip.extend_from_slice(&dst.octets());
        let c = checksum(&ip, 0);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        ip.extend_from_slice(l4);
        let mut f = Vec::with_capacity(14 + ip.len());
        f.extend_from_slice(&dst_mac);
        f.extend_from_slice(&src_mac);
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        f.extend_from_slice(&ip);
        f
    }
}
