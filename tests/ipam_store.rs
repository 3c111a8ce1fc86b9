//! IPAM stores, unprivileged: the SQLite store across reopening, schema and integrity
//! checks, threads sharing one handle, the compare-and-swap retry path of optimistic
//! stores, memory snapshots, and a property test: random allocate/release/GC sequences
//! on both stores never hand out an address that is held, and agree with a model.

#![cfg(feature = "store")]

mod common;
use common::{Rng, TempDir};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use netplumb::ipam::{
    Ipam, IpamError, MemoryStore, Network, NetworkSpec, Owner, Released, SqliteStore, Store,
    StoreTxn,
};

type Dyn = Ipam<Box<dyn Store>>;

/// Runs `f` on a memory store and on a SQLite store.
fn each_store(f: impl Fn(&Dyn, &str)) {
    f(
        &Ipam::new(Box::new(MemoryStore::new()) as Box<dyn Store>),
        "memory",
    );
    let dir = TempDir::new("t");
    let store = SqliteStore::open(dir.0.join("ipam.db")).unwrap();
    f(&Ipam::new(Box::new(store) as Box<dyn Store>), "sqlite");
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

#[test]
fn threads_share_one_ipam() {
    each_store(|ipam, _| {
        ipam.create_network(&NetworkSpec::new("n").subnet(net("10.13.0.0/16")))
            .unwrap();
        let got = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..4 {
                let got = &got;
                s.spawn(move || {
                    for i in 0..150 {
                        let a = ipam.allocate("n", &owner(t * 1000 + i)).unwrap().address;
                        got.lock().unwrap().push(a);
                    }
                });
            }
        });
        let mut got = got.into_inner().unwrap();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 600);
        assert_eq!(ipam.leases("n").unwrap().len(), 600);
    });
}

#[test]
fn sqlite_state_survives_reopening_and_refuses_a_newer_schema() {
    let dir = TempDir::new("reopen");
    let path = dir.0.join("sub/dir/ipam.db");
    {
        let ipam = Ipam::open(&path).unwrap();
        ipam.create_network(
            &NetworkSpec::new("n")
                .subnet(net("10.14.0.0/24"))
                .reserve(ip("10.14.0.9")),
        )
        .unwrap();
        assert_eq!(
            ipam.allocate("n", &owner(1)).unwrap().address,
            ip("10.14.0.2")
        );
    }
    let ipam = Ipam::open(&path).unwrap();
    assert_eq!(ipam.network("n").unwrap().reserved, [ip("10.14.0.9")]);
    assert_eq!(ipam.leases("n").unwrap()[0].owner, owner(1));
    assert_eq!(
        ipam.allocate("n", &owner(2)).unwrap().address,
        ip("10.14.0.3"),
        "the cursor persisted"
    );
    ipam.store().check().unwrap();
    drop(ipam);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DELETE FROM held_runs").unwrap();
    let e = SqliteStore::open(&path).unwrap().check().unwrap_err();
    assert!(
        matches!(&e, IpamError::Corrupt { reason, .. } if reason.contains("run index")),
        "{e}"
    );
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    let e = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&e, IpamError::Corrupt { reason, .. } if reason.contains("99")),
        "{e}"
    );
}

/// A store whose commits lose a compare-and-swap race `fail` times first, like an etcd
/// store under contention.
struct Racy {
    inner: MemoryStore,
    fail: AtomicU32,
}

struct RacyTx<'a>(Box<dyn StoreTxn + 'a>, &'a AtomicU32);

impl Store for Racy {
    fn begin(&self) -> Result<Box<dyn StoreTxn + '_>, IpamError> {
        Ok(Box::new(RacyTx(self.inner.begin()?, &self.fail)))
    }
}

