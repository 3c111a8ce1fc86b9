//! The nf_tables backend against the real kernel: rules read back, and real traffic
//! between an "outside" namespace, the sandbox "host" with a bridge, and containers.
//!
//! Topology (every test builds its own, inside its own sandbox):
//!
//! ```text
//! outside (192.0.2.2/24, 198.51.100.2/24)  --veth--  host (192.0.2.1/24, 198.51.100.1/24)
//! host: br0 10.77.0.1/24 fd77::1/64 -- c1 10.77.0.2 fd77::2, c2 10.77.0.3 fd77::3
//! host: br1 10.78.0.1/24            -- c3 10.78.0.2        (second network, when asked)
//! ```

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use netplumb::addr::Addr;
use netplumb::firewall::{Firewall, LinkAllow, NetworkRules, Nftables, PortRule, Proto};
use netplumb::link::{Bridge, BridgePort, LinkSet, Veth};
use netplumb::netns::Sandbox;
use netplumb::route::Route;
use netplumb::sysctl::Sysctl;
use netplumb::{Netns, Rtnl};

struct World {
    host: Netns,
    outside: Netns,
    c: Vec<Netns>,
    fw: Nftables,
    rtnl: Rtnl,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A fresh namespace whose new interfaces skip IPv6 duplicate address detection, so
/// link-local addresses (and neighbour discovery with them) work at once.
fn fresh_ns() -> Netns {
    let ns = Netns::new().unwrap();
    no_dad(&ns);
    ns
}

fn no_dad(ns: &Netns) {
    ns.run(|| std::fs::write("/proc/sys/net/ipv6/conf/default/accept_dad", "0")).unwrap().unwrap();
}

/// A container on `bridge` with `v4` (and `v6`), default routes via the bridge.
fn container(host: &mut Rtnl, bridge: &str, n: usize, v4: &str, v6: Option<&str>, gw: (&str, Option<&str>)) -> Netns {
    let ns = fresh_ns();
    let hname = format!("veth{bridge}{n}");
    host.execute(&Veth::new(&hname).peer("eth0").peer_netns(&ns).up()).unwrap();
    let br = host.link(bridge).unwrap();
    host.execute(&LinkSet::new(hname.as_str()).controller(br.index)).unwrap();
    let mut r = Rtnl::open_in(&ns).unwrap();
    let eth0 = r.link("eth0").unwrap();
    r.execute(&LinkSet::new("lo").up()).unwrap();
    r.execute(&LinkSet::new(&eth0).up()).unwrap();
    r.execute(&Addr::new(&eth0, format!("{v4}/24").parse().unwrap())).unwrap();
    r.execute(&Route::default_v4().via(ip(gw.0)).dev(&eth0)).unwrap();
    if let (Some(a), Some(g)) = (v6, gw.1) {
        r.execute(&Addr::new(&eth0, format!("{a}/64").parse().unwrap()).nodad()).unwrap();
        r.execute(&Route::default_v6().via(ip(g)).dev(&eth0)).unwrap();
    }
    ns
}

fn bridge(host: &mut Rtnl, name: &str, v4: &str, v6: Option<&str>) {
    host.execute(&Bridge::new(name).stp(false).up()).unwrap();
    let br = host.link(name).unwrap();
    host.execute(&Addr::new(&br, v4.parse().unwrap())).unwrap();
    if let Some(a) = v6 {
        host.execute(&Addr::new(&br, a.parse().unwrap()).nodad()).unwrap();
    }
}

fn world(s: &Sandbox) -> World {
    let host = s.host().clone();
    no_dad(&host);
    let mut rtnl = common::rtnl(s);
    rtnl.execute(&LinkSet::new("lo").up()).unwrap();
    Sysctl::IpForward.set_bool(&host, true).unwrap();
    Sysctl::Ipv6Forward.set_bool(&host, true).unwrap();
    let outside = fresh_ns();
    rtnl.execute(&Veth::new("uplink").peer("eth0").peer_netns(&outside).up()).unwrap();
    let up = rtnl.link("uplink").unwrap();
    for a in ["192.0.2.1/24", "198.51.100.1/24"] {
        rtnl.execute(&Addr::new(&up, a.parse().unwrap())).unwrap();
    }
    rtnl.execute(&Addr::new(&up, "2001:db8::1/64".parse().unwrap()).nodad()).unwrap();
    let mut o = Rtnl::open_in(&outside).unwrap();
    let oe = o.link("eth0").unwrap();
    o.execute(&LinkSet::new("lo").up()).unwrap();
    o.execute(&LinkSet::new(&oe).up()).unwrap();
    for a in ["192.0.2.2/24", "198.51.100.2/24"] {
        o.execute(&Addr::new(&oe, a.parse().unwrap())).unwrap();
    }
    o.execute(&Addr::new(&oe, "2001:db8::2/64".parse().unwrap()).nodad()).unwrap();
    bridge(&mut rtnl, "br0", "10.77.0.1/24", Some("fd77::1/64"));
    let gw = ("10.77.0.1", Some("fd77::1"));
    let c = vec![
        container(&mut rtnl, "br0", 1, "10.77.0.2", Some("fd77::2"), gw),
        container(&mut rtnl, "br0", 2, "10.77.0.3", Some("fd77::3"), gw),
    ];
    let fw = Nftables::open_in(&host).unwrap();
    World { host, outside, c, fw, rtnl }
}

fn net0() -> NetworkRules {
    NetworkRules::new("net0", "br0")
        .subnet("10.77.0.0/24".parse().unwrap())
        .subnet("fd77::/64".parse().unwrap())
}

/// A TCP server in `ns` on `bind` that answers each connection with its own address as
/// seen by it and the peer's address. Returns the port.
fn tcp_server(ns: &Netns, bind: SocketAddr) -> u16 {
    let l = ns.run(|| TcpListener::bind(bind)).unwrap().unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let peer = c.peer_addr().map(|p| p.ip().to_string()).unwrap_or_default();
            let _ = c.write_all(peer.as_bytes());
        }
    });
    port
}

