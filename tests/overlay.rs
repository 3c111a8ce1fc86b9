//! Docker's overlay driver (scenarios I1–I3) through `overlay::Overlay`, against the real
//! kernel: three simulated hosts (namespaces on one underlay bridge, 192.168.99.1–3/24,
//! MTU 1500) sharing one `StaticPeers` and one in-memory IPAM store (the cluster store),
//! each with its own `network::Host`.

#![cfg(feature = "store")]

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netplumb::addr::Addr;
#[cfg(feature = "_fault-injection")]
use netplumb::fault;
use netplumb::firewall::{Firewall, NetworkRules, Nftables, VxlanGuard};
use netplumb::ipam::{Ipam, MemoryStore};
use netplumb::link::{MacAddr, Vxlan};
use netplumb::neigh::{Fdb, Neigh};
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host};
use netplumb::overlay::{
    Overlay, OverlayAttachment, OverlayNetwork, OverlayWatch, PeerDiscovery, PeerHost, StaticPeers,
    GWBRIDGE_NETWORK,
};
use netplumb::{Error, Netns, Rtnl};

type Ov = Overlay<Arc<MemoryStore>>;

/// The guard's nf_tables table.
const GUARD_TABLE: &str = "netplumb_vxlan";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ov1() -> OverlayNetwork {
    OverlayNetwork::new("ov1", "10.0.9.0/24".parse().unwrap()).vni(256)
}

/// A machine on the underlay segment: `eth0` has `addr`/24.
fn machine(s: &Sandbox, name: &str, addr: &str) -> Netns {
    common::underlay_machine(s, name, &format!("{addr}/24"))
}

struct Node {
    ns: Netns,
    ov: Ov,
    _dir: common::TempDir,
}

struct Cluster {
    nodes: Vec<Node>,
    peers: StaticPeers,
    store: Arc<MemoryStore>,
}

/// `n` hosts h1.. at 192.168.99.1.., each with its own `Host` and `Overlay`, sharing one
/// discovery list and one IPAM store; `ov1` created from every host (idempotent).
fn cluster(s: &Sandbox, n: usize) -> Cluster {
    let peers = StaticPeers::new();
    let store = Arc::new(MemoryStore::new());
    let mut nodes = Vec::new();
    for i in 1..=n {
        let (id, underlay) = (format!("h{i}"), format!("192.168.99.{i}"));
        let ns = machine(s, &id, &underlay);
        let dir = common::TempDir::new("overlay");
        let mut host = Host::open_in(&ns, &dir.0).unwrap();
        // The bridge driver keeps its firewall skeleton (base chains) once made, as Docker
        // keeps its chains; make it now so that before/after comparisons see only ours.
        let warmup = NetworkRules::new("warmup", "none0").subnet("10.99.0.0/24".parse().unwrap());
        host.firewall().add_network(&warmup).unwrap();
        host.firewall().remove_network("warmup").unwrap();
        let me = PeerHost {
            id,
            underlay: ip(&underlay),
        };
        let discovery: Arc<dyn PeerDiscovery> = Arc::new(peers.clone());
        let mut ov = Overlay::new(host, me, Ipam::new(store.clone()), discovery).unwrap();
        ov.create_network(&ov1()).unwrap();
        nodes.push(Node { ns, ov, _dir: dir });
    }
    Cluster {
        nodes,
        peers,
        store,
    }
}

impl Cluster {
    fn watch(&self) -> Vec<OverlayWatch> {
        self.nodes
            .iter()
            .map(|n| n.ov.watch(&ov1()).unwrap())
            .collect()
    }

    /// Connects a fresh container namespace `id` on host `i` (0-based). Keep the namespace:
    /// dropping it deletes the container's interfaces.
    fn run(&mut self, i: usize, id: &str) -> (Netns, OverlayAttachment) {
        let ns = Netns::new().unwrap();
        let att = self.nodes[i]
            .ov
            .connect(&ov1(), &Container::new(id, &ns))
            .unwrap();
        (ns, att)
    }

    fn leases(&self) -> usize {
        Ipam::new(self.store.clone()).leases("ov1").unwrap().len()
    }
}

/// Polls `f` until it holds, for at most a generous deadline.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not reached in time");
}

