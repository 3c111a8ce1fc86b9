//! The rule model's validation, hashes and display.

use std::net::IpAddr;

use super::network::fnv;
use super::*;
use crate::error::Error;

fn field(e: Error) -> &'static str {
    match e {
        Error::InvalidInput { field, .. } => field,
        other => panic!("expected invalid input, got {other}"),
    }
}

#[test]
fn network_rules_validation_names_the_field() {
    let ok = NetworkRules::new("n1", "br0").subnet("10.1.0.0/24".parse().unwrap());
    ok.validate().unwrap();
    assert_eq!(
        field(
            NetworkRules::new("bad name", "br0")
                .subnet("10.0.0.0/8".parse().unwrap())
                .validate()
                .unwrap_err()
        ),
        "network name"
    );
    assert_eq!(
        field(
            NetworkRules::new("n", "br/0")
                .subnet("10.0.0.0/8".parse().unwrap())
                .validate()
                .unwrap_err()
        ),
        "bridge"
    );
    assert_eq!(
        field(NetworkRules::new("n", "br0").validate().unwrap_err()),
        "subnets"
    );
    assert_eq!(
        field(
            ok.clone()
                .snat("fd00::1".parse().unwrap())
                .validate()
                .unwrap_err()
        ),
        "snat"
    );
    let bad_link = LinkAllow {
        from: "10.1.0.2".parse().unwrap(),
        to: "10.9.0.3".parse().unwrap(),
        proto: Proto::Tcp,
        port: 80,
    };
    assert_eq!(field(ok.link(bad_link).validate().unwrap_err()), "link");
}

#[test]
fn port_rule_validation_names_the_field() {
    let c: IpAddr = "172.17.0.2".parse().unwrap();
    PortRule::new("n", Proto::Tcp, 8080, c, 80)
        .validate()
        .unwrap();
    assert_eq!(
        field(
            PortRule::new("n", Proto::Tcp, 0, c, 80)
                .validate()
                .unwrap_err()
        ),
        "host port"
    );
    assert_eq!(
        field(
            PortRule::new("n", Proto::Tcp, 1, c, 0)
                .validate()
                .unwrap_err()
        ),
        "container port"
    );
    let v6 = PortRule::new("n", Proto::Udp, 53, c, 53).host_ip("::1".parse().unwrap());
    assert_eq!(field(v6.validate().unwrap_err()), "host address");
    assert_eq!(
        field(
            PortRule::new("n", Proto::Tcp, 1, "127.0.0.1".parse().unwrap(), 1)
                .validate()
                .unwrap_err()
        ),
        "container address"
    );
    let r = PortRule::range("n", Proto::Tcp, None, ((8000, 8010), (80, 90)), c).unwrap();
    assert_eq!(r.len(), 11);
    assert_eq!((r[10].host_port, r[10].container_port), (8010, 90));
    assert_eq!(
        field(PortRule::range("n", Proto::Tcp, None, ((8000, 8010), (80, 85)), c).unwrap_err()),
        "port range"
    );
    assert_eq!(
        field(PortRule::range("n", Proto::Tcp, None, ((9, 8), (9, 8)), c).unwrap_err()),
        "port range"
    );
}

#[test]
fn the_settings_hash_ignores_endpoints_and_stays_as_it_was() {
    let n = NetworkRules::new("n1", "br0").subnet("10.1.0.0/24".parse().unwrap());
    // What `Debug` printed before endpoints existed: tags of existing networks hold.
    let old = "NetworkRules { name: \"n1\", bridge: \"br0\", subnets: [10.1.0.0/24], \
               masquerade: true, snat: [], icc: true, internal: false, links: [], loopback: false }";
    assert_eq!(
        n.settings_hash(),
        fnv(old.as_bytes(), 0xcbf2_9ce4_8422_2325)
    );
    let with = n.clone().endpoint("veth1", "10.1.0.2".parse().unwrap());
    assert_eq!(with.settings_hash(), n.settings_hash());
    assert_eq!(with.full_hash(), n.full_hash(), "ICC on: nothing enforced");
    let off = n.clone().icc(false);
    let off_with = with.icc(false);
    assert_ne!(off_with.full_hash(), off.full_hash());
    assert_eq!(off_with.enforced_endpoints().len(), 1);
}

#[test]
fn endpoints_are_checked() {
    let n = NetworkRules::new("n1", "br0").subnet("10.1.0.0/24".parse().unwrap());
    let a: IpAddr = "10.1.0.2".parse().unwrap();
    n.clone().endpoint("veth1", a).validate().unwrap();
    assert_eq!(
        field(n.clone().endpoint("veth/1", a).validate().unwrap_err()),
        "endpoint port"
    );
    assert_eq!(
        field(
            n.clone()
                .endpoint("veth1", "10.9.0.2".parse().unwrap())
                .validate()
                .unwrap_err()
        ),
        "endpoint address"
    );
    let twice = n.endpoint("veth1", a).endpoint("veth2", a);
    assert_eq!(field(twice.validate().unwrap_err()), "endpoint address");
}

#[test]
fn display_is_docker_like() {
    let c: IpAddr = "fd00::2".parse().unwrap();
    let p = PortRule::new("n", Proto::Udp, 53, c, 5353).host_ip("::1".parse().unwrap());
    assert_eq!(p.to_string(), "n: udp [::1]:53 -> [fd00::2]:5353");
}
