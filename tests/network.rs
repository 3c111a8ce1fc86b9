//! Docker's bridge driver through `network::Host`, against the real kernel: scenarios
//! C1–C7 and E1–E3, idempotent teardown, and rollback at every step.

#![cfg(feature = "store")]

mod common;

use common::no_dad;

use std::net::{IpAddr, SocketAddr};

#[cfg(feature = "_fault-injection")]
use netplumb::fault;
use netplumb::firewall::{Firewall, Proto};
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::{Netns, Rtnl};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn host(s: &Sandbox) -> Host {
    no_dad(s.host());
    Host::open_in(s.host(), "/run/netplumb-test").unwrap()
}

fn ctr_ns(s: &Sandbox, name: &str) -> Netns {
    let ns = s.netns_dir().create(name).unwrap();
    no_dad(&ns);
    ns
}

fn outside(s: &Sandbox) -> Netns {
    common::outside(s)
}

fn serve(ns: &Netns, port: u16) -> u16 {
    common::serve_peer(ns, SocketAddr::from(([0, 0, 0, 0], port)))
}

fn call(ns: &Netns, to: SocketAddr) -> Option<String> {
    common::call_peer(ns, to)
}

#[test]
fn default_bridge_network_two_containers_and_traffic() {
    common::sandbox("default_bridge_network_two_containers_and_traffic", |s| {
        let mut h = host(s);
        let net = h
            .create_network(&NetworkConfig::new("bridge").subnet("172.17.0.0/16".parse().unwrap()))
            .unwrap();
        assert_eq!(net.bridge, "docker0");
        assert_eq!(net.gateways, [ip("172.17.0.1")]);
        assert_eq!(net.id.len(), 64);
        let br = h.rtnl().link("docker0").unwrap();
        assert!(h
            .rtnl()
            .addrs(Some((&br).into()))
            .unwrap()
            .iter()
            .any(|a| a.addr == "172.17.0.1/16".parse().unwrap()));
        let (n1, n2) = (ctr_ns(s, "c1"), ctr_ns(s, "c2"));
        let a1 = h
            .connect(
                "bridge",
                &Container::new("c1c1c1c1c1c1", &n1).name("busybox1"),
            )
            .unwrap();
        let a2 = h
            .connect(
                "bridge",
                &Container::new("c2c2c2c2c2c2", &n2).name("busybox2"),
            )
            .unwrap();
        assert_eq!(a1.addrs, ["172.17.0.2/16".parse().unwrap()]);
        assert_eq!(a2.addrs, ["172.17.0.3/16".parse().unwrap()]);
        assert_eq!(a1.mac.unwrap().to_string(), "02:42:ac:11:00:02");
        assert!(
            a1.host_veth.starts_with("veth") && a1.host_veth.len() == 11,
            "{}",
            a1.host_veth
        );
        let hv = h.rtnl().link(a1.host_veth.as_str()).unwrap();
        assert_eq!(hv.controller, Some(br.index));
        let mut r1 = Rtnl::open_in(&n1).unwrap();
        let eth0 = r1.link("eth0").unwrap();
        assert_eq!(eth0.mac.unwrap().to_string(), "02:42:ac:11:00:02");
        assert!(r1
            .main_routes()
            .unwrap()
            .iter()
            .any(|r| r.is_default() && r.via == Some(ip("172.17.0.1"))));
        assert!(h.rtnl().link("docker0").unwrap().has_carrier());
        serve(&n2, 80);
        assert_eq!(
            call(&n1, "172.17.0.3:80".parse().unwrap()).as_deref(),
            Some("172.17.0.2")
        );
        // Connecting again with the same request returns the same attachment.
        assert_eq!(
            h.connect(
                "bridge",
                &Container::new("c1c1c1c1c1c1", &n1).name("busybox1")
            )
            .unwrap(),
            a1
        );
    });
}

#[test]
fn published_port_and_outbound_nat() {
    common::sandbox("published_port_and_outbound_nat", |s| {
        let mut h = host(s);
        let out = outside(s);
        h.create_network(&NetworkConfig::new("bridge").subnet("172.17.0.0/16".parse().unwrap()))
            .unwrap();
        let n1 = ctr_ns(s, "web");
        serve(&n1, 80);
        let a = h
            .connect(
                "bridge",
                &Container::new("webwebwebweb", &n1)
                    .publish("8080:80".parse().unwrap())
                    .publish("80".parse().unwrap()),
            )
            .unwrap();
        assert_eq!(a.ports.len(), 2);
        assert_eq!(a.ports[0].to_string(), "80/tcp -> 0.0.0.0:8080");
        let auto = a.ports[1].host_port;
        assert!(auto >= 1024, "a free host port: {auto}");
        assert_eq!(
            call(&out, "192.0.2.1:8080".parse().unwrap()).as_deref(),
            Some("192.0.2.2")
        );
        assert!(call(&out, SocketAddr::new(ip("192.0.2.1"), auto)).is_some());
        let port = serve(&out, 0);
        assert_eq!(
            call(&n1, SocketAddr::new(ip("192.0.2.2"), port)).as_deref(),
            Some("192.0.2.1"),
            "masqueraded"
        );
        h.disconnect("bridge", "webwebwebweb").unwrap();
        assert_eq!(
            call(&out, "192.0.2.1:8080".parse().unwrap()),
            None,
            "unpublished on disconnect"
        );
        assert!(h.firewall().state().unwrap().ports.is_empty());
    });
}

