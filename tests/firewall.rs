//! Both firewall backends against the real kernel: rules read back, and real traffic
//! between an "outside" namespace, the sandbox "host" with a bridge, and containers.
//!
//! Every traffic test runs once per backend: `nftables::NAME` and, with the `iptables`
//! feature, `iptables::NAME` (default binaries: iptables-nft on Debian) and
//! `iptables_legacy::NAME`. Without the iptables binaries those print `SKIPPED` and pass,
//! except under `CI=true`, where they fail. `iptables_layout::*` checks what only the
//! iptables backend has: Docker's listing, chains and jumps, locking, binaries.
//!
//! Topology (every test builds its own, inside its own sandbox):
//!
//! ```text
//! outside (192.0.2.2/24, 198.51.100.2/24)  --veth--  host (192.0.2.1/24, 198.51.100.1/24)
//! host: br0 10.77.0.1/24 fd77::1/64 -- c1 10.77.0.2 fd77::2, c2 10.77.0.3 fd77::3
//! host: br1 10.78.0.1/24            -- c3 10.78.0.2        (second network, when asked)
//! ```

mod common;

use common::{bridge, fresh_ns, no_dad};

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use netplumb::addr::Addr;
use netplumb::firewall::{
    self, AnyFirewall, Backend, Firewall, LinkAllow, NetworkRules, PortRule, Proto,
};
use netplumb::link::{BridgePort, LinkSet, Veth};
use netplumb::netns::Sandbox;
use netplumb::route::Route;
use netplumb::sysctl::Sysctl;
use netplumb::{Netns, Rtnl};

struct World {
    host: Netns,
    outside: Netns,
    c: Vec<Netns>,
    fw: AnyFirewall,
    rtnl: Rtnl,
}

/// Opens the backend under test in a namespace.
type Opener = fn(&Netns) -> netplumb::Result<AnyFirewall>;

fn nftables(ns: &Netns) -> netplumb::Result<AnyFirewall> {
    firewall::open(Backend::Nftables, ns)
}

#[cfg(feature = "iptables")]
fn iptables(ns: &Netns) -> netplumb::Result<AnyFirewall> {
    firewall::open(Backend::Iptables, ns)
}

#[cfg(feature = "iptables")]
fn iptables_legacy(ns: &Netns) -> netplumb::Result<AnyFirewall> {
    use netplumb::firewall::{Iptables, IptablesVariant};
    Ok(Iptables::options()
        .variant(IptablesVariant::Legacy)
        .open_in(ns)?
        .into())
}

/// Runs `body` in a fresh sandbox against the backend `open` makes (see
/// `common::with_backend`).
fn with_backend(name: &str, open: Opener, body: fn(&Sandbox, Opener)) {
    common::with_backend(name, open, |o, ns| o(ns), body)
}