/// Connects from `ns` to `to`; returns what the server said (the client address it saw).
fn tcp_call(ns: &Netns, to: SocketAddr) -> Option<String> {
    ns.run(|| {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_millis(1500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    })
    .unwrap()
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(self::ip(ip), port)
}

#[test]
fn published_port_reaches_the_container_on_its_host_address_only() {
    common::sandbox("published_port_reaches_the_container_on_its_host_address_only", |s| {
        let mut w = world(s);
        w.fw.add_network(&net0()).unwrap();
        tcp_server(&w.c[0], sa("0.0.0.0", 80));
        let p = PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80).host_ip(ip("192.0.2.1"));
        w.fw.publish(std::slice::from_ref(&p)).unwrap();
        assert_eq!(w.fw.state().unwrap().ports, vec![p]);
        let seen = tcp_call(&w.outside, sa("192.0.2.1", 8080)).expect("published port reachable");
        assert_eq!(seen, "192.0.2.2", "the container sees the real client (no SNAT inbound)");
        assert_eq!(tcp_call(&w.outside, sa("198.51.100.1", 8080)), None, "not on another host address");
        assert_eq!(tcp_call(&w.outside, sa("10.77.0.2", 80)), None, "containers are not reachable directly");
    });
}

#[test]
fn any_address_udp_and_ipv6_ports() {
    common::sandbox("any_address_udp_and_ipv6_ports", |s| {
        let mut w = world(s);
        w.fw.add_network(&net0()).unwrap();
        let udp = w.c[1].run(|| UdpSocket::bind("0.0.0.0:53")).unwrap().unwrap();
        std::thread::spawn(move || {
            let mut b = [0u8; 64];
            while let Ok((n, from)) = udp.recv_from(&mut b) {
                let _ = udp.send_to(&b[..n], from);
            }
        });
        tcp_server(&w.c[0], sa("::", 80));
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
            assert_eq!(echoed.unwrap().as_deref(), Some(&b"hi"[..]), "udp via {host}");
        }
        let seen = tcp_call(&w.outside, sa("2001:db8::1", 8080)).expect("IPv6 published port");
        assert_eq!(seen, "2001:db8::2");
    });
}

