//! Connecting and disconnecting containers on one bridge network (masquerade on, one
//! published port each), through `network::Host`, inside a throwaway sandbox, beside the
//! kernel floor: the same netlink and nf_tables requests issued alone (see
//! `attach/floor.rs` for exactly which), measured in the same run and interleaved sample
//! by sample with the connects.
//!
//! ```text
//! cargo bench --bench attach
//! NETPLUMB_BENCH_N=100 NETPLUMB_BENCH_REPS=10 NETPLUMB_BENCH_COLD=10 cargo bench --bench attach   # quick run
//! ```
//!
//! Rows:
//! - `connect_1`, `connect_100`, `connect_1000`: the connect of one more container when
//!   0, 99 and 999 are connected (median over `NETPLUMB_BENCH_REPS` connects, default 20,
//!   each undone before the next); `baseline` is the kernel floor at the same count on a
//!   bridge of its own holding as many ports (`floor_1`, `floor_100`, `floor_1000`, the
//!   floor's own rows), taken in the same loop, in alternating order;
//! - `disconnect_1`: one container, one at a time (dominated by the kernel's ~16 ms RCU
//!   wait per deleted veth);
//! - `connect_cold`: a fresh process per connect (the bench binary again, inside the
//!   sandbox: `Host::open_in`, one connect with one published port, exit), timed from
//!   spawn to exit, `NETPLUMB_BENCH_COLD` samples (default 30); `baseline` is
//!   `floor_cold`, the floor's requests from a fresh process the same way;
//!   `process_start` is a fresh process that exits at once; `disconnect_cold` a fresh
//!   process per disconnect (as a runtime's `rm` pays it). Cold samples run on the
//!   empty network, in rotating order;
//! - `disconnect_bulk_50`: per container, 50 at once with `Host::disconnect_many`.
//!
//! After each sample's undo the bench waits `NETPLUMB_BENCH_SETTLE_MS` (default 50) for
//! the kernel's deferred work of the deletions, which would otherwise land in the next
//! sample.
//!
//! `ratio` is `baseline_median / median` as everywhere (below 1: slower than the floor);
//! `overhead` is its inverse, `median / baseline_median`, the form the targets take;
//! `growth` and `baseline_growth` (on `connect_100`/`connect_1000`) are the connect's and
//! the floor's median against their own at 1. Written to
//! `target/bench-results/attach.json`. Without privileges it prints
//! `SKIPPED attach bench: ...` and exits 0. Nothing asserts a duration.

#[path = "attach/cold.rs"]
mod cold;
mod common;
#[path = "attach/floor.rs"]
mod floor;

use common::{results_dir, stats};
use std::fmt::Write as _;
use std::time::Instant;

use floor::{Floor, Port, FILL_GROUP, NET};
use netplumb::firewall::{Firewall, Nftables};
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::{Netns, Rtnl};

/// The state folder, on the sandbox's own tmpfs `/run`.
const STATE: &str = "/run/netplumb-bench";
const FLOOR: &str = "kernel floor";
const FLOOR_COLD: &str = "kernel floor, fresh process";

/// One measured operation, with its baseline's samples when it has one.
struct Row {
    name: &'static str,
    /// The sample count reported (the samples', except for a per-container average).
    n: usize,
    v: Vec<f64>,
    base: Option<(&'static str, Vec<f64>)>,
}

impl Row {
    fn new(name: &'static str, v: Vec<f64>) -> Row {
        Row {
            name,
            n: v.len(),
            v,
            base: None,
        }
    }

