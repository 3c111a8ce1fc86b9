//! The nf_tables backend's tables live exactly as long as a network needs them: the `ip`
//! table with the first network, the `ip6` table with the first network that has an IPv6
//! subnet, the `bridge` table with the first guarded endpoint; each goes when nothing of
//! any network is left in it, also while other writers create and remove networks at the
//! same time. `nft` runs only as a witness (the tests that need it print `SKIPPED`
//! without it, and fail under `CI=true`).

mod common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use std::time::Instant;

use netplumb::firewall::{Firewall, FirewallWatch, NetworkRules, Nftables, PortRule, Proto};
use netplumb::netns::Sandbox;
use netplumb::Netns;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `nft list tables` in `ns`: the lines naming a `netplumb` table (the test is skipped
/// without the `nft` binary).
fn our_tables(ns: &Netns) -> Option<Vec<String>> {
    let text = common::run_in(ns, "nft", &["list", "tables"])?;
    Some(
        text.lines()
            .filter(|l| l.ends_with(" netplumb"))
            .map(str::to_owned)
            .collect(),
    )
}

/// Runs `nft ARGS` in `ns` (the witness acting as a user or as vandal).
fn nft(ns: &Netns, args: &[&str]) {
    common::run_in(ns, "nft", args).expect("nft runs in the namespace");
}

fn dual(name: &str, bridge: &str, n: u8) -> NetworkRules {
    NetworkRules::new(name, bridge)
        .subnet(format!("10.{n}.0.0/24").parse().unwrap())
        .subnet(format!("fd{n:02x}::/64").parse().unwrap())
}

fn v4(name: &str, bridge: &str, n: u8) -> NetworkRules {
    NetworkRules::new(name, bridge).subnet(format!("10.{n}.0.0/24").parse().unwrap())
}

#[test]
fn the_last_network_takes_the_tables() {
    const NAME: &str = "the_last_network_takes_the_tables";
    common::sandbox(NAME, |s: &Sandbox| {
        let ns = s.host();
        let Some(none) = our_tables(ns) else {
            return;
        };
        assert!(none.is_empty(), "{none:?}");
        let mut fw = Nftables::open_in(ns).unwrap();
        // A dual-stack network with a guarded endpoint (bridge table), a port of each
        // family, and an IPv4-only network.
        let net0 = dual("net0", "br0", 1)
            .icc(false)
            .endpoint("veth0", ip("10.1.0.2"));
        fw.add_network(&net0).unwrap();
        fw.add_network(&v4("net1", "br1", 2)).unwrap();
        fw.publish(&[
            PortRule::new("net0", Proto::Tcp, 8080, ip("10.1.0.2"), 80),
            PortRule::new("net0", Proto::Tcp, 8080, ip("fd01::2"), 80),
            PortRule::new("net1", Proto::Udp, 53, ip("10.2.0.2"), 53),
        ])
        .unwrap();
        let all = our_tables(ns).unwrap();
        assert_eq!(
            all,
            [
                "table ip netplumb",
                "table ip6 netplumb",
                "table bridge netplumb"
            ],
        );
        // The guarded endpoint goes: so does the bridge table.
        fw.add_network(&dual("net0", "br0", 1).icc(false)).unwrap();
        assert!(!our_tables(ns)
            .unwrap()
            .contains(&"table bridge netplumb".to_owned()));
        fw.add_network(&net0).unwrap();
        // net0 goes: the ip6 and bridge tables held only net0's.
        fw.remove_network("net0").unwrap();
        assert_eq!(our_tables(ns).unwrap(), ["table ip netplumb"]);
        assert_eq!(fw.state().unwrap().networks, ["net1"]);
        assert_eq!(fw.state().unwrap().ports.len(), 1);
        // The last network goes: nothing of ours is left.
        fw.remove_network("net1").unwrap();
        assert_eq!(our_tables(ns).unwrap(), Vec::<String>::new());
        assert!(fw.state().unwrap().families.is_empty());
        // Gone already: fine.
        fw.remove_network("net1").unwrap();
        // A users' chain with rules keeps its table (and nothing else of ours goes).
        fw.add_network(&v4("net2", "br2", 3)).unwrap();
        nft(
            ns,
            &[
                "add",
                "rule",
                "ip",
                "netplumb",
                "user",
                "ip",
                "saddr",
                "192.0.2.9",
                "drop",
            ],
        );
        fw.remove_network("net2").unwrap();
        assert_eq!(our_tables(ns).unwrap(), ["table ip netplumb"]);
        nft(ns, &["flush", "chain", "ip", "netplumb", "user"]);
        fw.add_network(&v4("net2", "br2", 3)).unwrap();
        fw.remove_network("net2").unwrap();
        assert_eq!(our_tables(ns).unwrap(), Vec::<String>::new());
    });
}

#[test]
fn an_ipv4_network_makes_no_ip6_table() {
    const NAME: &str = "an_ipv4_network_makes_no_ip6_table";
    common::sandbox(NAME, |s: &Sandbox| {
        let ns = s.host();
        if our_tables(ns).is_none() {
            return;
        }
        let mut fw = Nftables::open_in(ns).unwrap();
        let net1 = v4("net1", "br1", 2);
        fw.add_network(&net1).unwrap();
        let port = PortRule::new("net1", Proto::Tcp, 8080, ip("10.2.0.2"), 80);
        fw.publish(std::slice::from_ref(&port)).unwrap();
        assert_eq!(our_tables(ns).unwrap(), ["table ip netplumb"]);
        assert_eq!(fw.state().unwrap().families, ["ip"]);
        fw.unpublish(std::slice::from_ref(&port)).unwrap();
        // The first IPv6 subnet brings the ip6 table; a network that drops its IPv6
        // subnet takes it away again.
        fw.add_network(&dual("net3", "br3", 4)).unwrap();
        assert_eq!(
            our_tables(ns).unwrap(),
            ["table ip netplumb", "table ip6 netplumb"]
        );
        fw.add_network(&v4("net3", "br3", 4)).unwrap();
        assert_eq!(our_tables(ns).unwrap(), ["table ip netplumb"]);
        // A repair after `nft flush ruleset` makes only what the networks need.
        fw.publish(std::slice::from_ref(&port)).unwrap();
        nft(ns, &["flush", "ruleset"]);
        let nets = [net1.clone(), v4("net3", "br3", 4)];
        let fixed = fw.repair(&nets, std::slice::from_ref(&port)).unwrap();
        assert_eq!(fixed.skeleton, ["table ip netplumb"], "{fixed}");
        assert_eq!(our_tables(ns).unwrap(), ["table ip netplumb"]);
        assert_eq!(fw.state().unwrap().networks, ["net1", "net3"]);
        assert!(fw.repair(&nets, &[port]).unwrap().is_empty());
    });
}

/// Our own deletion of a table is no damage to a watcher of this process, and a repair
/// brings the tables back while networks exist.
#[test]
fn removing_the_last_network_is_no_damage() {
    const NAME: &str = "removing_the_last_network_is_no_damage";
    common::sandbox(NAME, |s: &Sandbox| {
        let ns = s.host().clone();
        if our_tables(&ns).is_none() {
            return;
        }
        let net = dual("net0", "br0", 1);
        let mut fixer = Nftables::open_in(&ns).unwrap();
        let wanted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<NetworkRules>::new()));
        let w = wanted.clone();
        let watch = FirewallWatch::start(
            &ns,
            &["netplumb"],
            Duration::from_millis(100),
            Box::new(move || {
                let nets = w.lock().unwrap().clone();
                Ok(!fixer.repair(&nets, &[])?.is_empty())
            }),
        )
        .unwrap();
        let mut fw = Nftables::open_in(&ns).unwrap();
        fw.add_network(&net).unwrap();
        fw.remove_network("net0").unwrap();
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(watch.stats().damage, 0, "{:?}", watch.stats());
        assert_eq!(our_tables(&ns).unwrap(), Vec::<String>::new());
        // Someone else deletes the tables of a live network: they come back.
        fw.add_network(&net).unwrap();
        *wanted.lock().unwrap() = vec![net.clone()];
        nft(&ns, &["delete", "table", "ip6", "netplumb"]);
        let back = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            our_tables(&ns).unwrap().len() == 2
        });
        let stats = watch.stop();
        assert!(back, "{stats:?}");
        assert_eq!(stats.repairs, 1, "{stats:?}");
        assert_eq!(fw.state().unwrap().networks, ["net0"]);
    });
}

