//! The etcd client against a real etcd, one per test, inside a sandbox namespace: KV
//! calls, transactions, leases and their expiry, watches, failures of the server and of
//! the configuration, and dialing from another namespace.

#![cfg(feature = "etcd")]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::etcd::{available, EtcdServer};
use netplumb::etcd::{
    prefix_end, CmpOp, Compare, Etcd, EtcdConfig, EtcdError, EventKind, LeaseKeeper, TxnOp,
    TxnOpResponse, TxnRequest,
};
use netplumb::{Error, ErrorKind, Netns};

/// A generous bound for things etcd does by itself (lease expiry), never asserted as a
/// duration: only as "it did happen eventually".
const EVENTUALLY: Duration = Duration::from_secs(30);

fn client(url: &str) -> Etcd {
    let cfg = EtcdConfig::new(url)
        .unwrap()
        .timeout(Duration::from_secs(2));
    Etcd::connect(cfg).unwrap()
}

/// Runs `f` with a fresh etcd and a client of it, in a sandbox.
fn with_etcd(name: &str, f: impl FnOnce(&mut EtcdServer, Etcd) + Send) {
    if !available(name) {
        return;
    }
    common::sandbox(name, |_| {
        let mut srv = EtcdServer::start();
        let etcd = client(&srv.url());
        f(&mut srv, etcd);
    });
}

