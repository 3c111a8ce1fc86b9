//! Side by side with the peers: attaching and detaching containers on one bridge with
//! outbound masquerade and one published port each (host port `8000 + i` → 80/tcp), by
//! netplumb (`Host::connect`; `Host::disconnect` one by one and `Host::disconnect_many`),
//! the CNI reference plugins (bridge + host-local + portmap, run as libcni runs a
//! network list), netavark 1.4 (iptables driver), and a hand-written `ip -batch` +
//! `iptables-restore --noflush` script (the process-based floor). netplumb's CNI plugin
//! (`examples/netplumb-cni`, a process per call) runs beside them and is compared with
//! the reference chain (rows `attach_cni_plugin_N_vs_cni`, `detach_cni_plugin_N_vs_cni`).
//!
//! ```text
//! benches/peers/run.sh                                  # installs the peers, checks the host, runs
//! cargo bench --bench peers                             # the harness alone
//! NETPLUMB_PEERS_COUNTS=1,50 cargo bench --bench peers  # quick run
//! ```
//!
//! Every subject runs in its own fresh sandbox (`netns::sandbox`: fresh network and mount
//! namespaces on a thread, private `/run`) per count, on a thread of its own (a "lane");
//! the peers' processes are started from that thread, so they act in the sandbox, never on
//! the host. At each count the subjects run one after another, each alone: a subject's
//! links keep the kernel busy after its calls return (the peers' containers have IPv6, so
//! duplicate address probes and multicast reports flood their bridge from kernel workers
//! that take the global rtnl lock), and taking turns container by container charged that
//! work to whoever ran next.
//! Count 1 is `REPS` rounds of one attach and one detach; count N > 1 is N attaches in a
//! row, then N detaches (and for netplumb, N more attaches and one `disconnect_many`).
//! Per-container times are medians over the containers. One container per run is checked
//! once attached: it reaches an outside namespace through masquerade, and its published
//! port is reachable from there. After the detaches nothing may be left (veths, DNAT
//! rules, records, leases).
//!
//! Environment: `NETPLUMB_PEERS_COUNTS` (default `1,50,500`), `NETPLUMB_PEERS_REPS`
//! (rounds at count 1, default 20), `NETPLUMB_PEERS` (which peers, default
//! `ipbatch,netavark,cni,netplumb-cni`), `NETPLUMB_PEERS_SLOW_MAX` (the largest count CNI and netavark
//! run at; default: all). Writes `target/bench-results/peers.json` (and every sample to
//! `peers-samples.csv` beside it). Without privileges it prints `SKIPPED peers bench: ...`
//! and exits 0.

mod cni;
#[path = "../common/mod.rs"]
mod common;
mod ipbatch;
mod lane;
mod netavark;
mod ours;
mod ours_cni;
mod world;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{results_dir, stats, Stats};
use lane::{Cmd, Lane};
use world::{Ctr, World};

/// What is measured: attach and detach one container.
pub trait Subject {
    /// Attaches `c` (network, address, masquerade, its published port).
    fn attach(&mut self, c: &Ctr) -> Result<(), String>;
    /// Detaches `c`, leaving nothing of it behind.
    fn detach(&mut self, c: &Ctr) -> Result<(), String>;
    /// Detaches all of `cs` at once (only netplumb can; only it is asked).
    fn detach_many(&mut self, _cs: &[Ctr]) -> Result<(), String> {
        Err("no bulk detach".into())
    }
    /// Detaches `c`, leaving the link deletion to a background thread (netplumb only).
    fn detach_deferred(&mut self, _c: &Ctr) -> Result<(), String> {
        Err("no deferred detach".into())
    }
    /// Waits for deferred link deletions (netplumb only).
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Checks that nothing is left once every container is detached.
    fn finish(&mut self) -> Result<(), String>;
}

