//! Overlay networks shared through a real etcd (scenarios I1–I3): three simulated hosts
//! (namespaces on an underlay bridge) with their own etcd clients, the network created
//! through one of them and seen by all, traffic over VXLAN and out through the gateway
//! bridge, a host that dies and expires, concurrent creation, and etcd going away and
//! coming back. etcd runs inside each test's sandbox (tests/common/etcd.rs).
#![cfg(all(feature = "store", feature = "etcd"))]

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::etcd::{available, EtcdServer};
use netplumb::etcd::{Etcd, EtcdConfig};
use netplumb::ipam::{EtcdStore, Ipam};
use netplumb::neigh::Fdb;
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host};
use netplumb::overlay::{
    EtcdDiscovery, EtcdNetworks, Overlay, OverlayNetwork, OverlaySpec, OverlayWatch, PeerDiscovery,
    PeerHost,
};
use netplumb::{ErrorKind, Netns, Rtnl};

const TTL: Duration = Duration::from_secs(2);

/// A machine on the underlay: `eth0` = 192.168.99.`n`/24.
fn machine(s: &Sandbox, n: u8) -> Netns {
    common::underlay_machine(s, &n.to_string(), &format!("192.168.99.{n}/24"))
}

fn client(srv: &EtcdServer) -> Etcd {
    let cfg = EtcdConfig::new(&srv.url())
        .unwrap()
        .timeout(Duration::from_secs(2))
        .dial_in(srv.netns());
    Etcd::connect(cfg).unwrap()
}

struct Node {
    ns: Netns,
    ov: Overlay<EtcdStore>,
    _dir: common::TempDir,
}

/// Host `n` (1-based) with its own etcd client, IPAM on etcd and etcd discovery.
fn node(s: &Sandbox, srv: &EtcdServer, n: u8) -> Node {
    reopen(srv, machine(s, n), common::TempDir::new("overlay-etcd"), n)
}

/// Host `n`'s driver opened (again) on namespace `ns` with records in `dir`: what a
/// restarted runtime does.
fn reopen(srv: &EtcdServer, ns: Netns, dir: common::TempDir, n: u8) -> Node {
    let etcd = client(srv);
    let host = Host::open_in(&ns, &dir.0).unwrap();
    let me = PeerHost {
        id: format!("h{n}"),
        underlay: format!("192.168.99.{n}").parse().unwrap(),
    };
    let discovery: Arc<dyn PeerDiscovery> = Arc::new(EtcdDiscovery::new(etcd.clone()).ttl(TTL));
    let ov = Overlay::new(host, me, Ipam::new(EtcdStore::new(etcd)), discovery).unwrap();
    Node { ns, ov, _dir: dir }
}

/// `docker network create -d overlay ov1` through `etcd`.
fn create_ov1(etcd: &Etcd) -> OverlayNetwork {
    EtcdNetworks::new(etcd.clone())
        .create(
            &Ipam::new(EtcdStore::new(etcd.clone())),
            &OverlaySpec::new("ov1"),
        )
        .unwrap()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not reached in time");
}

/// The underlay addresses host `ns` sends the overlay's frames to (FDB `dst`s).
fn fdb_dsts(ns: &Netns, net: &OverlayNetwork) -> BTreeSet<IpAddr> {
    let mut r = Rtnl::open_in(ns).unwrap();
    let Ok(vx) = r.link(net.vxlan_name().as_str()) else {
        return BTreeSet::new();
    };
    r.fdb(&vx)
        .unwrap()
        .into_iter()
        .filter_map(|n| n.dst)
        .collect()
}

fn tcp(server: &Netns, ip: IpAddr, client: &Netns) -> bool {
    common::tcp_reaches(server, SocketAddr::new(ip, 7000), client)
}

fn links(ns: &Netns) -> Vec<String> {
    let mut r = Rtnl::open_in(ns).unwrap();
    let mut v = common::link_names(&mut r);
    v.sort();
    v
}

