//! The `netplumb-cni` example, a CNI plugin on netplumb, run as the specification says a
//! runtime runs it: one process per operation, the command and the attachment in `CNI_*`
//! variables, the configuration on stdin, the result or error on stdout. Each test runs
//! in a sandbox whose namespaces the plugin inherits. Checked: the result against the
//! kernel, traffic through a published port, CHECK finding drift, DEL in every state the
//! specification names, GC, STATUS, the result formats of each version, error codes, and
//! a reference plugin chained after it.

#![cfg(all(feature = "store", feature = "serde"))]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use netplumb::firewall::Firewall;
use netplumb::netns::Sandbox;
use netplumb::Rtnl;
use serde_json::{json, Value};

fn binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::example_binary("netplumb-cni"))
}

/// Runs `bin` with `env` (`CNI_COMMAND` first) and `conf` on stdin: exit success and
/// stdout.
fn exec(bin: &std::path::Path, env: &[(&str, &str)], conf: &Value) -> (bool, String) {
    let mut cmd = Command::new(bin);
    for k in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

/// The plugin's `command` for container `id` (interface `eth0`) in `netns`.
fn cni(command: &str, id: &str, netns: &str, conf: &Value) -> (bool, String) {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    exec(binary(), &env, conf)
}

/// A bridge + host-local configuration of `version`, its state in the sandbox's /run.
fn conf(version: &str) -> Value {
    json!({
        "cniVersion": version, "name": "cninet", "type": "netplumb-cni",
        "bridge": "cni7", "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{ "subnet": "10.77.0.0/24", "gateway": "10.77.0.1" }],
                       [{ "subnet": "fd77::/64" }]],
            "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "10.99.0.0/16", "gw": "10.77.0.254" }],
            "dataDir": "/ignored",
        },
        "dns": { "nameservers": ["10.77.0.1"], "search": ["cluster.local"] },
        "netplumb": { "stateDir": "/run/cni-test/state", "runDir": "/run/cni-test/run" },
    })
}

fn ns_path(s: &Sandbox, name: &str) -> String {
    s.netns_dir().path(name).to_string_lossy().into_owned()
}

