//! Firewall changes with the native nf_tables backend ([`Nftables`]), against `nft -f`
//! doing the same change in the same run.
//!
//! Every measurement runs in fresh network namespaces made inside `netns::sandbox`, so
//! nothing touches the host's ruleset.
//!
//! - `publish_port_at_K` (K = 1, 100, 1,000): one `Nftables::publish(&[rule])` call (one
//!   atomic batch adding the port to `ports_any` and `published`) while K ports are already
//!   published. The K ports go in first with one big `publish` call; then each sample
//!   publishes a fresh port (timed) and withdraws it again (not timed), so the maps hold K
//!   ports at every sample. The netplumb samples run back to back; then, in the same
//!   namespace, the baseline: `nft -f FILE` adding the same two elements (same key, value
//!   and comment) to the same tables.
//! - `network_base_rules`: `Nftables::add_network` in a fresh namespace: our tables, their
//!   sets, base chains and skeleton rules, and the network's rules, one batch (opening
//!   the netlink socket is not timed; `open_us` reports it). Baseline: `nft -f FILE` in a
//!   fresh namespace, where FILE is the `nft list ruleset` listing of what netplumb
//!   created, taken at the start of the run (and checked: loading it yields the same
//!   state as netplumb's call).
//!
//! The `nft` times are the whole process (start-up included), as a runtime that shells out
//! pays them. They are taken at nft's best: each run starts after [`drain`], so that the
//! process does not also wait, when it closes its netlink socket, for the kernel's deferred
//! cleanup of an earlier deletion (an RCU grace period, 12–16 ms on these machines). That
//! wait is real for a runtime that deletes and adds ports in quick succession; it is
//! reported apart (`baseline_after_delete_median`: `nft -f` right after a deletion).
//!
//! ```text
//! cargo bench --bench firewall
//! NETPLUMB_FW_REPS=50 NETPLUMB_FW_NET_REPS=10 cargo bench --bench firewall   # quick run
//! ```
//!
//! Environment: `NETPLUMB_FW_REPS` (samples per publish row, default 200),
//! `NETPLUMB_FW_NET_REPS` (samples of `network_base_rules`, default 50),
//! `NETPLUMB_FW_SHOW_SCRIPT` (set: print the base-rules `nft` script). Results go to
//! `target/bench-results/firewall.json`: the common fields of benches/README.md plus `mean`,
//! `baseline_min`, `baseline_max`, `baseline_after_delete_median` (publish rows),
//! `baseline_startup_us` (an empty `nft -f` in the same kind of namespace), `prefilled`
//! (publish rows) and `open_us` (`network_base_rules`).
//!
//! Without the privileges to make namespaces it prints `SKIPPED firewall bench: ...` and
//! exits 0. Without an `nft` binary the baseline fields are `null`.

mod common;
use common::{results_dir, stats, Stats};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netplumb::firewall::{Firewall, NetworkRules, Nftables, PortRule, Proto};
use netplumb::Netns;

/// Ports already published before the `publish_port_at_K` samples.
const PREFILL: [usize; 3] = [1, 100, 1000];
/// First host port of the pre-filled ports, and of the measured ones.
const PREFILL_BASE: u16 = 10_000;
const SAMPLE_BASE: u16 = 40_000;
/// Unmeasured publishes before each row's samples (first-touch effects).
const WARMUP: usize = 5;
/// Runs of an empty `nft -f` per row, for the baseline's start-up cost.
const STARTUP_REPS: usize = 20;
/// Runs of `nft -f` right after a deletion per publish row.
const AFTER_DELETE_REPS: usize = 30;
/// Pause after a namespace is dropped, so that its cleanup in the kernel's workqueue does
/// not overlap the next measurement.
const SETTLE: Duration = Duration::from_millis(20);

const NETWORK: &str = "net0";
const CONTAINER: &str = "10.77.0.2";
/// The comment netplumb puts on a network's set elements (mirrored by the nft files).
const ELEM_COMMENT: &str = "netplumb net=net0";