impl StoreTxn for RacyTx<'_> {
    fn network(&mut self, n: &str) -> Result<Option<netplumb::ipam::Network>, IpamError> {
        self.0.network(n)
    }
    fn networks(&mut self) -> Result<Vec<netplumb::ipam::Network>, IpamError> {
        self.0.networks()
    }
    fn create_network(&mut self, n: &netplumb::ipam::Network) -> Result<(), IpamError> {
        self.0.create_network(n)
    }
    fn update_network(&mut self, n: &netplumb::ipam::Network) -> Result<(), IpamError> {
        self.0.update_network(n)
    }
    fn delete_network(&mut self, n: &netplumb::ipam::Network) -> Result<(), IpamError> {
        self.0.delete_network(n)
    }
    fn owner_of(&mut self, n: &str, a: IpAddr) -> Result<Option<Owner>, IpamError> {
        self.0.owner_of(n, a)
    }
    fn address_of(&mut self, n: &str, o: &Owner) -> Result<Option<IpAddr>, IpamError> {
        self.0.address_of(n, o)
    }
    fn leases(&mut self, n: &str) -> Result<Vec<(IpAddr, Owner)>, IpamError> {
        self.0.leases(n)
    }
    fn first_free(&mut self, n: &str, f: IpAddr, t: IpAddr) -> Result<Option<IpAddr>, IpamError> {
        self.0.first_free(n, f, t)
    }
    fn hold(&mut self, n: &str, a: IpAddr, o: &Owner) -> Result<(), IpamError> {
        self.0.hold(n, a, o)
    }
    fn free(&mut self, n: &str, a: IpAddr) -> Result<Option<Owner>, IpamError> {
        self.0.free(n, a)
    }
    fn commit(self: Box<Self>) -> Result<(), IpamError> {
        if self.1.load(Ordering::SeqCst) > 0 {
            self.1.fetch_sub(1, Ordering::SeqCst);
            return Err(IpamError::Conflict {
                network: "injected".into(),
            }); // drops (rolls back) the inner one
        }
        self.0.commit()
    }
}

#[test]
fn lost_compare_and_swap_races_are_retried_then_reported() {
    let ipam = Ipam::new(Arc::new(Racy {
        inner: MemoryStore::new(),
        fail: AtomicU32::new(0),
    }));
    ipam.create_network(&NetworkSpec::new("n").subnet(net("10.15.0.0/24")))
        .unwrap();
    ipam.store().fail.store(5, Ordering::SeqCst);
    assert_eq!(
        ipam.allocate("n", &owner(1)).unwrap().address,
        ip("10.15.0.2")
    );
    assert_eq!(
        ipam.store().fail.load(Ordering::SeqCst),
        0,
        "five commits were refused and retried"
    );
    assert_eq!(
        ipam.leases("n").unwrap().len(),
        1,
        "refused attempts left nothing behind"
    );
    assert_eq!(
        ipam.network("n").unwrap().revision,
        1,
        "one committed change"
    );
    ipam.store().fail.store(u32::MAX, Ordering::SeqCst);
    let e = ipam.allocate("n", &owner(2)).unwrap_err();
    assert!(
        matches!(&e, IpamError::Conflict { network } if network == "n"),
        "{e}"
    );
    assert!(netplumb::Error::from(e).is_busy());
    ipam.store().fail.store(0, Ordering::SeqCst);
    assert_eq!(ipam.leases("n").unwrap().len(), 1);
}

#[test]
fn memory_snapshots_round_trip() {
    let ipam = Ipam::new(MemoryStore::new());
    ipam.create_network(&NetworkSpec::new("n").subnet(net("10.16.0.0/24")))
        .unwrap();
    for i in 0..5 {
        ipam.allocate("n", &owner(i)).unwrap();
    }
    let _ = ipam.release("n", ip("10.16.0.4")).unwrap();
    let (nets, leases) = ipam.store().snapshot();
    let copy = Ipam::new(MemoryStore::from_snapshot(nets.clone(), leases.clone()).unwrap());
    assert_eq!(copy.store().snapshot(), (nets, leases));
    assert_eq!(
        copy.allocate("n", &owner(9)).unwrap().address,
        ip("10.16.0.7")
    );
}

/// What the leases must be: address → owner, and owner → address.
#[derive(Default)]
struct Model {
    held: BTreeMap<IpAddr, Owner>,
    by_owner: HashMap<Owner, IpAddr>,
    /// Which outcomes the sequence produced, so it can show it covered them all.
    seen: HashSet<&'static str>,
}

