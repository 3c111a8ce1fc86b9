//! Where the state lives: the network definitions in the durable state folder, leases,
//! published ports and attachment records in one database of the runtime folder.
//! - a reboot (fresh namespaces, the durable folder kept, the runtime folder emptied or
//!   holding a past boot's database) leaves the networks defined and usable, with no
//!   lease, port or record, and a connect makes the bridge again;
//! - a state folder in the old layout (`ipam.db` with the records, `ports/published`) is
//!   migrated: definitions kept, runtime state moved when written during this boot and
//!   dropped when written before it.

#![cfg(feature = "store")]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use common::{no_dad, TempDir};
use netplumb::ipam::{Ipam, NetworkSpec, Owner};
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, HostOptions, NetworkConfig};
use netplumb::Netns;

fn ctr(s: &Sandbox, id: &str) -> (Netns, Container) {
    let ns = s.netns_dir().create(id).unwrap();
    no_dad(&ns);
    let c = Container::new(id, &ns)
        .name(id)
        .publish("80".parse().unwrap());
    (ns, c)
}

/// Boot 1: two networks, three containers with published ports.
fn first_boot(s: &Sandbox, state: &Path) {
    no_dad(s.host());
    let mut h = Host::open_in(s.host(), state).unwrap();
    assert_eq!(h.run_dir(), state.join("run"));
    for (n, sub) in [("n1", "10.70.0.0/24"), ("n2", "10.71.0.0/24")] {
        h.create_network(&NetworkConfig::new(n).subnet(sub.parse().unwrap()))
            .unwrap();
    }
    for (net, id) in [("n1", "a1"), ("n1", "a2"), ("n2", "a3")] {
        h.connect(net, &ctr(s, id).1).unwrap();
    }
    assert_eq!(h.attachments(None).unwrap().len(), 3);
    assert_eq!(h.published_ports().unwrap().len(), 3);
    assert!(state.join("networks/n1.net").exists());
}

/// Boot 2: the networks are there, nothing else; connecting works and starts afresh.
fn second_boot(s: &Sandbox, state: &Path) {
    no_dad(s.host());
    let mut h = Host::open_in(s.host(), state).unwrap();
    let names: Vec<String> = h.networks().unwrap().into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["n1", "n2"]);
    assert!(h.attachments(None).unwrap().is_empty());
    assert!(h.published_ports().unwrap().is_empty());
    for n in ["n1", "n2"] {
        assert!(h.ipam().leases(n).unwrap().is_empty(), "{n}");
        assert!(h.ipam().network(n).unwrap().cursor.is_none(), "{n}");
    }
    let (ns, c) = ctr(s, "b1");
    let a = h.connect("n1", &c).unwrap();
    assert_eq!(a.addrs, ["10.70.0.2/24".parse().unwrap()]);
    assert_eq!(a.ports[0].host_port, 32768);
    // The bridge is back, with its gateway, and carries traffic.
    common::serve_peer(&ns, "0.0.0.0:80".parse().unwrap());
    let to = SocketAddr::new(a.addrs[0].addr(), 80);
    assert!(common::call_peer(s.host(), to).is_some(), "b1 at {to}");
    h.disconnect("n1", "b1").unwrap();
    h.remove_network("n2", false).unwrap();
    assert!(!state.join("networks/n2.net").exists());
}

#[test]
fn reboot_keeps_networks_and_drops_leases_ports_and_records() {
    let state = TempDir::new("reboot");
    let ok = common::sandbox("reboot_keeps_networks_1", |s| first_boot(s, &state.0));
    if ok.is_none() {
        return;
    }
    // The reboot: new namespaces (the sandbox), the runtime folder emptied.
    std::fs::remove_dir_all(state.0.join("run")).unwrap();
    common::sandbox("reboot_keeps_networks_2", |s| second_boot(s, &state.0));
}

#[test]
fn a_past_boots_runtime_database_is_never_read() {
    let state = TempDir::new("past-boot");
    let ok = common::sandbox("past_boot_1", |s| first_boot(s, &state.0));
    if ok.is_none() {
        return;
    }
    // A runtime folder that outlived the reboot: its database is a past boot's.
    let run = state.0.join("run");
    let past = run.join("netplumb-00000000-0000-0000-0000-000000000000.db");
    for e in std::fs::read_dir(&run).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(ext) = name
            .strip_prefix("netplumb-")
            .and_then(|n| n.split_once(".db"))
        {
            let to = format!("{}{}", past.display(), ext.1);
            std::fs::rename(e.path(), to).unwrap();
        }
    }
    common::sandbox("past_boot_2", |s| second_boot(s, &state.0));
    assert!(!past.exists(), "the past boot's database was not removed");
}

