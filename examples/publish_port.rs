//! `docker run -p 8080:80` as library calls, with real traffic.
//!
//! - **Parse**: the `-p 8080:80` spec is parsed ([`PortMapping::parse`]) and resolved to a
//!   host port by a [`PortAllocator`] (registry under the sandbox's private `/run`).
//! - **Firewall**: the network's base rules (masquerade, forward and
//!   isolation rules), then one element in the DNAT map and one in the forward-accept set
//!   ([`Nftables::publish`], one atomic nf_tables batch; the hairpin masquerade is part of
//!   the network's rules).
//! - **List**: `docker port` lines for the container.
//! - **Traffic**: a client in an "outside" namespace connects to the host address, port
//!   8080, and reaches the TCP server on port 80 in the container, which answers with a line.
//!
//! Topology (all inside a throwaway sandbox):
//!
//! ```text
//! outside: eth0 192.0.2.2/24 --veth-- host: uplink 192.0.2.1/24
//! host: docker0 172.17.0.1/16 --veth-- container: eth0 172.17.0.2/16, default via 172.17.0.1
//! ```
//!
//! Equivalent commands (Docker, then what it amounts to with `ip` and `nft`):
//!
//! ```text
//! docker run -d -p 8080:80 IMAGE            # a server on port 80
//! docker port C                             # 80/tcp -> 0.0.0.0:8080
//! curl http://192.0.2.1:8080/               # from another machine
//!
//! ip link add docker0 type bridge stp_state 0; ip addr add 172.17.0.1/16 dev docker0
//! ip link add veth0c1 type veth peer name eth0 netns C; ip link set veth0c1 master docker0 up
//! ip -n C addr add 172.17.0.2/16 dev eth0; ip -n C route add default via 172.17.0.1
//! sysctl -w net.ipv4.ip_forward=1
//! nft -f netplumb-base.nft                  # tables, maps, chains, the network's rules
//! nft add element ip netplumb ports_any { tcp . 8080 : 172.17.0.2 . 80 }
//! nft add element ip netplumb published { 172.17.0.2 . tcp . 80 . 8080 }
//! # teardown
//! nft delete element ip netplumb ports_any { tcp . 8080 }
//! nft delete element ip netplumb published { 172.17.0.2 . tcp . 80 . 8080 }
//! nft delete rule ...                       # every rule tagged "netplumb net=bridge"
//! nft delete table ip netplumb; nft delete table ip6 netplumb
//! ```
//!
//! Expected output (abridged; namespace inodes and interface indexes vary):
//!
//! ```text
//! [host] ip link add docker0 up type bridge stp_state 0
//! [host] ip address add 172.17.0.1/16 dev docker0
//! [host] ip link add veth0c1 up type veth peer name eth0 netns net:[4026532248]
//! [container] ip address add 172.17.0.2/16 dev eth0
//! [container] ip route add default via 172.17.0.1 dev eth0
//! ...
//! nft: tables ip/ip6 netplumb (...), network bridge on docker0: masquerade 172.17.0.0/16, ...
//!   -> tables ["ip", "ip6"], networks ["bridge"] with [9] rules
//! parse "-p 8080:80" -> 8080:80/tcp: tcp host address default (0.0.0.0), host port 8080, container port 80
//! port registry /run/netplumb/ports: 0.0.0.0:8080/tcp reserved
//! docker port c1: 80/tcp -> 0.0.0.0:8080
//! [outside] connect 192.0.2.1:8080 before publishing: refused or timed out (Connection refused (os error 111))
//! nft add element ip netplumb ports_any { tcp . 8080 : 172.17.0.2 . 80 }
//! nft add element ip netplumb published { 172.17.0.2 . tcp . 80 . 8080 }
//!   -> published: ["bridge: tcp 0.0.0.0:8080 -> 172.17.0.2:80"]
//! [outside] connect 192.0.2.1:8080 -> "hello from 172.17.0.2:80, you are 192.0.2.2"
//! -- teardown
//! nft delete element ip netplumb ports_any { tcp . 8080 }
//! nft delete element ip netplumb published { 172.17.0.2 . tcp . 80 . 8080 }
//! nft delete rule ... (every rule and element tagged "netplumb net=bridge")
//! nft delete table ip netplumb; nft delete table ip6 netplumb
//! port registry /run/netplumb/ports: 0.0.0.0:8080/tcp released
//! teardown done: no netplumb tables left, registry empty
//! ```
//!
//! The container sees the real client address (192.0.2.2): inbound traffic is DNATed, not
//! masqueraded. On failure the teardown still runs, the error is printed and the exit
//! status is 1.
//!
//! Nothing on the machine changes: every namespace, the tables and the registry live in
//! the sandbox and vanish with it, and the teardown also runs when a step fails. Run with
//! `cargo run --example publish_port` as root.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use netplumb::addr::Addr;
use netplumb::firewall::{Firewall, NetworkRules, Nftables, PortRule};
use netplumb::link::{Bridge, LinkSet, Veth};
use netplumb::netns::Sandbox;
use netplumb::ports::{port_lines, HostPorts, PortAllocator, PortMapping, PublishedPort};
use netplumb::route::Route;
use netplumb::sysctl::Sysctl;
use netplumb::{Netns, Request, Rtnl};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const NETWORK: &str = "bridge";
const BRIDGE: &str = "docker0";
const GATEWAY: &str = "172.17.0.1";
const CONTAINER: &str = "172.17.0.2";
const HOST_UPLINK: &str = "192.0.2.1";
const OUTSIDE: &str = "192.0.2.2";
const SPEC: &str = "8080:80";
/// The port registry's folder: under `/run`, which is the sandbox's private tmpfs.
const REGISTRY: &str = "/run/netplumb/ports";