/// How many create/remove rounds each writer makes.
const ROUNDS: usize = 150;

/// Two writers, each with its own handle and netlink socket, create and remove their own
/// networks at the same time. Whenever a writer's network is there, all of its rules and
/// its port are there (a table the other writer found empty was never deleted under
/// it), and after the last removal no table is left.
#[test]
fn concurrent_writers_never_delete_a_filled_table() {
    const NAME: &str = "concurrent_writers_never_delete_a_filled_table";
    common::sandbox(NAME, |s: &Sandbox| {
        let ns = s.host().clone();
        if our_tables(&ns).is_none() {
            return;
        }
        // What each writer's network holds when complete, read in a table of its own.
        let mut reference = Nftables::open_in(&ns).unwrap().with_table("reference");
        let shapes: Vec<(NetworkRules, PortRule)> = (0..2u8)
            .map(|k| {
                let net = if k == 0 {
                    dual("wa", "bra", 10)
                } else {
                    v4("wb", "brb", 11)
                };
                let port = PortRule::new(
                    net.name(),
                    Proto::Tcp,
                    9000 + k as u16,
                    ip(&format!("10.{}.0.2", 10 + k)),
                    80,
                );
                (net, port)
            })
            .collect();
        let mut want = Vec::new();
        for (net, _) in &shapes {
            reference.add_network(net).unwrap();
            let st = reference.state().unwrap();
            let i = st.networks.iter().position(|n| *n == net.name()).unwrap();
            want.push(st.rules[i]);
        }
        reference.flush().unwrap();
        let both = std::sync::Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = shapes
            .into_iter()
            .zip(want)
            .map(|((net, port), rules)| {
                let (ns, both) = (ns.clone(), both.clone());
                std::thread::spawn(move || writer(&ns, (&net, &port, rules), &both))
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(our_tables(&ns).unwrap(), Vec::<String>::new());
    });
}

/// One writer's rounds (its network, its port, how many rules the network makes): add,
/// check complete, remove; finally both writers' networks are there at once, each checked
/// complete, and removed.
fn writer(ns: &Netns, (net, port, rules): (&NetworkRules, &PortRule, usize), both: &AtomicUsize) {
    let mut fw = Nftables::open_in(ns).unwrap();
    let complete = |fw: &mut Nftables, round: usize| {
        let st = fw.state().unwrap();
        let i = st.networks.iter().position(|n| *n == net.name());
        assert_eq!(
            i.map(|i| st.rules[i]),
            Some(rules),
            "round {round}: the rules of {} are incomplete: {st:?}",
            net.name()
        );
        assert!(st.ports.contains(port), "round {round}: {st:?}");
    };
    for round in 0..ROUNDS {
        fw.add_network(net).unwrap();
        fw.publish(std::slice::from_ref(port)).unwrap();
        complete(&mut fw, round);
        complete(&mut fw, round);
        fw.remove_network(net.name()).unwrap();
    }
    fw.add_network(net).unwrap();
    fw.publish(std::slice::from_ref(port)).unwrap();
    meet(both, 2);
    complete(&mut fw, ROUNDS);
    meet(both, 4);
    fw.remove_network(net.name()).unwrap();
}

/// Waits until both writers have reached this point (`count` reaches `n`); fails after
/// 30 s (the other writer failed).
fn meet(count: &AtomicUsize, n: usize) {
    count.fetch_add(1, Ordering::SeqCst);
    let start = Instant::now();
    while count.load(Ordering::SeqCst) < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the other writer failed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