/// Who runs.
#[derive(Clone)]
enum Who {
    Ours,
    IpBatch,
    Netavark(PathBuf),
    Cni(PathBuf),
    /// netplumb's CNI plugin, a process per call like the reference chain.
    OursCni(PathBuf),
}

impl Who {
    fn open(&self, w: &World) -> Result<Box<dyn Subject>, String> {
        Ok(match self {
            Who::Ours => Box::new(ours::Ours::open(w)?),
            Who::IpBatch => Box::new(ipbatch::IpBatch::open(w)?),
            Who::Netavark(bin) => Box::new(netavark::Netavark::open(bin)?),
            Who::Cni(dir) => Box::new(cni::Cni::open(dir)?),
            Who::OursCni(bin) => Box::new(ours_cni::OursCni::open(bin)?),
        })
    }

    /// The peers that fork processes per container and take long at 500.
    fn slow(&self) -> bool {
        matches!(self, Who::Netavark(_) | Who::Cni(_))
    }
}

/// A subject found on this machine.
struct Peer {
    who: Who,
    key: &'static str,
    label: String,
}

/// One subject's samples at one count, µs.
#[derive(Default)]
struct Samples {
    attach: Vec<f64>,
    detach: Vec<f64>,
    /// `detach_many` of all, per container.
    many: Option<f64>,
    /// One-by-one detaches with deferred link deletion (netplumb only).
    deferred: Vec<f64>,
    /// Untimed network setup (netplumb: `create_network`).
    setup_us: f64,
}

/// A subject in a run: its lane while it works, its samples, its failure.
struct Entrant<'p> {
    peer: &'p Peer,
    lane: Option<Lane>,
    samples: Samples,
    error: Option<String>,
}

/// Gives every live entrant one turn, starting with entrant `k`. A failure ends that
/// entrant's lane. (`run_count` passes one entrant at a time.)
fn turn(
    es: &mut [Entrant],
    k: usize,
    mut f: impl FnMut(&Lane, &mut Samples) -> Result<(), String>,
) {
    let n = es.len();
    for j in 0..n {
        let e = &mut es[(j + k) % n];
        let Some(lane) = e.lane.as_ref() else {
            continue;
        };
        if let Err(err) = f(lane, &mut e.samples) {
            eprintln!("  {} FAILED: {err}", e.peer.key);
            e.error = Some(err);
            e.lane = None;
        }
    }
}

/// Count 1: `reps` rounds of attach + detach of one container (netplumb: then attach and
/// a deferred detach too), each in a namespace of its own; the first is checked.
fn rounds(es: &mut [Entrant], reps: usize) {
    for r in 0..reps {
        turn(es, r, |l, s| {
            s.attach.push(l.call(Cmd::Attach(r))?);
            if r == 0 {
                l.call(Cmd::Check(r))?;
            }
            Ok(())
        });
        turn(es, r, |l, s| {
            s.detach.push(l.call(Cmd::Detach(r))?);
            if l.ours {
                l.call(Cmd::Attach(r))?;
                s.deferred.push(l.call(Cmd::DetachDeferred(r))?);
                l.call(Cmd::Flush)?;
            }
            l.call(Cmd::DropAll).map(|_| ())
        });
    }
}

/// Count N: N attaches, a check of the last container, N detaches; then netplumb attaches
/// the N again and detaches them at once.
fn fill(es: &mut [Entrant], n: usize) {
    let t = Instant::now();
    for i in 0..n {
        turn(es, i, |l, s| {
            l.call(Cmd::Attach(i)).map(|us| s.attach.push(us))
        });
        if (i + 1) % (n / 5).max(1) == 0 {
            eprintln!(
                "  {} attached each, {:.0} s",
                i + 1,
                t.elapsed().as_secs_f64()
            );
        }
    }
    turn(es, 0, |l, _| l.call(Cmd::Check(n - 1)).map(|_| ()));
    for i in 0..n {
        turn(es, i, |l, s| {
            l.call(Cmd::Detach(i)).map(|us| s.detach.push(us))
        });
        if (i + 1) % (n / 5).max(1) == 0 {
            eprintln!(
                "  {} detached each, {:.0} s",
                i + 1,
                t.elapsed().as_secs_f64()
            );
        }
    }
    if let Some(e) = es.iter_mut().find(|e| matches!(e.peer.who, Who::Ours)) {
        if let Some(l) = &e.lane {
            match ours_extra(l, &mut e.samples, n) {
                Ok(()) => {}
                Err(err) => e.error = Some(err),
            }
        }
    }
    turn(es, 0, |l, _| l.call(Cmd::DropAll).map(|_| ()));
}