/// Polls until `key` is gone; false if it is still there after [`EVENTUALLY`].
fn gone_eventually(etcd: &Etcd, key: &str) -> bool {
    let deadline = Instant::now() + EVENTUALLY;
    while Instant::now() < deadline {
        if etcd.get(key).unwrap().is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn etcd_error(e: &Error) -> &EtcdError {
    match e {
        Error::Etcd(x) => x,
        other => panic!("not an etcd error: {other:?}"),
    }
}

#[test]
fn put_get_range_delete() {
    with_etcd("put_get_range_delete", |_, etcd| {
        assert_eq!(etcd.get("/t/a").unwrap(), None);
        let r1 = etcd.put("/t/a", "1", None).unwrap();
        let r2 = etcd.put("/t/b", "2", None).unwrap();
        let r3 = etcd.put("/t/c", "3", None).unwrap();
        assert!(r1 < r2 && r2 < r3);
        etcd.put("/u", "outside", None).unwrap();
        // Binary keys and values go through untouched.
        etcd.put(b"/bin/\x00\xff", b"\x01\x02\xfe", None).unwrap();
        assert_eq!(
            etcd.get(b"/bin/\x00\xff").unwrap().unwrap().value,
            b"\x01\x02\xfe"
        );

        let a = etcd.get("/t/a").unwrap().unwrap();
        assert_eq!((a.key_str(), a.value_str()), (Some("/t/a"), Some("1")));
        assert_eq!((a.create_revision, a.mod_revision, a.version), (r1, r1, 1));
        etcd.put("/t/a", "1b", None).unwrap();
        let a = etcd.get("/t/a").unwrap().unwrap();
        assert_eq!(
            (a.create_revision, a.version, a.value_str()),
            (r1, 2, Some("1b"))
        );

        let page = etcd.range("/t/", Some(&prefix_end(b"/t/")), 2).unwrap();
        let keys: Vec<_> = page.kvs.iter().map(|kv| kv.key_str().unwrap()).collect();
        assert_eq!(keys, ["/t/a", "/t/b"]);
        assert!(page.more);
        assert_eq!(page.count, 3);
        assert!(page.revision > r3);
        assert_eq!(etcd.prefix("/t/").unwrap().len(), 3);

        assert_eq!(etcd.delete("/t/a").unwrap(), 1);
        assert_eq!(etcd.delete("/t/a").unwrap(), 0);
        assert_eq!(etcd.delete_prefix("/t/").unwrap(), 2);
        assert!(etcd.prefix("/t/").unwrap().is_empty());
        assert_eq!(etcd.get("/u").unwrap().unwrap().value, b"outside");
        // The empty prefix is every key.
        assert_eq!(etcd.prefix("").unwrap().len(), 2);
    });
}

#[test]
fn txn_compare_and_swap() {
    with_etcd("txn_compare_and_swap", |_, etcd| {
        let create = TxnRequest::new()
            .when(Compare::create_revision("/leader", CmpOp::Equal, 0))
            .then(TxnOp::put("/leader", "host-a", None))
            .otherwise(TxnOp::range("/leader", None, 0));
        let r = etcd.txn(&create).unwrap();
        assert!(r.succeeded);
        assert!(
            matches!(r.responses[..], [TxnOpResponse::Put { revision }] if revision == r.revision)
        );

        // The second attempt fails and reads who holds it instead.
        let r = etcd.txn(&create).unwrap();
        assert!(!r.succeeded);
        let [TxnOpResponse::Range(read)] = &r.responses[..] else {
            panic!("{r:?}")
        };
        assert_eq!(read.kvs[0].value, b"host-a");

        // Compare-and-swap on the revision: a stale one loses, the current one wins.
        let seen = read.kvs[0].mod_revision;
        etcd.put("/leader", "host-b", None).unwrap();
        let swap = |rev| {
            TxnRequest::new()
                .when(Compare::mod_revision("/leader", CmpOp::Equal, rev))
                .when(Compare::value("/leader", CmpOp::NotEqual, "host-c"))
                .then(TxnOp::put("/leader", "host-c", None))
                .then(TxnOp::delete("/other"))
        };
        assert!(!etcd.txn(&swap(seen)).unwrap().succeeded);
        assert_eq!(etcd.get("/leader").unwrap().unwrap().value, b"host-b");
        let now = etcd.get("/leader").unwrap().unwrap().mod_revision;
        let r = etcd.txn(&swap(now)).unwrap();
        assert!(r.succeeded);
        assert!(matches!(
            r.responses[1],
            TxnOpResponse::Delete { deleted: 0 }
        ));
        assert_eq!(etcd.get("/leader").unwrap().unwrap().value, b"host-c");

        // A range comparison covers every key of the range.
        let newer = TxnRequest::new()
            .when(Compare::mod_revision("/", CmpOp::Less, now).range_end(b"\0"))
            .then(TxnOp::put("/x", "", None));
        assert!(!etcd.txn(&newer).unwrap().succeeded);

        // etcd refuses a transaction that writes one key twice: a typed server error.
        let dup = TxnRequest::new()
            .then(TxnOp::put("/d", "1", None))
            .then(TxnOp::put("/d", "2", None));
        let e = etcd.txn(&dup).unwrap_err();
        assert!(
            matches!(
                etcd_error(&e),
                EtcdError::Server {
                    op: "txn",
                    code: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.kind(), ErrorKind::Other);
    });
}

#[test]
fn lease_expiry_removes_the_key() {
    with_etcd("lease_expiry_removes_the_key", |_, etcd| {
        let lease = etcd.grant(Duration::from_secs(2)).unwrap();
        etcd.put("/ephemeral", "x", Some(lease)).unwrap();
        assert_eq!(etcd.get("/ephemeral").unwrap().unwrap().lease, lease);
        assert!(etcd.keep_alive(lease).unwrap().is_some());
        assert!(
            gone_eventually(&etcd, "/ephemeral"),
            "key outlived its lease"
        );
        assert_eq!(etcd.keep_alive(lease).unwrap(), None);
        etcd.revoke(lease).unwrap(); // already gone: not an error

        // Revoking deletes at once.
        let lease = etcd.grant(Duration::from_secs(60)).unwrap();
        etcd.put("/revoked", "x", Some(lease)).unwrap();
        etcd.revoke(lease).unwrap();
        assert_eq!(etcd.get("/revoked").unwrap(), None);
        // A put with an unknown lease is a server error.
        let e = etcd.put("/k", "v", Some(lease)).unwrap_err();
        assert!(
            matches!(etcd_error(&e), EtcdError::Server { code: 5, .. }),
            "{e}"
        );
    });
}

#[test]
fn lease_keeper_keeps_the_key_and_dropping_it_lets_it_expire() {
    with_etcd("lease_keeper", |_, etcd| {
        let keeper = LeaseKeeper::grant(&etcd, Duration::from_secs(2)).unwrap();
        etcd.put("/alive", "x", Some(keeper.id())).unwrap();
        // Well past the TTL, the key is still there because the keeper renews it.
        std::thread::sleep(keeper.ttl() * 3);
        assert!(
            etcd.get("/alive").unwrap().is_some(),
            "the keeper let the lease lapse"
        );
        assert!(keeper.is_alive());
        // Dropping stops the renewals without revoking: the key expires by itself.
        drop(keeper);
        assert!(
            etcd.get("/alive").unwrap().is_some(),
            "drop must not revoke"
        );
        assert!(
            gone_eventually(&etcd, "/alive"),
            "the key outlived its dropped keeper"
        );

        // revoke() deletes at once.
        let keeper = LeaseKeeper::grant(&etcd, Duration::from_secs(30)).unwrap();
        etcd.put("/bye", "x", Some(keeper.id())).unwrap();
        keeper.revoke().unwrap();
        assert_eq!(etcd.get("/bye").unwrap(), None);
    });
}

#[test]
fn watch_sees_puts_and_deletes() {
    with_etcd("watch_sees_puts_and_deletes", |srv, etcd| {
        let end = prefix_end(b"/w/");
        let mut w = etcd.watch("/w/", Some(&end), None).unwrap();
        assert_eq!(w.next(Duration::from_millis(200)).unwrap(), None);
        let rev = etcd.put("/w/a", "1", None).unwrap();
        etcd.put("/elsewhere", "x", None).unwrap();
        etcd.delete("/w/a").unwrap();
        let mut events = Vec::new();
        let deadline = Instant::now() + EVENTUALLY;
        while events.len() < 2 && Instant::now() < deadline {
            events.extend(w.next(Duration::from_secs(1)).unwrap().unwrap_or_default());
        }
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.kind, e.kv.key_str().unwrap(), e.kv.value_str().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                (EventKind::Put, "/w/a", "1"),
                (EventKind::Delete, "/w/a", "")
            ]
        );
        assert_eq!(events[0].kv.mod_revision, rev);
        assert_eq!(w.revision(), events[1].kv.mod_revision);

        // A watch from history replays it.
        let mut again = etcd.watch("/w/a", None, Some(rev)).unwrap();
        let replay = again.next(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(replay[0].kind, EventKind::Put);

        // A watch from a compacted revision is a typed error.
        let now = etcd.put("/w/b", "2", None).unwrap();
        srv.compact(now);
        let e = etcd
            .watch("/w/", Some(&end), Some(rev))
            .and_then(|mut w| w.next(Duration::from_secs(5)))
            .unwrap_err();
        assert!(
            matches!(etcd_error(&e), EtcdError::Compacted { revision } if *revision == now),
            "{e}"
        );
        // So is a read at a compacted revision.
        let e = etcd.range_at("/w/", None, 0, rev).unwrap_err();
        assert!(matches!(etcd_error(&e), EtcdError::Compacted { .. }), "{e}");
    });
}

#[test]
fn unreachable_and_silent_endpoints_are_unavailable() {
    if !available("unreachable_endpoints") {
        return;
    }
    common::sandbox("unreachable_endpoints", |_| {
        let mut srv = EtcdServer::start(); // also brings the loopback up
        let cfg = |url: &str| {
            EtcdConfig::new(url)
                .unwrap()
                .timeout(Duration::from_millis(500))
        };

        // Nothing listens there.
        let e = Etcd::connect(cfg("127.0.0.1:1")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.is_unavailable());
        assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
        assert!(matches!(etcd_error(&e), EtcdError::Unreachable { .. }));

        // A server that accepts connections and never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap().to_string();
        let e = Etcd::connect(cfg(&addr)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(matches!(etcd_error(&e), EtcdError::Timeout { endpoint, .. } if *endpoint == addr));

        // Failover: the dead endpoint is skipped, the live one serves.
        let etcd = Etcd::connect(cfg(&format!("127.0.0.1:1,{}", srv.url()))).unwrap();
        etcd.put("/k", "v", None).unwrap();

        // Both dead: the error names every endpoint tried.
        srv.stop();
        let e = etcd.get("/k").unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        assert!(e.to_string().contains("127.0.0.1:1, 127.0.0.1:2379"), "{e}");
    });
}

#[test]
fn server_killed_mid_run_then_restarted() {
    with_etcd("server_killed_mid_run", |srv, etcd| {
        etcd.put("/durable", "yes", None).unwrap();
        let mut w = etcd.watch("/durable", None, None).unwrap();
        srv.stop();
        // Every call fails with a typed error (the pooled connection is dead, and
        // nothing listens any more), within the timeout.
        for e in [
            etcd.get("/durable").map(drop).unwrap_err(),
            etcd.put("/k", "v", None).map(drop).unwrap_err(),
            etcd.txn(&TxnRequest::new()).map(drop).unwrap_err(),
            etcd.grant(Duration::from_secs(5)).map(drop).unwrap_err(),
            w.next(Duration::from_secs(5)).map(drop).unwrap_err(),
            etcd.watch("/k", None, None).map(drop).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        }
        // A failed watch stays failed.
        assert!(w.next(Duration::from_millis(10)).is_err());

        srv.restart();
        // The same client recovers, and the data survived the crash.
        assert_eq!(etcd.get("/durable").unwrap().unwrap().value, b"yes");
        etcd.put("/k", "v", None).unwrap();
        assert_eq!(etcd.get("/k").unwrap().unwrap().value, b"v");
    });
}

#[test]
fn a_frozen_server_times_out_then_recovers() {
    with_etcd("a_frozen_server_times_out", |srv, etcd| {
        etcd.put("/k", "v", None).unwrap(); // leaves an idle pooled connection
        let mut w = etcd.watch("/k", None, None).unwrap();
        srv.freeze(true);
        let e = etcd.get("/k").unwrap_err();
        assert!(
            matches!(etcd_error(&e), EtcdError::Timeout { op: "range", .. }),
            "{e}"
        );
        assert!(e.is_unavailable());
        let e = Etcd::connect(etcd.config().clone()).unwrap_err();
        assert!(matches!(etcd_error(&e), EtcdError::Timeout { .. }), "{e}");
        // A watch just sees nothing happen.
        assert_eq!(w.next(Duration::from_millis(300)).unwrap(), None);
        srv.freeze(false);
        assert_eq!(etcd.get("/k").unwrap().unwrap().value, b"v");
        etcd.put("/k", "w", None).unwrap();
        let events = w.next(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(events[0].kv.value, b"w");
    });
}

#[test]
fn bad_urls_name_the_bad_part() {
    for (url, part) in [
        (
            "https://10.0.0.5:2379,http://10.0.0.6:2379",
            "mixes http and https",
        ),
        ("10.0.0.5:23x9", "23x9"),
        ("http://10.0.0.5:2379/v3/kv", "/v3/kv"),
        ("10.0.0.5:2379,,10.0.0.6:2379", "endpoint list"),
        ("unix:///run/etcd.sock", "unix"),
        ("[fd00::5:2379", "[fd00::5:2379"),
    ] {
        let e = EtcdConfig::new(url).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{url}: {e}");
        assert!(matches!(e, Error::InvalidInput { .. }), "{url}: {e:?}");
        assert!(e.to_string().contains(part), "{url}: {e}");
    }
}

#[test]
fn dial_in_reaches_etcd_in_another_namespace() {
    if !available("dial_in") {
        return;
    }
    common::sandbox("dial_in", |_| {
        // etcd runs in its own namespace; this thread is in the sandbox's.
        let other = Netns::new().unwrap();
        let srv = other.run(EtcdServer::start).unwrap();
        let cfg = || {
            EtcdConfig::new(&srv.url())
                .unwrap()
                .timeout(Duration::from_secs(2))
        };

        // From here, 127.0.0.1:2379 is not etcd.
        let e =
            std::thread::scope(|s| s.spawn(|| Etcd::connect(cfg()).unwrap_err()).join()).unwrap();
        assert!(e.is_unavailable(), "{e}");

        // With dial_in, a thread of this namespace reaches it, watches included.
        std::thread::scope(|s| {
            s.spawn(|| {
                assert_ne!(Netns::current().unwrap(), *srv.netns());
                let etcd = Etcd::connect(cfg().dial_in(srv.netns())).unwrap();
                let mut w = etcd.watch("/k", None, None).unwrap();
                etcd.put("/k", "v", None).unwrap();
                assert_eq!(etcd.get("/k").unwrap().unwrap().value, b"v");
                let events = w.next(Duration::from_secs(5)).unwrap().unwrap();
                assert_eq!(events[0].kv.value, b"v");
            })
            .join()
            .unwrap();
        });
        drop(srv);
    });
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Etcd>();
    send_sync::<EtcdConfig>();
    send_sync::<EtcdError>();
    send_sync::<netplumb::ipam::EtcdStore>();
    send_sync::<LeaseKeeper>();
    send::<netplumb::etcd::Watch>();
}
