//! Whole kernel operations, netplumb against `ip -batch` measured in the same run.
//!
//! Every measurement runs in a fresh network namespace made inside `netns::sandbox`, so
//! nothing touches the host. The baseline is `ip -batch FILE` started inside the same kind
//! of fresh namespace; its time is the whole process (start-up included) divided by N.
//!
//! ```text
//! cargo bench --bench kernel
//! NETPLUMB_BENCH_N=100 cargo bench --bench kernel    # quick run
//! ```
//!
//! Environment: `NETPLUMB_BENCH_N` (operations per run, default 1000),
//! `NETPLUMB_BENCH_DELETE_N` (veths deleted one by one, default N; each costs ~16 ms),
//! `NETPLUMB_BENCH_REPS` (runs per measurement, default 5). Results go to
//! `target/bench-results/kernel.json`: one object per row with `name`, `unit`, `median`,
//! `min`, `max`, `n`, `baseline`, `baseline_median` and `ratio` (baseline / netplumb), plus
//! `mean`, `reps`, `baseline_min`, `baseline_max` and `baseline_startup_us`.
//!
//! Without the privileges to make namespaces it prints `SKIPPED kernel bench: ...` and
//! exits 0.

mod common;
use common::{results_dir, stats, Stats};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netplumb::addr::Addr;
use netplumb::link::{Bridge, LinkDel, LinkSet, Veth};
use netplumb::route::Route;
use netplumb::IpNet;
use netplumb::{Netns, Request, Rtnl};

/// Interface group the `ip -batch` bulk-delete baseline uses.
const IP_GROUP: u32 = 99;
/// Pause after a namespace is dropped, so that its cleanup in the kernel's workqueue does
/// not overlap the next measurement.
const SETTLE: Duration = Duration::from_millis(100);

/// What one measurement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    VethCreate,
    AddrAdd,
    RouteAdd,
    VethDelete,
    VethDeleteBulk,
}

/// How netplumb sends the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Rtnl::execute`, one request at a time, each timed.
    OneByOne,
    /// One `Rtnl::execute_batch` call (or `Rtnl::delete_links`), timed as a whole.
    Batched,
}

/// A fresh namespace, a handle on it, and what the work runs against.
struct World {
    ns: Netns,
    rtnl: Rtnl,
    /// The bridge addresses and routes go on.
    dev: u32,
    /// Indexes of the `vethN` ends, for the delete measurements.
    veths: Vec<u32>,
}

/// One line of the table and one object of the JSON file.
struct Row {
    name: &'static str,
    n: usize,
    reps: usize,
    netplumb: Stats,
    /// Per-op `ip -batch` times, one per run.
    baseline: Option<Stats>,
    /// Time of an `ip -batch` of an empty file, in µs (process start-up).
    startup: Option<f64>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.baseline.map(|b| b.median / self.netplumb.median)
    }
}

struct Config {
    n: usize,
    delete_n: usize,
    reps: usize,
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|&x| x > 0)
            .unwrap_or_else(|| panic!("{name}={v:?}: expected a positive integer")),
        Err(_) => default,
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn veth_name(i: usize) -> String {
    format!("veth{i}")
}

fn peer_name(i: usize) -> String {
    format!("vp{i}")
}

/// Address `i`: 10.0.0.1/32 upwards.
fn addr_net(i: usize) -> IpNet {
    let ip = Ipv4Addr::from(0x0a00_0001u32 + i as u32);
    IpNet::new(ip.into(), 32).expect("prefix")
}

/// Route `i`: 10.0.0.0/24, 10.0.1.0/24, ...
fn route_net(i: usize) -> IpNet {
    assert!(i < 1 << 16, "at most 65,536 routes");
    let ip = Ipv4Addr::from(0x0a00_0000u32 + ((i as u32) << 8));
    IpNet::new(ip.into(), 24).expect("prefix")
}

fn veth_specs(n: usize) -> Vec<Veth> {
    (0..n)
        .map(|i| Veth::new(&veth_name(i)).peer(&peer_name(i)))
        .collect()
}

/// Indexes of the `vethN` ends (not their `vpN` peers).
fn veth_indexes(rtnl: &mut Rtnl) -> Vec<u32> {
    let links = rtnl.links().expect("dump links");
    links
        .iter()
        .filter(|l| l.is_kind("veth") && l.name.starts_with("veth"))
        .map(|l| l.index)
        .collect()
}

