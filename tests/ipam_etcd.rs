//! IPAM on etcd (`EtcdStore`) against a real etcd in a sandbox: several "hosts" (each its
//! own client and `Ipam`) allocating and creating networks at once, etcd killed during an
//! allocation storm, and the same answers as `MemoryStore` on a scripted sequence.

#![cfg(feature = "etcd")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::etcd::{available, EtcdServer};
use netplumb::etcd::{Etcd, EtcdConfig, EtcdError};
use netplumb::ipam::{EtcdStore, Ipam, IpamError, MemoryStore, Network, NetworkSpec, Owner, Store};
use netplumb::ErrorKind;

const HOSTS: usize = 3;

fn client(url: &str) -> Etcd {
    let cfg = EtcdConfig::new(url)
        .unwrap()
        .timeout(Duration::from_secs(2));
    Etcd::connect(cfg).unwrap()
}

/// One `Ipam` per simulated host, each with its own client (own connections).
fn hosts(srv: &EtcdServer) -> Vec<Ipam<EtcdStore>> {
    (0..HOSTS)
        .map(|_| Ipam::new(EtcdStore::new(client(&srv.url()))))
        .collect()
}

fn with_etcd(name: &str, f: impl FnOnce(&mut EtcdServer) + Send) {
    if !available(name) {
        return;
    }
    common::sandbox(name, |_| f(&mut EtcdServer::start()));
}

fn net(s: &str) -> netplumb::IpNet {
    s.parse().unwrap()
}

#[test]
fn three_hosts_allocate_concurrently() {
    with_etcd("three_hosts_allocate_concurrently", |srv| {
        let hosts = hosts(srv);
        hosts[0]
            .create_network(&NetworkSpec::new("n").subnet(net("10.50.0.0/16")))
            .unwrap();
        let got = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for (h, ipam) in hosts.iter().enumerate() {
                let got = &got;
                s.spawn(move || {
                    for i in 0..100 {
                        let lease = ipam.allocate("n", &Owner::new(format!("h{h}-c{i}"), "eth0"));
                        got.lock().unwrap().push(lease.unwrap().address);
                    }
                });
            }
        });
        let got = got.into_inner().unwrap();
        let distinct: HashSet<_> = got.iter().collect();
        assert_eq!(distinct.len(), 300, "an address was handed out twice");
        for ipam in &hosts {
            let leases = ipam.leases("n").unwrap();
            assert_eq!(leases.len(), 300);
            assert!(leases.iter().all(|l| distinct.contains(&l.address)));
        }
        // Every host releases its own containers, all at once.
        std::thread::scope(|s| {
            for (h, ipam) in hosts.iter().enumerate() {
                s.spawn(move || {
                    for i in 0..100 {
                        let owner = Owner::new(format!("h{h}-c{i}"), "eth0");
                        assert!(ipam.release_owner("n", &owner).unwrap().was_held());
                    }
                });
            }
        });
        for ipam in &hosts {
            assert!(ipam.leases("n").unwrap().is_empty());
        }
        hosts[2].remove_network("n").unwrap();
        assert!(hosts[0].networks().unwrap().is_empty());
    });
}

#[test]
fn concurrent_network_creation_never_overlaps() {
    with_etcd("concurrent_network_creation", |srv| {
        let hosts = hosts(srv);
        std::thread::scope(|s| {
            for (h, ipam) in hosts.iter().enumerate() {
                s.spawn(move || {
                    for i in 0..4 {
                        ipam.create_network(&NetworkSpec::new(format!("h{h}-n{i}")))
                            .unwrap();
                    }
                });
            }
        });
        for ipam in &hosts {
            let nets = ipam.networks().unwrap();
            assert_eq!(nets.len(), HOSTS * 4);
            for (i, a) in nets.iter().enumerate() {
                for b in &nets[i + 1..] {
                    let overlap = a.subnet.contains(&b.subnet.network())
                        || b.subnet.contains(&a.subnet.network());
                    assert!(
                        !overlap,
                        "{} {} and {} {}",
                        a.name, a.subnet, b.name, b.subnet
                    );
                }
            }
        }
        // The same name from two hosts: one wins, the other is told it exists.
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = hosts
                .iter()
                .map(|ipam| s.spawn(move || ipam.create_network(&NetworkSpec::new("same"))))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(results
            .iter()
            .all(|r| matches!(r, Ok(_) | Err(IpamError::NetworkExists { .. }))));
    });
}

