//! Overlay networks with etcd on loopback: what an address allocation through the shared
//! store costs, and what connecting a container to an overlay network costs.
//!
//! - `overlay_alloc`: one allocate + release pair through `Ipam<EtcdStore>` (two etcd
//!   transactions each, with their compare-and-swap), one host alone.
//! - `overlay_alloc_3hosts`: the same pair while three hosts (three clients on three
//!   threads) allocate on the same network at once, so compare-and-swap conflicts and
//!   retries are part of the figure.
//! - `overlay_connect`: `Overlay::connect` of a container on host 2 of a three-host
//!   scene whose overlay bridge and VXLAN device already exist (the first container made
//!   them): lease in etcd, veth, address, endpoint published to etcd, gateway-bridge
//!   connect with default route and masquerade, FDB/neighbour sync. The bridge-network
//!   connect of the same host (`Host::connect`) is measured in the same run as
//!   `bridge_connect_median`, for scale.
//! - `agent_propagation`: with an `overlay::Agent` on hosts 1 and 3, from a connect on
//!   host 3 returning to host 1's neighbour entry for the new container (per container).
//! - `host_death_drop`: from host 3's processes ending to host 1 dropping its FDB entry
//!   (one sample; the registrations' TTL is 15 s).
//!
//! etcd (`/usr/bin/etcd`) runs inside the bench's own sandbox namespace on 127.0.0.1 with
//! a temporary data dir, and is killed at the end. Writes
//! `target/bench-results/overlay.json` (the common fields of benches/README.md; no peer
//! does this without a daemon, so `baseline` is null). Environment: `NETPLUMB_BENCH_N`
//! allocation pairs (default 300), `NETPLUMB_BENCH_CONNECTS` containers (default 40).
//! `NETPLUMB_BENCH_SCALE=HOSTSxNETWORKS` runs the scale simulation instead (see `scale`),
//! writing `overlay_scale.json`.

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{results_dir, stats};
use netplumb::addr::Addr;
use netplumb::etcd::{Etcd, EtcdConfig};
use netplumb::ipam::{EtcdStore, Ipam, Owner};
use netplumb::link::{Bridge, LinkSet, Veth};
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::overlay::{
    EtcdDiscovery, EtcdNetworks, Overlay, OverlaySpec, PeerDiscovery, PeerHost,
};
use netplumb::{Netns, Rtnl};

