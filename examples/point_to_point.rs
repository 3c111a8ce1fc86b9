//! Two containers started with `--net=none`, joined directly by a veth pair with /32
//! addresses and a host route to each other over the link. No bridge.
//!
//! ```text
//! ip link add A type veth peer name B netns ctr2        (A in ctr1)
//! ip -n ctr1 addr add 10.1.1.1/32 peer 10.1.1.2 dev A
//! ip -n ctr2 addr add 10.1.1.2/32 dev B
//! ip -n ctr2 route add 10.1.1.1/32 dev B scope link
//! ip -n ctr1 link set A up; ip -n ctr2 link set B up
//! ```
//!
//! Runs inside a throwaway sandbox: `cargo run --example point_to_point` as root.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use netplumb::addr::Addr;
use netplumb::link::{LinkSet, Veth};
use netplumb::route::{Route, Scope};
use netplumb::{Netns, Request, Rtnl};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn run(r: &mut Rtnl, name: &str, req: &impl Request) -> netplumb::Result<()> {
    println!("[{name}] {req}");
    r.execute(req)
}

fn point_to_point() -> Res<()> {
    // `--net=none`: each container has a namespace with only lo.
    let (c1, c2) = (Netns::new()?, Netns::new()?);
    let (mut r1, mut r2) = (Rtnl::open_in(&c1)?, Rtnl::open_in(&c2)?);
    for (r, n) in [(&mut r1, "ctr1"), (&mut r2, "ctr2")] {
        run(r, n, &LinkSet::new("lo").up())?;
    }
    run(
        &mut r1,
        "ctr1",
        &Veth::new("A").peer("B").peer_netns(&c2).up(),
    )?;
    let (a, b) = (r1.link("A")?, r2.link("B")?);
    run(&mut r2, "ctr2", &LinkSet::new(&b).up())?;
    run(
        &mut r1,
        "ctr1",
        &Addr::new(&a, "10.1.1.1/32".parse()?).peer("10.1.1.2".parse()?),
    )?;
    run(&mut r2, "ctr2", &Addr::new(&b, "10.1.1.2/32".parse()?))?;
    run(
        &mut r2,
        "ctr2",
        &Route::new("10.1.1.1/32".parse()?)
            .dev(&b)
            .scope(Scope::Link),
    )?;

    for (r, n) in [(&mut r1, "ctr1"), (&mut r2, "ctr2")] {
        for rt in r.main_routes()? {
            println!("[{n}] route {} dev if{}", rt.dst, rt.oif.unwrap_or(0));
        }
    }

    let listener = c2.run(|| TcpListener::bind("10.1.1.2:0"))??;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> std::io::Result<String> {
        let (mut s, peer) = listener.accept()?;
        let mut b = [0u8; 5];
        s.read_exact(&mut b)?;
        s.write_all(&b)?;
        Ok(peer.to_string())
    });
    let mut s = c1.run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)))??;
    s.write_all(b"hello")?;
    let mut b = [0u8; 5];
    s.read_exact(&mut b)?;
    let peer = server.join().map_err(|_| "server thread panicked")??;
    println!(
        "[ctr1] TCP to {addr}: echoed {:?}, server saw {peer}",
        std::str::from_utf8(&b)?
    );
    Ok(())
}

fn main() -> Res<()> {
    // The namespaces are unnamed and die with the sandbox thread, on error too.
    netplumb::netns::sandbox(|_| point_to_point().map_err(|e| e.to_string()))??;
    println!("done: nothing is left behind");
    Ok(())
}
