//! The etcd client over TLS, against a real etcd serving `https://` inside a sandbox
//! namespace, with certificates made by the test (`common::certs`): every kind of call
//! with the server checked against a CA file, a server the CA did not sign, a
//! certificate for another name, mutual TLS (`--client-cert-auth`), an endpoint that does
//! not speak TLS, and TLS files that cannot be used.

#![cfg(feature = "etcd")]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use netplumb::link::LinkSet;

use common::certs::{Pair, Pki};
use common::etcd::{available, EtcdOptions, EtcdServer};
use netplumb::etcd::{prefix_end, CmpOp, Compare, Etcd, EtcdConfig, EtcdError, EventKind};
use netplumb::etcd::{TxnOp, TxnRequest};
use netplumb::{Error, ErrorKind};

const TIMEOUT: Duration = Duration::from_secs(5);

fn config(url: &str) -> EtcdConfig {
    EtcdConfig::new(url).unwrap().timeout(TIMEOUT)
}

fn etcd_error(e: &Error) -> &EtcdError {
    match e {
        Error::Etcd(x) => x,
        other => panic!("not an etcd error: {other:?}"),
    }
}

/// A CA, and etcd serving TLS with a certificate it signed for 127.0.0.1; with
/// `mutual`, etcd asks clients for a certificate of that CA.
fn start(pki: &Pki, mutual: bool) -> (Pair, EtcdServer) {
    let ca = pki.ca("ca");
    let server = pki.leaf("server", &ca, "IP:127.0.0.1");
    let srv = EtcdServer::start_with(EtcdOptions {
        tls: Some(server),
        client_ca: mutual.then(|| ca.cert.clone()),
        ..EtcdOptions::default()
    });
    (ca, srv)
}

/// Puts a key, reads it back, and sees the put through a watch that has timed out
/// once before (so the TLS stream is resumed after a read timeout).
fn put_get_watch(etcd: &Etcd) {
    let end = prefix_end(b"/w/");
    let mut w = etcd.watch("/w/", Some(&end), None).unwrap();
    assert_eq!(w.next(Duration::from_millis(200)).unwrap(), None);
    let rev = etcd.put("/w/a", "1", None).unwrap();
    assert_eq!(etcd.get("/w/a").unwrap().unwrap().value, b"1");
    let deadline = Instant::now() + TIMEOUT;
    let mut events = Vec::new();
    while events.is_empty() && Instant::now() < deadline {
        events = w.next(Duration::from_secs(1)).unwrap().unwrap_or_default();
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, EventKind::Put);
    assert_eq!(events[0].kv.mod_revision, rev);
}

#[test]
fn https_serves_every_call_with_the_ca_file() {
    let name = "https_serves_every_call";
    if !available(name) {
        return;
    }
    common::sandbox(name, |_| {
        let pki = Pki::new();
        let (ca, srv) = start(&pki, false);
        assert!(srv.url().starts_with("https://"));

        // The port really speaks TLS only: a plain client gets no etcd there.
        let plain = Etcd::connect(config("http://127.0.0.1:2379")).unwrap_err();
        assert_ne!(plain.kind(), ErrorKind::PermissionDenied, "{plain}");

        let cfg = config(&srv.url()).ca_file(&ca.cert);
        assert!(cfg.uses_tls());
        let etcd = Etcd::connect(cfg).unwrap();
        put_get_watch(&etcd);

        // Compare-and-swap.
        let seen = etcd.get("/w/a").unwrap().unwrap().mod_revision;
        let swap = TxnRequest::new()
            .when(Compare::mod_revision("/w/a", CmpOp::Equal, seen))
            .then(TxnOp::put("/w/a", "2", None));
        assert!(etcd.txn(&swap).unwrap().succeeded);
        assert!(!etcd.txn(&swap).unwrap().succeeded);

        // Leases: grant, attach, renew, revoke.
        let lease = etcd.grant(Duration::from_secs(30)).unwrap();
        etcd.put("/leased", "x", Some(lease)).unwrap();
        assert!(etcd.keep_alive(lease).unwrap().is_some());
        etcd.revoke(lease).unwrap();
        assert_eq!(etcd.get("/leased").unwrap(), None);

        // Many calls share pooled TLS connections.
        for i in 0..50 {
            etcd.put(format!("/many/{i}"), "v", None).unwrap();
        }
        assert_eq!(etcd.prefix("/many/").unwrap().len(), 50);

        // An endpoint without a scheme is TLS when a CA file is given, as with etcdctl.
        let bare = Etcd::connect(config("127.0.0.1:2379").ca_file(&ca.cert)).unwrap();
        assert_eq!(bare.get("/w/a").unwrap().unwrap().value, b"2");
    });
}

