//! The `netplumb` CLI example driven end to end, one process per command, the way a user
//! types it: create a network, run two containers with a published port, `port`,
//! `inspect`, traffic between them and from another machine, `exec`, `rm`, `network rm`,
//! errors, and the `demo`.
//!
//! Every command runs inside a sandbox: it is spawned from the sandbox's thread, so it
//! inherits the sandbox's network namespace (the "host") and its mount namespace, whose
//! private `/run` holds the records (`--state-dir /run/cli-test/state`) and the named
//! namespaces (`--netns-dir /run/cli-test/netns`). The binary is built (or found up to
//! date) with `cargo build --example netplumb` before the sandbox starts.

#![cfg(feature = "serde")]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use netplumb::netns::Sandbox;
use netplumb::{Netns, NetnsDir};
use serde_json::Value;

const STATE: &str = "/run/cli-test/state";
const NETNS: &str = "/run/cli-test/netns";

/// The `netplumb` example's binary.
fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::example_binary("netplumb"))
}

/// Runs `netplumb --state-dir .. --netns-dir .. ARGS` from the calling (sandbox) thread.
fn np_argv(args: &[&str]) -> Output {
    Command::new(binary())
        .args(["--state-dir", STATE, "--netns-dir", NETNS])
        .args(args)
        .output()
        .expect("spawn netplumb")
}

/// [`np_argv`] with a command line split at spaces, as typed.
fn np(line: &str) -> Output {
    np_argv(&line.split_whitespace().collect::<Vec<_>>())
}

/// `netplumb LINE` must succeed; returns its stdout.
fn ok(line: &str) -> String {
    let o = np(line);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        o.status.success(),
        "netplumb {line} failed ({}):\nstdout: {out}\nstderr: {err}",
        o.status
    );
    out.into_owned()
}

/// `netplumb LINE` must fail with a message on stderr; returns it.
fn fails(line: &str) -> String {
    let o = np(line);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        !o.status.success(),
        "netplumb {line} succeeded: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.starts_with("Error: "),
        "netplumb {line}: message on stderr, got {err:?}"
    );
    err
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn outside(s: &Sandbox) -> Netns {
    common::outside(s)
}

/// A server in `ns` on port 80 that answers every connection with the caller's address.
fn serve_peer(ns: &Netns) {
    common::serve_peer(ns, SocketAddr::from(([0, 0, 0, 0], 80)));
}

fn call(ns: &Netns, to: &str) -> Option<String> {
    common::call_peer(ns, to.parse().unwrap())
}

/// Network create, two containers with a published port, `port`, `network ls`; returns
/// the ids of the network and the containers.
fn create_and_run() -> (String, String, String) {
    let net_id = ok("network create --subnet 10.123.0.0/24 mynet");
    assert!(is_id(net_id.trim()), "network id: {net_id:?}");
    let a = ok(
        "run --name a --network mynet -p 8080:80 -p 127.0.0.1:8086:80 --add-host db.example:192.0.2.7 --dns 192.0.2.53",
    )
    .trim()
    .to_owned();
    let b = ok("run --name b --network mynet").trim().to_owned();
    assert!(is_id(&a) && is_id(&b) && a != b, "container ids: {a} {b}");
    assert_eq!(
        ok("port a"),
        "80/tcp -> 0.0.0.0:8080\n80/tcp -> 127.0.0.1:8086\n"
    );
    assert_eq!(ok("port a 80/tcp"), "0.0.0.0:8080\n127.0.0.1:8086\n");
    assert_eq!(ok("port b"), "");
    assert!(fails("port a 81").contains("No public port '81/tcp' published for a"));
    let ls = ok("network ls");
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines[0], "NETWORK ID     NAME      DRIVER    SCOPE");
    assert_eq!(
        lines[1],
        format!("{}   mynet     bridge    local", &net_id[..12])
    );
    (net_id.trim().to_owned(), a, b)
}