#[test]
fn user_network_options() {
    common::sandbox("user_network_options", |s| {
        let mut h = host(s);
        let cfg = NetworkConfig::new("mybr0")
            .subnet("192.168.5.0/24".parse().unwrap())
            .gateway(ip("192.168.5.1"))
            .bridge("bridge0")
            .ip_range("192.168.5.128/25".parse().unwrap())
            .mtu(1400)
            .label("env", "test");
        let net = h.create_network(&cfg).unwrap();
        assert_eq!(net.bridge, "bridge0");
        assert_eq!(h.rtnl().link("bridge0").unwrap().mtu, 1400);
        let n1 = ctr_ns(s, "c1");
        let a = h.connect("mybr0", &Container::new("aaaa", &n1)).unwrap();
        assert!(
            "192.168.5.128/25"
                .parse::<netplumb::IpNet>()
                .unwrap()
                .contains(&a.addrs[0].addr()),
            "{:?}",
            a.addrs
        );
        assert_eq!(Rtnl::open_in(&n1).unwrap().link("eth0").unwrap().mtu, 1400);
        let n2 = ctr_ns(s, "c2");
        let b = h
            .connect("mybr0", &Container::new("bbbb", &n2).ip(ip("192.168.5.10")))
            .unwrap();
        assert_eq!(b.addrs[0].addr(), ip("192.168.5.10"));
        let n3 = ctr_ns(s, "c3");
        let e = h
            .connect("mybr0", &Container::new("cccc", &n3).ip(ip("192.168.5.10")))
            .unwrap_err();
        assert!(e.is_exists(), "{e}");
        assert!(h
            .create_network(&NetworkConfig::new("mybr0"))
            .unwrap_err()
            .is_exists());
        let e = h
            .create_network(&NetworkConfig::new("other").subnet("192.168.5.0/25".parse().unwrap()))
            .unwrap_err();
        assert!(
            e.to_string().contains("mybr0"),
            "overlap names the other network: {e}"
        );
    });
}

#[test]
fn remove_refuses_while_connected_and_teardown_is_idempotent() {
    common::sandbox(
        "remove_refuses_while_connected_and_teardown_is_idempotent",
        |s| {
            let mut h = host(s);
            let before = common::host_snapshot(&mut h);
            h.create_network(&NetworkConfig::new("n1").subnet("10.50.0.0/24".parse().unwrap()))
                .unwrap();
            let n1 = ctr_ns(s, "c1");
            h.connect(
                "n1",
                &Container::new("c1", &n1).publish("8080:80".parse().unwrap()),
            )
            .unwrap();
            let e = h.remove_network("n1", false).unwrap_err();
            assert!(e.is_busy(), "{e}");
            h.disconnect("n1", "c1").unwrap();
            h.disconnect("n1", "c1").unwrap();
            h.remove_network("n1", false).unwrap();
            h.remove_network("n1", false).unwrap();
            assert_eq!(common::host_snapshot(&mut h).replace("fw FirewallState { families: [\"ip\", \"ip6\"], networks: [], rules: [], ports: [] }", "fw FirewallState { families: [], networks: [], rules: [], ports: [] }"), before);
            // Forced removal disconnects.
            h.create_network(&NetworkConfig::new("n2").subnet("10.51.0.0/24".parse().unwrap()))
                .unwrap();
            h.connect("n2", &Container::new("c1", &n1)).unwrap();
            h.remove_network("n2", true).unwrap();
            assert!(h.attachments(None).unwrap().is_empty());
            assert!(
                Rtnl::open_in(&n1)
                    .unwrap()
                    .link("eth0")
                    .unwrap_err()
                    .is_not_found(),
                "container link gone"
            );
        },
    );
}