fn count_veths(rtnl: &mut Rtnl) -> usize {
    let links = rtnl.links().expect("dump links");
    links.iter().filter(|l| l.is_kind("veth")).count()
}

/// A fresh namespace prepared for `work` (untimed).
fn world(work: Work, n: usize) -> World {
    let ns = Netns::new().expect("new namespace");
    let mut rtnl = Rtnl::open_in(&ns).expect("rtnl in namespace");
    let (mut dev, mut veths) = (0, Vec::new());
    match work {
        Work::VethCreate => {}
        Work::AddrAdd | Work::RouteAdd => {
            rtnl.execute(&Bridge::new("br0").stp(false))
                .expect("create br0");
            dev = rtnl.link("br0").expect("br0").index;
            // Routes need the device up (ENETDOWN otherwise); a bridge without ports has
            // no carrier, so nothing is sent.
            rtnl.execute(&LinkSet::new(dev).up()).expect("br0 up");
        }
        Work::VethDelete | Work::VethDeleteBulk => {
            rtnl.execute_batch(&veth_specs(n)).expect("create veths");
            veths = veth_indexes(&mut rtnl);
            assert_eq!(veths.len(), n, "veths created for the delete run");
        }
    }
    World {
        ns,
        rtnl,
        dev,
        veths,
    }
}

/// Checks that the run did all its work, whichever tool ran it.
fn check(w: &mut World, work: Work, n: usize, who: &str) {
    match work {
        Work::VethCreate => {
            let k = count_veths(&mut w.rtnl);
            assert_eq!(k, 2 * n, "{who}: veth ends after creating {n} pairs");
        }
        Work::AddrAdd => {
            let k = w
                .rtnl
                .addrs(Some(w.dev.into()))
                .expect("dump addresses")
                .iter()
                .filter(|a| a.addr.addr().is_ipv4())
                .count();
            assert_eq!(k, n, "{who}: IPv4 addresses on br0");
        }
        Work::RouteAdd => {
            let routes = w.rtnl.main_routes().expect("dump routes");
            let k = routes
                .iter()
                .filter(|r| r.oif == Some(w.dev) && r.dst.prefix_len() == 24)
                .count();
            assert_eq!(k, n, "{who}: /24 routes via br0");
        }
        Work::VethDelete | Work::VethDeleteBulk => {
            let k = count_veths(&mut w.rtnl);
            assert_eq!(k, 0, "{who}: veth ends left after deleting {n} pairs");
        }
    }
}

/// Removes what is left synchronously (so the namespace's cleanup in the kernel has little
/// to do), drops the namespace and waits a moment.
fn teardown(mut w: World) {
    let left = veth_indexes(&mut w.rtnl);
    if !left.is_empty() {
        w.rtnl.delete_links(&left).expect("clean up veths");
    }
    drop(w);
    std::thread::sleep(SETTLE);
}

/// Runs `reqs` with netplumb; returns per-op samples in µs.
fn drive<R: Request>(rtnl: &mut Rtnl, reqs: &[R], mode: Mode) -> Vec<f64> {
    match mode {
        Mode::OneByOne => reqs
            .iter()
            .map(|r| {
                let t = Instant::now();
                rtnl.execute(r).unwrap_or_else(|e| panic!("{r}: {e}"));
                us(t.elapsed())
            })
            .collect(),
        Mode::Batched => {
            let t = Instant::now();
            rtnl.execute_batch(reqs).expect("execute_batch");
            vec![us(t.elapsed()) / reqs.len() as f64]
        }
    }
}

/// One netplumb run of `work` in a fresh namespace; per-op samples in µs.
fn run_netplumb(work: Work, mode: Mode, n: usize) -> Vec<f64> {
    let mut w = world(work, n);
    let dev = w.dev;
    let samples = match work {
        Work::VethCreate => drive(&mut w.rtnl, &veth_specs(n), mode),
        Work::AddrAdd => {
            let reqs: Vec<Addr> = (0..n).map(|i| Addr::new(dev, addr_net(i))).collect();
            drive(&mut w.rtnl, &reqs, mode)
        }
        Work::RouteAdd => {
            let reqs: Vec<Route> = (0..n).map(|i| Route::new(route_net(i)).dev(dev)).collect();
            drive(&mut w.rtnl, &reqs, mode)
        }
        Work::VethDelete => {
            let reqs: Vec<LinkDel> = w.veths.iter().map(|&i| LinkDel::new(i)).collect();
            drive(&mut w.rtnl, &reqs, mode)
        }
        Work::VethDeleteBulk => {
            let t = Instant::now();
            let k = w.rtnl.delete_links(&w.veths).expect("delete_links");
            let per_op = us(t.elapsed()) / n as f64;
            assert_eq!(k, n, "delete_links reported {k} of {n} links deleted");
            vec![per_op]
        }
    };
    check(&mut w, work, n, "netplumb");
    teardown(w);
    samples
}