/// Writes a state folder in the old layout: `ipam.db` (IPAM tables, `net_networks`,
/// `net_attachments`) and `ports/published`, with one network `m1`, container `c1`
/// holding 10.80.0.2 and host port 32768.
fn old_layout(dir: &Path) {
    let ipam = Ipam::open(dir.join("ipam.db")).unwrap();
    ipam.create_network(
        &NetworkSpec::new("m1")
            .subnet("10.80.0.0/24".parse().unwrap())
            .reserve("10.80.0.9".parse().unwrap()),
    )
    .unwrap();
    ipam.allocate("m1", &Owner::new("c1", "eth0")).unwrap();
    drop(ipam);
    let db = rusqlite::Connection::open(dir.join("ipam.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE net_networks (name TEXT PRIMARY KEY, data TEXT NOT NULL);
         CREATE TABLE net_attachments (network TEXT NOT NULL, container TEXT NOT NULL,
             data TEXT NOT NULL, files INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (network, container));
         INSERT INTO net_networks VALUES ('m1', 'id=ab
bridge=br-m1
bridge_created=true
subnets=10.80.0.0/24
gateways=10.80.0.1
icc=true
masquerade=true
firewall=nftables
');
         INSERT INTO net_attachments VALUES ('m1', 'c1', 'name=c1
ifname=eth0
host_veth=veth1234567
addrs=10.80.0.2/24
ports=tcp,0.0.0.0,32768,80
', 0);",
    )
    .unwrap();
    drop(db);
    std::fs::create_dir_all(dir.join("ports")).unwrap();
    std::fs::write(
        dir.join("ports/published"),
        "port tcp 0.0.0.0 32768 80\nlast tcp 0.0.0.0 32768-60999 32768\n",
    )
    .unwrap();
}

fn migrated(s: &Sandbox, state: &Path, same_boot: bool) {
    let run = TempDir::new("migrate-run");
    let h = HostOptions::new(state)
        .run_dir(&run.0)
        .open(s.host())
        .unwrap();
    let net = h.network("m1").unwrap();
    assert_eq!(net.bridge, "br-m1");
    assert!(!state.join("ipam.db").exists());
    assert!(state.join("ipam.db.migrated").exists());
    assert!(state.join("ports.migrated/published").exists());
    let ipam = h.ipam().network("m1").unwrap();
    assert_eq!(
        ipam.reserved,
        ["10.80.0.9".parse::<std::net::IpAddr>().unwrap()]
    );
    let leases = h.ipam().leases("m1").unwrap();
    let atts = h.attachments(None).unwrap();
    let ports = h.published_ports().unwrap();
    if same_boot {
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0].address.to_string(), "10.80.0.2");
        assert_eq!(atts.len(), 1);
        assert_eq!(atts[0].host_veth, "veth1234567");
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].host_port, 32768);
    } else {
        assert!(leases.is_empty() && atts.is_empty() && ports.is_empty());
        assert!(ipam.cursor.is_none());
    }
    drop(h);
    // A second open finds nothing left to migrate.
    HostOptions::new(state)
        .run_dir(&run.0)
        .open(s.host())
        .unwrap();
}

#[test]
fn an_old_layout_written_this_boot_is_migrated_with_its_runtime_state() {
    let state = TempDir::new("migrate-same");
    old_layout(&state.0);
    common::sandbox("old_layout_same_boot", |s| migrated(s, &state.0, true));
}

#[test]
fn an_old_layout_written_before_the_boot_keeps_only_definitions() {
    let state = TempDir::new("migrate-past");
    old_layout(&state.0);
    let long_ago = UNIX_EPOCH + Duration::from_secs(1_000_000);
    for f in ["ipam.db", "ipam.db-wal", "ports/published"] {
        if let Ok(file) = std::fs::File::options().append(true).open(state.0.join(f)) {
            file.set_modified(long_ago).unwrap();
        }
    }
    common::sandbox("old_layout_past_boot", |s| migrated(s, &state.0, false));
}