/// netplumb's other ways to detach N: all at once (`disconnect_many`), and one by one
/// with deferred link deletion (after attaching the N again each time; the last
/// deletions are waited for untimed).
fn ours_extra(l: &Lane, s: &mut Samples, n: usize) -> Result<(), String> {
    s.many = Some(l.call(Cmd::DetachMany)? / n as f64);
    for i in 0..n {
        l.call(Cmd::Attach(i))?;
    }
    for i in 0..n {
        s.deferred.push(l.call(Cmd::DetachDeferred(i))?);
    }
    l.call(Cmd::Flush).map(|_| ())
}

/// Runs every subject at count `n`, one after another, each alone in its own fresh
/// sandbox, with a pause after each for the kernel to finish destroying it.
fn run_count<'p>(subjects: &[&'p Peer], n: usize, reps: usize) -> Vec<Entrant<'p>> {
    let mut out = Vec::with_capacity(subjects.len());
    for &peer in subjects {
        let (lane, error) = match Lane::start(peer.who.clone()) {
            Ok(l) => (Some(l), None),
            Err(e) => (None, Some(e)),
        };
        let setup_us = lane.as_ref().map_or(0.0, |l| l.setup_us);
        let mut es = vec![Entrant {
            peer,
            lane,
            samples: Samples {
                setup_us,
                ..Samples::default()
            },
            error,
        }];
        if n == 1 {
            rounds(&mut es, reps);
        } else {
            fill(&mut es, n);
        }
        turn(&mut es, 0, |l, _| l.call(Cmd::Finish).map(|_| ()));
        es[0].lane = None; // the sandbox goes
                           // Let the kernel finish destroying the sandbox's namespaces (and the timers of
                           // their links) before the next subject starts.
        std::thread::sleep(Duration::from_millis(500 + 8 * n as u64));
        out.extend(es);
    }
    out
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(key: &str, default: &str) -> Vec<String> {
    std::env::var(key)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The peers asked for that are installed.
fn peers() -> Vec<Peer> {
    let mut out = Vec::new();
    for key in env_list("NETPLUMB_PEERS", "ipbatch,netavark,cni,netplumb-cni") {
        let found = match key.as_str() {
            "ipbatch" => ipbatch::available().then(|| Peer {
                who: Who::IpBatch,
                key: "ipbatch",
                label: ipbatch::label(),
            }),
            "netavark" => netavark::binary().map(|b| Peer {
                label: netavark::label(&b),
                who: Who::Netavark(b),
                key: "netavark",
            }),
            "cni" => cni::plugin_dir().map(|d| Peer {
                who: Who::Cni(d),
                key: "cni",
                label: cni::label(),
            }),
            "netplumb-cni" => ours_cni::binary().map(|b| Peer {
                who: Who::OursCni(b),
                key: "netplumb-cni",
                label: "netplumb-cni (this crate's CNI plugin)".into(),
            }),
            other => panic!("unknown peer {other:?} (ipbatch, netavark, cni, netplumb-cni)"),
        };
        match found {
            Some(p) => out.push(p),
            None => eprintln!("{key} is not installed (benches/peers/run.sh installs it): skipped"),
        }
    }
    out
}

/// One JSON entry / table line: netplumb against one peer at one count.
struct Row {
    name: String,
    ours: Stats,
    ours_n: usize,
    ours_tail: f64,
    base: Stats,
    base_n: usize,
    base_tail: f64,
    label: String,
    count: usize,
    ours_setup: f64,
    base_setup: f64,
}

/// The median of the last tenth of the samples (the containers attached last).
fn tail(v: &[f64]) -> f64 {
    let k = (v.len() / 10).max(1);
    stats(&mut v[v.len() - k..].to_vec()).median
}

fn rows_for(n: usize, p: &Peer, ours: &Samples, base: &Samples) -> Vec<Row> {
    let row = |name: String, o: &[f64], b: &[f64]| Row {
        name,
        ours: stats(&mut o.to_vec()),
        ours_n: o.len(),
        ours_tail: tail(o),
        base: stats(&mut b.to_vec()),
        base_n: b.len(),
        base_tail: tail(b),
        label: p.label.clone(),
        count: n,
        ours_setup: ours.setup_us,
        base_setup: base.setup_us,
    };
    let k = p.key;
    let mut out = vec![
        row(format!("attach_{n}_vs_{k}"), &ours.attach, &base.attach),
        row(format!("detach_{n}_vs_{k}"), &ours.detach, &base.detach),
    ];
    if let Some(m) = ours.many {
        let mut r = row(format!("detach_many_{n}_vs_{k}"), &[m], &base.detach);
        r.ours_n = n;
        out.push(r);
    }
    if !ours.deferred.is_empty() {
        out.push(row(
            format!("detach_deferred_{n}_vs_{k}"),
            &ours.deferred,
            &base.detach,
        ));
    }
    out
}

fn json(rows: &[Row]) -> String {
    let objs: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"name\": \"{}\", \"unit\": \"us\", \"median\": {:.2}, \"min\": {:.2}, \"max\": {:.2}, \
                 \"n\": {}, \"baseline\": {:?}, \"baseline_median\": {:.2}, \"ratio\": {:.2}, \
                 \"mean\": {:.2}, \"tail_median\": {:.2}, \"baseline_min\": {:.2}, \"baseline_max\": {:.2}, \
                 \"baseline_mean\": {:.2}, \"baseline_tail_median\": {:.2}, \"baseline_n\": {}, \
                 \"containers\": {}, \"setup_us\": {:.0}, \"baseline_setup_us\": {:.0}, \"checked\": true}}",
                r.name,
                r.ours.median,
                r.ours.min,
                r.ours.max,
                r.ours_n,
                r.label,
                r.base.median,
                r.base.median / r.ours.median,
                r.ours.mean,
                r.ours_tail,
                r.base.min,
                r.base.max,
                r.base.mean,
                r.base_tail,
                r.base_n,
                r.count,
                r.ours_setup,
                r.base_setup,
            )
        })
        .collect();
    format!("[\n  {}\n]\n", objs.join(",\n  "))
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| entry | n | netplumb µs (median) | last 10 % | peer µs (median) | last 10 % | ratio |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} |",
            r.name,
            r.ours_n,
            r.ours.median,
            r.ours_tail,
            r.base.median,
            r.base_tail,
            r.base.median / r.ours.median
        );
    }
    s
}