#[test]
fn a_network_created_on_one_host_is_seen_by_all_and_carries_traffic() {
    if !available("overlay_etcd::seen_by_all") {
        return;
    }
    common::sandbox("overlay_etcd::seen_by_all", |s| {
        let srv = EtcdServer::start();
        let mut nodes: Vec<Node> = (1..=3).map(|n| node(s, &srv, n)).collect();
        let etcd = client(&srv);
        let nets = EtcdNetworks::new(etcd.clone());
        let ipam = Ipam::new(EtcdStore::new(etcd.clone()));
        let ov1 = nets.create(&ipam, &OverlaySpec::new("ov1")).unwrap();
        assert_eq!(ov1.subnet().to_string(), "10.0.0.0/24");
        assert!((256..=1000).contains(&ov1.vxlan_id()));
        // Every host reads the same definition through its own client.
        for _ in &nodes {
            let seen = EtcdNetworks::new(client(&srv)).get("ov1").unwrap();
            assert_eq!(seen.as_ref(), Some(&ov1));
        }
        // The same name again is refused, with nothing new in IPAM.
        let again = nets.create(&ipam, &OverlaySpec::new("ov1")).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::Exists, "{again}");
        assert_eq!(ipam.networks().unwrap().len(), 1);

        let watches: Vec<OverlayWatch> = nodes.iter().map(|n| n.ov.watch(&ov1).unwrap()).collect();
        let mut ctrs = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            let ns = Netns::new().unwrap();
            let att =
                n.ov.connect(&ov1, &Container::new(&format!("c{}", i + 1), &ns))
                    .unwrap();
            assert_eq!(att.mtu, 1450);
            ctrs.push((ns, att.addr.addr()));
        }
        // Three distinct addresses from the shared store.
        let addrs: BTreeSet<IpAddr> = ctrs.iter().map(|c| c.1).collect();
        assert_eq!(addrs.len(), 3);
        // Each host learns the other two from the watch.
        for (i, n) in nodes.iter().enumerate() {
            let want: BTreeSet<IpAddr> = (1..=3u8)
                .filter(|&h| usize::from(h) != i + 1)
                .map(|h| IpAddr::from([192, 168, 99, h]))
                .collect();
            eventually("FDB entries for both other hosts", || {
                fdb_dsts(&n.ns, &ov1) == want
            });
        }
        for (a, b) in [(0, 1), (1, 2), (2, 0)] {
            assert!(
                tcp(&ctrs[b].0, ctrs[b].1, &ctrs[a].0),
                "c{} -> c{} over VXLAN",
                a + 1,
                b + 1
            );
        }
        // Out through the gateway bridge: the outside machine sees host 1's underlay
        // address.
        let outside = machine(s, 100);
        let port = common::serve_peer(&outside, "192.168.99.100:8000".parse().unwrap());
        let seen = common::call_peer(&ctrs[0].0, SocketAddr::from(([192, 168, 99, 100], port)));
        assert_eq!(seen.as_deref(), Some("192.168.99.1"));

        for (i, n) in nodes.iter_mut().enumerate() {
            n.ov.disconnect(&ov1, &format!("c{}", i + 1)).unwrap();
        }
        drop(watches);
        assert!(ipam.leases("ov1").unwrap().is_empty());
        nets.remove(&ipam, "ov1").unwrap();
        assert!(nets.list().unwrap().is_empty());
        assert!(ipam.networks().unwrap().is_empty());
    });
}

#[test]
fn a_host_that_dies_expires_and_its_peers_forget_it() {
    if !available("overlay_etcd::host_dies") {
        return;
    }
    common::sandbox("overlay_etcd::host_dies", |s| {
        let srv = EtcdServer::start();
        let etcd = client(&srv);
        let ov1 = create_ov1(&etcd);
        let mut nodes: Vec<Node> = (1..=3).map(|n| node(s, &srv, n)).collect();
        let watches: Vec<OverlayWatch> = nodes[..2]
            .iter()
            .map(|n| n.ov.watch(&ov1).unwrap())
            .collect();
        let mut ctrs = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            let ns = Netns::new().unwrap();
            let att =
                n.ov.connect(&ov1, &Container::new(&format!("c{}", i + 1), &ns))
                    .unwrap();
            ctrs.push((ns, att.addr.addr()));
        }
        let h3: IpAddr = "192.168.99.3".parse().unwrap();
        eventually("h1 and h2 know h3", || {
            nodes[..2]
                .iter()
                .all(|n| fdb_dsts(&n.ns, &ov1).contains(&h3))
        });
        assert!(tcp(&ctrs[2].0, ctrs[2].1, &ctrs[0].0), "c1 -> c3 before");

        // Host 3's process dies: nothing is withdrawn, its lease just stops being renewed.
        let dead = nodes.pop().unwrap();
        drop(dead.ov);
        let hosts_key = format!("{}peers/ov1/hosts/h3", netplumb::overlay::ETCD_PREFIX);
        eventually("h3's registration expires", || {
            etcd.get(&hosts_key).unwrap().is_none()
        });
        eventually("h1 and h2 forget h3", || {
            nodes.iter().all(|n| !fdb_dsts(&n.ns, &ov1).contains(&h3))
        });
        assert!(!tcp(&ctrs[2].0, ctrs[2].1, &ctrs[0].0), "c1 -> c3 after");
        assert!(tcp(&ctrs[1].0, ctrs[1].1, &ctrs[0].0), "c1 -> c2 still");
        drop(watches);
    });
}

