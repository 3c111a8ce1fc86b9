//! What an operator reads in the logs of a whole run: create a network, connect a
//! container with a published port, disconnect it, remove the network.
//!
//! - `info`: one line per operation, naming the network, the container, its addresses
//!   and ports, and how long it took;
//! - `debug`: every kernel request with the namespace it went to (by name), every
//!   firewall change, sysctl write, IPAM decision, and a rollback with its cause;
//! - `trace`: the requests' sequence numbers and sizes.
//!
//! The records are caught by a logger of this test binary; there is one test in it, so
//! no other test's records mix in.

#![cfg(feature = "store")]

mod common;

use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::{Netns, Rtnl};

struct Catch(Mutex<Vec<(Level, String)>>);

impl Log for Catch {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, r: &Record) {
        if r.target().starts_with("netplumb") {
            let mut v = self.0.lock().unwrap();
            v.push((r.level(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CATCH: Catch = Catch(Mutex::new(Vec::new()));

/// The lines of `level` logged since the last call, and clears the catch.
fn take() -> Vec<(Level, String)> {
    let all = std::mem::take(&mut *CATCH.0.lock().unwrap());
    // To read what an operator reads: NETPLUMB_SHOW_LOGS=1 … -- --nocapture
    if std::env::var_os("NETPLUMB_SHOW_LOGS").is_some() {
        for (l, m) in &all {
            eprintln!("{l:5} {m}");
        }
    }
    all
}

fn lines(all: &[(Level, String)], level: Level) -> Vec<&str> {
    all.iter()
        .filter(|(l, _)| *l == level)
        .map(|(_, m)| m.as_str())
        .collect()
}

#[track_caller]
fn has(lines: &[&str], parts: &[&str]) {
    assert!(
        lines.iter().any(|l| parts.iter().all(|p| l.contains(p))),
        "no line with all of {parts:?} in:\n{}",
        lines.join("\n")
    );
}

#[test]
fn a_run_logs_each_operation_at_info_and_each_step_at_debug() {
    log::set_logger(&CATCH).unwrap();
    log::set_max_level(LevelFilter::Trace);
    common::sandbox("a_run_logs_each_operation", |s| {
        common::no_dad(s.host());
        let mut h = Host::open_in(s.host(), "/run/netplumb-logs").unwrap();
        take();
        h.create_network(
            &NetworkConfig::new("logs")
                .subnet("10.71.0.0/24".parse().unwrap())
                .bridge("br-logs"),
        )
        .unwrap();
        let all = take();
        let info = lines(&all, Level::Info);
        assert_eq!(info.len(), 1, "one info line per operation: {info:#?}");
        has(
            &info,
            &[
                "network logs created",
                "bridge br-logs",
                "10.71.0.0/24",
                " ms)",
            ],
        );
        let debug = lines(&all, Level::Debug);
        let host_ns = s.host().to_string();
        has(&debug, &[&format!("in {host_ns}: "), "br-logs"]);
        has(&debug, &["sysctl", "ip_forward"]);
        has(
            &debug,
            &[
                "firewall (",
                &format!(" in {host_ns}): add network logs on br-logs"),
            ],
        );

        let ns = s.netns_dir().create("web1").unwrap();
        common::no_dad(&ns);
        let ctr = Container::new("c0ffee000001", &ns)
            .name("web1")
            .publish("8081:80".parse().unwrap());
        let att = h.connect("logs", &ctr).unwrap();
        let all = take();
        let info = lines(&all, Level::Info);
        assert_eq!(info.len(), 1, "{info:#?}");
        has(
            &info,
            &[
                "container c0ffee000001 (web1) connected to network logs",
                "eth0 in web1",
                &att.addrs[0].to_string(),
                ":8081",
                &att.host_veth,
            ],
        );
        let debug = lines(&all, Level::Debug);
        // The container side of the veth, by the namespace's name, not a descriptor.
        has(&debug, &["in web1: ", "eth0"]);
        // The host end's request names the bridge, not its interface index.
        has(
            &debug,
            &[&format!("ip link add {} master br-logs ", att.host_veth)],
        );
        has(&debug, &["named namespace", "web1"]);
        has(
            &debug,
            &["ipam ", "c0ffee000001", &att.addrs[0].addr().to_string()],
        );
        has(
            &debug,
            &[
                "firewall (",
                "publish",
                ":8081",
                &att.addrs[0].addr().to_string(),
            ],
        );
        let trace = lines(&all, Level::Trace);
        has(&trace, &["request seq", "bytes"]);

        // A connect that fails half-way logs its rollback, with the cause, and one info
        // line saying what was asked and why it failed.
        let ns2 = s.netns_dir().create("web2").unwrap();
        common::no_dad(&ns2);
        rollback_of(&mut h, &ns2);

        h.disconnect("logs", "c0ffee000001").unwrap();
        let all = take();
        let info = lines(&all, Level::Info);
        assert_eq!(info.len(), 1, "{info:#?}");
        has(
            &info,
            &["disconnected from network logs", "c0ffee000001 (web1)"],
        );
        let debug = lines(&all, Level::Debug);
        has(
            &debug,
            &["ipam ", "releases", &att.addrs[0].addr().to_string()],
        );
        has(&debug, &["firewall (", "unpublish", ":8081"]);

        h.remove_network("logs", false).unwrap();
        let all = take();
        let info = lines(&all, Level::Info);
        has(&info, &["network logs removed", "bridge br-logs"]);
    });
}

/// Makes a connect into `ns` fail after its veth is made (the namespace has a default
/// route already) and checks the log of it.
fn rollback_of(h: &mut Host, ns: &Netns) {
    let mut inside = Rtnl::open_in(ns).unwrap();
    let gw = common::occupy_default_route(&mut inside);
    take();
    let e = h
        .connect("logs", &Container::new("c0ffee000002", ns).name("web2"))
        .unwrap_err();
    let all = take();
    let info = lines(&all, Level::Info);
    has(
        &info,
        &[
            "connect of container c0ffee000002 to network logs failed after",
            &e.to_string(),
        ],
    );
    let debug = lines(&all, Level::Debug);
    has(&debug, &["rollback of", "step(s) after", "default via"]);
    has(&debug, &["rollback: ", "undone"]);
    inside.execute(&gw.delete()).unwrap();
}