/// Waits (up to 5 s) for link `name` to be gone: DEL returns with the veth's host end down
/// and off the bridge, and a process of the plugin's deletes the pair right after.
fn gone_soon(r: &mut Rtnl, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match r.link(name) {
            Err(e) if e.is_not_found() => return,
            Ok(_) => {}
            Err(e) => panic!("{name}: {e}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} still there 5 s after DEL"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits (up to 5 s) for the sandbox's host to have no veth left: DEL leaves the pair's
/// deletion to a process of the plugin's (or to the namespace's deletion).
fn no_veths_soon(host: &mut Rtnl) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let veths: Vec<String> = common::link_names(host)
            .into_iter()
            .filter(|l| l.starts_with("veth"))
            .collect();
        if veths.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "left: {veths:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A change to a configuration, for the error cases.
type Change = Box<dyn Fn(&mut Value)>;

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"))
}

/// The error result of a failed call: its code and message.
fn error_of(ok: bool, out: &str) -> (u64, String) {
    assert!(!ok, "succeeded: {out}");
    let e = json_of(out);
    let code = e["code"].as_u64().unwrap_or_else(|| panic!("no code: {e}"));
    assert!(e.get("cniVersion").is_some(), "{e}");
    (code, e["msg"].as_str().unwrap_or_default().to_owned())
}

#[test]
fn add_reports_what_the_kernel_holds_publishes_ports_and_del_removes_it_in_every_state() {
    common::sandbox("cni_add_del", |s| {
        common::no_dad(s.host());
        let outside = common::outside(s);
        let ns = s.netns_dir().create("c1").unwrap();
        common::no_dad(&ns);
        common::serve_peer(&ns, "0.0.0.0:80".parse().unwrap());
        let mut c = conf("1.1.0");
        c["runtimeConfig"] = json!({ "portMappings": [
            { "hostPort": 8080, "containerPort": 80, "protocol": "tcp" }] });
        let path = ns_path(s, "c1");
        let (ok, out) = cni("ADD", "ctr1", &path, &c);
        assert!(ok, "{out}");
        let r = json_of(&out);
        assert_eq!(r["cniVersion"], "1.1.0");
        let ifs = r["interfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 3, "{r}");
        assert_eq!(ifs[0]["name"], "cni7");
        assert_eq!(ifs[2]["name"], "eth0");
        assert_eq!(ifs[2]["sandbox"], path.as_str());
        assert_eq!(
            r["ips"],
            json!([
                { "address": "10.77.0.2/24", "gateway": "10.77.0.1", "interface": 2 },
                { "address": "fd77::2/64", "gateway": "fd77::1", "interface": 2 },
            ])
        );
        assert_eq!(
            r["routes"],
            json!([
                { "dst": "0.0.0.0/0", "gw": "10.77.0.1" },
                { "dst": "10.99.0.0/16", "gw": "10.77.0.254" },
                { "dst": "::/0", "gw": "fd77::1" },
            ])
        );
        assert_eq!(r["dns"]["search"], json!(["cluster.local"]));

        // The kernel holds what the result says.
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let eth0 = inside.link("eth0").unwrap();
        assert_eq!(
            eth0.mac.map(|m| m.to_string()).as_deref(),
            ifs[2]["mac"].as_str()
        );
        let (addrs, routes) = common::addrs_and_routes(&mut inside);
        assert!(
            addrs.iter().any(|a| a.contains("10.77.0.2/24")),
            "{addrs:?}"
        );
        assert!(
            routes
                .iter()
                .any(|r| r.contains("10.99.0.0/16") && r.contains("10.77.0.254")),
            "{routes:?}"
        );
        let mut host = common::rtnl(s);
        let veth = host.link(ifs[1]["name"].as_str().unwrap()).unwrap();
        let bridge = host.link("cni7").unwrap();
        assert_eq!(veth.controller, Some(bridge.index));
        let to: SocketAddr = "192.0.2.1:8080".parse().unwrap();
        assert!(
            common::call_peer(&outside, to).is_some(),
            "no answer on {to}"
        );

        // CHECK with ADD's result: fine; then each drift is named.
        let mut with_prev = c.clone();
        with_prev["prevResult"] = r.clone();
        let (ok, out) = cni("CHECK", "ctr1", &path, &with_prev);
        assert!(ok, "{out}");
        let extra = netplumb::route::Route::new("10.99.0.0/16".parse().unwrap())
            .via("10.77.0.254".parse().unwrap())
            .dev(&eth0);
        inside.execute(&extra.delete()).unwrap();
        let (ok, out) = cni("CHECK", "ctr1", &path, &with_prev);
        let (code, msg) = error_of(ok, &out);
        assert_eq!(code, 100);
        assert!(msg.contains("route to 10.99.0.0/16"), "{msg}");
        inside.execute(&extra).unwrap();
        netplumb::firewall::open(netplumb::firewall::Backend::Nftables, s.host())
            .unwrap()
            .flush()
            .unwrap();
        let (ok, out) = cni("CHECK", "ctr1", &path, &with_prev);
        let (_, msg) = error_of(ok, &out);
        assert!(msg.contains("firewall rules of network cninet"), "{msg}");

        // DEL, then DEL again, then DEL without a namespace: all fine.
        let (ok, out) = cni("DEL", "ctr1", &path, &c);
        assert!(ok && out.trim().is_empty(), "{out}");
        gone_soon(&mut inside, "eth0");
        assert!(
            common::call_peer(&outside, to).is_none(),
            "{to} still answers"
        );
        let (ok, out) = cni("DEL", "ctr1", &path, &c);
        assert!(ok, "{out}");
        let (ok, out) = cni("DEL", "ctr1", "", &c);
        assert!(ok, "{out}");
        // Never added: fine too.
        let (ok, out) = cni("DEL", "never", &path, &c);
        assert!(ok, "{out}");
        // The addresses went back, the records and ports went.
        let state = netplumb::network::HostOptions::new("/run/cni-test/state")
            .run_dir("/run/cni-test/run")
            .open(s.host())
            .unwrap();
        assert!(state.ipam().leases("cninet").unwrap().is_empty());
        assert!(state.ipam().leases("cninet/v6").unwrap().is_empty());
        assert!(state.attachments(Some("cninet")).unwrap().is_empty());
        assert!(state.published_ports().unwrap().is_empty());
        drop(state);
        let (ok, out) = cni("ADD", "ctr2", &path, &c);
        assert!(ok, "{out}");
        // Its namespace deleted before DEL (a crashed runtime): DEL still cleans up.
        drop(inside);
        s.netns_dir().delete("c1").unwrap();
        drop(ns);
        let (ok, out) = cni("DEL", "ctr2", &path, &c);
        assert!(ok, "{out}");
        no_veths_soon(&mut host);
    });
}

#[test]
fn each_version_gets_its_own_result_format_and_commands() {
    common::sandbox("cni_versions", |s| {
        common::no_dad(s.host());
        let ns = s.netns_dir().create("v").unwrap();
        let path = ns_path(s, "v");
        let (ok, out) = cni("VERSION", "", "", &json!({ "cniVersion": "1.0.0" }));
        assert!(ok, "{out}");
        let v = json_of(&out);
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
        for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"].iter().enumerate() {
            let id = format!("v{i}");
            let c = conf(version);
            let (ok, out) = cni("ADD", &id, &path, &c);
            assert!(ok, "{version}: {out}");
            let r = json_of(&out);
            assert_eq!(r["cniVersion"], *version);
            let ip = &r["ips"][0];
            // Before 1.0.0 each address says its family.
            assert_eq!(
                ip.get("version").is_some(),
                version.starts_with("0."),
                "{r}"
            );
            let mut with_prev = c.clone();
            with_prev["prevResult"] = r;
            let (ok, out) = cni("CHECK", &id, &path, &with_prev);
            if *version == "0.4.0" || *version == "1.0.0" {
                assert!(ok, "{version}: {out}");
            } else {
                // CHECK came with 0.4.0.
                assert_eq!(error_of(ok, &out).0, 1, "{version}");
            }
            let (ok, out) = cni("DEL", &id, &path, &c);
            assert!(ok, "{out}");
            // STATUS and GC came with 1.1.0.
            let (ok, out) = cni("STATUS", "", "", &c);
            assert_eq!(error_of(ok, &out).0, 1, "{version}");
        }
        let (ok, out) = cni("ADD", "old", &path, &conf("0.2.0"));
        let (code, msg) = error_of(ok, &out);
        assert_eq!(code, 1);
        assert!(msg.contains("0.2.0"), "{msg}");
        drop(ns);
    });
}

#[test]
fn bad_input_gets_the_specified_code_naming_the_field_and_changes_nothing() {
    common::sandbox("cni_errors", |s| {
        let ns = s.netns_dir().create("e").unwrap();
        let path = ns_path(s, "e");
        let mut r = common::rtnl(s);
        let before = common::link_names(&mut r);
        let cases: Vec<(Change, u64, &str)> = vec![
            (Box::new(|c| c["mtu"] = json!("big")), 7, "mtu"),
            (
                Box::new(|c| c["promiscMode"] = json!(true)),
                2,
                "promiscMode",
            ),
            (
                Box::new(|c| c["ipam"]["type"] = json!("../x")),
                7,
                "ipam.type",
            ),
            (
                Box::new(|c| c["ipam"]["ranges"][0][0]["subnet"] = json!("10.77.0.0/33")),
                7,
                "ipam.ranges[0][0].subnet",
            ),
            (
                Box::new(|c| c["ipam"]["ranges"][0][0]["gateway"] = json!("10.1.1.1")),
                7,
                "ipam.ranges[0][0].gateway",
            ),
            (
                Box::new(|c| {
                    c["ipam"]["routes"] = json!([{ "dst": "10.5.0.0/16", "gw": "fd77::9" }])
                }),
                7,
                "ipam.routes[0].gw",
            ),
            (
                Box::new(|c| {
                    c["runtimeConfig"] =
                        json!({ "portMappings": [{ "hostPort": 70000, "containerPort": 80 }] })
                }),
                7,
                "portMappings[0].hostPort",
            ),
            (
                Box::new(
                    |c| c["runtimeConfig"] = json!({ "portMappings": [{ "hostPort": 80, "containerPort": 80, "protocol": "gre" }] }),
                ),
                7,
                "gre",
            ),
            (
                Box::new(|c| c["runtimeConfig"] = json!({ "mac": "zz" })),
                7,
                "runtimeConfig.mac",
            ),
            (
                Box::new(|c| c["netplumb"]["firewall"] = json!("pf")),
                7,
                "netplumb.firewall",
            ),
            (Box::new(|c| c["name"] = json!(null)), 7, "name"),
        ];
        for (change, code, names) in &cases {
            let mut c = conf("1.1.0");
            change(&mut c);
            let (ok, out) = cni("ADD", "bad", &path, &c);
            let (got, msg) = error_of(ok, &out);
            assert_eq!(got, *code, "{names}: {out}");
            assert!(
                msg.contains(names) || out.contains(names),
                "{names} not in {out}"
            );
            assert_eq!(common::link_names(&mut r), before, "after {names}");
        }
        // Not JSON: a decode error.
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
        ];
        let mut child = Command::new(binary())
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"{ not json")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let (code, _) = error_of(out.status.success(), &String::from_utf8_lossy(&out.stdout));
        assert_eq!(code, 6);
        // The environment: missing or bad variables are code 4.
        let c = conf("1.1.0");
        for env in [
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_NETNS", path.as_str()),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "a/b"),
                ("CNI_NETNS", path.as_str()),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "x"),
                ("CNI_IFNAME", "eth0"),
            ],
            vec![
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "x"),
                ("CNI_NETNS", path.as_str()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", "FOO=1"),
            ],
            vec![("CNI_COMMAND", "FROB"), ("CNI_CONTAINERID", "x")],
        ] {
            let (ok, out) = exec(binary(), &env, &c);
            assert_eq!(error_of(ok, &out).0, 4, "{env:?}: {out}");
        }
        // A namespace that is not there: unknown container (3).
        let (ok, out) = cni("ADD", "x", "/run/netns/not-there", &c);
        assert_eq!(error_of(ok, &out).0, 3, "{out}");
        assert_eq!(common::link_names(&mut r), before);
        // IgnoreUnknown lets unknown CNI_ARGS through; K8S_POD_* are known; IP asks for
        // an address.
        let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;FOO=1;IP=10.77.0.50";
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "x"),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", args),
        ];
        let (ok, out) = exec(binary(), &env, &c);
        assert!(ok, "{out}");
        assert_eq!(json_of(&out)["ips"][0]["address"], "10.77.0.50/24");
        let (ok, out) = cni("DEL", "x", &path, &c);
        assert!(ok, "{out}");
        drop(ns);
    });
}