/// `network inspect` and `inspect` in Docker's shape, and the files `run` wrote.
fn inspects(net_id: &str, a: &str, b: &str) {
    let nets = json(&ok("network inspect mynet"));
    let n = &nets[0];
    assert_eq!(
        (n["Name"].as_str(), n["Id"].as_str()),
        (Some("mynet"), Some(net_id))
    );
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "10.123.0.0/24");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "10.123.0.1");
    assert_eq!(n["Containers"].as_object().unwrap().len(), 2, "{n}");
    assert_eq!(n["Containers"][a]["Name"], "a");
    assert_eq!(n["Containers"][a]["IPv4Address"], "10.123.0.2/24");
    assert_eq!(n["Containers"][a]["MacAddress"], "02:42:0a:7b:00:02");
    assert_eq!(n["Containers"][b]["IPv4Address"], "10.123.0.3/24");
    assert_eq!(
        n["Options"]["com.docker.network.bridge.default_bridge"],
        "false"
    );

    let ctrs = json(&ok("inspect a"));
    let c = &ctrs[0];
    assert_eq!(
        (c["Id"].as_str(), c["Name"].as_str()),
        (Some(a), Some("/a"))
    );
    assert_eq!(c["HostConfig"]["NetworkMode"], "mynet");
    let on = &c["NetworkSettings"]["Networks"]["mynet"];
    assert_eq!(
        (on["IPAddress"].as_str(), on["IPPrefixLen"].as_u64()),
        (Some("10.123.0.2"), Some(24))
    );
    assert_eq!(
        (on["Gateway"].as_str(), on["NetworkID"].as_str()),
        (Some("10.123.0.1"), Some(net_id))
    );
    assert_eq!(
        c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostIp"],
        "0.0.0.0"
    );
    assert_eq!(
        c["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        "8080"
    );
    assert_eq!(c["NetworkSettings"]["SandboxKey"], format!("{NETNS}/a"));
    let hosts = std::fs::read_to_string(c["HostsPath"].as_str().unwrap()).unwrap();
    assert!(
        hosts.contains("10.123.0.2") && hosts.contains("db.example"),
        "a's /etc/hosts: {hosts}"
    );
    let resolv = std::fs::read_to_string(c["ResolvConfPath"].as_str().unwrap()).unwrap();
    assert!(
        resolv.contains("nameserver 192.0.2.53"),
        "a's resolv.conf: {resolv}"
    );
}

/// Traffic between the containers, to the published port from outside, `exec`.
fn traffic(s: &Sandbox) {
    let dir = NetnsDir::new(NETNS);
    let (na, nb) = (dir.open("a").unwrap(), dir.open("b").unwrap());
    assert!(
        common::tcp_reaches(&na, "10.123.0.2:80".parse().unwrap(), &nb),
        "b reaches a"
    );
    assert!(
        common::tcp_reaches(&nb, "10.123.0.3:80".parse().unwrap(), &na),
        "a reaches b"
    );
    let out = outside(s);
    serve_peer(&na);
    assert_eq!(
        call(&out, "192.0.2.1:8080").as_deref(),
        Some("192.0.2.2"),
        "published port from outside"
    );
    assert_eq!(call(&nb, "10.123.0.2:80").as_deref(), Some("10.123.0.3"));
    // A port on 127.0.0.1 answers the host there (masqueraded to the gateway), and only
    // there; ::1 is refused with the reason, leaving nothing behind.
    assert_eq!(
        call(s.host(), "127.0.0.1:8086").as_deref(),
        Some("10.123.0.1"),
        "127.0.0.1 from the host"
    );
    assert_eq!(call(&out, "192.0.2.1:8086"), None, "not from outside");
    let err = fails("run --name c --network mynet -p [::1]:8087:80");
    assert!(err.contains("route_localnet"), "{err}");
    let dev = ok("exec a -- cat /proc/net/dev");
    assert!(
        dev.contains("eth0:") && !dev.contains("uplink"),
        "exec runs in a's namespace: {dev}"
    );
    assert_eq!(
        np_argv(&["exec", "b", "sh", "-c", "exit 3"]).status.code(),
        Some(3),
        "exit status passed on"
    );
    assert_eq!(np("exec a -- /no/such/program").status.code(), Some(127));
    assert_eq!(ok("netns list"), "a\nb\n");
}