/// Asserts that an IPAM failure is the store's, caused by etcd being unavailable.
fn assert_unavailable(e: &IpamError) {
    let IpamError::Store { source, .. } = e else {
        panic!("not a store error: {e:?}");
    };
    let Some(etcd) = source.downcast_ref::<EtcdError>() else {
        panic!("not an etcd error: {e:?}");
    };
    assert_eq!(etcd.kind(), ErrorKind::Unavailable, "{e}");
}

#[test]
fn etcd_killed_during_an_allocation_storm() {
    with_etcd("etcd_killed_during_an_allocation_storm", |srv| {
        let hosts = hosts(srv);
        hosts[0]
            .create_network(&NetworkSpec::new("n").subnet(net("10.51.0.0/16")))
            .unwrap();
        let ok = Mutex::new(Vec::new());
        let (count, failures, stop) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicBool::new(false),
        );
        std::thread::scope(|s| {
            for (h, ipam) in hosts.iter().enumerate() {
                let (ok, count, failures, stop) = (&ok, &count, &failures, &stop);
                s.spawn(move || {
                    for i in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let owner = Owner::new(format!("h{h}-c{i}"), "eth0");
                        match ipam.allocate("n", &owner) {
                            Ok(l) => {
                                ok.lock().unwrap().push(l);
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                assert_unavailable(&e);
                                failures.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                });
            }
            wait_for(|| count.load(Ordering::Relaxed) >= 30);
            srv.stop();
            wait_for(|| failures.load(Ordering::Relaxed) >= HOSTS);
            srv.restart();
            let resumed = count.load(Ordering::Relaxed) + 30;
            wait_for(|| count.load(Ordering::Relaxed) >= resumed);
            stop.store(true, Ordering::Relaxed);
        });
        assert!(failures.into_inner() >= HOSTS);

        // Consistent after the crash: every lease key has its owner key and vice versa,
        // every allocation that succeeded is there, and the record reads.
        let raw = client(&srv.url());
        let prefix = EtcdStore::DEFAULT_PREFIX;
        let leases = raw.prefix(format!("{prefix}leases/n/")).unwrap();
        let owners = raw.prefix(format!("{prefix}owners/n/")).unwrap();
        assert_eq!(leases.len(), owners.len());
        let by_owner: BTreeMap<String, String> = owners
            .iter()
            .map(|kv| {
                let k = kv.key_str().unwrap();
                let o = k.strip_prefix(&format!("{prefix}owners/n/")).unwrap();
                (o.to_string(), kv.value_str().unwrap().to_string())
            })
            .collect();
        let listed = hosts[1].leases("n").unwrap();
        assert_eq!(listed.len(), leases.len());
        for l in &listed {
            let key = format!("{}/{}", l.owner.container, l.owner.ifname);
            assert_eq!(by_owner.get(&key), Some(&l.address.to_string()), "{l:?}");
        }
        let listed: HashSet<IpAddr> = listed.iter().map(|l| l.address).collect();
        for l in ok.into_inner().unwrap() {
            assert!(listed.contains(&l.address), "lost {l:?}");
        }
        let network = hosts[2].network("n").unwrap();
        assert!(network.revision > 0);
        // And allocation goes on, on every host.
        for (h, ipam) in hosts.iter().enumerate() {
            let l = ipam
                .allocate("n", &Owner::new(format!("after-{h}"), "eth0"))
                .unwrap();
            assert!(!listed.contains(&l.address));
        }
    });
}

/// Waits (bounded, generously) until `cond` holds; panics if it never does.
fn wait_for(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A scripted sequence of IPAM calls, each result written down as text.
fn script<S: Store>(ipam: &Ipam<S>) -> Vec<String> {
    let o = |c: &str| Owner::new(c, "eth0");
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let mut out = Vec::new();
    let mut log = |what: &str, r: String| out.push(format!("{what}: {r}"));
    macro_rules! step {
        ($what:expr, $call:expr) => {
            log(
                $what,
                match $call {
                    Ok(v) => format!("{v:?}"),
                    Err(e) => format!("error {e}"),
                },
            )
        };
    }
    // 10.60.0.0/29: .1 the gateway, .2 to .6 to hand out.
    step!(
        "create",
        ipam.create_network(&NetworkSpec::new("p").subnet(net("10.60.0.0/29")))
    );
    step!("create again", ipam.create_network(&NetworkSpec::new("p")));
    step!(
        "overlap",
        ipam.create_network(&NetworkSpec::new("q").subnet(net("10.60.0.0/24")))
    );
    for c in ["a", "b", "c", "d"] {
        step!(c, ipam.allocate("p", &o(c)));
    }
    step!("a again", ipam.allocate("p", &o("a")));
    step!(
        "--ip taken",
        ipam.allocate_addr("p", &o("x"), ip("10.60.0.3"))
    );
    step!(
        "--ip gateway",
        ipam.allocate_addr("p", &o("x"), ip("10.60.0.1"))
    );
    step!(
        "--ip outside",
        ipam.allocate_addr("p", &o("x"), ip("10.61.0.1"))
    );
    step!("--ip e", ipam.allocate_addr("p", &o("e"), ip("10.60.0.6")));
    step!("full", ipam.allocate("p", &o("f")));
    step!("release c", ipam.release_owner("p", &o("c")));
    step!("release a", ipam.release("p", ip("10.60.0.2")));
    step!("release a again", ipam.release("p", ip("10.60.0.2")));
    // The cursor wraps; .2 was released last and is skipped while .4 is free.
    step!("g", ipam.allocate("p", &o("g")));
    step!("h", ipam.allocate("p", &o("h")));
    step!("full again", ipam.allocate("p", &o("i")));
    step!("leases", ipam.leases("p"));
    step!("in use", ipam.remove_network("p"));
    step!("gc", ipam.gc(&[o("b"), o("g")]));
    step!("leases after gc", ipam.leases("p"));
    step!("network", ipam.network("p"));
    step!("networks", ipam.networks());
    step!("release b", ipam.release_owner("p", &o("b")));
    step!("release g", ipam.release_owner("p", &o("g")));
    step!("remove", ipam.remove_network("p"));
    step!("gone", ipam.network("p"));
    step!("allocate on gone", ipam.allocate("p", &o("a")));
    out
}

#[test]
fn same_answers_as_the_memory_store() {
    with_etcd("same_answers_as_the_memory_store", |srv| {
        let want = script(&Ipam::new(MemoryStore::new()));
        let got = script(&Ipam::new(
            EtcdStore::new(client(&srv.url())).prefix("/parity"),
        ));
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w, g);
        }
        assert_eq!(want.len(), got.len());
        // Everything was removed under the prefix, and nothing written outside it.
        let raw = client(&srv.url());
        let all: Vec<_> = raw.prefix("").unwrap();
        let keys: Vec<_> = all
            .iter()
            .map(|kv| kv.key_str().unwrap().to_string())
            .collect();
        assert_eq!(keys, ["/parity/index"], "{keys:?}");
    });
}