/// One `#[test]` per backend for each traffic test.
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {
        mod nftables {
            $( #[test] fn $name() { super::with_backend(concat!("nftables::", stringify!($name)), super::nftables, super::$name); } )*
        }
        #[cfg(feature = "iptables")]
        mod iptables {
            $( #[test] fn $name() { super::with_backend(concat!("iptables::", stringify!($name)), super::iptables, super::$name); } )*
        }
        #[cfg(feature = "iptables")]
        mod iptables_legacy {
            $( #[test] fn $name() { super::with_backend(concat!("iptables_legacy::", stringify!($name)), super::iptables_legacy, super::$name); } )*
        }
    };
}

for_each_backend!(
    published_port_reaches_the_container_on_its_host_address_only,
    any_address_udp_and_ipv6_ports,
    outbound_masquerade_and_hairpin,
    icc_off_blocks_containers_and_links_open_one_port,
    networks_are_isolated_and_removal_is_exact,
    applying_twice_changes_nothing,
    the_users_chain_verdict_wins,
    invalid_rules_are_refused_before_the_kernel,
    a_port_on_127_0_0_1_is_not_reachable_from_outside,
    icc_off_with_isolated_ports_stops_raw_frames,
);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A container on `bridge` with `v4` (and `v6`), default routes via the bridge.
fn container(
    host: &mut Rtnl,
    bridge: &str,
    n: usize,
    v4: &str,
    v6: Option<&str>,
    gw: (&str, Option<&str>),
) -> Netns {
    let ns = fresh_ns();
    let hname = format!("veth{bridge}{n}");
    host.execute(&Veth::new(&hname).peer("eth0").peer_netns(&ns).up())
        .unwrap();
    let br = host.link(bridge).unwrap();
    host.execute(&LinkSet::new(hname.as_str()).controller(br.index))
        .unwrap();
    let mut r = Rtnl::open_in(&ns).unwrap();
    let eth0 = r.link("eth0").unwrap();
    r.execute(&LinkSet::new("lo").up()).unwrap();
    r.execute(&LinkSet::new(&eth0).up()).unwrap();
    r.execute(&Addr::new(&eth0, format!("{v4}/24").parse().unwrap()))
        .unwrap();
    r.execute(&Route::default_v4().via(ip(gw.0)).dev(&eth0))
        .unwrap();
    if let (Some(a), Some(g)) = (v6, gw.1) {
        r.execute(&Addr::new(&eth0, format!("{a}/64").parse().unwrap()).nodad())
            .unwrap();
        r.execute(&Route::default_v6().via(ip(g)).dev(&eth0))
            .unwrap();
    }
    ns
}

fn world(s: &Sandbox, open: Opener) -> World {
    let host = s.host().clone();
    no_dad(&host);
    let mut rtnl = common::rtnl(s);
    rtnl.execute(&LinkSet::new("lo").up()).unwrap();
    Sysctl::IpForward.set_bool(&host, true).unwrap();
    Sysctl::Ipv6Forward.set_bool(&host, true).unwrap();
    let outside = fresh_ns();
    rtnl.execute(&Veth::new("uplink").peer("eth0").peer_netns(&outside).up())
        .unwrap();
    let up = rtnl.link("uplink").unwrap();
    for a in ["192.0.2.1/24", "198.51.100.1/24"] {
        rtnl.execute(&Addr::new(&up, a.parse().unwrap())).unwrap();
    }
    rtnl.execute(&Addr::new(&up, "2001:db8::1/64".parse().unwrap()).nodad())
        .unwrap();
    let mut o = Rtnl::open_in(&outside).unwrap();
    let oe = o.link("eth0").unwrap();
    o.execute(&LinkSet::new("lo").up()).unwrap();
    o.execute(&LinkSet::new(&oe).up()).unwrap();
    for a in ["192.0.2.2/24", "198.51.100.2/24"] {
        o.execute(&Addr::new(&oe, a.parse().unwrap())).unwrap();
    }
    o.execute(&Addr::new(&oe, "2001:db8::2/64".parse().unwrap()).nodad())
        .unwrap();
    bridge(&mut rtnl, "br0", "10.77.0.1/24", Some("fd77::1/64"));
    let gw = ("10.77.0.1", Some("fd77::1"));
    let c = vec![
        container(&mut rtnl, "br0", 1, "10.77.0.2", Some("fd77::2"), gw),
        container(&mut rtnl, "br0", 2, "10.77.0.3", Some("fd77::3"), gw),
    ];
    let fw = open(&host).unwrap();
    World {
        host,
        outside,
        c,
        fw,
        rtnl,
    }
}

fn net0() -> NetworkRules {
    NetworkRules::new("net0", "br0")
        .subnet("10.77.0.0/24".parse().unwrap())
        .subnet("fd77::/64".parse().unwrap())
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(self::ip(ip), port)
}

fn published_port_reaches_the_container_on_its_host_address_only(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    w.fw.add_network(&net0()).unwrap();
    common::serve_peer(&w.c[0], sa("0.0.0.0", 80));
    let p = PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80).host_ip(ip("192.0.2.1"));
    w.fw.publish(std::slice::from_ref(&p)).unwrap();
    assert_eq!(w.fw.state().unwrap().ports, vec![p]);
    let seen =
        common::call_peer(&w.outside, sa("192.0.2.1", 8080)).expect("published port reachable");
    assert_eq!(
        seen, "192.0.2.2",
        "the container sees the real client (no SNAT inbound)"
    );
    assert_eq!(
        common::call_peer(&w.outside, sa("198.51.100.1", 8080)),
        None,
        "not on another host address"
    );
    assert_eq!(
        common::call_peer(&w.outside, sa("10.77.0.2", 80)),
        None,
        "containers are not reachable directly"
    );
}

fn any_address_udp_and_ipv6_ports(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    w.fw.add_network(&net0()).unwrap();
    let udp = w.c[1]
        .run(|| UdpSocket::bind("0.0.0.0:53"))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 64];
        while let Ok((n, from)) = udp.recv_from(&mut b) {
            let _ = udp.send_to(&b[..n], from);
        }
    });
    common::serve_peer(&w.c[0], sa("::", 80));
    w.fw.publish(&[
        PortRule::new("net0", Proto::Udp, 5353, ip("10.77.0.3"), 53),
        PortRule::new("net0", Proto::Tcp, 8080, ip("fd77::2"), 80),
    ])
    .unwrap();
    for host in ["192.0.2.1", "198.51.100.1"] {
        let echoed = w.outside.run(|| {
            let u = UdpSocket::bind("0.0.0.0:0").unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            u.send_to(b"hi", sa(host, 5353)).unwrap();
            let mut b = [0u8; 8];
            u.recv_from(&mut b).map(|(n, _)| b[..n].to_vec()).ok()
        });
        assert_eq!(
            echoed.unwrap().as_deref(),
            Some(&b"hi"[..]),
            "udp via {host}"
        );
    }
    let seen = common::call_peer(&w.outside, sa("2001:db8::1", 8080)).expect("IPv6 published port");
    assert_eq!(seen, "2001:db8::2");
}

fn outbound_masquerade_and_hairpin(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    w.fw.add_network(&net0()).unwrap();
    let port = common::serve_peer(&w.outside, sa("0.0.0.0", 0));
    assert_eq!(
        common::call_peer(&w.c[0], sa("192.0.2.2", port)).as_deref(),
        Some("192.0.2.1"),
        "masqueraded to the host"
    );
    common::serve_peer(&w.c[0], sa("0.0.0.0", 80));
    w.fw.publish(&[PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80)])
        .unwrap();
    // c2 reaches c1's published port through the host address.
    assert!(
        common::call_peer(&w.c[1], sa("192.0.2.1", 8080)).is_some(),
        "same-network hairpin"
    );
    // c1 reaches its own published port: needs hairpin mode on its bridge port.
    w.rtnl
        .execute(&BridgePort::new("vethbr01").hairpin(true))
        .unwrap();
    assert!(
        common::call_peer(&w.c[0], sa("192.0.2.1", 8080)).is_some(),
        "self hairpin"
    );
    // Masquerade off: the outside sees the container's own address (and cannot answer).
    w.fw.add_network(&net0().masquerade(false)).unwrap();
    assert_eq!(common::call_peer(&w.c[0], sa("192.0.2.2", port)), None);
}