#[test]
fn gc_removes_every_attachment_not_listed_and_status_reports_an_unusable_store() {
    common::sandbox("cni_gc_status", |s| {
        common::no_dad(s.host());
        let c = conf("1.1.0");
        let mut nss = Vec::new();
        for i in 0..3 {
            let name = format!("g{i}");
            nss.push(s.netns_dir().create(&name).unwrap());
            let (ok, out) = cni("ADD", &name, &ns_path(s, &name), &c);
            assert!(ok, "{out}");
        }
        let (ok, out) = cni("STATUS", "", "", &c);
        assert!(ok && out.trim().is_empty(), "{out}");
        let mut gc = c.clone();
        gc["cni.dev/valid-attachments"] = json!([{ "containerID": "g1", "ifname": "eth0" }]);
        let (ok, out) = cni("GC", "", "", &gc);
        assert!(ok, "{out}");
        for (i, ns) in nss.iter().enumerate() {
            let mut inside = Rtnl::open_in(ns).unwrap();
            assert_eq!(inside.link("eth0").is_ok(), i == 1, "g{i}");
        }
        let mut host = common::rtnl(s);
        let ports = common::bridge_ports(&mut host, "cni7");
        assert_eq!(ports.len(), 1, "{ports:?}");
        // Only g1 is left in netplumb's records and leases.
        let state = netplumb::network::HostOptions::new("/run/cni-test/state")
            .run_dir("/run/cni-test/run")
            .open(s.host())
            .unwrap();
        let left: Vec<String> = state
            .attachments(Some("cninet"))
            .unwrap()
            .into_iter()
            .map(|a| a.container)
            .collect();
        assert_eq!(left, ["g1.eth0"]);
        let v4_leases = state.ipam().leases("cninet").unwrap();
        assert_eq!(v4_leases.len(), 1, "{v4_leases:?}");
        drop(state);
        // A store that cannot be opened: STATUS says ADD cannot work (50).
        let mut broken = c.clone();
        std::fs::write("/run/cni-test/file", "").unwrap();
        broken["netplumb"]["stateDir"] = json!("/run/cni-test/file/state");
        let (ok, out) = cni("STATUS", "", "", &broken);
        assert_eq!(error_of(ok, &out).0, 50, "{out}");
        drop(nss);
    });
}

