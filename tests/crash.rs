//! Crash recovery: a child process storms `connect`/`disconnect`/`disconnect_many` on one
//! bridge network and is killed with SIGKILL at a random moment. Right after the kill,
//! each container has its lease, its host port and its record, or none of them (one
//! transaction of the runtime database writes all three), and `gc` later finds no lease
//! or host port to release that a disconnect did not. Then some containers "die" (half
//! of them also lose their namespace), and `Host::gc(live)` must leave:
//! - no record of a dead container, and every record backed by its veth on the bridge,
//!   its address and MAC inside the container, its lease, its host port in the runtime
//!   database and its published port in the firewall;
//! - no veth on the bridge, lease, host port or published port that no record
//!   explains, no `eth0` in a container that has no record, no two records with the same
//!   address or host port, no `hosts` entry of a peer that is gone;
//! - nothing to do for a second `gc`;
//! - live containers that still work: each answers on its address from the host, and on
//!   its published port from another machine (a namespace on an uplink).
//!
//! Half of each round's new containers are not made by the parent but `run` by the child:
//! it creates and names their namespaces itself (the whole path of `netplumb run`:
//! [`Host::container_netns`] into the `NetnsDir`, connect, files, record) and sometimes
//! removes them again (`rm`: disconnect, then delete the name). Half the rounds kill the
//! child just after it starts such a `run`, so that it dies inside namespace creation.
//! After each kill, [`NetnsDir::gc`] must leave the folder holding only mounted
//! namespaces, each one a container the parent knows.
//!
//! Eight rounds per firewall backend, each with new containers beside the survivors of the
//! earlier ones; at the end every container dies and `gc` must bring the sandbox back to
//! the network alone. The seed is printed; `NETPLUMB_CRASH_SEED` replays one.
//!
//! The child is this test binary again, running the ignored test `worker_process` with
//! `NETPLUMB_CRASH_WORKER` set. The parent starts it from the sandbox's thread, so it
//! lives in the sandbox's network and mount namespaces; it opens the containers'
//! namespaces by name in the parent's temporary `NetnsDir`, and the records in the
//! parent's temporary state folder.

#![cfg(feature = "store")]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Rng, TempDir};
use netplumb::firewall::{Backend, Firewall};
use netplumb::netns::Sandbox;
use netplumb::network::files::HostsFile;
use netplumb::network::{Attachment, Container, Host, NetworkConfig, NetworkMode};
use netplumb::{Netns, NetnsDir, Rtnl};

const NET: &str = "crash";
const ROUNDS: usize = 8;
const NEW_PER_ROUND: usize = 8;

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

/// Container `id`: its namespace from `dir`, a files folder, a published port, and a
/// `--link` to the container before it in `ids` (ICC is off on the network).
fn container(dir: &NetnsDir, files: &Path, id: &str, ids: &[String]) -> Container {
    let ns = dir.open(id).unwrap();
    let mut c = Container::new(id, &ns)
        .name(id)
        .files(files.join(id))
        .expose(netplumb::firewall::Proto::Tcp, 80)
        .publish("80".parse().unwrap());
    let at = ids.iter().position(|i| i == id).unwrap();
    if at > 0 {
        c = c.link(&ids[at - 1]);
    }
    c
}

// ---- the child ----

