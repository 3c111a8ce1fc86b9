//! A fault at every step of `create_network`, `connect`, `disconnect`, `disconnect_many`
//! and `remove_network`, for each firewall backend: after the failure the sandbox is
//! exactly as it was before the call. "Exactly" is a snapshot of
//! - the host namespace and every container namespace: links (index, name, kind, up,
//!   MTU, MAC, controller, group, bridge and port settings), addresses, routes of every
//!   table, neighbours, the bridge FDB, and the forwarding sysctls;
//! - the firewall, read back three ways: the backend's own summary, `nft list ruleset`,
//!   and for the iptables backend `iptables-save`/`ip6tables-save`;
//! - the IPAM networks (with their allocation cursors) and leases, the host-port
//!   registry, the records, and the containers' files (names and contents);
//! - the number of open file descriptors of this process.
//!
//! The tests of this file run one at a time (they count file descriptors). They need the
//! test-only feature `_fault-injection` (`required-features` in Cargo.toml).

#![cfg(feature = "store")]

mod common;

use common::no_dad;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use netplumb::fault;
#[cfg(feature = "iptables")]
use netplumb::firewall::AnyFirewall;
use netplumb::firewall::{Backend, Firewall, Proto};
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::sysctl::Sysctl;
use netplumb::{Error, ErrorKind, Netns, Rtnl};

/// Held by each test: the file-descriptor counts would see other tests' descriptors.
static SERIAL: Mutex<()> = Mutex::new(());

const STATE: &str = "/run/netplumb-faults";

/// One test's world: the host, its containers and their files folders.
struct World {
    host: Host,
    ns: Netns,
    ctrs: Vec<(String, Netns)>,
    files: Vec<PathBuf>,
}

impl World {
    fn new(s: &Sandbox, backend: Backend) -> World {
        no_dad(s.host());
        World {
            host: Host::open_with(s.host(), STATE, backend).unwrap(),
            ns: s.host().clone(),
            ctrs: Vec::new(),
            files: Vec::new(),
        }
    }

    /// A container `id` with its own namespace and files folder (its name is its id).
    fn ctr(&mut self, id: &str) -> Container {
        let ns = match self.ctrs.iter().find(|(n, _)| n == id) {
            Some((_, ns)) => ns.clone(),
            None => {
                let ns = Netns::new().unwrap();
                no_dad(&ns);
                self.ctrs.push((id.to_owned(), ns.clone()));
                ns
            }
        };
        let dir = PathBuf::from(format!("/run/files/{id}"));
        if !self.files.contains(&dir) {
            std::fs::create_dir_all(&dir).unwrap();
            self.files.push(dir.clone());
        }
        Container::new(id, &ns).name(id).files(dir)
    }

    fn snapshot(&mut self) -> String {
        let mut out = String::new();
        let mut host = Rtnl::open_in(&self.ns).unwrap();
        kernel(&mut out, "host", &mut host, &self.ns);
        for (id, ns) in &self.ctrs {
            kernel(&mut out, id, &mut Rtnl::open_in(ns).unwrap(), ns);
        }
        for key in [Sysctl::IpForward, Sysctl::Ipv6Forward] {
            writeln!(out, "{key} = {}", key.get(&self.ns).unwrap().trim()).unwrap();
        }
        firewall(&mut out, &mut self.host);
        records(&mut out, &mut self.host);
        for dir in &self.files {
            files(&mut out, dir);
        }
        writeln!(out, "open fds: {}", open_fds()).unwrap();
        out
    }
}

/// IPv6 link-local and multicast addresses and routes: the kernel adds them by itself,
/// some time after a link gets carrier.
fn kernel_made(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80 || a.is_multicast(),
        IpAddr::V4(a) => a.is_multicast(),
    }
}

