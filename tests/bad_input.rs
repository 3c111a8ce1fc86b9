//! A catalogue of bad input: each case gets a typed error whose kind is asserted and
//! whose message (or field) names the bad part, and leaves nothing half-made (everything
//! a network operation may change is compared before and after).
//!
//! Decided here, and documented in `PortMapping::parse`: `-p 1.2.3.4:80` is refused, as
//! Docker refuses it (`Invalid hostPort: 1.2.3.4`): two fields are `HOST_PORT:CONTAINER_PORT`,
//! so a host address needs both after it (`1.2.3.4::80` for any host port,
//! `1.2.3.4:80:80` for port 80). The error says so instead of calling `1.2.3.4` a bad port.

#![cfg(feature = "store")]

mod common;

use std::net::{IpAddr, TcpListener};
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use netplumb::firewall::Firewall;
use netplumb::link::{Bridge, Dummy, Veth};
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::ports::{HostPorts, PortMapping, PortRange, PortSpecError};
use netplumb::{Error, ErrorKind, Netns, NetnsDir, Rtnl};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn host(s: &Sandbox) -> Host {
    Host::open_in(s.host(), "/run/netplumb-test").unwrap()
}

/// Asserts `e` is of `kind` and its message contains each of `names`.
#[track_caller]
fn names_it(e: &Error, kind: ErrorKind, names: &[&str]) {
    assert_eq!(e.kind(), kind, "{e} ({e:?})");
    let text = e.to_string();
    for n in names {
        assert!(text.contains(n), "{n:?} not named in: {text}");
    }
}

/// The field of an `InvalidInput`.
fn field(e: &Error) -> &'static str {
    match e {
        Error::InvalidInput { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn interface_names() {
    common::sandbox("interface_names", |s| {
        let mut h = host(s);
        let before = common::host_snapshot(&mut h);
        let mut r = common::rtnl(s);
        let fifteen = "abcdefghijklmno";
        let sixteen = "abcdefghijklmnop";
        for (name, reason) in [
            ("", "empty"),
            (sixteen, "longer than 15 bytes"),
            ("a/b", "'/'"),
            ("a b", "whitespace"),
            ("tab\tx", "whitespace"),
        ] {
            for e in [
                r.execute(&Dummy::new(name)).unwrap_err(),
                r.execute(&Bridge::new(name)).unwrap_err(),
                r.execute(&Veth::new("ok0").peer(name)).unwrap_err(),
            ] {
                names_it(&e, ErrorKind::Invalid, &[reason]);
                assert!(
                    e.to_string().contains(&format!("{name:?}")) || name.len() > 15,
                    "{e}"
                );
            }
            let e = h
                .create_network(
                    &NetworkConfig::new("n1")
                        .subnet("10.50.0.0/24".parse().unwrap())
                        .bridge(name),
                )
                .unwrap_err();
            assert_eq!(field(&e), "bridge", "{e}");
            let ns = Netns::new().unwrap();
            let e = h
                .connect("bridge", &Container::new("c1", &ns).ifname(name))
                .unwrap_err();
            assert_eq!(field(&e), "container interface", "{e}");
        }
        assert_eq!(common::host_snapshot(&mut h), before, "nothing was made");
        // Fifteen bytes is the longest name the kernel takes: it works everywhere.
        r.execute(&Bridge::new(fifteen)).unwrap();
        assert_eq!(r.link(fifteen).unwrap().name, fifteen);
        let net = h
            .create_network(
                &NetworkConfig::new("n15")
                    .subnet("10.51.0.0/24".parse().unwrap())
                    .bridge("br-abcdefghijkl"),
            )
            .unwrap();
        assert_eq!(net.bridge.len(), 15);
        let ns = s.netns_dir().create("c15").unwrap();
        let a = h
            .connect("n15", &Container::new("c15", &ns).ifname("eth-abcdefghijk"))
            .unwrap();
        assert_eq!(a.ifname.len(), 15);
        assert!(Rtnl::open_in(&ns).unwrap().link("eth-abcdefghijk").is_ok());
    });
}

#[test]
fn a_link_name_that_is_not_utf8() {
    common::sandbox("a_link_name_that_is_not_utf8", |s| {
        // Only the kernel can hand us such a name (our names are `&str`): a link made
        // by another tool. Dumps and lookups must survive it, and so must a network.
        let raw = std::ffi::OsStr::from_bytes(b"bad\xff\xfename");
        let made = s
            .host()
            .spawn(
                Command::new("ip")
                    .args(["link", "add", "name"])
                    .arg(raw)
                    .args(["type", "bridge"]),
            )
            .map(|c| c.wait_with_output());
        match made {
            Ok(Ok(out)) if out.status.success() => {}
            other => {
                common::skip(
                    "a_link_name_that_is_not_utf8",
                    format_args!("cannot make the link with ip: {other:?}"),
                );
                return;
            }
        }
        let mut r = common::rtnl(s);
        let links = r.links().expect("a dump survives a name that is not UTF-8");
        let odd: Vec<_> = links.iter().filter(|l| l.name.starts_with("bad")).collect();
        assert_eq!(odd.len(), 1, "{links:?}");
        let index = odd[0].index;
        assert_eq!(r.link(index).unwrap().index, index, "found by index");
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("n1").subnet("10.52.0.0/24".parse().unwrap()))
            .unwrap();
        let ns = s.netns_dir().create("c1").unwrap();
        h.connect("n1", &Container::new("c1", &ns)).unwrap();
        h.gc(&["c1"]).unwrap();
        assert!(
            r.links().unwrap().iter().any(|l| l.index == index),
            "not ours: kept"
        );
    });
}

#[test]
fn overlapping_subnets_and_a_gateway_outside() {
    common::sandbox("overlapping_subnets_and_a_gateway_outside", |s| {
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("a").subnet("10.60.0.0/16".parse().unwrap()))
            .unwrap();
        let before = common::host_snapshot(&mut h);
        let e = h
            .create_network(&NetworkConfig::new("b").subnet("10.60.7.0/24".parse().unwrap()))
            .unwrap_err();
        names_it(
            &e,
            ErrorKind::Exists,
            &["10.60.7.0/24", "10.60.0.0/16", "\"a\""],
        );
        assert_eq!(
            common::host_snapshot(&mut h),
            before,
            "overlap: nothing made"
        );
        let e = h
            .create_network(
                &NetworkConfig::new("c")
                    .subnet("10.61.0.0/24".parse().unwrap())
                    .gateway(ip("10.62.0.1")),
            )
            .unwrap_err();
        assert_eq!(field(&e), "gateway");
        names_it(&e, ErrorKind::Invalid, &["10.62.0.1", "outside"]);
        let e = h
            .create_network(
                &NetworkConfig::new("d")
                    .subnet("10.63.0.0/24".parse().unwrap())
                    .gateway(ip("fd00::1")),
            )
            .unwrap_err();
        names_it(&e, ErrorKind::Invalid, &["gateway", "fd00::1"]);
        assert_eq!(
            common::host_snapshot(&mut h),
            before,
            "gateway: nothing made"
        );
    });
}

