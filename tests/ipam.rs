//! IPAM behaviour, unprivileged, on both stores (memory and SQLite in a temp dir): pools
//! and subnets, overlaps, gateways, ranges, reserved and specific addresses, next-free
//! order, exhaustion, release, garbage collection, typed errors naming the bad value, and
//! the compare-and-swap retry path. Multi-process tests are in `ipam_procs.rs`.

#![cfg(feature = "store")]

mod common;
use common::TempDir;
use std::net::IpAddr;

use netplumb::ipam::{
    parse_subnet, Ipam, IpamError, MemoryStore, NetworkSpec, Owner, Pool, Pools, Released,
    SqliteStore, Store,
};
use netplumb::ErrorKind;

type Dyn = Ipam<Box<dyn Store>>;

/// Runs `f` on a memory store and on a SQLite store, both with `pools`.
fn each_store_with(pools: Pools, f: impl Fn(&Dyn)) {
    eprintln!("store: memory");
    f(&Ipam::new(Box::new(MemoryStore::new()) as Box<dyn Store>).with_pools(pools.clone()));
    eprintln!("store: sqlite");
    let dir = TempDir::new("t");
    let store = SqliteStore::open(dir.0.join("ipam.db")).unwrap();
    let ipam = Ipam::new(Box::new(store) as Box<dyn Store>).with_pools(pools);
    f(&ipam);
}