/// The links, addresses, routes, neighbours and FDB entries of one namespace.
fn kernel(out: &mut String, what: &str, r: &mut Rtnl, ns: &Netns) {
    for l in r.links().unwrap() {
        writeln!(
            out,
            "{what} link {} {} {:?} up={} mtu={} mac={:?} ctl={:?} group={} port={:?} br={:?}",
            l.index,
            l.name,
            l.kind,
            l.is_up(),
            l.mtu,
            l.mac.map(|m| m.to_string()),
            l.controller,
            l.group,
            l.port,
            l.bridge.map(|b| (b.stp, b.vlan_filtering, b.forward_delay)),
        )
        .unwrap();
    }
    for a in r.addrs(None).unwrap() {
        if !kernel_made(a.addr.addr()) {
            writeln!(
                out,
                "{what} addr {} {} {:?} {:?} {:?} scope {}",
                a.index, a.addr, a.peer, a.broadcast, a.label, a.scope
            )
            .unwrap();
        }
    }
    let mut routes: Vec<String> = r
        .routes()
        .unwrap()
        .iter()
        .filter(|r| !kernel_made(r.dst.addr()))
        .map(|r| {
            format!(
                "{what} route {} via {:?} oif {:?} metric {:?} table {} proto {} type {} src {:?}",
                r.dst, r.via, r.oif, r.metric, r.table, r.protocol, r.kind, r.src
            )
        })
        .collect();
    routes.sort();
    out.extend(routes.iter().map(|l| format!("{l}\n")));
    for args in [&["neigh", "show", "nud", "all"][..], &["fdb", "show"]] {
        let bin = if args[0] == "fdb" { "bridge" } else { "ip" };
        for line in run(ns, bin, args).lines() {
            // Multicast entries come and go with IPv6 multicast listening.
            let mcast = ["33:33:", "01:00:5e:", "ff02:", "fe80:"];
            // A learned FDB entry (no `permanent`, `static` or `self`) records a frame the
            // bridge saw, whenever a container happened to send one: traffic, not state.
            let learned = bin == "bridge"
                && !["permanent", "static", " self"]
                    .iter()
                    .any(|k| line.contains(k));
            if !learned && !mcast.iter().any(|m| line.contains(m)) {
                writeln!(out, "{what} {bin} {line}").unwrap();
            }
        }
    }
}

