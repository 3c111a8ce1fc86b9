//! The `netavark` example, Podman's network tool on netplumb, driven as Podman drives it:
//! `setup`/`teardown NETNS_PATH` with the contract's JSON on stdin, one fresh process per
//! call, no state kept by the caller. Each test runs in a sandbox; the tool's children
//! inherit its namespaces. Checked: the status it prints against the kernel's links and
//! addresses, traffic through a published port, teardown to nothing (twice, and with the
//! namespace gone), a stale setup replaced, IPv6-only networks, and errors that name the
//! bad part and change nothing.

#![cfg(all(feature = "store", feature = "serde"))]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use netplumb::firewall::{Firewall, Nftables};
use netplumb::netns::Sandbox;
use netplumb::Rtnl;
use serde_json::{json, Value};

const CONFIG: &str = "/run/nv-test";

fn binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::example_binary("netavark"))
}

/// Runs `netavark --config CONFIG ARGS` with `input` on stdin: exit success and stdout.
fn nv(args: &[&str], input: &Value) -> (bool, String) {
    let mut child = Command::new(binary())
        .args(["--config", CONFIG, "--rootless=false"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netavark");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (out.status.success(), stdout)
}

/// One network of a request: name, bridge, subnets with gateways, the container's
/// addresses in it, driver options.
struct Net<'a> {
    name: &'a str,
    bridge: &'a str,
    subnets: &'a [(&'a str, &'a str)],
    ips: &'a [&'a str],
    options: Value,
}

/// A request in the contract's shape for container `id` on `nets`, with `ports`.
fn request(id: &str, nets: &[Net<'_>], ports: Value) -> Value {
    let mut networks = serde_json::Map::new();
    let mut info = serde_json::Map::new();
    for n in nets {
        networks.insert(
            n.name.into(),
            json!({ "interface_name": "eth0", "static_ips": n.ips }),
        );
        let subnets: Vec<Value> = n
            .subnets
            .iter()
            .map(|(s, g)| json!({ "subnet": s, "gateway": g }))
            .collect();
        info.insert(
            n.name.into(),
            json!({
                "name": n.name, "id": format!("{:0>64}", n.name), "driver": "bridge",
                "network_interface": n.bridge, "subnets": subnets,
                "ipv6_enabled": n.subnets.iter().any(|(s, _)| s.contains(':')),
                "internal": false, "dns_enabled": false, "options": n.options,
                "ipam_options": { "driver": "host-local" },
            }),
        );
    }
    json!({
        "container_id": id, "container_name": format!("name-{id}"),
        "networks": networks, "network_info": info, "port_mappings": ports,
    })
}

fn dual_stack() -> Net<'static> {
    Net {
        name: "podman1",
        bridge: "podman1",
        subnets: &[
            ("10.89.3.0/24", "10.89.3.1"),
            ("fd10:88:a::/64", "fd10:88:a::1"),
        ],
        ips: &["10.89.3.2", "fd10:88:a::2"],
        options: json!({}),
    }
}

fn ns_path(s: &Sandbox, name: &str) -> String {
    s.netns_dir().path(name).to_string_lossy().into_owned()
}

/// Our bridge and tables are gone from the sandbox's host.
fn nothing_left(s: &Sandbox, bridge: &str) {
    let mut r = common::rtnl(s);
    assert!(
        r.link(bridge).is_err_and(|e| e.is_not_found()),
        "bridge {bridge} left: {:?}",
        common::link_names(&mut r)
    );
    let veths: Vec<String> = common::link_names(&mut r)
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .collect();
    assert!(veths.is_empty(), "veths left: {veths:?}");
    let fw = Nftables::open_in(s.host()).unwrap().state().unwrap();
    assert!(fw.families.is_empty(), "tables left: {fw:?}");
}

