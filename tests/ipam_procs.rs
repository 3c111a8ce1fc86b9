//! IPAM across processes, unprivileged, on a SQLite store in a temp dir: 8 processes ×
//! 500 allocations on one /16 at once, then concurrent release; and allocation storms
//! killed with SIGKILL at random points, after which the store must be consistent and
//! have lost no address.
//!
//! The worker processes are this test binary again, running the ignored test
//! `worker_process` with `NETPLUMB_IPAM_WORKER` set. Each worker prints one line per step
//! to stdout, after the step's transaction committed (`HELD`, `FREED`) or before it
//! started (`ALLOC`, `FREEING`), so the parent knows which step a kill interrupted.

#![cfg(feature = "store")]

mod common;
use common::{Rng, TempDir};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netplumb::ipam::{Ipam, IpamError, NetworkSpec, Owner, SqliteStore};

const STORM_NET: &str = "storm";
const STORM_SUBNET: &str = "10.30.0.0/24";

// ---- the worker side ----

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

/// Waits for the parent's start signal (a file), so that all workers begin together.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no start signal");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Not a test: the body of the worker processes the tests below start.
#[test]
#[ignore = "run as a worker process by the tests in this file"]
fn worker_process() {
    let Ok(mode) = std::env::var("NETPLUMB_IPAM_WORKER") else {
        eprintln!("worker_process: only runs as a child of the multi-process IPAM tests");
        return;
    };
    let db = PathBuf::from(env("NETPLUMB_IPAM_DB"));
    let id = env("NETPLUMB_IPAM_ID");
    let ipam = Ipam::open(&db).unwrap();
    wait_for(&db.with_file_name("go"));
    let mut out = std::io::stdout().lock();
    match mode.as_str() {
        "alloc" => {
            for i in 0..env("NETPLUMB_IPAM_COUNT").parse().unwrap() {
                let l = ipam
                    .allocate("big", &Owner::new(format!("p{id}-{i}"), "eth0"))
                    .unwrap();
                writeln!(out, "HELD {} {}", l.address, l.owner.container).unwrap();
            }
        }
        "release" => {
            let mut freed = 0;
            for i in 0..env("NETPLUMB_IPAM_COUNT").parse().unwrap() {
                let o = Owner::new(format!("p{id}-{i}"), "eth0");
                freed += usize::from(ipam.release_owner("big", &o).unwrap().was_held());
            }
            writeln!(out, "FREED_COUNT {freed}").unwrap();
        }
        "storm" => storm(&ipam, &id, &mut out),
        m => panic!("unknown worker mode {m}"),
    }
}