/// Needs the test-only feature `_fault-injection`.
#[cfg(feature = "_fault-injection")]
#[test]
fn a_fault_at_any_step_of_connect_or_create_leaves_nothing() {
    common::sandbox(
        "a_fault_at_any_step_of_connect_or_create_leaves_nothing",
        |s| {
            let mut h = host(s);
            h.firewall()
                .add_network(
                    &netplumb::firewall::NetworkRules::new("warmup", "none0")
                        .subnet("10.99.0.0/24".parse().unwrap()),
                )
                .unwrap();
            h.firewall().remove_network("warmup").unwrap();
            let clean = common::host_snapshot(&mut h);
            let mut create_steps = 0;
            for n in 0.. {
                fault::fail_at(Some(n));
                let r = h.create_network(
                    &NetworkConfig::new("n1")
                        .subnet("10.60.0.0/24".parse().unwrap())
                        .icc(false),
                );
                fault::fail_at(None);
                if r.is_ok() {
                    create_steps = n;
                    break;
                }
                assert!(r.unwrap_err().to_string().contains("injected fault"));
                assert_eq!(
                    common::host_snapshot(&mut h),
                    clean,
                    "create failing at step {n} left something"
                );
            }
            assert!(create_steps >= 5, "create has {create_steps} steps");
            let n1 = ctr_ns(s, "c1");
            let base = common::host_snapshot(&mut h);
            let ctr = Container::new("c1", &n1)
                .publish("8080:80".parse().unwrap())
                .expose(Proto::Tcp, 80);
            let mut connect_steps = 0;
            for n in 0.. {
                fault::fail_at(Some(n));
                let r = h.connect("n1", &ctr);
                fault::fail_at(None);
                if r.is_ok() {
                    connect_steps = n;
                    break;
                }
                assert!(r.unwrap_err().to_string().contains("injected fault"));
                assert_eq!(
                    common::host_snapshot(&mut h),
                    base,
                    "connect failing at step {n} left something"
                );
                let inside = Rtnl::open_in(&n1).unwrap().links().unwrap();
                assert_eq!(inside.len(), 1, "only lo in the container: {inside:?}");
            }
            eprintln!("create: {create_steps} steps, connect: {connect_steps} steps");
            assert!(connect_steps >= 8, "connect has {connect_steps} steps");
        },
    );
}

#[test]
fn fifty_containers_leave_the_sandbox_as_it_was() {
    common::sandbox("fifty_containers_leave_the_sandbox_as_it_was", |s| {
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("n1").subnet("10.70.0.0/24".parse().unwrap()))
            .unwrap();
        let before = common::host_snapshot(&mut h);
        let ids: Vec<String> = (0..50).map(|i| format!("ctr{i:02}")).collect();
        for id in &ids {
            let ns = Netns::new().unwrap();
            h.connect("n1", &Container::new(id, &ns)).unwrap();
        }
        assert_eq!(h.attachments(Some("n1")).unwrap().len(), 50);
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        h.disconnect_many("n1", &refs).unwrap();
        assert_eq!(common::host_snapshot(&mut h), before);
    });
}

#[test]
fn internal_networks_and_icc() {
    common::sandbox("internal_networks_and_icc", |s| {
        let mut h = host(s);
        let out = outside(s);
        let port = serve(&out, 0);
        h.create_network(
            &NetworkConfig::new("int")
                .subnet("10.80.0.0/24".parse().unwrap())
                .internal(true),
        )
        .unwrap();
        let (n1, n2) = (ctr_ns(s, "i1"), ctr_ns(s, "i2"));
        h.connect("int", &Container::new("i1", &n1)).unwrap();
        h.connect("int", &Container::new("i2", &n2)).unwrap();
        assert!(
            !Rtnl::open_in(&n1)
                .unwrap()
                .main_routes()
                .unwrap()
                .iter()
                .any(|r| r.is_default()),
            "no default route"
        );
        serve(&n2, 80);
        assert!(
            call(&n1, "10.80.0.3:80".parse().unwrap()).is_some(),
            "containers talk"
        );
        assert_eq!(
            call(&n1, SocketAddr::new(ip("192.0.2.2"), port)),
            None,
            "no way out"
        );
        assert!(h
            .connect(
                "int",
                &Container::new("i3", &Netns::new().unwrap()).publish("80".parse().unwrap())
            )
            .unwrap_err()
            .is_invalid());

        h.create_network(
            &NetworkConfig::new("noicc")
                .subnet("10.81.0.0/24".parse().unwrap())
                .icc(false),
        )
        .unwrap();
        let (m1, m2, m3) = (ctr_ns(s, "m1"), ctr_ns(s, "m2"), ctr_ns(s, "m3"));
        h.connect(
            "noicc",
            &Container::new("db", &m1).name("db").expose(Proto::Tcp, 80),
        )
        .unwrap();
        h.connect("noicc", &Container::new("other", &m2).name("other"))
            .unwrap();
        serve(&m1, 80);
        serve(&m1, 81);
        assert_eq!(call(&m2, "10.81.0.2:80".parse().unwrap()), None, "icc off");
        h.connect("noicc", &Container::new("app", &m3).name("app").link("db"))
            .unwrap();
        assert!(
            call(&m3, "10.81.0.2:80".parse().unwrap()).is_some(),
            "--link opens the exposed port"
        );
        assert_eq!(
            call(&m3, "10.81.0.2:81".parse().unwrap()),
            None,
            "only that port"
        );
        assert_eq!(
            call(&m2, "10.81.0.2:80".parse().unwrap()),
            None,
            "not for others"
        );
        // Other networks cannot reach in.
        assert_eq!(call(&n1, "10.81.0.2:80".parse().unwrap()), None);
    });
}