    fn against(name: &'static str, v: Vec<f64>, base: &'static str, b: &[f64]) -> Row {
        Row {
            name,
            n: v.len(),
            v,
            base: Some((base, b.to_vec())),
        }
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn us(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e6
}

fn port80() -> netplumb::ports::PortMapping {
    "80".parse().expect("port spec")
}

/// The network, the floor beside it, and the containers filling both.
struct World<'s> {
    s: &'s Sandbox,
    h: Host,
    floor: Floor,
    /// A warm backend that withdraws the floor's elements (undo, untimed).
    fw: Nftables,
    /// The number of the next container (the connect's and the floor's).
    next: usize,
    /// The connect's filler containers.
    ids: Vec<String>,
    /// The network's bridge.
    bridge: String,
    /// The samples' namespaces, kept until the end: a namespace that dies is torn down
    /// by a kernel worker that holds the rtnl lock through RCU grace periods, which would
    /// stall the samples after it.
    keep: Vec<Netns>,
}

impl<'s> World<'s> {
    fn new(s: &'s Sandbox) -> World<'s> {
        let mut h = Host::open_in(s.host(), STATE).expect("host");
        let net = NetworkConfig::new(NET).subnet("10.200.0.0/16".parse().expect("subnet"));
        h.create_network(&net).expect("network");
        let mut w = World {
            s,
            h,
            floor: Floor::setup(s.host()),
            fw: Nftables::open_in(s.host()).expect("firewall"),
            next: 0,
            ids: Vec::new(),
            bridge: String::new(),
            keep: Vec::new(),
        };
        w.bridge = w.h.network(NET).expect("network").bridge;
        w.warm_up();
        w
    }

    fn take(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }

    /// One untimed connect and floor, undone: the first of a process is `connect_cold`'s
    /// business. Checks that netplumb reads the floor's elements back as a port of its own.
    fn warm_up(&mut self) {
        let k = self.take();
        let (cns, fns) = (Netns::new().expect("netns"), Netns::new().expect("netns"));
        let id = format!("bench{k:05}");
        let c = Container::new(&id, &cns).publish(port80());
        self.h.connect(NET, &c).expect("connect");
        let p = self.floor.connect(&fns, k, None);
        let ports = self.fw.state().expect("firewall state").ports;
        assert!(ports.contains(Floor::rule(&p)), "{ports:?}");
        self.h.disconnect(NET, &id).expect("disconnect");
        self.floor.undo(&mut self.fw, &p);
        self.keep.extend([cns, fns]);
    }

    /// Connects filler containers (named namespaces: the bind mounts keep them alive)
    /// until `count` are connected, and as many floor ports.
    fn fill(&mut self, count: usize) {
        while self.ids.len() < count {
            let k = self.take();
            let (id, fid) = (format!("bench{k:05}"), format!("floor{k:05}"));
            let dir = self.s.netns_dir();
            let ns = dir.create(&id).expect("container namespace");
            let c = Container::new(&id, &ns).publish(port80());
            self.h.connect(NET, &c).expect("connect");
            self.ids.push(id);
            let ns = dir.create(&fid).expect("floor namespace");
            self.floor.connect(&ns, k, Some(FILL_GROUP));
        }
        // Each bridge holds its ports (a filler whose namespace died would have lost its
        // veth with it).
        let links = Rtnl::open_in(self.s.host())
            .and_then(|mut r| r.links())
            .expect("links");
        let ports = |ctl: &str| {
            let br = links.iter().find(|l| l.name == ctl).map(|l| l.index);
            links.iter().filter(|l| l.controller == br).count()
        };
        assert_eq!(ports(&self.bridge), count, "network bridge ports");
        assert_eq!(ports(floor::BRIDGE), count, "floor bridge ports");
    }

    /// `reps` connects of one more container and as many floors, interleaved (the
    /// order alternates), each undone before the next: (connect, floor, disconnect).
    fn level(&mut self, reps: usize) -> [Vec<f64>; 3] {
        let [mut conn, mut flo, mut dis] = [vec![], vec![], vec![]];
        for r in 0..reps {
            let k = self.take();
            let (cns, fns) = (Netns::new().expect("netns"), Netns::new().expect("netns"));
            let id = format!("bench{k:05}");
            let c = Container::new(&id, &cns).publish(port80());
            let mut port = None;
            for netplumb in [r % 2 == 0, r % 2 == 1] {
                let t = Instant::now();
                if netplumb {
                    self.h.connect(NET, &c).expect("connect");
                    conn.push(us(t));
                } else {
                    port = Some(self.floor.connect(&fns, k, None));
                    flo.push(us(t));
                }
            }
            let t = Instant::now();
            self.h.disconnect(NET, &id).expect("disconnect");
            dis.push(us(t));
            self.floor.undo(&mut self.fw, &port.expect("a floor port"));
            self.keep.extend([cns, fns]);
            settle();
        }
        [conn, flo, dis]
    }

    /// `samples` cold connects, floors and empty processes (rotating order), then a
    /// cold disconnect each: (connect, floor, start, disconnect).
    fn cold(&mut self, samples: usize) -> [Vec<f64>; 4] {
        let sp = cold::Spawner::new();
        let bridge = self.floor.bridge().to_string();
        let [mut conn, mut flo, mut start, mut dis] = [vec![], vec![], vec![], vec![]];
        for i in 0..samples {
            let k = self.take();
            let (id, fid, ks) = (
                format!("bench{k:05}"),
                format!("floor{k:05}"),
                k.to_string(),
            );
            let dir = self.s.netns_dir();
            drop(dir.create(&id).expect("container namespace"));
            drop(dir.create(&fid).expect("floor namespace"));
            for j in 0..3 {
                match (i + j) % 3 {
                    0 => conn.push(sp.time_at("connect", &id, &dir.path(&id), &[])),
                    1 => flo.push(sp.time_at("floor", &ks, &dir.path(&fid), &[&bridge])),
                    _ => start.push(sp.time(&["exit"])),
                }
            }
            dis.push(sp.time(&["disconnect", &id]));
            self.floor.undo(&mut self.fw, &Port::of(k));
            // The namespaces stay until the end (see `level`).
            settle();
        }
        [conn, flo, start, dis]
    }

    /// Everything made is deleted again: the containers, the network, the floor.
    fn clean_up(mut self) {
        let rest: Vec<&str> = self.ids.iter().map(String::as_str).collect();
        self.h.disconnect_many(NET, &rest).expect("cleanup");
        self.h.remove_network(NET, true).expect("remove network");
        self.floor.teardown();
        self.s.netns_dir().delete_all().expect("delete namespaces");
    }
}

/// Waits for the kernel's work after an undo to end before the next sample.
fn settle() {
    let ms = env("NETPLUMB_BENCH_SETTLE_MS", 50) as u64;
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

struct Knobs {
    n: usize,
    reps: usize,
    cold: usize,
}

fn connect_rows(rows: &mut Vec<Row>, name: [&'static str; 2], [c, f, _]: &[Vec<f64>; 3]) {
    rows.push(Row::against(name[0], c.clone(), FLOOR, f));
    rows.push(Row::new(name[1], f.clone()));
}

fn run(s: &Sandbox, k: &Knobs) -> Vec<Row> {
    let mut w = World::new(s);
    let mut rows = Vec::new();
    let one = w.level(k.reps);
    connect_rows(&mut rows, ["connect_1", "floor_1"], &one);
    rows.push(Row::new("disconnect_1", one[2].clone()));
    if k.cold > 0 {
        let [c, f, p, d] = w.cold(k.cold);
        rows.push(Row::against("connect_cold", c, FLOOR_COLD, &f));
        rows.push(Row::new("floor_cold", f));
        rows.push(Row::new("process_start", p));
        rows.push(Row::new("disconnect_cold", d));
    }
    w.fill(99.min(k.n));
    let hundred = w.level(k.reps);
    connect_rows(&mut rows, ["connect_100", "floor_100"], &hundred);
    if k.n >= 1000 {
        w.fill(999);
        let thousand = w.level(k.reps);
        connect_rows(&mut rows, ["connect_1000", "floor_1000"], &thousand);
    }
    let bulk: Vec<String> = w.ids.drain(..50.min(w.ids.len())).collect();
    let refs: Vec<&str> = bulk.iter().map(String::as_str).collect();
    let t = Instant::now();
    w.h.disconnect_many(NET, &refs).expect("disconnect many");
    let per = us(t) / refs.len() as f64;
    let mut bulk = Row::new("disconnect_bulk_50", vec![per]);
    bulk.n = refs.len();
    rows.push(bulk);
    w.clean_up();
    rows
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    if let Some(code) = cold::child(STATE) {
        std::process::exit(code);
    }
    let k = Knobs {
        n: env("NETPLUMB_BENCH_N", 1000),
        reps: env("NETPLUMB_BENCH_REPS", 20),
        cold: env("NETPLUMB_BENCH_COLD", 30),
    };
    let load0 = loadavg();
    let rows = match netplumb::netns::sandbox(|s| run(s, &k)) {
        Ok(r) => r,
        Err(e) => {
            println!("SKIPPED attach bench: needs CAP_NET_ADMIN+CAP_SYS_ADMIN ({e})");
            return;
        }
    };
    report(rows);
    println!("\nload average before / after: {load0} / {}", loadavg());
}

fn num(v: Option<f64>) -> String {
    v.map_or("null".into(), |x| format!("{x:.2}"))
}

/// Prints the markdown table and writes `attach.json`.
fn report(rows: Vec<Row>) {
    let mut json = String::from("[\n");
    println!(
        "| operation | n | median µs | min | max | baseline | baseline median µs | overhead (×) |\n\
         |---|---:|---:|---:|---:|---|---:|---:|"
    );
    // The connect's and the floor's medians at 1, for the growth of the others.
    let mut at1: Option<(f64, f64)> = None;
    for (i, mut r) in rows.into_iter().enumerate() {
        let st = stats(&mut r.v);
        let (m, lo, hi) = (st.median, st.min, st.max);
        let base = r.base.as_mut().map(|(name, b)| (*name, stats(b).median));
        let overhead = base.map(|(_, b)| m / b);
        let mut extra = String::new();
        if r.name == "connect_1" {
            at1 = base.map(|(_, b)| (m, b));
        } else if let (Some((c1, f1)), Some((_, b))) =
            (at1, base.filter(|_| r.name != "connect_cold"))
        {
            let _ = write!(
                extra,
                ", \"growth\": {:.2}, \"baseline_growth\": {:.2}",
                m / c1,
                b / f1
            );
        }
        println!(
            "| {} | {} | {m:.1} | {lo:.1} | {hi:.1} | {} | {} | {} |",
            r.name,
            r.n,
            base.map_or("", |(n, _)| n),
            base.map_or(String::new(), |(_, b)| format!("{b:.1}")),
            overhead.map_or(String::new(), |o| format!("{o:.2}")),
        );
        let sep = if i == 0 { "" } else { ",\n" };
        let _ = write!(
            json,
            "{sep}  {{\"name\": \"{}\", \"unit\": \"us\", \"median\": {m:.2}, \"min\": {lo:.2}, \"max\": {hi:.2}, \"n\": {}, \
             \"baseline\": {}, \"baseline_median\": {}, \"ratio\": {}, \"overhead\": {}{extra}}}",
            r.name,
            r.n,
            base.map_or("null".into(), |(n, _)| format!("\"{n}\"")),
            num(base.map(|(_, b)| b)),
            num(base.map(|(_, b)| b / m)),
            num(overhead),
        );
    }
    json.push_str("\n]\n");
    let dir = results_dir();
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(dir.join("attach.json"), json).expect("write attach.json");
}
