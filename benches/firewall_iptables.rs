//! Publishing a port with the iptables backend ([`Iptables`]), against the same rules
//! added by separate `iptables` calls (what Docker does), with the nf_tables backend's
//! figure for the same change measured in the same run.
//!
//! Every measurement runs in fresh network namespaces made inside `netns::sandbox`, so
//! nothing touches the host's rules.
//!
//! - `publish_port_at_K_iptables` (K = 1, 100, 1,000): one `Iptables::publish(&[rule])`
//!   call (one `iptables-save` to read the rules back, one `iptables-restore --noflush
//!   --wait` adding the DNAT, the hairpin masquerade and the forward accept) while K
//!   ports are already published. The K ports go in first with one `publish` call; each
//!   sample publishes a fresh port (timed) and withdraws it again (not timed).
//! - Baseline: the same three rules (same text and comments) added by separate
//!   `iptables -w` processes, as Docker's bridge driver does: for each rule an
//!   `iptables -C` check (is it there?) then the `-A`/`-I`, six processes in all,
//!   interleaved with the netplumb samples in the same namespace. `appends_median` is the
//!   three `-A`/`-I` calls alone, without the checks (not idempotent).
//! - `nftables_median`: `Nftables::publish(&[rule])` of the same port in another
//!   namespace with the same K ports, interleaved too.
//!
//! ```text
//! cargo bench --bench firewall_iptables --features iptables
//! NETPLUMB_FW_REPS=20 cargo bench --bench firewall_iptables --features iptables   # quick run
//! ```
//!
//! Environment: `NETPLUMB_FW_REPS` (samples per row, default 100),
//! `NETPLUMB_FW_LEGACY=1` (also rows `publish_port_at_K_iptables_legacy` with the
//! iptables-legacy binaries). Results go to `target/bench-results/firewall_iptables.json`
//! (the common fields of benches/README.md plus `mean`, `baseline_min`, `baseline_max`,
//! `baseline_startup_us` (`iptables --version` in the same namespace: the start-up of
//! one process), `prefilled`, `appends_median`, `nftables_median` and `version`).
//!
//! Without the privileges to make namespaces it prints `SKIPPED firewall_iptables bench:
//! ...` and exits 0; without iptables binaries it fails, naming what to install.

mod common;
use common::{results_dir, stats, Stats};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netplumb::firewall::{
    Firewall, Iptables, IptablesVariant, NetworkRules, Nftables, PortRule, Proto,
};
use netplumb::Netns;

const PREFILL: [usize; 3] = [1, 100, 1000];
const PREFILL_BASE: u16 = 10_000;
const SAMPLE_BASE: u16 = 40_000;
const WARMUP: usize = 3;
const NETWORK: &str = "net0";
const CONTAINER: &str = "10.77.0.2";