#[test]
fn a_reference_plugin_chained_after_it_gets_its_result() {
    common::sandbox("cni_chain", |s| {
        let Some(tuning) = common::cni_plugin("tuning") else {
            return;
        };
        common::no_dad(s.host());
        let ns = s.netns_dir().create("t").unwrap();
        let path = ns_path(s, "t");
        let c = conf("1.0.0");
        let (ok, out) = cni("ADD", "t1", &path, &c);
        assert!(ok, "{out}");
        let ours = json_of(&out);
        // As a runtime runs a chain: the next plugin gets our result as prevResult.
        let next = json!({
            "cniVersion": "1.0.0", "name": "cninet", "type": "tuning",
            "sysctl": { "net.ipv4.conf.eth0.accept_redirects": "0" },
            "prevResult": ours,
        });
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "t1"),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        let (ok, out) = exec(&tuning, &env, &next);
        assert!(ok, "{out}");
        let theirs = json_of(&out);
        assert_eq!(theirs["ips"], ours["ips"]);
        assert_eq!(theirs["interfaces"][2]["name"], "eth0");
        let v = ns.run(|| std::fs::read_to_string("/proc/sys/net/ipv4/conf/eth0/accept_redirects"));
        assert_eq!(v.unwrap().unwrap().trim(), "0");
        let (ok, out) = cni("DEL", "t1", &path, &c);
        assert!(ok, "{out}");
        drop(ns);
    });
}