#[test]
fn cli_end_to_end() {
    common::sandbox("cli_end_to_end", |s| {
        // The host's loopback, as on any machine: `-p 127.0.0.1:…` probes a socket there.
        common::rtnl(s)
            .execute(&netplumb::link::LinkSet::new("lo").up())
            .unwrap();
        let (net_id, a, b) = create_and_run();
        inspects(&net_id, &a, &b);
        traffic(s);
        assert!(fails("run --name a --network mynet").contains("is already in use by container"));
        assert!(fails("network rm mynet").contains("active endpoints"));
        assert!(
            fails("network create --subnet 10.123.0.0/25 other").contains("mynet"),
            "overlap"
        );
        assert_eq!(ok("rm a"), "a\n");
        assert_eq!(ok("rm b"), "b\n");
        assert_eq!(ok("rm a"), "a\n", "rm is idempotent");
        assert_eq!(ok("netns list"), "", "namespaces deleted");
        assert!(fails("port a").contains("No such container: a"));
        let n = json(&ok("network inspect mynet"));
        assert_eq!(
            n[0]["Containers"],
            serde_json::json!({}),
            "{a} gone from the network"
        );
        assert_eq!(ok("network rm mynet"), "mynet\n");
        assert_eq!(
            ok("network ls"),
            "NETWORK ID   NAME      DRIVER    SCOPE\n",
            "only the header (sized as tabwriter does)"
        );
        let err = fails("network rm nosuch");
        assert!(err.contains("network nosuch not found"), "{err}");
        assert!(np("network rm nosuch").stdout.is_empty());
        let err = fails("network inspect nosuch");
        assert!(err.contains("No such network: nosuch"), "{err}");
        let links = common::link_names(&mut common::rtnl(s));
        assert_eq!(
            links,
            ["lo"],
            "no bridge or veth left (the uplink went with the outside namespace)"
        );
    });
}

#[test]
fn cli_other_modes_and_option_errors() {
    common::sandbox("cli_other_modes_and_option_errors", |_s| {
        ok("run --name solo --network none --hostname h1 --dns 192.0.2.53 --add-host db.example:192.0.2.7");
        let dev = ok("exec solo cat /proc/net/dev");
        assert!(
            dev.contains("lo:") && !dev.contains("eth0"),
            "none: only lo: {dev}"
        );
        let c = json(&ok("inspect solo"));
        assert_eq!(c[0]["HostConfig"]["NetworkMode"], "none");
        assert_eq!(c[0]["HostConfig"]["Dns"][0], "192.0.2.53");
        assert_eq!(c[0]["Config"]["Hostname"], "h1");
        assert_eq!(c[0]["HostConfig"]["ExtraHosts"][0], "db.example:192.0.2.7");
        assert_eq!(c[0]["NetworkSettings"]["Networks"], serde_json::json!({}));
        ok("run --name side --network container:solo");
        assert_eq!(
            ok("netns list"),
            "solo\n",
            "container mode shares solo's namespace"
        );
        assert!(fails("run --name x --network none -p 80").contains("conflicting options"));
        assert!(fails("run --name y --network nosuch").contains("network nosuch not found"));
        assert!(fails("run --name z -p 80:80:80:80").contains("80:80:80:80"));
        assert!(fails("run --name ../etc --network none").contains("Invalid container name"));
        assert!(fails("run --name d --network none --dns dns.google").contains("dns.google"));
        assert!(fails("run --name h --network none --add-host web:1.2.3").contains("1.2.3"));
        assert_eq!(ok("netns list"), "solo\n", "failed runs leave nothing");
        ok("rm side solo");
        assert_eq!(ok("netns list"), "");
        // An IPv6-only network (Docker 28's --ipv4=false): no IPv4 subnet added.
        ok("network create --ipv4=false --ipv6 --subnet fd00:97::/64 v6only");
        let n = json(&ok("network inspect v6only"));
        assert_eq!(
            n[0]["IPAM"]["Config"],
            serde_json::json!([{"Subnet": "fd00:97::/64", "Gateway": "fd00:97::1"}]),
            "{n}"
        );
        ok("run --name six --network v6only -p 8092:80");
        assert_eq!(ok("port six"), "80/tcp -> [::]:8092\n");
        ok("rm six");
        ok("network rm v6only");
        assert!(fails("network create --ipv4=false v4off").contains("ipv6"));
    });
}

/// A bare named namespace joins a network too (`ip netns add` + `network connect`).
#[test]
fn cli_connect_a_named_namespace() {
    common::sandbox("cli_connect_a_named_namespace", |_s| {
        ok("network create --subnet 10.124.0.0/24 --icc=false n2");
        ok("netns add bare");
        ok("network connect n2 bare --ip 10.124.0.9");
        let n = json(&ok("network inspect n2"));
        assert_eq!(
            n[0]["Options"]["com.docker.network.bridge.enable_icc"],
            "false"
        );
        let ep = n[0]["Containers"]
            .as_object()
            .unwrap()
            .values()
            .next()
            .cloned()
            .unwrap();
        assert_eq!(
            (ep["Name"].as_str(), ep["IPv4Address"].as_str()),
            (Some("bare"), Some("10.124.0.9/24"))
        );
        assert!(fails("network connect n2 bare").contains("already exists in network n2"));
        ok("network disconnect n2 bare");
        assert!(fails("network disconnect n2 bare").contains("is not connected"));
        ok("netns del bare");
        ok("network rm n2");
    });
}