#[test]
fn gc_removes_what_dead_containers_left() {
    common::sandbox("gc_removes_what_dead_containers_left", |s| {
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("n1").subnet("10.90.0.0/24".parse().unwrap()))
            .unwrap();
        let before = common::host_snapshot(&mut h);
        let live = ctr_ns(s, "live");
        h.connect("n1", &Container::new("live", &live)).unwrap();
        let with_live = common::host_snapshot(&mut h);
        for id in ["dead1", "dead2"] {
            h.connect(
                "n1",
                &Container::new(id, &Netns::new().unwrap()).publish("80".parse().unwrap()),
            )
            .unwrap();
        }
        let r = h.gc(&["live"]).unwrap();
        assert_eq!(r.disconnected.len(), 2, "{r:?}");
        assert_eq!(common::host_snapshot(&mut h), with_live);
        h.disconnect("n1", "live").unwrap();
        assert_eq!(common::host_snapshot(&mut h), before);
    });
}

#[test]
fn modes_host_none_and_container() {
    common::sandbox("modes_host_none_and_container", |s| {
        use netplumb::network::NetworkMode;
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("bridge").subnet("172.17.0.0/16".parse().unwrap()))
            .unwrap();
        let before = common::host_snapshot(&mut h);
        // F1: host mode uses the host namespace and creates nothing.
        let hn = h
            .container_netns(&NetworkMode::Host, "h", Some(s.netns_dir()))
            .unwrap();
        assert_eq!(&hn, s.host());
        assert_eq!(common::host_snapshot(&mut h), before);
        // F2: none: only lo, and it is up.
        let none = h
            .container_netns(&"none".parse().unwrap(), "n", Some(s.netns_dir()))
            .unwrap();
        let links = Rtnl::open_in(&none).unwrap().links().unwrap();
        assert_eq!(links.len(), 1);
        assert!(links[0].name == "lo" && links[0].is_up());
        assert!(s.netns_dir().list().unwrap().contains(&"n".to_string()));
        // F3: container:web shares web's namespace: same address, 127.0.0.1 between them.
        let web = h
            .container_netns(
                &NetworkMode::Bridge("bridge".into()),
                "web",
                Some(s.netns_dir()),
            )
            .unwrap();
        let a = h
            .connect("bridge", &Container::new("webid", &web).name("web"))
            .unwrap();
        let side = h
            .container_netns(
                &"container:web".parse().unwrap(),
                "side",
                Some(s.netns_dir()),
            )
            .unwrap();
        assert_eq!(side, web);
        let port = serve(&web, 0);
        assert_eq!(
            call(&side, SocketAddr::new(ip("127.0.0.1"), port)).as_deref(),
            Some("127.0.0.1")
        );
        let addrs = Rtnl::open_in(&side).unwrap().addrs(None).unwrap();
        assert!(addrs.iter().any(|x| x.addr == a.addrs[0]), "same address");
        assert!(h
            .container_netns(&"container:nobody".parse().unwrap(), "x", None)
            .unwrap_err()
            .is_not_found());
        assert!("container:"
            .parse::<NetworkMode>()
            .unwrap_err()
            .is_invalid());
    });
}

#[test]
fn container_files_and_peers_by_name() {
    common::sandbox("container_files_and_peers_by_name", |s| {
        use netplumb::network::files::{parse_add_host, DnsConfig, HostsFile};
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("mybr0").subnet("172.26.0.0/16".parse().unwrap()))
            .unwrap();
        let (na, nb) = (ctr_ns(s, "a"), ctr_ns(s, "b"));
        let (da, db) = (
            std::path::PathBuf::from("/run/files/a"),
            std::path::PathBuf::from("/run/files/b"),
        );
        for d in [&da, &db] {
            std::fs::create_dir_all(d).unwrap();
        }
        let dns = DnsConfig::from_flags(&["192.0.2.53"], &["example.com"], &["ndots:2"]).unwrap();
        let a = Container::new("aaaaaaaaaaaa1234", &na)
            .name("busybox1")
            .hostname("web")
            .files(&da)
            .dns(dns)
            .add_host(parse_add_host("www.example.com:1.1.1.1").unwrap());
        h.connect("mybr0", &a).unwrap();
        let hosts = std::fs::read_to_string(da.join("hosts")).unwrap();
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
        assert!(hosts.contains("1.1.1.1\twww.example.com"), "{hosts}");
        assert!(hosts.contains("172.26.0.2\tweb"), "{hosts}");
        assert_eq!(
            std::fs::read_to_string(da.join("hostname")).unwrap(),
            "web\n"
        );
        let resolv = std::fs::read_to_string(da.join("resolv.conf")).unwrap();
        assert!(
            resolv.contains("nameserver 192.0.2.53")
                && resolv.contains("search example.com")
                && resolv.contains("options ndots:2"),
            "{resolv}"
        );
        // G2: a second container appears in the first one's hosts, and the other way round.
        h.connect(
            "mybr0",
            &Container::new("bbbbbbbbbbbb", &nb)
                .name("busybox2")
                .files(&db),
        )
        .unwrap();
        let ha = HostsFile::parse(&std::fs::read_to_string(da.join("hosts")).unwrap());
        assert_eq!(ha.addrs_of("busybox2"), [ip("172.26.0.3")]);
        let hb = HostsFile::parse(&std::fs::read_to_string(db.join("hosts")).unwrap());
        assert_eq!(hb.addrs_of("busybox1"), [ip("172.26.0.2")]);
        // busybox1 reaches busybox2 by the name in its hosts file.
        serve(&nb, 80);
        let to = SocketAddr::new(ha.addrs_of("busybox2")[0], 80);
        assert_eq!(call(&na, to).as_deref(), Some("172.26.0.2"));
        // Leaving removes the name.
        h.disconnect("mybr0", "bbbbbbbbbbbb").unwrap();
        let ha = HostsFile::parse(&std::fs::read_to_string(da.join("hosts")).unwrap());
        assert!(ha.addrs_of("busybox2").is_empty());
    });
}