#[test]
fn a_server_the_ca_did_not_sign_is_refused() {
    let name = "a_server_the_ca_did_not_sign";
    if !available(name) {
        return;
    }
    common::sandbox(name, |_| {
        let pki = Pki::new();
        let (ca, srv) = start(&pki, false);
        let other = pki.ca("other");

        let e = Etcd::connect(config(&srv.url()).ca_file(&other.cert)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(
            matches!(etcd_error(&e), EtcdError::Certificate { endpoint, reason }
                if endpoint == "127.0.0.1:2379" && reason.contains("not signed by a CA")),
            "{e:?}"
        );
        assert!(e.to_string().contains("127.0.0.1:2379"), "{e}");

        // Without a CA file, the system's bundle does not know the test CA either.
        let e = Etcd::connect(config(&srv.url())).unwrap_err();
        assert!(
            matches!(
                etcd_error(&e),
                EtcdError::Certificate { .. } | EtcdError::TlsFile { .. }
            ),
            "{e:?}"
        );

        // The certificate names 127.0.0.1 only, not "localhost".
        let e = Etcd::connect(config("https://localhost:2379").ca_file(&ca.cert)).unwrap_err();
        assert!(
            matches!(etcd_error(&e), EtcdError::Certificate { reason, .. }
                if reason.contains("not issued for this host name")),
            "{e:?}"
        );
    });
}

#[test]
fn mutual_tls_needs_a_client_certificate_of_the_ca() {
    let name = "mutual_tls";
    if !available(name) {
        return;
    }
    common::sandbox(name, |_| {
        let pki = Pki::new();
        let (ca, srv) = start(&pki, true);
        let client = pki.leaf("client", &ca, "DNS:client");

        let cfg = config(&srv.url())
            .ca_file(&ca.cert)
            .client_cert(&client.cert, &client.key);
        let etcd = Etcd::connect(cfg).unwrap();
        put_get_watch(&etcd);

        // No client certificate: the server refuses the connection.
        let e = Etcd::connect(config(&srv.url()).ca_file(&ca.cert)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
        assert!(
            matches!(etcd_error(&e), EtcdError::Certificate { endpoint, reason }
                if endpoint == "127.0.0.1:2379" && reason.contains("refused this client")),
            "{e:?}"
        );

        // A client certificate of another CA: refused as well.
        let other = pki.ca("other");
        let stranger = pki.leaf("stranger", &other, "DNS:stranger");
        let cfg = config(&srv.url())
            .ca_file(&ca.cert)
            .client_cert(&stranger.cert, &stranger.key);
        let e = Etcd::connect(cfg).unwrap_err();
        assert!(
            matches!(etcd_error(&e), EtcdError::Certificate { .. }),
            "{e:?}"
        );
    });
}

#[test]
fn an_endpoint_without_tls_is_a_tls_error() {
    common::sandbox("an_endpoint_without_tls", |s| {
        common::rtnl(s).execute(&LinkSet::new("lo").up()).unwrap();
        // A plain HTTP server, as an http:// etcd would be.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let _ = c.read(&mut [0u8; 1024]);
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        });
        let e = Etcd::connect(config(&format!("https://{addr}"))).unwrap_err();
        server.join().unwrap();
        assert!(
            matches!(etcd_error(&e), EtcdError::Tls { endpoint, reason }
                if *endpoint == addr.to_string() && reason.contains("does not speak TLS")),
            "{e:?}"
        );
        assert!(!e.is_unavailable(), "{e}");
    });
}

#[test]
fn unusable_tls_files_are_named() {
    common::sandbox("unusable_tls_files", |_| {
        let pki = Pki::new();
        let ca = pki.ca("ca");
        let client = pki.leaf("client", &ca, "DNS:client");
        let server = pki.leaf("server", &ca, "IP:127.0.0.1");
        // Nothing listens there: every case fails before connecting.
        let cfg = || config("https://127.0.0.1:1");
        let file_error = |cfg: EtcdConfig| {
            let e = Etcd::connect(cfg).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
            match etcd_error(&e) {
                EtcdError::TlsFile { what, path, .. } => (*what, path.clone(), e.to_string()),
                other => panic!("not a TLS file error: {other:?}"),
            }
        };

        let missing = pki.path("missing.pem");
        let (what, path, msg) = file_error(cfg().ca_file(&missing));
        assert_eq!((what, &path), ("CA file", &missing), "{msg}");
        assert!(msg.contains(&missing.display().to_string()), "{msg}");

        let text = pki.path("notes.txt");
        std::fs::write(&text, "not a certificate\n").unwrap();
        let (what, path, msg) = file_error(cfg().ca_file(&text));
        assert_eq!((what, &path), ("CA file", &text), "{msg}");
        assert!(msg.contains("no PEM certificate"), "{msg}");

        let (what, path, msg) = file_error(cfg().ca_file(&ca.cert).client_cert(&text, &client.key));
        assert_eq!((what, &path), ("client certificate", &text), "{msg}");

        // A certificate where the key should be.
        let (what, path, msg) = file_error(
            cfg()
                .ca_file(&ca.cert)
                .client_cert(&client.cert, &client.cert),
        );
        assert_eq!((what, &path), ("client key", &client.cert), "{msg}");
        assert!(msg.contains("no PEM private key"), "{msg}");

        // The server's key with the client's certificate.
        let (what, path, msg) = file_error(
            cfg()
                .ca_file(&ca.cert)
                .client_cert(&client.cert, &server.key),
        );
        assert_eq!((what, &path), ("client key", &server.key), "{msg}");
        assert!(msg.contains("does not match the certificate"), "{msg}");

        // TLS files with an http:// endpoint would go unused: refused.
        let e = Etcd::connect(config("http://127.0.0.1:1").ca_file(&ca.cert)).unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
        assert!(e.to_string().contains("https://"), "{e}");
    });
}