#[test]
fn cli_a_name_the_network_has_is_refused() {
    common::sandbox("cli_a_name_the_network_has_is_refused", |_s| {
        ok("network create --subnet 10.126.0.0/24 n4");
        ok("run --name web --network n4");
        // The record and the namespace are lost behind netplumb's back (no `gc` yet): the
        // network still has an endpoint named web, so a new web is refused, as Docker does,
        // and leaves nothing behind: after `gc` the name is free.
        std::fs::remove_dir_all(Path::new(STATE).join("containers/web")).unwrap();
        NetnsDir::new(NETNS).delete("web").unwrap();
        let err = fails("run --name web --network n4");
        assert!(
            err.contains("endpoint with name web already exists in network n4"),
            "{err}"
        );
        ok("gc");
        ok("run --name web --network n4");
        ok("rm web");
        ok("network rm n4");
    });
}

#[test]
fn cli_gc_after_a_namespace_vanished() {
    common::sandbox("cli_gc_after_a_namespace_vanished", |_s| {
        ok("network create --subnet 10.125.0.0/24 n3");
        ok("run --name gone --network n3 -p 9090:90");
        ok("run --name kept --network n3");
        // The namespace vanishes behind netplumb's back (as when a runtime crashes).
        NetnsDir::new(NETNS).delete("gone").unwrap();
        let report = ok("gc");
        assert!(report.contains("disconnected n3/"), "{report}");
        assert!(report.contains("forgot container gone"), "{report}");
        let n = json(&ok("network inspect n3"));
        let names: Vec<&str> = n[0]["Containers"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|c| c["Name"].as_str())
            .collect();
        assert_eq!(names, ["kept"]);
        assert_eq!(ok("gc"), "", "nothing left to collect");
        ok("rm kept");
        ok("network rm n3");
    });
}

#[test]
fn demo_runs_and_cleans_up() {
    common::sandbox("demo_runs_and_cleans_up", |_s| {
        let o = Command::new(binary())
            .arg("demo")
            .output()
            .expect("spawn demo");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "demo failed: {out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        for want in [
            "docker network create",
            "you are 172.17.0.3",
            "80/tcp -> 0.0.0.0:8080",
            "you are 192.0.2.2",
            "you are 192.0.2.1",
            ": clean",
        ] {
            assert!(out.contains(want), "demo output lacks {want:?}:\n{out}");
        }
    });
}

/// `--firewall` picks the backend, and `network inspect` says which one holds a network.
#[test]
fn cli_firewall_backend_choice() {
    common::sandbox("cli_firewall_backend_choice", |_s| {
        ok("--firewall nftables network create --subnet 10.124.0.0/24 fwnft");
        let n = json(&ok("network inspect fwnft"));
        assert_eq!(n[0]["Options"]["netplumb.firewall"], "nftables", "{n}");
        let o = np("--firewall pf network ls");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            !o.status.success() && err.contains("pf"),
            "names the bad value: {err}"
        );
        let part = "cli_firewall_backend_choice (iptables part)";
        if !cfg!(feature = "iptables") {
            common::not_applicable(part, "built without the iptables feature");
        } else if common::tool(part, "iptables-restore").is_some() {
            ok("--firewall iptables network create --subnet 10.125.0.0/24 fwipt");
            let n = json(&ok("network inspect fwipt"));
            assert_eq!(n[0]["Options"]["netplumb.firewall"], "iptables", "{n}");
            ok("--firewall iptables run --name ipc --network fwipt -p 8085:80");
            assert_eq!(ok("port ipc").trim(), "80/tcp -> 0.0.0.0:8085");
            ok("--firewall iptables rm ipc");
            ok("--firewall iptables network rm fwipt");
        }
        ok("network rm fwnft");
    });
}

