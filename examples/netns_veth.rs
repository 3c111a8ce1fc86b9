//! The `ip netns` walkthrough as library calls: named namespaces and a veth pair.
//!
//! Two named namespaces joined by a veth pair, addresses, `lo` up, a real UDP exchange
//! between them, and a rename of the peer to `eth0`. Equivalent commands:
//!
//! ```text
//! ip netns add ns1; ip netns add ns2
//! ip link add veth0 type veth peer name veth1
//! ip link set veth0 netns ns1; ip link set veth1 netns ns2
//! ip -n ns1 addr add 10.0.0.1/24 dev veth0; ip -n ns2 addr add 10.0.0.2/24 dev veth1
//! ip -n ns1 link set lo up; ip -n ns1 link set veth0 up; (same in ns2)
//! ip netns exec ns1 ping 10.0.0.2
//! ip -n ns2 link set veth1 down; ip -n ns2 link set veth1 name eth0; ip -n ns2 link set eth0 up
//! ip netns del ns1; ip netns del ns2
//! ```
//!
//! Everything happens inside a throwaway sandbox (fresh network and mount namespaces), with
//! the named namespaces under a folder of the sandbox's private `/run`: nothing on the
//! machine changes. Run with `cargo run --example netns_veth` as root.

use std::net::UdpSocket;
use std::time::Duration;

use netplumb::addr::Addr;
use netplumb::link::{LinkSet, Veth};
use netplumb::{Netns, NetnsDir, Request, Rtnl};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Prints the request as the `ip` command it stands for (`-n NS` when not on the host),
/// then runs it.
fn run(r: &mut Rtnl, req: &impl Request) -> netplumb::Result<()> {
    match r.netns().name() {
        Some(ns) => println!("[{ns}] {req}"),
        None => println!("[host] {req}"),
    }
    r.execute(req)
}

fn walkthrough(dir: &NetnsDir) -> Res<()> {
    println!(
        "ip netns add ns1; ip netns add ns2   (folder {})",
        dir.dir().display()
    );
    let ns1 = dir.create("ns1")?;
    let ns2 = dir.create("ns2")?;
    println!("ip netns list -> {:?}", dir.list()?);

    let mut host = Rtnl::open_in(&Netns::current()?)?;
    run(&mut host, &Veth::new("veth0").peer("veth1"))?;
    run(&mut host, &LinkSet::new("veth0").netns(&ns1))?;
    run(&mut host, &LinkSet::new("veth1").netns(&ns2))?;

    let (mut r1, mut r2) = (Rtnl::open_in(&ns1)?, Rtnl::open_in(&ns2)?);
    let lo = r1.link("lo")?;
    println!(
        "[ns1] lo is {}",
        if lo.is_up() {
            "UP"
        } else {
            "DOWN (a new namespace's lo starts down)"
        }
    );
    let (v0, v1) = (r1.link("veth0")?, r2.link("veth1")?);
    run(&mut r1, &Addr::new(&v0, "10.0.0.1/24".parse()?))?;
    run(&mut r2, &Addr::new(&v1, "10.0.0.2/24".parse()?))?;
    for (r, l) in [(&mut r1, &v0), (&mut r2, &v1)] {
        run(r, &LinkSet::new("lo").up())?;
        run(r, &LinkSet::new(l).up())?;
    }

    // The peer pairing `ip link` shows as veth0@ifN.
    let veth0 = r1.link("veth0")?;
    let (_, peer) = r1.veth_peer(&veth0, std::slice::from_ref(&ns2))?;
    println!("[ns1] veth0@if{}: peer is {} in ns2", peer.index, peer.name);

    // Real traffic: a UDP datagram from ns1 to ns2 and back.
    let server = ns2.run(|| UdpSocket::bind("10.0.0.2:0"))??;
    let to = server.local_addr()?;
    let client = ns1.run(|| UdpSocket::bind("10.0.0.1:0"))??;
    client.set_read_timeout(Some(Duration::from_secs(2)))?;
    server.set_read_timeout(Some(Duration::from_secs(2)))?;
    client.send_to(b"hello", to)?;
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf)?;
    server.send_to(&buf[..n], from)?;
    let (n, _) = client.recv_from(&mut buf)?;
    println!(
        "[ns1] 10.0.0.1 -> 10.0.0.2: sent and echoed {:?}",
        std::str::from_utf8(&buf[..n])?
    );

    // Rename the peer to eth0, as a runtime does for a container.
    run(&mut r2, &LinkSet::new(&v1).down())?;
    run(&mut r2, &LinkSet::new(&v1).name("eth0"))?;
    run(&mut r2, &LinkSet::new("eth0").up())?;
    println!(
        "[ns2] links: {:?}",
        r2.links()?
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>()
    );
    Ok(())
}

fn main() -> Res<()> {
    netplumb::netns::sandbox(|_| {
        let dir = NetnsDir::new("/run/netplumb-example/netns");
        let result = walkthrough(&dir);
        // Clean up on success and on error alike.
        println!("ip netns del ns1; ip netns del ns2");
        let cleanup = dir.delete_all();
        result.map_err(|e| e.to_string())?;
        cleanup.map_err(|e| e.to_string())
    })??;
    println!("done: nothing is left behind");
    Ok(())
}