fn each_store(f: impl Fn(&Dyn)) {
    each_store_with(Pools::default(), f)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> netplumb::IpNet {
    s.parse().unwrap()
}

fn owner(i: usize) -> Owner {
    Owner::new(format!("c{i}"), "eth0")
}

fn alloc(ipam: &Dyn, network: &str, i: usize) -> String {
    ipam.allocate(network, &owner(i))
        .unwrap()
        .address
        .to_string()
}

#[test]
fn default_pools_hand_out_the_first_free_subnet() {
    each_store(|ipam| {
        let sub = |n: &str| {
            ipam.create_network(&NetworkSpec::new(n))
                .unwrap()
                .subnet
                .to_string()
        };
        assert_eq!(sub("a"), "172.17.0.0/16");
        assert_eq!(sub("b"), "172.18.0.0/16");
        ipam.create_network(&NetworkSpec::new("user").subnet(net("172.19.128.0/24")))
            .unwrap();
        assert_eq!(sub("c"), "172.20.0.0/16");
        ipam.remove_network("b").unwrap();
        assert_eq!(sub("d"), "172.18.0.0/16");
        let avoid = NetworkSpec::new("e").avoid(net("172.21.3.0/24"));
        assert_eq!(
            ipam.create_network(&avoid).unwrap().subnet.to_string(),
            "172.22.0.0/16"
        );
        for i in 0..10 {
            sub(&format!("fill{i}"));
        }
        assert_eq!(sub("after-172"), "192.168.0.0/20");
        assert_eq!(sub("next"), "192.168.16.0/20");
    });
}

#[test]
fn configured_pools_split_10_8_into_24s_and_run_out() {
    let pools = Pools::new(vec![Pool::new(net("10.0.0.0/8"), 24).unwrap()]);
    each_store_with(pools, |ipam| {
        assert_eq!(
            ipam.create_network(&NetworkSpec::new("a")).unwrap().subnet,
            net("10.0.0.0/24")
        );
        ipam.create_network(&NetworkSpec::new("u").subnet(net("10.0.1.0/25")))
            .unwrap();
        assert_eq!(
            ipam.create_network(&NetworkSpec::new("b")).unwrap().subnet,
            net("10.0.2.0/24")
        );
        let e = ipam
            .create_network(&NetworkSpec::new("v6").ipv6())
            .unwrap_err();
        assert!(
            matches!(e, IpamError::PoolsExhausted { family: "IPv6", .. }),
            "{e}"
        );
    });
    let tiny = Pools::new(vec![Pool::new(net("10.9.0.0/23"), 24).unwrap()]);
    each_store_with(tiny, |ipam| {
        ipam.create_network(&NetworkSpec::new("a")).unwrap();
        ipam.create_network(&NetworkSpec::new("b")).unwrap();
        let e = ipam.create_network(&NetworkSpec::new("c")).unwrap_err();
        assert!(
            matches!(&e, IpamError::PoolsExhausted { network, family: "IPv4" } if network == "c"),
            "{e}"
        );
        assert!(netplumb::Error::from(e).is_exhausted());
    });
}

#[test]
fn overlap_names_both_networks_and_subnets() {
    each_store(|ipam| {
        ipam.create_network(&NetworkSpec::new("mybr0").subnet(net("172.26.0.0/16")))
            .unwrap();
        for (name, subnet) in [
            ("inner", "172.26.5.0/24"),
            ("outer", "172.0.0.0/8"),
            ("same", "172.26.0.0/16"),
        ] {
            let e = ipam
                .create_network(&NetworkSpec::new(name).subnet(net(subnet)))
                .unwrap_err();
            let text = e.to_string();
            match &e {
                IpamError::Overlap {
                    network,
                    subnet: s,
                    other_network,
                    other_subnet,
                } => {
                    assert_eq!((network.as_str(), s.to_string().as_str()), (name, subnet));
                    assert_eq!(
                        (other_network.as_str(), *other_subnet),
                        ("mybr0", net("172.26.0.0/16"))
                    );
                }
                other => panic!("{other:?}"),
            }
            assert!(
                text.contains(name)
                    && text.contains(subnet)
                    && text.contains("mybr0")
                    && text.contains("172.26.0.0/16"),
                "{text}"
            );
            assert_eq!(netplumb::Error::from(e).kind(), ErrorKind::Exists);
        }
        ipam.create_network(&NetworkSpec::new("beside").subnet(net("172.27.0.0/16")))
            .unwrap();
        let e = ipam
            .create_network(&NetworkSpec::new("mybr0").subnet(net("10.0.0.0/8")))
            .unwrap_err();
        assert!(
            matches!(e, IpamError::NetworkExists { ref network } if network == "mybr0"),
            "{e}"
        );
    });
}

#[test]
fn user_subnet_gateway_and_bip() {
    each_store(|ipam| {
        let n = ipam
            .create_network(
                &NetworkSpec::new("mybr0")
                    .subnet(net("172.26.0.0/16"))
                    .gateway(ip("172.26.0.1")),
            )
            .unwrap();
        assert_eq!(n.gateway, Some(ip("172.26.0.1")));
        let lease = ipam.allocate("mybr0", &owner(1)).unwrap();
        assert_eq!(
            (lease.cidr().to_string(), lease.gateway),
            ("172.26.0.2/16".into(), Some(ip("172.26.0.1")))
        );
        ipam.create_network(
            &NetworkSpec::new("gw-last")
                .subnet(net("10.3.0.0/24"))
                .gateway(ip("10.3.0.254")),
        )
        .unwrap();
        assert_eq!(alloc(ipam, "gw-last", 1), "10.3.0.1");
        let bip = ipam
            .create_network(&NetworkSpec::new("bridge0").bip(net("192.168.5.1/24")))
            .unwrap();
        assert_eq!(
            (bip.subnet, bip.gateway),
            (net("192.168.5.0/24"), Some(ip("192.168.5.1")))
        );
        let none = ipam
            .create_network(
                &NetworkSpec::new("nogw")
                    .subnet(net("10.4.0.0/30"))
                    .no_gateway(),
            )
            .unwrap();
        assert_eq!(none.gateway, None);
        assert_eq!(
            (alloc(ipam, "nogw", 1), alloc(ipam, "nogw", 2)),
            ("10.4.0.1".into(), "10.4.0.2".into())
        );
    });
}

/// The variant, field and value an input error names.
fn named(e: &IpamError) -> (&'static str, &'static str, String) {
    match e {
        IpamError::InvalidCidr { field, value, .. } => ("InvalidCidr", field, value.clone()),
        IpamError::Invalid { field, value, .. } => ("Invalid", field, value.clone()),
        IpamError::OutOfSubnet { field, value, .. } => ("OutOfSubnet", field, value.clone()),
        other => panic!("not an input error: {other:?}"),
    }
}

#[test]
fn bad_specs_get_typed_errors_that_name_the_value() {
    let s = net("172.26.0.0/16");
    let base = || NetworkSpec::new("a").subnet(s);
    let cases = [
        (
            base().gateway(ip("10.0.0.1")),
            ("OutOfSubnet", "gateway", "10.0.0.1"),
        ),
        (
            base().gateway(ip("172.26.255.255")),
            ("Invalid", "gateway", "172.26.255.255"),
        ),
        (
            base().gateway(ip("fd00::1")),
            ("OutOfSubnet", "gateway", "fd00::1"),
        ),
        (
            NetworkSpec::new("a").subnet(net("172.26.0.5/16")),
            ("InvalidCidr", "subnet", "172.26.0.5/16"),
        ),
        (
            base().ip_range(net("172.27.0.0/24")),
            ("OutOfSubnet", "ip-range", "172.27.0.0/24"),
        ),
        (
            base().ip_range(net("172.26.0.7/24")),
            ("InvalidCidr", "ip-range", "172.26.0.7/24"),
        ),
        (
            base().reserve(ip("172.25.0.9")),
            ("OutOfSubnet", "reserved address", "172.25.0.9"),
        ),
        (
            NetworkSpec::new("has space").subnet(s),
            ("Invalid", "network name", "has space"),
        ),
    ];
    each_store(|ipam| {
        for (spec, (variant, field, value)) in cases.clone() {
            let e = ipam.create_network(&spec).unwrap_err();
            assert_eq!(named(&e), (variant, field, value.to_string()));
            assert!(e.to_string().contains(value), "{e}");
            if variant == "OutOfSubnet" {
                assert!(e.to_string().contains("172.26.0.0/16"), "{e}");
            }
            assert!(netplumb::Error::from(e).is_invalid());
        }
        assert!(
            ipam.networks().unwrap().is_empty(),
            "nothing was created by a refused spec"
        );
    });
}

#[test]
fn malformed_cidrs_are_refused_naming_the_value() {
    for bad in [
        "172.26.0.0/33",
        "172.26.0.0",
        "172.26.0.0/16/1",
        "",
        "fd00::/129",
        "300.1.1.0/24",
    ] {
        let e = parse_subnet("subnet", bad).unwrap_err();
        assert_eq!(named(&e), ("InvalidCidr", "subnet", bad.to_string()));
        assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
    }
}

#[test]
fn a_slash_30_has_one_free_address_then_is_exhausted() {
    each_store(|ipam| {
        ipam.create_network(&NetworkSpec::new("tiny").subnet(net("10.5.0.0/30")))
            .unwrap();
        assert_eq!(alloc(ipam, "tiny", 1), "10.5.0.2");
        let e = ipam.allocate("tiny", &owner(2)).unwrap_err();
        assert!(
            matches!(&e, IpamError::Exhausted { network, subnet, .. } if network == "tiny" && *subnet == net("10.5.0.0/30")),
            "{e}"
        );
        assert_eq!(netplumb::Error::from(e).kind(), ErrorKind::Exhausted);
        let req = |a: &str| ipam.allocate_addr("tiny", &owner(3), ip(a)).unwrap_err();
        assert!(matches!(
            req("10.5.0.0"),
            IpamError::Invalid {
                field: "address",
                ..
            }
        ));
        assert!(matches!(
            req("10.5.0.3"),
            IpamError::Invalid {
                field: "address",
                ..
            }
        ));
        assert!(matches!(
            req("10.5.0.1"),
            IpamError::AddressReserved {
                reason: "gateway",
                ..
            }
        ));
        assert!(matches!(
            req("10.5.0.4"),
            IpamError::OutOfSubnet {
                field: "address",
                ..
            }
        ));
        let e = req("10.5.0.2");
        assert!(
            matches!(&e, IpamError::AddressTaken { owner: o, .. } if *o == owner(1)),
            "{e}"
        );
        assert_eq!(ipam.leases("tiny").unwrap().len(), 1);
    });
}

#[test]
fn ip_range_bounds_next_free_but_not_specific_requests() {
    each_store(|ipam| {
        let spec = NetworkSpec::new("r")
            .subnet(net("10.1.0.0/16"))
            .ip_range(net("10.1.5.0/30"));
        assert_eq!(ipam.create_network(&spec).unwrap().capacity(), 4);
        let got: Vec<String> = (0..4).map(|i| alloc(ipam, "r", i)).collect();
        assert_eq!(got, ["10.1.5.0", "10.1.5.1", "10.1.5.2", "10.1.5.3"]);
        let e = ipam.allocate("r", &owner(9)).unwrap_err();
        assert!(
            matches!(&e, IpamError::Exhausted { range, .. } if *range == net("10.1.5.0/30")),
            "{e}"
        );
        assert_eq!(
            ipam.allocate_addr("r", &owner(9), ip("10.1.7.7"))
                .unwrap()
                .address,
            ip("10.1.7.7")
        );
    });
}

#[test]
fn reserved_addresses_are_skipped_and_refused() {
    each_store(|ipam| {
        let spec = NetworkSpec::new("aux")
            .subnet(net("10.6.0.0/29"))
            .reserve(ip("10.6.0.2"))
            .reserve(ip("10.6.0.3"))
            .reserve(ip("10.6.0.1")); // the gateway too: counted once
        assert_eq!(ipam.create_network(&spec).unwrap().capacity(), 3);
        let got: Vec<String> = (0..3).map(|i| alloc(ipam, "aux", i)).collect();
        assert_eq!(got, ["10.6.0.4", "10.6.0.5", "10.6.0.6"]);
        assert!(matches!(
            ipam.allocate("aux", &owner(7)),
            Err(IpamError::Exhausted { .. })
        ));
        let e = ipam
            .allocate_addr("aux", &owner(7), ip("10.6.0.3"))
            .unwrap_err();
        assert!(
            matches!(
                e,
                IpamError::AddressReserved {
                    reason: "reserved address",
                    ..
                }
            ),
            "{e}"
        );
    });
}

#[test]
fn next_free_goes_round_and_does_not_hand_back_the_last_released_at_once() {
    each_store(|ipam| {
        ipam.create_network(&NetworkSpec::new("n").subnet(net("10.7.0.0/29")))
            .unwrap();
        let got: Vec<String> = (0..3).map(|i| alloc(ipam, "n", i)).collect();
        assert_eq!(got, ["10.7.0.2", "10.7.0.3", "10.7.0.4"]);
        assert!(ipam.release("n", ip("10.7.0.3")).unwrap().was_held());
        assert_eq!(
            alloc(ipam, "n", 3),
            "10.7.0.5",
            "continues after the cursor"
        );
        assert_eq!(alloc(ipam, "n", 4), "10.7.0.6");
        assert_eq!(alloc(ipam, "n", 5), "10.7.0.3", "goes round");
        // Full, cursor at .3. Free .5 and then .4: the search after the cursor meets .4
        // first, but it was released last, so .5 goes out instead.
        assert!(ipam.release("n", ip("10.7.0.5")).unwrap().was_held());
        assert!(ipam.release("n", ip("10.7.0.4")).unwrap().was_held());
        assert_eq!(alloc(ipam, "n", 6), "10.7.0.5");
        assert_eq!(
            alloc(ipam, "n", 7),
            "10.7.0.4",
            "the last released is handed out when nothing else is free"
        );
    });
}

#[test]
fn release_is_idempotent_and_says_so() {
    each_store(|ipam| {
        ipam.create_network(&NetworkSpec::new("n").subnet(net("10.8.0.0/24")))
            .unwrap();
        let lease = ipam.allocate("n", &owner(1)).unwrap();
        assert_eq!(
            ipam.release("n", lease.address).unwrap(),
            Released::Freed(lease.clone())
        );
        assert_eq!(ipam.release("n", lease.address).unwrap(), Released::NotHeld);
        assert_eq!(
            ipam.release_owner("n", &owner(1)).unwrap(),
            Released::NotHeld
        );
        let again = ipam.allocate("n", &owner(1)).unwrap();
        assert!(
            matches!(ipam.release_owner("n", &owner(1)).unwrap(), Released::Freed(l) if l == again)
        );
        let e = ipam.release("gone", lease.address).unwrap_err();
        assert!(matches!(e, IpamError::NetworkNotFound { .. }));
        assert!(netplumb::Error::from(e).is_not_found());
    });
}

#[test]
fn one_lease_per_owner_and_network() {
    each_store(|ipam| {
        ipam.create_network(&NetworkSpec::new("n").subnet(net("10.9.0.0/24")))
            .unwrap();
        ipam.create_network(&NetworkSpec::new("m").subnet(net("10.10.0.0/24")))
            .unwrap();
        let a = ipam.allocate("n", &owner(1)).unwrap();
        assert_eq!(
            ipam.allocate("n", &owner(1)).unwrap(),
            a,
            "asking again returns the same lease"
        );
        assert_eq!(ipam.allocate_addr("n", &owner(1), a.address).unwrap(), a);
        let e = ipam
            .allocate_addr("n", &owner(1), ip("10.9.0.77"))
            .unwrap_err();
        assert!(
            matches!(&e, IpamError::OwnerHasLease { address, .. } if *address == a.address),
            "{e}"
        );
        assert_eq!(
            ipam.allocate("m", &owner(1)).unwrap().address,
            ip("10.10.0.2"),
            "other networks are separate"
        );
        assert_eq!(
            ipam.allocate("n", &Owner::new("c1", "eth1"))
                .unwrap()
                .address,
            ip("10.9.0.3")
        );
        let e = ipam.allocate("n", &Owner::new("", "eth0")).unwrap_err();
        assert!(
            matches!(
                e,
                IpamError::Invalid {
                    field: "container id",
                    ..
                }
            ),
            "{e}"
        );
    });
}

#[test]
fn gc_releases_every_lease_whose_owner_is_gone() {
    each_store(|ipam| {
        ipam.create_network(&NetworkSpec::new("n").subnet(net("10.11.0.0/24")))
            .unwrap();
        ipam.create_network(&NetworkSpec::new("v6").subnet(net("fd00:11::/64")))
            .unwrap();
        for i in 0..6 {
            ipam.allocate("n", &owner(i)).unwrap();
            ipam.allocate("v6", &owner(i)).unwrap();
        }
        let live = [owner(1), owner(4), Owner::new("c2", "eth9")];
        let mut freed: Vec<String> = ipam
            .gc(&live)
            .unwrap()
            .iter()
            .map(|l| format!("{} {}", l.network, l.owner.container))
            .collect();
        freed.sort();
        assert_eq!(
            freed,
            ["n c0", "n c2", "n c3", "n c5", "v6 c0", "v6 c2", "v6 c3", "v6 c5"]
        );
        for n in ["n", "v6"] {
            let left: Vec<Owner> = ipam
                .leases(n)
                .unwrap()
                .into_iter()
                .map(|l| l.owner)
                .collect();
            assert_eq!(left, [owner(1), owner(4)]);
        }
        assert!(ipam.gc(&live).unwrap().is_empty());
    });
}

#[test]
fn networks_in_use_are_not_removed() {
    each_store(|ipam| {
        ipam.create_network(&NetworkSpec::new("n").subnet(net("10.12.0.0/24")))
            .unwrap();
        let lease = ipam.allocate("n", &owner(1)).unwrap();
        let e = ipam.remove_network("n").unwrap_err();
        assert!(
            matches!(e, IpamError::NetworkInUse { leases: 1, .. }),
            "{e}"
        );
        assert!(netplumb::Error::from(e).is_busy());
        let _ = ipam.release("n", lease.address).unwrap();
        ipam.remove_network("n").unwrap();
        assert!(matches!(
            ipam.network("n"),
            Err(IpamError::NetworkNotFound { .. })
        ));
        assert!(matches!(
            ipam.remove_network("n"),
            Err(IpamError::NetworkNotFound { .. })
        ));
    });
}

#[test]
fn ipv6_slash_64_without_a_bitmap() {
    let pools = Pools::new(vec![Pool::new(net("fd00::/8"), 64).unwrap()]);
    each_store_with(pools, |ipam| {
        let n = ipam
            .create_network(&NetworkSpec::new("six").ipv6())
            .unwrap();
        assert_eq!(
            (n.subnet, n.gateway),
            (net("fd00::/64"), Some(ip("fd00::1")))
        );
        assert_eq!(n.capacity(), (1u128 << 64) - 2);
        assert_eq!(alloc(ipam, "six", 1), "fd00::2");
        let last = ip("fd00::ffff:ffff:ffff:ffff");
        assert_eq!(
            ipam.allocate_addr("six", &owner(2), last)
                .unwrap()
                .cidr()
                .to_string(),
            "fd00::ffff:ffff:ffff:ffff/64"
        );
        let high = ipam
            .allocate_addr("six", &owner(3), ip("fd00::ffff:ffff:ffff:fffe"))
            .unwrap();
        assert_eq!(
            alloc(ipam, "six", 4),
            "fd00::3",
            "specific requests do not move the cursor"
        );
        assert!(ipam.release("six", high.address).unwrap().was_held());
        assert_eq!(
            ipam.create_network(&NetworkSpec::new("six2").ipv6())
                .unwrap()
                .subnet,
            net("fd00:0:0:1::/64")
        );
        let spec = NetworkSpec::new("r6")
            .subnet(net("fd01::/64"))
            .ip_range(net("fd01::ffff:0/112"));
        ipam.create_network(&spec).unwrap();
        assert_eq!(alloc(ipam, "r6", 1), "fd01::ffff:0");
    });
}
