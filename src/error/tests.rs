//! Unit tests of the error type: every converted message reads as before.

use super::*;

#[test]
fn object_errors_read_as_before() {
    let peer = Error::NotFound {
        object: Object::VethPeer,
        name: "veth0".into(),
        detail: Some("(if7 in netnsid 3) among the given namespaces".into()),
    };
    let overlay = Error::Exists {
        object: Object::OverlayNetwork,
        name: "ov1".into(),
        detail: Some("with subnet 10.0.9.0/24 and gateway Some(10.0.9.1)".into()),
    };
    let busy = Error::Busy {
        object: Object::Network,
        name: "n".into(),
        endpoints: vec!["a".into(), "b".into()],
    };
    for (e, text) in [
        (
            Error::not_found(Object::Link, "veth0"),
            "link veth0 not found",
        ),
        (
            Error::not_found(Object::Container, "web"),
            "container web not found",
        ),
        (
            Error::exists(Object::Network, "n"),
            "network n already exists",
        ),
        (
            Error::exists(Object::AddressPool, "n"),
            "address pool of network n already exists",
        ),
        (
            peer,
            "peer of veth0 (if7 in netnsid 3) among the given namespaces not found",
        ),
        (
            overlay,
            "overlay network ov1 with subnet 10.0.9.0/24 and gateway Some(10.0.9.1) already exists",
        ),
        (busy, "network n has active endpoints (a, b)"),
    ] {
        assert_eq!(e.to_string(), text);
        assert!(e.object().is_some());
    }
    assert!(Error::not_found(Object::Vni, 7).is_not_found());
    assert!(Error::exists(Object::Vni, 7).is_exists());
    let busy = Error::Busy {
        object: Object::Network,
        name: "n".into(),
        endpoints: vec![],
    };
    assert!(busy.is_busy());
    assert_eq!(busy.object(), Some((Object::Network, "n")));
}