#[test]
fn dry_run_plans_change_nothing() {
    common::sandbox("dry_run_plans_change_nothing", |s| {
        let mut h = host(s);
        let before = common::host_snapshot(&mut h);
        let lines = h
            .plan_create(&NetworkConfig::new("mybr0").subnet("172.26.0.0/16".parse().unwrap()))
            .unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("ipam: create network mybr0 with 172.26.0.0/16")),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("ip link add br-")),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l.contains("masquerade")), "{lines:#?}");
        assert_eq!(
            common::host_snapshot(&mut h),
            before,
            "a plan applies nothing"
        );
        h.create_network(&NetworkConfig::new("mybr0").subnet("172.26.0.0/16".parse().unwrap()))
            .unwrap();
        let mid = common::host_snapshot(&mut h);
        let ns = ctr_ns(s, "c");
        let lines = h
            .plan_connect(
                "mybr0",
                &Container::new("c", &ns).publish("8080:80".parse().unwrap()),
            )
            .unwrap();
        assert!(
            lines.iter().any(|l| l.contains("type veth peer name eth0")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("route add default via 172.26.0.1")),
            "{lines:#?}"
        );
        assert_eq!(common::host_snapshot(&mut h), mid);
    });
}

#[test]
fn a_restarted_runtime_finds_its_networks() {
    common::sandbox("a_restarted_runtime_finds_its_networks", |s| {
        let mut h = host(s);
        let net = h
            .create_network(
                &NetworkConfig::new("keep")
                    .subnet("10.110.0.0/24".parse().unwrap())
                    .icc(false)
                    .label("a", "b"),
            )
            .unwrap();
        let ns = ctr_ns(s, "c");
        let att = h
            .connect(
                "keep",
                &Container::new("cid", &ns).publish("8080:80".parse().unwrap()),
            )
            .unwrap();
        drop(h);
        let mut again = host(s);
        assert_eq!(again.network("keep").unwrap(), net);
        assert_eq!(again.attachments(Some("keep")).unwrap(), [att]);
        // ...and can tear it all down.
        again.remove_network("keep", true).unwrap();
        assert!(again.networks().unwrap().is_empty());
        assert!(again.firewall().state().unwrap().ports.is_empty());
    });
}

#[test]
fn link_aliases_and_files_without_a_network() {
    common::sandbox("link_aliases_and_files_without_a_network", |s| {
        use netplumb::network::files::HostsFile;
        let mut h = host(s);
        h.create_network(&NetworkConfig::new("bridge").subnet("172.17.0.0/16".parse().unwrap()))
            .unwrap();
        let (n1, n2) = (ctr_ns(s, "db"), ctr_ns(s, "app"));
        h.connect(
            "bridge",
            &Container::new("dbid", &n1)
                .name("db")
                .expose(Proto::Tcp, 5432),
        )
        .unwrap();
        let dir = std::path::PathBuf::from("/run/files/app");
        std::fs::create_dir_all(&dir).unwrap();
        h.connect(
            "bridge",
            &Container::new("appid", &n2)
                .name("app")
                .link_as("db", "database")
                .files(&dir),
        )
        .unwrap();
        let hosts = HostsFile::parse(&std::fs::read_to_string(dir.join("hosts")).unwrap());
        assert_eq!(hosts.addrs_of("database"), [ip("172.17.0.2")]);
        assert_eq!(hosts.addrs_of("db"), [ip("172.17.0.2")]);
        // --network none: files without a network.
        let none_dir = std::path::PathBuf::from("/run/files/none");
        std::fs::create_dir_all(&none_dir).unwrap();
        let lone = Container::new("loneid", &Netns::new().unwrap())
            .hostname("lone")
            .files(&none_dir);
        h.write_files(&lone).unwrap();
        assert_eq!(
            std::fs::read_to_string(none_dir.join("hostname")).unwrap(),
            "lone\n"
        );
        assert!(std::fs::read_to_string(none_dir.join("hosts"))
            .unwrap()
            .starts_with("127.0.0.1\tlocalhost"));
        assert!(none_dir.join("resolv.conf").exists());
    });
}

