//! Three hosts run the `netplumb` command as operators would: each host a network
//! namespace on one underlay segment, etcd on the underlay, a `netplumb agent` on every
//! host (registration TTL 2 s, `--store-ttl`), one-shot commands beside it. Checked:
//! - idle for three TTLs, the hosts' containers still reach each other (nothing expired);
//! - a container run on host 3 is known to host 1 (FDB entry of its MAC) and reachable
//!   from it with no further command; the time from `run` returning to host 1's entry is
//!   printed;
//! - host 3's agent killed (SIGKILL): hosts 1 and 2 drop host 3 once its registration
//!   lapses (the time printed);
//! - `run --network ov1 -p` on host 2 answers on host 2's underlay address;
//! - a container whose namespace vanished is taken off by `gc`; `rm` of the others and
//!   `network rm ov1` leave no lease, link or etcd key.

#![cfg(all(feature = "etcd", feature = "store"))]

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use netplumb::addr::Addr;
use netplumb::etcd::{Etcd, EtcdConfig};
use netplumb::link::MacAddr;
use netplumb::netns::Sandbox;
use netplumb::{Netns, NetnsDir, Rtnl};

const TTL_SECS: u64 = 2;
const STORE: &str = "192.168.99.254";

fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::example_binary("netplumb"))
}

/// One host: its namespace, folders and command line.
struct HostNs {
    n: u8,
    ns: Netns,
    root: PathBuf,
}

impl HostNs {
    fn new(s: &Sandbox, n: u8) -> HostNs {
        let ns = common::underlay_machine(s, &format!("h{n}"), &format!("192.168.99.{n}/24"));
        let root = PathBuf::from(format!("/run/overlay-hosts/h{n}"));
        std::fs::create_dir_all(root.join("netns")).unwrap();
        HostNs { n, ns, root }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(binary());
        c.args(["--state-dir", &self.root.join("state").to_string_lossy()])
            .args(["--netns-dir", &self.root.join("netns").to_string_lossy()])
            .args(["--store", &format!("etcd://{STORE}:2379")])
            .args(["--host-id", &format!("h{}", self.n)])
            .args(["--advertise-addr", &format!("192.168.99.{}", self.n)])
            .args(["--store-ttl", &TTL_SECS.to_string()])
            .args(args);
        c
    }

