//! `firewall::VxlanGuard` against the real kernel, with real VXLAN traffic between three
//! underlay hosts.
//!
//! Topology (every test builds its own, inside its own sandbox; the sandbox's namespace
//! is the underlay switch):
//!
//! ```text
//! sandbox: bridge `under` -- a: eth0 192.0.2.1/24 2001:db8::1/64
//!                         -- b: eth0 192.0.2.2/24 2001:db8::2/64
//!                         -- c: eth0 192.0.2.3/24 2001:db8::3/64
//! VNI 42 (IPv4 underlay): a 10.42.0.1 <-> b 10.42.0.2, c 10.42.0.3 (c points at a only)
//! VNI 43 (IPv4 underlay): a 10.43.0.1 <-> c 10.43.0.3 (never guarded)
//! VNI 60 (IPv6 underlay): a 10.60.0.1 <-> b 10.60.0.2, c 10.60.0.3
//! ```
//!
//! The guard runs in `a`. Reachability is a TCP connection over the overlay whose server
//! reports the client address it saw.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};

use netplumb::addr::Addr;
use netplumb::firewall::VxlanGuard;
use netplumb::link::{Bridge, LinkSet, MacAddr, Veth, Vxlan};
use netplumb::neigh::Fdb;
use netplumb::netns::Sandbox;
use netplumb::{Netns, Rtnl};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct World {
    a: Netns,
    b: Netns,
    c: Netns,
    /// The TCP port of the peer-reporting server in `a`.
    port: u16,
}

/// Underlay host `name` with address suffix `n`, on the sandbox's bridge.
fn underlay_host(s: &Sandbox, name: &str, n: u8) -> Netns {
    let ns = s.netns_dir().create(name).unwrap();
    common::no_dad(&ns);
    let mut sw = common::rtnl(s);
    let port = format!("u{name}");
    sw.execute(&Veth::new(&port).peer("eth0").peer_netns(&ns).up())
        .unwrap();
    let under = sw.link("under").unwrap();
    sw.execute(&LinkSet::new(port.as_str()).controller(under.index))
        .unwrap();
    let mut r = Rtnl::open_in(&ns).unwrap();
    r.execute(&LinkSet::new("lo").up()).unwrap();
    let eth0 = r.link("eth0").unwrap();
    r.execute(&LinkSet::new(&eth0).up()).unwrap();
    r.execute(&Addr::new(
        &eth0,
        format!("192.0.2.{n}/24").parse().unwrap(),
    ))
    .unwrap();
    if ipv6_available(&ns) {
        r.execute(&Addr::new(&eth0, format!("2001:db8::{n}/64").parse().unwrap()).nodad())
            .unwrap();
    }
    ns
}

fn ipv6_available(ns: &Netns) -> bool {
    ns.run(|| std::path::Path::new("/proc/sys/net/ipv6/conf/all").exists())
        .unwrap()
}

/// A VXLAN device `vx<vni>` in `ns`: learning off, port 4789, `local`, static default
/// FDB entries towards `remotes`, overlay address `10.<vni>.0.<n>/24`.
fn vxlan(ns: &Netns, vni: u32, local: &str, remotes: &[&str], n: u8) {
    let mut r = Rtnl::open_in(ns).unwrap();
    let eth0 = r.link("eth0").unwrap();
    let name = format!("vx{vni}");
    r.execute(
        &Vxlan::new(&name, vni)
            .port(netplumb::link::VXLAN_PORT)
            .learning(false)
            .local(ip(local))
            .dev(eth0.index)
            .up(),
    )
    .unwrap();
    let vx = r.link(name.as_str()).unwrap();
    for remote in remotes {
        r.execute(&Fdb::new(&vx, MacAddr([0; 6])).dst(ip(remote)))
            .unwrap();
    }
    r.execute(&Addr::new(
        &vx,
        format!("10.{vni}.0.{n}/24").parse().unwrap(),
    ))
    .unwrap();
}

fn world(s: &Sandbox) -> World {
    let mut sw = common::rtnl(s);
    sw.execute(&LinkSet::new("lo").up()).unwrap();
    sw.execute(&Bridge::new("under").stp(false).up()).unwrap();
    let (a, b, c) = (
        underlay_host(s, "a", 1),
        underlay_host(s, "b", 2),
        underlay_host(s, "c", 3),
    );
    vxlan(&a, 42, "192.0.2.1", &["192.0.2.2", "192.0.2.3"], 1);
    vxlan(&b, 42, "192.0.2.2", &["192.0.2.1"], 2);
    vxlan(&c, 42, "192.0.2.3", &["192.0.2.1"], 3);
    vxlan(&a, 43, "192.0.2.1", &["192.0.2.3"], 1);
    vxlan(&c, 43, "192.0.2.3", &["192.0.2.1"], 3);
    let port = common::serve_peer(&a, SocketAddr::from(([0, 0, 0, 0], 0)));
    World { a, b, c, port }
}