/// The `ip -batch` file doing `work`.
fn ip_script(work: Work, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        let _ = match work {
            Work::VethCreate => writeln!(
                s,
                "link add {} type veth peer name {}",
                veth_name(i),
                peer_name(i)
            ),
            Work::AddrAdd => writeln!(s, "address add {} dev br0", addr_net(i)),
            Work::RouteAdd => writeln!(s, "route add {} dev br0", route_net(i)),
            Work::VethDelete => writeln!(s, "link del {}", veth_name(i)),
            Work::VethDeleteBulk => writeln!(s, "link set {} group {IP_GROUP}", veth_name(i)),
        };
    }
    if work == Work::VethDeleteBulk {
        let _ = writeln!(s, "link del group {IP_GROUP}");
    }
    s
}

/// Runs `ip -batch FILE` inside `ns`; returns the whole process's wall time.
fn ip_batch(ns: &Netns, file: &Path) -> Duration {
    let mut cmd = Command::new("ip");
    cmd.arg("-batch")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let child = ns.spawn(&mut cmd).expect("spawn ip -batch");
    let out = child.wait_with_output().expect("wait for ip -batch");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "ip -batch {} failed ({}): {}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

/// One `ip -batch` run of `work` in a fresh namespace; per-op time in µs.
fn run_ip(work: Work, n: usize, dir: &Path) -> f64 {
    let file = dir.join(format!("{work:?}.batch"));
    std::fs::write(&file, ip_script(work, n)).expect("write batch file");
    let mut w = world(work, n);
    let per_op = us(ip_batch(&w.ns, &file)) / n as f64;
    check(&mut w, work, n, "ip -batch");
    teardown(w);
    std::fs::remove_file(&file).expect("remove batch file");
    per_op
}

/// `ip -batch` of an empty file in a fresh namespace: the baseline's fixed start-up cost.
fn ip_startup(dir: &Path, reps: usize) -> f64 {
    let file = dir.join("empty.batch");
    std::fs::write(&file, "").expect("write empty batch file");
    let mut v: Vec<f64> = (0..reps.max(3))
        .map(|_| {
            let ns = Netns::new().expect("new namespace");
            us(ip_batch(&ns, &file))
        })
        .collect();
    std::fs::remove_file(&file).expect("remove batch file");
    stats(&mut v).median
}

/// The rows measured against one `ip -batch` baseline: `work` done by netplumb in each of
/// `variants` (row name, mode) and by `ip -batch`, `reps` times, N = `n`.
struct Group {
    work: Work,
    variants: Vec<(&'static str, Mode)>,
    n: usize,
    reps: usize,
}

/// Runs a group, interleaving the tools over `reps` runs (each in a fresh namespace).
/// Returns one row per variant.
fn measure(g: &Group, ip: Option<&Path>) -> Vec<Row> {
    let (work, n, reps) = (g.work, g.n, g.reps);
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); g.variants.len()];
    let mut base = Vec::new();
    let slots = g.variants.len() + usize::from(ip.is_some());
    for rep in 0..reps {
        // Rotate the order from run to run, so that no tool always goes first.
        for k in 0..slots {
            let slot = (k + rep) % slots;
            let (label, tool, per_op) = match (g.variants.get(slot), ip) {
                (Some(&(name, mode)), _) => {
                    let s = run_netplumb(work, mode, n);
                    let med = stats(&mut s.clone()).median;
                    samples[slot].extend(s);
                    (name.to_string(), "netplumb", med)
                }
                (None, Some(dir)) => {
                    let t = run_ip(work, n, dir);
                    base.push(t);
                    (format!("{work:?}"), "ip -batch", t)
                }
                (None, None) => unreachable!("no slot"),
            };
            eprintln!(
                "  {label:<20} run {}/{reps}: {tool:<9} {per_op:>9.2} µs/op",
                rep + 1
            );
        }
    }
    let baseline = (!base.is_empty()).then(|| stats(&mut base));
    g.variants
        .iter()
        .zip(samples.iter_mut())
        .map(|(&(name, _), s)| Row {
            name,
            n,
            reps,
            netplumb: stats(s),
            baseline,
            startup: None,
        })
        .collect()
}