#[test]
fn outbound_masquerade_and_hairpin() {
    common::sandbox("outbound_masquerade_and_hairpin", |s| {
        let mut w = world(s);
        w.fw.add_network(&net0()).unwrap();
        let port = tcp_server(&w.outside, sa("0.0.0.0", 0));
        assert_eq!(tcp_call(&w.c[0], sa("192.0.2.2", port)).as_deref(), Some("192.0.2.1"), "masqueraded to the host");
        tcp_server(&w.c[0], sa("0.0.0.0", 80));
        w.fw.publish(&[PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80)]).unwrap();
        // c2 reaches c1's published port through the host address.
        assert!(tcp_call(&w.c[1], sa("192.0.2.1", 8080)).is_some(), "same-network hairpin");
        // c1 reaches its own published port: needs hairpin mode on its bridge port.
        w.rtnl.execute(&BridgePort::new("vethbr01").hairpin(true)).unwrap();
        assert!(tcp_call(&w.c[0], sa("192.0.2.1", 8080)).is_some(), "self hairpin");
        // Masquerade off: the outside sees the container's own address (and cannot answer).
        w.fw.add_network(&net0().masquerade(false)).unwrap();
        assert_eq!(tcp_call(&w.c[0], sa("192.0.2.2", port)), None);
    });
}

#[test]
fn icc_off_blocks_containers_and_links_open_one_port() {
    common::sandbox("icc_off_blocks_containers_and_links_open_one_port", |s| {
        let mut w = world(s);
        tcp_server(&w.c[1], sa("0.0.0.0", 80));
        tcp_server(&w.c[1], sa("0.0.0.0", 81));
        w.fw.add_network(&net0()).unwrap();
        assert!(tcp_call(&w.c[0], sa("10.77.0.3", 80)).is_some(), "icc on by default");
        w.fw.add_network(&net0().icc(false)).unwrap();
        assert_eq!(tcp_call(&w.c[0], sa("10.77.0.3", 80)), None, "icc off");
        let link = LinkAllow { from: ip("10.77.0.2"), to: ip("10.77.0.3"), proto: Proto::Tcp, port: 80 };
        w.fw.add_network(&net0().icc(false).link(link)).unwrap();
        assert!(tcp_call(&w.c[0], sa("10.77.0.3", 80)).is_some(), "--link opens its port");
        assert_eq!(tcp_call(&w.c[0], sa("10.77.0.3", 81)), None, "and only that port");
        assert_eq!(tcp_call(&w.c[1], sa("10.77.0.2", 80)), None, "and only that direction");
    });
}

#[test]
fn networks_are_isolated_and_removal_is_exact() {
    common::sandbox("networks_are_isolated_and_removal_is_exact", |s| {
        let mut w = world(s);
        bridge(&mut w.rtnl, "br1", "10.78.0.1/24", None);
        let c3 = container(&mut w.rtnl, "br1", 3, "10.78.0.2", None, ("10.78.0.1", None));
        let net1 = NetworkRules::new("net1", "br1").subnet("10.78.0.0/24".parse().unwrap());
        w.fw.add_network(&net0()).unwrap();
        let only0 = w.fw.state().unwrap();
        w.fw.add_network(&net1).unwrap();
        tcp_server(&c3, sa("0.0.0.0", 80));
        tcp_server(&w.c[0], sa("0.0.0.0", 80));
        assert_eq!(tcp_call(&w.c[0], sa("10.78.0.2", 80)), None, "net0 -> net1 blocked");
        assert_eq!(tcp_call(&c3, sa("10.77.0.2", 80)), None, "net1 -> net0 blocked");
        w.fw.publish(&[PortRule::new("net1", Proto::Tcp, 9090, ip("10.78.0.2"), 80)]).unwrap();
        let st = w.fw.state().unwrap();
        assert_eq!(st.networks, ["net0", "net1"]);
        assert_eq!(st.ports.len(), 1);
        w.fw.remove_network("net1").unwrap();
        assert_eq!(w.fw.state().unwrap(), only0, "removing net1 removes exactly what it added");
        w.fw.remove_network("net1").unwrap();
        w.fw.remove_network("never-there").unwrap();
    });
}