/// The overlay state of a host, read back from the kernel: FDB `(mac, dst)`, permanent
/// neighbours `(ip, mac)` of the VXLAN device, and the guard's peers of VNI 256.
type Entries = (
    BTreeSet<(MacAddr, IpAddr)>,
    BTreeSet<(IpAddr, MacAddr)>,
    BTreeSet<IpAddr>,
);

fn entries(ns: &Netns) -> Entries {
    let mut r = Rtnl::open_in(ns).unwrap();
    let Ok(vx) = r.link(ov1().vxlan_name().as_str()) else {
        return Default::default();
    };
    let fdb = r
        .fdb(&vx)
        .unwrap()
        .into_iter()
        .filter_map(|n| Some((n.mac?, n.dst?)))
        .collect();
    let neigh = r
        .neighs(&vx)
        .unwrap()
        .into_iter()
        .filter(|n| n.state & 0x80 != 0)
        .filter_map(|n| Some((n.dst?, n.mac?)))
        .collect();
    let peers = VxlanGuard::open(ns)
        .unwrap()
        .peers()
        .unwrap()
        .into_iter()
        .filter(|(v, _)| *v == 256)
        .map(|(_, p)| p)
        .collect();
    (fdb, neigh, peers)
}

/// What host `me` (1-based) should have when `remotes` are the other hosts (1-based) and
/// `ctrs` their containers' addresses.
fn expected(remotes: &[u8], ctrs: &[(u8, &str)]) -> Entries {
    let under = |h: u8| IpAddr::from([192, 168, 99, h]);
    let mac = |a: &str| match ip(a) {
        IpAddr::V4(v) => {
            let o = v.octets();
            MacAddr([2, 0x42, o[0], o[1], o[2], o[3]])
        }
        IpAddr::V6(_) => unreachable!(),
    };
    let mut e = Entries::default();
    for &h in remotes {
        e.0.insert((MacAddr([0; 6]), under(h)));
        e.2.insert(under(h));
    }
    for &(h, a) in ctrs {
        e.0.insert((mac(a), under(h)));
        e.1.insert((ip(a), mac(a)));
    }
    e
}