/// Not a test: the body of the child process the crash tests start and kill.
#[test]
#[ignore = "run as a worker process by the tests in this file"]
fn worker_process() {
    let Ok(backend) = std::env::var("NETPLUMB_CRASH_WORKER") else {
        eprintln!("worker_process: only runs as a child of the crash tests");
        return;
    };
    let host = Netns::current().unwrap();
    assert_eq!(
        host.inode().to_string(),
        env("NETPLUMB_CRASH_NETNS"),
        "not in the sandbox"
    );
    let state = PathBuf::from(env("NETPLUMB_CRASH_STATE"));
    let dir = NetnsDir::new(env("NETPLUMB_CRASH_NETNS_DIR"));
    let ids: Vec<String> = env("NETPLUMB_CRASH_IDS")
        .split(',')
        .map(str::to_owned)
        .collect();
    // The containers this child runs and removes itself, namespace included.
    let run_ids: Vec<String> = env("NETPLUMB_CRASH_RUN_IDS")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let mode = NetworkMode::Bridge(NET.to_owned());
    let mut rng = Rng(env("NETPLUMB_CRASH_SEED").parse().unwrap());
    let mut h = Host::open_with(&host, &state, backend.parse().unwrap()).unwrap();
    let mut out = std::io::stdout().lock();
    // Half the children defer link deletion: killed, they leave pending veths for gc.
    if rng.below(2) == 0 {
        h.defer_link_deletion(true).unwrap();
        writeln!(out, "DEFERRED").unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let connected: Vec<String> = h
            .attachments(Some(NET))
            .unwrap()
            .into_iter()
            .map(|a| a.container)
            .collect();
        let id = &ids[rng.below(ids.len())];
        let runs = run_ids.contains(id);
        let files = state.join("files");
        if runs && dir.open(id).is_err_and(|e| e.is_not_found()) {
            // `run`: name a new namespace, then connect it.
            writeln!(out, "RUN {id}").unwrap();
            out.flush().unwrap();
            h.container_netns(&mode, id, Some(&dir)).unwrap();
            h.connect(NET, &container(&dir, &files, id, &ids)).unwrap();
        } else if runs && rng.below(3) == 0 {
            // `rm`: disconnect (a no-op when not connected), then delete the name.
            writeln!(out, "RM {id}").unwrap();
            h.disconnect(NET, id).unwrap();
            dir.delete(id).unwrap();
        } else if connected.len() > 2 && rng.below(6) == 0 {
            let some: Vec<&str> = connected.iter().take(3).map(String::as_str).collect();
            writeln!(out, "DISCONNECT_MANY {some:?}").unwrap();
            h.disconnect_many(NET, &some).unwrap();
        } else if connected.contains(id) {
            writeln!(out, "DISCONNECT {id}").unwrap();
            h.disconnect(NET, id).unwrap();
        } else {
            writeln!(out, "CONNECT {id}").unwrap();
            h.connect(NET, &container(&dir, &files, id, &ids)).unwrap();
        }
        writeln!(out, "OK").unwrap();
    }
}

// ---- the parent ----

/// The child and the thread draining its output; `ok` counts finished steps, `runs` the
/// `run`s it started.
struct Worker {
    child: Child,
    reader: std::thread::JoinHandle<String>,
    ok: Arc<AtomicUsize>,
    runs: Arc<AtomicUsize>,
}

/// When the parent kills the child.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after its n-th finished step: anywhere in the next step.
    AfterSteps(usize, Duration),
    /// This long after it starts its n-th `run`: mostly inside namespace creation.
    InRun(usize, Duration),
}

fn spawn(w: &World, ids: &[String], run_ids: &[String], seed: u64) -> Worker {
    let mut child = common::worker_command()
        .env("NETPLUMB_CRASH_WORKER", w.backend.as_str())
        .env("NETPLUMB_CRASH_NETNS", w.host_ns.inode().to_string())
        .env("NETPLUMB_CRASH_STATE", &w.state)
        .env("NETPLUMB_CRASH_NETNS_DIR", w.dir.dir())
        .env("NETPLUMB_CRASH_IDS", ids.join(","))
        .env("NETPLUMB_CRASH_RUN_IDS", run_ids.join(","))
        .env("NETPLUMB_CRASH_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (seen, started) = (ok.clone(), runs.clone());
    let reader = std::thread::spawn(move || {
        let (mut s, mut buf) = (String::new(), [0u8; 4096]);
        loop {
            match stdout.read(&mut buf).unwrap() {
                0 => return s,
                n => s.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
            seen.store(s.matches("OK\n").count(), Ordering::Relaxed);
            started.store(s.matches("RUN ").count(), Ordering::Relaxed);
        }
    });
    Worker {
        child,
        reader,
        ok,
        runs,
    }
}

/// Kills the child with SIGKILL at `when`, then waits for it and for every process it left
/// in the sandbox (an `iptables-restore` finishes its change).
fn kill_at(mut w: Worker, when: Kill, host: &Netns) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    let (counter, n, delay) = match when {
        Kill::AfterSteps(n, d) => (&w.ok, n, d),
        Kill::InRun(n, d) => (&w.runs, n, d),
    };
    while counter.load(Ordering::Relaxed) < n {
        assert!(Instant::now() < deadline, "the child made no progress");
        if let Some(st) = w.child.try_wait().unwrap() {
            panic!(
                "the child ended by itself ({st}):\n{}",
                w.reader.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(delay);
    w.child.kill().unwrap();
    let status = w.child.wait().unwrap();
    let out = w.reader.join().unwrap();
    assert_eq!(status.signal(), Some(9), "the child failed:\n{out}");
    let ns = format!("net:[{}]", host.inode());
    let pids = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|p| p.file_name().to_string_lossy().parse::<u32>().is_ok())
    };
    while pids().any(|p| {
        std::fs::read_link(p.path().join("ns/net")).is_ok_and(|l| l.to_string_lossy() == ns)
    }) {
        std::thread::sleep(Duration::from_millis(5));
    }
    out
}

struct World {
    backend: Backend,
    host_ns: Netns,
    outside: Netns,
    state: PathBuf,
    dir: NetnsDir,
    /// Containers started so far, and whether each is still alive.
    alive: BTreeMap<String, bool>,
    /// Containers whose namespace has a server on port 80.
    serving: HashSet<String>,
}

/// After a kill: `NetnsDir::gc` removes what the dead child half made, and then the folder
/// holds only mounted namespaces, one for each container that has not lost its own.
/// Returns the names gc removed.
fn netns_folder(w: &World) -> Vec<String> {
    // No other maker is alive in the sandbox: a half-made name of any age is abandoned.
    let removed = w.dir.clone().stale_after(Duration::ZERO).gc().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(w.dir.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        w.dir.list().unwrap(),
        "files in the namespace folder that are no mounted namespace (gc removed {removed:?})"
    );
    // This thread's mount namespace (the sandbox's), not the process's.
    let table = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    let mounted: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).parent() == Some(w.dir.dir()))
        .collect();
    for f in &files {
        assert!(
            mounted.iter().any(|m| m.ends_with(&format!("/{f}"))),
            "{f} is not in the mount table"
        );
        assert!(w.alive.contains_key(f), "{f}: a namespace of no container");
    }
    removed
}