struct Row {
    name: String,
    n: usize,
    ours: Stats,
    baseline: Stats,
    startup: f64,
    prefilled: usize,
    appends: f64,
    nftables: f64,
    version: String,
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

fn port(host_port: u16) -> PortRule {
    PortRule::new(NETWORK, Proto::Tcp, host_port, container(), 80)
}

/// The three `iptables` command lines adding what `publish(&[port(p)])` adds.
fn docker_calls(p: u16) -> [Vec<String>; 3] {
    // The comment is one argument.
    let comment = [
        "-m".to_owned(),
        "comment".to_owned(),
        "--comment".to_owned(),
        format!("netplumb net={NETWORK} port=tcp/*:{p}"),
    ];
    let mut dnat: Vec<String> = format!("-w -t nat -A DOCKER -p tcp -m tcp --dport {p}")
        .split(' ')
        .map(str::to_owned)
        .collect();
    dnat.extend(comment.iter().cloned());
    dnat.extend(["-j", "DNAT", "--to-destination", &format!("{CONTAINER}:80")].map(str::to_owned));
    let mut hairpin: Vec<String> = format!(
        "-w -t nat -A POSTROUTING -s {CONTAINER}/32 -d {CONTAINER}/32 -p tcp -m tcp --dport 80"
    )
    .split(' ')
    .map(str::to_owned)
    .collect();
    hairpin.extend(comment.iter().cloned());
    hairpin.extend(["-j", "MASQUERADE"].map(str::to_owned));
    let mut accept: Vec<String> = format!("-w -I DOCKER 1 -d {CONTAINER}/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport {p}").split(' ').map(str::to_owned).collect();
    accept.extend(comment.iter().cloned());
    accept.extend(["-j", "ACCEPT"].map(str::to_owned));
    [dnat, hairpin, accept]
}

/// Runs `bin ARGS` inside `ns`; returns the process's wall time and whether it succeeded.
fn iptables(ns: &Netns, bin: &str, args: &[String]) -> (Duration, bool) {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let out = ns
        .spawn(&mut cmd)
        .expect("spawn iptables")
        .wait_with_output()
        .expect("wait for iptables");
    (t.elapsed(), out.status.success())
}

/// Adds the rules with one process per rule, each after an `iptables -C` check when
/// `check` (Docker's way).
fn docker_publish(ns: &Netns, bin: &str, p: u16, check: bool) -> Duration {
    let mut total = Duration::ZERO;
    for add in docker_calls(p) {
        if check {
            let mut c = add.clone();
            let verb = c.iter().position(|w| w == "-A" || w == "-I").expect("verb");
            c[verb] = "-C".to_owned();
            if c[verb + 2] == "1" {
                c.remove(verb + 2); // -C takes no position
            }
            let (d, there) = iptables(ns, bin, &c);
            assert!(!there, "{bin} {c:?}: the rule is there already");
            total += d;
        }
        let (d, ok) = iptables(ns, bin, &add);
        assert!(ok, "{bin} {add:?} failed");
        total += d;
    }
    total
}

/// One `publish_port_at_K` row for `variant`.
fn publish_row(k: usize, reps: usize, variant: IptablesVariant, suffix: &str) -> Row {
    let ns = Netns::new().expect("new namespace");
    let mut fw = Iptables::options()
        .variant(variant)
        .open_in(&ns)
        .unwrap_or_else(|e| panic!("iptables backend: {e}"));
    let bin = if fw.version().contains("legacy") {
        "iptables-legacy"
    } else {
        "iptables"
    };
    let version = fw.version().to_owned();
    let prefill: Vec<PortRule> = (0..k).map(|i| port(PREFILL_BASE + i as u16)).collect();
    fw.add_network(&net0()).expect("add_network");
    fw.publish(&prefill).expect("pre-fill publish");
    assert_eq!(
        fw.state().expect("state").ports.len(),
        k,
        "ports after pre-fill"
    );
    let nft_ns = Netns::new().expect("new namespace");
    let mut nft = Nftables::open_in(&nft_ns).expect("nftables");
    nft.add_network(&net0()).expect("add_network");
    nft.publish(&prefill).expect("pre-fill publish");
    for i in 0..WARMUP {
        let p = [port(SAMPLE_BASE - 1 - i as u16)];
        fw.publish(&p).expect("warm-up publish");
        fw.unpublish(&p).expect("warm-up unpublish");
    }
    let (mut ours, mut base, mut appends, mut nfts, mut start) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..reps {
        let p = [port(SAMPLE_BASE + i as u16)];
        // Rotate the order: netplumb, Docker's calls, the appends alone, nf_tables.
        for slot in 0..4 {
            match (slot + i) % 4 {
                0 => {
                    let t = Instant::now();
                    fw.publish(&p).expect("publish");
                    ours.push(us(t.elapsed()));
                }
                1 => {
                    base.push(us(docker_publish(&ns, bin, p[0].host_port, true)));
                    start.push(us(iptables(&ns, bin, &["--version".to_owned()]).0));
                }
                2 => appends.push(us(docker_publish(&ns, bin, p[0].host_port, false))),
                _ => {
                    let t = Instant::now();
                    nft.publish(&p).expect("nft publish");
                    nfts.push(us(t.elapsed()));
                    nft.unpublish(&p).expect("nft unpublish");
                    continue;
                }
            }
            if i == 0 {
                let st = fw.state().expect("state");
                assert!(st.ports.contains(&p[0]), "published {}", p[0]);
                assert_eq!(st.ports.len(), k + 1, "ports after one more");
            }
            fw.unpublish(&p).expect("unpublish");
        }
    }
    assert_eq!(
        fw.state().expect("state").ports.len(),
        k,
        "ports after the run"
    );
    Row {
        name: format!("publish_port_at_{k}_{suffix}"),
        n: reps,
        ours: stats(&mut ours),
        baseline: stats(&mut base),
        startup: stats(&mut start).median,
        prefilled: k,
        appends: stats(&mut appends).median,
        nftables: stats(&mut nfts).median,
        version,
    }
}

fn json(rows: &[Row]) -> String {
    let mut s = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        let (o, b) = (r.ours, r.baseline);
        let _ = write!(
            s,
            "  {{\"name\": \"{}\", \"unit\": \"us\", \"median\": {:.2}, \"min\": {:.2}, \"max\": {:.2}, \"n\": {}, \
             \"baseline\": \"iptables -C + -A per rule (6 calls)\", \"baseline_median\": {:.2}, \"ratio\": {:.3}, \"mean\": {:.2}, \
             \"baseline_min\": {:.2}, \"baseline_max\": {:.2}, \"baseline_startup_us\": {:.0}, \"prefilled\": {}, \
             \"appends_median\": {:.2}, \"nftables_median\": {:.2}, \"version\": \"{}\"}}",
            r.name,
            o.median,
            o.min,
            o.max,
            r.n,
            b.median,
            b.median / o.median,
            o.mean,
            b.min,
            b.max,
            r.startup,
            r.prefilled,
            r.appends,
            r.nftables,
            r.version
        );
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("]\n");
    s
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| operation | n | netplumb iptables µs (median) | min | max | Docker's 6 `iptables` calls µs (median) | ratio | 3 appends alone µs | nftables backend µs (median) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} |",
            r.name,
            r.n,
            r.ours.median,
            r.ours.min,
            r.ours.max,
            r.baseline.median,
            r.baseline.median / r.ours.median,
            r.appends,
            r.nftables
        );
    }
    s
}