/// Prints the request as the `ip` command it stands for, then runs it.
fn run(label: &str, r: &mut Rtnl, req: &impl Request) -> netplumb::Result<()> {
    println!("[{label}] {req}");
    r.execute(req)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address literal")
}

/// What the scenario has set up so far, for the teardown.
#[derive(Default)]
struct Done {
    network: bool,
    ports: Vec<PublishedPort>,
    rules: Vec<PortRule>,
}

/// A namespace reached from the host by a veth: `host_end` in the host, `eth0` inside with
/// `addr`, and a default route via `gw` when given.
fn attach(
    host: &mut Rtnl,
    label: &str,
    host_end: &str,
    addr: &str,
    gw: Option<&str>,
) -> Res<Netns> {
    let ns = Netns::new()?;
    run(
        "host",
        host,
        &Veth::new(host_end).peer("eth0").peer_netns(&ns).up(),
    )?;
    let mut r = Rtnl::open_in(&ns)?;
    let eth0 = r.link("eth0")?;
    run(label, &mut r, &LinkSet::new("lo").up())?;
    run(label, &mut r, &LinkSet::new(&eth0).up())?;
    run(label, &mut r, &Addr::new(&eth0, addr.parse()?))?;
    if let Some(gw) = gw {
        run(label, &mut r, &Route::default_v4().via(ip(gw)).dev(&eth0))?;
    }
    Ok(ns)
}

/// A TCP server on port 80 in `ns` that answers each connection with one line.
fn serve(ns: &Netns) -> Res<()> {
    let l = ns.run(|| TcpListener::bind("0.0.0.0:80"))??;
    println!("[container] listening on 0.0.0.0:80");
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let peer = c
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let _ = writeln!(c, "hello from {CONTAINER}:80, you are {peer}");
        }
    });
    Ok(())
}

/// Connects from `ns` to `to` and reads one line.
fn call(ns: &Netns, to: SocketAddr) -> Res<std::io::Result<String>> {
    Ok(ns.run(|| {
        let s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut line = String::new();
        BufReader::new(s.take(256)).read_line(&mut line)?;
        Ok(line.trim_end().to_owned())
    })?)
}

fn scenario(s: &Sandbox, fw: &mut Nftables, alloc: &PortAllocator, done: &mut Done) -> Res<()> {
    let host_ns = s.host();
    let mut host = Rtnl::open_in(host_ns)?;
    run("host", &mut host, &LinkSet::new("lo").up())?;
    println!("[host] sysctl -w {}=1", Sysctl::IpForward);
    Sysctl::IpForward.set_bool(host_ns, true)?;

    // The bridge network and one container on it.
    run("host", &mut host, &Bridge::new(BRIDGE).stp(false).up())?;
    let br = host.link(BRIDGE)?;
    run(
        "host",
        &mut host,
        &Addr::new(&br, format!("{GATEWAY}/16").parse()?),
    )?;
    let container = attach(
        &mut host,
        "container",
        "veth0c1",
        &format!("{CONTAINER}/16"),
        Some(GATEWAY),
    )?;
    run(
        "host",
        &mut host,
        &LinkSet::new("veth0c1").controller(br.index),
    )?;
    println!("  (if{} is {BRIDGE})", br.index);
    serve(&container)?;

    // The "outside": another machine on the host's uplink.
    let outside = attach(
        &mut host,
        "outside",
        "uplink",
        &format!("{OUTSIDE}/24"),
        None,
    )?;
    let up = host.link("uplink")?;
    run(
        "host",
        &mut host,
        &Addr::new(&up, format!("{HOST_UPLINK}/24").parse()?),
    )?;

    // Firewall, first half: the network's base rules.
    let net = NetworkRules::new(NETWORK, BRIDGE).subnet("172.17.0.0/16".parse()?);
    println!("nft: tables ip/ip6 netplumb (maps ports, ports_any; sets published, bridges; base chains), network {NETWORK} on {BRIDGE}: masquerade 172.17.0.0/16, hairpin, forward rules");
    fw.add_network(&net)?;
    done.network = true;
    let st = fw.state()?;
    println!(
        "  -> tables {:?}, networks {:?} with {:?} rules",
        st.families, st.networks, st.rules
    );

    // Parse: the spec, parsed and given a host port.
    let mapping = PortMapping::parse(SPEC)?;
    let host_ports = match mapping.host_ports {
        HostPorts::Range(r) => r.to_string(),
        HostPorts::Any => "any free".into(),
    };
    let host_ip = mapping
        .host_ip
        .map_or("default (0.0.0.0)".into(), |a| a.to_string());
    println!(
        "parse \"-p {SPEC}\" -> {mapping}: {} host address {host_ip}, host port {host_ports}, container port {}",
        mapping.proto, mapping.container_ports
    );
    let published = alloc.publish(&[mapping])?;
    done.ports.clone_from(&published);
    for p in &published {
        println!(
            "port registry {REGISTRY}: {}/{} reserved",
            p.host_addr(),
            p.proto
        );
    }
    // List: `docker port`.
    for line in port_lines(&published) {
        println!("docker port c1: {line}");
    }

    let to = SocketAddr::new(ip(HOST_UPLINK), published[0].host_port);
    match call(&outside, to)? {
        Ok(line) => return Err(format!("{to} answered before publishing: {line:?}").into()),
        Err(e) => println!("[outside] connect {to} before publishing: refused or timed out ({e})"),
    }

    // Firewall, second half: one element per map, one atomic batch.
    let rules: Vec<PortRule> = published.iter().map(|p| rule(p, ip(CONTAINER))).collect();
    for r in &rules {
        println!("{}", nft_element("add", r));
    }
    fw.publish(&rules)?;
    done.rules.clone_from(&rules);
    println!(
        "  -> published: {:?}",
        fw.state()?
            .ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );

    // Traffic: through the published port.
    let line = call(&outside, to)??;
    println!("[outside] connect {to} -> {line:?}");
    let want = format!("hello from {CONTAINER}:80, you are {OUTSIDE}");
    if line != want {
        return Err(format!("unexpected answer {line:?}, wanted {want:?}").into());
    }
    Ok(())
}