/// Store-level calls in one transaction, each result written down as text: a
/// transaction sees its own writes, and a dropped one leaves nothing behind.
fn own_writes<S: Store>(store: &S) -> Vec<String> {
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let (o1, o2, o3) = (
        Owner::new("c1", "eth0"),
        Owner::new("c2", "eth0"),
        Owner::new("c3", "eth1"),
    );
    let n = Network {
        name: "w/1".into(),
        subnet: net("10.70.0.0/24"),
        gateway: Some(ip("10.70.0.1")),
        range: net("10.70.0.0/24"),
        reserved: vec![],
        cursor: None,
        last_released: None,
        revision: 0,
    };
    let (lo, hi) = (ip("10.70.0.2"), ip("10.70.0.254"));
    let mut out = Vec::new();
    let mut log = |what: &str, r: String| out.push(format!("{what}: {r}"));
    macro_rules! step {
        ($what:expr, $call:expr) => {
            log(
                $what,
                match $call {
                    Ok(v) => format!("{v:?}"),
                    Err(e) => format!("error {e}"),
                },
            )
        };
    }
    {
        let mut tx = store.begin().unwrap();
        step!("create", tx.create_network(&n));
        step!("create twice", tx.create_network(&n));
        step!("network", tx.network("w/1"));
        step!("networks", tx.networks());
        step!("hold .2", tx.hold("w/1", ip("10.70.0.2"), &o1));
        step!("hold .3", tx.hold("w/1", ip("10.70.0.3"), &o2));
        step!("hold .2 again", tx.hold("w/1", ip("10.70.0.2"), &o3));
        step!("hold for o1 again", tx.hold("w/1", ip("10.70.0.9"), &o1));
        step!("first free", tx.first_free("w/1", lo, hi));
        step!("owner of .2", tx.owner_of("w/1", ip("10.70.0.2")));
        step!("address of o2", tx.address_of("w/1", &o2));
        step!("leases", tx.leases("w/1"));
        step!("free .2", tx.free("w/1", ip("10.70.0.2")));
        step!("free .2 again", tx.free("w/1", ip("10.70.0.2")));
        step!("first free after free", tx.first_free("w/1", lo, hi));
        step!(
            "first free from .3",
            tx.first_free("w/1", ip("10.70.0.3"), hi)
        );
        step!(
            "first free none",
            tx.first_free("w/1", ip("10.70.0.3"), ip("10.70.0.3"))
        );
        step!("leases after free", tx.leases("w/1"));
        step!("commit", tx.commit());
    }
    {
        let mut tx = store.begin().unwrap();
        step!("leases committed", tx.leases("w/1"));
        step!(
            "stale update",
            tx.update_network(&Network {
                revision: 5,
                ..n.clone()
            })
        );
        step!("update", tx.update_network(&n));
        step!("network updated", tx.network("w/1"));
        step!(
            "create dropped",
            tx.create_network(&Network {
                name: "dropped".into(),
                ..n.clone()
            })
        );
        // Dropped without commit: nothing of it stays.
    }
    {
        let mut tx = store.begin().unwrap();
        step!("after drop", tx.network("dropped"));
        step!(
            "revision kept",
            tx.network("w/1").map(|n| n.map(|n| n.revision))
        );
        let current = tx.network("w/1").unwrap().unwrap();
        step!("delete", tx.delete_network(&current));
        step!("network deleted", tx.network("w/1"));
        step!("leases of deleted", tx.leases("w/1"));
        step!("hold on deleted", tx.hold("w/1", ip("10.70.0.5"), &o3));
        step!("commit delete", tx.commit());
    }
    let mut tx = store.begin().unwrap();
    step!("networks at the end", tx.networks());
    step!("address of on deleted", tx.address_of("w/1", &o2));
    out
}

