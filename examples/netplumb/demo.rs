//! `netplumb demo`: Docker's default bridge network, two containers that reach each other,
//! a published port reached from another machine, and outbound NAT, each step printed as
//! the `docker` command and its `ip`/`nft` equivalent with its time, then torn down and
//! checked clean. Everything happens inside `netplumb::netns::sandbox` (fresh network and
//! mount namespaces with a private `/run`), so nothing on the machine changes; the global
//! `--state-dir` and `--netns-dir` are not used.
//!
//! ```text
//! outside: eth0 192.0.2.2/24 --veth-- host: uplink 192.0.2.1/24      ("another machine")
//! host: docker0 172.17.0.1/16 --veth-- web:    eth0 172.17.0.2/16    (-p 8080:80)
//!                             --veth-- client: eth0 172.17.0.3/16
//! ```

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use netplumb::addr::Addr;
use netplumb::firewall::Firewall;
use netplumb::link::{LinkSet, Veth};
use netplumb::netns::Sandbox;
use netplumb::network::inspect::to_json_pretty;
use netplumb::network::{Attachment, Container, Host, NetworkConfig, NetworkInfo, NetworkMode};
use netplumb::ports::port_lines;
use netplumb::{Netns, Rtnl};

use crate::records::container_id;
use crate::Res;

const INDENT: &str = "            ";