/// tests/libcni built with the system's libcni (Debian: golang-github-appc-cni-dev), once
/// per test process; `None` (the test skipped) without Go or libcni.
fn libcni_driver() -> Option<PathBuf> {
    let go = common::witness("go")?;
    let gopath = std::path::Path::new("/usr/share/gocode");
    if !gopath
        .join("src/github.com/containernetworking/cni/libcni")
        .is_dir()
    {
        common::skip_here("needs libcni (Debian package golang-github-appc-cni-dev)");
        return None;
    }
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let target = common::test_exe()
            .ancestors()
            .nth(3)
            .expect("target/<profile>/deps/test")
            .to_path_buf();
        let out = target.join("libcni-driver");
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libcni");
        let st = Command::new(go)
            .args(["build", "-o"])
            .arg(&out)
            .arg(".")
            .current_dir(&src)
            .env("GO111MODULE", "off")
            .env("GOPATH", gopath)
            .env("GOCACHE", target.join("go-cache"))
            .env("GOFLAGS", "-buildvcs=false")
            // No user config file (HOME may be unset on a build machine).
            .env("GOENV", "off")
            .status()
            .expect("run go build");
        assert!(st.success(), "go build of tests/libcni failed");
        out
    });
    Some(bin.clone())
}

#[test]
fn libcni_adds_checks_and_deletes_a_conflist_with_port_mappings() {
    common::sandbox("cni_libcni", |s| {
        let Some(driver) = libcni_driver() else {
            return;
        };
        common::no_dad(s.host());
        let outside = common::outside(s);
        let ns = s.netns_dir().create("l").unwrap();
        common::no_dad(&ns);
        common::serve_peer(&ns, "0.0.0.0:80".parse().unwrap());
        let path = ns_path(s, "l");
        // The plugin folder a runtime searches: our binary under its type name.
        let dir = common::TempDir::new("cni-plugins");
        std::os::unix::fs::symlink(binary(), dir.0.join("netplumb-cni")).unwrap();
        let mut plugin = conf("1.0.0");
        plugin["capabilities"] = json!({ "portMappings": true });
        let list = json!({ "cniVersion": "1.0.0", "name": "cninet", "plugins": [plugin] });
        let file = dir.0.join("net.conflist");
        std::fs::write(&file, list.to_string()).unwrap();
        let ports =
            json!([{ "hostPort": 8081, "containerPort": 80, "protocol": "tcp" }]).to_string();
        let run = |op: &str, extra: Option<&str>| {
            let mut cmd = Command::new(&driver);
            cmd.arg(&file)
                .arg(&dir.0)
                .arg("/run/cni-test/cache")
                .args([op, "pod1", &path, "eth0"]);
            if let Some(p) = extra {
                cmd.arg(p);
            }
            let out = cmd.output().expect("run the libcni driver");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{op}: {text}{err}");
            text
        };
        let r = json_of(&run("add", Some(&ports)));
        assert_eq!(r["ips"][0]["address"], "10.77.0.2/24", "{r}");
        assert_eq!(r["interfaces"][2]["sandbox"], path.as_str());
        let to: SocketAddr = "192.0.2.1:8081".parse().unwrap();
        assert!(
            common::call_peer(&outside, to).is_some(),
            "no answer on {to}"
        );
        // libcni passes its cached result as prevResult.
        run("check", Some(&ports));
        run("del", Some(&ports));
        let mut inside = Rtnl::open_in(&ns).unwrap();
        gone_soon(&mut inside, "eth0");
        assert!(
            common::call_peer(&outside, to).is_none(),
            "{to} still answers"
        );
        run("del", Some(&ports));
        drop(ns);
    });
}

