//! IPAM: the cost of one allocate + release pair on a /16 (10.88.0.0/16, 65,533 addresses
//! to hand out) that is 1 %, 50 % and 99 % full, for the SQLite store and the memory store,
//! beside CNI's host-local plugin (`/usr/lib/cni/host-local` or `/opt/cni/bin/host-local`,
//! Debian package containernetworking-plugins) doing the same in the same run: one ADD and
//! one DEL process per pair, per the CNI spec.
//!
//! The fill is scattered: the held addresses are a random subset (fixed seed), written
//! straight into each store (one transaction for ours; one lease file per address for
//! host-local), so the free addresses are holes spread over the whole range. Nothing
//! here needs privileges; all state lives in a temp dir.
//!
//! Writes `target/bench-results/ipam.json` (the common fields of benches/README.md plus `mean`, `fill_pct`
//! and `flat_ratio`, this fill's median over the 1 % median). Environment: `NETPLUMB_BENCH_N`
//! pairs for the SQLite store (default 2,000; ten times that for memory),
//! `NETPLUMB_BENCH_HL_N` pairs for host-local (default 100 at 1 %, a fifth of that above).

mod common;
use common::results_dir;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use netplumb::ipam::{Ipam, MemoryStore, NetworkSpec, Owner, SqliteStore, Store};

const NET: &str = "bench";
const BASE: u32 = 0x0a58_0000; // 10.88.0.0/16
const FILLS: [(u32, &str); 3] = [(1, "1pct"), (50, "50pct"), (99, "99pct")];

struct Stats {
    median: f64,
    min: f64,
    max: f64,
    mean: f64,
    n: usize,
}

impl Stats {
    fn of(mut us: Vec<f64>) -> Stats {
        us.sort_by(f64::total_cmp);
        let n = us.len();
        Stats {
            median: us[n / 2],
            min: us[0],
            max: us[n - 1],
            mean: us.iter().sum::<f64>() / n as f64,
            n,
        }
    }
}

/// xorshift64*, fixed seed: every run and every store gets the same holes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// `pct` % of the handable addresses (10.88.0.2 … 10.88.255.254), chosen at random.
fn fill(pct: u32) -> Vec<IpAddr> {
    let mut all: Vec<u32> = (2..=0xfffe).collect();
    let k = all.len() * pct as usize / 100;
    let mut rng = Rng(0x0001_babe_5eed);
    for i in 0..k {
        let j = i + rng.below(all.len() - i);
        all.swap(i, j);
    }
    all[..k]
        .iter()
        .map(|o| IpAddr::V4(Ipv4Addr::from(BASE + o)))
        .collect()
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Creates the network and holds `held` in one transaction of the store.
fn prefill<S: Store>(ipam: &Ipam<S>, held: &[IpAddr]) {
    ipam.create_network(&NetworkSpec::new(NET).subnet("10.88.0.0/16".parse().unwrap()))
        .unwrap();
    let mut tx = ipam.store().begin().unwrap();
    for (i, a) in held.iter().enumerate() {
        tx.hold(NET, *a, &Owner::new(format!("prefill-{i}"), "eth0"))
            .unwrap();
    }
    let net = tx.network(NET).unwrap().unwrap();
    tx.update_network(&net).unwrap();
    tx.commit().unwrap();
    assert_eq!(ipam.leases(NET).unwrap().len(), held.len());
}

/// Times `n` allocate + release pairs, in µs each.
fn pairs<S: Store>(ipam: &Ipam<S>, n: usize) -> Stats {
    let warm = n / 20;
    let mut us = Vec::with_capacity(n);
    for i in 0..n + warm {
        let owner = Owner::new(format!("bench-{i}"), "eth0");
        let t = Instant::now();
        let lease = ipam.allocate(NET, &owner).unwrap();
        assert!(ipam.release(NET, lease.address).unwrap().was_held());
        if i >= warm {
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    Stats::of(us)
}

fn host_local_binary() -> Option<PathBuf> {
    ["/usr/lib/cni/host-local", "/opt/cni/bin/host-local"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn host_local_version() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "containernetworking-plugins"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            format!("CNI host-local {}", String::from_utf8_lossy(&o.stdout))
        }
        _ => "CNI host-local".to_string(),
    }
}

/// One CNI call of host-local; panics if it fails.
fn cni(bin: &Path, command: &str, id: &str, config: &str) {
    let mut child = Command::new(bin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "/proc/self/ns/net") // host-local never enters it
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", bin.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start host-local");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "host-local {command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// host-local ADD + DEL pairs on a data dir pre-filled with one lease file per held
/// address, as host-local writes them (`ID\r\nIFNAME`).
fn host_local(bin: &Path, dir: &Path, held: &[IpAddr], n: usize) -> Stats {
    let data = dir.join("cni");
    let leases = data.join(NET);
    std::fs::create_dir_all(&leases).unwrap();
    for (i, a) in held.iter().enumerate() {
        std::fs::write(leases.join(a.to_string()), format!("prefill-{i}\r\neth0")).unwrap();
    }
    std::fs::write(leases.join("last_reserved_ip.0"), "10.88.0.1").unwrap();
    let config = format!(
        r#"{{"cniVersion": "0.4.0", "name": "{NET}", "type": "bridge",
            "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "10.88.0.0/16"}}]],
                     "dataDir": "{}"}}}}"#,
        data.display()
    );
    let warm = 2;
    let mut us = Vec::with_capacity(n);
    for i in 0..n + warm {
        let id = format!("bench-{i}");
        let t = Instant::now();
        cni(bin, "ADD", &id, &config);
        cni(bin, "DEL", &id, &config);
        if i >= warm {
            us.push(t.elapsed().as_secs_f64() * 1e6);
        }
    }
    let files = std::fs::read_dir(&leases).unwrap().count();
    assert_eq!(files, held.len() + 2, "host-local left a lease behind"); // + lock, last_reserved_ip.0
    Stats::of(us)
}