fn icc_off_blocks_containers_and_links_open_one_port(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    common::serve_peer(&w.c[1], sa("0.0.0.0", 80));
    common::serve_peer(&w.c[1], sa("0.0.0.0", 81));
    w.fw.add_network(&net0()).unwrap();
    assert!(
        common::call_peer(&w.c[0], sa("10.77.0.3", 80)).is_some(),
        "icc on by default"
    );
    w.fw.add_network(&net0().icc(false)).unwrap();
    assert_eq!(
        common::call_peer(&w.c[0], sa("10.77.0.3", 80)),
        None,
        "icc off"
    );
    let link = LinkAllow {
        from: ip("10.77.0.2"),
        to: ip("10.77.0.3"),
        proto: Proto::Tcp,
        port: 80,
    };
    w.fw.add_network(&net0().icc(false).link(link)).unwrap();
    assert!(
        common::call_peer(&w.c[0], sa("10.77.0.3", 80)).is_some(),
        "--link opens its port"
    );
    assert_eq!(
        common::call_peer(&w.c[0], sa("10.77.0.3", 81)),
        None,
        "and only that port"
    );
    assert_eq!(
        common::call_peer(&w.c[1], sa("10.77.0.2", 80)),
        None,
        "and only that direction"
    );
}

fn networks_are_isolated_and_removal_is_exact(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    bridge(&mut w.rtnl, "br1", "10.78.0.1/24", None);
    let c3 = container(
        &mut w.rtnl,
        "br1",
        3,
        "10.78.0.2",
        None,
        ("10.78.0.1", None),
    );
    let net1 = NetworkRules::new("net1", "br1").subnet("10.78.0.0/24".parse().unwrap());
    w.fw.add_network(&net0()).unwrap();
    let only0 = w.fw.state().unwrap();
    w.fw.add_network(&net1).unwrap();
    common::serve_peer(&c3, sa("0.0.0.0", 80));
    common::serve_peer(&w.c[0], sa("0.0.0.0", 80));
    assert_eq!(
        common::call_peer(&w.c[0], sa("10.78.0.2", 80)),
        None,
        "net0 -> net1 blocked"
    );
    assert_eq!(
        common::call_peer(&c3, sa("10.77.0.2", 80)),
        None,
        "net1 -> net0 blocked"
    );
    w.fw.publish(&[PortRule::new("net1", Proto::Tcp, 9090, ip("10.78.0.2"), 80)])
        .unwrap();
    let st = w.fw.state().unwrap();
    assert_eq!(st.networks, ["net0", "net1"]);
    assert_eq!(st.ports.len(), 1);
    w.fw.remove_network("net1").unwrap();
    assert_eq!(
        w.fw.state().unwrap(),
        only0,
        "removing net1 removes exactly what it added"
    );
    w.fw.remove_network("net1").unwrap();
    w.fw.remove_network("never-there").unwrap();
}

fn applying_twice_changes_nothing(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    let p = [PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80)];
    w.fw.add_network(&net0()).unwrap();
    w.fw.publish(&p).unwrap();
    let once = w.fw.state().unwrap();
    let listing = ruleset_text(&w);
    w.fw.add_network(&net0()).unwrap();
    w.fw.publish(&p).unwrap();
    assert_eq!(w.fw.state().unwrap(), once);
    if let Some(l) = listing {
        assert_eq!(
            ruleset_text(&w).unwrap(),
            l,
            "nft / iptables-save sees the same ruleset"
        );
        if w.fw.backend() == Backend::Nftables {
            assert!(l.contains("masquerade"), "{l}");
            assert!(l.contains("chain user"), "{l}");
        } else {
            assert!(l.contains("-j MASQUERADE"), "{l}");
            assert!(l.contains(":DOCKER-USER "), "{l}");
        }
    }
    w.fw.unpublish(&p).unwrap();
    w.fw.unpublish(&p).unwrap();
    assert!(w.fw.state().unwrap().ports.is_empty());
    w.fw.flush().unwrap();
    assert!(w.fw.state().unwrap().families.is_empty());
    if let Some(l) = ruleset_text(&w) {
        assert!(!l.contains("netplumb"), "{l}");
        assert!(!l.contains("DOCKER"), "{l}");
    }
}

fn the_users_chain_verdict_wins(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    w.fw.add_network(&net0()).unwrap();
    common::serve_peer(&w.c[0], sa("0.0.0.0", 80));
    w.fw.publish(&[PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80)])
        .unwrap();
    assert!(common::call_peer(&w.outside, sa("192.0.2.1", 8080)).is_some());
    let nft_backend = w.fw.backend() == Backend::Nftables;
    let added = if nft_backend {
        nft(
            &w.host,
            &[
                "add",
                "rule",
                "ip",
                "netplumb",
                "user",
                "ip",
                "saddr",
                "192.0.2.2",
                "drop",
            ],
        )
    } else {
        iptables_cmd(
            &w,
            "iptables",
            &["-A", "DOCKER-USER", "-s", "192.0.2.2", "-j", "DROP"],
        );
        Some(())
    };
    let Some(()) = added else {
        common::skip_here("no nft binary to fill the user chain");
        return;
    };
    assert_eq!(
        common::call_peer(&w.outside, sa("192.0.2.1", 8080)),
        None,
        "the user's drop wins"
    );
    // Our own changes never touch the user's rule.
    w.fw.add_network(&net0().icc(false)).unwrap();
    w.fw.publish(&[PortRule::new("net0", Proto::Tcp, 8081, ip("10.77.0.2"), 80)])
        .unwrap();
    let want = if nft_backend {
        "ip saddr 192.0.2.2 drop"
    } else {
        "-A DOCKER-USER -s 192.0.2.2/32 -j DROP"
    };
    let l = ruleset_text(&w).unwrap();
    assert!(l.contains(want), "{l}");
}