/// Runs `bin args` inside `ns`; its standard output.
fn run(ns: &Netns, bin: &str, args: &[&str]) -> String {
    common::need(bin);
    let out = ns
        .spawn(Command::new(bin).args(args).stdout(Stdio::piped()))
        .unwrap()
        .wait_with_output()
        .unwrap();
    assert!(out.status.success(), "{bin} {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `nft list ruleset` without the tables `skip` names, with the elements of each set one
/// per line, sorted (a set has no order; the kernel lists it in hash order).
fn nft_text(ns: &Netns, skip: &[&str]) -> String {
    let text = run(ns, "nft", &["list", "ruleset"]);
    let (mut out, mut elems, mut in_elems) = (String::new(), Vec::<String>::new(), false);
    let mut skipping = false;
    for line in text.lines() {
        if skip.contains(&line) {
            skipping = true;
        }
        if skipping {
            skipping = line != "}";
            continue;
        }
        // iptables-nft's rules count packets.
        let line = &strip_counter(line);
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("elements = {") {
            in_elems = true;
            elems.extend(rest.split(',').map(|e| e.trim().to_owned()));
        } else if in_elems {
            elems.extend(l.split(',').map(|e| e.trim().to_owned()));
        } else {
            writeln!(out, "{line}").unwrap();
        }
        if in_elems && l.ends_with('}') {
            in_elems = false;
            let last = elems.pop().unwrap_or_default();
            elems.push(last.trim_end_matches('}').trim().to_owned());
            elems.retain(|e| !e.is_empty());
            elems.sort();
            for e in elems.drain(..) {
                writeln!(out, "    element {e}").unwrap();
            }
        }
    }
    out
}

/// A line without its `counter packets N bytes M`.
fn strip_counter(line: &str) -> String {
    match line.find("counter packets ") {
        Some(i) => {
            let rest = &line[i..];
            let end = rest
                .match_indices(' ')
                .nth(4)
                .map_or(rest.len(), |(j, _)| j);
            format!("{}counter{}", &line[..i], &rest[end..])
        }
        None => line.to_owned(),
    }
}

fn firewall(out: &mut String, h: &mut Host) {
    let state = h.firewall().state().unwrap();
    writeln!(out, "firewall {state:?}").unwrap();
    let ns = h.netns().clone();
    #[cfg(feature = "iptables")]
    if let AnyFirewall::Iptables(fw) = h.firewall() {
        let legacy = fw.version().contains("legacy");
        for bin in ["iptables-save", "ip6tables-save"] {
            let bin = if legacy {
                bin.replacen("tables", "tables-legacy", 1)
            } else {
                bin.to_owned()
            };
            out.push_str(&iptables_text(&bin, &run(&ns, &bin, &[])));
        }
        // Our rules, read back above; nf_tables has iptables-nft's view of the same.
        out.push_str(&nft_text(&ns, IPTABLES_NFT_TABLES));
        return;
    }
    out.push_str(&nft_text(&ns, &[]));
}

/// The tables `iptables-nft` keeps its rules in.
#[cfg(feature = "iptables")]
const IPTABLES_NFT_TABLES: &[&str] = &[
    "table ip nat {",
    "table ip filter {",
    "table ip6 nat {",
    "table ip6 filter {",
];

/// `iptables-save` output as a list of rules per chain, comparable across an undo:
/// - the table headers, `COMMIT` and the built-in chains with an `ACCEPT` policy are left
///   out: they are there once anything used the table, and mean nothing;
/// - a rule an undo added again may come back at another place among the rules of
///   *other* networks and ports (which match other traffic), so each chain lists its
///   untagged rules in order, then the rules of each tag (network or port) in order,
///   tags sorted. The order of one network's own rules is kept and compared.
#[cfg(feature = "iptables")]
fn iptables_text(bin: &str, text: &str) -> String {
    use std::collections::BTreeMap;
    let (mut out, mut table) = (String::new(), "");
    /// A chain's untagged rules, and its rules by tag.
    type Chain<'a> = (Vec<&'a str>, BTreeMap<&'a str, Vec<&'a str>>);
    let mut chains: BTreeMap<String, Chain> = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(t) = l.strip_prefix('*') {
            table = t;
        } else if let Some(c) = l.strip_prefix(':') {
            let builtin = c.split(' ').nth(1) != Some("-");
            if !(builtin && c.split(' ').nth(1) == Some("ACCEPT")) {
                writeln!(out, "{bin} {table} chain {}", c.split(" [").next().unwrap()).unwrap();
            }
        } else if let Some(r) = l.strip_prefix("-A ") {
            let chain = r.split(' ').next().unwrap();
            let e = chains.entry(format!("{table} {chain}")).or_default();
            match r.split_once("--comment \"") {
                Some((_, tag)) => {
                    e.1.entry(tag.split('"').next().unwrap())
                        .or_default()
                        .push(r)
                }
                None => e.0.push(r),
            }
        }
    }
    for (chain, (plain, tagged)) in chains {
        for r in plain.iter().chain(tagged.values().flatten()) {
            writeln!(out, "{bin} {chain}: {r}").unwrap();
        }
    }
    out
}

fn records(out: &mut String, h: &mut Host) {
    for n in h.ipam().networks().unwrap() {
        writeln!(
            out,
            "ipam {} {} gw {:?} range {} reserved {:?} cursor {:?} released {:?}",
            n.name, n.subnet, n.gateway, n.range, n.reserved, n.cursor, n.last_released
        )
        .unwrap();
        for l in h.ipam().leases(&n.name).unwrap() {
            writeln!(out, "lease {} {} {}", n.name, l.address, l.owner).unwrap();
        }
    }
    let ports = h.published_ports().unwrap();
    writeln!(out, "registry {ports:?}").unwrap();
    for n in h.networks().unwrap() {
        writeln!(out, "record {n:?}").unwrap();
    }
    for a in h.attachments(None).unwrap() {
        writeln!(out, "record {a:?}").unwrap();
    }
}

