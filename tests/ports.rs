//! D1 and D3: `-p`/`-P` mappings resolved to host ports inside a sandbox namespace, the
//! published-port registry across allocators and processes, and `docker port` lines.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use netplumb::link::LinkSet;
use netplumb::ports::{
    port_lines, port_lines_for, publish_all, AllocError, PortAllocator, PortMapping, PortRange,
    Proto, PublishedPort,
};
use netplumb::sysctl::Sysctl;
use netplumb::{Error, ErrorKind, Netns};

/// Set in a re-executed copy of this binary: the registry folder its `alloc_worker` uses.
const WORKER_DIR: &str = "NETPLUMB_PORTS_WORKER_DIR";
/// The worker's number, naming its output file.
const WORKER_ID: &str = "NETPLUMB_PORTS_WORKER_ID";
const WORKER_RANGE: (u16, u16) = (40000, 40099);
const PER_WORKER: usize = 50;

fn maps(specs: &[&str]) -> Vec<PortMapping> {
    specs
        .iter()
        .map(|s| PortMapping::parse(s).unwrap())
        .collect()
}

fn range(a: u16, b: u16) -> PortRange {
    PortRange::new(a, b).unwrap()
}

/// An allocator for the sandbox's namespace with its registry on the sandbox's private /run.
fn allocator(ns: &Netns, name: &str, r: (u16, u16)) -> PortAllocator {
    PortAllocator::new(ns)
        .registry_dir(format!("/run/ports-{name}"))
        .range(range(r.0, r.1))
}

fn host_ports(published: &[PublishedPort]) -> Vec<u16> {
    published.iter().map(|p| p.host_port).collect()
}

fn alloc_error(e: &Error) -> &AllocError {
    match e {
        Error::PortAlloc(a) => a,
        other => panic!("expected a port allocation error, got {other}"),
    }
}

#[test]
fn listening_sockets_are_skipped() {
    common::sandbox("listening_sockets_are_skipped", |s| {
        let ns = s.host();
        let alloc = allocator(ns, "skip", (40000, 40004));
        let tcp = ns
            .run(|| TcpListener::bind("0.0.0.0:40000"))
            .unwrap()
            .unwrap();
        let udp = ns
            .run(|| UdpSocket::bind("0.0.0.0:40001"))
            .unwrap()
            .unwrap();
        let got = alloc.publish(&maps(&["80", "53/udp", "81"])).unwrap();
        assert_eq!(host_ports(&got), [40001, 40000, 40002], "{got:?}");
        assert_eq!(
            port_lines(&got),
            [
                "53/udp -> 0.0.0.0:40000",
                "80/tcp -> 0.0.0.0:40001",
                "81/tcp -> 0.0.0.0:40002"
            ]
        );
        // A fixed port a socket holds is refused, and nothing is recorded.
        let e = alloc.publish(&maps(&["40000:80"])).unwrap_err();
        assert!(matches!(alloc_error(&e), AllocError::InUse { .. }), "{e}");
        assert!(e.is_busy(), "{e}");
        assert_eq!(alloc.published().unwrap().len(), 3);
        drop((tcp, udp));
        let got = alloc.publish(&maps(&["40000:80"])).unwrap();
        assert_eq!(host_ports(&got), [40000]);
    });
}

#[test]
fn registry_prevents_double_allocation() {
    common::sandbox("registry_prevents_double_allocation", |s| {
        // Two allocators on one registry folder, taking turns.
        let a = allocator(s.host(), "double", (40000, 40009));
        let b = allocator(s.host(), "double", (40000, 40009));
        let mut seen = BTreeSet::new();
        for i in 0..10 {
            let alloc = if i % 2 == 0 { &a } else { &b };
            let p = alloc.publish(&maps(&["80"])).unwrap();
            assert!(
                seen.insert(p[0].host_port),
                "port {} handed out twice",
                p[0].host_port
            );
        }
        assert_eq!(seen, (40000..=40009).collect());
        let e = b.publish(&maps(&["80"])).unwrap_err();
        assert!(
            matches!(alloc_error(&e), AllocError::Exhausted { .. }),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::Exhausted);
        // Fixed ports: taken on the same address, and on 127.0.0.1 under 0.0.0.0.
        let e = a.publish(&maps(&["40003:80"])).unwrap_err();
        assert!(
            matches!(alloc_error(&e), AllocError::AlreadyPublished { .. }),
            "{e}"
        );
        assert!(e.is_exists(), "{e}");
        let e = a.publish(&maps(&["127.0.0.1:40003:80"])).unwrap_err();
        assert!(
            matches!(alloc_error(&e), AllocError::AlreadyPublished { .. }),
            "{e}"
        );
        // Another protocol is another pool.
        assert_eq!(
            host_ports(&a.publish(&maps(&["40003:80/sctp"])).unwrap()),
            [40003]
        );
    });
}