    fn np(&self, line: &str) -> Output {
        let args: Vec<&str> = line.split_whitespace().collect();
        let mut c = self.command(&args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.ns.spawn(&mut c).unwrap().wait_with_output().unwrap()
    }

    /// `netplumb LINE` on this host must succeed; returns its stdout.
    fn ok(&self, line: &str) -> String {
        let o = self.np(line);
        assert!(
            o.status.success(),
            "h{}: netplumb {line}: {}{}",
            self.n,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn agent(&self) -> Child {
        let mut c = self.command(&["agent"]);
        c.env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.ns.spawn(&mut c).unwrap()
    }

    /// Container `name`'s namespace on this host.
    fn container(&self, name: &str) -> Netns {
        NetnsDir::new(self.root.join("netns")).open(name).unwrap()
    }

    /// The underlay addresses host `self` sends ov1's frames to (its FDB).
    fn fdb_dsts(&self) -> BTreeSet<IpAddr> {
        self.fdb().into_iter().filter_map(|(_, d)| d).collect()
    }

    fn fdb(&self) -> Vec<(Option<MacAddr>, Option<IpAddr>)> {
        let mut r = Rtnl::open_in(&self.ns).unwrap();
        let Some(vx) = r
            .links()
            .unwrap()
            .into_iter()
            .find(|l| l.name.starts_with("vx-"))
        else {
            return Vec::new();
        };
        r.fdb(&vx)
            .unwrap()
            .into_iter()
            .map(|e| (e.mac, e.dst))
            .collect()
    }

    fn links(&self) -> Vec<String> {
        common::link_names(&mut Rtnl::open_in(&self.ns).unwrap())
    }
}

/// The container's eth0 address and MAC on ov1.
fn addr_of(h: &HostNs, name: &str) -> (IpAddr, MacAddr) {
    let mut r = Rtnl::open_in(&h.container(name)).unwrap();
    let eth0 = r.link("eth0").unwrap();
    let a = r.addrs(Some((&eth0).into())).unwrap();
    (a[0].addr.addr(), eth0.mac.unwrap())
}

fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
    t.elapsed()
}

fn reaches(from: &Netns, to: IpAddr, port: u16) -> bool {
    common::call_peer(from, SocketAddr::new(to, port)).is_some()
}

fn kill9(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// The agents, killed when dropped: also when the test fails half-way.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(kill9);
    }
}

#[test]
fn three_hosts_with_agents_through_the_command() {
    if !common::etcd::available("overlay_hosts") {
        return;
    }
    common::sandbox("overlay_hosts", |s| {
        let hosts: Vec<HostNs> = (1..=3).map(|n| HostNs::new(s, n)).collect();
        // etcd on the underlay, where every host reaches it.
        let mut r = common::rtnl(s);
        let ul = r.link("underlay").unwrap();
        r.execute(&Addr::new(&ul, format!("{STORE}/24").parse().unwrap()))
            .unwrap();
        let srv = common::etcd::EtcdServer::start_with(common::etcd::EtcdOptions {
            also_on: Some(STORE.parse().unwrap()),
            ..Default::default()
        });
        let etcd =
            Etcd::connect(EtcdConfig::new(&srv.url()).unwrap().dial_in(srv.netns())).unwrap();
        let [h1, h2, h3] = [&hosts[0], &hosts[1], &hosts[2]];

        h1.ok("network create --driver overlay --subnet 10.77.0.0/24 ov1");
        let mut agents = Agents(hosts.iter().map(HostNs::agent).collect());
        h1.ok("run --name a --network ov1");
        h2.ok("run --name b --network ov1");
        let (a_ip, _) = addr_of(h1, "a");
        let (b_ip, _) = addr_of(h2, "b");
        common::serve_peer(&h1.container("a"), SocketAddr::from(([0, 0, 0, 0], 7000)));
        common::serve_peer(&h2.container("b"), SocketAddr::from(([0, 0, 0, 0], 7000)));

        // Idle for three TTLs: the one-shots' leases lapsed long ago; the agents hold on.
        std::thread::sleep(Duration::from_secs(3 * TTL_SECS + 1));
        assert!(
            reaches(&h2.container("b"), a_ip, 7000),
            "b -> a after idling"
        );
        assert!(
            reaches(&h1.container("a"), b_ip, 7000),
            "a -> b after idling"
        );

        // A container on host 3, learned by host 1 with no command run there.
        h3.ok("run --name c --network ov1");
        let (c_ip, c_mac) = addr_of(h3, "c");
        let learned = until("host 1 learns c", Duration::from_secs(10), || {
            h1.fdb()
                .contains(&(Some(c_mac), Some("192.168.99.3".parse().unwrap())))
        });
        eprintln!(
            "c's FDB entry on host 1: {:.2} ms after run returned",
            learned.as_secs_f64() * 1e3
        );
        common::serve_peer(&h3.container("c"), SocketAddr::from(([0, 0, 0, 0], 7000)));
        assert!(reaches(&h1.container("a"), c_ip, 7000), "a -> c");

        // Host 3's agent dies: the others drop it once its registration lapses.
        let h3_ip: IpAddr = "192.168.99.3".parse().unwrap();
        assert!(h1.fdb_dsts().contains(&h3_ip) && h2.fdb_dsts().contains(&h3_ip));
        kill9(&mut agents.0[2]);
        let dropped = until(
            "hosts 1 and 2 drop host 3",
            Duration::from_secs(10 * TTL_SECS),
            || !h1.fdb_dsts().contains(&h3_ip) && !h2.fdb_dsts().contains(&h3_ip),
        );
        eprintln!(
            "host 3 dropped {:.2} s after its agent was killed (TTL {TTL_SECS} s)",
            dropped.as_secs_f64()
        );
        assert!(
            !reaches(&h1.container("a"), c_ip, 7000),
            "c is unreachable once dropped"
        );
        assert!(reaches(&h1.container("a"), b_ip, 7000), "a -> b still");

        // A published port through the gateway bridge, from another host.
        h2.ok("run --name d --network ov1 -p 8090:80");
        common::serve_peer(&h2.container("d"), SocketAddr::from(([0, 0, 0, 0], 80)));
        assert!(
            reaches(&h1.ns, "192.168.99.2".parse().unwrap(), 8090),
            "h1 -> h2:8090"
        );

        // gc takes off a container whose namespace went away behind our back.
        h2.ok("run --name e --network ov1");
        h2.ok("netns del e");
        assert!(h2.ok("gc").contains("disconnected ov1/"));

        // rm everywhere (host 3 without its agent), then the network.
        h1.ok("rm a");
        h2.ok("rm b");
        h2.ok("rm d");
        h3.ok("rm c");
        assert!(
            !reaches(&h1.ns, "192.168.99.2".parse().unwrap(), 8090),
            "port after rm"
        );
        let v: serde_json::Value = serde_json::from_str(&h1.ok("network inspect ov1")).unwrap();
        assert_eq!(v[0]["Containers"].as_object().unwrap().len(), 0, "{v}");
        h1.ok("network rm ov1");
        drop(agents);
        for h in &hosts {
            let left: Vec<String> = h
                .links()
                .into_iter()
                .filter(|l| {
                    l.starts_with("ov-")
                        || l.starts_with("vx-")
                        || l.starts_with("veth")
                        || l == "docker_gwbridge"
                })
                .collect();
            assert!(left.is_empty(), "h{}: links left {left:?}", h.n);
        }
        // No key of ov1 left in etcd: no lease, no host, no endpoint, no definition.
        let keys: Vec<String> = etcd
            .range(b"/", Some(b"\xff"), 0)
            .unwrap()
            .kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .filter(|k| k.contains("ov1") || k.contains("10.77."))
            .collect();
        assert!(keys.is_empty(), "etcd keys left: {keys:?}");
    });
}