#[test]
fn transactions_see_their_own_writes_like_the_memory_store() {
    with_etcd("transactions_see_their_own_writes", |srv| {
        let want = own_writes(&MemoryStore::new());
        let store = EtcdStore::new(client(&srv.url()));
        let got = own_writes(&store);
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w, g);
        }
        assert_eq!(want.len(), got.len());
        // The deleted network took its leases and owner keys with it.
        let left = store.etcd().prefix(EtcdStore::DEFAULT_PREFIX).unwrap();
        let keys: Vec<_> = left.iter().map(|kv| kv.key_str().unwrap()).collect();
        assert_eq!(keys, ["/netplumb/ipam/index"]);
    });
}

#[test]
fn interleaved_transactions_conflict() {
    with_etcd("interleaved_transactions_conflict", |srv| {
        let ipam = Ipam::new(EtcdStore::new(client(&srv.url())));
        ipam.create_network(&NetworkSpec::new("n").subnet(net("10.71.0.0/24")))
            .unwrap();
        let store = ipam.store();
        let mut t1 = store.begin().unwrap();
        let mut t2 = store.begin().unwrap();
        let n1 = t1.network("n").unwrap().unwrap();
        let n2 = t2.network("n").unwrap().unwrap();
        let a: IpAddr = "10.71.0.7".parse().unwrap();
        t1.hold("n", a, &Owner::new("one", "eth0")).unwrap();
        t1.update_network(&n1).unwrap();
        t2.hold("n", a, &Owner::new("two", "eth0")).unwrap();
        t2.update_network(&n2).unwrap();
        t1.commit().unwrap();
        // The loser's writes never reach etcd.
        assert!(matches!(t2.commit(), Err(IpamError::Conflict { network }) if network == "n"));
        let leases = ipam.leases("n").unwrap();
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].owner.container, "one");
        // A snapshot read is not disturbed by a later write, and a read-only
        // transaction commits.
        let mut t3 = store.begin().unwrap();
        t3.network("n").unwrap();
        assert!(ipam.release("n", a).unwrap().was_held());
        assert_eq!(t3.leases("n").unwrap().len(), 1, "reads see one snapshot");
        t3.commit().unwrap();
    });
}