/// `repair` after someone flushed the whole ruleset: the published port answers again.
#[test]
fn cli_repair_after_a_ruleset_flush() {
    common::sandbox("cli_repair", |s| {
        common::no_dad(s.host());
        ok("--firewall nftables network create --subnet 10.126.0.0/24 rep");
        ok("--firewall nftables run --name r1 --network rep -p 8088:80");
        let r1 = NetnsDir::new(NETNS).open("r1").unwrap();
        serve_peer(&r1);
        let out = outside(s);
        assert!(call(&out, "192.0.2.1:8088").is_some(), "before the flush");
        common::run_in(s.host(), "nft", &["flush", "ruleset"]);
        assert!(
            call(&out, "192.0.2.1:8088").is_none(),
            "the flush took the port"
        );
        let said = ok("--firewall nftables repair");
        assert!(said.contains("1 port"), "{said}");
        assert!(call(&out, "192.0.2.1:8088").is_some(), "after repair");
        // Nothing missing: nothing said.
        assert_eq!(ok("--firewall nftables repair"), "");
        ok("--firewall nftables rm r1");
        ok("--firewall nftables network rm rep");
    });
}

/// `network create --driver overlay` with `--store`: the definition goes to etcd (started
/// inside the sandbox), `ls`/`inspect` show it, a container connects over it and leaves,
/// and the network is removed; without `--store` the driver is refused.
#[cfg(feature = "etcd")]
#[test]
fn overlay_networks_with_an_etcd_store() {
    use netplumb::addr::Addr;
    use netplumb::link::Bridge;
    if !common::etcd::available("cli::overlay") {
        return;
    }
    common::sandbox("cli::overlay", |s| {
        let srv = common::etcd::EtcdServer::start();
        // This "host" has an underlay address the other hosts would send VXLAN to.
        let mut r = common::rtnl(s);
        r.execute(&Bridge::new("ul0").up()).unwrap();
        let ul0 = r.link("ul0").unwrap();
        r.execute(&Addr::new(&ul0, "192.168.99.1/24".parse().unwrap()))
            .unwrap();
        let store = srv.url().replace("http://", "etcd://");
        let g = format!("--store {store} --host-id h1 --advertise-addr 192.168.99.1");

        let o = np("network create --driver overlay ov1");
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("--store"));

        let out = ok(&format!(
            "{g} network create --driver overlay --subnet 10.9.0.0/24 ov1"
        ));
        assert_eq!(out.trim(), "ov1");
        let ls = ok(&format!("{g} network ls"));
        assert!(
            ls.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()[1..]
                    == ["ov1", "overlay", "global"]),
            "{ls}"
        );
        let v: Value = serde_json::from_str(&ok(&format!("{g} network inspect ov1"))).unwrap();
        assert_eq!(v[0]["Driver"], "overlay");
        // `network ls` shows the network's id, the same on every host.
        let id = v[0]["Id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 64);
        assert!(ls.contains(&format!("{} ", &id[..12])), "{ls}");
        assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.9.0.0/24");
        assert_eq!(
            v[0]["Options"]["com.docker.network.driver.overlay.vxlanid_list"],
            "256"
        );

        ok(&format!("{g} run --name a --network none"));
        ok(&format!("{g} network connect ov1 a"));
        let addrs = ok(&format!("{g} exec a -- ip -o -4 addr show"));
        assert!(
            addrs.contains("eth0") && addrs.contains("10.9.0.2/24"),
            "{addrs}"
        );
        assert!(addrs.contains("eth1"), "gateway bridge interface: {addrs}");
        let v: Value = serde_json::from_str(&ok(&format!("{g} network inspect ov1"))).unwrap();
        assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 1);
        // Removing a network in use is refused.
        assert!(!np(&format!("{g} network rm ov1")).status.success());
        ok(&format!("{g} network disconnect ov1 a"));
        ok(&format!("{g} rm a"));

        // This host's agent, in the foreground as a service runs it.
        let mut agent = Command::new(binary())
            .args(g.split_whitespace())
            .arg("agent")
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = {
            use std::io::BufRead;
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let err = agent.stderr.take().unwrap();
            std::thread::spawn(move || {
                for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    let _ = tx.send(l);
                }
            });
            rx
        };
        let mut log = String::new();
        let mut wait_for = |what: &str| {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !log.contains(what) {
                let left = end.saturating_duration_since(std::time::Instant::now());
                match lines.recv_timeout(left) {
                    Ok(l) => log.push_str(&(l + "\n")),
                    Err(_) => panic!("the agent did not log {what:?}: {log}"),
                }
            }
        };

        // `run --network OVERLAY -p`: the overlay address, the way out, and the port
        // published through the gateway bridge; `rm` then takes all of it away.
        let out = outside(s);
        ok(&format!(
            "{g} run --name b --network ov1 --ip 10.9.0.7 -p 8089:80"
        ));
        let addrs = ok(&format!("{g} exec b -- ip -o -4 addr show"));
        assert!(addrs.contains("10.9.0.7/24"), "{addrs}");
        wait_for("following ov1");
        // Another host with the same id (a shared hostname) is refused while this one is
        // registered, and leaves nothing.
        let twin = format!("--store {store} --host-id h1 --advertise-addr 192.168.99.2");
        let err = fails(&format!("{twin} run --name x --network ov1"));
        assert!(
            err.contains("registered by a live host at 192.168.99.1"),
            "{err}"
        );
        assert!(!ok("netns list").contains('x'));
        serve_peer(&NetnsDir::new(NETNS).open("b").unwrap());
        assert!(call(&out, "192.0.2.1:8089").is_some(), "the published port");
        let v: Value = serde_json::from_str(&ok(&format!("{g} network inspect ov1"))).unwrap();
        assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 1, "{v}");
        ok(&format!("{g} rm b"));
        let v: Value = serde_json::from_str(&ok(&format!("{g} network inspect ov1"))).unwrap();
        assert_eq!(
            v[0]["Containers"].as_object().unwrap().len(),
            0,
            "lease left: {v}"
        );
        let links = common::link_names(&mut r);
        assert!(
            !links.iter().any(|l| l.starts_with("ov-")
                || l.starts_with("vx-")
                || l == "docker_gwbridge"
                || l.starts_with("veth")),
            "links left: {links:?}"
        );
        assert!(call(&out, "192.0.2.1:8089").is_none(), "the port after rm");
        // The agent stops cleanly on SIGTERM.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(agent.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        wait_for("agent stopped");
        let done = agent.wait().unwrap();
        assert!(done.success(), "agent: {done:?}");

        // A container whose namespace is deleted behind our back: `gc` takes it off the
        // overlay (its address in the store, its endpoint, its way out).
        ok(&format!("{g} run --name c --network ov1"));
        ok("netns del c");
        let said = ok(&format!("{g} gc"));
        assert!(said.contains("disconnected ov1/"), "{said}");
        let v: Value = serde_json::from_str(&ok(&format!("{g} network inspect ov1"))).unwrap();
        assert_eq!(
            v[0]["Containers"].as_object().unwrap().len(),
            0,
            "after gc: {v}"
        );
        assert_eq!(ok(&format!("{g} network rm ov1")).trim(), "ov1");
        let ls = ok(&format!("{g} network ls"));
        assert!(!ls.contains("ov1"), "{ls}");
    });
}