/// Allocates and releases until killed (or, if nobody kills it, for at most 60 s).
fn storm(ipam: &Ipam, id: &str, out: &mut impl Write) {
    let spec = NetworkSpec::new(STORM_NET).subnet(STORM_SUBNET.parse().unwrap());
    match ipam.create_network(&spec) {
        Ok(_) | Err(IpamError::NetworkExists { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let (mut rng, mut mine) = (Rng::from_clock(), Vec::<(IpAddr, String)>::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0.. {
        if Instant::now() > deadline {
            break;
        }
        let owner = format!("{id}-{i}");
        writeln!(out, "ALLOC {owner}").unwrap();
        match ipam.allocate(STORM_NET, &Owner::new(owner.as_str(), "eth0")) {
            Ok(l) => {
                writeln!(out, "HELD {} {owner}", l.address).unwrap();
                mine.push((l.address, owner));
            }
            Err(IpamError::Exhausted { .. }) => writeln!(out, "EXHAUSTED {owner}").unwrap(),
            Err(e) => panic!("{e}"),
        }
        if !mine.is_empty() && rng.below(2) == 0 {
            let (a, o) = mine.swap_remove(rng.below(mine.len()));
            writeln!(out, "FREEING {a} {o}").unwrap();
            assert!(
                ipam.release(STORM_NET, a).unwrap().was_held(),
                "{a} of {o} was lost"
            );
            writeln!(out, "FREED {a} {o}").unwrap();
        }
    }
}

// ---- the parent side ----

/// A running worker and the thread draining its stdout (so it never blocks on the pipe).
struct Worker {
    child: Child,
    reader: std::thread::JoinHandle<String>,
    /// Whether the worker has printed a `HELD` line yet.
    started: Arc<AtomicBool>,
}

fn spawn(mode: &str, db: &Path, id: &str, count: usize) -> Worker {
    let mut child = common::worker_command()
        .env("NETPLUMB_IPAM_WORKER", mode)
        .env("NETPLUMB_IPAM_DB", db)
        .env("NETPLUMB_IPAM_ID", id)
        .env("NETPLUMB_IPAM_COUNT", count.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let reader = std::thread::spawn(move || {
        let (mut s, mut buf) = (String::new(), [0u8; 4096]);
        loop {
            match stdout.read(&mut buf).unwrap() {
                0 => return s,
                n => s.push_str(std::str::from_utf8(&buf[..n]).expect("ASCII output")),
            }
            if !seen.load(Ordering::Relaxed) && s.contains("HELD ") {
                seen.store(true, Ordering::Relaxed);
            }
        }
    });
    Worker {
        child,
        reader,
        started,
    }
}

/// Waits for a worker to exit by itself; panics if it failed.
fn finish(mut w: Worker) -> String {
    let status = w.child.wait().unwrap();
    let out = w.reader.join().unwrap();
    assert!(status.success(), "worker failed ({status}):\n{out}");
    out
}

fn lines<'a>(out: &'a str, tag: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.strip_prefix(tag)?.strip_prefix(' '))
        .collect()
}

#[test]
fn eight_processes_allocate_4000_distinct_addresses_on_one_slash_16() {
    let dir = TempDir::new("8x500");
    let db = dir.0.join("ipam.db");
    let ipam = Ipam::open(&db).unwrap();
    let subnet: netplumb::IpNet = "10.40.0.0/16".parse().unwrap();
    ipam.create_network(&NetworkSpec::new("big").subnet(subnet))
        .unwrap();

    let workers: Vec<Worker> = (0..8)
        .map(|p| spawn("alloc", &db, &p.to_string(), 500))
        .collect();
    std::fs::write(dir.0.join("go"), "").unwrap();
    let outs: Vec<String> = workers.into_iter().map(finish).collect();
    let mut seen: HashMap<IpAddr, &str> = HashMap::new();
    for line in outs.iter().flat_map(|o| lines(o, "HELD")) {
        let (a, owner) = line.split_once(' ').unwrap();
        let a: IpAddr = a.parse().unwrap();
        assert!(
            subnet.contains(&a) && a != "10.40.0.1".parse::<IpAddr>().unwrap(),
            "{a}"
        );
        if let Some(prev) = seen.insert(a, owner) {
            panic!("{a} handed to {prev} and {owner}");
        }
    }
    assert_eq!(seen.len(), 4000);
    let leases = ipam.leases("big").unwrap();
    assert_eq!(leases.len(), 4000);
    assert!(leases
        .iter()
        .all(|l| seen.get(&l.address) == Some(&l.owner.container.as_str())));
    ipam.store().check().unwrap();

    release_concurrently(&ipam, &db);
}

/// Phase two of the 8 × 500 test: the same 8 processes' owners released at once.
fn release_concurrently(ipam: &Ipam, db: &Path) {
    std::fs::remove_file(db.with_file_name("go")).unwrap();
    let workers: Vec<Worker> = (0..8)
        .map(|p| spawn("release", db, &p.to_string(), 500))
        .collect();
    std::fs::write(db.with_file_name("go"), "").unwrap();
    for out in workers.into_iter().map(finish) {
        assert_eq!(lines(&out, "FREED_COUNT"), ["500"], "{out}");
    }
    assert!(ipam.leases("big").unwrap().is_empty());
    ipam.store().check().unwrap();
    // 4,000 addresses from 10.40.0.2 end at 10.40.15.161; next-free goes on after it,
    // skipping the address released last.
    let last = ipam
        .network("big")
        .unwrap()
        .last_released
        .unwrap()
        .to_string();
    let next = ipam
        .allocate("big", &Owner::new("after", "eth0"))
        .unwrap()
        .address
        .to_string();
    let want = if last == "10.40.15.162" {
        "10.40.15.163"
    } else {
        "10.40.15.162"
    };
    assert_eq!(next, want);
}

/// What one killed storm worker's log says about the store.
#[derive(Default)]
struct Replay {
    /// Committed and not released: must be in the store with this owner.
    held: BTreeMap<IpAddr, String>,
    /// The step the kill interrupted, which may or may not have committed.
    in_flight_alloc: Option<String>,
    in_flight_free: Option<(IpAddr, String)>,
}

fn replay(out: &str) -> Replay {
    let mut r = Replay::default();
    // A line cut by the kill has no newline: drop it.
    let complete = &out[..out.rfind('\n').map_or(0, |i| i + 1)];
    for line in complete.lines() {
        let mut f = line.split(' ');
        match (f.next(), f.next(), f.next()) {
            (Some("ALLOC"), Some(o), None) => r.in_flight_alloc = Some(o.to_string()),
            (Some("EXHAUSTED"), Some(_), None) => r.in_flight_alloc = None,
            (Some("HELD"), Some(a), Some(o)) => {
                r.in_flight_alloc = None;
                assert!(
                    r.held.insert(a.parse().unwrap(), o.to_string()).is_none(),
                    "{a} held twice"
                );
            }
            (Some("FREEING"), Some(a), Some(o)) => {
                r.in_flight_free = Some((a.parse().unwrap(), o.to_string()))
            }
            (Some("FREED"), Some(a), Some(o)) => {
                r.in_flight_free = None;
                assert_eq!(r.held.remove(&a.parse().unwrap()).as_deref(), Some(o));
            }
            _ => {} // the test harness's own lines
        }
    }
    if let Some((a, _)) = &r.in_flight_free {
        r.held.remove(a);
    }
    r
}

/// One round: `n` workers storm the store, each is killed at a random moment, and the
/// store is checked.
fn storm_round(db: &Path, round: usize, n: usize, rng: &mut Rng) {
    let _ = std::fs::remove_file(db.with_file_name("go"));
    let mut workers: Vec<Worker> = (0..n)
        .map(|w| spawn("storm", db, &format!("r{round}w{w}"), 0))
        .collect();
    std::fs::write(db.with_file_name("go"), "").unwrap();
    // Kill only once every worker is under way, so a slow machine cannot fail this.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !workers.iter().all(|w| w.started.load(Ordering::Relaxed)) {
        assert!(
            Instant::now() < deadline,
            "workers did not start allocating"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50 + rng.below(300) as u64));
    for w in &mut workers {
        std::thread::sleep(Duration::from_millis(rng.below(25) as u64));
        w.child.kill().unwrap(); // SIGKILL
    }
    let (mut replays, mut stats) = (Vec::new(), [0; 3]);
    for mut w in workers {
        let status = w.child.wait().unwrap();
        let out = w.reader.join().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "worker did not die of the SIGKILL:\n{out}"
        );
        assert!(
            out.contains("HELD"),
            "worker was killed before it allocated anything:\n{out}"
        );
        let steps = ["HELD", "FREED", "EXHAUSTED"].map(|t| lines(&out, t).len());
        for (total, n) in stats.iter_mut().zip(steps) {
            *total += n;
        }
        replays.push(replay(&out));
    }
    let in_flight = replays
        .iter()
        .filter(|r| r.in_flight_alloc.is_some() || r.in_flight_free.is_some())
        .count();
    eprintln!(
        "round {round}: {} allocations, {} releases, {} exhausted; {in_flight} of {n} killed mid-step",
        stats[0], stats[1], stats[2]
    );
    check_after_storm(db, &replays);
}

fn check_after_storm(db: &Path, replays: &[Replay]) {
    let ipam = Ipam::new(SqliteStore::open(db).unwrap());
    ipam.store().check().unwrap();
    let store: HashMap<IpAddr, String> = ipam
        .leases(STORM_NET)
        .unwrap()
        .into_iter()
        .map(|l| (l.address, l.owner.container))
        .collect();
    let mut maybe: HashSet<(IpAddr, String)> = HashSet::new();
    for r in replays {
        for (a, o) in &r.held {
            assert_eq!(store.get(a), Some(o), "{a} held by {o} was lost");
        }
        maybe.extend(r.in_flight_free.clone());
        if let Some(o) = &r.in_flight_alloc {
            maybe.extend(
                store
                    .iter()
                    .filter(|(_, so)| *so == o)
                    .map(|(a, so)| (*a, so.clone())),
            );
        }
    }
    let known = replays.iter().flat_map(|r| r.held.iter()).count();
    let extra: Vec<_> = store
        .iter()
        .filter(|(a, o)| !replays.iter().any(|r| r.held.get(a) == Some(o)))
        .collect();
    assert!(
        extra
            .iter()
            .all(|(a, o)| maybe.contains(&(**a, (*o).clone()))),
        "unexplained leases {extra:?}"
    );
    assert_eq!(store.len(), known + extra.len());
    gc_then_refill(&ipam, replays, store.len());
}

/// Garbage collection with half the workers "live", then with none; then every address of
/// the range can be handed out again (none was lost), and then the range is full.
fn gc_then_refill(ipam: &Ipam, replays: &[Replay], leases: usize) {
    let live: Vec<Owner> = replays
        .iter()
        .step_by(2)
        .flat_map(|r| r.held.values())
        .map(|o| Owner::new(o.as_str(), "eth0"))
        .collect();
    let freed = ipam.gc(&live).unwrap();
    let left = ipam.leases(STORM_NET).unwrap();
    assert_eq!(freed.len() + left.len(), leases);
    assert!(
        left.iter().all(|l| live.contains(&l.owner)),
        "gc kept a dead owner's lease"
    );
    assert_eq!(ipam.gc(&[]).unwrap().len(), left.len());
    let cap = ipam.network(STORM_NET).unwrap().capacity() as usize;
    let mut all = HashSet::new();
    for i in 0..cap {
        assert!(all.insert(
            ipam.allocate(STORM_NET, &Owner::new(format!("check{i}"), "eth0"))
                .unwrap()
                .address
        ));
    }
    assert!(matches!(
        ipam.allocate(STORM_NET, &Owner::new("one-more", "eth0")),
        Err(IpamError::Exhausted { .. })
    ));
    assert_eq!(ipam.gc(&[]).unwrap().len(), cap);
    ipam.store().check().unwrap();
}

#[test]
fn kill_9_in_the_middle_of_allocation_storms_loses_nothing() {
    let dir = TempDir::new("storm");
    let db = dir.0.join("ipam.db");
    let mut rng = Rng::from_clock();
    eprintln!("storm seed {:#x}", rng.0);
    // Round 0 starts on no database at all: the workers race to create it.
    for round in 0..5 {
        storm_round(&db, round, 6, &mut rng);
    }
}