/// `ip -d link show DEV` run inside `ns`, as an independent witness.
fn ip_details(ns: &Netns, dev: &str) -> String {
    let out = ns
        .run(|| {
            std::process::Command::new("ip")
                .args(["-d", "link", "show", "dev", dev])
                .output()
        })
        .unwrap()
        .expect("run ip");
    assert!(out.status.success(), "ip -d link show {dev}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The IPv6 addresses of `dev` inside `ns`.
fn v6_addrs(ns: &Netns, dev: &str) -> Vec<String> {
    let mut r = Rtnl::open_in(ns).unwrap();
    let link = r.link(dev).unwrap();
    r.addrs(Some((&link).into()))
        .unwrap()
        .into_iter()
        .filter(|a| a.addr.addr().is_ipv6())
        .map(|a| a.addr.to_string())
        .collect()
}

/// On an IPv4-only network the container's interface has no IPv6 address at all (no
/// link-local either) and the bridge port has IPv6 off; on a dual-stack network the
/// containers have their IPv6 addresses and talk over IPv6 through the same kind of
/// ports. Bridges get a MAC of their own that containers coming and going do not change,
/// multicast snooping off unless asked, and veths one queue a side.
#[test]
fn ipv6_only_where_asked_and_bridge_settings() {
    common::sandbox("ipv6_only_where_asked_and_bridge_settings", |s| {
        let mut h = host(s);
        let v4 = h
            .create_network(
                &NetworkConfig::new("v4")
                    .subnet("10.70.0.0/24".parse().unwrap())
                    .bridge("br-v4"),
            )
            .unwrap();
        let mac0 = h.rtnl().link("br-v4").unwrap().mac;
        let n1 = ctr_ns(s, "c1");
        let a = h.connect("v4", &Container::new("aaaa", &n1)).unwrap();
        // accept_dad is 0 in these namespaces: a link-local address would be there at once.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(v6_addrs(&n1, "eth0"), Vec::<String>::new());
        assert!(ip_details(&n1, "eth0").contains("addrgenmode none"));
        let port = ip_details(s.host(), &a.host_veth);
        assert!(port.contains("numtxqueues 1 numrxqueues 1"), "{port}");
        assert!(
            netplumb::sysctl::Sysctl::DisableIpv6(netplumb::sysctl::Scope::dev(&a.host_veth))
                .get_bool(s.host())
                .unwrap()
        );
        let port_index = h.rtnl().link(a.host_veth.as_str()).unwrap().index;
        let port_v6: Vec<_> = (h.rtnl().addrs(None).unwrap().into_iter())
            .filter(|x| x.index == port_index && x.addr.addr().is_ipv6())
            .collect();
        assert!(port_v6.is_empty(), "{port_v6:?}");
        let br = ip_details(s.host(), &v4.bridge);
        assert!(br.contains("mcast_snooping 0"), "{br}");
        let bridge_v6_off = |name: &str| {
            netplumb::sysctl::Sysctl::DisableIpv6(netplumb::sysctl::Scope::dev(name))
                .get_bool(s.host())
                .unwrap()
        };
        assert!(
            bridge_v6_off("br-v4"),
            "an IPv4 network's bridge has no IPv6"
        );
        // Containers whose veths have lower MACs than the bridge's come and go: the
        // bridge keeps its MAC (the kernel would otherwise take the lowest port MAC).
        let n2 = ctr_ns(s, "c2");
        h.connect("v4", &Container::new("bbbb", &n2)).unwrap();
        h.disconnect("v4", "aaaa").unwrap();
        assert_eq!(h.rtnl().link("br-v4").unwrap().mac, mac0);
        assert_ne!(mac0.map(|m| m.0[..2].to_vec()), Some(vec![0x02, 0x42]));

        h.create_network(
            &NetworkConfig::new("ds")
                .subnet("10.71.0.0/24".parse().unwrap())
                .subnet("fd00:71::/64".parse().unwrap())
                .ipv6(true)
                .bridge("br-ds")
                .multicast_snooping(true),
        )
        .unwrap();
        assert!(ip_details(s.host(), "br-ds").contains("mcast_snooping 1"));
        assert!(!bridge_v6_off("br-ds"));
        let (n3, n4) = (ctr_ns(s, "c3"), ctr_ns(s, "c4"));
        h.connect("ds", &Container::new("cccc", &n3)).unwrap();
        let d = h.connect("ds", &Container::new("dddd", &n4)).unwrap();
        let v6 = d.addrs.iter().find(|c| c.addr().is_ipv6()).unwrap().addr();
        let inside = v6_addrs(&n3, "eth0");
        assert!(
            inside.iter().any(|x| x.starts_with("fd00:71::")),
            "{inside:?}"
        );
        assert!(inside.iter().any(|x| x.starts_with("fe80::")), "{inside:?}");
        let port = common::serve_peer(&n4, SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)));
        let seen = call(&n3, SocketAddr::new(v6, port)).expect("IPv6 between containers");
        assert!(seen.starts_with("fd00:71::"), "{seen}");
        for (net, c) in [("v4", "bbbb"), ("ds", "cccc"), ("ds", "dddd")] {
            h.disconnect(net, c).unwrap();
        }
        h.remove_network("v4", false).unwrap();
        h.remove_network("ds", false).unwrap();
    });
}

