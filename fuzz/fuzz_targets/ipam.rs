//! CIDRs and IPAM configuration: `parse_subnet`/`parse_address` (which print back as they
//! parse), `NetworkSpec` building from arbitrary values, and `Ipam` over a `MemoryStore`
//! running what the input says. Input is text, one command a line:
//!
//! ```text
//! pool 10.0.0.0/8 24   net NAME   subnet S   gateway A   range S   aux A   bip A/N
//! avoid S   v6   nogw   create   alloc NET OWNER   addr NET OWNER A   release NET A
//! free NET OWNER   show NET   gc OWNER...   rm NET
//! ```
//!
//! Every lease handed out must lie in its network's subnet (and, when next-free allocation
//! gives a new one, in the network's bounds), never be the gateway or a reserved address,
//! and have a printable CIDR; asking again gives the lease the owner holds.
#![no_main]

use std::net::IpAddr;

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use netplumb::ipam::{
    parse_address, parse_subnet, Ipam, Lease, MemoryStore, NetworkSpec, Owner, Pool, Pools,
    Released,
};

/// A prefix as the spec setters take it (host bits allowed), after checking that
/// `parse_subnet` reads what it prints.
fn prefix(s: &str) -> Option<IpNet> {
    if let Ok(n) = parse_subnet("subnet", s) {
        assert_eq!(
            parse_subnet("subnet", &n.to_string()).ok(),
            Some(n),
            "{s:?}"
        );
    }
    s.parse().ok()
}

fn address(s: &str) -> Option<IpAddr> {
    let a = parse_address("address", s).ok()?;
    assert_eq!(
        parse_address("address", &a.to_string()).ok(),
        Some(a),
        "{s:?}"
    );
    Some(a)
}

fn check(ipam: &Ipam<MemoryStore>, lease: &Lease) {
    let _ = lease.cidr();
    let net = ipam
        .network(&lease.network)
        .expect("a lease's network exists");
    assert!(
        net.subnet.contains(&lease.address),
        "{lease:?} outside {net:?}"
    );
    assert_ne!(net.gateway, Some(lease.address), "{lease:?} is the gateway");
    assert!(
        !net.reserved.contains(&lease.address),
        "{lease:?} is reserved"
    );
}

fn released(r: Result<Released, netplumb::ipam::IpamError>) {
    if let Ok(Released::Freed(l)) = r {
        let _ = l.cidr();
    }
}

fn ipam_for(lines: &[Vec<&str>]) -> Ipam<MemoryStore> {
    let mut pools = Vec::new();
    for w in lines {
        if let ["pool", base, size] = w[..] {
            if let (Some(base), Ok(size)) = (prefix(base), size.parse()) {
                pools.extend(Pool::new(base, size).ok());
            }
        }
    }
    let ipam = Ipam::new(MemoryStore::new());
    if pools.is_empty() {
        return ipam;
    }
    ipam.with_pools(Pools::new(pools))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .take(64)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let ipam = ipam_for(&lines);
    let mut spec = NetworkSpec::new("");
    for w in &lines {
        match w[..] {
            ["net", name] => spec = NetworkSpec::new(name),
            ["subnet", s] => spec = prefix(s).map_or(spec.clone(), |n| spec.subnet(n)),
            ["range", s] => spec = prefix(s).map_or(spec.clone(), |n| spec.ip_range(n)),
            ["bip", s] => spec = prefix(s).map_or(spec.clone(), |n| spec.bip(n)),
            ["avoid", s] => spec = prefix(s).map_or(spec.clone(), |n| spec.avoid(n)),
            ["gateway", a] => spec = address(a).map_or(spec.clone(), |a| spec.gateway(a)),
            ["aux", a] => spec = address(a).map_or(spec.clone(), |a| spec.reserve(a)),
            ["v6"] => spec = spec.ipv6(),
            ["nogw"] => spec = spec.no_gateway(),
            ["create"] => {
                if let Ok(net) = ipam.create_network(&spec) {
                    let _ = (net.bounds(), net.capacity());
                }
            }
            ["alloc", net, owner] => {
                let owner = Owner::new(owner, "eth0");
                let held = ipam.lease_of(net, &owner).ok().flatten();
                if let Ok(l) = ipam.allocate(net, &owner) {
                    check(&ipam, &l);
                    if held.is_some() {
                        // The lease the owner holds, wherever it is (`addr` may be outside
                        // the range).
                        assert_eq!(held, Some(l));
                        continue;
                    }
                    let n = ipam.network(net).expect("network of a lease");
                    let (lo, hi) = n.bounds().expect("an allocation had bounds");
                    assert!(lo <= l.address && l.address <= hi, "{l:?} outside {n:?}");
                }
            }
            ["addr", net, owner, a] => {
                let Some(a) = address(a) else { continue };
                if let Ok(l) = ipam.allocate_addr(net, &Owner::new(owner, "eth0"), a) {
                    check(&ipam, &l);
                    assert_eq!(l.address, a);
                }
            }
            ["release", net, a] => {
                if let Some(a) = address(a) {
                    released(ipam.release(net, a));
                }
            }
            ["free", net, owner] => released(ipam.release_owner(net, &Owner::new(owner, "eth0"))),
            ["show", net] => {
                if let Ok(n) = ipam.network(net) {
                    let _ = (n.bounds(), n.capacity());
                    for l in ipam.leases(net).expect("leases of a network") {
                        check(&ipam, &l);
                    }
                }
            }
            ["rm", net] => drop(ipam.remove_network(net)),
            ["gc", ref owners @ ..] => {
                let live: Vec<Owner> = owners.iter().map(|o| Owner::new(*o, "eth0")).collect();
                for l in ipam.gc(&live).expect("gc in memory") {
                    let _ = l.cidr();
                }
            }
            _ => {}
        }
    }
});
