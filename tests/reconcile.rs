//! Self-repair through `network::Host`: someone else removes our firewall objects (`nft
//! flush ruleset`, a deleted or emptied table, flushed chains and sets, flushed iptables
//! chains and deleted jumps) while traffic flows; `Host::reconcile` (or, with no call, the
//! watcher of `Host::watch_firewall`) puts them back from the records.
//!
//! Each test runs once per backend where it applies (`nftables::NAME`, and with the
//! `iptables` feature `iptables::NAME`). `nft` and `iptables` run only as witnesses and
//! as the "someone else", inside the sandbox's namespace.
//!
//! ```text
//! outside 192.0.2.2 --uplink-- host 192.0.2.1, network "bridge" 172.17.0.0/16 (docker0), ICC off:
//!   web   172.17.0.2  -p 8080:80, --expose 80
//!   cli   172.17.0.3  --link web
//!   other 172.17.0.4  --expose 81 (a plain bridge port: only the firewall keeps it from web)
//! ```

#![cfg(feature = "store")]

mod common;

use common::no_dad;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netplumb::firewall::{Backend, Firewall, Proto};
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::Netns;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(self::ip(ip), port)
}

backend_tests!(
    removed_rules_come_back_with_reconcile,
    the_watcher_repairs_without_a_call,
);

/// The nf_tables-only cases (a table of ours deleted, re-created empty, partly flushed).
mod nftables_only {
    use netplumb::firewall::Backend;

    #[test]
    fn a_deleted_or_emptied_table_comes_back() {
        crate::common::with_backend(
            "nftables_only::a_deleted_or_emptied_table_comes_back",
            Backend::Nftables,
            netplumb::firewall::open,
            super::a_deleted_or_emptied_table_comes_back,
        );
    }

    #[test]
    fn flushed_chains_and_sets_come_back() {
        crate::common::with_backend(
            "nftables_only::flushed_chains_and_sets_come_back",
            Backend::Nftables,
            netplumb::firewall::open,
            super::flushed_chains_and_sets_come_back,
        );
    }
}

struct World {
    h: Host,
    outside: Netns,
    web: Netns,
    cli: Netns,
    other: Netns,
    /// The port on `outside` that answers with the caller's address.
    echo: u16,
}

fn world(s: &Sandbox, backend: Backend) -> World {
    no_dad(s.host());
    let mut h = Host::open_with(s.host(), "/run/netplumb-test", backend).unwrap();
    let outside = common::outside(s);
    h.create_network(
        &NetworkConfig::new("bridge")
            .subnet("172.17.0.0/16".parse().unwrap())
            .icc(false),
    )
    .unwrap();
    let ns = |name| {
        let n = s.netns_dir().create(name).unwrap();
        no_dad(&n);
        n
    };
    let (web, cli, other) = (ns("web"), ns("cli"), ns("other"));
    let c = |id: &str, n: &Netns| Container::new(id, n).name(id);
    h.connect(
        "bridge",
        &c("web", &web)
            .expose(Proto::Tcp, 80)
            .publish("8080:80".parse().unwrap()),
    )
    .unwrap();
    h.connect("bridge", &c("cli", &cli).link("web")).unwrap();
    h.connect("bridge", &c("other", &other).expose(Proto::Tcp, 81))
        .unwrap();
    common::serve_peer(&web, sa("0.0.0.0", 80));
    let echo = common::serve_peer(&outside, sa("0.0.0.0", 0));
    World {
        h,
        outside,
        web,
        cli,
        other,
        echo,
    }
}

/// What the firewall must give, checked with traffic: the published port from outside,
/// outbound masquerade, the `--link`, and ICC off for a container without one. `true`
/// when all of it holds; with `expect`, fails naming what does not.
fn works(w: &World, expect: bool) -> bool {
    let checks = [
        (
            "published port 192.0.2.1:8080 from outside",
            common::call_peer(&w.outside, sa("192.0.2.1", 8080)).as_deref() == Some("192.0.2.2"),
        ),
        (
            "outbound masquerade (the outside sees the host's address)",
            common::call_peer(&w.web, sa("192.0.2.2", w.echo)).as_deref() == Some("192.0.2.1"),
        ),
        (
            "--link cli -> web:80",
            common::call_peer(&w.cli, sa("172.17.0.2", 80)).is_some(),
        ),
        (
            "ICC off: other -> web:80 blocked",
            common::call_peer(&w.other, sa("172.17.0.2", 80)).is_none(),
        ),
    ];
    for (what, ok) in &checks {
        assert!(!expect || *ok, "{what}");
    }
    checks.iter().all(|(_, ok)| *ok)
}

/// Which binaries the iptables backend under test runs (`iptables` unless the host has
/// only the legacy ones), and whether they are the nf_tables variant.
fn iptables_bins(ns: &Netns) -> (&'static str, &'static str, bool) {
    let v = common::run_in(ns, "iptables", &["--version"]).unwrap_or_default();
    ("iptables", "ip6tables", v.contains("nf_tables"))
}

