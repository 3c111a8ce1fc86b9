//! The etcd client with user/password authentication, against a real etcd inside a
//! sandbox namespace whose authentication the harness turns on through raw gateway
//! calls: the token on every call and watch, a user whose roles allow part of the keys,
//! wrong passwords and missing users as typed errors that never show the password, and
//! expired tokens renewed without the caller noticing.

#![cfg(feature = "etcd")]

mod common;

use std::time::{Duration, Instant};

use common::etcd::{available, is_ok, EtcdOptions, EtcdServer, ROOT_PASSWORD};
use netplumb::etcd::{prefix_end, Etcd, EtcdConfig, EtcdError, EventKind, TxnOp, TxnRequest};
use netplumb::{Error, ErrorKind};

const TIMEOUT: Duration = Duration::from_secs(5);

fn config(srv: &EtcdServer) -> EtcdConfig {
    EtcdConfig::new(&srv.url()).unwrap().timeout(TIMEOUT)
}

fn etcd_error(e: &Error) -> &EtcdError {
    match e {
        Error::Etcd(x) => x,
        other => panic!("not an etcd error: {other:?}"),
    }
}

/// Runs `f` with a fresh etcd started with `args`, authentication on, in a sandbox.
fn with_auth(name: &str, args: &[&str], f: impl FnOnce(&EtcdServer) + Send) {
    if !available(name) {
        return;
    }
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    common::sandbox(name, |_| {
        let srv = EtcdServer::start_with(EtcdOptions {
            args,
            ..EtcdOptions::default()
        });
        srv.enable_auth();
        f(&srv);
    });
}

/// Waits for the next events of `w`, up to [`TIMEOUT`].
fn next_events(w: &mut netplumb::etcd::Watch) -> Vec<netplumb::etcd::Event> {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        if let Some(events) = w.next(Duration::from_millis(500)).unwrap() {
            return events;
        }
    }
    panic!("no watch event within {TIMEOUT:?}");
}

#[test]
fn the_right_password_serves_calls_and_watches() {
    with_auth("the_right_password", &[], |srv| {
        // Without a user, etcd refuses every call: a typed error that says so.
        let e = Etcd::connect(config(srv)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(
            matches!(etcd_error(&e), EtcdError::Auth { user: None, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("EtcdConfig::user"), "{e}");

        let etcd = Etcd::connect(config(srv).user("root", ROOT_PASSWORD)).unwrap();
        // The watch carries the token too: without it etcd would cancel it at once.
        let mut w = etcd.watch("/w/", Some(&prefix_end(b"/w/")), None).unwrap();
        let rev = etcd.put("/w/a", "1", None).unwrap();
        assert_eq!(etcd.get("/w/a").unwrap().unwrap().value, b"1");
        let events = next_events(&mut w);
        assert_eq!(
            (events[0].kind, events[0].kv.mod_revision),
            (EventKind::Put, rev)
        );
        let txn = TxnRequest::new().then(TxnOp::put("/w/b", "2", None));
        assert!(etcd.txn(&txn).unwrap().succeeded);
        let lease = etcd.grant(Duration::from_secs(30)).unwrap();
        assert!(etcd.keep_alive(lease).unwrap().is_some());
        etcd.revoke(lease).unwrap();

        // A user whose role covers /pub/ only: connecting needs no read of any key;
        // outside its keys etcd says no, as a permission error.
        srv.add_user("alice", "alice-pw", "/pub/");
        let alice = Etcd::connect(config(srv).user("alice", "alice-pw")).unwrap();
        alice.put("/pub/x", "1", None).unwrap();
        assert_eq!(alice.get("/pub/x").unwrap().unwrap().value, b"1");
        let e = alice.put("/w/a", "mine", None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(
            matches!(etcd_error(&e), EtcdError::Server { code: 7, .. }),
            "{e:?}"
        );
        let e = alice.watch("/w/", None, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert_eq!(etcd.get("/w/a").unwrap().unwrap().value, b"1");
    });
}

#[test]
fn a_wrong_password_is_an_auth_error_without_the_password() {
    with_auth("a_wrong_password", &[], |srv| {
        let secret = "not-the-password-31337";
        for user in ["root", "nobody"] {
            let cfg = config(srv).user(user, secret);
            assert!(!format!("{cfg:?}").contains(secret));
            let e = Etcd::connect(cfg).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
            assert!(!e.is_unavailable(), "{e}");
            assert!(
                matches!(etcd_error(&e), EtcdError::Auth { user: Some(u), .. } if u == user),
                "{e:?}"
            );
            let text = format!("{e} {e:?}");
            assert!(
                text.contains(&format!("authentication failed for user \"{user}\"")),
                "{text}"
            );
            assert!(!text.contains(secret), "{text}");
        }
    });
}

#[test]
fn an_expired_token_is_renewed() {
    // Simple tokens expire after one second unused.
    let args = ["--auth-token=simple", "--auth-token-ttl=1"];
    with_auth("an_expired_token", &args, |srv| {
        let etcd = Etcd::connect(config(srv).user("root", ROOT_PASSWORD)).unwrap();
        etcd.put("/k", "1", None).unwrap();

        // A witness that tokens do expire here: one taken now is refused after the
        // pause, as the client's own token, unused as long, will be.
        let token = srv.authenticate("root", ROOT_PASSWORD);
        let read = r#"{"key":"L2s="}"#; // "/k"
        assert!(is_ok(&srv.raw_as(&token, "/v3/kv/range", read)));
        let pause = Duration::from_secs(3);
        std::thread::sleep(pause);
        let reply = srv.raw_as(&token, "/v3/kv/range", read);
        assert!(reply.contains("invalid auth token"), "{reply}");

        // A watch renews the token, and works.
        let mut w = etcd.watch("/k", None, None).unwrap();
        etcd.put("/k", "2", None).unwrap();
        assert_eq!(next_events(&mut w)[0].kv.value, b"2");

        // So does a call, after another pause.
        std::thread::sleep(pause);
        assert_eq!(etcd.get("/k").unwrap().unwrap().value, b"2");
        // And a clone, which shares the renewed token.
        let clone = etcd.clone();
        std::thread::sleep(pause);
        clone.put("/k", "3", None).unwrap();
        assert_eq!(etcd.get("/k").unwrap().unwrap().value, b"3");
    });
}