/// A result without what differs between two runs: MACs, the host veth's name, the
/// namespace path.
fn comparable(mut r: Value) -> Value {
    for i in r["interfaces"].as_array_mut().into_iter().flatten() {
        i.as_object_mut().unwrap().remove("mac");
        if i.get("sandbox").is_some() {
            i["sandbox"] = json!("NS");
        } else if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
            i["name"] = json!("VETH");
        }
    }
    r
}

#[test]
fn the_result_matches_the_reference_bridge_and_host_local_chain_field_by_field() {
    let mut base = conf("1.0.0");
    // The reference plugin refuses a default route from both the IPAM and
    // isDefaultGateway; the IPAM's other routes stay.
    base["ipam"]["routes"] = json!([{ "dst": "10.99.0.0/16", "gw": "10.77.0.254" }]);
    let reference = common::sandbox("cni_reference", |s| {
        let bridge = common::cni_plugin("bridge")?;
        common::no_dad(s.host());
        let _ns = s.netns_dir().create("c").unwrap();
        let mut c = base.clone();
        c["type"] = json!("bridge");
        c["ipam"]["dataDir"] = json!("/run/cni-test/host-local");
        c.as_object_mut().unwrap().remove("netplumb");
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "ref"),
            ("CNI_NETNS", &ns_path(s, "c")),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", bridge.parent().unwrap().to_str().unwrap()),
        ];
        let (ok, out) = exec(&bridge, &env, &c);
        assert!(ok, "{out}");
        Some(json_of(&out))
    })
    .flatten();
    let Some(reference) = reference else {
        return;
    };
    let ours = common::sandbox("cni_reference_ours", |s| {
        common::no_dad(s.host());
        let _ns = s.netns_dir().create("c").unwrap();
        let (ok, out) = cni("ADD", "ours", &ns_path(s, "c"), &base);
        assert!(ok, "{out}");
        json_of(&out)
    });
    let Some(ours) = ours else {
        return;
    };
    assert_eq!(comparable(ours), comparable(reference));
}