/// Every sample of `e`, one CSV line each.
fn samples_csv(csv: &mut String, n: usize, e: &Entrant) {
    let k = e.peer.key;
    for (op, v) in [
        ("attach", &e.samples.attach),
        ("detach", &e.samples.detach),
        ("detach_deferred", &e.samples.deferred),
    ] {
        for (i, us) in v.iter().enumerate() {
            let _ = writeln!(csv, "{n},{k},{op},{i},{us:.1}");
        }
    }
    if let Some(us) = e.samples.many {
        let _ = writeln!(csv, "{n},{k},detach_many_per_container,0,{us:.1}");
    }
}

/// The host namespace's link names (this thread never leaves it): read only, to check
/// that the run left the real host as it found it.
fn host_links() -> Vec<String> {
    let here = netplumb::Netns::current().expect("this thread's namespace");
    let mut r = netplumb::Rtnl::open_in(&here).expect("rtnl on the host");
    let mut v: Vec<String> = r
        .links()
        .expect("host links")
        .into_iter()
        .map(|l| l.name)
        .collect();
    v.sort();
    v
}

fn main() {
    if let Err(e) = netplumb::netns::sandbox(|_| ()) {
        println!("SKIPPED peers bench: needs CAP_NET_ADMIN+CAP_SYS_ADMIN ({e})");
        return;
    }
    let counts: Vec<usize> = env_list("NETPLUMB_PEERS_COUNTS", "1,50,500")
        .iter()
        .map(|c| c.parse().expect("NETPLUMB_PEERS_COUNTS: numbers"))
        .filter(|&c| c > 0)
        .collect();
    let reps = env_usize("NETPLUMB_PEERS_REPS", 20).max(1);
    let slow_max = env_usize("NETPLUMB_PEERS_SLOW_MAX", usize::MAX);
    let peers = peers();
    let before = host_links();
    let started = Instant::now();
    let ours = Peer {
        who: Who::Ours,
        key: "netplumb",
        label: "netplumb".into(),
    };
    let (mut rows, mut failed, mut csv) = (Vec::new(), Vec::new(), String::new());
    csv.push_str("count,subject,op,index,us\n");
    for &n in &counts {
        let mut subjects = vec![&ours];
        for p in &peers {
            if p.who.slow() && n > slow_max {
                eprintln!(
                    "count {n}: {} skipped (NETPLUMB_PEERS_SLOW_MAX={slow_max})",
                    p.key
                );
            } else {
                subjects.push(p);
            }
        }
        let keys: Vec<&str> = subjects.iter().map(|p| p.key).collect();
        eprintln!("count {n}: {}", keys.join(", "));
        let es = run_count(&subjects, n, reps);
        if let Some(e) = &es[0].error {
            panic!("netplumb at {n}: {e}");
        }
        for e in &es {
            samples_csv(&mut csv, n, e);
        }
        // The CNI plugin against the reference chain, both a process per call.
        let key = |k: &str| es.iter().find(|e| e.peer.key == k && e.error.is_none());
        if let (Some(p), Some(r)) = (key("netplumb-cni"), key("cni")) {
            let mut pair = rows_for(n, r.peer, &p.samples, &r.samples);
            for row in &mut pair {
                row.name = row.name.replacen('_', "_cni_plugin_", 1);
            }
            rows.extend(pair);
        }
        for e in &es[1..] {
            if matches!(e.peer.who, Who::OursCni(_)) {
                if let Some(err) = &e.error {
                    eprintln!("netplumb-cni at {n} FAILED: {err}");
                    failed.push(format!("netplumb-cni@{n}"));
                }
                continue;
            }
            match &e.error {
                None => rows.extend(rows_for(n, e.peer, &es[0].samples, &e.samples)),
                Some(err) => {
                    eprintln!("{} at {n} FAILED: {err}", e.peer.key);
                    failed.push(format!("{}@{n}", e.peer.key));
                }
            }
        }
    }
    println!();
    print!("{}", table(&rows));
    println!("total bench time: {:.0} s", started.elapsed().as_secs_f64());
    let after = host_links();
    assert_eq!(before, after, "the host's links changed");
    println!("host links unchanged: {}", after.join(" "));
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("create bench-results dir");
    let path = dir.join("peers.json");
    std::fs::write(&path, json(&rows)).expect("write peers.json");
    println!("wrote {}", path.display());
    std::fs::write(dir.join("peers-samples.csv"), csv).expect("write peers-samples.csv");
    if !failed.is_empty() {
        eprintln!("failed: {}", failed.join(", "));
        std::process::exit(1);
    }
}