#[test]
fn applying_twice_changes_nothing() {
    common::sandbox("applying_twice_changes_nothing", |s| {
        let mut w = world(s);
        let p = [PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80)];
        w.fw.add_network(&net0()).unwrap();
        w.fw.publish(&p).unwrap();
        let once = w.fw.state().unwrap();
        let listing = nft_list(&w.host);
        w.fw.add_network(&net0()).unwrap();
        w.fw.publish(&p).unwrap();
        assert_eq!(w.fw.state().unwrap(), once);
        if let Some(l) = listing {
            assert_eq!(nft_list(&w.host).unwrap(), l, "nft sees the same ruleset");
            assert!(l.contains("masquerade"), "{l}");
            assert!(l.contains("chain user"), "{l}");
        }
        w.fw.unpublish(&p).unwrap();
        w.fw.unpublish(&p).unwrap();
        assert!(w.fw.state().unwrap().ports.is_empty());
        w.fw.flush().unwrap();
        assert!(w.fw.state().unwrap().families.is_empty());
        if let Some(l) = nft_list(&w.host) {
            assert!(!l.contains("netplumb"), "{l}");
        }
    });
}

#[test]
fn the_users_chain_verdict_wins() {
    common::sandbox("the_users_chain_verdict_wins", |s| {
        let mut w = world(s);
        w.fw.add_network(&net0()).unwrap();
        tcp_server(&w.c[0], sa("0.0.0.0", 80));
        w.fw.publish(&[PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80)]).unwrap();
        assert!(tcp_call(&w.outside, sa("192.0.2.1", 8080)).is_some());
        let Some(()) = nft(&w.host, &["add", "rule", "ip", "netplumb", "user", "ip", "saddr", "192.0.2.2", "drop"]) else {
            eprintln!("SKIPPED the_users_chain_verdict_wins: no nft binary to fill the user chain");
            return;
        };
        assert_eq!(tcp_call(&w.outside, sa("192.0.2.1", 8080)), None, "the user's drop wins");
        // Our own changes never touch the user's rule.
        w.fw.add_network(&net0().icc(false)).unwrap();
        w.fw.publish(&[PortRule::new("net0", Proto::Tcp, 8081, ip("10.77.0.2"), 80)]).unwrap();
        assert!(nft_list(&w.host).unwrap().contains("ip saddr 192.0.2.2 drop"));
    });
}

#[test]
fn invalid_rules_are_refused_before_the_kernel() {
    common::sandbox("invalid_rules_are_refused_before_the_kernel", |s| {
        let mut w = world(s);
        let bad = PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80).host_ip(ip("::1"));
        assert!(w.fw.publish(&[bad]).unwrap_err().is_invalid());
        assert!(w.fw.add_network(&NetworkRules::new("n", "br0")).unwrap_err().is_invalid());
        assert!(w.fw.state().unwrap().families.is_empty(), "nothing was created");
    });
}

