//! IPAM on its own, as a runtime that wires its own links (or a CNI IPAM plugin) uses it:
//! no netlink, no namespaces, no root. The store is a SQLite file in a fresh temporary
//! folder, removed at the end.
//!
//! - a network from a subnet and gateway given as text, parsed with
//!   [`parse_subnet`]/[`parse_address`] (whose errors name the field and the fault);
//! - a network whose subnet comes from the address pools (Docker's: 172.17.0.0/16, …);
//! - one lease per container and interface, the same lease when asked again, a chosen
//!   address, a release, and a `gc` after a "crash" that frees the leases of containers
//!   that are not running.
//!
//! ```text
//! cargo run --example ipam
//! ```

use netplumb::ipam::{parse_address, parse_subnet, Ipam, IpamError, NetworkSpec, Owner};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("netplumb-ipam-example-{}", std::process::id()));
    let r = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let ipam = Ipam::open(dir.join("ipam.db"))?;

    // What a user typed, checked before anything is stored.
    match parse_subnet("subnet", "172.28.5.0/16") {
        Err(e) => println!("refused: {e}"),
        Ok(net) => println!("unexpectedly accepted {net}"),
    }
    let spec = NetworkSpec::new("web")
        .subnet(parse_subnet("subnet", "172.28.0.0/16")?)
        .gateway(parse_address("gateway", "172.28.0.1")?);
    let web = ipam.create_network(&spec)?;
    println!("network web: {} gateway {:?}", web.subnet, web.gateway);
    // No subnet given: the next free one of the pools.
    let db = ipam.create_network(&NetworkSpec::new("db"))?;
    println!("network db: {} (from the pools)", db.subnet);

    let a = Owner::new("3f2a1c0d9e8b", "eth0");
    let first = ipam.allocate("web", &a)?;
    let again = ipam.allocate("web", &a)?;
    assert_eq!(first.address, again.address, "one lease per owner");
    println!("{a}: {} (asked twice, same lease)", first.cidr());
    let b = Owner::new("9b8e7d6c5a4f", "eth0");
    let chosen = ipam.allocate_addr("web", &b, parse_address("ip", "172.28.0.50")?)?;
    println!("{b}: {} (chosen)", chosen.cidr());
    match ipam.allocate_addr("web", &Owner::new("c0ffee", "eth0"), chosen.address) {
        Err(e @ IpamError::AddressTaken { .. }) => println!("refused: {e}"),
        other => println!("unexpected: {other:?}"),
    }

    // Container b stops cleanly; then the runtime restarts after a crash and only a's
    // container is still running: gc frees every other lease.
    println!("release {b}: {:?}", ipam.release_owner("web", &b)?);
    let c = Owner::new("d00dfeed0001", "eth0");
    ipam.allocate("db", &c)?;
    let freed = ipam.gc(std::slice::from_ref(&a))?;
    for l in &freed {
        println!("gc freed {} of {}", l.address, l.owner);
    }
    let left: Vec<String> = ipam
        .leases("web")?
        .iter()
        .map(|l| format!("{} {}", l.address, l.owner))
        .collect();
    println!("leases of web now: {left:?}");
    Ok(())
}