fn invalid_rules_are_refused_before_the_kernel(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    let bad = PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80).host_ip(ip("::1"));
    assert!(w.fw.publish(&[bad]).unwrap_err().is_invalid());
    assert!(w
        .fw
        .add_network(&NetworkRules::new("n", "br0"))
        .unwrap_err()
        .is_invalid());
    assert!(
        w.fw.state().unwrap().families.is_empty(),
        "nothing was created"
    );
}

fn nft(ns: &Netns, args: &[&str]) -> Option<()> {
    common::run_in(ns, "nft", args).map(drop)
}

fn nft_list(ns: &Netns) -> Option<String> {
    common::run_in(ns, "nft", &["list", "ruleset"])
}

/// The backend's own listing: `nft list ruleset` (if nft is there), or `iptables-save`
/// and `ip6tables-save` of the variant under test.
fn ruleset_text(w: &World) -> Option<String> {
    match w.fw.backend() {
        Backend::Nftables => nft_list(&w.host),
        _ => Some(
            ["iptables-save", "ip6tables-save"]
                .iter()
                .map(|b| saved(&w.host, &variant_bin(w, b)))
                .collect(),
        ),
    }
}

/// `name` with `-legacy` when the backend under test runs the legacy binaries.
fn variant_bin(w: &World, name: &str) -> String {
    #[cfg(feature = "iptables")]
    if let AnyFirewall::Iptables(fw) = &w.fw {
        if fw.version().contains("legacy") {
            return name.replacen("tables", "tables-legacy", 1);
        }
    }
    let _ = w;
    name.to_owned()
}

/// `iptables-save` output without its date comments and packet counters.
fn saved(ns: &Netns, bin: &str) -> String {
    let out = ns
        .spawn(Command::new(bin).stdout(std::process::Stdio::piped()))
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{bin}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut s = String::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let l = match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) => &l[..i],
            _ => l,
        };
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// Runs `iptables ARGS` (of the variant under test) in the sandbox's host namespace.
fn iptables_cmd(w: &World, name: &str, args: &[&str]) {
    let bin = variant_bin(w, name);
    let out = w
        .host
        .spawn(Command::new(&bin).args(args))
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn a_port_on_127_0_0_1_is_not_reachable_from_outside(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    w.fw.add_network(&net0()).unwrap();
    common::serve_peer(&w.c[0], sa("0.0.0.0", 80));
    let lo = PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80).host_ip(ip("127.0.0.1"));
    w.fw.publish(&[lo]).unwrap();
    for host in ["192.0.2.1", "198.51.100.1"] {
        assert_eq!(
            common::call_peer(&w.outside, sa(host, 8080)),
            None,
            "not from outside via {host}"
        );
    }
    // route_localnet stays off unless asked, and then the host alone can reach it.
    let rl = Sysctl::RouteLocalnet(netplumb::sysctl::Scope::dev("br0"));
    assert_eq!(rl.get(&w.host).unwrap(), "0");
    assert_eq!(
        common::call_peer(&w.host, sa("127.0.0.1", 8080)),
        None,
        "off by default"
    );
    w.fw.add_network(&net0().loopback_ports(true)).unwrap();
    rl.set_bool(&w.host, true).unwrap();
    assert_eq!(
        common::call_peer(&w.host, sa("127.0.0.1", 8080)).as_deref(),
        Some("10.77.0.1"),
        "the host, masqueraded"
    );
    for host in ["192.0.2.1", "198.51.100.1"] {
        assert_eq!(
            common::call_peer(&w.outside, sa(host, 8080)),
            None,
            "still not from outside via {host}"
        );
    }
    if let Some(l) = ruleset_text(&w) {
        let want = if w.fw.backend() == Backend::Nftables {
            "ip daddr 127.0.0.0/8 drop"
        } else {
            "-A PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"
        };
        assert!(l.contains(want), "{l}");
        if w.fw.backend() != Backend::Nftables {
            let drop =
                "-A INPUT -d 127.0.0.0/8 -i br0 -m conntrack ! --ctstate RELATED,ESTABLISHED";
            assert!(l.contains(drop), "{l}");
        }
    }
}

fn icc_off_with_isolated_ports_stops_raw_frames(s: &Sandbox, open: Opener) {
    let mut w = world(s, open);
    w.fw.add_network(&net0().icc(false)).unwrap();
    assert!(
        raw::frame_passes(&w.c[0], &w.c[1]),
        "L2 frames pass between plain ports"
    );
    for port in ["vethbr01", "vethbr02"] {
        w.rtnl
            .execute(&BridgePort::new(port).isolated(true))
            .unwrap();
    }
    assert!(
        !raw::frame_passes(&w.c[0], &w.c[1]),
        "isolated ports stop raw frames"
    );
    assert!(
        raw::frame_passes(&w.c[0], &w.host),
        "the bridge itself still hears them"
    );
}

