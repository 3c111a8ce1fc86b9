//! One overlay network across three hosts, its definition and addresses in etcd.
//!
//! ```text
//! cargo run --features etcd --example overlay -- http://127.0.0.1:2379
//! ```
//!
//! The three hosts are namespaces joined by an underlay bridge (192.168.99.1–3/24) inside a
//! throwaway sandbox, with an "outside" machine at 192.168.99.100. etcd is reached from the
//! namespace the example was started in (its loopback), through `EtcdConfig::dial_in`, and
//! everything written there lives under a prefix of this run's own, deleted at the end.
//!
//! Host 1 creates the network (`docker network create -d overlay ov1`); hosts 2 and 3 read
//! the same definition (subnet, VNI) from etcd; one container per host joins it; the
//! containers reach each other over VXLAN and the outside machine through their gateway
//! bridge; then everything is taken down again. Needs root.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netplumb::addr::Addr;
use netplumb::etcd::{Etcd, EtcdConfig};
use netplumb::ipam::{EtcdStore, Ipam};
use netplumb::link::{Bridge, LinkSet, Veth};
use netplumb::network::{Container, Host};
use netplumb::overlay::{
    EtcdDiscovery, EtcdNetworks, Overlay, OverlayNetwork, OverlaySpec, PeerDiscovery, PeerHost,
};
use netplumb::{Netns, Rtnl};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A machine on the underlay: a namespace whose `eth0` (192.168.99.`n`/24) is a port of
/// the sandbox's bridge `ul0`.
fn machine(sandbox: &mut Rtnl, n: u8) -> Res<Netns> {
    let ns = Netns::new()?;
    let br = sandbox.link("ul0")?;
    sandbox.execute(
        &Veth::new(&format!("ul-{n}"))
            .controller(br.index)
            .up()
            .peer("eth0")
            .peer_netns(&ns),
    )?;
    let mut r = Rtnl::open_in(&ns)?;
    r.execute(&LinkSet::new("lo").up())?;
    let eth0 = r.link("eth0")?;
    r.execute(&LinkSet::new(&eth0).up())?;
    r.execute(&Addr::new(&eth0, format!("192.168.99.{n}/24").parse()?))?;
    Ok(ns)
}

/// Whether a TCP echo from `client` to `server` at `to` works; returns what the server
/// saw as the client's address.
fn echo(server: &Netns, to: SocketAddr, client: &Netns) -> Res<SocketAddr> {
    let l = server.run(|| TcpListener::bind(to))??;
    let t = std::thread::spawn(move || -> std::io::Result<SocketAddr> {
        let (mut s, peer) = l.accept()?;
        let mut b = [0u8; 4];
        s.read_exact(&mut b)?;
        s.write_all(&b)?;
        Ok(peer)
    });
    let mut c = client.run(|| TcpStream::connect_timeout(&to, Duration::from_secs(3)))??;
    c.set_read_timeout(Some(Duration::from_secs(3)))?;
    c.write_all(b"ping")?;
    let mut b = [0u8; 4];
    c.read_exact(&mut b)?;
    Ok(t.join().map_err(|_| "server thread panicked")??)
}

fn step<T>(what: &str, f: impl FnOnce() -> Res<T>) -> Res<T> {
    let t = Instant::now();
    let r = f()?;
    println!("{what:<62} {:>8.2} ms", t.elapsed().as_secs_f64() * 1e3);
    Ok(r)
}

struct Node {
    _ns: Netns,
    ov: Overlay<EtcdStore>,
    _state: StateDir,
}