struct Row {
    name: String,
    fill: u32,
    ours: Stats,
    baseline: Option<(String, Stats)>,
    flat_ratio: f64,
}

fn json(rows: &[Row]) -> String {
    let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.2}"));
    let objs: Vec<String> = rows
        .iter()
        .map(|r| {
            let b = r.baseline.as_ref();
            let base_name = b.map_or("null".to_string(), |(name, _)| format!("{name:?}"));
            let base_median = b.map(|(_, s)| s.median);
            format!(
                "{{\"name\": \"{}\", \"unit\": \"us\", \"median\": {:.2}, \"min\": {:.2}, \
                 \"max\": {:.2}, \"n\": {}, \"baseline\": {base_name}, \"baseline_median\": {}, \
                 \"ratio\": {}, \"mean\": {:.2}, \"fill_pct\": {}, \"flat_ratio\": {:.2}}}",
                r.name,
                r.ours.median,
                r.ours.min,
                r.ours.max,
                r.ours.n,
                num(base_median),
                num(base_median.map(|m| m / r.ours.median)),
                r.ours.mean,
                r.fill,
                r.flat_ratio,
            )
        })
        .collect();
    format!("[\n  {}\n]\n", objs.join(",\n  "))
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| entry | fill | n | µs/pair (median) | min | max | vs 1 % | host-local µs/pair (n) | ratio |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let (hl, ratio) = match &r.baseline {
            Some((_, b)) => (
                format!("{:.0} ({})", b.median, b.n),
                format!("{:.0}", b.median / r.ours.median),
            ),
            None => ("–".into(), "–".into()),
        };
        s += &format!(
            "| {} | {} % | {} | {:.1} | {:.1} | {:.1} | {:.2} | {hl} | {ratio} |\n",
            r.name, r.fill, r.ours.n, r.ours.median, r.ours.min, r.ours.max, r.flat_ratio
        );
    }
    s
}

/// Measures one fill level: SQLite, memory and host-local.
fn measure(fill_pct: u32, tag: &str, tmp: &Path, hl: Option<&(PathBuf, String)>) -> [Row; 2] {
    let held = fill(fill_pct);
    let n = env_usize("NETPLUMB_BENCH_N", 2000);
    let dir = tmp.join(tag);
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = Ipam::new(SqliteStore::open(dir.join("ipam.db")).unwrap());
    prefill(&sqlite, &held);
    let ours = pairs(&sqlite, n);
    sqlite.store().check().unwrap();
    let memory = Ipam::new(MemoryStore::new());
    prefill(&memory, &held);
    let mem = pairs(&memory, n * 10);
    let baseline = hl.map(|(bin, name)| {
        let hl_n = env_usize("NETPLUMB_BENCH_HL_N", 100) / if fill_pct > 1 { 5 } else { 1 };
        (name.clone(), host_local(bin, &dir, &held, hl_n.max(3)))
    });
    eprintln!("{tag}: {} addresses held; measured", held.len());
    let row = |name: String, ours: Stats, baseline| Row {
        name,
        fill: fill_pct,
        ours,
        baseline,
        flat_ratio: 0.0,
    };
    [
        row(format!("alloc_release_{tag}"), ours, baseline),
        row(format!("alloc_release_{tag}_memory"), mem, None),
    ]
}

fn main() {
    // `cargo bench` passes `--bench` (and maybe filters): nothing here takes arguments.
    let hl = host_local_binary().map(|b| (b, host_local_version()));
    if hl.is_none() {
        eprintln!(
            "host-local not found (apt-get install containernetworking-plugins): no baseline"
        );
    }
    let tmp = std::env::temp_dir().join(format!("netplumb-bench-ipam-{}", std::process::id()));
    let started = Instant::now();
    let mut rows: Vec<Row> = FILLS
        .iter()
        .flat_map(|&(pct, tag)| measure(pct, tag, &tmp, hl.as_ref()))
        .collect();
    std::fs::remove_dir_all(&tmp).unwrap();
    rows.sort_by_key(|r| (r.name.ends_with("_memory"), r.fill));
    let at_1pct = |memory: bool| {
        let r = rows
            .iter()
            .find(|r| r.fill == 1 && r.name.ends_with("_memory") == memory);
        r.map_or(f64::NAN, |r| r.ours.median)
    };
    let (sqlite_1, memory_1) = (at_1pct(false), at_1pct(true));
    for r in &mut rows {
        r.flat_ratio = r.ours.median
            / if r.name.ends_with("_memory") {
                memory_1
            } else {
                sqlite_1
            };
    }
    println!();
    print!("{}", table(&rows));
    println!("total bench time: {:.1} s", started.elapsed().as_secs_f64());
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("create bench-results dir");
    let path = dir.join("ipam.json");
    std::fs::write(&path, json(&rows)).expect("write ipam.json");
    println!("wrote {}", path.display());
}