impl Model {
    fn take(&mut self, a: IpAddr, o: &Owner) {
        assert!(
            self.held.insert(a, o.clone()).is_none(),
            "{a} handed out while held"
        );
        assert!(
            self.by_owner.insert(o.clone(), a).is_none(),
            "{o} got a second lease"
        );
    }
    fn drop_addr(&mut self, a: IpAddr) -> Option<Owner> {
        let o = self.held.remove(&a)?;
        self.by_owner.remove(&o);
        Some(o)
    }
    /// Held addresses that next-free allocation could otherwise hand out.
    fn held_in_range(&self, n: &Network) -> u128 {
        let (lo, hi) = n.bounds().unwrap();
        let free_kind = |a: &IpAddr| n.gateway != Some(*a) && !n.reserved.contains(a);
        self.held
            .keys()
            .filter(|a| (lo..=hi).contains(*a) && free_kind(a))
            .count() as u128
    }
}

/// Checks one next-free allocation against the model.
fn check_allocate(ipam: &Dyn, n: &Network, m: &mut Model, o: &Owner) {
    match (ipam.allocate(&n.name, o), m.by_owner.get(o)) {
        (Ok(l), Some(&had)) => assert_eq!(l.address, had, "an owner keeps its lease"),
        (Ok(l), None) => {
            let (lo, hi) = n.bounds().unwrap();
            assert!(
                (lo..=hi).contains(&l.address),
                "{} outside {lo}..={hi}",
                l.address
            );
            assert!(n.gateway != Some(l.address) && !n.reserved.contains(&l.address));
            m.take(l.address, o);
            m.seen.insert("allocated");
        }
        (Err(IpamError::Exhausted { .. }), None) => {
            assert_eq!(m.held_in_range(n), n.capacity());
            m.seen.insert("exhausted");
        }
        (r, had) => panic!("allocate for {o} (holding {had:?}): {r:?}"),
    }
}

/// Checks one specific request against the model.
fn check_allocate_addr(ipam: &Dyn, n: &Network, m: &mut Model, o: &Owner, a: IpAddr) {
    let (first, last) = (n.subnet.network(), n.subnet.broadcast());
    let res = ipam.allocate_addr(&n.name, o, a);
    let outcome = match (res, m.by_owner.get(o).copied(), m.held.get(&a)) {
        (Ok(l), Some(had), _) => {
            assert_eq!((l.address, had), (a, a));
            "asked again"
        }
        (Err(IpamError::OwnerHasLease { address, .. }), Some(had), _) => {
            assert!(address == had && had != a);
            "owner has a lease"
        }
        (
            Err(IpamError::Invalid {
                field: "address", ..
            }),
            None,
            _,
        ) => {
            assert!(a == first || (a == last && a.is_ipv4()));
            "network or broadcast"
        }
        (Err(IpamError::AddressReserved { .. }), None, _) => {
            assert!(n.gateway == Some(a) || n.reserved.contains(&a));
            "reserved"
        }
        (Err(IpamError::AddressTaken { owner, .. }), None, Some(h)) => {
            assert_eq!(&owner, h);
            "taken"
        }
        (Ok(l), None, None) => {
            assert_eq!(l.address, a);
            m.take(a, o);
            "specific"
        }
        (r, had, held) => panic!("allocate {a} for {o} (holding {had:?}, held by {held:?}): {r:?}"),
    };
    m.seen.insert(outcome);
}

/// Checks one release, by address or by owner, against the model.
fn check_release(ipam: &Dyn, n: &Network, m: &mut Model, o: &Owner, a: Option<IpAddr>) {
    let (got, want) = match a {
        Some(a) => (
            ipam.release(&n.name, a).unwrap(),
            m.held.get(&a).map(|h| (a, h.clone())),
        ),
        None => (
            ipam.release_owner(&n.name, o).unwrap(),
            m.by_owner.get(o).map(|&a| (a, o.clone())),
        ),
    };
    match (got, want) {
        (Released::Freed(l), Some(w)) => {
            assert_eq!((l.address, l.owner), w);
            m.drop_addr(w.0);
            m.seen.insert("freed");
        }
        (Released::NotHeld, None) => drop(m.seen.insert("not held")),
        (got, want) => panic!("release {a:?}/{o}: {got:?}, model {want:?}"),
    }
}