/// Deferred link deletion: a disconnect returns with the container cut off (its veth
/// down: no traffic) and its records, rules and lease gone; the veth itself goes once
/// the reaper has run. A quick reconnect of the same container waits for a pending
/// deletion instead of failing, and dropping the `Host` deletes what is still pending.
#[test]
fn deferred_link_deletion() {
    common::sandbox("deferred_link_deletion", |s| {
        let mut h = host(s);
        h.create_network(
            &NetworkConfig::new("df")
                .subnet("10.72.0.0/24".parse().unwrap())
                .bridge("br-df"),
        )
        .unwrap();
        let before = common::host_snapshot(&mut h);
        let (n1, n2) = (ctr_ns(s, "c1"), ctr_ns(s, "c2"));
        h.connect("df", &Container::new("aaaa", &n1)).unwrap();
        let b = h.connect("df", &Container::new("bbbb", &n2)).unwrap();
        let port = serve(&n2, 0);
        let to = SocketAddr::new(b.addrs[0].addr(), port);
        assert!(call(&n1, to).is_some(), "reachable while connected");

        h.defer_link_deletion(true).unwrap();
        h.disconnect("df", "bbbb").unwrap();
        if let Ok(l) = h.rtnl().link(b.host_veth.as_str()) {
            assert!(!l.is_up(), "a pending veth is down");
        }
        assert_eq!(h.attachments(Some("df")).unwrap().len(), 1);
        // Straight back: the same names, so it waits for the pending deletion if need be.
        let b2 = h.connect("df", &Container::new("bbbb", &n2)).unwrap();
        let to2 = SocketAddr::new(b2.addrs[0].addr(), port);
        assert!(call(&n1, to2).is_some(), "reachable again");
        h.disconnect("df", "bbbb").unwrap();
        assert!(call(&n1, to2).is_none(), "cut off once disconnected");

        h.disconnect("df", "aaaa").unwrap();
        h.disconnect("df", "bbbb").unwrap();
        h.flush_link_deletions().unwrap();
        assert_eq!(common::host_snapshot(&mut h), before);

        // Dropping the Host deletes what is pending.
        h.connect("df", &Container::new("aaaa", &n1)).unwrap();
        h.disconnect("df", "aaaa").unwrap();
        drop(h);
        let mut h = host(s);
        assert_eq!(common::host_snapshot(&mut h), before);
        h.remove_network("df", false).unwrap();
    });
}

/// The uplink of [`outside`] with IPv6 too: 2001:db8:1::1 on the host, 2001:db8:1::2 there.
fn outside_v6(s: &Sandbox) -> Netns {
    use netplumb::addr::Addr;
    let out = outside(s);
    let mut r = common::rtnl(s);
    let up = r.link("uplink").unwrap();
    r.execute(&Addr::new(&up, "2001:db8:1::1/64".parse().unwrap()).nodad())
        .unwrap();
    let mut ro = Rtnl::open_in(&out).unwrap();
    let e = ro.link("eth0").unwrap();
    ro.execute(&Addr::new(&e, "2001:db8:1::2/64".parse().unwrap()).nodad())
        .unwrap();
    out
}