/// The ruleset as a sorted list of lines (element and rule order aside), for comparing
/// the repaired ruleset with the original.
fn listing(w: &World, backend: Backend) -> Option<Vec<String>> {
    let text = match backend {
        Backend::Nftables => common::run_in(w.h.netns(), "nft", &["list", "ruleset"])?,
        _ => {
            let (v4, v6, _) = iptables_bins(w.h.netns());
            common::run_in(w.h.netns(), &format!("{v4}-save"), &[])?
                + &common::run_in(w.h.netns(), &format!("{v6}-save"), &[])?
        }
    };
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) => l[..i].to_owned(),
            _ => l.trim().to_owned(),
        })
        .collect();
    lines.sort();
    Some(lines)
}

/// Someone else removes our objects: `nft flush ruleset`; with iptables, our chains are
/// flushed and the jumps to them deleted.
fn vandalise(w: &World, backend: Backend) {
    let ns = w.h.netns();
    match backend {
        Backend::Nftables => {
            common::run_in(ns, "nft", &["flush", "ruleset"]).expect("nft is needed as a witness");
        }
        _ => {
            let (v4, _, _) = iptables_bins(ns);
            for args in [
                &["-t", "nat", "-F", "DOCKER"][..],
                &["-t", "nat", "-F", "PREROUTING"],
                &["-F", "DOCKER"],
                &["-F", "DOCKER-ISOLATION-STAGE-1"],
                &["-F", "DOCKER-ISOLATION-STAGE-2"],
                &["-F", "FORWARD"],
            ] {
                common::run_in(ns, v4, args).expect("iptables");
            }
        }
    }
}