#[test]
fn a_restarted_host_announces_its_containers_again() {
    if !available("overlay_etcd::restart") {
        return;
    }
    common::sandbox("overlay_etcd::restart", |s| {
        let srv = EtcdServer::start();
        let etcd = client(&srv);
        let ov1 = create_ov1(&etcd);
        let mut nodes: Vec<Node> = (1..=2).map(|n| node(s, &srv, n)).collect();
        let watch = nodes[0].ov.watch(&ov1).unwrap();
        let (c1, c2) = (Netns::new().unwrap(), Netns::new().unwrap());
        nodes[0]
            .ov
            .connect(&ov1, &Container::new("c1", &c1))
            .unwrap();
        let a2 = nodes[1]
            .ov
            .connect(&ov1, &Container::new("c2", &c2))
            .unwrap();
        let h2: IpAddr = "192.168.99.2".parse().unwrap();
        eventually("h1 knows h2", || fdb_dsts(&nodes[0].ns, &ov1).contains(&h2));

        // Host 2's runtime restarts: the old process's lease is no longer renewed; the
        // new one opens the driver on the same namespace and records, and syncs.
        let old = nodes.pop().unwrap();
        let (ns, dir) = (old.ns.clone(), old._dir);
        drop(old.ov);
        let mut again = reopen(&srv, ns, dir, 2);
        again.ov.sync(&ov1).unwrap();
        // Longer than the old lease's TTL: its keys are gone, the new lease's remain.
        std::thread::sleep(TTL * 3);
        let view = EtcdDiscovery::new(client(&srv)).view("ov1").unwrap();
        assert!(view.hosts.iter().any(|h| h.id == "h2"), "{view:?}");
        let ep = view
            .endpoints
            .iter()
            .find(|e| e.host == "h2")
            .expect("c2 announced");
        assert_eq!((ep.ip, ep.mac), (a2.addr.addr(), a2.mac));
        eventually("h1 still knows h2", || {
            fdb_dsts(&nodes[0].ns, &ov1).contains(&h2)
        });
        assert!(tcp(&c2, a2.addr.addr(), &c1), "c1 -> c2 after the restart");
        drop(watch);
    });
}