/// Garbage collection of more dead leases than one etcd transaction can free (128 writes,
/// two per lease) goes through in chunks and keeps the live ones.
#[test]
fn gc_of_many_dead_leases_goes_through() {
    with_etcd("ipam_etcd::gc_many", |srv| {
        let ipam = &hosts(srv)[0];
        ipam.create_network(&NetworkSpec::new("big").subnet(net("10.44.0.0/22")))
            .unwrap();
        let owners: Vec<Owner> = (0..160)
            .map(|i| Owner::new(format!("c{i}"), "eth0"))
            .collect();
        for o in &owners {
            ipam.allocate("big", o).unwrap();
        }
        let live: Vec<Owner> = owners.iter().step_by(10).cloned().collect();
        let freed = ipam.gc(&live).unwrap();
        assert_eq!(freed.len(), 160 - live.len());
        let left: HashSet<Owner> = ipam
            .leases("big")
            .unwrap()
            .into_iter()
            .map(|l| l.owner)
            .collect();
        assert_eq!(left, live.into_iter().collect());
    });
}

/// An allocation reads twice (the network's record and the owner's key in one read-only
/// transaction, then one page of the leases) and commits once: the free address the page
/// showed needs no read of its own.
#[test]
fn an_allocation_reads_twice_and_commits_once() {
    with_etcd("an_allocation_reads_twice_and_commits_once", |srv| {
        let ipam = Ipam::new(EtcdStore::new(client(&srv.url())));
        ipam.create_network(&NetworkSpec::new("n").subnet(net("10.72.0.0/24")))
            .unwrap();
        ipam.allocate("n", &Owner::new("c0", "eth0")).unwrap();
        let (ranges, txns) = (srv.ranges_started(), srv.started("Txn"));
        let l = ipam.allocate("n", &Owner::new("c1", "eth0")).unwrap();
        assert_eq!(l.address, "10.72.0.3".parse::<IpAddr>().unwrap());
        assert_eq!(srv.ranges_started() - ranges, 1, "ranges of one allocation");
        assert_eq!(
            srv.started("Txn") - txns,
            2,
            "transactions of one allocation"
        );
    });
}

/// An address found free by a page of leases, then taken by another transaction before
/// this one commits: the commit is a conflict (the key's absence is compared, as after a
/// read of it; the network's record, which every hold writes, is compared too).
#[test]
fn a_free_address_seen_in_a_page_and_taken_meanwhile_conflicts() {
    with_etcd(
        "a_free_address_seen_in_a_page_and_taken_meanwhile_conflicts",
        |srv| {
            let ipam = Ipam::new(EtcdStore::new(client(&srv.url())));
            ipam.create_network(&NetworkSpec::new("n").subnet(net("10.73.0.0/24")))
                .unwrap();
            let store = ipam.store();
            let (lo, hi): (IpAddr, IpAddr) =
                ("10.73.0.2".parse().unwrap(), "10.73.0.254".parse().unwrap());
            let mut t1 = store.begin().unwrap();
            let a = t1.first_free("n", lo, hi).unwrap().unwrap();
            assert_eq!(a, lo);
            // t2 takes the address; t1 never read its lease key by itself (the page said
            // it was free), and still loses.
            let mut t2 = store.begin().unwrap();
            t2.hold("n", a, &Owner::new("two", "eth0")).unwrap();
            t2.commit().unwrap();
            t1.hold("n", a, &Owner::new("one", "eth0")).unwrap();
            assert!(matches!(t1.commit(), Err(IpamError::Conflict { .. })));
            let leases = ipam.leases("n").unwrap();
            assert_eq!(leases.len(), 1);
            assert_eq!(leases[0].owner.container, "two");
        },
    );
}