fn files(out: &mut String, dir: &Path) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let text = std::fs::read_to_string(dir.join(&n)).unwrap();
        writeln!(out, "file {}/{n}: {text:?}", dir.display()).unwrap();
    }
}

/// This process's open files, by what they are (their numbers may differ).
fn open_fds() -> String {
    let mut fds: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| !p.starts_with("/proc/") || !p.ends_with("/fd"))
        // Sockets and pipes by kind: the handles may reopen theirs (same count).
        .map(|p| match p.split_once(":[") {
            Some((kind @ ("socket" | "pipe"), _)) => kind.to_owned(),
            _ => p,
        })
        .collect();
    fds.sort();
    format!("{} {fds:?}", fds.len())
}

/// Fails with the lines that differ.
fn assert_same(before: &str, after: &str, what: &str) {
    if before == after {
        return;
    }
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let mut diff = String::new();
    for l in b.iter().filter(|l| !a.contains(l)) {
        writeln!(diff, "- {l}").unwrap();
    }
    for l in a.iter().filter(|l| !b.contains(l)) {
        writeln!(diff, "+ {l}").unwrap();
    }
    if diff.is_empty() {
        // The same lines in another order: show where the two differ.
        let top = b.iter().zip(&a).take_while(|(x, y)| x == y).count();
        let bottom = b[top..]
            .iter()
            .rev()
            .zip(a[top..].iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        writeln!(diff, "reordered; before:").unwrap();
        for l in &b[top..b.len() - bottom] {
            writeln!(diff, "  {l}").unwrap();
        }
        writeln!(diff, "after:").unwrap();
        for l in &a[top..a.len() - bottom] {
            writeln!(diff, "  {l}").unwrap();
        }
    }
    panic!("{what} left the sandbox changed:\n{diff}");
}

/// Arms a fault at each step of `op` in turn, and checks after each failure that the
/// snapshot is `before`; returns the number of steps (the call with no fault left).
fn every_step(
    w: &mut World,
    what: &str,
    mut op: impl FnMut(&mut World) -> netplumb::Result<()>,
) -> usize {
    let before = w.snapshot();
    for n in 0.. {
        fault::fail_at(Some(n));
        let r = op(w);
        fault::fail_at(None);
        match r {
            Ok(()) => return n,
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains("injected fault"), "{what}: step {n}: {e}");
                assert!(
                    matches!(e, Error::Injected { step, .. } if step == n),
                    "{what}: step {n}: {e:?}"
                );
                assert!(!e.is_busy(), "{what}: step {n}: {e}");
                assert_eq!(e.kind(), ErrorKind::Other, "{what}: step {n}: {e}");
                assert_same(&before, &w.snapshot(), &format!("{what} failing at {msg}"));
            }
        }
    }
    unreachable!()
}

/// Runs `body` against `backend` in a fresh sandbox, one test at a time.
fn with_backend(name: &str, backend: Backend, body: fn(&mut World)) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    common::sandbox(name, |s| {
        if let Err(e) = netplumb::firewall::open(backend, s.host()) {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "{name}: cannot open the firewall backend under CI=true: {e}"
            );
            common::skip(name, format_args!("cannot open the firewall backend: {e}"));
            return;
        }
        body(&mut World::new(s, backend))
    });
}

/// One `#[test]` per backend.
macro_rules! per_backend {
    ($name:ident) => {
        mod $name {
            use netplumb::firewall::Backend;
            #[test]
            fn nftables() {
                super::with_backend(
                    concat!(stringify!($name), "::nftables"),
                    Backend::Nftables,
                    super::$name,
                );
            }
            #[cfg(feature = "iptables")]
            #[test]
            fn iptables() {
                super::with_backend(
                    concat!(stringify!($name), "::iptables"),
                    Backend::Iptables,
                    super::$name,
                );
            }
        }
    };
}