/// An address to request: any of the subnet, or the owner's own, one somebody holds, an
/// edge, the gateway or a reserved one.
fn pick_address(r: &mut Rng, n: &Network, m: &Model, o: &Owner) -> IpAddr {
    let held = m.held.keys().nth(r.below(m.held.len().max(1))).copied();
    let special = match r.below(8) {
        0 => m.by_owner.get(o).copied(),
        1 => held,
        2 => Some(n.subnet.network()),
        3 => Some(n.subnet.broadcast()),
        4 => n.gateway.iter().chain(&n.reserved).nth(r.below(2)).copied(),
        _ => None,
    };
    let size = 1u128 << (n.subnet.max_prefix_len() - n.subnet.prefix_len());
    let offset = r.below(size as usize) as u128;
    special.unwrap_or(match n.subnet.network() {
        IpAddr::V4(b) => IpAddr::V4((u32::from(b) + offset as u32).into()),
        IpAddr::V6(b) => IpAddr::V6((u128::from(b) + offset).into()),
    })
}

/// GC with a random two thirds of the owners live.
fn check_gc(ipam: &Dyn, n: &Network, m: &mut Model, r: &mut Rng) {
    // In address order, so that the sequence depends on the seed alone.
    let live: Vec<Owner> = m
        .held
        .values()
        .filter(|_| r.below(3) > 0)
        .cloned()
        .collect();
    // GC covers every network; earlier sequences' networks are done with.
    let freed = ipam.gc(&live).unwrap();
    for l in freed.into_iter().filter(|l| l.network == n.name) {
        assert_eq!(m.drop_addr(l.address), Some(l.owner));
        m.seen.insert("collected");
    }
}

const OUTCOMES: [&str; 11] = [
    "allocated",
    "exhausted",
    "asked again",
    "owner has a lease",
    "network or broadcast",
    "reserved",
    "taken",
    "specific",
    "freed",
    "not held",
    "collected",
];

/// One random sequence of `steps` operations on network `spec`.
fn random_sequence(ipam: &Dyn, spec: NetworkSpec, seed: u64, steps: usize) {
    let n = ipam.create_network(&spec).unwrap();
    let owners = n.capacity() as usize + 8;
    let (mut r, mut m) = (Rng(seed), Model::default());
    for step in 0..steps {
        let o = owner(r.below(owners));
        match r.below(20) {
            0..=9 => check_allocate(ipam, &n, &mut m, &o),
            10..=12 => {
                let a = pick_address(&mut r, &n, &m, &o);
                check_allocate_addr(ipam, &n, &mut m, &o, a)
            }
            13..=15 => {
                let a = pick_address(&mut r, &n, &m, &o);
                check_release(ipam, &n, &mut m, &o, Some(a))
            }
            16..=18 => check_release(ipam, &n, &mut m, &o, None),
            _ => check_gc(ipam, &n, &mut m, &mut r),
        }
        if step % 16 == 0 || step == steps - 1 {
            let leases = ipam.leases(&n.name).unwrap();
            let got: Vec<(IpAddr, Owner)> =
                leases.into_iter().map(|l| (l.address, l.owner)).collect();
            let want: Vec<(IpAddr, Owner)> = m.held.iter().map(|(a, o)| (*a, o.clone())).collect();
            assert_eq!(got, want, "seed {seed}, step {step}");
        }
    }
    let missed: Vec<_> = OUTCOMES.iter().filter(|o| !m.seen.contains(*o)).collect();
    assert!(
        missed.is_empty(),
        "{}: sequence {seed} never produced {missed:?}",
        n.name
    );
}

fn specs(i: u64) -> [NetworkSpec; 3] {
    [
        NetworkSpec::new(format!("v4-{i}"))
            .subnet(net(&format!("10.{}.0.0/26", 20 + i)))
            .ip_range(net(&format!("10.{}.0.16/28", 20 + i)))
            .reserve(ip(&format!("10.{}.0.20", 20 + i))),
        NetworkSpec::new(format!("v4-small-{i}")).subnet(net(&format!("10.{}.0.0/28", 120 + i))),
        NetworkSpec::new(format!("v6-{i}"))
            .subnet(net(&format!("fd00:{i}::/120")))
            .ip_range(net(&format!("fd00:{i}::80/124")))
            .reserve(ip(&format!("fd00:{i}::85"))),
    ]
}

#[test]
fn random_sequences_never_hand_out_a_held_address() {
    each_store(|ipam, store| {
        let (seeds, steps) = if store == "memory" {
            (8, 3000)
        } else {
            (2, 1200)
        };
        for seed in 0..seeds {
            for spec in specs(seed) {
                random_sequence(ipam, spec, 0x5eed_0000 + seed * 7919 + 1, steps);
            }
        }
    });
}