/// A temporary state folder, removed on drop.
struct StateDir(std::path::PathBuf);

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scene(sb: &netplumb::netns::Sandbox, etcd: &Etcd, prefix: &str) -> Res<()> {
    let mut sandbox = Rtnl::open_in(sb.host())?;
    sandbox.execute(&Bridge::new("ul0").stp(false).up())?;
    let outside = machine(&mut sandbox, 100)?;
    let ipam = || Ipam::new(EtcdStore::new(etcd.clone()).prefix(&format!("{prefix}ipam/")));
    let nets = EtcdNetworks::new(etcd.clone()).prefix(prefix);

    let ov1: OverlayNetwork = step("[h1] docker network create -d overlay ov1", || {
        Ok(nets.create(&ipam(), &OverlaySpec::new("ov1"))?)
    })?;
    println!(
        "     subnet {}, gateway {}, VNI {}",
        ov1.subnet(),
        ov1.gateway_ip(),
        ov1.vxlan_id()
    );

    let mut nodes = Vec::new();
    for n in 1..=3u8 {
        let ns = machine(&mut sandbox, n)?;
        let state = StateDir(
            std::env::temp_dir().join(format!("netplumb-overlay-{}-{n}", std::process::id())),
        );
        let host = Host::open_in(&ns, &state.0)?;
        let me = PeerHost {
            id: format!("h{n}"),
            underlay: format!("192.168.99.{n}").parse()?,
        };
        let discovery: Arc<dyn PeerDiscovery> = Arc::new(
            EtcdDiscovery::new(etcd.clone())
                .prefix(prefix)
                .ttl(Duration::from_secs(5)),
        );
        let ov = Overlay::new(host, me, ipam(), discovery)?;
        let seen = nets.get("ov1")?.ok_or("ov1 missing from etcd")?;
        println!(
            "[h{n}] sees ov1: subnet {}, VNI {} (same: {})",
            seen.subnet(),
            seen.vxlan_id(),
            seen == ov1
        );
        nodes.push(Node {
            _ns: ns,
            ov,
            _state: state,
        });
    }

    let mut ctrs = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        let ns = Netns::new()?;
        let id = format!("c{}", i + 1);
        let att = step(
            &format!("[h{}] docker run --network ov1 ({id})", i + 1),
            || Ok(node.ov.connect(&ov1, &Container::new(&id, &ns))?),
        )?;
        println!(
            "     eth0 {} mac {} mtu {}, eth1 {} (default route)",
            att.addr, att.mac, att.mtu, att.gateway.addrs[0]
        );
        ctrs.push((id, ns, att.addr.addr()));
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        let r = step(&format!("[h{}] sync FDB/neighbour entries", i + 1), || {
            Ok(node.ov.sync(&ov1)?)
        })?;
        println!("     {} added, {} removed", r.added.len(), r.removed.len());
    }

    for (a, b) in [(0, 1), (1, 2), (2, 0)] {
        let to = SocketAddr::new(ctrs[b].2, 7000);
        let seen = echo(&ctrs[b].1, to, &ctrs[a].1)?;
        println!(
            "[{} -> {}] TCP over VXLAN to {to}: echoed, server saw {}",
            ctrs[a].0, ctrs[b].0, seen
        );
    }
    let out: SocketAddr = "192.168.99.100:8000".parse()?;
    let seen = echo(&outside, out, &ctrs[0].1)?;
    println!(
        "[c1 -> outside] TCP via docker_gwbridge to {out}: server saw {} (masqueraded)",
        seen.ip()
    );
    assert_eq!(seen.ip(), "192.168.99.1".parse::<IpAddr>()?);

    for (i, node) in nodes.iter_mut().enumerate() {
        let id = &ctrs[i].0;
        step(&format!("[h{}] docker rm {id}", i + 1), || {
            Ok(node.ov.disconnect(&ov1, id)?)
        })?;
    }
    step("[h1] docker network rm ov1", || {
        Ok(nets.remove(&ipam(), "ov1")?)
    })?;
    Ok(())
}

fn main() -> Res<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    // etcd listens where we were started; the scene lives in a sandbox.
    let here = Netns::current()?;
    let etcd = Etcd::connect(EtcdConfig::new(&url)?.dial_in(&here))?;
    let prefix = format!("/netplumb-example/{}/", std::process::id());
    println!("etcd {url}, keys under {prefix}");
    let r = netplumb::netns::sandbox(|sb| scene(sb, &etcd, &prefix))?;
    etcd.delete_prefix(&prefix)?;
    r?;
    println!("clean: sandbox gone, keys under {prefix} deleted");
    Ok(())
}