fn fmt_time(d: Duration) -> String {
    match d.as_micros() {
        us if us < 1000 => format!("{us} µs"),
        us if us < 1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        us => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// Runs one step, then prints `[time] title` and the lines the step returns.
fn step<T>(title: &str, f: impl FnOnce() -> Res<(T, Vec<String>)>) -> Res<T> {
    let t = Instant::now();
    let (out, lines) = f()?;
    println!("[{:>9}] {title}", fmt_time(t.elapsed()));
    for l in lines {
        println!("{INDENT}{l}");
    }
    Ok(out)
}

/// The tour; an error is printed by `main` with a non-zero exit.
pub fn demo() -> Res<ExitCode> {
    println!("netplumb demo: Docker's bridge networking as library calls, inside throwaway");
    println!("namespaces (a private network and mount namespace with its own /run).\n");
    let t = Instant::now();
    match netplumb::netns::sandbox(|s| tour(s).map_err(|e| e.to_string())) {
        Ok(Ok(())) => {
            println!(
                "\nsandbox closed: its namespaces, links, rules and /run are gone; total {}",
                fmt_time(t.elapsed())
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => Err(format!("demo failed: {e}").into()),
        Err(e) => Err(format!("cannot create throwaway namespaces (run as root): {e}").into()),
    }
}

fn tour(s: &Sandbox) -> Res {
    let mut host = Host::open_in(s.host(), "/run/netplumb-demo")?;
    let outside = uplink(s)?;
    let net = step(
        "docker network create --subnet 172.17.0.0/16 bridge",
        || {
            let info = host
                .create_network(&NetworkConfig::new("bridge").subnet("172.17.0.0/16".parse()?))?;
            let lines = network_lines(&info);
            Ok((info, lines))
        },
    )?;
    let (web_ns, web) = run(s, &mut host, &net, "web", &["8080:80"])?;
    let (client_ns, client) = run(s, &mut host, &net, "client", &[])?;
    let (web_ip, client_ip) = (web.addrs[0].addr(), client.addrs[0].addr());
    step(
        "docker exec -d web <server on :80>; docker exec -d client <server on :80>",
        || {
            serve(&web_ns, "web", 80)?;
            serve(&client_ns, "client", 80)?;
            Ok((
                (),
                vec!["TCP servers that answer \"hello from NAME, you are PEER\"".into()],
            ))
        },
    )?;
    exchange("client", &client_ns, SocketAddr::new(web_ip, 80), client_ip)?;
    exchange("web", &web_ns, SocketAddr::new(client_ip, 80), web_ip)?;
    ping(&client_ns, web_ip)?;
    step("docker port web", || Ok(((), port_lines(&web.ports))))?;
    let uplink_ip: IpAddr = "192.0.2.1".parse()?;
    exchange(
        "outside",
        &outside,
        SocketAddr::new(uplink_ip, 8080),
        "192.0.2.2".parse()?,
    )?;
    serve(&outside, "outside", 9000)?;
    exchange("web", &web_ns, "192.0.2.2:9000".parse()?, uplink_ip)?;
    let json = step("docker network inspect bridge", || {
        Ok((to_json_pretty(&[host.inspect_network("bridge")?]), vec![]))
    })?;
    println!("{json}");
    teardown(s, &mut host, &[&web, &client])?;
    check_clean(s, &mut host)
}

/// "Another machine": namespace `outside` on a veth uplink, 192.0.2.2 to the host's 192.0.2.1.
fn uplink(s: &Sandbox) -> Res<Netns> {
    step(
        "ip netns add outside  # another machine on the host's uplink",
        || {
            let o = s.netns_dir().create("outside")?;
            let mut r = Rtnl::open_in(s.host())?;
            let veth = Veth::new("uplink").peer("eth0").peer_netns(&o).up();
            r.execute(&veth)?;
            let up = r.link("uplink")?;
            let addr = Addr::new(&up, "192.0.2.1/24".parse()?);
            r.execute(&addr)?;
            let mut ro = Rtnl::open_in(&o)?;
            ro.execute(&LinkSet::new("lo").up())?;
            let eth0 = ro.link("eth0")?;
            ro.execute(&LinkSet::new(&eth0).up())?;
            ro.execute(&Addr::new(&eth0, "192.0.2.2/24".parse()?))?;
            let lines = vec![
                veth.to_string(),
                addr.to_string(),
                "ip -n outside addr add 192.0.2.2/24 dev eth0; ip -n outside link set eth0 up"
                    .into(),
            ];
            Ok((o, lines))
        },
    )
}

fn network_lines(n: &NetworkInfo) -> Vec<String> {
    let (br, subnet) = (&n.bridge, n.subnets[0]);
    vec![
        format!("ip link add {br} type bridge stp_state 0; ip link set {br} up"),
        format!(
            "ip addr add {} dev {br}",
            n.bridge_addrs
                .first()
                .map(ToString::to_string)
                .unwrap_or_default()
        ),
        "sysctl -w net.ipv4.ip_forward=1".into(),
        format!(
            "nft: masquerade {subnet} oifname != {br}; forward, isolation and ICC rules for {br}"
        ),
    ]
}

/// `docker run --name NAME -p ...`: a named namespace, connected to the network.
fn run(
    s: &Sandbox,
    host: &mut Host,
    net: &NetworkInfo,
    name: &str,
    ports: &[&str],
) -> Res<(Netns, Attachment)> {
    let flags: String = ports.iter().map(|p| format!(" -p {p}")).collect();
    step(&format!("docker run --name {name}{flags}"), || {
        let ns = host.container_netns(
            &NetworkMode::Bridge(net.name.clone()),
            name,
            Some(s.netns_dir()),
        )?;
        let mut c = Container::new(&container_id(name), &ns).name(name);
        for p in ports {
            c = c.publish(p.parse()?);
        }
        let a = host.connect(&net.name, &c)?;
        let (v, addr, gw) = (&a.host_veth, a.addrs[0], net.gateways[0]);
        let mac = a.mac.map(|m| format!(" address {m}")).unwrap_or_default();
        let mut lines = vec![
            format!("ip netns add {name}; ip -n {name} link set lo up"),
            format!("ip link add {v} type veth peer name eth0{mac} netns {name}"),
            format!(
                "ip link set {v} master {} up; bridge link set dev {v} hairpin on",
                net.bridge
            ),
            format!("ip -n {name} link set eth0 up; ip -n {name} addr add {addr} dev eth0"),
            format!("ip -n {name} route add default via {gw}"),
        ];
        for p in &a.ports {
            lines.push(format!(
                "nft: dnat {} dport {} to {}:{}  ({p})",
                p.proto,
                p.host_port,
                addr.addr(),
                p.container_port
            ));
        }
        Ok(((ns, a), lines))
    })
}

/// A TCP server in `ns` on `port` that answers each connection with who it is and who
/// called; it runs until the process ends.
fn serve(ns: &Netns, who: &'static str, port: u16) -> Res {
    let l = ns.run(|| TcpListener::bind(("0.0.0.0", port)))??;
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let peer = c
                .peer_addr()
                .map(|p| p.ip().to_string())
                .unwrap_or_default();
            let _ = c.write_all(format!("hello from {who}, you are {peer}").as_bytes());
        }
    });
    Ok(())
}

/// A TCP exchange from `ns` to `to`; the server must see the caller as `seen_as`.
fn exchange(from: &str, ns: &Netns, to: SocketAddr, seen_as: IpAddr) -> Res {
    step(&format!("docker exec {from} <connect {to}>"), || {
        let reply = ns.run(|| -> std::io::Result<String> {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
            c.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut out = String::new();
            c.read_to_string(&mut out)?;
            Ok(out)
        })??;
        if !reply.ends_with(&format!("you are {seen_as}")) {
            return Err(format!(
                "{to} answered {reply:?}; expected the caller to be seen as {seen_as}"
            )
            .into());
        }
        let why = match to.port() {
            8080 => "  (published port: DNAT to 172.17.0.2:80, the client address kept)",
            9000 => "  (outbound NAT: masqueraded to the host's address)",
            _ => "  (over docker0)",
        };
        Ok(((), vec![format!("{reply:?}{why}")]))
    })
}

/// `ping` between containers when the machine has it (it needs a raw socket; TCP above
/// shows the same path).
fn ping(ns: &Netns, to: IpAddr) -> Res {
    let mut cmd = Command::new("ping");
    cmd.args(["-c", "1", "-W", "2", &to.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let Ok(child) = ns.spawn(&mut cmd) else {
        println!("[{:>9}] docker exec client ping -c 1 {to}: no ping on this machine (TCP above took the same path)", "skipped");
        return Ok(());
    };
    step(&format!("docker exec client ping -c 1 {to}"), || {
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("bytes from"))
            .unwrap_or("no reply")
            .to_owned();
        if !out.status.success() {
            return Err(format!("ping {to}: {line}").into());
        }
        Ok(((), vec![line]))
    })
}

fn teardown(s: &Sandbox, host: &mut Host, ctrs: &[&Attachment]) -> Res {
    let names: Vec<&str> = ctrs.iter().map(|a| a.name.as_str()).collect();
    step(&format!("docker rm -f {}", names.join(" ")), || {
        let mut lines = Vec::new();
        for a in ctrs {
            host.disconnect(&a.network, &a.container)?;
            s.netns_dir().delete(&a.name)?;
            for p in &a.ports {
                lines.push(format!(
                    "nft: delete dnat {} dport {}",
                    p.proto, p.host_port
                ));
            }
            lines.push(format!(
                "ip link del {}; ip netns del {}",
                a.host_veth, a.name
            ));
        }
        Ok(((), lines))
    })?;
    step("docker network rm bridge", || {
        host.remove_network("bridge", false)?;
        Ok((
            (),
            vec![
                "nft: delete the rules of network bridge".into(),
                "ip link del docker0".into(),
            ],
        ))
    })?;
    step("ip link del uplink; ip netns del outside; nft delete table ip netplumb; nft delete table ip6 netplumb", || {
        Rtnl::open_in(s.host())?.execute(&netplumb::link::LinkDel::new("uplink"))?;
        s.netns_dir().delete("outside")?;
        host.firewall().flush()?;
        Ok(((), vec![]))
    })
}

/// Fails unless the sandbox's host namespace is back to its first state.
fn check_clean(s: &Sandbox, host: &mut Host) -> Res {
    let links: Vec<String> = Rtnl::open_in(s.host())?
        .links()?
        .into_iter()
        .map(|l| l.name)
        .collect();
    let fw = host.firewall().state()?;
    let named = s.netns_dir().list()?;
    let (nets, atts) = (host.networks()?.len(), host.attachments(None)?.len());
    let clean =
        links == ["lo"] && fw.families.is_empty() && named.is_empty() && nets == 0 && atts == 0;
    println!(
        "[{:>9}] check: links {links:?}, nft tables {:?}, named namespaces {named:?}, {nets} networks, {atts} attachments: {}",
        "",
        fw.families,
        if clean { "clean" } else { "NOT CLEAN" }
    );
    if clean {
        Ok(())
    } else {
        Err("the sandbox was not left clean".into())
    }
}