#[test]
fn another_ipam_type_is_delegated_to_its_plugin() {
    common::sandbox("cni_delegate", |s| {
        let Some(st) = common::cni_plugin("static") else {
            return;
        };
        common::no_dad(s.host());
        let ns = s.netns_dir().create("d").unwrap();
        let path = ns_path(s, "d");
        let mut c = conf("1.0.0");
        c["ipam"] = json!({
            "type": "static",
            "addresses": [{ "address": "10.55.0.7/24", "gateway": "10.55.0.1" }],
            "routes": [{ "dst": "10.98.0.0/16" }],
        });
        let cni_path = st.parent().unwrap().to_str().unwrap().to_owned();
        let (p, cp) = (path.as_str(), cni_path.as_str());
        let env = |cmd: &'static str| {
            [
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", "d1"),
                ("CNI_NETNS", p),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", cp),
            ]
        };
        let (ok, out) = exec(binary(), &env("ADD"), &c);
        assert!(ok, "{out}");
        let r = json_of(&out);
        assert_eq!(
            r["ips"],
            json!([{ "address": "10.55.0.7/24", "gateway": "10.55.0.1", "interface": 2 }])
        );
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let (addrs, routes) = common::addrs_and_routes(&mut inside);
        assert!(
            addrs.iter().any(|a| a.contains("10.55.0.7/24")),
            "{addrs:?}"
        );
        assert!(
            routes
                .iter()
                .any(|r| r.contains("10.98.0.0/16") && r.contains("10.55.0.1")),
            "{routes:?}"
        );
        let mut host = common::rtnl(s);
        let br = host.link("cni7").unwrap();
        let gw: Vec<String> = host
            .addrs(Some((&br).into()))
            .unwrap()
            .iter()
            .map(|a| a.addr.to_string())
            .collect();
        assert!(gw.contains(&"10.55.0.1/24".to_owned()), "{gw:?}");
        let (ok, out) = exec(binary(), &env("DEL"), &c);
        assert!(ok, "{out}");
        gone_soon(&mut inside, "eth0");
        // A plugin that is not there: the environment's fault (4), nothing made.
        let before = common::link_names(&mut host);
        c["ipam"]["type"] = json!("nosuch");
        let (ok, out) = exec(binary(), &env("ADD"), &c);
        assert_eq!(error_of(ok, &out).0, 4, "{out}");
        assert_eq!(common::link_names(&mut host), before);
        drop(ns);
    });
}

