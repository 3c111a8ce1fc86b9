//! The `-p` parser: every Docker form, every error naming its part.

use super::*;

fn r(start: u16, end: u16) -> PortRange {
    PortRange::new(start, end).unwrap()
}

/// The expected mapping: `ip` and `host` empty for the defaults.
fn m(proto: Proto, ip: &str, host: &str, ctr: &str) -> PortMapping {
    let host_ports = match host {
        "" => HostPorts::Any,
        h => HostPorts::Range(h.parse().unwrap()),
    };
    PortMapping {
        proto,
        host_ip: (!ip.is_empty()).then(|| ip.parse().unwrap()),
        host_ports,
        container_ports: ctr.parse().unwrap(),
    }
}

/// Parses each spec, compares with the expected mapping and checks the canonical `Display`
/// parses back to it.
fn check(cases: &[(&str, PortMapping, &str)]) {
    for (spec, want, canonical) in cases {
        let got = PortMapping::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(&got, want, "{spec}");
        assert_eq!(got.to_string(), *canonical, "{spec}");
        assert_eq!(
            &canonical.parse::<PortMapping>().unwrap(),
            want,
            "{canonical} round trip"
        );
    }
}

#[test]
fn forms_on_the_default_address() {
    use Proto::*;
    check(&[
        ("80", m(Tcp, "", "", "80"), "80/tcp"),
        ("80/udp", m(Udp, "", "", "80"), "80/udp"),
        ("80/sctp", m(Sctp, "", "", "80"), "80/sctp"),
        ("80/tcp", m(Tcp, "", "", "80"), "80/tcp"),
        ("80/UDP", m(Udp, "", "", "80"), "80/udp"),
        ("80-90", m(Tcp, "", "", "80-90"), "80-90/tcp"),
        ("8080:80", m(Tcp, "", "8080", "80"), "8080:80/tcp"),
        ("5000:5000", m(Tcp, "", "5000", "5000"), "5000:5000/tcp"),
        (
            "8000-8010:80-90",
            m(Tcp, "", "8000-8010", "80-90"),
            "8000-8010:80-90/tcp",
        ),
        (
            "8000-8010:80",
            m(Tcp, "", "8000-8010", "80"),
            "8000-8010:80/tcp",
        ),
        (":8080:80", m(Tcp, "", "8080", "80"), "8080:80/tcp"),
        ("::80", m(Tcp, "", "", "80"), "80/tcp"),
        (":80", m(Tcp, "", "", "80"), "80/tcp"),
        ("65535:1", m(Tcp, "", "65535", "1"), "65535:1/tcp"),
        ("080", m(Tcp, "", "", "80"), "80/tcp"),
    ]);
}

#[test]
fn forms_on_one_address() {
    use Proto::*;
    let v4 = "127.0.0.1";
    check(&[
        (
            "127.0.0.1:8080:80",
            m(Tcp, v4, "8080", "80"),
            "127.0.0.1:8080:80/tcp",
        ),
        ("127.0.0.1::80", m(Tcp, v4, "", "80"), "127.0.0.1::80/tcp"),
        (
            "127.0.0.1:4000:5000/udp",
            m(Udp, v4, "4000", "5000"),
            "127.0.0.1:4000:5000/udp",
        ),
        (
            "0.0.0.0:8000-8001:80-81",
            m(Tcp, "0.0.0.0", "8000-8001", "80-81"),
            "0.0.0.0:8000-8001:80-81/tcp",
        ),
        (
            "[::1]:8080:80",
            m(Tcp, "::1", "8080", "80"),
            "[::1]:8080:80/tcp",
        ),
        ("[::1]::80", m(Tcp, "::1", "", "80"), "[::1]::80/tcp"),
        (
            "[2001:db8::1]:53:53/udp",
            m(Udp, "2001:db8::1", "53", "53"),
            "[2001:db8::1]:53:53/udp",
        ),
        ("[::]::80/sctp", m(Sctp, "::", "", "80"), "[::]::80/sctp"),
        (
            "[::ffff:10.0.0.1]::80",
            m(Tcp, "::ffff:10.0.0.1", "", "80"),
            "[::ffff:10.0.0.1]::80/tcp",
        ),
    ]);
}