#[test]
fn hosts_creating_networks_at_once_get_distinct_subnets_and_vnis() {
    if !available("overlay_etcd::concurrent_create") {
        return;
    }
    common::sandbox("overlay_etcd::concurrent_create", |_| {
        let srv = EtcdServer::start();
        let made: Vec<OverlayNetwork> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..3)
                .map(|h| {
                    let etcd = client(&srv);
                    sc.spawn(move || {
                        let nets = EtcdNetworks::new(etcd.clone());
                        let ipam = Ipam::new(EtcdStore::new(etcd));
                        (0..5)
                            .map(|i| {
                                nets.create(&ipam, &OverlaySpec::new(&format!("n{h}-{i}")))
                                    .unwrap()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(made.len(), 15);
        let subnets: BTreeSet<_> = made.iter().map(|n| n.subnet()).collect();
        let vnis: BTreeSet<_> = made.iter().map(|n| n.vxlan_id()).collect();
        assert_eq!(subnets.len(), 15, "{subnets:?}");
        assert_eq!(vnis.len(), 15, "{vnis:?}");
        for a in &subnets {
            for b in &subnets {
                assert!(
                    a == b || !(a.contains(b) || b.contains(a)),
                    "{a} overlaps {b}"
                );
            }
        }
        // What etcd holds is what the creators were told.
        let listed = EtcdNetworks::new(client(&srv)).list().unwrap();
        assert_eq!(listed.len(), 15);
        for n in &made {
            assert!(listed.contains(n), "{n:?} missing");
        }
    });
}

#[test]
fn etcd_going_away_gives_typed_errors_changes_nothing_and_work_resumes() {
    if !available("overlay_etcd::etcd_away") {
        return;
    }
    common::sandbox("overlay_etcd::etcd_away", |s| {
        let mut srv = EtcdServer::start();
        let etcd = client(&srv);
        let ov1 = create_ov1(&etcd);
        let mut nodes: Vec<Node> = (1..=2).map(|n| node(s, &srv, n)).collect();
        let c1 = Netns::new().unwrap();
        let a1 = nodes[0]
            .ov
            .connect(&ov1, &Container::new("c1", &c1))
            .unwrap();

        srv.stop();
        let c2 = Netns::new().unwrap();
        let before = (links(&nodes[1].ns), links(&c2));
        let err = nodes[1]
            .ov
            .connect(&ov1, &Container::new("c2", &c2))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("127.0.0.1:2379"), "{err}");
        assert_eq!(
            (links(&nodes[1].ns), links(&c2)),
            before,
            "nothing half-made"
        );
        let err = EtcdNetworks::new(etcd.clone())
            .create(
                &Ipam::new(EtcdStore::new(etcd.clone())),
                &OverlaySpec::new("ov2"),
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");

        srv.restart();
        let a2 = nodes[1]
            .ov
            .connect(&ov1, &Container::new("c2", &c2))
            .unwrap();
        assert_ne!(a1.addr, a2.addr);
        nodes[0].ov.sync(&ov1).unwrap();
        assert!(
            tcp(&c2, a2.addr.addr(), &c1),
            "c1 -> c2 after etcd came back"
        );
        // The store is whole: one network, two leases, ov2 never written.
        let ipam = Ipam::new(EtcdStore::new(etcd.clone()));
        assert_eq!(ipam.leases("ov1").unwrap().len(), 2);
        let names: Vec<String> = EtcdNetworks::new(etcd)
            .list()
            .unwrap()
            .iter()
            .map(|n| n.name().to_owned())
            .collect();
        assert_eq!(names, ["ov1"]);
        for (n, c) in nodes.iter_mut().zip(["c1", "c2"]) {
            n.ov.disconnect(&ov1, c).unwrap();
        }
        assert!(ipam.leases("ov1").unwrap().is_empty());
    });
}

/// Host `n`'s driver on namespace `ns` with its records in `dir` (a process of that host:
/// a one-shot command or the agent), registrations under a lease of its own.
fn driver(srv: &EtcdServer, ns: &Netns, dir: &std::path::Path, n: u8) -> Overlay<EtcdStore> {
    let etcd = client(srv);
    let host = Host::open_in(ns, dir).unwrap();
    let me = PeerHost {
        id: format!("h{n}"),
        underlay: format!("192.168.99.{n}").parse().unwrap(),
    };
    let discovery: Arc<dyn PeerDiscovery> = Arc::new(EtcdDiscovery::new(etcd.clone()).ttl(TTL));
    Overlay::new(host, me, Ipam::new(EtcdStore::new(etcd)), discovery).unwrap()
}

/// Whether host `ns` has a neighbour entry for `ip` on `net`'s VXLAN device.
fn knows(ns: &Netns, net: &OverlayNetwork, ip: IpAddr) -> bool {
    let mut r = Rtnl::open_in(ns).unwrap();
    let Ok(vx) = r.link(net.vxlan_name().as_str()) else {
        return false;
    };
    r.neighs(&vx).unwrap().iter().any(|n| n.dst == Some(ip))
}

#[test]
fn agents_keep_an_idle_cluster_connected_and_follow_containers_and_deaths() {
    if !available("overlay_etcd::agents") {
        return;
    }
    common::sandbox("overlay_etcd::agents", |s| {
        let srv = EtcdServer::start();
        let ov1 = create_ov1(&client(&srv));
        let hosts: Vec<Netns> = (1..=3).map(|n| machine(s, n)).collect();
        let dirs: Vec<common::TempDir> = (1..=3).map(|_| common::TempDir::new("agent")).collect();
        // Containers connected by one-shot commands, whose processes (and leases) end.
        let mut ctrs = Vec::new();
        for n in 1..=2u8 {
            let i = usize::from(n - 1);
            let ns = Netns::new().unwrap();
            let mut once = driver(&srv, &hosts[i], &dirs[i].0, n);
            let att = once
                .connect(&ov1, &Container::new(&format!("c{n}"), &ns))
                .unwrap();
            ctrs.push((ns, att.addr.addr()));
        }
        let mut agents: Vec<netplumb::overlay::Agent> = (1..=3u8)
            .map(|n| {
                let i = usize::from(n - 1);
                let nets = EtcdNetworks::new(client(&srv));
                let ov = driver(&srv, &hosts[i], &dirs[i].0, n);
                netplumb::overlay::Agent::start(ov, Box::new(move || nets.list()), TTL / 3).unwrap()
            })
            .collect();
        // Idle for three TTLs: the one-shots' leases are long gone, the agents' live.
        std::thread::sleep(3 * TTL + Duration::from_millis(500));
        assert!(
            tcp(&ctrs[0].0, ctrs[0].1, &ctrs[1].0),
            "c2 -> c1 after idling"
        );
        assert!(
            tcp(&ctrs[1].0, ctrs[1].1, &ctrs[0].0),
            "c1 -> c2 after idling"
        );

        // A container connected on host 3 by a one-shot: host 1 learns it alone.
        let ns3 = Netns::new().unwrap();
        let att3 = {
            let mut once = driver(&srv, &hosts[2], &dirs[2].0, 3);
            once.connect(&ov1, &Container::new("c3", &ns3)).unwrap()
        };
        let t = Instant::now();
        eventually("host 1 learns c3", || {
            knows(&hosts[0], &ov1, att3.addr.addr())
        });
        eprintln!(
            "host 1 learned c3 {:?} after the connect returned",
            t.elapsed()
        );
        assert!(tcp(&ns3, att3.addr.addr(), &ctrs[0].0), "c1 -> c3");
        // Still so after the one-shot's lease is gone: host 3's agent announced c3.
        std::thread::sleep(TTL + Duration::from_millis(500));
        assert!(knows(&hosts[0], &ov1, att3.addr.addr()), "c3 forgotten");

        // Host 3's agent dies: its registrations lapse, host 1 forgets host 3.
        let t = Instant::now();
        agents.pop().unwrap().stop();
        eventually("host 1 forgets host 3", || {
            !fdb_dsts(&hosts[0], &ov1).contains(&IpAddr::from([192, 168, 99, 3]))
        });
        eprintln!(
            "host 1 forgot host 3 {:?} after its agent stopped",
            t.elapsed()
        );
        assert!(!knows(&hosts[0], &ov1, att3.addr.addr()));
        // Hosts 1 and 2 stay connected.
        assert!(
            tcp(&ctrs[0].0, ctrs[0].1, &ctrs[1].0),
            "c2 -> c1 at the end"
        );
        for a in agents {
            a.stop();
        }
    });
}

#[test]
fn an_idle_watcher_keeps_one_watch_open() {
    if !available("overlay_etcd::idle_watch") {
        return;
    }
    common::sandbox("overlay_etcd::idle_watch", |s| {
        let srv = EtcdServer::start();
        let ov1 = create_ov1(&client(&srv));
        let mut n1 = node(s, &srv, 1);
        let ns = Netns::new().unwrap();
        n1.ov.connect(&ov1, &Container::new("w1", &ns)).unwrap();
        let w = n1.ov.watch(&ov1).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let (before, ranges, syncs) = (srv.watches_started(), srv.ranges_started(), w.syncs());
        // Idle for more than two of the watcher's 2 s reconciliations: every 200 ms wait on
        // the same open watch, and the kernel reconciled against the view it read last,
        // without reading it again.
        std::thread::sleep(Duration::from_millis(4500));
        let opened = srv.watches_started() - before;
        assert!(opened <= 1, "{opened} watches opened while idle");
        assert!(w.syncs() >= syncs + 2, "the idle watcher still reconciles");
        let read = srv.ranges_started() - ranges;
        assert_eq!(read, 0, "ranges read by an idle watcher");
        // And it still sees a change.
        let syncs = w.syncs();
        let mut n2 = node(s, &srv, 2);
        let ns2 = Netns::new().unwrap();
        n2.ov.connect(&ov1, &Container::new("w2", &ns2)).unwrap();
        eventually("the watcher syncs after a change", || w.syncs() > syncs);
        let h2 = IpAddr::from([192, 168, 99, 2]);
        eventually("host 1 learns w2's host", || {
            fdb_dsts(&n1.ns, &ov1).contains(&h2)
        });
        // An entry removed by hand comes back from the view held, with no read.
        let mut r = Rtnl::open_in(&n1.ns).unwrap();
        let vx = r.link(ov1.vxlan_name().as_str()).unwrap();
        let ranges = srv.ranges_started();
        for e in r
            .fdb(&vx)
            .unwrap()
            .into_iter()
            .filter(|e| e.dst == Some(h2))
        {
            let del = Fdb::new(&vx, e.mac.unwrap()).dst(h2).delete();
            r.execute(&del).unwrap();
        }
        assert!(!fdb_dsts(&n1.ns, &ov1).contains(&h2));
        eventually("the hand-removed entry is back", || {
            fdb_dsts(&n1.ns, &ov1).contains(&h2)
        });
        assert_eq!(srv.ranges_started(), ranges, "ranges read to repair");
        drop(w);
    });
}