impl World {
    /// Whether `from` reaches `a` over VNI `vni`; `a` must see the right client.
    fn reaches(&self, from: &Netns, vni: u32) -> bool {
        let to = SocketAddr::new(ip(&format!("10.{vni}.0.1")), self.port);
        match common::call_peer(from, to) {
            Some(seen) => {
                assert!(seen.starts_with(&format!("10.{vni}.0.")), "{seen}");
                true
            }
            None => false,
        }
    }

    /// Asserts that `from` reaches `a` over `vni` (a few tries: neighbour resolution
    /// may still be settling after a drop).
    fn assert_reaches(&self, from: &Netns, who: &str, vni: u32) {
        let ok = (0..3).any(|_| self.reaches(from, vni));
        assert!(ok, "{who} should reach a over VNI {vni}");
    }

    fn assert_blocked(&self, from: &Netns, who: &str, vni: u32) {
        assert!(
            !self.reaches(from, vni),
            "{who} should not reach a over VNI {vni}"
        );
    }
}

/// `nft ARGS` inside `ns`: its output, or `None` when `nft` is not installed (it is only a
/// witness; the library never runs it): the test goes on without it, counted as skipped
/// (a failure under `CI=true`).
fn nft(ns: &Netns, args: &[&str]) -> Option<String> {
    let mut cmd = Command::new(common::witness("nft")?);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = ns
        .spawn(&mut cmd)
        .expect("run nft")
        .wait_with_output()
        .expect("nft output");
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn guard(w: &World) -> VxlanGuard {
    VxlanGuard::open(&w.a).unwrap()
}

#[test]
fn only_registered_peers_reach_a_guarded_vni() {
    common::sandbox("only_registered_peers_reach_a_guarded_vni", |s| {
        let w = world(s);
        let (b, c) = (ip("192.0.2.2"), ip("192.0.2.3"));
        w.assert_reaches(&w.b, "b", 42);
        w.assert_reaches(&w.c, "c", 42);
        w.assert_reaches(&w.c, "c", 43);

        let mut g = guard(&w);
        g.guard(42).unwrap();
        g.allow(42, b).unwrap();
        assert_eq!(g.vnis().unwrap(), [42]);
        assert_eq!(g.peers().unwrap(), [(42, b)]);
        let before = g.dropped().unwrap();
        w.assert_reaches(&w.b, "b", 42);
        w.assert_blocked(&w.c, "c", 42);
        w.assert_reaches(&w.c, "c (VNI 43 is not guarded)", 43);
        assert!(g.dropped().unwrap() > before, "the rule's counter counts");
        if let Some(list) = nft(&w.a, &["list", "table", "ip", VxlanGuard::TABLE]) {
            eprintln!("{list}");
            assert!(
                list.contains(
                    "udp dport 4789 @th,96,24 @vnis ip saddr . @th,96,24 != @peers counter packets"
                ),
                "{list}"
            );
            assert!(!list.contains("counter packets 0 "), "{list}");
            assert!(
                !list.contains("@th,96,24 >= 0x0"),
                "only ip6 needs that: {list}"
            );
        }

        // The reconcile loop's call flips it, atomically.
        g.set_peers(42, &[c]).unwrap();
        assert_eq!(g.peers().unwrap(), [(42, c)]);
        w.assert_reaches(&w.c, "c", 42);
        w.assert_blocked(&w.b, "b", 42);

        g.revoke(42, c).unwrap();
        assert!(g.peers().unwrap().is_empty());
        w.assert_blocked(&w.c, "c (revoked)", 42);

        g.allow(42, b).unwrap();
        g.unguard(42).unwrap();
        assert!(g.vnis().unwrap().is_empty());
        assert!(g.peers().unwrap().is_empty(), "unguard forgets the peers");
        w.assert_reaches(&w.b, "b", 42);
        w.assert_reaches(&w.c, "c (unguarded)", 42);

        g.guard(42).unwrap();
        w.assert_blocked(&w.b, "b (guarded, no peers)", 42);
        g.remove().unwrap();
        w.assert_reaches(&w.b, "b (removed)", 42);
        w.assert_reaches(&w.c, "c (removed)", 42);
        if let Some(tables) = nft(&w.a, &["list", "tables"]) {
            assert!(!tables.contains(VxlanGuard::TABLE), "{tables}");
        }
        assert!(g.vnis().unwrap().is_empty());
        assert_eq!(g.dropped().unwrap(), 0);
    });
}

#[test]
fn changes_are_idempotent_and_input_is_checked() {
    common::sandbox("changes_are_idempotent_and_input_is_checked", |s| {
        let ns = s.host().clone();
        let mut g = VxlanGuard::open(&ns).unwrap();
        assert!(g.vnis().unwrap().is_empty(), "open creates nothing");
        g.remove().unwrap();

        let bad = 1 << 24;
        let p = ip("192.0.2.2");
        let errors = [
            g.guard(bad).unwrap_err(),
            g.unguard(bad).unwrap_err(),
            g.allow(bad, p).unwrap_err(),
            g.revoke(bad, p).unwrap_err(),
            g.set_peers(bad, &[p]).unwrap_err(),
        ];
        for e in errors {
            assert!(e.is_invalid(), "{e}");
            assert!(
                matches!(e, netplumb::Error::InvalidInput { field: "vni", .. }),
                "{e:?}"
            );
        }
        let e = g.allow(1, ip("0.0.0.0")).unwrap_err();
        assert!(matches!(
            e,
            netplumb::Error::InvalidInput { field: "peer", .. }
        ));
        if let Some(tables) = nft(&ns, &["list", "tables"]) {
            assert!(tables.is_empty(), "nothing made by bad input: {tables}");
        }

        // Peers may come before the guard.
        g.allow(7, p).unwrap();
        assert!(g.vnis().unwrap().is_empty());
        for _ in 0..2 {
            g.guard(7).unwrap();
            g.guard((1 << 24) - 1).unwrap();
            g.allow(7, p).unwrap();
            g.allow(7, ip("::ffff:192.0.2.3")).unwrap();
            g.revoke(9, p).unwrap();
            g.unguard(9).unwrap();
        }
        assert_eq!(g.vnis().unwrap(), [7, (1 << 24) - 1]);
        assert_eq!(g.peers().unwrap(), [(7, p), (7, ip("192.0.2.3"))]);
        if let Some(list) = nft(&ns, &["list", "ruleset"]) {
            assert_eq!(list.matches("@th,96,24 @vnis").count(), 1, "{list}");
            assert!(!list.contains("table ip6"), "no IPv6 peer yet: {list}");
        }
        g.set_peers(7, &[]).unwrap();
        assert!(g.peers().unwrap().is_empty());

        // Another port: the rules are rebuilt, the elements kept.
        g.allow(7, p).unwrap();
        let mut g2 = VxlanGuard::open(&ns).unwrap().port(8472);
        g2.guard(8).unwrap();
        assert_eq!(g2.vnis().unwrap(), [7, 8, (1 << 24) - 1]);
        assert_eq!(g2.peers().unwrap(), [(7, p)]);
        if let Some(list) = nft(&ns, &["list", "ruleset"]) {
            assert!(list.contains("udp dport 8472 "), "{list}");
            assert!(!list.contains("udp dport 4789 "), "{list}");
        }
        let e = VxlanGuard::open(&ns).unwrap().port(0).guard(1).unwrap_err();
        assert!(matches!(
            e,
            netplumb::Error::InvalidInput { field: "port", .. }
        ));

        g.remove().unwrap();
        g.remove().unwrap();
        assert!(g2.peers().unwrap().is_empty());
        if let Some(tables) = nft(&ns, &["list", "tables"]) {
            assert!(tables.is_empty(), "{tables}");
        }

        // Guarding IPv6 underlays before any IPv6 peer, where the kernel has IPv6.
        let mut g6 = VxlanGuard::open(&ns).unwrap().ipv6(true);
        g6.guard(5).unwrap();
        if let Some(tables) = nft(&ns, &["list", "tables"]) {
            assert!(tables.contains("table ip netplumb_vxlan"), "{tables}");
            assert!(tables.contains("table ip6 netplumb_vxlan"), "{tables}");
        }
        g6.remove().unwrap();
        assert!(g6.vnis().unwrap().is_empty());
    });
}

#[test]
fn ipv6_underlay() {
    common::sandbox("ipv6_underlay", |s| {
        let w = world(s);
        if !ipv6_available(&w.a) {
            common::not_applicable("ipv6_underlay", "the kernel has no IPv6");
            return;
        }
        let (a6, b6, c6) = ("2001:db8::1", "2001:db8::2", "2001:db8::3");
        vxlan(&w.a, 60, a6, &[b6, c6], 1);
        vxlan(&w.b, 60, b6, &[a6], 2);
        vxlan(&w.c, 60, c6, &[a6], 3);
        w.assert_reaches(&w.b, "b", 60);
        w.assert_reaches(&w.c, "c", 60);

        let mut g = guard(&w);
        g.guard(60).unwrap();
        if let Some(list) = nft(&w.a, &["list", "tables"]) {
            assert!(!list.contains("ip6"), "no IPv6 peer yet: {list}");
        }
        g.allow(60, ip(b6)).unwrap();
        w.assert_reaches(&w.b, "b", 60);
        w.assert_blocked(&w.c, "c", 60);
        assert!(g.dropped().unwrap() > 0);
        if let Some(list) = nft(&w.a, &["list", "table", "ip6", VxlanGuard::TABLE]) {
            eprintln!("{list}");
            assert!(
                list.contains(
                    "udp dport 4789 @th,96,24 @vnis ip6 saddr . @th,96,24 != @peers counter"
                ),
                "{list}"
            );
            assert!(
                list.contains("udp dport 4789 @th,96,24 >= 0x0 accept"),
                "{list}"
            );
        }
        // The VNI's IPv4 listing is unchanged by the IPv6 peer.
        assert_eq!(g.peers().unwrap(), [(60, ip(b6))]);
        g.set_peers(60, &[ip(c6)]).unwrap();
        w.assert_reaches(&w.c, "c", 60);
        w.assert_blocked(&w.b, "b", 60);
        g.remove().unwrap();
        w.assert_reaches(&w.b, "b (removed)", 60);
    });
}

/// An IPv6 first fragment that ends before the VNI must not smuggle a frame past the
/// guard (IPv6 is reassembled only after the input hook).
#[test]
fn ipv6_fragments_cannot_hide_the_vni() {
    common::sandbox("ipv6_fragments_cannot_hide_the_vni", |s| {
        let w = world(s);
        if !ipv6_available(&w.a) {
            common::not_applicable(
                "ipv6_fragments_cannot_hide_the_vni",
                "the kernel has no IPv6",
            );
            return;
        }
        vxlan(&w.a, 60, "2001:db8::1", &["2001:db8::2"], 1);
        let mac = Rtnl::open_in(&w.a)
            .unwrap()
            .link("vx60")
            .unwrap()
            .mac
            .unwrap();
        let inject = |split| raw::inner_udp_arrives(&w.c, &w.a, mac.octets(), split);
        assert!(inject(false), "crafted frame arrives unguarded");
        assert!(inject(true), "crafted fragments arrive unguarded");
        let mut g = guard(&w);
        g.guard(60).unwrap();
        g.allow(60, ip("2001:db8::2")).unwrap();
        assert!(!inject(false), "a whole datagram from c is dropped");
        let before = g.dropped().unwrap();
        assert!(!inject(true), "fragments from c are dropped");
        assert!(g.dropped().unwrap() > before, "by a counting rule");
        // Without the two fragment rules the hole is there (witness: nft removes them);
        // the next change puts them back.
        if let Some(listing) = nft(
            &w.a,
            &["-a", "list", "chain", "ip6", VxlanGuard::TABLE, "input"],
        ) {
            for line in listing
                .lines()
                .filter(|l| l.contains("udp dport") && !l.contains("@peers"))
            {
                if let Some((_, handle)) = line.split_once("# handle ") {
                    let args = [
                        "delete",
                        "rule",
                        "ip6",
                        VxlanGuard::TABLE,
                        "input",
                        "handle",
                        handle,
                    ];
                    nft(&w.a, &args).unwrap();
                }
            }
            assert!(inject(true), "the rules that close the hole are gone");
            g.guard(60).unwrap();
            assert!(!inject(true), "a damaged table is rebuilt");
            assert_eq!(
                g.peers().unwrap(),
                [(60, ip("2001:db8::2"))],
                "with its elements"
            );
        }
        g.allow(60, ip("2001:db8::3")).unwrap();
        assert!(inject(false), "c is a peer now");
        assert!(
            !inject(true),
            "a first fragment that hides the VNI, from anyone"
        );
    });
}

/// Hand-made VXLAN over IPv6 from `c` (2001:db8::3) to `a` (2001:db8::1), VNI 60: an
/// inner IPv4/UDP datagram 10.60.0.3:4444 -> 10.60.0.1:5555, optionally split after the
/// outer UDP header into two IPv6 fragments.
mod raw {
    #![allow(unsafe_code)]

    use std::net::{Ipv6Addr, UdpSocket};
    use std::time::Duration;

    use netplumb::Netns;
    use nix::libc;

    fn sum(data: &[u8], mut acc: u32) -> u32 {
        for ch in data.chunks(2) {
            acc += u32::from(u16::from_be_bytes([ch[0], *ch.get(1).unwrap_or(&0)]));
        }
        acc
    }

    fn fold(mut acc: u32) -> u16 {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    /// The outer UDP datagram (header, VXLAN header, inner Ethernet frame).
    fn datagram(src: Ipv6Addr, dst: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
        let mut inner = Vec::new();
        inner.extend_from_slice(&mac);
        inner.extend_from_slice(&[2, 0, 0, 0, 0, 3, 0x08, 0x00]);
        let mut ip4 = vec![0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip4.extend_from_slice(&[10, 60, 0, 3, 10, 60, 0, 1]);
        let c = fold(sum(&ip4, 0)).to_be_bytes();
        ip4[10..12].copy_from_slice(&c);
        inner.extend_from_slice(&ip4);
        inner.extend_from_slice(&[0x11, 0x5c, 0x15, 0xb3, 0, 12, 0, 0]);
        inner.extend_from_slice(b"frag");
        let mut d = vec![0x30, 0x39, 0x12, 0xb5, 0, 0, 0, 0];
        d.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 60, 0]);
        d.extend_from_slice(&inner);
        let len = d.len() as u16;
        d[4..6].copy_from_slice(&len.to_be_bytes());
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src.octets());
        pseudo.extend_from_slice(&dst.octets());
        pseudo.extend_from_slice(&[0, 0, 0, len as u8, 0, 0, 0, 17]);
        let c = fold(sum(&d, sum(&pseudo, 0))).to_be_bytes();
        d[6..8].copy_from_slice(&c);
        d
    }

    /// IPv6 packets carrying `d`: one, or two fragments split after 8 bytes.
    fn packets(src: Ipv6Addr, dst: Ipv6Addr, d: &[u8], split: bool) -> Vec<Vec<u8>> {
        let header = |next: u8, len: usize| {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(len as u16).to_be_bytes());
            h.extend_from_slice(&[next, 64]);
            h.extend_from_slice(&src.octets());
            h.extend_from_slice(&dst.octets());
            h
        };
        if !split {
            let mut p = header(17, d.len());
            p.extend_from_slice(d);
            return vec![p];
        }
        let frag = |off: u16, more: bool, part: &[u8]| {
            let mut p = header(44, 8 + part.len());
            let o = (off << 3) | u16::from(more);
            p.extend_from_slice(&[17, 0]);
            p.extend_from_slice(&o.to_be_bytes());
            p.extend_from_slice(&0x6e70_6c62u32.to_be_bytes());
            p.extend_from_slice(part);
            p
        };
        vec![frag(0, true, &d[..8]), frag(1, false, &d[8..])]
    }

    fn send(ns: &Netns, dst: Ipv6Addr, packets: &[Vec<u8>]) {
        let fd = ns
            .run(|| {
                // SAFETY: a plain socket(2) call.
                unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_RAW) }
            })
            .unwrap();
        assert!(fd >= 0, "raw IPv6 socket");
        // SAFETY: sockaddr_in6 is fully initialised; buffers outlive the calls; fd is ours.
        unsafe {
            let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
            sa.sin6_family = libc::AF_INET6 as u16;
            sa.sin6_addr.s6_addr = dst.octets();
            for p in packets {
                let n = libc::sendto(
                    fd,
                    p.as_ptr() as *const libc::c_void,
                    p.len(),
                    0,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa) as u32,
                );
                assert_eq!(n, p.len() as isize, "sendto");
            }
            libc::close(fd);
        }
    }

    /// Whether the inner datagram reaches a UDP socket on 10.60.0.1:5555 in `to`.
    pub fn inner_udp_arrives(from: &Netns, to: &Netns, mac: [u8; 6], split: bool) -> bool {
        let (src, dst) = (
            "2001:db8::3".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        let rx = to
            .run(|| UdpSocket::bind("10.60.0.1:5555"))
            .unwrap()
            .unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(1000)))
            .unwrap();
        send(
            from,
            dst,
            &packets(src, dst, &datagram(src, dst, mac), split),
        );
        let mut b = [0u8; 16];
        matches!(rx.recv(&mut b), Ok(4) if &b[..4] == b"frag")
    }
}