fn nft(ns: &Netns, args: &[&str]) -> Option<()> {
    let out = ns.spawn(Command::new("nft").args(args)).ok()?.wait_with_output().ok()?;
    assert!(out.status.success(), "nft {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Some(())
}

fn nft_list(ns: &Netns) -> Option<String> {
    let out = ns.spawn(Command::new("nft").args(["list", "ruleset"]).stdout(std::process::Stdio::piped())).ok()?.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_port_on_127_0_0_1_is_not_reachable_from_outside() {
    common::sandbox("a_port_on_127_0_0_1_is_not_reachable_from_outside", |s| {
        let mut w = world(s);
        w.fw.add_network(&net0()).unwrap();
        tcp_server(&w.c[0], sa("0.0.0.0", 80));
        let lo = PortRule::new("net0", Proto::Tcp, 8080, ip("10.77.0.2"), 80).host_ip(ip("127.0.0.1"));
        w.fw.publish(&[lo]).unwrap();
        for host in ["192.0.2.1", "198.51.100.1"] {
            assert_eq!(tcp_call(&w.outside, sa(host, 8080)), None, "not from outside via {host}");
        }
        // route_localnet stays off unless asked, and then the host alone can reach it.
        let rl = Sysctl::RouteLocalnet(netplumb::sysctl::Scope::dev("br0"));
        assert_eq!(rl.get(&w.host).unwrap(), "0");
        assert_eq!(tcp_call(&w.host, sa("127.0.0.1", 8080)), None, "off by default");
        w.fw.add_network(&net0().loopback_ports(true)).unwrap();
        rl.set_bool(&w.host, true).unwrap();
        assert_eq!(tcp_call(&w.host, sa("127.0.0.1", 8080)).as_deref(), Some("10.77.0.1"), "the host, masqueraded");
        for host in ["192.0.2.1", "198.51.100.1"] {
            assert_eq!(tcp_call(&w.outside, sa(host, 8080)), None, "still not from outside via {host}");
        }
        if let Some(l) = nft_list(&w.host) {
            assert!(l.contains("ip daddr 127.0.0.0/8 return"), "{l}");
        }
    });
}

#[test]
fn icc_off_with_isolated_ports_stops_raw_frames() {
    common::sandbox("icc_off_with_isolated_ports_stops_raw_frames", |s| {
        let mut w = world(s);
        w.fw.add_network(&net0().icc(false)).unwrap();
        assert!(raw::frame_passes(&w.c[0], &w.c[1]), "L2 frames pass between plain ports");
        for port in ["vethbr01", "vethbr02"] {
            w.rtnl.execute(&BridgePort::new(port).isolated(true)).unwrap();
        }
        assert!(!raw::frame_passes(&w.c[0], &w.c[1]), "isolated ports stop raw frames");
        assert!(raw::frame_passes(&w.c[0], &w.host), "the bridge itself still hears them");
    });
}

#[test]
fn works_without_firewall_binaries_on_path() {
    // The backend talks netlink only: rerun a traffic test with an empty PATH.
    if std::env::var_os("NETPLUMB_EMPTY_PATH_CHILD").is_some() {
        return;
    }
    let empty = std::env::temp_dir().join(format!("netplumb-empty-path-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "published_port_reaches_the_container_on_its_host_address_only", "--nocapture"])
        .env("PATH", &empty)
        .env("NETPLUMB_EMPTY_PATH_CHILD", "1")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir(&empty);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("1 passed"), "{text}");
}

/// Raw Ethernet frames (ethertype 0x88b5, local experimental) between namespaces.
mod raw {
    #![allow(unsafe_code)]

    use netplumb::{Netns, Rtnl};
    use nix::libc;

    const ETHERTYPE: u16 = 0x88b5;

    fn socket(ifindex: u32) -> libc::c_int {
        // SAFETY: plain syscalls on a socket we own; sockaddr_ll is fully initialised.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, (ETHERTYPE.to_be()) as libc::c_int);
            assert!(fd >= 0, "AF_PACKET socket");
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETHERTYPE.to_be();
            sll.sll_ifindex = ifindex as i32;
            let r = libc::bind(fd, &sll as *const _ as *const libc::sockaddr, std::mem::size_of_val(&sll) as u32);
            assert_eq!(r, 0, "bind AF_PACKET");
            let tv = libc::timeval { tv_sec: 1, tv_usec: 0 };
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv as *const _ as *const libc::c_void, std::mem::size_of_val(&tv) as u32);
            fd
        }
    }

    fn nic(ns: &Netns) -> (u32, [u8; 6]) {
        let mut r = Rtnl::open_in(ns).unwrap();
        let l = r.links().unwrap().into_iter().find(|l| l.name == "eth0" || l.name == "br0").unwrap();
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