/// The links, addresses, firewall, leases, host ports and records, as text.
fn snapshot(h: &mut Host) -> String {
    let mut r = Rtnl::open_in(h.netns()).unwrap();
    let links: Vec<String> = r.links().unwrap().into_iter().map(|l| l.name).collect();
    let addrs: Vec<String> = r
        .addrs(None)
        .unwrap()
        .iter()
        .filter(|a| a.addr.addr().is_ipv4())
        .map(|a| a.addr.to_string())
        .collect();
    let fw = h.firewall().state().unwrap();
    let leases = h.ipam().leases(NET).unwrap();
    let ports = h.published_ports().unwrap();
    let atts = h.attachments(None).unwrap();
    format!("{links:?}\n{addrs:?}\n{fw:?}\n{leases:?}\n{ports:?}\n{atts:?}")
}

/// Right after the kill, before `gc`: each container has its lease, its host port and its
/// record, or none of them (one transaction writes all three).
fn one_transaction(h: &mut Host, during: &str) {
    let records: BTreeSet<(String, String, u16)> = h
        .attachments(Some(NET))
        .unwrap()
        .iter()
        .map(|a| {
            let addr = a.addrs[0].addr().to_string();
            (a.container.clone(), addr, a.ports[0].host_port)
        })
        .collect();
    let leases: BTreeSet<(String, String)> = h
        .ipam()
        .leases(NET)
        .unwrap()
        .into_iter()
        .map(|l| (l.owner.container, l.address.to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = records
        .iter()
        .map(|(c, a, _)| (c.clone(), a.clone()))
        .collect();
    assert_eq!(
        leases, want,
        "killed in {during}: leases and records differ"
    );
    let ports: BTreeSet<u16> = h
        .published_ports()
        .unwrap()
        .iter()
        .map(|p| p.host_port)
        .collect();
    let want: BTreeSet<u16> = records.iter().map(|(_, _, p)| *p).collect();
    assert_eq!(
        ports, want,
        "killed in {during}: host ports and records differ"
    );
}

/// Everything `gc` promises (see the file's docs), for the containers in `w.alive`.
fn check(h: &mut Host, w: &mut World) {
    let atts: Vec<Attachment> = h.attachments(Some(NET)).unwrap();
    let mut r = Rtnl::open_in(&w.host_ns).unwrap();
    let ports_on_bridge = common::bridge_ports(&mut r, "br-crash");
    let veths: BTreeSet<String> = atts.iter().map(|a| a.host_veth.clone()).collect();
    assert_eq!(ports_on_bridge, veths, "bridge ports and records differ");
    let (mut addrs, mut host_ports) = (HashSet::new(), HashSet::new());
    for a in &atts {
        assert_eq!(
            w.alive.get(&a.container),
            Some(&true),
            "record of a dead container: {a:?}"
        );
        assert!(addrs.insert(a.addrs[0].addr()), "{} twice", a.addrs[0]);
        assert!(
            host_ports.insert(a.ports[0].host_port),
            "{} twice",
            a.ports[0]
        );
        let mut inside = Rtnl::open_in(&w.dir.open(&a.container).unwrap()).unwrap();
        let eth0 = inside.link("eth0").unwrap();
        assert_eq!(eth0.mac, a.mac, "{a:?}");
        let have = inside.addrs(Some((&eth0).into())).unwrap();
        assert!(have.iter().any(|x| x.addr == a.addrs[0]), "{a:?}: {have:?}");
    }
    let leases: BTreeSet<(String, String)> = h
        .ipam()
        .leases(NET)
        .unwrap()
        .into_iter()
        .map(|l| (l.address.to_string(), l.owner.container))
        .collect();
    let want: BTreeSet<(String, String)> = atts
        .iter()
        .map(|a| (a.addrs[0].addr().to_string(), a.container.clone()))
        .collect();
    assert_eq!(leases, want, "leases and records differ");
    let fw: BTreeSet<(u16, String)> = h
        .firewall()
        .state()
        .unwrap()
        .ports
        .iter()
        .map(|p| (p.host_port, p.container_ip.to_string()))
        .collect();
    let want: BTreeSet<(u16, String)> = atts
        .iter()
        .map(|a| (a.ports[0].host_port, a.addrs[0].addr().to_string()))
        .collect();
    assert_eq!(fw, want, "published ports and records differ");
    let registry: BTreeSet<u16> = h
        .published_ports()
        .unwrap()
        .iter()
        .map(|p| p.host_port)
        .collect();
    let host_ports: BTreeSet<u16> = host_ports.into_iter().collect();
    assert_eq!(registry, host_ports, "registry and records differ");
    check_containers(w, &atts);
    let removed = netns_folder(w);
    assert!(removed.is_empty(), "half-made names after gc: {removed:?}");
    let again = h.gc(&live(w)).unwrap();
    assert_eq!(again, Default::default(), "a second gc found work");
}

/// No `eth0` where there is no record; `hosts` files name exactly the recorded peers;
/// every connected live container answers from the host and through its published port.
fn check_containers(w: &mut World, atts: &[Attachment]) {
    for (id, _) in w.alive.iter().filter(|(_, live)| **live) {
        let Some(a) = atts.iter().find(|a| &a.container == id) else {
            let mut inside = Rtnl::open_in(&w.dir.open(id).unwrap()).unwrap();
            let e = inside.link("eth0").unwrap_err();
            assert!(e.is_not_found(), "{id} has an eth0 but no record");
            continue;
        };
        let text = std::fs::read_to_string(w.state.join("files").join(id).join("hosts")).unwrap();
        let mut peers: Vec<String> = HostsFile::parse(&text)
            .peers()
            .iter()
            .map(|e| e.names()[0].clone())
            .collect();
        peers.sort();
        let mut want: Vec<String> = atts
            .iter()
            .filter(|b| &b.container != id)
            .map(|b| b.name.clone())
            .collect();
        want.sort();
        assert_eq!(peers, want, "peers in the hosts file of {id}");
        let ns = w.dir.open(id).unwrap();
        if w.serving.insert(id.clone()) {
            common::serve_peer(&ns, "0.0.0.0:80".parse().unwrap());
        }
        let direct = SocketAddr::new(a.addrs[0].addr(), 80);
        assert!(
            common::call_peer(&w.host_ns, direct).is_some(),
            "{id} at {direct}"
        );
        let published = SocketAddr::new("192.0.2.1".parse().unwrap(), a.ports[0].host_port);
        assert!(
            common::call_peer(&w.outside, published).is_some(),
            "{id} through {published}"
        );
    }
}

fn live(w: &World) -> Vec<&str> {
    w.alive
        .iter()
        .filter(|(_, l)| **l)
        .map(|(id, _)| id.as_str())
        .collect()
}

/// One round: new containers, a storm killed at a random step, deaths, `gc`, checks.
fn round(h: &mut Host, w: &mut World, n: usize, rng: &mut Rng) {
    // The first half the parent makes; the child runs the rest itself.
    let mut run_ids = Vec::new();
    for i in 0..NEW_PER_ROUND {
        let id = format!("r{n}c{i}");
        if i < NEW_PER_ROUND / 2 {
            w.dir.create(&id).unwrap();
        } else {
            run_ids.push(id.clone());
        }
        std::fs::create_dir_all(w.state.join("files").join(&id)).unwrap();
        w.alive.insert(id, true);
    }
    let ids: Vec<String> = live(w).into_iter().map(str::to_owned).collect();
    let when = if rng.below(2) == 0 {
        Kill::AfterSteps(
            5 + rng.below(40),
            Duration::from_micros(rng.below(20_000) as u64),
        )
    } else {
        Kill::InRun(
            1 + rng.below(2),
            Duration::from_micros(rng.below(1_500) as u64),
        )
    };
    let out = kill_at(spawn(w, &ids, &run_ids, rng.next()), when, &w.host_ns);
    let last = out.lines().rev().find(|l| *l != "OK").unwrap_or("");
    one_transaction(h, last);
    // A container the child did not get to run (or removed) has no namespace: it never
    // existed. One it ran lives on like the others.
    let half_made = netns_folder(w);
    for id in &run_ids {
        if w.dir.open(id).is_err_and(|e| e.is_not_found()) {
            w.alive.remove(id);
        }
    }
    let ids: Vec<String> = ids
        .into_iter()
        .filter(|i| w.alive.contains_key(i))
        .collect();
    // Some containers die; half of the dead lose their namespace (and so their veth end).
    let mut died = Vec::new();
    for id in &ids {
        if rng.below(3) != 0 {
            continue;
        }
        w.alive.insert(id.clone(), false);
        if rng.below(2) == 0 {
            w.dir.delete(id).unwrap();
        }
        died.push(id.clone());
    }
    let report = h.gc(&live(w)).unwrap();
    // Disconnecting the dead released their leases and ports; nothing else is left over.
    assert!(report.leases.is_empty(), "unexplained leases: {report:?}");
    assert!(
        !report.ports.iter().any(|p| p.starts_with("registry:")),
        "unexplained host ports: {report:?}"
    );
    eprintln!(
        "round {n}: killed {when:?} (in: {last}); half-made names removed {half_made:?}; died {died:?}; \
         gc: {} disconnected, {} stray links, {} leases, {} ports, {} hosts files",
        report.disconnected.len(),
        report.stray_links.len(),
        report.leases.len(),
        report.ports.len(),
        report.hosts.len()
    );
    check(h, w);
}

fn storms(s: &Sandbox, backend: Backend, state: &Path, netns: &Path) {
    let mut rng = match std::env::var("NETPLUMB_CRASH_SEED") {
        Ok(seed) => Rng(seed.parse().unwrap()),
        Err(_) => Rng::from_clock(),
    };
    eprintln!("crash seed {} ({backend})", rng.0);
    let mut w = World {
        backend,
        host_ns: s.host().clone(),
        outside: common::outside(s),
        state: state.to_owned(),
        dir: NetnsDir::new(netns),
        alive: BTreeMap::new(),
        serving: HashSet::new(),
    };
    let mut h = Host::open_with(s.host(), state, backend).unwrap();
    h.create_network(
        &NetworkConfig::new(NET)
            .subnet("10.120.0.0/24".parse().unwrap())
            .bridge("br-crash")
            .icc(false),
    )
    .unwrap();
    let clean = snapshot(&mut h);
    for n in 0..ROUNDS {
        round(&mut h, &mut w, n, &mut rng);
    }
    // Everyone dies: gc leaves the network as it was made.
    for l in w.alive.values_mut() {
        *l = false;
    }
    h.gc(&[]).unwrap();
    check(&mut h, &mut w);
    assert_eq!(snapshot(&mut h), clean);
}

fn crash_test(name: &str, backend: Backend) {
    // Made outside the sandbox, so that they are removed after its mounts are gone.
    let (state, netns) = (TempDir::new("crash-state"), TempDir::new("crash-netns"));
    common::sandbox(name, |s| {
        if let Err(e) = netplumb::firewall::open(backend, s.host()) {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{name}: {e}");
            common::skip(name, format_args!("cannot open the firewall backend: {e}"));
            return;
        }
        storms(s, backend, &state.0, &netns.0)
    });
}

#[test]
fn kill_9_during_connect_and_disconnect_storms_then_gc_nftables() {
    crash_test(
        "kill_9_during_connect_and_disconnect_storms_then_gc_nftables",
        Backend::Nftables,
    );
}

#[cfg(feature = "iptables")]
#[test]
fn kill_9_during_connect_and_disconnect_storms_then_gc_iptables() {
    crash_test(
        "kill_9_during_connect_and_disconnect_storms_then_gc_iptables",
        Backend::Iptables,
    );
}