/// On a dual-stack network a port without a host address is published on both families
/// with the same host port (Docker 27+, netavark), and answers over IPv6 at the host's
/// address; `host_binding(0.0.0.0)` keeps it IPv4-only.
#[test]
fn dual_stack_networks_publish_on_both_families() {
    common::sandbox("dual_stack_networks_publish_on_both_families", |s| {
        let mut h = host(s);
        common::rtnl(s)
            .execute(&netplumb::link::LinkSet::new("lo").up())
            .unwrap();
        let out = outside_v6(s);
        let ds = |name: &str, v4: &str, v6: &str| {
            NetworkConfig::new(name)
                .subnet(v4.parse().unwrap())
                .subnet(v6.parse().unwrap())
                .ipv6(true)
        };
        h.create_network(&ds("ds", "10.72.0.0/24", "fd00:72::/64"))
            .unwrap();
        let n1 = ctr_ns(s, "web");
        common::serve_peer(&n1, SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80)));
        let a = h
            .connect(
                "ds",
                &Container::new("web1", &n1)
                    .publish("8088:80".parse().unwrap())
                    .publish("80".parse().unwrap())
                    .publish("127.0.0.1:8090:80".parse().unwrap()),
            )
            .unwrap();
        let lines: Vec<String> = a.ports.iter().map(|p| p.to_string()).collect();
        let auto = a.ports[1].host_port;
        assert_eq!(
            lines,
            [
                "80/tcp -> 0.0.0.0:8088".to_owned(),
                format!("80/tcp -> 0.0.0.0:{auto}"),
                "80/tcp -> [::]:8088".to_owned(),
                format!("80/tcp -> [::]:{auto}"),
                "80/tcp -> 127.0.0.1:8090".to_owned(),
            ]
        );
        assert_eq!(
            call(&out, "[2001:db8:1::1]:8088".parse().unwrap()).as_deref(),
            Some("2001:db8:1::2"),
            "IPv6 to the host's address"
        );
        assert!(call(&out, SocketAddr::new(ip("2001:db8:1::1"), auto)).is_some());
        let v4 = call(&out, "192.0.2.1:8088".parse().unwrap()).expect("IPv4 too");
        assert!(v4.ends_with("192.0.2.2"), "{v4}");
        h.disconnect("ds", "web1").unwrap();
        assert_eq!(call(&out, "[2001:db8:1::1]:8088".parse().unwrap()), None);
        // An explicit IPv4 host binding keeps address-less ports on IPv4.
        h.create_network(&ds("ds4", "10.73.0.0/24", "fd00:73::/64").host_binding(ip("0.0.0.0")))
            .unwrap();
        let n2 = ctr_ns(s, "web2");
        common::serve_peer(&n2, SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80)));
        let b = h
            .connect(
                "ds4",
                &Container::new("web2", &n2).publish("8089:80".parse().unwrap()),
            )
            .unwrap();
        assert_eq!(b.ports.len(), 1);
        assert_eq!(b.ports[0].to_string(), "80/tcp -> 0.0.0.0:8089");
        assert_eq!(call(&out, "[2001:db8:1::1]:8089".parse().unwrap()), None);
        assert!(call(&out, "192.0.2.1:8089".parse().unwrap()).is_some());
    });
}

/// `NetworkConfig::ipv4(false)` (Docker 28's `--ipv4=false`): an IPv6-only network gets
/// no IPv4 subnet, its containers have IPv6 alone and reach each other and, through a
/// published port, the outside over IPv6.
#[test]
fn ipv6_only_networks() {
    common::sandbox("ipv6_only_networks", |s| {
        let mut h = host(s);
        let out = outside_v6(s);
        let v6only = NetworkConfig::new("v6only")
            .ipv4(false)
            .ipv6(true)
            .subnet("fd00:97::/64".parse().unwrap())
            .bridge("br-v6");
        // (IPv4 off and IPv6 off is a network without addresses: tests/ensure.rs.)
        for bad in [
            NetworkConfig::new("x").ipv4(false).ipv6(true),
            v6only.clone().subnet("10.97.0.0/24".parse().unwrap()),
        ] {
            let e = h.create_network(&bad).unwrap_err();
            assert!(e.is_invalid(), "{e}");
        }
        let info = h.create_network(&v6only).unwrap();
        assert_eq!(
            info.subnets,
            ["fd00:97::/64".parse::<netplumb::IpNet>().unwrap()]
        );
        assert_eq!(h.network("v6only").unwrap().subnets, info.subnets);
        let (n1, n2) = (ctr_ns(s, "c1"), ctr_ns(s, "c2"));
        common::serve_peer(&n1, SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80)));
        let a = h
            .connect(
                "v6only",
                &Container::new("c1", &n1).publish("8091:80".parse().unwrap()),
            )
            .unwrap();
        assert!(a.addrs.iter().all(|x| x.addr().is_ipv6()), "{:?}", a.addrs);
        assert_eq!(a.ports.len(), 1);
        assert_eq!(a.ports[0].to_string(), "80/tcp -> [::]:8091");
        let b = h.connect("v6only", &Container::new("c2", &n2)).unwrap();
        assert!(b.addrs.iter().all(|x| x.addr().is_ipv6()), "{:?}", b.addrs);
        let v4: Vec<_> = Rtnl::open_in(&n1)
            .unwrap()
            .addrs(None)
            .unwrap()
            .into_iter()
            .filter(|x| x.addr.addr().is_ipv4() && !x.addr.addr().is_loopback())
            .collect();
        assert!(v4.is_empty(), "{v4:?}");
        let c1 = a.addrs[0].addr();
        let seen = call(&n2, SocketAddr::new(c1, 80)).expect("IPv6 between containers");
        assert_eq!(seen, b.addrs[0].addr().to_string());
        assert_eq!(
            call(&out, "[2001:db8:1::1]:8091".parse().unwrap()).as_deref(),
            Some("2001:db8:1::2"),
            "published over IPv6"
        );
        h.disconnect("v6only", "c1").unwrap();
        h.disconnect("v6only", "c2").unwrap();
        h.remove_network("v6only", false).unwrap();
    });
}