fn main() {
    let reps = match std::env::var("NETPLUMB_FW_REPS") {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|&x: &usize| x > 0)
            .unwrap_or_else(|| panic!("NETPLUMB_FW_REPS={v:?}: expected a positive integer")),
        Err(_) => 100,
    };
    let legacy = std::env::var_os("NETPLUMB_FW_LEGACY").is_some_and(|v| v == "1");
    let started = Instant::now();
    let rows = netplumb::netns::sandbox(|_| {
        let mut rows = Vec::new();
        let mut variants = vec![(IptablesVariant::Auto, "iptables")];
        if legacy {
            variants.push((IptablesVariant::Legacy, "iptables_legacy"));
        }
        for (variant, suffix) in variants {
            for k in PREFILL {
                eprintln!("publish_port_at_{k}_{suffix}: {reps} samples");
                rows.push(publish_row(k, reps, variant, suffix));
            }
        }
        rows
    });
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("SKIPPED firewall_iptables bench: needs CAP_NET_ADMIN+CAP_SYS_ADMIN to create namespaces ({e})");
            return;
        }
    };
    println!();
    print!("{}", table(&rows));
    println!(
        "{}",
        rows.first().map(|r| r.version.as_str()).unwrap_or_default()
    );
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("create bench-results dir");
    let path = dir.join("firewall_iptables.json");
    let ours = json(&rows);
    std::fs::write(&path, &ours).expect("write firewall_iptables.json");
    println!("wrote {}", path.display());
    // Also beside the nftables figures in firewall.json (its other rows kept).
    let fw = dir.join("firewall.json");
    let old = std::fs::read_to_string(&fw).unwrap_or_default();
    std::fs::write(&fw, merge_rows(&old, &ours)).expect("write firewall.json");
    println!("merged into {}", fw.display());
}

/// `old`'s rows that are not ours (no `_iptables` in the name) followed by `ours`, as one
/// JSON array. Both are arrays written one object per line.
fn merge_rows(old: &str, ours: &str) -> String {
    let rows = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.trim().trim_end_matches(',').to_owned())
            .filter(|l| l.starts_with('{'))
            .collect()
    };
    let mut all: Vec<String> = rows(old)
        .into_iter()
        .filter(|r| !r.contains("_iptables"))
        .collect();
    all.extend(rows(ours));
    format!("[\n  {}\n]\n", all.join(",\n  "))
}