#[test]
fn order_is_sequential_and_goes_round() {
    common::sandbox("order_is_sequential_and_goes_round", |s| {
        let alloc = allocator(s.host(), "order", (40000, 40002));
        let first = alloc.publish(&maps(&["80", "81", "82"])).unwrap();
        assert_eq!(host_ports(&first), [40000, 40001, 40002]);
        alloc.release(&first[..2]).unwrap();
        alloc.release(&first[..2]).unwrap(); // releasing twice is harmless
                                             // The search resumes after the last port handed out (40002), going round.
        assert_eq!(host_ports(&alloc.publish(&maps(&["83"])).unwrap()), [40000]);
        alloc.release(&first[2..]).unwrap();
        assert_eq!(host_ports(&alloc.publish(&maps(&["84"])).unwrap()), [40001]);
        assert_eq!(host_ports(&alloc.publish(&maps(&["85"])).unwrap()), [40002]);
        let left: Vec<u16> = alloc
            .published()
            .unwrap()
            .iter()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(left, [83, 84, 85]);
    });
}

#[test]
fn dynamic_range_comes_from_the_namespace() {
    common::sandbox("dynamic_range_comes_from_the_namespace", |s| {
        let ns = s.host();
        Sysctl::IpLocalPortRange.set(ns, "41000 41001").unwrap();
        let alloc = PortAllocator::new(ns).registry_dir("/run/ports-dynamic");
        assert_eq!(alloc.dynamic_range().unwrap(), range(41000, 41001));
        // -P for EXPOSE 80/tcp 53/udp: one port of each protocol.
        let all = publish_all(["80/tcp", "53/udp"]).unwrap();
        let got = alloc.publish(&all).unwrap();
        assert_eq!(
            port_lines(&got),
            ["53/udp -> 0.0.0.0:41000", "80/tcp -> 0.0.0.0:41000"]
        );
        assert_eq!(port_lines_for(&got, 80, Proto::Tcp), ["0.0.0.0:41000"]);
        // Two more TCP ports need two free ones; there is one left.
        let e = alloc
            .publish(&publish_all(["8000-8001/tcp"]).unwrap())
            .unwrap_err();
        assert!(e.is_exhausted(), "{e}");
        assert_eq!(
            alloc.published().unwrap().len(),
            2,
            "a failed publish records nothing"
        );
        // The configured range wins over the namespace's.
        let fixed = alloc.clone().range(range(42000, 42000));
        assert_eq!(host_ports(&fixed.publish(&maps(&["80"])).unwrap()), [42000]);
    });
}

#[test]
fn host_ranges() {
    common::sandbox("host_ranges", |s| {
        let ns = s.host();
        let alloc = allocator(ns, "ranges", (40000, 40009));
        let _busy = ns
            .run(|| TcpListener::bind("0.0.0.0:8000"))
            .unwrap()
            .unwrap();
        // One container port, a host range: any one free port of it.
        let one = alloc.publish(&maps(&["8000-8002:80"])).unwrap();
        assert_eq!(port_lines(&one), ["80/tcp -> 0.0.0.0:8001"]);
        // Equal lengths: port by port.
        let many = alloc.publish(&maps(&["9000-9002:90-92/udp"])).unwrap();
        let pairs: Vec<(u16, u16)> = many
            .iter()
            .map(|p| (p.host_port, p.container_port))
            .collect();
        assert_eq!(pairs, [(9000, 90), (9001, 91), (9002, 92)]);
        // A container range without host ports: one free port each.
        let any = alloc.publish(&maps(&["7000-7001"])).unwrap();
        assert_eq!(host_ports(&any), [40000, 40001]);
        // All or nothing: the second mapping collides with the first.
        let e = alloc.publish(&maps(&["9100:80", "9100:81"])).unwrap_err();
        assert!(
            matches!(alloc_error(&e), AllocError::AlreadyPublished { .. }),
            "{e}"
        );
        assert!(!alloc
            .published()
            .unwrap()
            .iter()
            .any(|p| p.host_port == 9100));
        assert_eq!(alloc.published().unwrap().len(), 6);
    });
}