per_backend!(create);
per_backend!(connect);
per_backend!(disconnect);
per_backend!(disconnect_many);
per_backend!(disconnect_deferred);
per_backend!(remove);

fn net(name: &str, v4: &str) -> NetworkConfig {
    NetworkConfig::new(name).subnet(v4.parse().unwrap())
}

/// `n1`: IPv4 and IPv6, ICC off (so `--link`s change its rules); `n2`: plain IPv4.
fn n1() -> NetworkConfig {
    net("n1", "10.60.0.0/24")
        .subnet("fd00:60::/64".parse().unwrap())
        .ipv6(true)
        .icc(false)
}

/// `n1` and `n2`, `peer` on n1 (files, an exposed and a published port), `other` on n2.
fn base(w: &mut World) {
    w.host.create_network(&n1()).unwrap();
    w.host.create_network(&net("n2", "10.61.0.0/24")).unwrap();
    let peer = w
        .ctr("peer")
        .expose(Proto::Tcp, 80)
        .publish("8081:80".parse().unwrap());
    w.host.connect("n1", &peer).unwrap();
    let other = w.ctr("other").publish("9090:80".parse().unwrap());
    w.host.connect("n2", &other).unwrap();
}

/// `c1`: files, a `--link` to `peer`, an alias, an exposed port, and two published ports
/// (`port` to 80/tcp, and any port to 53/udp).
fn c1(w: &mut World, port: u16) -> Container {
    w.ctr("c1")
        .link("peer")
        .alias("web")
        .expose(Proto::Tcp, 80)
        .publish(format!("{port}:80").parse().unwrap())
        .publish("53/udp".parse().unwrap())
}

fn create(w: &mut World) {
    // The first network of a pristine sandbox (the firewall's tables come and go with
    // it), then one beside it, then one on a bridge that is already there (and down).
    let n = every_step(w, "create (first)", |w| {
        w.host.create_network(&n1()).map(drop)
    });
    assert!(n >= 8, "create has {n} steps");
    every_step(w, "create (second)", |w| {
        w.host.create_network(&net("n2", "10.61.0.0/24")).map(drop)
    });
    let mut r = Rtnl::open_in(&w.ns).unwrap();
    r.execute(&netplumb::link::Bridge::new("br-pre")).unwrap();
    every_step(w, "create (existing bridge)", |w| {
        let cfg = net("n3", "10.62.0.0/24").bridge("br-pre");
        w.host.create_network(&cfg).map(drop)
    });
    eprintln!("create: {n} steps");
}

fn connect(w: &mut World) {
    base(w);
    let c = c1(w, 8080);
    let n = every_step(w, "connect", |w| w.host.connect("n1", &c).map(drop));
    assert!(n >= 12, "connect has {n} steps");
    // Its second network: its files are there already, and must come back as they were.
    let again = c1(w, 8082).ifname("eth1");
    every_step(w, "connect (second network)", |w| {
        w.host.connect("n2", &again).map(drop)
    });
    eprintln!("connect: {n} steps");
}

