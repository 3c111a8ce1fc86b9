//! Load on one bridge:
//! - 200 containers, each with a published port, connected, reconnected and disconnected
//!   at once by 8 threads (one `Host` each) and 4 processes (one `Host` each) on the same
//!   namespace and records: no call fails, no two containers hold the same address or
//!   host port at any checkpoint, and afterwards nothing is left (a snapshot of links,
//!   addresses, routes, firewall, leases, host ports and records, before and after);
//! - 1,000 containers with 1,000 published ports: the connect time of the last 20 against
//!   the first 20 (medians) and the process's memory (VmRSS/VmHWM) before and after are
//!   printed for the report; nothing asserts a duration.
//!
//! The worker processes are this test binary again, running the ignored test
//! `worker_process` with `NETPLUMB_LOAD_WORKER` set. They are started from the sandbox's
//! thread, so they live in its network and mount namespaces. The phases are started by
//! files the parent writes (`go1`, `go2`, `go3`) and ended by files each worker writes
//! (`done1-ID`, ...), in the records folder.

#![cfg(feature = "store")]

mod common;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::Rng;
use netplumb::firewall::Firewall;
use netplumb::network::{Attachment, Container, Host, NetworkConfig};
use netplumb::Netns;

const NET: &str = "load";
const STATE: &str = "/run/netplumb-load";
/// Containers per worker: 8 threads and 4 processes, 200 in all.
const THREADS: usize = 8;
const PROCS: usize = 4;
const TOTAL: usize = 200;

/// The tests of this file run one at a time: the memory figures are the process's.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

/// Waits for the file `path` to appear.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no {}", path.display());
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The containers one worker owns: ids `w{worker}-{i}`, each in a namespace of its own
/// and with a port to publish.
fn containers(worker: usize, count: usize) -> Vec<(String, Container)> {
    (0..count)
        .map(|i| {
            let (id, ns) = (format!("w{worker}-{i}"), Netns::new().unwrap());
            let c = Container::new(&id, &ns).publish("80".parse().unwrap());
            (id, c)
        })
        .collect()
}