#[test]
fn host_addresses() {
    common::sandbox("host_addresses", |s| {
        let ns = s.host();
        common::rtnl(s).execute(&LinkSet::new("lo").up()).unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let alloc = allocator(ns, "addresses", (40000, 40009)).default_host_ip(lo);
        let got = alloc
            .publish(&maps(&["80", "0.0.0.0::81", "127.0.0.2::82"]))
            .unwrap();
        assert_eq!(
            port_lines(&got),
            [
                "80/tcp -> 127.0.0.1:40000",
                "81/tcp -> 0.0.0.0:40001",
                "82/tcp -> 127.0.0.2:40000"
            ]
        );
        // A listener on one loopback address blocks that address only; 40001 is published
        // on 0.0.0.0, which covers every address.
        let _l = ns
            .run(|| TcpListener::bind("127.0.0.3:40000"))
            .unwrap()
            .unwrap();
        let got = alloc
            .publish(&maps(&["127.0.0.3::83", "127.0.0.4::84"]))
            .unwrap();
        assert_eq!(
            port_lines(&got),
            ["83/tcp -> 127.0.0.3:40002", "84/tcp -> 127.0.0.4:40000"]
        );
        // An address the namespace does not have cannot be checked, so it is refused.
        let e = alloc.publish(&maps(&["192.0.2.1::80"])).unwrap_err();
        assert!(matches!(alloc_error(&e), AllocError::Probe { .. }), "{e}");
        assert!(e.is_not_found(), "{e}");
    });
}

#[test]
fn a_port_on_ipv6_loopback_is_refused_with_the_reason() {
    common::sandbox("a_port_on_ipv6_loopback_is_refused_with_the_reason", |s| {
        let ns = s.host();
        common::rtnl(s).execute(&LinkSet::new("lo").up()).unwrap();
        let alloc = allocator(ns, "v6lo", (40000, 40009));
        for spec in ["[::1]:8086:80", "[::1]::80/udp"] {
            let e = alloc.publish(&maps(&["81", spec])).unwrap_err();
            assert!(
                matches!(alloc_error(&e), AllocError::Ipv6Loopback { .. }),
                "{spec}: {e}"
            );
            assert_eq!(e.kind(), ErrorKind::NotSupported, "{e}");
            assert!(e.to_string().contains("route_localnet"), "{e}");
            assert!(e.to_string().contains("127.0.0.1"), "{e}");
        }
        assert!(alloc.published().unwrap().is_empty(), "nothing recorded");
        let v6 = alloc.publish(&maps(&["[::]:8087:80"])).unwrap();
        assert_eq!(port_lines(&v6), ["80/tcp -> [::]:8087"]);
    });
}

#[test]
fn sctp_relies_on_the_registry() {
    common::sandbox("sctp_relies_on_the_registry", |s| {
        let alloc = allocator(s.host(), "sctp", (40000, 40001));
        let got = alloc.publish(&maps(&["80/sctp", "81/sctp"])).unwrap();
        assert_eq!(
            port_lines(&got),
            ["80/sctp -> 0.0.0.0:40000", "81/sctp -> 0.0.0.0:40001"]
        );
        let e = alloc.publish(&maps(&["82/sctp"])).unwrap_err();
        assert!(e.is_exhausted(), "{e}");
    });
}

#[test]
fn invalid_mappings_are_refused_before_the_registry() {
    common::sandbox("invalid_mappings_are_refused_before_the_registry", |s| {
        let alloc = allocator(s.host(), "invalid", (40000, 40001));
        let bad = PortMapping::new(range(80, 81))
            .host_ports(netplumb::ports::HostPorts::Range(range(8000, 8002)));
        let e = alloc.publish(&[bad]).unwrap_err();
        assert!(matches!(e, Error::PortSpec(_)) && e.is_invalid(), "{e}");
        assert!(
            !Path::new("/run/ports-invalid").exists(),
            "the registry was not even created"
        );
    });
}

/// The entry point of the worker processes of `two_processes_never_collide`; without the
/// environment variable it does nothing.
#[test]
fn alloc_worker() {
    let Ok(dir) = std::env::var(WORKER_DIR) else {
        return;
    };
    let id = std::env::var(WORKER_ID).unwrap();
    let dir = PathBuf::from(dir);
    while !dir.join("go").exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let ns = Netns::current().unwrap();
    let alloc = PortAllocator::new(&ns)
        .registry_dir(&dir)
        .range(range(WORKER_RANGE.0, WORKER_RANGE.1));
    let mut ports = Vec::new();
    for _ in 0..PER_WORKER {
        ports.push(
            alloc.publish(&maps(&["80"])).unwrap()[0]
                .host_port
                .to_string(),
        );
    }
    std::fs::write(dir.join(format!("out-{id}")), ports.join("\n")).unwrap();
}