/// One line of the table and one object of the JSON file.
struct Row {
    name: String,
    n: usize,
    netplumb: Stats,
    baseline: Option<Stats>,
    /// Ports published before each sample (publish rows only).
    prefilled: Option<usize>,
    /// Median time of `Nftables::open_in` (network row only), µs.
    open_us: Option<f64>,
    /// Median time of `nft -f` of an empty file in the same kind of namespace, µs.
    startup: Option<f64>,
    /// Median time of the baseline's `nft -f` right after a deletion (publish rows), µs.
    after_delete: Option<f64>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.baseline.map(|b| b.median / self.netplumb.median)
    }
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

fn container() -> IpAddr {
    CONTAINER.parse().expect("container address")
}

fn net0() -> NetworkRules {
    NetworkRules::new(NETWORK, "br0").subnet("10.77.0.0/24".parse().expect("subnet"))
}

/// `-p PORT:80` on every host address, to the container.
fn port(host_port: u16) -> PortRule {
    PortRule::new(NETWORK, Proto::Tcp, host_port, container(), 80)
}

/// The `nft` script adding the same elements as `publish(&[port(p)])`.
fn nft_publish_script(p: u16) -> String {
    format!(
        "add element ip netplumb ports_any {{ tcp . {p} comment \"{ELEM_COMMENT}\" : {CONTAINER} . 80 }}\n\
         add element ip netplumb published {{ {CONTAINER} . tcp . 80 . {p} comment \"{ELEM_COMMENT}\" }}\n"
    )
}