#[test]
fn setup_reports_what_it_made_publishes_a_port_and_teardown_removes_everything() {
    common::sandbox("netavark_setup_teardown", |s| {
        common::no_dad(s.host());
        let outside = common::outside(s);
        let ns = s.netns_dir().create("c1").unwrap();
        common::no_dad(&ns);
        common::serve_peer(&ns, "0.0.0.0:80".parse().unwrap());
        let ports = json!([{ "host_ip": "", "host_port": 8080, "container_port": 80,
                             "protocol": "tcp", "range": 1 }]);
        let req = request("c0ffee01", &[dual_stack()], ports);
        let (ok, out) = nv(&["setup", &ns_path(s, "c1")], &req);
        assert!(ok, "{out}");
        let status: Value = serde_json::from_str(&out).expect("setup prints JSON only");
        let eth0 = &status["podman1"]["interfaces"]["eth0"];
        let subnets = eth0["subnets"].as_array().unwrap();
        assert_eq!(
            subnets,
            &[
                json!({ "ipnet": "10.89.3.2/24", "gateway": "10.89.3.1" }),
                json!({ "ipnet": "fd10:88:a::2/64", "gateway": "fd10:88:a::1" }),
            ]
        );
        assert_eq!(status["podman1"]["dns_server_ips"], json!([]));

        // The kernel holds what the status says.
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let link = inside.link("eth0").unwrap();
        assert_eq!(
            link.mac.map(|m| m.to_string()).as_deref(),
            eth0["mac_address"].as_str()
        );
        let have: Vec<String> = inside
            .addrs(Some((&link).into()))
            .unwrap()
            .iter()
            .map(|a| a.addr.to_string())
            .collect();
        assert!(have.contains(&"10.89.3.2/24".to_owned()), "{have:?}");
        assert!(have.contains(&"fd10:88:a::2/64".to_owned()), "{have:?}");
        // Default routes of both families, with netavark's default metric.
        let defaults: Vec<(String, Option<u32>)> = inside
            .routes()
            .unwrap()
            .iter()
            .filter(|r| r.dst.prefix_len() == 0)
            .map(|r| (r.via.map(|v| v.to_string()).unwrap_or_default(), r.metric))
            .collect();
        assert!(
            defaults.contains(&("10.89.3.1".into(), Some(100))),
            "{defaults:?}"
        );
        assert!(
            defaults.contains(&("fd10:88:a::1".into(), Some(100))),
            "{defaults:?}"
        );
        let mut r = common::rtnl(s);
        let br = r.link("podman1").unwrap();
        let gw: Vec<String> = r
            .addrs(Some((&br).into()))
            .unwrap()
            .iter()
            .map(|a| a.addr.to_string())
            .collect();
        assert!(gw.contains(&"10.89.3.1/24".to_owned()), "{gw:?}");

        // Another machine reaches the container through the published port.
        let to: SocketAddr = "192.0.2.1:8080".parse().unwrap();
        assert!(
            common::call_peer(&outside, to).is_some(),
            "no answer on {to}"
        );

        // The same setup again (a retried call) changes nothing and says the same.
        let (ok, again) = nv(&["setup", &ns_path(s, "c1")], &req);
        assert!(ok, "{again}");
        assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), status);

        let (ok, out) = nv(&["teardown", &ns_path(s, "c1")], &req);
        assert!(ok, "{out}");
        assert!(out.trim().is_empty(), "teardown printed {out:?}");
        assert!(inside.link("eth0").unwrap_err().is_not_found());
        assert!(
            common::call_peer(&outside, to).is_none(),
            "{to} still answers"
        );
        nothing_left(s, "podman1");
        let (ok, out) = nv(&["teardown", &ns_path(s, "c1")], &req);
        assert!(ok, "a second teardown: {out}");
    });
}

#[test]
fn a_stale_setup_is_replaced_and_teardown_needs_no_namespace() {
    common::sandbox("netavark_stale_setup", |s| {
        common::no_dad(s.host());
        let req = request("c0ffee02", &[dual_stack()], json!(null));
        let old = s.netns_dir().create("old").unwrap();
        let (ok, out) = nv(&["setup", &ns_path(s, "old")], &req);
        assert!(ok, "{out}");
        // The caller crashed: no teardown; the container starts again in a new namespace.
        s.netns_dir().delete("old").unwrap();
        drop(old);
        let new = s.netns_dir().create("new").unwrap();
        let (ok, out) = nv(&["setup", &ns_path(s, "new")], &req);
        assert!(ok, "{out}");
        let mut inside = Rtnl::open_in(&new).unwrap();
        inside.link("eth0").unwrap();
        let mut r = common::rtnl(s);
        assert_eq!(common::bridge_ports(&mut r, "podman1").len(), 1);
        // The namespace goes first, then the teardown comes.
        s.netns_dir().delete("new").unwrap();
        drop((inside, new));
        let (ok, out) = nv(&["teardown", &ns_path(s, "new")], &req);
        assert!(ok, "{out}");
        nothing_left(s, "podman1");
    });
}