#[test]
fn port_specs() {
    let cases: [(&str, &str); 6] = [
        ("0:80", "0"),
        ("65536:80", "65536"),
        ("80:80/xyz", "xyz"),
        ("1.2.3.4:80", "1.2.3.4"),
        ("8000-8010:80-85", "8000-8010"),
        ("::1:80:80", "::1"),
    ];
    for (spec, part) in cases {
        let e = PortMapping::parse(spec).unwrap_err();
        assert!(e.to_string().contains(part), "{spec}: {e}");
        let e: Error = e.into();
        names_it(&e, ErrorKind::Invalid, &[spec]);
    }
    let parts = |spec| match PortMapping::parse(spec).unwrap_err() {
        PortSpecError::PortZero { part, .. }
        | PortSpecError::InvalidPort { part, .. }
        | PortSpecError::UnknownProtocol { part, .. }
        | PortSpecError::Ipv6WithoutBrackets { part, .. } => part,
        PortSpecError::RangeLengthMismatch {
            host, container, ..
        } => format!("{host}:{container}"),
        PortSpecError::MissingHostPort { spec } => spec,
        other => panic!("{spec}: {other:?}"),
    };
    assert_eq!(parts("0:80"), "0");
    assert_eq!(parts("65536:80"), "65536");
    assert_eq!(parts("80:80/xyz"), "xyz");
    assert_eq!(parts("8000-8010:80-85"), "8000-8010:80-85");
    assert_eq!(parts("::1:80:80"), "::1");
    assert!(matches!(
        PortMapping::parse("1.2.3.4:80"),
        Err(PortSpecError::MissingHostPort { .. })
    ));
    // What was meant parses.
    let m = PortMapping::parse("1.2.3.4::80").unwrap();
    assert_eq!(
        (m.host_ip, m.host_ports),
        (Some(ip("1.2.3.4")), HostPorts::Any)
    );
    assert!(PortMapping::parse("[::1]:80:80").is_ok());
}