/// The firewall rule of a published port of the container at `container`.
fn rule(p: &PublishedPort, container: IpAddr) -> PortRule {
    let r = PortRule::new(NETWORK, p.proto, p.host_port, container, p.container_port);
    if p.host_ip.is_unspecified() {
        r
    } else {
        r.host_ip(p.host_ip)
    }
}

/// `nft add|delete element ...` lines for one published port.
fn nft_element(verb: &str, r: &PortRule) -> String {
    let fam = if r.container_ip.is_ipv4() {
        "ip"
    } else {
        "ip6"
    };
    let value = if verb == "add" {
        format!(" : {} . {}", r.container_ip, r.container_port)
    } else {
        String::new()
    };
    let key = match r.host_ip {
        Some(h) => format!("ports {{ {} . {h} . {}{value} }}", r.proto, r.host_port),
        None => format!("ports_any {{ {} . {}{value} }}", r.proto, r.host_port),
    };
    format!(
        "nft {verb} element {fam} netplumb {key}\nnft {verb} element {fam} netplumb published {{ {} . {} . {} . {} }}",
        r.container_ip, r.proto, r.container_port, r.host_port
    )
}

/// Undoes what `done` records, in reverse order; runs after a failure too. Returns the
/// first error, after trying every step.
fn teardown(fw: &mut Nftables, alloc: &PortAllocator, done: &Done) -> Res<()> {
    let mut first: Option<Box<dyn std::error::Error + Send + Sync>> = None;
    let mut note = |r: Res<()>| {
        if let Err(e) = r {
            eprintln!("teardown step failed: {e}");
            first.get_or_insert(e);
        }
    };
    println!("-- teardown");
    for r in &done.rules {
        println!("{}", nft_element("delete", r));
    }
    note(fw.unpublish(&done.rules).map_err(Into::into));
    if done.network {
        println!("nft delete rule ... (every rule and element tagged \"netplumb net={NETWORK}\")");
        note(fw.remove_network(NETWORK).map_err(Into::into));
    }
    println!("nft delete table ip netplumb; nft delete table ip6 netplumb");
    note(fw.flush().map_err(Into::into));
    for p in &done.ports {
        println!(
            "port registry {REGISTRY}: {}/{} released",
            p.host_addr(),
            p.proto
        );
    }
    note(alloc.release(&done.ports).map_err(Into::into));
    let left = fw.state().map(|s| s.families).unwrap_or_default();
    let registry = alloc.published().map(|p| p.len()).unwrap_or(usize::MAX);
    if left.is_empty() && registry == 0 {
        println!("teardown done: no netplumb tables left, registry empty");
    } else {
        note(Err(format!(
            "left behind: tables {left:?}, {registry} registry entries"
        )
        .into()));
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn main() {
    let r = netplumb::netns::sandbox(|s| -> Res<()> {
        let mut fw = Nftables::open_in(s.host())?;
        let alloc = PortAllocator::new(s.host()).registry_dir(REGISTRY);
        let mut done = Done::default();
        let result = scenario(s, &mut fw, &alloc, &mut done);
        if let Err(e) = &result {
            eprintln!("error: {e}");
        }
        let cleanup = teardown(&mut fw, &alloc, &done);
        result.and(cleanup)
    });
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("publish_port failed: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!(
                "publish_port needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN) to make its sandbox: {e}"
            );
            std::process::exit(1);
        }
    }
}