#[test]
fn an_ipv6_only_network_gets_no_ipv4() {
    common::sandbox("netavark_ipv6_only", |s| {
        common::no_dad(s.host());
        let ns = s.netns_dir().create("v6").unwrap();
        common::no_dad(&ns);
        let net = Net {
            name: "v6net",
            bridge: "podman6",
            subnets: &[("fd99::/64", "fd99::1")],
            ips: &["fd99::5"],
            options: json!({ "mtu": "1400" }),
        };
        let req = request("c0ffee03", &[net], json!(null));
        let (ok, out) = nv(&["setup", &ns_path(s, "v6")], &req);
        assert!(ok, "{out}");
        let status: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            status["v6net"]["interfaces"]["eth0"]["subnets"],
            json!([{ "ipnet": "fd99::5/64", "gateway": "fd99::1" }])
        );
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let eth0 = inside.link("eth0").unwrap();
        assert_eq!(eth0.mtu, 1400);
        let v4: Vec<_> = inside
            .addrs(None)
            .unwrap()
            .into_iter()
            .filter(|a| a.addr.addr().is_ipv4() && !a.addr.addr().is_loopback())
            .collect();
        assert!(v4.is_empty(), "IPv4 on an IPv6-only network: {v4:?}");
        let mut r = common::rtnl(s);
        let br = r.link("podman6").unwrap();
        let br_v4: Vec<_> = r
            .addrs(Some((&br).into()))
            .unwrap()
            .into_iter()
            .filter(|a| a.addr.addr().is_ipv4())
            .collect();
        assert!(br_v4.is_empty(), "{br_v4:?}");
        let (ok, out) = nv(&["teardown", &ns_path(s, "v6")], &req);
        assert!(ok, "{out}");
        nothing_left(s, "podman6");
    });
}

#[test]
fn bad_requests_are_json_errors_naming_the_part_and_change_nothing() {
    common::sandbox("netavark_errors", |s| {
        let ns = s.netns_dir().create("e").unwrap();
        let path = ns_path(s, "e");
        let mut r = common::rtnl(s);
        let before = common::link_names(&mut r);
        let mut with = |f: &dyn Fn(&mut Value), want: &str| {
            let mut req = request("c0ffee04", &[dual_stack()], json!(null));
            f(&mut req);
            let (ok, out) = nv(&["setup", &path], &req);
            assert!(!ok, "accepted: {req}");
            let e: Value = serde_json::from_str(&out)
                .unwrap_or_else(|_| panic!("not one JSON object: {out:?}"));
            let text = e["error"].as_str().unwrap_or_else(|| panic!("{e}"));
            assert!(text.contains(want), "{want:?} not in {text:?}");
            assert_eq!(common::link_names(&mut r), before, "after {want}");
        };
        with(
            &|r| r["network_info"]["podman1"]["driver"] = json!("macvlan"),
            "\"macvlan\" is not supported",
        );
        with(
            &|r| r["networks"]["podman1"]["static_ips"] = json!(["10.1.1.1"]),
            "static ip 10.1.1.1 is in none of its subnets",
        );
        with(
            &|r| r["network_info"]["podman1"]["options"] = json!({ "mtu": "lots" }),
            "option mtu \"lots\"",
        );
        with(
            &|r| r["network_info"]["podman1"]["ipam_options"] = json!({ "driver": "dhcp" }),
            "unsupported ipam driver dhcp",
        );
        with(
            &|r| r["port_mappings"] = json!([{ "host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp,gre", "range": 1 }]),
            "gre",
        );
        with(
            &|r| r["networks"]["podman1"]["static_mac"] = json!("zz:00"),
            "static_mac \"zz:00\"",
        );
        with(&|r| r["container_id"] = json!(5), "invalid network options");
        // A namespace path that is not there, a request file that is not there: in
        // netavark's words, which its users match on.
        let (ok, out) = nv(
            &["setup", "/run/netns/not-there"],
            &request("c0ffee05", &[dual_stack()], json!(null)),
        );
        assert!(!ok);
        let want = "invalid namespace path: IO error: No such file or directory (os error 2)";
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["error"], want);
        let (ok, out) = nv(&["-f", "/run/not-there.json", "setup", &path], &json!(null));
        assert!(!ok);
        let want =
            "failed to load network options: IO error: No such file or directory (os error 2)";
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["error"], want);
        assert_eq!(common::link_names(&mut r), before);
        drop(ns);
    });
}