/// Runs `ip ARGS` inside `ns` (an independent witness) and returns its output.
fn ip_cmd(ns: &Netns, args: &[&str]) -> String {
    let out = ns
        .run(|| Command::new("ip").args(args).output())
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bridge_cmd(ns: &Netns, args: &[&str]) -> String {
    let out = ns
        .run(|| Command::new("bridge").args(args).output())
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tcp(server: &Netns, at: &str, client: &Netns) -> bool {
    common::tcp_reaches(server, SocketAddr::new(ip(at), 0), client)
}

/// The VXLAN device and bridge of h1, as the kernel (and `ip`, a witness) reports them.
fn check_devices(h1ns: &Netns, a1: &OverlayAttachment) {
    let mut h1 = Rtnl::open_in(h1ns).unwrap();
    let vx = h1.link("vx-000100").unwrap();
    let info = vx.vxlan.unwrap();
    assert_eq!((info.vni, info.port, info.learning), (256, 4789, false));
    assert_eq!(info.local, Some(ip("192.168.99.1")));
    assert_eq!(vx.mtu, 1450);
    assert!(vx.is_up());
    let br = h1.link("ov-000100").unwrap();
    assert_eq!(vx.controller, Some(br.index));
    assert_eq!(
        h1.link(a1.host_veth.as_str()).unwrap().controller,
        Some(br.index)
    );
    let br_addrs = h1.addrs(Some((&br).into())).unwrap();
    assert!(
        br_addrs.is_empty(),
        "the overlay bridge is pure L2, no IPv6 link-local either: {br_addrs:?}"
    );
    // As a bridge network's links: no multicast snooping, no IPv6 stack on an IPv4
    // overlay's bridge, VXLAN device and host veths.
    let shown = ip_cmd(h1ns, &["-d", "link", "show", "dev", "ov-000100"]);
    assert!(shown.contains("mcast_snooping 0"), "{shown}");
    for dev in ["ov-000100", "vx-000100", a1.host_veth.as_str()] {
        let path = format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
        let v = h1ns
            .run(|| std::fs::read_to_string(&path))
            .unwrap()
            .unwrap();
        assert_eq!(v.trim(), "1", "{dev}");
    }
    let shown = ip_cmd(h1ns, &["-d", "link", "show", "dev", "vx-000100"]);
    for word in [
        "vxlan id 256",
        "local 192.168.99.1 dev eth0",
        "dstport 4789",
        "nolearning",
        "proxy",
    ] {
        assert!(shown.contains(word), "{word:?} missing from: {shown}");
    }
}

#[test]
fn containers_on_three_hosts_talk_over_vxlan() {
    common::sandbox("containers_on_three_hosts_talk_over_vxlan", |s| {
        let mut c = cluster(s, 3);
        let _w = c.watch();
        let (n1, a1) = c.run(0, "c1");
        let (n2, a2) = c.run(1, "c2");
        let (n3, a3) = c.run(2, "c3");
        assert_eq!(
            a1.addr,
            "10.0.9.2/24".parse().unwrap(),
            "gateway .1 reserved"
        );
        assert_eq!(
            a2.addr,
            "10.0.9.3/24".parse().unwrap(),
            "one IPAM for all hosts"
        );
        assert_eq!(a3.addr, "10.0.9.4/24".parse().unwrap());
        assert_eq!(a1.mac.to_string(), "02:42:0a:00:09:02");
        assert_eq!((a1.mtu, a1.vni, a1.ifname.as_str()), (1450, 256, "eth0"));

        // The container's interface as the kernel reports it.
        let mut r1 = Rtnl::open_in(&n1).unwrap();
        let eth0 = r1.link("eth0").unwrap();
        assert_eq!(eth0.mtu, 1450);
        assert_eq!(eth0.mac.unwrap().to_string(), "02:42:0a:00:09:02");

        check_devices(&c.nodes[0].ns, &a1);

        // Every host converges on entries for the other two hosts and their containers.
        let all = [(1, "10.0.9.2"), (2, "10.0.9.3"), (3, "10.0.9.4")];
        for (i, node) in c.nodes.iter().enumerate() {
            let me = i as u8 + 1;
            let remotes: Vec<u8> = (1..=3).filter(|h| *h != me).collect();
            let ctrs: Vec<(u8, &str)> = all.iter().copied().filter(|(h, _)| *h != me).collect();
            let want = expected(&remotes, &ctrs);
            eventually(&format!("h{me} entries"), || entries(&node.ns) == want);
        }
        let fdb = bridge_cmd(&c.nodes[0].ns, &["fdb", "show", "dev", "vx-000100"]);
        assert!(
            fdb.contains("00:00:00:00:00:00 dst 192.168.99.2")
                && fdb.contains("02:42:0a:00:09:04 dst 192.168.99.3"),
            "{fdb}"
        );
        let neigh = ip_cmd(&c.nodes[0].ns, &["neigh", "show", "dev", "vx-000100"]);
        assert!(
            neigh.contains("10.0.9.3 lladdr 02:42:0a:00:09:03 PERMANENT"),
            "{neigh}"
        );

        // Real traffic, both ways, between every pair of hosts.
        assert!(tcp(&n2, "10.0.9.3", &n1), "h1 -> h2");
        assert!(tcp(&n1, "10.0.9.2", &n2), "h2 -> h1");
        assert!(tcp(&n3, "10.0.9.4", &n1), "h1 -> h3");
        assert!(tcp(&n2, "10.0.9.3", &n3), "h3 -> h2");

        // Connecting again returns the same attachment.
        let again = c.nodes[0]
            .ov
            .connect(&ov1(), &Container::new("c1", &n1))
            .unwrap();
        assert_eq!(again, a1);
    });
}

#[test]
fn the_gateway_bridge_is_the_way_out() {
    common::sandbox("the_gateway_bridge_is_the_way_out", |s| {
        let mut c = cluster(s, 2);
        let outside = machine(s, "outside", "192.168.99.10");
        let (n1, a1) = c.run(0, "c1");
        let (_n2, _a2) = c.run(1, "c2");
        assert_eq!(a1.gateway.ifname, "eth1");
        let gw = c.nodes[0].ov.host().network(GWBRIDGE_NETWORK).unwrap();
        assert_eq!(gw.bridge, "docker_gwbridge");
        assert!(gw.masquerade && !gw.icc);

        // Only the overlay subnet goes over eth0; everything else leaves through eth1.
        let mut r1 = Rtnl::open_in(&n1).unwrap();
        let (eth0, eth1) = (r1.link("eth0").unwrap(), r1.link("eth1").unwrap());
        let routes = r1.main_routes().unwrap();
        let v4: Vec<_> = routes.iter().filter(|r| r.dst.addr().is_ipv4()).collect();
        assert!(v4
            .iter()
            .any(|r| r.dst == "10.0.9.0/24".parse().unwrap() && r.oif == Some(eth0.index)));
        let defaults: Vec<_> = v4.iter().filter(|r| r.is_default()).collect();
        assert_eq!(defaults.len(), 1, "{routes:?}");
        assert_eq!(defaults[0].oif, Some(eth1.index));
        assert_eq!(defaults[0].via, Some(gw.gateways[0]));
        assert!(
            v4.iter()
                .filter(|r| r.oif == Some(eth0.index))
                .all(|r| !r.is_default()),
            "no default route on the overlay"
        );

        // The outside server sees the host's underlay address (masquerade on the way out).
        let port = common::serve_peer(&outside, "0.0.0.0:0".parse().unwrap());
        assert_eq!(
            common::call_peer(&n1, SocketAddr::new(ip("192.168.99.10"), port)).as_deref(),
            Some("192.168.99.1")
        );
    });
}

/// Sends a few datagrams from `from` to `to` and says whether `sock` got one.
fn udp_arrives(from: &Netns, to: SocketAddr, sock: &UdpSocket) -> bool {
    for _ in 0..3 {
        common::udp_send_error(from, to);
        let mut b = [0u8; 16];
        if sock.recv(&mut b).is_ok() {
            while sock.recv(&mut b).is_ok() {} // drain the rest
            return true;
        }
    }
    false
}

#[test]
fn a_rogue_vxlan_endpoint_cannot_inject_frames() {
    common::sandbox("a_rogue_vxlan_endpoint_cannot_inject_frames", |s| {
        let mut c = cluster(s, 2);
        let (n1, a1) = c.run(0, "c1");
        let (n2, _a2) = c.run(1, "c2");
        c.nodes[0].ov.sync(&ov1()).unwrap();
        // A machine on the underlay with a VXLAN device of the same VNI aimed at h1, and
        // c1's MAC written in by hand (it needs no ARP to send).
        let rogue = machine(s, "rogue", "192.168.99.66");
        let mut rr = Rtnl::open_in(&rogue).unwrap();
        rr.execute(
            &Vxlan::new("vx", 256)
                .port(4789)
                .local(ip("192.168.99.66"))
                .learning(false)
                .up(),
        )
        .unwrap();
        let vx = rr.link("vx").unwrap();
        rr.execute(&Addr::new(&vx, "10.0.9.200/24".parse().unwrap()))
            .unwrap();
        rr.execute(&Fdb::new(&vx, MacAddr([0; 6])).dst(ip("192.168.99.1")))
            .unwrap();
        rr.execute(&Neigh::new(&vx, ip("10.0.9.2"), a1.mac))
            .unwrap();

        let sock = n1.run(|| UdpSocket::bind("0.0.0.0:0")).unwrap().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let to = SocketAddr::new(ip("10.0.9.2"), sock.local_addr().unwrap().port());
        assert!(
            udp_arrives(&n2, to, &sock),
            "a registered peer gets through"
        );
        assert!(!udp_arrives(&rogue, to, &sock), "the rogue is dropped");
        // The control: allowed by hand, the same datagrams do arrive, so it is the guard
        // that stops them.
        let mut g = VxlanGuard::open(&c.nodes[0].ns).unwrap();
        g.allow(256, ip("192.168.99.66")).unwrap();
        assert!(
            udp_arrives(&rogue, to, &sock),
            "allowed, the rogue gets through"
        );
        g.revoke(256, ip("192.168.99.66")).unwrap();
        assert!(!udp_arrives(&rogue, to, &sock), "revoked again");
    });
}

#[test]
fn watchers_forget_a_host_that_leaves() {
    common::sandbox("watchers_forget_a_host_that_leaves", |s| {
        let mut c = cluster(s, 3);
        let _w = c.watch();
        let (_n1, _) = c.run(0, "c1");
        let (_n2, _) = c.run(1, "c2");
        let (_n3, _) = c.run(2, "c3");
        let (h1, h2) = (c.nodes[0].ns.clone(), c.nodes[1].ns.clone());
        let h3: IpAddr = ip("192.168.99.3");
        eventually("h1 knows h2 and h3", || {
            entries(&h1) == expected(&[2, 3], &[(2, "10.0.9.3"), (3, "10.0.9.4")])
        });
        // h3 drops out of discovery (its registration expired, say).
        c.peers.leave("ov1", "h3").unwrap();
        for (ns, want) in [
            (&h1, expected(&[2], &[(2, "10.0.9.3")])),
            (&h2, expected(&[1], &[(1, "10.0.9.2")])),
        ] {
            eventually("h3's entries and allowance removed", || entries(ns) == want);
            let (fdb, neigh, peers) = entries(ns);
            assert!(fdb.iter().all(|(_, d)| *d != h3) && !peers.contains(&h3));
            assert!(neigh.iter().all(|(a, _)| *a != ip("10.0.9.4")));
        }
        // h2's last container leaves: h1 forgets h2 too, and h2 takes the network down.
        c.nodes[1].ov.disconnect(&ov1(), "c2").unwrap();
        eventually("h2 removed from h1", || entries(&h1) == Entries::default());
        let mut r2 = Rtnl::open_in(&h2).unwrap();
        assert!(r2.link("vx-000100").is_err() && r2.link("ov-000100").is_err());
        // Whether a host still has containers is the kernel's word, not discovery's: h3
        // (no longer listed) keeps the network while one of its containers remains.
        let (_n4, _) = c.run(2, "c4");
        c.nodes[2].ov.disconnect(&ov1(), "c3").unwrap();
        let mut r3 = Rtnl::open_in(&c.nodes[2].ns).unwrap();
        assert!(r3.link("vx-000100").is_ok(), "c4 still uses it");
        c.nodes[2].ov.disconnect(&ov1(), "c4").unwrap();
        assert!(r3.link("vx-000100").is_err() && r3.link("ov-000100").is_err());
    });
}

/// Everything an overlay connect may change on one host, as text.
fn snapshot(ov: &mut Ov, peers: &StaticPeers) -> String {
    let ns = ov.host().netns().clone();
    let h = ov.host_mut();
    let links = h.rtnl().links().unwrap();
    let names: Vec<String> = links
        .iter()
        .map(|l| format!("{} {:?} {:?} {}", l.name, l.kind, l.controller, l.mtu))
        .collect();
    let mut fdb = Vec::new();
    let mut neigh = Vec::new();
    for l in &links {
        // Multicast entries follow IPv6 addresses, which the kernel adds by itself, and
        // bridges learn (and forget) MACs by themselves.
        fdb.extend(
            h.rtnl()
                .fdb(l)
                .unwrap()
                .into_iter()
                .filter(|n| n.mac.is_some_and(|m| !m.is_multicast()))
                .filter(|n| n.state & 0x80 != 0) // learned entries come and go
                .map(|n| format!("{n:?}")),
        );
        neigh.extend(
            h.rtnl()
                .neighs(l)
                .unwrap()
                .into_iter()
                .filter(|n| n.state & 0x80 != 0)
                .map(|n| format!("{n:?}")),
        );
    }
    let (addrs, routes) = common::addrs_and_routes(h.rtnl());
    let fw = format!("{:?}", h.firewall().state().unwrap());
    let guard = format!(
        "{:?}",
        Nftables::open_in(&ns)
            .unwrap()
            .with_table(GUARD_TABLE)
            .state()
            .unwrap()
    );
    let nets: Vec<String> = h.networks().unwrap().into_iter().map(|n| n.name).collect();
    let atts = h.attachments(None).unwrap().len();
    let leases = ov.ipam().leases("ov1").unwrap().len();
    let view = peers.view("ov1").unwrap();
    format!(
        "links {names:?}\nfdb {fdb:?}\nneigh {neigh:?}\naddrs {addrs:?}\nroutes {routes:?}\n\
         fw {fw}\nguard {guard}\nnets {nets:?} atts {atts}\nleases {leases}\n\
         peers {:?} {:?}",
        view.hosts, view.endpoints
    )
}

#[test]
fn disconnecting_everything_leaves_the_hosts_as_before() {
    common::sandbox("disconnecting_everything_leaves_the_hosts_as_before", |s| {
        let mut c = cluster(s, 2);
        let peers = c.peers.clone();
        let before: Vec<String> = c
            .nodes
            .iter_mut()
            .map(|n| snapshot(&mut n.ov, &peers))
            .collect();
        let w = c.watch();
        let (n1, _) = c.run(0, "c1");
        let (n2, _) = c.run(0, "c2");
        let (n3, _) = c.run(1, "c3");
        eventually("h1 knows c3", || {
            entries(&c.nodes[0].ns)
                .1
                .contains(&(ip("10.0.9.4"), MacAddr([2, 0x42, 10, 0, 9, 4])))
        });
        assert!(tcp(&n3, "10.0.9.4", &n1));
        assert!(tcp(&n1, "10.0.9.2", &n2), "two containers of one host");
        assert_eq!(c.leases(), 3);
        for (i, id) in [(0, "c1"), (0, "c2"), (1, "c3")] {
            c.nodes[i].ov.disconnect(&ov1(), id).unwrap();
            c.nodes[i].ov.disconnect(&ov1(), id).unwrap(); // idempotent
        }
        drop(w);
        for (i, n) in c.nodes.iter_mut().enumerate() {
            assert_eq!(snapshot(&mut n.ov, &peers), before[i], "h{} changed", i + 1);
        }
        assert_eq!(c.leases(), 0);
        c.nodes[0].ov.remove_network("ov1").unwrap();
        c.nodes[1].ov.remove_network("ov1").unwrap(); // idempotent
    });
}

/// Needs the test-only feature `_fault-injection`.
#[cfg(feature = "_fault-injection")]
#[test]
fn a_connect_failing_at_any_step_leaves_nothing_half_made() {
    common::sandbox(
        "a_connect_failing_at_any_step_leaves_nothing_half_made",
        |s| {
            let mut c = cluster(s, 2);
            let peers = c.peers.clone();
            // h2 has a container, so h1 has a peer to sync with.
            let (_n9, _) = c.run(1, "c9");
            let ov = &mut c.nodes[0].ov;
            let clean = snapshot(ov, &peers);

            // The container already has an eth0: the veth step fails.
            let taken = Netns::new().unwrap();
            Rtnl::open_in(&taken)
                .unwrap()
                .execute(&netplumb::link::Bridge::new("eth0"))
                .unwrap();
            let err = ov
                .connect(&ov1(), &Container::new("c0", &taken))
                .unwrap_err();
            assert!(err.is_exists(), "{err}");
            assert_eq!(snapshot(ov, &peers), clean, "after a taken eth0");

            // A fault at every step: first container of the network on this host, then a
            // second one.
            let mut steps = Vec::new();
            let mut alive = Vec::new(); // a dropped namespace takes its veths with it
            for id in ["c1", "c2"] {
                let ctr_ns = Netns::new().unwrap();
                alive.push(ctr_ns.clone());
                let ctr = Container::new(id, &ctr_ns);
                let base = snapshot(ov, &peers);
                for n in 0.. {
                    fault::fail_at(Some(n));
                    let r = ov.connect(&ov1(), &ctr);
                    fault::fail_at(None);
                    if r.is_ok() {
                        steps.push(n);
                        break;
                    }
                    let e = r.unwrap_err();
                    assert!(e.to_string().contains("injected fault"), "step {n}: {e}");
                    assert_eq!(snapshot(ov, &peers), base, "{id} failing at step {n}");
                    let inside = Rtnl::open_in(&ctr_ns).unwrap().links().unwrap();
                    assert_eq!(inside.len(), 1, "only lo in the container: {inside:?}");
                }
            }
            eprintln!("connect steps: first {}, second {}", steps[0], steps[1]);
            assert!(steps[0] > steps[1] && steps[1] >= 8, "{steps:?}");
            ov.disconnect(&ov1(), "c1").unwrap();
            ov.disconnect(&ov1(), "c2").unwrap();
            assert_eq!(snapshot(ov, &peers), clean);
        },
    );
}

#[test]
fn a_container_on_two_overlays_shares_one_way_out() {
    common::sandbox("a_container_on_two_overlays_shares_one_way_out", |s| {
        let mut c = cluster(s, 1);
        let ov2 = OverlayNetwork::new("ov2", "10.0.10.0/24".parse().unwrap()).vni(257);
        let h1 = c.nodes[0].ns.clone();
        let ov = &mut c.nodes[0].ov;
        ov.create_network(&ov2).unwrap();
        let ns = Netns::new().unwrap();
        let a = ov.connect(&ov1(), &Container::new("c1", &ns)).unwrap();
        let b = ov
            .connect(&ov2, &Container::new("c1", &ns).ifname("eth2"))
            .unwrap();
        assert_eq!(a.gateway, b.gateway, "one eth1 for both");
        assert_eq!(
            (a.vxlan.as_str(), b.vxlan.as_str()),
            ("vx-000100", "vx-000101")
        );
        let mut g = VxlanGuard::open(&h1).unwrap();
        assert_eq!(g.vnis().unwrap(), [256, 257]);
        let mut r = Rtnl::open_in(&ns).unwrap();
        ov.disconnect(&ov1(), "c1").unwrap();
        assert!(r.link("eth0").is_err());
        assert!(r.link("eth1").is_ok(), "ov2 still uses the way out");
        assert!(r.main_routes().unwrap().iter().any(|x| x.is_default()));
        assert_eq!(g.vnis().unwrap(), [257]);
        ov.disconnect(&ov2, "c1").unwrap();
        assert!(r.link("eth1").is_err() && r.link("eth2").is_err());
        assert!(ov.host().network(GWBRIDGE_NETWORK).is_err());
        let tables = Nftables::open_in(&h1)
            .unwrap()
            .with_table(GUARD_TABLE)
            .state()
            .unwrap();
        assert!(
            tables.families.is_empty(),
            "guard table removed: {tables:?}"
        );
    });
}

fn field(e: Error) -> &'static str {
    match e {
        Error::InvalidInput { field, .. } => field,
        e => panic!("expected invalid input, got {e}"),
    }
}

#[test]
fn bad_definitions_are_refused_naming_the_field() {
    let net = |s: &str| OverlayNetwork::new("ov1", s.parse().unwrap());
    let bad = [
        (
            OverlayNetwork::new("", "10.0.9.0/24".parse().unwrap()),
            "name",
        ),
        (
            OverlayNetwork::new("-x", "10.0.9.0/24".parse().unwrap()),
            "name",
        ),
        (net("10.0.9.1/24"), "subnet"),
        (net("10.0.9.0/31"), "subnet"),
        (net("10.0.9.0/24").gateway(ip("10.0.8.1")), "gateway"),
        (net("10.0.9.0/24").gateway(ip("10.0.9.0")), "gateway"),
        (net("10.0.9.0/24").vni(0), "vni"),
        (net("10.0.9.0/24").vni(1 << 24), "vni"),
        (net("10.0.9.0/24").mtu(20), "mtu"),
    ];
    for (n, f) in bad {
        assert_eq!(field(n.validate().unwrap_err()), f, "{n:?}");
    }
    common::sandbox("bad_definitions_are_refused_naming_the_field", |s| {
        let mut c = cluster(s, 1);
        let ov = &mut c.nodes[0].ov;
        let ns = Netns::new().unwrap();
        for (n, f) in [
            (net("10.0.9.0/24").vni(0), "vni"),
            (net("10.0.9.1/24"), "subnet"),
        ] {
            assert_eq!(field(ov.create_network(&n).unwrap_err()), f);
            assert_eq!(
                field(ov.connect(&n, &Container::new("x", &ns)).unwrap_err()),
                f
            );
        }
        // Same name, another subnet: refused.
        assert!(ov
            .create_network(&net("10.0.10.0/24"))
            .unwrap_err()
            .is_exists());
        // Not created anywhere.
        let ov2 = OverlayNetwork::new("ov2", "10.0.20.0/24".parse().unwrap());
        assert!(ov
            .connect(&ov2, &Container::new("x", &ns))
            .unwrap_err()
            .is_not_found());
        // An MTU that does not fit in the underlay's 1500 less VXLAN's 50.
        assert_eq!(
            field(
                ov.connect(&ov1().mtu(1460), &Container::new("x", &ns))
                    .unwrap_err()
            ),
            "mtu"
        );
        assert_eq!(
            field(
                ov.connect(&ov1(), &Container::new("x", &ns).ifname("eth1"))
                    .unwrap_err()
            ),
            "container interface"
        );
        assert_eq!(c.leases(), 0);
        assert!(Rtnl::open_in(&ns).unwrap().link("eth0").is_err());
    });
}