fn disconnect(w: &mut World) {
    base(w);
    let (c, again) = (c1(w, 8080), c1(w, 8082).ifname("eth1"));
    w.host.connect("n1", &c).unwrap();
    w.host.connect("n2", &again).unwrap();
    let n = every_step(w, "disconnect", |w| w.host.disconnect("n1", "c1"));
    assert!(n >= 6, "disconnect has {n} steps");
    // Done: no veth, lease, port or peer entry of c1 on n1 is left.
    let left = w.host.attachments(Some("n1")).unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    let leases = w.host.ipam().leases("n1").unwrap();
    assert!(
        leases.iter().all(|l| l.owner.container == "peer"),
        "{leases:?}"
    );
    let fw = w.host.firewall().state().unwrap();
    assert!(fw.ports.iter().all(|p| p.host_port != 8080), "{fw:?}");
    let mut r = Rtnl::open_in(&w.ns).unwrap();
    let veths = r
        .links()
        .unwrap()
        .iter()
        .filter(|l| l.is_kind("veth"))
        .count();
    assert_eq!(veths, 3, "peer, other and c1 on n2");
    let hosts = std::fs::read_to_string("/run/files/peer/hosts").unwrap();
    assert!(!hosts.contains("c1"), "{hosts}");
    assert_eq!(w.host.attachments(Some("n2")).unwrap().len(), 2);
    eprintln!("disconnect: {n} steps");
}

fn disconnect_many(w: &mut World) {
    base(w);
    for id in ["c1", "c2", "c3"] {
        let c = w.ctr(id).publish("80".parse().unwrap()).link("peer");
        w.host.connect("n1", &c).unwrap();
    }
    let n = every_step(w, "disconnect_many", |w| {
        w.host.disconnect_many("n1", &["c1", "c2", "c3", "nobody"])
    });
    assert!(n >= 7, "disconnect_many has {n} steps");
    let left: Vec<String> = w
        .host
        .attachments(Some("n1"))
        .unwrap()
        .into_iter()
        .map(|a| a.container)
        .collect();
    assert_eq!(left, ["peer"]);
    eprintln!("disconnect_many: {n} steps");
}

/// As `disconnect_many`, with deferred link deletion: a fault at any step leaves the
/// links as they were (up, in their groups, not deleted later by the reaper).
fn disconnect_deferred(w: &mut World) {
    base(w);
    for id in ["c1", "c2"] {
        let c = w.ctr(id).publish("80".parse().unwrap());
        w.host.connect("n1", &c).unwrap();
    }
    w.host.defer_link_deletion(true).unwrap();
    let n = every_step(w, "disconnect_many (deferred)", |w| {
        let r = w.host.disconnect_many("n1", &["c1", "c2"]);
        // What a failed call left must not be deleted later either.
        w.host.flush_link_deletions().unwrap();
        r
    });
    assert!(n >= 7, "disconnect_many has {n} steps");
    let mut r = Rtnl::open_in(&w.ns).unwrap();
    let veths = r
        .links()
        .unwrap()
        .into_iter()
        .filter(|l| l.is_kind("veth"))
        .count();
    assert_eq!(veths, 2, "peer and other");
    eprintln!("disconnect_many (deferred): {n} steps");
}

fn remove(w: &mut World) {
    base(w);
    let (c, again) = (c1(w, 8080), c1(w, 8082).ifname("eth1"));
    w.host.connect("n1", &c).unwrap();
    w.host.connect("n2", &again).unwrap();
    let n = every_step(w, "remove (force)", |w| w.host.remove_network("n1", true));
    assert!(n >= 10, "remove has {n} steps");
    assert!(w.host.network("n1").unwrap_err().is_not_found());
    // A network on a bridge netplumb did not make: the bridge stays, its gateway goes.
    let mut r = Rtnl::open_in(&w.ns).unwrap();
    r.execute(&netplumb::link::Bridge::new("br-pre").up())
        .unwrap();
    w.host
        .create_network(&net("n3", "10.62.0.0/24").bridge("br-pre"))
        .unwrap();
    let d = w.ctr("d1").publish("80".parse().unwrap());
    w.host.connect("n3", &d).unwrap();
    every_step(w, "remove (existing bridge)", |w| {
        w.host.remove_network("n3", true)
    });
    let br = r.link("br-pre").unwrap();
    assert!(r
        .addrs(Some((&br).into()))
        .unwrap()
        .iter()
        .all(|a| a.addr.addr().is_ipv6()));
    eprintln!("remove: {n} steps");
}