#[test]
fn a_read_only_proc_sys_and_the_metric_option_are_served() {
    common::sandbox("netavark_read_only_proc", |s| {
        common::no_dad(s.host());
        // What Podman does in some setups: /proc/sys read-only for its network tool, with
        // forwarding on already. The tool runs in this thread's mount namespace.
        netplumb::sysctl::Sysctl::IpForward
            .set(s.host(), "1")
            .unwrap();
        let ns = s.netns_dir().create("ro").unwrap();
        let sys = std::path::Path::new("/proc/sys");
        nix::mount::mount(
            Some(sys),
            sys,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        nix::mount::mount(
            None::<&str>,
            sys,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND
                | nix::mount::MsFlags::MS_REMOUNT
                | nix::mount::MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .unwrap();
        let w = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").unwrap_err();
        assert_eq!(
            w.raw_os_error(),
            Some(netplumb::error::Errno::EROFS.raw()),
            "{w}"
        );
        let net = Net {
            name: "ro",
            bridge: "podman9",
            subnets: &[("10.91.0.0/24", "10.91.0.1")],
            ips: &["10.91.0.5"],
            options: json!({ "metric": "250" }),
        };
        let req = request("c0ffee06", &[net], json!(null));
        let (ok, out) = nv(&["setup", &ns_path(s, "ro")], &req);
        let undo = nix::mount::umount2(sys, nix::mount::MntFlags::MNT_DETACH);
        assert!(ok, "{out}");
        undo.unwrap();
        // route_localnet went over netlink: set on the bridge all the same.
        let rl = std::fs::read_to_string("/proc/sys/net/ipv4/conf/podman9/route_localnet");
        assert_eq!(rl.unwrap().trim(), "1");
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let metric = inside
            .routes()
            .unwrap()
            .into_iter()
            .find(|r| r.dst.prefix_len() == 0)
            .and_then(|r| r.metric);
        assert_eq!(metric, Some(250));
        let (ok, out) = nv(&["teardown", &ns_path(s, "ro")], &req);
        assert!(ok, "{out}");
        nothing_left(s, "podman9");
        // Forwarding off and /proc/sys read-only: the write it needs fails, in netavark's
        // words, and nothing is left.
        netplumb::sysctl::Sysctl::IpForward
            .set(s.host(), "0")
            .unwrap();
        let ro = nix::mount::MsFlags::MS_BIND
            | nix::mount::MsFlags::MS_REMOUNT
            | nix::mount::MsFlags::MS_RDONLY;
        nix::mount::mount(
            Some(sys),
            sys,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        nix::mount::mount(None::<&str>, sys, None::<&str>, ro, None::<&str>).unwrap();
        let (ok, out) = nv(&["setup", &ns_path(s, "ro")], &req);
        nix::mount::umount2(sys, nix::mount::MntFlags::MNT_DETACH).unwrap();
        assert!(!ok, "{out}");
        let e: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            e["error"],
            "Sysctl error: IO Error: Read-only file system (os error 30)"
        );
        nothing_left(s, "podman9");
    });
}

#[test]
fn ipam_driver_none_gives_an_interface_without_addresses_or_routes() {
    common::sandbox("netavark_ipam_none", |s| {
        common::no_dad(s.host());
        let ns = s.netns_dir().create("l2").unwrap();
        let mut req = request(
            "c0ffee07",
            &[Net {
                name: "l2",
                bridge: "podman7",
                subnets: &[],
                ips: &[],
                options: json!({}),
            }],
            json!(null),
        );
        req["network_info"]["l2"]["ipam_options"] = json!({ "driver": "none" });
        let (ok, out) = nv(&["setup", &ns_path(s, "l2")], &req);
        assert!(ok, "{out}");
        let status: Value = serde_json::from_str(&out).unwrap();
        let eth0 = &status["l2"]["interfaces"]["eth0"];
        assert_eq!(eth0["subnets"], json!([]));
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let link = inside.link("eth0").unwrap();
        assert!(link.is_up());
        assert_eq!(
            link.mac.map(|m| m.to_string()).as_deref(),
            eth0["mac_address"].as_str()
        );
        let addrs = inside.addrs(Some((&link).into())).unwrap();
        assert!(addrs.is_empty(), "{addrs:?}");
        let routes: Vec<_> = inside
            .routes()
            .unwrap()
            .into_iter()
            .filter(|r| r.table == 254)
            .collect();
        assert!(routes.is_empty(), "{routes:?}");
        // On the bridge, which has no address either.
        let mut r = common::rtnl(s);
        assert_eq!(common::bridge_ports(&mut r, "podman7").len(), 1);
        let br = r.link("podman7").unwrap();
        let br_v4: Vec<_> = r
            .addrs(Some((&br).into()))
            .unwrap()
            .into_iter()
            .filter(|a| a.addr.addr().is_ipv4())
            .collect();
        assert!(br_v4.is_empty(), "{br_v4:?}");
        let (ok, out) = nv(&["teardown", &ns_path(s, "l2")], &req);
        assert!(ok, "{out}");
        nothing_left(s, "podman7");
    });
}

#[test]
fn no_default_route_static_routes_and_the_firewall_driver_none() {
    common::sandbox("netavark_routes", |s| {
        common::no_dad(s.host());
        let ns = s.netns_dir().create("rt").unwrap();
        let mut req = request(
            "c0ffee08",
            &[Net {
                name: "rt",
                bridge: "podman8",
                subnets: &[("10.92.0.0/24", "10.92.0.1")],
                ips: &["10.92.0.7"],
                options: json!({ "no_default_route": "true" }),
            }],
            json!([{ "host_ip": "", "host_port": 8088, "container_port": 80, "protocol": "tcp", "range": 1 }]),
        );
        req["network_info"]["rt"]["routes"] = json!([
            { "destination": "10.99.0.0/16", "gateway": "10.92.0.254" },
            { "destination": "10.98.0.0/16", "gateway": "10.92.0.253", "metric": 300 },
        ]);
        let args = ["--firewall-driver", "none", "setup", &ns_path(s, "rt")];
        let (ok, out) = nv(&args, &req);
        assert!(ok, "{out}");
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let routes: Vec<(String, Option<String>, Option<u32>)> = inside
            .routes()
            .unwrap()
            .into_iter()
            .filter(|r| r.table == 254 && r.via.is_some())
            .map(|r| (r.dst.to_string(), r.via.map(|g| g.to_string()), r.metric))
            .collect();
        // No default route; the static ones with the network's metric (100) or their own.
        assert_eq!(routes.len(), 2, "{routes:?}");
        assert!(
            routes.contains(&("10.99.0.0/16".into(), Some("10.92.0.254".into()), Some(100))),
            "{routes:?}"
        );
        assert!(
            routes.contains(&("10.98.0.0/16".into(), Some("10.92.0.253".into()), Some(300))),
            "{routes:?}"
        );
        // No firewall: no table of ours, and iptables-nft's tables none either.
        let fw = Nftables::open_in(s.host()).unwrap().state().unwrap();
        assert!(fw.families.is_empty(), "{fw:?}");
        if let Some(tables) = common::run_in(s.host(), "nft", &["list", "tables"]) {
            assert!(tables.trim().is_empty(), "{tables}");
        }
        // A gateway of the other family is refused before anything is made.
        let mut bad = req.clone();
        bad["container_id"] = json!("c0ffee09");
        bad["networks"]["rt"]["static_ips"] = json!(["10.92.0.8"]);
        bad["network_info"]["rt"]["routes"] =
            json!([{ "destination": "10.99.0.0/16", "gateway": "fd00::1" }]);
        let (ok, out) = nv(&args, &bad);
        assert!(
            !ok && out.contains("route to 10.99.0.0/16 via fd00::1"),
            "{out}"
        );
        let (ok, out) = nv(
            &["--firewall-driver", "none", "teardown", &ns_path(s, "rt")],
            &req,
        );
        assert!(ok, "{out}");
        nothing_left(s, "podman8");
    });
}

#[test]
fn a_container_interface_deleted_before_teardown_is_reported_after_everything_is_removed() {
    common::sandbox("netavark_veth_gone", |s| {
        common::no_dad(s.host());
        let ns = s.netns_dir().create("g").unwrap();
        let net = Net {
            name: "g",
            bridge: "podman6",
            subnets: &[("10.93.0.0/24", "10.93.0.1")],
            ips: &["10.93.0.2"],
            options: json!({}),
        };
        let req = request(
            "c0ffee0a",
            &[net],
            json!([{ "host_ip": "", "host_port": 8089, "container_port": 80, "protocol": "tcp", "range": 1 }]),
        );
        let (ok, out) = nv(&["setup", &ns_path(s, "g")], &req);
        assert!(ok, "{out}");
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let eth0 = inside.link("eth0").unwrap();
        inside
            .execute(&netplumb::link::LinkDel::new(&eth0))
            .unwrap();
        // As netavark: an error naming the interface, and everything removed all the same.
        let (ok, out) = nv(&["teardown", &ns_path(s, "g")], &req);
        assert!(!ok, "{out}");
        let e: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            e["error"],
            "failed to delete container veth eth0: Netlink error: No such device (os error 19)"
        );
        nothing_left(s, "podman6");
        // Nothing is connected any more: a second teardown is fine.
        let (ok, out) = nv(&["teardown", &ns_path(s, "g")], &req);
        assert!(ok, "{out}");
    });
}