fn env_n(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct EtcdProc(Child, std::path::PathBuf);

impl Drop for EtcdProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_etcd(sb: &Sandbox) -> EtcdProc {
    let mut lo = Rtnl::open_in(sb.host()).expect("rtnl");
    lo.execute(&LinkSet::new("lo").up()).expect("lo up");
    let dir = std::env::temp_dir().join(format!("netplumb-bench-etcd-{}", std::process::id()));
    let child = Command::new("/usr/bin/etcd")
        .args(["--name", "bench", "--data-dir"])
        .arg(&dir)
        .args([
            "--listen-client-urls=http://127.0.0.1:2379",
            "--advertise-client-urls=http://127.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=bench=http://127.0.0.1:2380",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("/usr/bin/etcd (Debian package etcd-server) must be installed");
    let p = EtcdProc(child, dir);
    let end = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect("127.0.0.1:2379").is_err() {
        assert!(Instant::now() < end, "etcd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait until it serves requests, not just accepts connections.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(e) = Etcd::connect(EtcdConfig::new("127.0.0.1:2379").expect("url")) {
            if e.get("/probe").is_ok() {
                break;
            }
        }
        assert!(Instant::now() < end, "etcd does not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

fn client() -> Etcd {
    Etcd::connect(EtcdConfig::new("127.0.0.1:2379").expect("url")).expect("etcd client")
}

/// One allocate + release pair per sample, in microseconds.
fn alloc_pairs(ipam: &Ipam<EtcdStore>, net: &str, tag: &str, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let owner = Owner::new(format!("{tag}-{i}"), "eth0");
            let t = Instant::now();
            let lease = ipam.allocate(net, &owner).expect("allocate");
            let freed = ipam.release(net, lease.address).expect("release");
            assert!(freed.was_held(), "released an address it did not hold");
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

fn machine(sandbox: &mut Rtnl, n: u8) -> Netns {
    let ns = Netns::new().expect("namespace");
    let br = sandbox.link("ul0").expect("underlay bridge");
    sandbox
        .execute(
            &Veth::new(&format!("ul-{n}"))
                .controller(br.index)
                .up()
                .peer("eth0")
                .peer_netns(&ns),
        )
        .expect("underlay veth");
    let mut r = Rtnl::open_in(&ns).expect("rtnl");
    r.execute(&LinkSet::new("lo").up()).expect("lo");
    let e = r.link("eth0").expect("eth0");
    r.execute(&LinkSet::new(&e).up()).expect("eth0 up");
    r.execute(&Addr::new(
        &e,
        format!("192.168.99.{n}/24").parse().unwrap(),
    ))
    .expect("underlay address");
    ns
}

fn row(name: &str, v: &mut [f64], extra: &str) -> String {
    let s = stats(v);
    format!(
        "  {{\"name\": \"{name}\", \"unit\": \"us\", \"median\": {:.1}, \"min\": {:.1}, \"max\": {:.1}, \"mean\": {:.1}, \"n\": {}, \"baseline\": null, \"baseline_median\": null, \"ratio\": null{extra}}}",
        s.median, s.min, s.max, s.mean, v.len()
    )
}

fn bench(sb: &Sandbox) -> Vec<String> {
    let _etcd = start_etcd(sb);
    let n = env_n("NETPLUMB_BENCH_N", 300);
    let connects = env_n("NETPLUMB_BENCH_CONNECTS", 40);
    let mut rows = Vec::new();

    // Allocation: host 1 creates the network, every host allocates through its own client.
    let nets = EtcdNetworks::new(client());
    let ipam1 = Ipam::new(EtcdStore::new(client()));
    let _ = nets
        .create(
            &ipam1,
            &OverlaySpec::new("alloc").subnet("10.1.0.0/16".parse().unwrap()),
        )
        .expect("create network");
    let mut alone = alloc_pairs(&ipam1, "alloc", "solo", n);
    let s = stats(&mut alone);
    println!("overlay_alloc         median {:8.1} us  (n={n})", s.median);
    rows.push(row("overlay_alloc", &mut alone, ", \"hosts\": 1"));
    let mut together: Vec<f64> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..3)
            .map(|h| {
                sc.spawn(move || {
                    let ipam = Ipam::new(EtcdStore::new(client()));
                    alloc_pairs(&ipam, "alloc", &format!("h{h}"), n / 3)
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let s = stats(&mut together);
    println!(
        "overlay_alloc_3hosts  median {:8.1} us  (n={})",
        s.median,
        together.len()
    );
    rows.push(row("overlay_alloc_3hosts", &mut together, ", \"hosts\": 3"));

    // Connect: three hosts on an underlay bridge, the overlay's devices made by a first
    // container on each, then `connects` more on host 2.
    let mut sandbox = Rtnl::open_in(sb.host()).expect("rtnl");
    sandbox
        .execute(&Bridge::new("ul0").stp(false).up())
        .expect("underlay bridge");
    let ov1 = nets.create(&ipam1, &OverlaySpec::new("ov1")).expect("ov1");
    let mut dirs = Vec::new();
    let mut hosts: Vec<Overlay<EtcdStore>> = (1..=3u8)
        .map(|i| {
            let ns = machine(&mut sandbox, i);
            let dir = std::env::temp_dir()
                .join(format!("netplumb-bench-overlay-{}-{i}", std::process::id()));
            dirs.push(dir.clone());
            let host = Host::open_in(&ns, &dir).expect("host");
            let me = PeerHost {
                id: format!("h{i}"),
                underlay: format!("192.168.99.{i}").parse().unwrap(),
            };
            let d: Arc<dyn PeerDiscovery> = Arc::new(EtcdDiscovery::new(client()));
            Overlay::new(host, me, Ipam::new(EtcdStore::new(client())), d).expect("overlay")
        })
        .collect();
    let mut firsts = Vec::new();
    for (i, h) in hosts.iter_mut().enumerate() {
        let ns = Netns::new().expect("namespace");
        h.connect(&ov1, &Container::new(&format!("first{i}"), &ns))
            .expect("first connect");
        firsts.push(ns);
    }
    let ctrs: Vec<Netns> = (0..connects)
        .map(|_| Netns::new().expect("namespace"))
        .collect();
    let mut times: Vec<f64> = ctrs
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let t = Instant::now();
            hosts[1]
                .connect(&ov1, &Container::new(&format!("c{i}"), ns))
                .expect("overlay connect");
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    // The same host's bridge-network connect, for scale.
    let h2 = hosts[1].host_mut();
    h2.create_network(&NetworkConfig::new("br1").subnet("10.77.0.0/16".parse().unwrap()))
        .expect("bridge network");
    let bctrs: Vec<Netns> = (0..connects)
        .map(|_| Netns::new().expect("namespace"))
        .collect();
    let mut btimes: Vec<f64> = bctrs
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let t = Instant::now();
            h2.connect("br1", &Container::new(&format!("b{i}"), ns))
                .expect("bridge connect");
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    let b = stats(&mut btimes);
    let s = stats(&mut times);
    println!(
        "overlay_connect       median {:8.1} us  (n={connects}; bridge connect {:.1} us)",
        s.median, b.median
    );
    rows.push(row(
        "overlay_connect",
        &mut times,
        &format!(", \"bridge_connect_median\": {:.1}", b.median),
    ));
    rows.extend(agent_rows(&mut hosts, &dirs, &ov1, connects));
    drop(hosts);
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
    rows
}

/// Whether host `ns` has a neighbour entry for `ip` on `vxlan`.
fn knows(r: &mut Rtnl, vxlan: &str, ip: std::net::IpAddr) -> bool {
    let Ok(vx) = r.link(vxlan) else {
        return false;
    };
    r.neighs(&vx)
        .map(|n| n.iter().any(|n| n.dst == Some(ip)))
        .unwrap_or(false)
}

/// With an agent on hosts 1 and 3 (each its own driver and lease, as `netplumb agent`
/// runs): `agent_propagation`, from a connect on host 3 returning to host 1's neighbour
/// entry for the new container being in place; `host_death_drop`, from host 3's
/// processes ending (its agent stopped, its one-shot driver dropped: their leases are no
/// longer renewed) to host 1 dropping host 3's FDB entry, with the default TTL.
fn agent_rows(
    hosts: &mut [Overlay<EtcdStore>],
    dirs: &[std::path::PathBuf],
    ov1: &netplumb::overlay::OverlayNetwork,
    connects: usize,
) -> Vec<String> {
    use netplumb::overlay::Agent;
    let agent = |i: usize| {
        let ns = hosts[i].host().netns().clone();
        let host = Host::open_in(&ns, &dirs[i]).expect("host");
        let me = hosts[i].peer_host().clone();
        let d: Arc<dyn PeerDiscovery> = Arc::new(EtcdDiscovery::new(client()));
        let ov = Overlay::new(host, me, Ipam::new(EtcdStore::new(client())), d).expect("overlay");
        let nets = EtcdNetworks::new(client());
        let ttl = netplumb::overlay::ETCD_TTL;
        Agent::start(ov, Box::new(move || nets.list()), ttl / 3).expect("agent")
    };
    let (a1, a3) = (agent(0), agent(2));
    std::thread::sleep(Duration::from_secs(1)); // both follow ov1
    let mut r1 = Rtnl::open_in(hosts[0].host().netns()).expect("rtnl host 1");
    let vxlan = ov1.vxlan_name();
    let ctrs: Vec<Netns> = (0..connects)
        .map(|_| Netns::new().expect("namespace"))
        .collect();
    let mut lat: Vec<f64> = Vec::new();
    for (i, ns) in ctrs.iter().enumerate() {
        let att = hosts[2]
            .connect(ov1, &Container::new(&format!("p{i}"), ns))
            .expect("connect on host 3");
        let t = Instant::now();
        while !knows(&mut r1, &vxlan, att.addr.addr()) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "host 1 never learned p{i}"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let s = stats(&mut lat);
    println!(
        "agent_propagation     median {:8.1} us  max {:.1} us (n={connects})",
        s.median, s.max
    );
    let mut rows = vec![row("agent_propagation", &mut lat, ", \"hosts\": 3")];
    // Host 3 dies.
    let dead: std::net::IpAddr = "192.168.99.3".parse().unwrap();
    let t = Instant::now();
    a3.stop();
    let gone_at = {
        // The one-shot driver of host 3 ends too (its lease is no longer renewed).
        let ns3 = hosts[2].host().netns().clone();
        let stale = std::mem::replace(&mut hosts[2], agentless(&ns3, &dirs[2]));
        drop(stale);
        loop {
            let dsts: Vec<std::net::IpAddr> = r1
                .link(vxlan.as_str())
                .and_then(|vx| r1.fdb(&vx))
                .map(|f| f.into_iter().filter_map(|n| n.dst).collect())
                .unwrap_or_default();
            if !dsts.contains(&dead) {
                break t.elapsed();
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "host 3 never dropped"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let ttl = netplumb::overlay::ETCD_TTL.as_secs_f64();
    println!(
        "host_death_drop       {:8.3} s  (TTL {ttl} s)",
        gone_at.as_secs_f64()
    );
    let mut d = vec![gone_at.as_secs_f64() * 1e6];
    rows.push(row(
        "host_death_drop",
        &mut d,
        &format!(", \"ttl_s\": {ttl}"),
    ));
    a1.stop();
    rows
}

/// A driver for host `ns` whose discovery registers nothing yet (what replaces a dead
/// process's in the bench's host list).
fn agentless(ns: &Netns, dir: &std::path::Path) -> Overlay<EtcdStore> {
    let host = Host::open_in(ns, dir).expect("host");
    let me = PeerHost {
        id: "h3-after".into(),
        underlay: "192.168.99.3".parse().unwrap(),
    };
    let d: Arc<dyn PeerDiscovery> = Arc::new(EtcdDiscovery::new(client()));
    Overlay::new(host, me, Ipam::new(EtcdStore::new(client())), d).expect("overlay")
}

/// etcd's Prometheus counters `grpc_server_started_total` by method (Watch, Range,
/// LeaseKeepAlive, Txn, Put, …), read from `/metrics`.
fn rpc_counts() -> std::collections::BTreeMap<String, f64> {
    use std::io::{Read, Write};
    let mut out = std::collections::BTreeMap::new();
    let Ok(mut s) = TcpStream::connect("127.0.0.1:2379") else {
        return out;
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    for l in text
        .lines()
        .filter(|l| l.starts_with("grpc_server_started_total{"))
    {
        let method = l
            .split("grpc_method=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        let v: f64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *out.entry(method.to_owned()).or_default() += v;
    }
    out
}

/// `NETPLUMB_BENCH_SCALE=HOSTSxNETWORKS`: simulated hosts (threads, an etcd client and an
/// `EtcdDiscovery` each) register in every network with one endpoint each and watch every
/// network as the agent's watchers do; measured: registration time, then what the idle
/// cluster asks of etcd per second (requests by method, over 10 s), then a churn of
/// endpoint publishes and withdrawals and the write latency.
fn scale(sb: &Sandbox, hosts: usize, nets: usize) -> Vec<String> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let _etcd = start_etcd(sb);
    let stop = Arc::new(AtomicBool::new(false));
    let wakeups = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let ds: Vec<Arc<EtcdDiscovery>> = (0..hosts)
        .map(|h| {
            let d = Arc::new(EtcdDiscovery::new(client()));
            let me = PeerHost {
                id: format!("h{h}"),
                underlay: std::net::IpAddr::from([10, 200, (h / 250) as u8, (h % 250) as u8 + 1]),
            };
            for n in 0..nets {
                let net = format!("sim{n}");
                d.join(&net, &me).expect("join");
                let ip = std::net::IpAddr::from([
                    10,
                    100 + n as u8,
                    (h / 250) as u8,
                    (h % 250) as u8 + 1,
                ]);
                let ep = netplumb::overlay::PeerEndpoint {
                    host: me.id.clone(),
                    ip,
                    mac: netplumb::link::MacAddr::from_ip(ip),
                };
                d.publish(&net, &ep).expect("publish");
            }
            d
        })
        .collect();
    let register_s = t.elapsed().as_secs_f64();
    println!("scale: {hosts} hosts x {nets} networks registered in {register_s:.1} s");
    let mut threads = Vec::new();
    for d in &ds {
        for n in 0..nets {
            let (d, stop, wakeups) = (d.clone(), stop.clone(), wakeups.clone());
            threads.push(std::thread::spawn(move || {
                let net = format!("sim{n}");
                // As `Overlay::watch`'s thread: waits of 200 ms on one open watch; the
                // view discovery followed after each change (no range), and one read
                // every 60 s although nothing changed.
                let mut seen = d.view(&net).map(|v| v.revision).unwrap_or(0);
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let changed =
                        matches!(d.wait(&net, seen, Duration::from_millis(200)), Ok(Some(_)));
                    if changed {
                        wakeups.fetch_add(1, Ordering::Relaxed);
                    }
                    if last.elapsed() >= Duration::from_secs(60) {
                        seen = d.view(&net).map(|v| v.revision).unwrap_or(seen);
                        last = Instant::now();
                    } else if changed {
                        seen = d.view_followed(&net).map(|v| v.revision).unwrap_or(seen);
                    }
                }
            }));
        }
    }
    std::thread::sleep(Duration::from_secs(3)); // every watcher has its watch open
    let (before, t) = (rpc_counts(), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let (after, idle_s) = (rpc_counts(), t.elapsed().as_secs_f64());
    let rate = |m: &str| (after.get(m).unwrap_or(&0.0) - before.get(m).unwrap_or(&0.0)) / idle_s;
    let idle: Vec<String> = ["Watch", "Range", "LeaseKeepAlive", "Txn", "Put"]
        .iter()
        .map(|m| format!("{m} {:.1}/s", rate(m)))
        .collect();
    println!("scale: idle, requests to etcd: {}", idle.join(", "));
    // Churn: one endpoint published and withdrawn again per step, round the hosts.
    let steps = 200;
    let woke = wakeups.load(Ordering::Relaxed);
    let mut writes: Vec<f64> = Vec::new();
    for i in 0..steps {
        let (h, n) = (i % hosts, i % nets);
        let net = format!("sim{n}");
        let ip = std::net::IpAddr::from([10, 150, (i / 250) as u8, (i % 250) as u8 + 1]);
        let ep = netplumb::overlay::PeerEndpoint {
            host: format!("h{h}"),
            ip,
            mac: netplumb::link::MacAddr::from_ip(ip),
        };
        let t = Instant::now();
        ds[h].publish(&net, &ep).expect("publish");
        ds[h].withdraw(&net, &ep.host, ip).expect("withdraw");
        writes.push(t.elapsed().as_secs_f64() * 1e6 / 2.0);
    }
    std::thread::sleep(Duration::from_secs(1));
    let fanned = wakeups.load(Ordering::Relaxed) - woke;
    let w = stats(&mut writes);
    println!(
        "scale: churn, {} writes: median {:.0} us each; {fanned} watcher wake-ups ({:.1} per write)",
        steps * 2,
        w.median,
        fanned as f64 / (steps * 2) as f64
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    let extra = format!(
        ", \"hosts\": {hosts}, \"networks\": {nets}, \"register_s\": {register_s:.2}, \"idle_watch_per_s\": {:.1}, \"idle_range_per_s\": {:.1}, \"idle_keepalive_per_s\": {:.1}, \"watcher_wakeups_per_write\": {:.1}",
        rate("Watch"),
        rate("Range"),
        rate("LeaseKeepAlive"),
        fanned as f64 / (steps * 2) as f64
    );
    vec![row("scale_endpoint_write", &mut writes, &extra)]
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` / `--list`: nothing to enumerate.
    }
    if let Ok(spec) = std::env::var("NETPLUMB_BENCH_SCALE") {
        let (h, n) = spec
            .split_once('x')
            .and_then(|(h, n)| Some((h.parse().ok()?, n.parse().ok()?)))
            .expect("NETPLUMB_BENCH_SCALE=HOSTSxNETWORKS");
        let rows = netplumb::netns::sandbox(|sb| scale(sb, h, n)).expect("sandbox (needs root)");
        let dir = results_dir();
        std::fs::create_dir_all(&dir).expect("results dir");
        let json = format!("[\n{}\n]\n", rows.join(",\n"));
        std::fs::write(dir.join("overlay_scale.json"), json).expect("write overlay_scale.json");
        println!("wrote {}", dir.join("overlay_scale.json").display());
        return;
    }
    let rows = netplumb::netns::sandbox(bench).expect("sandbox (needs root)");
    let dir = results_dir();
    std::fs::create_dir_all(&dir).expect("results dir");
    let json = format!("[\n{}\n]\n", rows.join(",\n"));
    std::fs::write(dir.join("overlay.json"), json).expect("write overlay.json");
    println!("wrote {}", dir.join("overlay.json").display());
}
