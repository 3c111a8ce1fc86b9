//! Connecting and disconnecting containers on one bridge network (masquerade on, one
//! published port each), through `network::Host`, inside a throwaway sandbox.
//!
//! ```text
//! cargo bench --bench attach
//! NETPLUMB_BENCH_N=100 NETPLUMB_BENCH_REPS=10 cargo bench --bench attach   # quick run
//! ```
//!
//! Rows: `connect_1`, `connect_100`, `connect_1000` (the connect of one more container
//! when 0, 99 and 999 are connected; median over `REPS` connects, each undone before the
//! next), `disconnect_1` (one container, one at a time: dominated by the kernel's ~16 ms
//! RCU wait per deleted veth), `disconnect_bulk_50` (per container, 50 at once with
//! `Host::disconnect_many`). Written to `target/bench-results/attach.json` in the common
//! format (no peer baseline here: the side-by-side comparison with CNI and netavark is a
//! separate harness). Without privileges it prints `SKIPPED attach bench: ...` and exits 0.

mod common;
use common::{results_dir, stats};
use std::fmt::Write as _;
use std::time::Instant;

use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::Netns;

struct Row {
    name: &'static str,
    n: usize,
    v: Vec<f64>,
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ctr(i: usize) -> (String, Container) {
    let id = format!("bench{i:05}");
    let ns = Netns::new().expect("container namespace");
    let c = Container::new(&id, &ns).publish("80".parse().expect("port spec"));
    (id, c)
}

/// Connects containers until `count` are connected.
fn fill(h: &mut Host, ids: &mut Vec<String>, count: usize) {
    while ids.len() < count {
        let (id, c) = ctr(ids.len());
        h.connect("bench", &c).expect("connect");
        ids.push(id);
    }
}

/// Times `reps` connects of one more container at the current fill, each undone.
fn connect_at(
    h: &mut Host,
    base: usize,
    reps: usize,
    disconnect: Option<&mut Vec<f64>>,
) -> Vec<f64> {
    let mut out = Vec::new();
    let mut dis = Vec::new();
    for r in 0..reps {
        let (id, c) = ctr(100_000 + base * 100 + r);
        let t = Instant::now();
        h.connect("bench", &c).expect("connect");
        out.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        h.disconnect("bench", &id).expect("disconnect");
        dis.push(t.elapsed().as_secs_f64() * 1e6);
    }
    if let Some(d) = disconnect {
        d.extend(dis);
    }
    out
}

fn run(n: usize, reps: usize) -> Vec<Row> {
    let mut h = Host::open_in(
        &Netns::current().expect("host namespace"),
        "/run/netplumb-bench",
    )
    .expect("host");
    h.create_network(&NetworkConfig::new("bench").subnet("10.200.0.0/16".parse().expect("subnet")))
        .expect("network");
    let mut rows = Vec::new();
    let mut ids = Vec::new();
    let mut dis1 = Vec::new();
    rows.push(Row {
        name: "connect_1",
        n: reps,
        v: connect_at(&mut h, 0, reps, Some(&mut dis1)),
    });
    rows.push(Row {
        name: "disconnect_1",
        n: reps,
        v: dis1,
    });
    fill(&mut h, &mut ids, 99.min(n));
    rows.push(Row {
        name: "connect_100",
        n: reps,
        v: connect_at(&mut h, 99, reps, None),
    });
    if n >= 1000 {
        fill(&mut h, &mut ids, 999);
        rows.push(Row {
            name: "connect_1000",
            n: reps,
            v: connect_at(&mut h, 999, reps, None),
        });
    }
    let bulk: Vec<String> = ids.drain(..50.min(ids.len())).collect();
    let refs: Vec<&str> = bulk.iter().map(String::as_str).collect();
    let t = Instant::now();
    h.disconnect_many("bench", &refs).expect("disconnect many");
    let per = t.elapsed().as_secs_f64() * 1e6 / refs.len() as f64;
    rows.push(Row {
        name: "disconnect_bulk_50",
        n: refs.len(),
        v: vec![per],
    });
    let rest: Vec<&str> = ids.iter().map(String::as_str).collect();
    h.disconnect_many("bench", &rest).expect("cleanup");
    h.remove_network("bench", true).expect("remove network");
    rows
}

fn main() {
    let (n, reps) = (
        env("NETPLUMB_BENCH_N", 1000),
        env("NETPLUMB_BENCH_REPS", 20),
    );
    let rows = match netplumb::netns::sandbox(|_| run(n, reps)) {
        Ok(r) => r,
        Err(e) => {
            println!("SKIPPED attach bench: needs CAP_NET_ADMIN+CAP_SYS_ADMIN ({e})");
            return;
        }
    };
    let mut json = String::from("[\n");
    println!("| operation | n | median µs | min | max |\n|---|---:|---:|---:|---:|");
    for (i, mut r) in rows.into_iter().enumerate() {
        let st = stats(&mut r.v);
        let (m, lo, hi) = (st.median, st.min, st.max);
        println!("| {} | {} | {m:.1} | {lo:.1} | {hi:.1} |", r.name, r.n);
        let sep = if i == 0 { "" } else { ",\n" };
        let _ = write!(
            json,
            "{sep}  {{\"name\": \"{}\", \"unit\": \"us\", \"median\": {m:.2}, \"min\": {lo:.2}, \"max\": {hi:.2}, \"n\": {}, \
             \"baseline\": null, \"baseline_median\": null, \"ratio\": null}}",
            r.name, r.n
        );
    }
    json.push_str("\n]\n");
    let dir = results_dir();
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(dir.join("attach.json"), json).expect("write attach.json");
}