/// The store's TLS and user options, as etcdctl's: `--store-cacert` checks the store's
/// certificate (an endpoint without a scheme then speaks TLS), and `--store-user
/// NAME:PASSWORD` authenticates; a refused certificate or password is said so, and the
/// password is not repeated.
#[cfg(feature = "etcd")]
#[test]
fn store_tls_and_user_options() {
    use common::certs::Pki;
    use common::etcd::{EtcdOptions, EtcdServer, ROOT_PASSWORD};
    if !common::etcd::available("cli::store_options") {
        return;
    }
    common::sandbox("cli::store_options", |_| {
        let pki = Pki::new();
        let ca = pki.ca("ca");
        let srv = EtcdServer::start_with(EtcdOptions {
            tls: Some(pki.leaf("server", &ca, "IP:127.0.0.1")),
            ..EtcdOptions::default()
        });
        let cacert = format!("--store-cacert {}", ca.cert.display());
        let ls = ok(&format!(
            "--store etcd://127.0.0.1:2379 {cacert} network ls"
        ));
        assert!(ls.starts_with("NETWORK ID"), "{ls}");
        let said = fails("--store https://127.0.0.1:2379 network ls");
        assert!(said.contains("certificate not accepted"), "{said}");
        drop(srv);

        let srv = EtcdServer::start();
        srv.enable_auth();
        let store = "--store etcd://127.0.0.1:2379";
        ok(&format!(
            "{store} --store-user root:{ROOT_PASSWORD} network ls"
        ));
        let said = fails(&format!("{store} --store-user root:wrong-pw network ls"));
        assert!(
            said.contains("authentication failed for user \"root\""),
            "{said}"
        );
        assert!(!said.contains("wrong-pw"), "{said}");
        // Refused by the command line parser, which words its own errors.
        let o = np(&format!("{store} --store-user root network ls"));
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && said.contains("NAME:PASSWORD"),
            "{said}"
        );
    });
}