#[test]
fn works_without_firewall_binaries_on_path() {
    // The backend talks netlink only: rerun a traffic test with an empty PATH.
    if std::env::var_os("NETPLUMB_EMPTY_PATH_CHILD").is_some() {
        return;
    }
    let empty = std::env::temp_dir().join(format!("netplumb-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(common::test_exe())
        .args([
            "--exact",
            "nftables::published_port_reaches_the_container_on_its_host_address_only",
            "--nocapture",
        ])
        .env("PATH", &empty)
        .env("NETPLUMB_EMPTY_PATH_CHILD", "1")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir(&empty);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 passed"), "{text}");
}

/// Raw Ethernet frames (ethertype 0x88b5, local experimental) between namespaces.
mod raw {
    #![allow(unsafe_code)]

    use netplumb::{Netns, Rtnl};
    use nix::libc;

    const ETHERTYPE: u16 = 0x88b5;

    fn socket(ifindex: u32) -> libc::c_int {
        crate::common::raw::packet_socket(ifindex, ETHERTYPE, std::time::Duration::from_secs(1))
    }

    fn nic(ns: &Netns) -> (u32, [u8; 6]) {
        let mut r = Rtnl::open_in(ns).unwrap();
        let l = r
            .links()
            .unwrap()
            .into_iter()
            .find(|l| l.name == "eth0" || l.name == "br0")
            .unwrap();
        (l.index, l.mac.unwrap().octets())
    }

    /// Whether a frame sent from `from`'s eth0 to `to`'s MAC arrives in `to`.
    pub fn frame_passes(from: &Netns, to: &Netns) -> bool {
        let (tidx, tmac) = nic(to);
        let (fidx, fmac) = nic(from);
        let rx = to.run(|| socket(tidx)).unwrap();
        let tx = from.run(|| socket(fidx)).unwrap();
        let mut frame = Vec::new();
        frame.extend_from_slice(&tmac);
        frame.extend_from_slice(&fmac);
        frame.extend_from_slice(&ETHERTYPE.to_be_bytes());
        frame.extend_from_slice(b"netplumb-l2-probe-padding-to-minimum-frame-size!");
        let mut got = false;
        // SAFETY: buffers outlive the calls; the fds are ours and closed below.
        unsafe {
            for _ in 0..3 {
                libc::send(tx, frame.as_ptr() as *const libc::c_void, frame.len(), 0);
                let mut buf = [0u8; 128];
                let n = libc::recv(rx, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0);
                if n > 14 && buf[14..(n as usize)].starts_with(b"netplumb-l2-probe") {
                    got = true;
                    break;
                }
            }
            libc::close(tx);
            libc::close(rx);
        }
        got
    }
}

/// What only the iptables backend has: Docker's listing, chains and jumps, removal,
/// locking, binaries, automatic selection.
#[cfg(feature = "iptables")]
mod iptables_layout {
    use std::collections::BTreeMap;
    use std::process::Command;

    use netplumb::firewall::{
        self, Backend, Firewall, Iptables, IptablesVariant, LinkAllow, NetworkRules, PortRule,
        Proto,
    };
    use netplumb::Netns;

    use super::{common, ip, saved};

    /// `iptables-save -t nat` after `docker run -p 32768:80` on the default bridge, as the
    /// walkthrough shows it (Docker with its userland proxy, the default).
    const WALKTHROUGH_NAT: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 32768 -j DNAT --to-destination 172.17.0.2:80
COMMIT
";

    /// The walkthrough's rules with netplumb's two documented differences (see
    /// `firewall::Iptables`).
    fn netplumb_equivalent(walkthrough: &str) -> String {
        walkthrough
            // 127.0.0.0/8 is never DNATed from outside (CVE-2020-8558).
            .replace(
                "-A PREROUTING -m addrtype",
                "-A PREROUTING ! -d 127.0.0.0/8 -m addrtype",
            )
            // No userland proxy: containers reach published ports by DNAT too, as with
            // Docker's --userland-proxy=false.
            .replace("-A DOCKER -i docker0 -j RETURN\n", "")
            .replace("-A DOCKER ! -i docker0 -p tcp", "-A DOCKER -p tcp")
    }

    /// Chain declarations and each chain's rules of one table, comments and counters
    /// dropped (so that iptables-nft and iptables-legacy output compare alike).
    fn chains(save: &str, table: &str) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut inside = false;
        for l in save.lines() {
            if let Some(t) = l.strip_prefix('*') {
                inside = t == table;
            } else if let (true, Some(decl)) = (inside, l.strip_prefix(':')) {
                out.entry(decl.split_whitespace().next().unwrap().to_owned())
                    .or_default();
            } else if let (true, Some(rule)) = (inside, l.strip_prefix("-A ")) {
                let rule = match (rule.find(" -m comment --comment \""), rule.find("\" -j ")) {
                    (Some(a), Some(b)) if a < b => format!("{}{}", &rule[..a], &rule[b + 1..]),
                    _ => rule.to_owned(),
                };
                let (chain, spec) = rule.split_once(' ').unwrap();
                out.entry(chain.to_owned())
                    .or_default()
                    .push(spec.to_owned());
            }
        }
        out
    }

    fn run(ns: &Netns, bin: &str, args: &[&str]) -> String {
        let out = ns
            .spawn(
                Command::new(bin)
                    .args(args)
                    .stdout(std::process::Stdio::piped()),
            )
            .unwrap()
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{bin} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn squash(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// Runs `f` in a sandbox with an iptables backend (skipped loudly without binaries,
    /// failed under CI=true).
    fn with_iptables(
        name: &str,
        variant: IptablesVariant,
        f: impl FnOnce(&Netns, Iptables) + Send,
    ) {
        common::sandbox(name, |s| {
            match Iptables::options().variant(variant).open_in(s.host()) {
                Ok(fw) => f(s.host(), fw),
                Err(e) => {
                    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "{name}: {e}");
                    common::skip(name, e);
                }
            }
        });
    }

    fn bridge_network() -> NetworkRules {
        NetworkRules::new("bridge", "docker0").subnet("172.17.0.0/16".parse().unwrap())
    }

    fn listing_matches(variant: IptablesVariant, name: &str) {
        with_iptables(name, variant, |ns, mut fw| {
            let save = if fw.version().contains("legacy") {
                "iptables-legacy-save"
            } else {
                "iptables-save"
            };
            fw.add_network(&bridge_network()).unwrap();
            fw.publish(&[PortRule::new(
                "bridge",
                Proto::Tcp,
                32768,
                ip("172.17.0.2"),
                80,
            )])
            .unwrap();
            let ours = run(ns, save, &["-t", "nat"]);
            assert_eq!(
                chains(&ours, "nat"),
                chains(&netplumb_equivalent(WALKTHROUGH_NAT), "nat"),
                "{ours}"
            );
            // `iptables -t nat -nL`, as the walkthrough reads it.
            // (iptables 1.8.9 prints protocol numbers where older ones print names.)
            let list = squash(&run(ns, &save.replace("-save", ""), &["-t", "nat", "-nL"]))
                .replace(" 0 -- ", " all -- ")
                .replace(" 6 -- ", " tcp -- ");
            for want in [
                "MASQUERADE all -- 172.17.0.0/16 0.0.0.0/0",
                "DNAT tcp -- 0.0.0.0/0 0.0.0.0/0 tcp dpt:32768 /* netplumb net=bridge port=tcp/*:32768 */ to:172.17.0.2:80",
                "MASQUERADE tcp -- 172.17.0.2 172.17.0.2 tcp dpt:80",
                "Chain DOCKER (2 references)",
            ] {
                assert!(list.contains(want), "{want:?} not in {list}");
            }
            // The filter table: Docker's chains, the users' chain first, ICC, --link both ways.
            let link = LinkAllow {
                from: ip("172.17.0.3"),
                to: ip("172.17.0.2"),
                proto: Proto::Tcp,
                port: 80,
            };
            fw.add_network(&bridge_network().icc(false).link(link))
                .unwrap();
            let filter = chains(&run(ns, save, &["-t", "filter"]), "filter");
            assert_eq!(
                filter["FORWARD"][..2],
                ["-j DOCKER-USER", "-j DOCKER-ISOLATION-STAGE-1"]
            );
            for (chain, want) in [
                ("FORWARD", "-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
                ("FORWARD", "-o docker0 -j DOCKER"),
                ("FORWARD", "-i docker0 ! -o docker0 -j ACCEPT"),
                ("FORWARD", "-i docker0 -o docker0 -j DROP"),
                ("DOCKER", "-d 172.17.0.2/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 32768 -j ACCEPT"),
                ("DOCKER", "-s 172.17.0.3/32 -d 172.17.0.2/32 -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"),
                ("DOCKER", "-s 172.17.0.2/32 -d 172.17.0.3/32 -i docker0 -o docker0 -p tcp -m tcp --sport 80 -j ACCEPT"),
                ("DOCKER-ISOLATION-STAGE-1", "-i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2"),
                ("DOCKER-ISOLATION-STAGE-2", "-o docker0 -j DROP"),
            ] {
                assert!(filter[chain].iter().any(|r| r == want), "{chain}: {want:?} not in {:?}", filter[chain]);
            }
            assert!(filter["DOCKER-USER"].is_empty());
        });
    }

    #[test]
    fn listing_matches_the_walkthrough() {
        listing_matches(
            IptablesVariant::Auto,
            "iptables_layout::listing_matches_the_walkthrough",
        );
    }

    #[test]
    fn listing_matches_the_walkthrough_legacy() {
        listing_matches(
            IptablesVariant::Legacy,
            "iptables_layout::listing_matches_the_walkthrough_legacy",
        );
    }

    /// The rules and user chains of both families (comments kept; tables that hold
    /// only built-in chains, which iptables-nft keeps once made, are left out).
    fn everything(ns: &Netns) -> String {
        let all = saved(ns, "iptables-save") + "--- ip6\n" + &saved(ns, "ip6tables-save");
        let builtin = |l: &str| {
            [
                ":INPUT ",
                ":FORWARD ",
                ":OUTPUT ",
                ":PREROUTING ",
                ":POSTROUTING ",
            ]
            .iter()
            .any(|b| l.starts_with(b))
        };
        all.lines()
            .filter(|l| !l.starts_with('*') && *l != "COMMIT" && !builtin(l))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    #[test]
    fn removal_is_exact_and_the_last_network_takes_the_chains() {
        with_iptables(
            "iptables_layout::removal_is_exact_and_the_last_network_takes_the_chains",
            IptablesVariant::Auto,
            |ns, mut fw| {
                // Another tool's rules, and another netplumb instance with its own prefix.
                run(
                    ns,
                    "iptables",
                    &["-A", "FORWARD", "-i", "eth9", "-j", "ACCEPT"],
                );
                run(
                    ns,
                    "iptables",
                    &[
                        "-t",
                        "nat",
                        "-A",
                        "POSTROUTING",
                        "-s",
                        "10.9.0.0/24",
                        "-j",
                        "MASQUERADE",
                    ],
                );
                let mut other = Iptables::options().prefix("OTHER").open_in(ns).unwrap();
                other
                    .add_network(
                        &NetworkRules::new("net0", "br9").subnet("10.99.0.0/24".parse().unwrap()),
                    )
                    .unwrap();
                let before = everything(ns);
                let net0 = NetworkRules::new("net0", "br0")
                    .subnet("10.77.0.0/24".parse().unwrap())
                    .subnet("fd77::/64".parse().unwrap());
                let net1 = NetworkRules::new("net1", "br1").subnet("10.78.0.0/24".parse().unwrap());
                fw.add_network(&net0).unwrap();
                let only0 = everything(ns);
                fw.add_network(&net1).unwrap();
                fw.add_network(&net0).unwrap();
                fw.publish(&[PortRule::new("net1", Proto::Udp, 53, ip("10.78.0.2"), 53)])
                    .unwrap();
                let all = saved(ns, "iptables-save");
                assert_eq!(
                    all.matches("-j DOCKER-USER").count(),
                    1,
                    "one jump to the users' chain:\n{all}"
                );
                assert_eq!(
                    all.matches("-j DOCKER-ISOLATION-STAGE-1").count(),
                    1,
                    "{all}"
                );
                assert_eq!(
                    all.matches(
                        "-A PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"
                    )
                    .count(),
                    1,
                    "{all}"
                );
                fw.remove_network("net1").unwrap();
                assert_eq!(
                    everything(ns),
                    only0,
                    "removing net1 removes its rules and its port, nothing else"
                );
                // The users' chain keeps its rules (and its jump) after the last network.
                run(
                    ns,
                    "iptables",
                    &["-A", "DOCKER-USER", "-s", "192.0.2.9", "-j", "DROP"],
                );
                fw.remove_network("net0").unwrap();
                let left = everything(ns);
                assert!(
                    left.contains(":DOCKER-USER -\n")
                        && left.contains("-A FORWARD -j DOCKER-USER\n"),
                    "{left}"
                );
                assert!(
                    left.contains("-A DOCKER-USER -s 192.0.2.9/32 -j DROP"),
                    "{left}"
                );
                assert!(
                    !left.contains("DOCKER-ISOLATION")
                        && !left.contains(":DOCKER -")
                        && !left.contains("netplumb net="),
                    "{left}"
                );
                run(ns, "iptables", &["-F", "DOCKER-USER"]);
                fw.remove_network("net0").unwrap();
                assert_eq!(fw.state().unwrap(), Default::default());
                // Nothing to do, and the empty users' chain goes on the next removal.
                fw.add_network(&net1).unwrap();
                fw.remove_network("net1").unwrap();
                assert_eq!(
                    everything(ns),
                    before,
                    "the last network takes the jumps and the chains, never another's"
                );
                assert_eq!(other.state().unwrap().networks, ["net0"]);
                fw.flush().unwrap();
                other.flush().unwrap();
                assert!(!everything(ns).contains("OTHER"));
            },
        );
    }

    #[test]
    fn a_port_twice_is_one_port_and_another_target_is_refused() {
        with_iptables(
            "iptables_layout::a_port_twice_is_one_port_and_another_target_is_refused",
            IptablesVariant::Auto,
            |ns, mut fw| {
                let p = PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80);
                fw.publish(&[p.clone(), p.clone()]).unwrap();
                fw.publish(std::slice::from_ref(&p)).unwrap();
                assert_eq!(fw.state().unwrap().ports, std::slice::from_ref(&p));
                let tagged = |s: &str| s.matches("port=tcp/*:8080").count();
                assert_eq!(
                    tagged(&everything(ns)),
                    3,
                    "DNAT, hairpin, accept: once each"
                );
                let other = PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.3"), 80);
                let e = fw.publish(&[other]).unwrap_err();
                assert!(e.is_exists(), "{e}");
                assert_eq!(fw.state().unwrap().ports, [p]);
            },
        );
    }

    #[test]
    fn concurrent_changes_from_several_handles() {
        // Each thread has its own handle, so its own open file of the lock (as another
        // process would): the skeleton is created once and no change is lost.
        with_iptables(
            "iptables_layout::concurrent_changes_from_several_handles",
            IptablesVariant::Auto,
            |ns, mut fw| {
                std::thread::scope(|sc| {
                    for t in 0..4u16 {
                        let ns = ns.clone();
                        sc.spawn(move || {
                            let mut fw = Iptables::open_in(&ns).unwrap();
                            let name = format!("net{t}");
                            fw.add_network(
                                &NetworkRules::new(&name, &format!("br{t}"))
                                    .subnet(format!("10.{t}.0.0/24").parse().unwrap()),
                            )
                            .unwrap();
                            for i in 0..5u16 {
                                fw.publish(&[PortRule::new(
                                    &name,
                                    Proto::Tcp,
                                    8000 + t * 10 + i,
                                    ip(&format!("10.{t}.0.2")),
                                    80,
                                )])
                                .unwrap();
                            }
                        });
                    }
                });
                let st = fw.state().unwrap();
                assert_eq!(st.networks, ["net0", "net1", "net2", "net3"]);
                assert_eq!(st.ports.len(), 20);
                let all = saved(ns, "iptables-save");
                assert_eq!(all.matches("-j DOCKER-USER").count(), 1, "{all}");
                assert_eq!(
                    all.matches(":DOCKER -").count(),
                    2,
                    "one DOCKER chain in nat and filter:\n{all}"
                );
            },
        );
    }

    #[test]
    fn a_held_lock_is_waited_for_no_longer_than_asked() {
        common::sandbox("iptables_layout::a_held_lock_is_waited_for", |s| {
            use nix::fcntl::{Flock, FlockArg};
            use std::time::Duration;
            // /run is the sandbox's own tmpfs: its lock folder and /run/xtables.lock are
            // this test's alone.
            let dir = std::path::Path::new("/run/iptables-wait");
            let net = NetworkRules::new("held", "br-held").subnet("10.93.0.0/24".parse().unwrap());
            let open = |v: IptablesVariant| {
                Iptables::options()
                    .variant(v)
                    .lock_dir(dir)
                    .wait(Duration::from_millis(300))
                    .open_in(s.host())
                    .unwrap()
            };
            // Our lock of the namespace, held by "another process".
            let mut fw = open(IptablesVariant::Auto);
            std::fs::create_dir_all(dir).unwrap();
            let path = dir.join(format!("iptables-{}.lock", s.host().inode()));
            let file = std::fs::File::create(&path).unwrap();
            let held = Flock::lock(file, FlockArg::LockExclusive).unwrap();
            let e = fw.add_network(&net).unwrap_err();
            assert!(e.to_string().contains("held by another process"), "{e}");
            assert!(
                fw.state().unwrap().networks.is_empty(),
                "changed while refused"
            );
            drop(held);
            fw.add_network(&net).unwrap();
            fw.remove_network("held").unwrap();
            // The xtables lock (legacy iptables takes it; iptables-nft needs none).
            let mut legacy = open(IptablesVariant::Legacy);
            let xt = std::fs::File::create("/run/xtables.lock").unwrap();
            let held = Flock::lock(xt, FlockArg::LockExclusive).unwrap();
            let e = legacy.add_network(&net).unwrap_err();
            assert!(e.to_string().contains("xtables lock"), "{e}");
            drop(held);
            legacy.add_network(&net).unwrap();
            legacy.remove_network("held").unwrap();
        });
    }

    #[test]
    fn missing_or_old_binaries_are_named() {
        common::sandbox("iptables_layout::missing_or_old_binaries_are_named", |s| {
            // /run is the sandbox's own tmpfs: nothing is left behind.
            let dir = std::path::Path::new("/run/fake-iptables");
            std::fs::create_dir_all(dir).unwrap();
            let e = Iptables::options()
                .bin_dir(dir)
                .open_in(s.host())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("iptables-restore: not found") && e.contains("apt-get install iptables"),
                "{e}"
            );
            for name in [
                "iptables-restore",
                "ip6tables-restore",
                "iptables-save",
                "ip6tables-save",
            ] {
                let path = dir.join(name);
                std::fs::write(&path, "#!/bin/sh\necho 'iptables-restore v1.4.21'\n").unwrap();
                std::os::unix::fs::PermissionsExt::set_mode(
                    &mut std::fs::metadata(&path).unwrap().permissions(),
                    0o755,
                );
                std::fs::set_permissions(
                    &path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .unwrap();
            }
            let e = Iptables::options()
                .bin_dir(dir)
                .open_in(s.host())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("/run/fake-iptables/iptables-restore")
                    && e.contains("1.4.21 is too old")
                    && e.contains("1.6.2"),
                "{e}"
            );
            let e = Iptables::options()
                .prefix("NO SPACES")
                .open_in(s.host())
                .unwrap_err();
            assert!(e.is_invalid(), "{e}");
        });
    }

    #[test]
    fn automatic_selection() {
        common::sandbox("iptables_layout::automatic_selection", |s| {
            assert_eq!(
                Backend::detect(s.host()).unwrap(),
                Backend::Nftables,
                "a fresh namespace with nf_tables"
            );
            assert_eq!(
                firewall::open(Backend::Auto, s.host()).unwrap().backend(),
                Backend::Nftables
            );
            let legacy = s.host().spawn(
                Command::new("iptables-legacy")
                    .args(["-t", "filter", "-nL"])
                    .stdout(std::process::Stdio::null()),
            );
            let Ok(status) = legacy.and_then(|c| {
                Ok(c.wait_with_output()
                    .map_err(|source| netplumb::Error::Io {
                        path: "iptables-legacy".into(),
                        source,
                    })?
                    .status)
            }) else {
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "no iptables-legacy"
                );
                common::skip_here("legacy part: no iptables-legacy");
                return;
            };
            assert!(status.success());
            assert_eq!(
                Backend::detect(s.host()).unwrap(),
                Backend::Iptables,
                "legacy tables in use"
            );
            let fw = firewall::open(Backend::Auto, s.host()).unwrap();
            assert_eq!(fw.backend(), Backend::Iptables);
            let firewall::AnyFirewall::Iptables(fw) = fw else {
                unreachable!()
            };
            assert!(fw.version().contains("legacy"), "{}", fw.version());
        });
    }
}