fn err(spec: &str) -> PortSpecError {
    match PortMapping::parse(spec) {
        Ok(m) => panic!("{spec:?} parsed as {m:?}"),
        Err(e) => e,
    }
}

/// The variant name and the part it names (`-` when it names none).
fn named(e: &PortSpecError) -> (&'static str, String) {
    use PortSpecError::*;
    match e {
        Empty => ("Empty", "-".into()),
        MissingContainerPort { .. } => ("MissingContainerPort", "-".into()),
        MissingHostPort { .. } => ("MissingHostPort", "-".into()),
        InvalidHostIp { part, .. } => ("InvalidHostIp", part.clone()),
        Ipv6WithoutBrackets { part, .. } => ("Ipv6WithoutBrackets", part.clone()),
        BracketedIpv4 { part, .. } => ("BracketedIpv4", part.clone()),
        InvalidPort { part, .. } => ("InvalidPort", part.clone()),
        PortZero { part, .. } => ("PortZero", part.clone()),
        ReversedRange { part, .. } => ("ReversedRange", part.clone()),
        RangeLengthMismatch {
            host, container, ..
        } => ("RangeLengthMismatch", format!("{host}:{container}")),
        UnknownProtocol { part, .. } => ("UnknownProtocol", part.clone()),
    }
}

#[test]
fn every_error_names_its_part() {
    let cases = [
        ("", "Empty", "-"),
        ("/tcp", "MissingContainerPort", "-"),
        ("8080:", "MissingContainerPort", "-"),
        ("127.0.0.1:8080:", "MissingContainerPort", "-"),
        ("[::1]:80", "MissingHostPort", "-"),
        ("256.0.0.1:8080:80", "InvalidHostIp", "256.0.0.1"),
        ("localhost:8080:80", "InvalidHostIp", "localhost"),
        ("1:2:3:4", "InvalidHostIp", "1:2"),
        ("[::1:8080:80", "InvalidHostIp", "[::1"),
        ("[::1]x:8080:80", "InvalidHostIp", "[::1]x"),
        ("[]:8080:80", "InvalidHostIp", "[]"),
        ("[fe80::1%eth0]:8080:80", "InvalidHostIp", "[fe80::1%eth0]"),
        ("::1:8080:80", "Ipv6WithoutBrackets", "::1"),
        ("::1::80", "Ipv6WithoutBrackets", "::1"),
        ("2001:db8::1:8080:80", "Ipv6WithoutBrackets", "2001:db8::1"),
        ("[127.0.0.1]:8080:80", "BracketedIpv4", "[127.0.0.1]"),
        ("http", "InvalidPort", "http"),
        ("70000", "InvalidPort", "70000"),
        ("65536:80", "InvalidPort", "65536"),
        ("8080:+80", "InvalidPort", "+80"),
        (" 80", "InvalidPort", " 80"),
        ("8000-:80", "InvalidPort", "8000-"),
        ("-80", "InvalidPort", "-80"),
        ("80-90-100", "InvalidPort", "80-90-100"),
        ("1.2.3.4:80", "MissingHostPort", "-"),
        ("[::1]:8080:80:90", "InvalidPort", "80:90"),
        ("0", "PortZero", "0"),
        ("0:80", "PortZero", "0"),
        ("8080:0-5", "PortZero", "0-5"),
        ("90-80", "ReversedRange", "90-80"),
        ("8010-8000:80", "ReversedRange", "8010-8000"),
        ("8000-8010:80-85", "RangeLengthMismatch", "8000-8010:80-85"),
        ("8080:80-81", "RangeLengthMismatch", "8080:80-81"),
        ("80/tpc", "UnknownProtocol", "tpc"),
        ("80/", "UnknownProtocol", ""),
        ("80/tcp/udp", "UnknownProtocol", "tcp/udp"),
        ("127.0.0.1:8080:80/icmp", "UnknownProtocol", "icmp"),
    ];
    for (spec, variant, part) in cases {
        let e = err(spec);
        assert_eq!(named(&e), (variant, part.to_owned()), "{spec:?}: {e}");
        if !spec.is_empty() {
            assert!(
                e.to_string().contains(&format!("{spec:?}")),
                "{spec:?}: message names the spec: {e}"
            );
        }
    }
}