/// Connections to the published port from outside, made over and over until stopped:
/// (made, answered) per phase.
struct Load {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<[(u32, u32); 3]>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(outside: &Netns) -> Load {
        let (phase, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let seen = Arc::new(Mutex::new([(0, 0); 3]));
        let (p, st, sn, ns) = (phase.clone(), stop.clone(), seen.clone(), outside.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let ph = p.load(Ordering::Relaxed);
                let ok = common::call_peer(&ns, sa("192.0.2.1", 8080)).is_some();
                if p.load(Ordering::Relaxed) == ph {
                    let mut s = sn.lock().unwrap();
                    s[ph].0 += 1;
                    s[ph].1 += u32::from(ok);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Load {
            phase,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Moves to `phase` once the current one has seen a connection.
    fn next(&self, phase: usize) {
        while self.seen.lock().unwrap()[self.phase.load(Ordering::Relaxed)].0 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.phase.store(phase, Ordering::Relaxed);
    }

    fn finish(mut self) -> [(u32, u32); 3] {
        self.next(2);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let s = *self.seen.lock().unwrap();
        s
    }
}

fn removed_rules_come_back_with_reconcile(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    works(&w, true);
    let before = listing(&w, backend);
    let state = w.h.firewall().state().unwrap();
    assert!(
        w.h.reconcile().unwrap().is_empty(),
        "an intact ruleset needs nothing"
    );
    assert_eq!(listing(&w, backend), before, "and nothing was written");
    let load = Load::start(&w.outside);
    load.next(1);
    vandalise(&w, backend);
    assert_eq!(
        common::call_peer(&w.outside, sa("192.0.2.1", 8080)),
        None,
        "the published port is gone with the rules"
    );
    assert!(!works(&w, false));
    load.next(2);
    let report = w.h.reconcile().unwrap();
    assert!(report.skipped.is_empty(), "{report:?}");
    let fixed = &report.firewall;
    assert_eq!(fixed.networks, ["bridge"], "{fixed}");
    assert_eq!(fixed.ports.len(), 1, "{fixed}");
    assert_eq!(fixed.ports[0].host_port, 8080);
    assert!(!fixed.skeleton.is_empty(), "{fixed}");
    if backend == Backend::Nftables {
        assert!(
            fixed.skeleton.iter().any(|x| x == "table ip netplumb"),
            "{fixed}"
        );
    }
    works(&w, true);
    let seen = load.finish();
    assert!(seen[0].1 > 0, "traffic before: {seen:?}");
    assert!(seen[2].1 > 0, "traffic after the repair: {seen:?}");
    assert_eq!(w.h.firewall().state().unwrap(), state);
    assert_eq!(listing(&w, backend), before, "the same ruleset as before");
    assert!(
        w.h.reconcile().unwrap().is_empty(),
        "a second reconcile finds nothing to do"
    );
    // With iptables-nft, `nft flush ruleset` takes the iptables tables too.
    let nft_based = backend != Backend::Nftables && iptables_bins(w.h.netns()).2;
    if nft_based && common::run_in(w.h.netns(), "nft", &["flush", "ruleset"]).is_some() {
        assert!(!works(&w, false));
        assert!(!w.h.reconcile().unwrap().is_empty());
        works(&w, true);
        assert_eq!(listing(&w, backend), before);
    }
}

fn the_watcher_repairs_without_a_call(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    if backend != Backend::Nftables && !iptables_bins(w.h.netns()).2 {
        common::not_applicable_here("iptables-legacy sends no change notifications");
        return;
    }
    let before = listing(&w, backend);
    let watch = w.h.watch_firewall(Duration::from_millis(200)).unwrap();
    // Our own changes are not damage: a container comes and goes.
    let extra = s.netns_dir().create("extra").unwrap();
    w.h.connect(
        "bridge",
        &Container::new("extra", &extra).publish("9090:90".parse().unwrap()),
    )
    .unwrap();
    w.h.disconnect("bridge", "extra").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(watch.stats().damage, 0, "{:?}", watch.stats());
    vandalise(&w, backend);
    // No call: poll until the watcher has put things back (a generous deadline).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !works(&w, false) {
        assert!(
            Instant::now() < deadline,
            "not repaired in time: {:?}",
            watch.stats()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    works(&w, true);
    let stats = watch.stop();
    assert!(stats.repairs >= 1, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert_eq!(listing(&w, backend), before);
    assert!(w.h.reconcile().unwrap().is_empty());
}

fn a_deleted_or_emptied_table_comes_back(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    let ns = w.h.netns().clone();
    let Some(before) = listing(&w, backend) else {
        common::skip_here("no nft binary");
        return;
    };
    // Only our IPv4 table goes: only it comes back.
    common::run_in(&ns, "nft", &["delete", "table", "ip", "netplumb"]);
    assert_eq!(common::call_peer(&w.outside, sa("192.0.2.1", 8080)), None);
    let fixed = w.h.reconcile().unwrap().firewall;
    assert_eq!(fixed.skeleton, ["table ip netplumb"], "{fixed}");
    assert_eq!(fixed.networks, ["bridge"]);
    works(&w, true);
    assert_eq!(listing(&w, backend).unwrap(), before);
    // A firewalld-style reload: deleted and made again, empty.
    common::run_in(
        &ns,
        "nft",
        &["delete table ip netplumb; add table ip netplumb"],
    );
    let fixed = w.h.reconcile().unwrap().firewall;
    for x in [
        "set ip netplumb ports",
        "chain ip netplumb forward",
        "rules of chain ip netplumb forward",
    ] {
        assert!(fixed.skeleton.iter().any(|s| s == x), "{x}: {fixed}");
    }
    assert_eq!(fixed.ports.len(), 1, "{fixed}");
    works(&w, true);
    assert_eq!(listing(&w, backend).unwrap(), before);
    assert!(w.h.reconcile().unwrap().is_empty());
}

fn flushed_chains_and_sets_come_back(s: &Sandbox, backend: Backend) {
    let mut w = world(s, backend);
    let ns = w.h.netns().clone();
    let Some(before) = listing(&w, backend) else {
        common::skip_here("no nft binary");
        return;
    };
    let cases: [(&[&str], &str); 5] = [
        (
            &["flush", "chain", "ip", "netplumb", "forward"],
            "rules of chain ip netplumb forward",
        ),
        (&["flush", "chain", "ip", "netplumb", "postrouting"], ""),
        (&["flush", "map", "ip", "netplumb", "ports_any"], ""),
        (&["flush", "set", "ip", "netplumb", "published"], ""),
        (
            &["flush", "table", "ip", "netplumb"],
            "rules of chain ip netplumb prerouting",
        ),
    ];
    for (args, skeleton) in cases {
        common::run_in(&ns, "nft", args);
        assert!(!works(&w, false), "{args:?} broke something");
        let fixed = w.h.reconcile().unwrap().firewall;
        assert!(!fixed.is_empty(), "{args:?}");
        if !skeleton.is_empty() {
            assert!(
                fixed.skeleton.iter().any(|x| x == skeleton),
                "{args:?}: {fixed}"
            );
        }
        works(&w, true);
        assert_eq!(listing(&w, backend).unwrap(), before, "{args:?}");
        assert!(w.h.reconcile().unwrap().is_empty(), "{args:?}");
    }
    // The users' chain keeps its rules through a repair of the forward chain.
    common::run_in(
        &ns,
        "nft",
        &[
            "add",
            "rule",
            "ip",
            "netplumb",
            "user",
            "ip",
            "saddr",
            "198.51.100.9",
            "drop",
        ],
    );
    common::run_in(&ns, "nft", &["flush", "chain", "ip", "netplumb", "forward"]);
    w.h.reconcile().unwrap();
    let l = common::run_in(&ns, "nft", &["list", "chain", "ip", "netplumb", "user"]).unwrap();
    assert!(l.contains("ip saddr 198.51.100.9 drop"), "{l}");
    works(&w, true);
}