/// Runs `nft -f FILE` inside `ns`; returns the whole process's wall time.
fn nft_file(ns: &Netns, file: &Path) -> Duration {
    let mut cmd = Command::new("nft");
    cmd.arg("-f")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let child = ns.spawn(&mut cmd).expect("spawn nft -f");
    let out = child.wait_with_output().expect("wait for nft -f");
    let d = t.elapsed();
    assert!(
        out.status.success(),
        "nft -f {} failed ({}): {}\n--- file ---\n{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
    d
}

/// Waits for the kernel's deferred nf_tables cleanup (the memory of deleted elements and
/// rules is freed after an RCU grace period, by a work item) by closing a netfilter
/// socket: the kernel flushes that work when a bound `NETLINK_NETFILTER` socket closes
/// (`nft_rcv_nl_event`), so the close returns once it is done. Without this, the next
/// `nft` process pays the wait when it exits.
fn drain(ns: &Netns) {
    drop(Nftables::open_in(ns).expect("nftables in namespace"));
}

/// `nft -f` of an empty file inside `ns` after [`drain`]: the baseline's process start-up
/// and exit, included in every baseline sample.
fn nft_startup(ns: &Netns, empty: &Path) -> f64 {
    drain(ns);
    us(nft_file(ns, empty))
}

/// `nft list ruleset` inside `ns`.
fn nft_list(ns: &Netns) -> String {
    let mut cmd = Command::new("nft");
    cmd.args(["list", "ruleset"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = ns
        .spawn(&mut cmd)
        .expect("spawn nft list")
        .wait_with_output()
        .expect("wait for nft list");
    assert!(
        out.status.success(),
        "nft list ruleset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("nft listing is UTF-8")
}

fn nft_available() -> bool {
    Command::new("nft")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A fresh namespace with net0's rules and `k` published ports.
fn prefilled(k: usize) -> (Netns, Nftables) {
    let ns = Netns::new().expect("new namespace");
    let mut fw = Nftables::open_in(&ns).expect("nftables in namespace");
    fw.add_network(&net0()).expect("add_network");
    let ports: Vec<PortRule> = (0..k).map(|i| port(PREFILL_BASE + i as u16)).collect();
    fw.publish(&ports).expect("pre-fill publish");
    assert_eq!(
        fw.state().expect("state").ports.len(),
        k,
        "ports after pre-fill"
    );
    (ns, fw)
}

/// Checks, once per tool, that a sample did publish `p` on top of the `k` ports.
fn check_published(fw: &mut Nftables, p: &PortRule, k: usize, who: &str) {
    let st = fw.state().expect("state");
    assert!(st.ports.contains(p), "{who} published {p}");
    assert_eq!(st.ports.len(), k + 1, "{who}: ports after one more");
}

/// The `publish_port_at_K` row, in one namespace pre-filled with K ports: the netplumb
/// samples back to back, then the `nft -f` ones.
fn publish_row(k: usize, reps: usize, dir: Option<&Path>) -> Row {
    let (ns, mut fw) = prefilled(k);
    for i in 0..WARMUP {
        let p = [port(SAMPLE_BASE - 1 - i as u16)];
        fw.publish(&p).expect("warm-up publish");
        fw.unpublish(&p).expect("warm-up unpublish");
    }
    let mut np = Vec::with_capacity(reps);
    for i in 0..reps {
        let p = [port(SAMPLE_BASE + i as u16)];
        let t = Instant::now();
        fw.publish(&p).expect("publish");
        np.push(us(t.elapsed()));
        if i == 0 {
            check_published(&mut fw, &p[0], k, "netplumb");
        }
        fw.unpublish(&p).expect("unpublish");
    }
    let nft = dir.map(|d| nft_publish_samples(&ns, &mut fw, k, reps, d));
    assert_eq!(
        fw.state().expect("state").ports.len(),
        k,
        "ports after the run"
    );
    drop((fw, ns));
    std::thread::sleep(SETTLE);
    let (baseline, after_delete, startup) = match nft {
        Some(mut n) => (
            Some(stats(&mut n.at_best)),
            Some(stats(&mut n.after_delete).median),
            Some(stats(&mut n.startup).median),
        ),
        None => (None, None, None),
    };
    Row {
        name: format!("publish_port_at_{k}"),
        n: reps,
        netplumb: stats(&mut np),
        baseline,
        prefilled: Some(k),
        open_us: None,
        startup,
        after_delete,
    }
}

/// Baseline samples of one publish row, µs.
struct NftSamples {
    at_best: Vec<f64>,
    after_delete: Vec<f64>,
    startup: Vec<f64>,
}

/// `nft -f` publishing one port on top of `k` in `ns`: `reps` times after [`drain`], and
/// [`AFTER_DELETE_REPS`] times right after the previous port's deletion.
fn nft_publish_samples(
    ns: &Netns,
    fw: &mut Nftables,
    k: usize,
    reps: usize,
    dir: &Path,
) -> NftSamples {
    let file = dir.join(format!("publish_{k}.nft"));
    let empty = dir.join("empty.nft");
    std::fs::write(&empty, "").expect("write empty nft file");
    std::fs::write(&file, nft_publish_script(SAMPLE_BASE - 1)).expect("write nft file");
    nft_file(ns, &file); // warm-up: page cache, first nft run in this namespace
    fw.unpublish(&[port(SAMPLE_BASE - 1)]).expect("unpublish");
    let mut out = NftSamples {
        at_best: Vec::with_capacity(reps),
        after_delete: Vec::new(),
        startup: Vec::new(),
    };
    for i in 0..reps {
        let p = [port(SAMPLE_BASE + i as u16)];
        std::fs::write(&file, nft_publish_script(p[0].host_port)).expect("write nft file");
        drain(ns);
        out.at_best.push(us(nft_file(ns, &file)));
        if i == 0 {
            check_published(fw, &p[0], k, "nft -f");
        }
        fw.unpublish(&p).expect("unpublish");
        if i < AFTER_DELETE_REPS {
            // The deletion above left its cleanup pending: nft's exit waits for it.
            out.after_delete.push(us(nft_file(ns, &file)));
            fw.unpublish(&p).expect("unpublish");
        }
        if i < STARTUP_REPS {
            out.startup.push(nft_startup(ns, &empty));
        }
    }
    for f in [&file, &empty] {
        std::fs::remove_file(f).expect("remove nft file");
    }
    out
}

/// What netplumb's `add_network(net0)` leaves behind, in `nft` syntax, checked to load
/// into the same state.
///
/// `nft list ruleset` of it does not load back with nft 1.0.6 as it is, so three
/// changes of the same cost are made (see benches/README.md): the chain `dnat` (an nft
/// keyword, which nft 1.0.6 can neither parse nor quote as a chain name) is called
/// `dnat_ports`; `ct original proto-dst` inside the `@published` lookup, which nft cannot
/// type in a concatenation, is written `th dport` (same length and type); and the
/// `bridges` element, which nft lists as `""` (the set carries no key byte-order udata),
/// is written `"br0"`.
fn base_rules_script(dir: &Path) -> String {
    let ns = Netns::new().expect("new namespace");
    let mut fw = Nftables::open_in(&ns).expect("nftables in namespace");
    fw.add_network(&net0()).expect("add_network");
    let want = fw.state().expect("state");
    let listing = nft_list(&ns);
    drop((fw, ns));
    let script = listing
        .replace("jump dnat\n", "jump dnat_ports\n")
        .replace("chain dnat {", "chain dnat_ports {")
        .replace("ct original proto-dst @published", "th dport @published")
        .replace("elements = { \"\" comment", "elements = { \"br0\" comment");
    // Check: the script loads, nft lists it back as written, and netplumb reads the same
    // state from it as from its own call.
    let file = dir.join("listing.nft");
    std::fs::write(&file, &script).expect("write nft file");
    let ns = Netns::new().expect("new namespace");
    nft_file(&ns, &file);
    std::fs::remove_file(&file).expect("remove nft file");
    assert_eq!(
        nft_list(&ns),
        script,
        "nft lists the loaded script differently"
    );
    let mut fw = Nftables::open_in(&ns).expect("nftables in namespace");
    assert_eq!(
        fw.state().expect("state"),
        want,
        "nft -f of the script gives another state than add_network:\n{script}"
    );
    script
}

/// The `network_base_rules` row: each sample in a fresh namespace.
fn network_row(reps: usize, dir: Option<&Path>) -> Row {
    let file = dir.map(|d| {
        let f = d.join("base_rules.nft");
        let script = base_rules_script(d);
        eprintln!("  base-rules script: {} lines", script.lines().count());
        if std::env::var_os("NETPLUMB_FW_SHOW_SCRIPT").is_some() {
            eprintln!("{script}");
        }
        std::fs::write(&f, script).expect("write nft file");
        f
    });
    let (mut np, mut open, mut base) = (Vec::new(), Vec::new(), Vec::new());
    let want = {
        let ns = Netns::new().expect("new namespace");
        let mut fw = Nftables::open_in(&ns).expect("nftables in namespace");
        fw.add_network(&net0()).expect("add_network"); // warm-up
        fw.state().expect("state")
    };
    for i in 0..reps {
        let order = if i % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for ours in order {
            let ns = Netns::new().expect("new namespace");
            if ours {
                let t = Instant::now();
                let mut fw = Nftables::open_in(&ns).expect("nftables in namespace");
                open.push(us(t.elapsed()));
                let t = Instant::now();
                fw.add_network(&net0()).expect("add_network");
                np.push(us(t.elapsed()));
            } else if let Some(f) = &file {
                drain(&ns);
                base.push(us(nft_file(&ns, f)));
            } else {
                continue;
            }
            if i == 0 {
                let mut fw = Nftables::open_in(&ns).expect("nftables in namespace");
                assert_eq!(
                    fw.state().expect("state"),
                    want,
                    "state after network_base_rules"
                );
            }
            drop(ns);
            std::thread::sleep(SETTLE);
        }
    }
    let startup = file.as_deref().map(|f| {
        std::fs::write(f, "").expect("write empty nft file");
        let mut v: Vec<f64> = (0..STARTUP_REPS.min(reps))
            .map(|_| nft_startup(&Netns::new().expect("new namespace"), f))
            .collect();
        std::fs::remove_file(f).expect("remove nft file");
        stats(&mut v).median
    });
    Row {
        name: "network_base_rules".into(),
        n: reps,
        netplumb: stats(&mut np),
        baseline: (!base.is_empty()).then(|| stats(&mut base)),
        prefilled: None,
        open_us: Some(stats(&mut open).median),
        startup,
        after_delete: None,
    }
}

fn run_all(reps: usize, net_reps: usize) -> Vec<Row> {
    let dir = PathBuf::from(format!("/run/netplumb-fw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create nft file dir");
    let nft = nft_available().then_some(dir.as_path());
    if nft.is_none() {
        eprintln!("WARNING: `nft` not found: no nft -f baseline (install nftables)");
    }
    let mut rows = Vec::new();
    for k in PREFILL {
        eprintln!("publish_port_at_{k}: {reps} samples");
        rows.push(publish_row(k, reps, nft));
    }
    eprintln!("network_base_rules: {net_reps} samples");
    rows.push(network_row(net_reps, nft));
    std::fs::remove_dir_all(&dir).expect("remove nft file dir");
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
        let baseline = if b.is_some() { "\"nft -f\"" } else { "null" };
        let _ = write!(
            s,
            "  {{\"name\": \"{}\", \"unit\": \"us\", \"median\": {:.2}, \"min\": {:.2}, \"max\": {:.2}, \
             \"n\": {}, \"baseline\": {baseline}, \"baseline_median\": {}, \"ratio\": {}, \
             \"mean\": {:.2}, \"baseline_min\": {}, \"baseline_max\": {}",
            r.name,
            np.median,
            np.min,
            np.max,
            r.n,
            fmt_opt(b.map(|b| b.median), 2),
            fmt_opt(r.ratio(), 3),
            np.mean,
            fmt_opt(b.map(|b| b.min), 2),
            fmt_opt(b.map(|b| b.max), 2),
        );
        if let Some(k) = r.prefilled {
            let _ = write!(s, ", \"prefilled\": {k}");
        }
        if let Some(o) = r.open_us {
            let _ = write!(s, ", \"open_us\": {o:.2}");
        }
        if r.prefilled.is_some() {
            let _ = write!(
                s,
                ", \"baseline_after_delete_median\": {}",
                fmt_opt(r.after_delete, 2)
            );
        }
        let _ = write!(s, ", \"baseline_startup_us\": {}", fmt_opt(r.startup, 0));
        s.push('}');
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("]\n");
    s
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| operation | n | netplumb µs (median) | min | max | `nft -f` µs (median) | min | max | ratio | `nft -f` right after a deletion µs | empty `nft -f` µs |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.n,
            r.netplumb.median,
            r.netplumb.min,
            r.netplumb.max,
            fmt_opt(r.baseline.map(|b| b.median), 1),
            fmt_opt(r.baseline.map(|b| b.min), 1),
            fmt_opt(r.baseline.map(|b| b.max), 1),
            fmt_opt(r.ratio(), 1),
            r.after_delete
                .map_or_else(|| "–".into(), |x| format!("{x:.0}")),
            fmt_opt(r.startup, 0),
        );
    }
    s
}

/// The targets: ≤ 300 µs per published port, flat from 1 to 1,000 ports (at_1000 / at_1
/// ≤ 1.5), ≥ 10× faster than `nft -f`.
fn verdict(rows: &[Row]) -> String {
    let mut s = String::new();
    let median = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| r.netplumb.median)
    };
    let ok = |b: bool| if b { "met" } else { "MISSED" };
    let publish: Vec<&Row> = rows.iter().filter(|r| r.prefilled.is_some()).collect();
    let worst = publish
        .iter()
        .map(|r| r.netplumb.median)
        .fold(0.0, f64::max);
    let _ = writeln!(
        s,
        "publish ≤ 300 µs per port: {} (worst median {worst:.1} µs)",
        ok(worst <= 300.0)
    );
    if let (Some(a), Some(b)) = (median("publish_port_at_1"), median("publish_port_at_1000")) {
        let flat = b / a;
        let _ = writeln!(
            s,
            "flat 1 -> 1,000 ports (at_1000 / at_1 ≤ 1.5): {} ({flat:.2})",
            ok(flat <= 1.5)
        );
    }
    for r in rows {
        if let Some(x) = r.ratio() {
            let _ = writeln!(
                s,
                "{} ≥ 10× faster than nft -f: {} ({x:.1}×)",
                r.name,
                ok(x >= 10.0)
            );
        }
    }
    s
}

fn main() {
    // `cargo bench` passes `--bench` (and maybe filters): nothing here takes arguments.
    let reps = env_usize("NETPLUMB_FW_REPS", 200);
    let net_reps = env_usize("NETPLUMB_FW_NET_REPS", 50);
    let started = Instant::now();
    let rows = match netplumb::netns::sandbox(|_| run_all(reps, net_reps)) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!(
                "SKIPPED firewall bench: needs CAP_NET_ADMIN+CAP_SYS_ADMIN to create namespaces ({e})"
            );
            return;
        }
    };
    println!();
    print!("{}", table(&rows));
    println!();
    print!("{}", verdict(&rows));
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("create bench-results dir");
    let path = dir.join("firewall.json");
    std::fs::write(&path, json(&rows)).expect("write firewall.json");
    println!("wrote {}", path.display());
}