#[test]
fn runtime_config_ips_and_mac_are_honoured() {
    common::sandbox("cni_ips_mac", |s| {
        common::no_dad(s.host());
        let ns = s.netns_dir().create("m").unwrap();
        let path = ns_path(s, "m");
        let mut c = conf("1.1.0");
        c["runtimeConfig"] = json!({
            "ips": ["10.77.0.77/24", "fd77::77"],
            "mac": "02:00:00:aa:bb:cc",
        });
        let (ok, out) = cni("ADD", "m1", &path, &c);
        assert!(ok, "{out}");
        let r = json_of(&out);
        assert_eq!(r["ips"][0]["address"], "10.77.0.77/24");
        assert_eq!(r["ips"][1]["address"], "fd77::77/64");
        assert_eq!(r["interfaces"][2]["mac"], "02:00:00:aa:bb:cc");
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let eth0 = inside.link("eth0").unwrap();
        assert_eq!(
            eth0.mac.map(|m| m.to_string()).as_deref(),
            Some("02:00:00:aa:bb:cc")
        );
        // An address outside the network: refused, naming it, nothing made.
        let ns2 = s.netns_dir().create("m2").unwrap();
        c["runtimeConfig"] = json!({ "ips": ["10.1.2.3/24"] });
        let (ok, out) = cni("ADD", "m2", &ns_path(s, "m2"), &c);
        let (_, msg) = error_of(ok, &out);
        assert!(
            msg.contains("10.1.2.3") || out.contains("10.1.2.3"),
            "{out}"
        );
        assert!(Rtnl::open_in(&ns2)
            .unwrap()
            .link("eth0")
            .unwrap_err()
            .is_not_found());
        let (ok, out) = cni("DEL", "m1", &path, &c);
        assert!(ok, "{out}");
    });
}

#[test]
fn del_after_an_add_killed_at_any_moment_leaves_nothing() {
    common::sandbox("cni_killed_add", |s| {
        common::no_dad(s.host());
        let mut c = conf("1.1.0");
        c["runtimeConfig"] = json!({ "portMappings": [
            { "hostPort": 8090, "containerPort": 80, "protocol": "tcp" }] });
        let mut rng = common::Rng::from_clock();
        let mut killed = 0;
        for round in 0..12 {
            let name = format!("k{round}");
            let ns = s.netns_dir().create(&name).unwrap();
            let path = ns_path(s, &name);
            let mut child = Command::new(binary())
                .env("CNI_COMMAND", "ADD")
                .env("CNI_CONTAINERID", &name)
                .env("CNI_NETNS", &path)
                .env("CNI_IFNAME", "eth0")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(c.to_string().as_bytes())
                .unwrap();
            // Somewhere in its 2-5 ms: before, during or after the kernel's work.
            let delay = rng.below(6000) as u64;
            std::thread::sleep(std::time::Duration::from_micros(delay));
            let _ = child.kill();
            let status = child.wait().unwrap();
            killed += usize::from(!status.success());
            let (ok, out) = cni("DEL", &name, &path, &c);
            assert!(ok, "round {round} ({delay} µs): {out}");
            let mut inside = Rtnl::open_in(&ns).unwrap();
            gone_soon(&mut inside, "eth0");
        }
        // Most were killed before they finished (the others are plain DELs).
        assert!(killed >= 6, "only {killed} of 12 ADDs were killed");
        // Nothing of any of them is left: no record, lease, port or veth.
        let state = netplumb::network::HostOptions::new("/run/cni-test/state")
            .run_dir("/run/cni-test/run")
            .open(s.host())
            .unwrap();
        assert!(state.attachments(Some("cninet")).unwrap().is_empty());
        assert!(state.ipam().leases("cninet").unwrap().is_empty());
        assert!(state.ipam().leases("cninet/v6").unwrap().is_empty());
        assert!(state.published_ports().unwrap().is_empty());
        drop(state);
        let fw = netplumb::firewall::open(netplumb::firewall::Backend::Nftables, s.host())
            .unwrap()
            .state()
            .unwrap();
        assert!(fw.ports.is_empty(), "{:?}", fw.ports);
        let mut host = common::rtnl(s);
        no_veths_soon(&mut host);
    });
}