#[test]
fn error_messages() {
    assert_eq!(err("").to_string(), "empty port spec");
    assert_eq!(
        err("::1:8080:80").to_string(),
        r#"IPv6 host address "::1" in port spec "::1:8080:80" must be in brackets: [::1]"#
    );
    assert_eq!(
        err("8000-8010:80-85").to_string(),
        r#"host ports 8000-8010 and container ports 80-85 in port spec "8000-8010:80-85" differ in length"#
    );
    assert_eq!(
        err("70000").to_string(),
        r#"invalid port "70000" in port spec "70000" (expected 1-65535 or a range START-END)"#
    );
}

#[test]
fn built_mappings_are_validated() {
    let bad = PortMapping::new(r(80, 90)).host_ports(HostPorts::Range(r(8000, 8005)));
    assert!(
        matches!(bad.validate(), Err(PortSpecError::RangeLengthMismatch { spec, .. }) if spec == "8000-8005:80-90/tcp")
    );
    assert!(PortMapping::new(r(80, 80))
        .host_ports(HostPorts::Range(r(8000, 8005)))
        .validate()
        .is_ok());
    assert!(PortMapping::new(r(80, 90)).validate().is_ok());
}

#[test]
fn ranges_and_protocols() {
    assert_eq!(r(8000, 8010).count(), 11);
    assert_eq!(r(1, 65535).count(), 65535);
    assert!(r(8000, 8010).contains(8010) && !r(8000, 8010).contains(7999));
    assert_eq!(r(5, 7).iter().collect::<Vec<_>>(), [5, 6, 7]);
    assert!(matches!(
        PortRange::single(0),
        Err(PortSpecError::PortZero { .. })
    ));
    assert!(matches!(
        PortRange::new(9, 8),
        Err(PortSpecError::ReversedRange { .. })
    ));
    assert!(
        matches!("x".parse::<PortRange>(), Err(PortSpecError::InvalidPort { part, .. }) if part == "x")
    );
    assert_eq!("Sctp".parse::<Proto>().unwrap(), Proto::Sctp);
    assert!(
        matches!("icmp".parse::<Proto>(), Err(PortSpecError::UnknownProtocol { part, .. }) if part == "icmp")
    );
}

#[test]
fn publish_all_forms_and_errors() {
    let ms = publish_all(["80/tcp", "53/udp", "8000-8001/sctp", "443", "80/TCP"]).unwrap();
    let specs: Vec<String> = ms.iter().map(ToString::to_string).collect();
    assert_eq!(specs, ["80/tcp", "53/udp", "8000-8001/sctp", "443/tcp"]);
    assert!(ms
        .iter()
        .all(|m| m.host_ip.is_none() && m.host_ports == HostPorts::Any));
    assert!(publish_all(Vec::<String>::new()).unwrap().is_empty());
    let e = publish_all(["80", "8080:80"]).unwrap_err();
    assert!(
        matches!(&e, PortSpecError::InvalidPort { part, .. } if part == "8080:80"),
        "{e}"
    );
    assert!(matches!(
        publish_all(["80/icmp"]),
        Err(PortSpecError::UnknownProtocol { .. })
    ));
    assert!(matches!(
        publish_all(["/udp"]),
        Err(PortSpecError::MissingContainerPort { .. })
    ));
    assert!(matches!(publish_all([""]), Err(PortSpecError::Empty)));
    assert!(matches!(
        publish_all(["0/tcp"]),
        Err(PortSpecError::PortZero { .. })
    ));
}

#[test]
fn unbracketed_ipv6_is_refused_even_where_docker_reads_ports() {
    // Docker reads this as address 2001:db8::1, host port 2 (meant: [2001:db8::1:2]::80).
    let e = err("2001:db8::1:2:80");
    assert_eq!(
        named(&e),
        ("Ipv6WithoutBrackets", "2001:db8::1".to_owned()),
        "{e}"
    );
    assert_eq!(
        named(&err("fe80::1:80")),
        ("InvalidHostIp", "fe80:".to_owned())
    );
}