fn ip_available() -> bool {
    Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_all(cfg: &Config) -> Vec<Row> {
    let dir = PathBuf::from(format!("/run/netplumb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create batch dir");
    let ip = ip_available().then_some(dir.as_path());
    if ip.is_none() {
        eprintln!("WARNING: `ip` not found: no ip -batch baseline");
    }
    let startup = ip.map(|d| ip_startup(d, cfg.reps));
    let (n, reps) = (cfg.n, cfg.reps);
    let one_and_batched = |one, batched| vec![(one, Mode::OneByOne), (batched, Mode::Batched)];
    let plan = [
        Group {
            work: Work::VethCreate,
            variants: one_and_batched("veth_create", "veth_create_batched"),
            n,
            reps,
        },
        Group {
            work: Work::AddrAdd,
            variants: one_and_batched("addr_add", "addr_add_batched"),
            n,
            reps,
        },
        Group {
            work: Work::RouteAdd,
            variants: one_and_batched("route_add", "route_add_batched"),
            n,
            reps,
        },
        Group {
            work: Work::VethDelete,
            variants: vec![("veth_delete", Mode::OneByOne)],
            n: cfg.delete_n,
            reps: 1,
        },
        Group {
            work: Work::VethDeleteBulk,
            variants: vec![("veth_delete_bulk", Mode::Batched)],
            n,
            reps,
        },
    ];
    let mut rows = Vec::new();
    for g in &plan {
        eprintln!("{:?}: n = {}, {} run(s)", g.work, g.n, g.reps);
        rows.extend(measure(g, ip));
    }
    for r in &mut rows {
        r.startup = startup;
    }
    std::fs::remove_dir_all(&dir).expect("remove batch dir");
    rows
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "null".into(), |x| format!("{x:.digits$}"))
}

fn json(rows: &[Row]) -> String {
    let mut s = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        let np = r.netplumb;
        let b = r.baseline;
        let baseline = if b.is_some() { "\"ip -batch\"" } else { "null" };
        let _ = write!(
            s,
            "  {{\"name\": \"{}\", \"unit\": \"us\", \"median\": {:.2}, \"min\": {:.2}, \"max\": {:.2}, \
             \"n\": {}, \"baseline\": {baseline}, \"baseline_median\": {}, \"ratio\": {}, \
             \"mean\": {:.2}, \"reps\": {}, \"baseline_min\": {}, \"baseline_max\": {}, \
             \"baseline_startup_us\": {}}}",
            r.name,
            np.median,
            np.min,
            np.max,
            r.n,
            fmt_opt(b.map(|b| b.median), 2),
            fmt_opt(r.ratio(), 3),
            np.mean,
            r.reps,
            fmt_opt(b.map(|b| b.min), 2),
            fmt_opt(b.map(|b| b.max), 2),
            fmt_opt(r.startup, 0),
        );
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("]\n");
    s
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| operation | n | netplumb µs/op (median) | min | max | ip -batch µs/op | ratio |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
            r.name,
            r.n,
            r.netplumb.median,
            r.netplumb.min,
            r.netplumb.max,
            fmt_opt(r.baseline.map(|b| b.median), 1),
            fmt_opt(r.ratio(), 2),
        );
    }
    s
}

fn main() {
    // `cargo bench` passes `--bench` (and maybe filters): nothing here takes arguments.
    let n = env_usize("NETPLUMB_BENCH_N", 1000);
    let cfg = Config {
        n,
        delete_n: env_usize("NETPLUMB_BENCH_DELETE_N", n),
        reps: env_usize("NETPLUMB_BENCH_REPS", 5),
    };
    let started = Instant::now();
    let rows = match netplumb::netns::sandbox(|_| run_all(&cfg)) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!(
                "SKIPPED kernel bench: needs CAP_NET_ADMIN+CAP_SYS_ADMIN to create namespaces ({e})"
            );
            return;
        }
    };
    println!();
    print!("{}", table(&rows));
    if let Some(s) = rows.first().and_then(|r| r.startup) {
        println!(
            "\nip -batch start-up (empty file, included in every baseline): {s:.0} µs per process"
        );
    }
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("create bench-results dir");
    let path = dir.join("kernel.json");
    std::fs::write(&path, json(&rows)).expect("write kernel.json");
    println!("wrote {}", path.display());
}