#[test]
fn two_processes_never_collide() {
    common::sandbox("two_processes_never_collide", |s| {
        // The workers start from this sandbox thread, so they inherit its namespaces and
        // its private /run.
        let dir = Path::new("/run/ports-workers");
        std::fs::create_dir_all(dir).unwrap();
        let exe = common::test_exe();
        let workers: Vec<_> = (0..2)
            .map(|id| {
                Command::new(exe)
                    .args(["--exact", "alloc_worker", "--test-threads=1", "--nocapture"])
                    .env(WORKER_DIR, dir)
                    .env(WORKER_ID, id.to_string())
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        std::fs::write(dir.join("go"), "").unwrap();
        for mut w in workers {
            assert!(w.wait().unwrap().success(), "a worker failed");
        }
        let mut all = Vec::new();
        for id in 0..2 {
            let out = std::fs::read_to_string(dir.join(format!("out-{id}"))).unwrap();
            let ports: Vec<u16> = out.lines().map(|l| l.parse().unwrap()).collect();
            assert_eq!(ports.len(), PER_WORKER, "worker {id}");
            all.extend(ports);
        }
        let distinct: BTreeSet<u16> = all.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            all.len(),
            "a port was handed out twice: {all:?}"
        );
        assert_eq!(distinct, (WORKER_RANGE.0..=WORKER_RANGE.1).collect());
        let alloc = PortAllocator::new(s.host())
            .registry_dir(dir)
            .range(range(WORKER_RANGE.0, WORKER_RANGE.1));
        assert_eq!(
            alloc.published().unwrap().len(),
            2 * PER_WORKER,
            "every allocation recorded"
        );
        assert!(alloc.publish(&maps(&["80"])).unwrap_err().is_exhausted());
    });
}

/// D3 without a kernel: `docker port C` and `docker port C 80` for the mappings of D1.
#[test]
fn docker_port_lines() {
    let all: IpAddr = "0.0.0.0".parse().unwrap();
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let published = [
        PublishedPort::new(Proto::Tcp, all, 32771, 80),
        PublishedPort::new(Proto::Tcp, all, 5000, 5000),
        PublishedPort::new(Proto::Tcp, lo, 6000, 5000),
        PublishedPort::new(Proto::Udp, lo, 4000, 5000),
        PublishedPort::new(Proto::Tcp, "::".parse().unwrap(), 32771, 80),
    ];
    assert_eq!(published[0].to_string(), "80/tcp -> 0.0.0.0:32771");
    assert_eq!(
        published[0].host_addr(),
        SocketAddr::from(([0, 0, 0, 0], 32771))
    );
    assert_eq!(
        port_lines(&published),
        [
            "80/tcp -> 0.0.0.0:32771",
            "80/tcp -> [::]:32771",
            "5000/tcp -> 0.0.0.0:5000",
            "5000/tcp -> 127.0.0.1:6000",
            "5000/udp -> 127.0.0.1:4000",
        ]
    );
    assert_eq!(
        port_lines_for(&published, 80, Proto::Tcp),
        ["0.0.0.0:32771", "[::]:32771"]
    );
    assert_eq!(
        port_lines_for(&published, 5000, Proto::Udp),
        ["127.0.0.1:4000"]
    );
    assert!(port_lines_for(&published, 80, Proto::Udp).is_empty());
}

/// D1: several `-p` at once, and `-P`, parse to the mappings Docker makes.
#[test]
fn d1_specs() {
    let specs = [
        "5000:5000",
        "127.0.0.1:6000:5000",
        "127.0.0.1::5000",
        "80",
        "127.0.0.1:4000:5000/udp",
    ];
    let canonical: Vec<String> = maps(&specs).iter().map(ToString::to_string).collect();
    assert_eq!(
        canonical,
        [
            "5000:5000/tcp",
            "127.0.0.1:6000:5000/tcp",
            "127.0.0.1::5000/tcp",
            "80/tcp",
            "127.0.0.1:4000:5000/udp"
        ]
    );
    let e = Error::from(PortMapping::parse("127.0.0.1:6000:50x0").unwrap_err());
    assert!(e.is_invalid(), "{e}");
    assert!(e.to_string().contains("\"50x0\""), "{e}");
}