#[test]
fn a_bad_mapping_or_a_taken_port_leaves_nothing() {
    common::sandbox("a_bad_mapping_or_a_taken_port_leaves_nothing", |s| {
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("n1").subnet("10.64.0.0/24".parse().unwrap()))
            .unwrap();
        let before = common::host_snapshot(&mut h);
        let ns = s.netns_dir().create("c1").unwrap();
        // A mapping built (not parsed) with ranges of different lengths.
        let m = PortMapping::new(PortRange::new(80, 85).unwrap())
            .host_ports(HostPorts::Range(PortRange::new(8000, 8010).unwrap()));
        let e = h
            .connect("n1", &Container::new("c1", &ns).publish(m))
            .unwrap_err();
        names_it(&e, ErrorKind::Invalid, &["8000-8010", "80-85"]);
        assert_eq!(
            common::host_snapshot(&mut h),
            before,
            "bad mapping: nothing made"
        );
        // A host port a socket already holds.
        let held = s
            .host()
            .run(|| TcpListener::bind("0.0.0.0:8080"))
            .unwrap()
            .unwrap();
        let e = h
            .connect(
                "n1",
                &Container::new("c1", &ns).publish("8080:80".parse().unwrap()),
            )
            .unwrap_err();
        names_it(&e, ErrorKind::Busy, &["0.0.0.0:8080", "in use"]);
        assert_eq!(
            common::host_snapshot(&mut h),
            before,
            "taken port: nothing made"
        );
        assert!(
            Rtnl::open_in(&ns).unwrap().link("eth0").is_err(),
            "no eth0 left in c1"
        );
        drop(held);
        h.connect(
            "n1",
            &Container::new("c1", &ns).publish("8080:80".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(h.firewall().state().unwrap().ports.len(), 1);
    });
}

/// Paths that are not network namespaces: a plain file, a folder, namespaces of other
/// types.
fn not_namespaces(dir: &std::path::Path) -> Vec<(std::path::PathBuf, &'static str)> {
    let file = dir.join("plain-file");
    std::fs::write(&file, b"not a namespace").unwrap();
    vec![
        (file, "not a namespace file"),
        (dir.to_path_buf(), "not a namespace file"),
        ("/proc/self/ns/uts".into(), "another namespace type"),
        ("/proc/thread-self/ns/mnt".into(), "another namespace type"),
    ]
}

#[test]
fn namespace_paths() {
    common::sandbox("namespace_paths", |_s| {
        let dir = common::TempDir::new("netns-paths");
        for (path, reason) in not_namespaces(&dir.0) {
            let e = Netns::open(&path).unwrap_err();
            assert!(
                matches!(&e, Error::Netns { path: p, .. } if *p == path),
                "{e:?}"
            );
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(reason), "{text}");
        }
        let missing = dir.0.join("missing");
        names_it(
            &Netns::open(&missing).unwrap_err(),
            ErrorKind::NotFound,
            &[&missing.display().to_string()],
        );
        // A named-namespace folder: a plain file in it, a name that leaves it.
        let nd = NetnsDir::new(&dir.0);
        let e = nd.open("plain-file").unwrap_err();
        assert!(e.to_string().contains("plain-file"), "{e}");
        let e = nd.open("../etc").unwrap_err();
        names_it(&e, ErrorKind::Invalid, &["namespace name", "../etc"]);
    });
}

/// A path refused for what it is reads as bad input, not as "other".
#[test]
fn namespace_path_refusals_are_invalid_input() {
    let dir = common::TempDir::new("netns-kinds");
    for (path, _) in not_namespaces(&dir.0) {
        let e = Netns::open(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    }
}

#[test]
fn container_ids_with_path_separators() {
    common::sandbox("container_ids_with_path_separators", |s| {
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("n1").subnet("10.65.0.0/24".parse().unwrap()))
            .unwrap();
        let before = common::host_snapshot(&mut h);
        let ns = s.netns_dir().create("c1").unwrap();
        for id in ["../etc", "a/b", "/abs", ""] {
            let e = h.connect("n1", &Container::new(id, &ns)).unwrap_err();
            assert_eq!(field(&e), "container id", "{e}");
            names_it(&e, ErrorKind::Invalid, &[&format!("{id:?}")]);
        }
        assert_eq!(common::host_snapshot(&mut h), before, "nothing was made");
        let e = s.netns_dir().create("a/b").unwrap_err();
        names_it(&e, ErrorKind::Invalid, &["namespace name", "a/b"]);
    });
}

/// Container names end up in peers' `hosts` files and `--link` lookups: Docker allows
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*` only.
#[test]
fn container_names_with_path_separators() {
    common::sandbox("container_names_with_path_separators", |s| {
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("n1").subnet("10.66.0.0/24".parse().unwrap()))
            .unwrap();
        let before = common::host_snapshot(&mut h);
        let ns = s.netns_dir().create("c1").unwrap();
        for name in ["../../etc/passwd", "web/1", "a b", "-x", ""] {
            let e = h
                .connect("n1", &Container::new("c1", &ns).name(name))
                .unwrap_err();
            assert_eq!(field(&e), "container name", "{e}");
            names_it(&e, ErrorKind::Invalid, &[&format!("{name:?}")]);
        }
        assert_eq!(common::host_snapshot(&mut h), before, "nothing was made");
    });
}

#[cfg(feature = "etcd")]
#[test]
fn etcd_unreachable() {
    common::sandbox("etcd_unreachable", |s| {
        use netplumb::etcd::{Etcd, EtcdConfig};
        use netplumb::link::LinkSet;
        use std::time::Duration;
        let mut r = common::rtnl(s);
        r.execute(&LinkSet::new("lo").up()).unwrap();
        // Nothing listens on port 2 of the sandbox's loopback.
        let cfg = EtcdConfig::new("127.0.0.1:2")
            .unwrap()
            .timeout(Duration::from_secs(2))
            .dial_in(s.host());
        let e = Etcd::connect(cfg).unwrap_err();
        names_it(&e, ErrorKind::Unavailable, &["127.0.0.1:2"]);
        assert!(e.is_unavailable());
        let e = EtcdConfig::new("127.0.0.1:99999").unwrap_err();
        names_it(&e, ErrorKind::Invalid, &["99999"]);
    });
}