/// One worker's three phases, each started by `go(phase)` and ended by `done(phase)`:
/// connect all; disconnect and connect again each one in a random order (others connect
/// and disconnect meanwhile); disconnect all.
fn work(h: &mut Host, ctrs: &[(String, Container)], seed: u64, sync: &mut dyn FnMut(&str)) {
    sync("go1");
    for (_, c) in ctrs {
        h.connect(NET, c).unwrap();
    }
    sync("done1");
    sync("go2");
    let mut rng = Rng(seed | 1);
    let mut order: Vec<usize> = (0..ctrs.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    for &i in &order {
        let (id, c) = &ctrs[i];
        h.disconnect(NET, id).unwrap();
        h.connect(NET, c).unwrap();
    }
    sync("done2");
    sync("go3");
    for (id, _) in ctrs {
        h.disconnect(NET, id).unwrap();
    }
    sync("done3");
}

/// Not a test: the body of the worker processes `connect_and_disconnect_200_at_once` starts.
#[test]
#[ignore = "run as a worker process by the tests in this file"]
fn worker_process() {
    let Ok(id) = std::env::var("NETPLUMB_LOAD_WORKER") else {
        eprintln!("worker_process: only runs as a child of the load test");
        return;
    };
    let worker: usize = id.parse().unwrap();
    let count: usize = env("NETPLUMB_LOAD_COUNT").parse().unwrap();
    // Started from the sandbox's thread: this whole process is in the sandbox.
    let host = Netns::current().unwrap();
    assert_eq!(
        host.inode().to_string(),
        env("NETPLUMB_LOAD_NETNS"),
        "not in the sandbox"
    );
    let mut h = Host::open_in(&host, STATE).unwrap();
    let ctrs = containers(worker, count);
    let dir = PathBuf::from(STATE);
    work(&mut h, &ctrs, worker as u64, &mut |step| {
        if step.starts_with("go") {
            wait_for(&dir.join(step));
        } else {
            std::fs::write(dir.join(format!("{step}-{worker}")), "").unwrap();
        }
    });
}

/// Everything the containers' traffic depends on, as text.
fn snapshot(h: &mut Host) -> String {
    let mut out = String::new();
    for l in h.rtnl().links().unwrap() {
        writeln!(
            out,
            "link {} {:?} {:?} {}",
            l.name, l.kind, l.controller, l.group
        )
        .unwrap();
    }
    for a in h.rtnl().addrs(None).unwrap() {
        if !matches!(a.addr.addr(), IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80) {
            writeln!(out, "addr {} {}", a.index, a.addr).unwrap();
        }
    }
    for r in h.rtnl().routes().unwrap() {
        if r.dst.addr().is_ipv4() {
            writeln!(out, "route {} {:?} {:?} {}", r.dst, r.via, r.oif, r.table).unwrap();
        }
    }
    writeln!(out, "firewall {:?}", h.firewall().state().unwrap()).unwrap();
    let nft = h
        .netns()
        .spawn(
            Command::new(common::need("nft"))
                .args(["list", "ruleset"])
                .stdout(Stdio::piped()),
        )
        .unwrap()
        .wait_with_output()
        .unwrap();
    out.push_str(&String::from_utf8_lossy(&nft.stdout));
    for n in h.ipam().networks().unwrap() {
        writeln!(out, "ipam {} {}", n.name, n.subnet).unwrap();
        for l in h.ipam().leases(&n.name).unwrap() {
            writeln!(out, "lease {} {}", l.address, l.owner).unwrap();
        }
    }
    let ports = h.published_ports().unwrap();
    writeln!(out, "registry {ports:?}").unwrap();
    writeln!(out, "records {:?}", h.attachments(None).unwrap()).unwrap();
    out
}

/// The checkpoint between phases: `n` containers recorded, no address or host port twice,
/// and the kernel, the firewall, IPAM and the registry agree with the records.
fn check_all_distinct(h: &mut Host, n: usize) {
    let atts: Vec<Attachment> = h.attachments(Some(NET)).unwrap();
    assert_eq!(atts.len(), n);
    let mut addrs = HashSet::new();
    let mut ports = HashSet::new();
    for a in &atts {
        assert_eq!(a.addrs.len(), 1, "{a:?}");
        assert!(addrs.insert(a.addrs[0].addr()), "{} twice", a.addrs[0]);
        assert_eq!(a.ports.len(), 1, "{a:?}");
        assert!(
            ports.insert(a.ports[0].host_port),
            "port {} twice",
            a.ports[0]
        );
    }
    let leases: HashSet<IpAddr> = h
        .ipam()
        .leases(NET)
        .unwrap()
        .iter()
        .map(|l| l.address)
        .collect();
    assert_eq!(leases, addrs, "leases and records differ");
    let fw: HashSet<u16> = h
        .firewall()
        .state()
        .unwrap()
        .ports
        .iter()
        .map(|p| p.host_port)
        .collect();
    assert_eq!(fw, ports, "firewall and records differ");
    let veths = common::bridge_ports(h.rtnl(), "br-load");
    let recorded: std::collections::BTreeSet<String> =
        atts.iter().map(|a| a.host_veth.clone()).collect();
    assert_eq!(veths, recorded, "bridge ports and records differ");
}

/// Starts worker process `worker` with `count` containers.
fn spawn(worker: usize, count: usize, host: &Netns) -> Child {
    common::worker_command()
        .env("NETPLUMB_LOAD_WORKER", worker.to_string())
        .env("NETPLUMB_LOAD_COUNT", count.to_string())
        .env("NETPLUMB_LOAD_NETNS", host.inode().to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn connect_and_disconnect_200_at_once_from_8_threads_and_4_processes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    common::sandbox("connect_and_disconnect_200_at_once", |s| {
        let mut h = Host::open_in(s.host(), STATE).unwrap();
        h.create_network(
            &NetworkConfig::new(NET)
                .subnet("10.100.0.0/16".parse().unwrap())
                .bridge("br-load"),
        )
        .unwrap();
        let before = snapshot(&mut h);
        let per = TOTAL / (THREADS + PROCS);
        let extra = TOTAL - per * (THREADS + PROCS);
        let count = move |w: usize| per + usize::from(w < extra);
        let dir = PathBuf::from(STATE);
        let mut procs: Vec<Child> = (THREADS..THREADS + PROCS)
            .map(|w| spawn(w, count(w), s.host()))
            .collect();
        // The threads and this one meet at each step; the processes go by files.
        let barrier = Arc::new(Barrier::new(THREADS + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|w| {
                let (host, barrier) = (s.host().clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut h = Host::open_in(&host, STATE).unwrap();
                    let ctrs = containers(w, count(w));
                    work(&mut h, &ctrs, w as u64, &mut |_| {
                        barrier.wait();
                    });
                })
            })
            .collect();
        let t0 = Instant::now();
        for phase in 1..=3 {
            std::fs::write(dir.join(format!("go{phase}")), "").unwrap();
            barrier.wait(); // go
            barrier.wait(); // done
            for w in THREADS..THREADS + PROCS {
                wait_for(&dir.join(format!("done{phase}-{w}")));
            }
            eprintln!("phase {phase} done after {:?}", t0.elapsed());
            if phase < 3 {
                check_all_distinct(&mut h, TOTAL);
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        for p in &mut procs {
            assert!(p.wait().unwrap().success(), "a worker process failed");
        }
        assert_eq!(snapshot(&mut h), before, "something was left");
    });
}

/// The kernel's part of a connect, alone: the same requests `Host::connect` sends for each
/// of the namespaces `nss` (veth with its peer in the container, bridge port, IPv6 off on the port,
/// up; inside: lo and eth0 up, address, default route) on a bridge of their own, with no
/// address management, records, firewall or files. Returns each container's time; all
/// of it is deleted again (one group delete, then the bridge).
fn kernel_floor(s: &netplumb::netns::Sandbox, nss: &[Netns]) -> Vec<Duration> {
    use netplumb::addr::Addr;
    use netplumb::link::{AddrGenMode, Bridge, BridgePort, LinkDel, LinkSet, Veth};
    use netplumb::route::Route;
    use netplumb::sysctl::{Scope, Sysctl};
    use netplumb::{Request, Rtnl};
    const GROUP: u32 = 4242;
    let mut r = Rtnl::open_in(s.host()).unwrap();
    r.execute(
        &Bridge::new("br-floor")
            .stp(false)
            .multicast_snooping(false)
            .mac([0x02, 0x01, 0, 0, 0, 1])
            .up(),
    )
    .unwrap();
    let br = r.link("br-floor").unwrap();
    r.execute(&Addr::new(&br, "10.101.0.1/16".parse().unwrap()))
        .unwrap();
    let br = br.index;
    let mut took = Vec::with_capacity(nss.len());
    for (i, ns) in nss.iter().enumerate() {
        let name = format!("vf{i:04}");
        let ip = std::net::Ipv4Addr::from(0x0a65_0002 + i as u32);
        let t = Instant::now();
        r.execute(
            &Veth::new(&name)
                .controller(br)
                .queues(1)
                .group(GROUP)
                .peer("eth0")
                .peer_netns(ns)
                .peer_mac([0x02, 0x42, 10, 101, (i >> 8) as u8, i as u8]),
        )
        .unwrap();
        Sysctl::DisableIpv6(Scope::dev(&name))
            .set(s.host(), "1")
            .unwrap();
        let port: [Box<dyn Request>; 2] = [
            Box::new(BridgePort::new(name.as_str()).hairpin(true)),
            Box::new(LinkSet::new(name.as_str()).up()),
        ];
        r.execute_batch(&port).unwrap();
        let mut inside = Rtnl::open_in(ns).unwrap();
        let eth0 = inside.link("eth0").unwrap();
        let inside_reqs: [Box<dyn Request>; 5] = [
            Box::new(LinkSet::new("lo").up()),
            Box::new(LinkSet::new(&eth0).addr_gen_mode(AddrGenMode::None)),
            Box::new(LinkSet::new(&eth0).up()),
            Box::new(
                Addr::new(&eth0, netplumb::IpNet::new(ip.into(), 16).unwrap()).auto_broadcast(),
            ),
            Box::new(
                Route::default_v4()
                    .via("10.101.0.1".parse().unwrap())
                    .dev(&eth0),
            ),
        ];
        inside.execute_batch(&inside_reqs).unwrap();
        took.push(t.elapsed());
    }
    r.execute(&LinkDel::group(GROUP)).unwrap();
    r.execute(&LinkDel::new("br-floor")).unwrap();
    took
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// `VmRSS` and `VmHWM` of this process, in kB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// The last container connected answers on its address and on its published port.
fn last_one_answers(s: &netplumb::netns::Sandbox, h: &mut Host) {
    let last = h.attachments(Some(NET)).unwrap().pop().unwrap();
    let ns = s.netns_dir().open(&last.container).unwrap();
    common::serve_peer(&ns, "0.0.0.0:80".parse().unwrap());
    let direct = SocketAddr::new(last.addrs[0].addr(), 80);
    let published = SocketAddr::new("10.100.0.1".parse().unwrap(), last.ports[0].host_port);
    for to in [direct, published] {
        assert!(common::call_peer(s.host(), to).is_some(), "{to}: {last:?}");
    }
}

#[test]
fn a_thousand_containers_with_a_thousand_published_ports() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    common::sandbox(
        "a_thousand_containers_with_a_thousand_published_ports",
        |s| {
            let mut h = Host::open_in(s.host(), STATE).unwrap();
            h.create_network(
                &NetworkConfig::new(NET)
                    .subnet("10.100.0.0/16".parse().unwrap())
                    .bridge("br-load"),
            )
            .unwrap();
            let before = snapshot(&mut h);
            // Named namespaces: the bind mounts keep them, not 1,000 open handles.
            let ids: Vec<String> = (0..1000).map(|i| format!("c{i:04}")).collect();
            let nss: Vec<Netns> = ids
                .iter()
                .map(|id| s.netns_dir().create(id).unwrap())
                .collect();
            let ctrs: Vec<Container> = ids
                .iter()
                .zip(&nss)
                .map(|(id, ns)| Container::new(id, ns).publish("80".parse().unwrap()))
                .collect();
            // The high-water mark from here on (`clear_refs` 5 resets it to VmRSS).
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let mem0 = memory();
            let t0 = Instant::now();
            let mut took = Vec::with_capacity(nss.len());
            for c in &ctrs {
                let t = Instant::now();
                h.connect(NET, c).unwrap();
                took.push(t.elapsed());
            }
            let connect_all = t0.elapsed();
            let mem1 = memory();
            check_all_distinct(&mut h, 1000);
            last_one_answers(s, &mut h);
            let t1 = Instant::now();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            h.disconnect_many(NET, &refs).unwrap();
            let disconnect_all = t1.elapsed();
            let floor = kernel_floor(s, &nss);
            drop(ctrs);
            drop(nss);
            let (first, last) = (median(&took[..20]), median(&took[took.len() - 20..]));
            eprintln!(
                "LOAD 1000: connect median first 20 {first:?}, last 20 {last:?} ({:.2}x); \
             all 1,000 connects {connect_all:?}; disconnect_many of 1,000 {disconnect_all:?}",
                last.as_secs_f64() / first.as_secs_f64()
            );
            let (f0, f1) = (median(&floor[..20]), median(&floor[floor.len() - 20..]));
            eprintln!(
                "LOAD 1000: kernel floor (the same link, address and route requests alone) \
                 first 20 {f0:?}, last 20 {f1:?} ({:.2}x); netplumb's own share first 20 \
                 {:?}, last 20 {:?}",
                f1.as_secs_f64() / f0.as_secs_f64(),
                first.saturating_sub(f0),
                last.saturating_sub(f1),
            );
            eprintln!(
                "LOAD 1000: VmRSS {} -> {} kB, VmHWM {} -> {} kB",
                mem0.0, mem1.0, mem0.1, mem1.1
            );
            assert_eq!(snapshot(&mut h), before, "something was left");
        },
    );
}
