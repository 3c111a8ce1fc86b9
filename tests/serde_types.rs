//! The data types under feature `serde`: each survives a trip through JSON unchanged, a
//! golden JSON pins the shape of a few, and values that their own parsers refuse are
//! refused when deserialized too. Needs no privileges.
#![cfg(all(feature = "store", feature = "serde"))]

use std::fmt::Debug;

use netplumb::firewall::{PortRule, Proto, Repaired};
use netplumb::ipam::{Lease, Owner};
use netplumb::link::MacAddr;
use netplumb::network::files::{parse_add_host, DnsConfig};
use netplumb::network::{
    Attachment, Container, ContainerSpec, GcReport, NetworkConfig, NetworkInfo, NetworkMode,
    ReconcileReport,
};
use netplumb::ports::{HostPorts, PortMapping, PortRange, PublishedPort};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `value` to JSON and back is `value`; returns the JSON.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> String {
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(&back, value, "{json}");
    json
}

/// The error of deserializing `json` as `T`.
fn refused<T: DeserializeOwned + Debug>(json: &str) -> String {
    match serde_json::from_str::<T>(json) {
        Ok(v) => panic!("{json} was taken as {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn network_info() -> NetworkInfo {
    let mut n = NetworkInfo::default();
    n.name = "web".into();
    n.id = "ab".repeat(32);
    n.created = "2024-05-01T12:00:00Z".into();
    n.bridge = "br-abababababab".into();
    n.bridge_created = true;
    n.bridge_addrs = vec!["172.18.0.1/16".parse().unwrap()];
    n.subnets = vec![
        "172.18.0.0/16".parse().unwrap(),
        "fd00:18::/64".parse().unwrap(),
    ];
    n.gateways = vec!["172.18.0.1".parse().unwrap()];
    n.ip_range = Some("172.18.5.0/24".parse().unwrap());
    n.mtu = Some(1450);
    n.icc = true;
    n.masquerade = true;
    n.host_binding = Some("0.0.0.0".parse().unwrap());
    n.ipv6 = true;
    n.labels.insert("team".into(), "blue".into());
    n.firewall = "nftables".into();
    n
}

fn attachment() -> Attachment {
    let mut a = Attachment::default();
    a.network = "web".into();
    a.container = "3f2a1c0d9e8b".into();
    a.name = "api".into();
    a.ifname = "eth0".into();
    a.host_veth = "veth84a0ef0".into();
    a.netns = "/run/netns/api".into();
    a.mac = Some("02:42:ac:12:00:02".parse().unwrap());
    a.addrs = vec!["172.18.0.2/16".parse().unwrap()];
    a.ports = vec![PublishedPort::new(
        Proto::Tcp,
        "0.0.0.0".parse().unwrap(),
        8080,
        80,
    )];
    a.expose = vec![(Proto::Udp, 53)];
    a.links = vec!["db:database".into()];
    a.aliases = vec!["backend".into()];
    a.files = Some("/var/lib/ctr/api".into());
    a.hostname = "api".into();
    a
}

#[test]
fn network_info_round_trips() {
    let json = round_trip(&network_info());
    assert!(
        json.contains(r#""subnets":["172.18.0.0/16","fd00:18::/64"]"#),
        "{json}"
    );
    round_trip(&NetworkInfo::default());
    // Missing fields take their defaults: older records still load.
    let n: NetworkInfo = serde_json::from_str(r#"{"name":"web"}"#).unwrap();
    assert_eq!((n.name.as_str(), n.subnets.len()), ("web", 0));
}

#[test]
fn attachment_has_a_stable_shape() {
    let json = round_trip(&attachment());
    let golden = concat!(
        r#"{"network":"web","container":"3f2a1c0d9e8b","name":"api","ifname":"eth0","#,
        r#""host_veth":"veth84a0ef0","netns":"/run/netns/api","mac":"02:42:ac:12:00:02","#,
        r#""addrs":["172.18.0.2/16"],"#,
        r#""ports":[{"proto":"tcp","host_ip":"0.0.0.0","host_port":8080,"container_port":80}],"#,
        r#""expose":[["udp",53]],"links":["db:database"],"aliases":["backend"],"#,
        r#""files":"/var/lib/ctr/api","hostname":"api"}"#,
    );
    assert_eq!(json, golden);
}

#[test]
fn port_types_round_trip() {
    round_trip(&PublishedPort::new(
        Proto::Sctp,
        "::1".parse().unwrap(),
        9000,
        90,
    ));
    for spec in [
        "80",
        "80/udp",
        "8080:80",
        "8000-8010:80-90",
        "8000-8010:80",
        "127.0.0.1::80/sctp",
        "[::1]:8080:80",
    ] {
        round_trip(&PortMapping::parse(spec).unwrap());
    }
    assert_eq!(round_trip(&PortRange::single(80).unwrap()), r#""80""#);
    assert_eq!(
        round_trip(&PortRange::new(8000, 8010).unwrap()),
        r#""8000-8010""#
    );
    assert_eq!(round_trip(&HostPorts::Any), "null");
    assert_eq!(
        round_trip(&HostPorts::Range(PortRange::new(8000, 8010).unwrap())),
        r#""8000-8010""#
    );
    for (p, text) in [
        (Proto::Tcp, "tcp"),
        (Proto::Udp, "udp"),
        (Proto::Sctp, "sctp"),
    ] {
        assert_eq!(round_trip(&p), format!("\"{text}\""));
    }
    let rule = PortRule::new("web", Proto::Tcp, 8080, "172.18.0.2".parse().unwrap(), 80)
        .host_ip("127.0.0.1".parse().unwrap());
    round_trip(&rule);
}

#[test]
fn port_mapping_has_a_stable_shape() {
    let m = PortMapping::parse("127.0.0.1:8000-8010:80-90/udp").unwrap();
    assert_eq!(
        round_trip(&m),
        r#"{"proto":"udp","host_ip":"127.0.0.1","host_ports":"8000-8010","container_ports":"80-90"}"#
    );
    let any = PortMapping::parse("80").unwrap();
    assert_eq!(
        round_trip(&any),
        r#"{"proto":"tcp","host_ip":null,"host_ports":null,"container_ports":"80"}"#
    );
    // Only the container ports are required.
    let short: PortMapping = serde_json::from_str(r#"{"container_ports":"80"}"#).unwrap();
    assert_eq!(short, any);
}

#[test]
fn bad_ports_are_refused() {
    for bad in [
        r#""0""#,
        r#""90-80""#,
        r#""http""#,
        r#""80-""#,
        r#""70000""#,
        "80",
    ] {
        refused::<PortRange>(bad);
    }
    let e = refused::<PortRange>(r#""90-80""#);
    assert!(e.contains("reversed port range"), "{e}");
    let e = refused::<PortRange>(r#""0""#);
    assert!(e.contains("port 0"), "{e}");
    // Host and container ranges of different lengths, which PortMapping::validate refuses.
    let e = refused::<PortMapping>(r#"{"host_ports":"8000-8002","container_ports":"80-90"}"#);
    assert!(e.contains("differ in length"), "{e}");
    refused::<PortMapping>(r#"{"proto":"tcp"}"#);
    refused::<PublishedPort>(
        r#"{"proto":"tcp","host_ip":"nowhere","host_port":1,"container_port":1}"#,
    );
}

#[test]
fn unknown_protocol_is_refused() {
    let e = refused::<Proto>(r#""tpc""#);
    assert!(e.contains(r#"unknown protocol "tpc""#), "{e}");
    refused::<Proto>("6");
    // Any case, as the `-p` parser takes it; written lower-case.
    assert_eq!(
        serde_json::from_str::<Proto>(r#""UDP""#).unwrap(),
        Proto::Udp
    );
    refused::<PortMapping>(r#"{"proto":"icmp","container_ports":"80"}"#);
}

#[test]
fn mac_is_text_and_checked() {
    let m: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
    assert_eq!(round_trip(&m), r#""02:42:ac:11:00:02""#);
    for bad in [
        r#""02:42:ac:11:00""#,
        r#""02:42:ac:11:00:02:03""#,
        r#""zz:42:ac:11:00:02""#,
        r#""""#,
        "[2,66,172,17,0,2]",
    ] {
        refused::<MacAddr>(bad);
    }
    let e = refused::<MacAddr>(r#""zz:42:ac:11:00:02""#);
    assert!(e.contains("MAC address"), "{e}");
    let e = refused::<Attachment>(r#"{"mac":"02:42"}"#);
    assert!(e.contains("MAC address"), "{e}");
}

#[test]
fn leases_round_trip() {
    let owner = Owner::new("3f2a1c0d9e8b", "eth0");
    assert_eq!(
        round_trip(&owner),
        r#"{"container":"3f2a1c0d9e8b","ifname":"eth0"}"#
    );
    let lease = Lease {
        network: "web".into(),
        address: "172.18.0.2".parse().unwrap(),
        prefix_len: 16,
        gateway: Some("172.18.0.1".parse().unwrap()),
        owner,
    };
    round_trip(&lease);
    let v6 = Lease {
        address: "fd00:18::2".parse().unwrap(),
        prefix_len: 64,
        gateway: None,
        ..lease
    };
    round_trip(&v6);
}

#[test]
fn network_config_round_trips_with_the_builders_defaults() {
    let full = NetworkConfig::new("web")
        .bridge("br-web")
        .subnet("172.26.0.0/16".parse().unwrap())
        .subnet("fd00:26::/64".parse().unwrap())
        .gateway("172.26.0.1".parse().unwrap())
        .ip_range("172.26.5.0/24".parse().unwrap())
        .mtu(1450)
        .internal(true)
        .icc(false)
        .masquerade(false)
        .host_binding("127.0.0.1".parse().unwrap())
        .ipv6(true)
        .multicast_snooping(true)
        .label("team", "blue");
    let json = round_trip(&full);
    assert!(json.contains(r#""ip_range":"172.26.5.0/24""#), "{json}");
    round_trip(&NetworkConfig::new("plain"));
    let short: NetworkConfig = serde_json::from_str(r#"{"name":"plain"}"#).unwrap();
    assert_eq!(short, NetworkConfig::new("plain"));
    refused::<NetworkConfig>(r#"{"subnets":[]}"#);
    refused::<NetworkConfig>(r#"{"name":"x","subnets":["10.0.0.0/33"]}"#);
    // What the builder takes unchecked, deserializing takes unchecked, and validate (as
    // create_network) refuses.
    let bad: NetworkConfig =
        serde_json::from_str(r#"{"name":"x","subnets":["10.0.0.0/24"],"gateways":["10.1.0.1"]}"#)
            .unwrap();
    assert!(bad.validate().is_err());
}

#[test]
fn reports_round_trip() {
    let mut gc = GcReport::default();
    gc.disconnected = vec!["web/3f2a1c0d9e8b".into()];
    gc.stray_links = vec!["veth84a0ef0".into()];
    gc.leases = vec!["web 172.18.0.9".into()];
    gc.ports = vec!["tcp 0.0.0.0:8080".into()];
    gc.hosts = vec!["/var/lib/ctr/api".into()];
    round_trip(&gc);
    round_trip(&GcReport::default());

    let mut repaired = Repaired::default();
    repaired.skeleton = vec!["table ip netplumb".into()];
    repaired.networks = vec!["web".into()];
    repaired.ports = vec![PortRule::new(
        "web",
        Proto::Udp,
        5353,
        "172.18.0.2".parse().unwrap(),
        53,
    )];
    let mut rec = ReconcileReport::default();
    rec.firewall = repaired;
    rec.skipped = vec!["old".into()];
    round_trip(&rec);
    assert_eq!(
        round_trip(&ReconcileReport::default()),
        r#"{"firewall":{"skeleton":[],"networks":[],"ports":[]},"skipped":[]}"#
    );
}

#[test]
fn container_travels_as_its_spec() {
    let ns = netplumb::Netns::current().unwrap();
    let dns = DnsConfig::new()
        .nameserver("1.1.1.1".parse().unwrap())
        .search("example.com")
        .option("ndots:2");
    let ctr = Container::new("3f2a1c0d9e8b", &ns)
        .name("api")
        .ifname("eth1")
        .ip("172.18.0.10".parse().unwrap())
        .ip6("fd00:18::10".parse().unwrap())
        .mac("02:42:ac:12:00:0a".parse().unwrap())
        .publish("8080:80".parse().unwrap())
        .expose(Proto::Udp, 53)
        .link_as("db", "database")
        .alias("backend")
        .files("/var/lib/ctr/api")
        .hostname("api")
        .add_host(parse_add_host("gw:host-gateway").unwrap())
        .add_host(parse_add_host("v6:::1").unwrap())
        .dns(dns);
    let spec = ctr.spec();
    let json = round_trip(&spec);
    assert!(
        json.contains(r#""add_hosts":["gw:host-gateway","v6:::1"]"#),
        "{json}"
    );
    assert!(json.contains(r#""mac":"02:42:ac:12:00:0a""#), "{json}");
    assert_eq!(Container::from_spec(spec.clone(), &ns).spec(), spec);
    round_trip(&Container::new("c1", &ns).spec());

    let short: ContainerSpec = serde_json::from_str(r#"{"id":"c1","name":"c1"}"#).unwrap();
    assert_eq!(short, Container::new("c1", &ns).spec());
    let e = refused::<ContainerSpec>(r#"{"id":"c1","name":"c1","add_hosts":["web:1.2.3"]}"#);
    assert!(e.contains("add-host address"), "{e}");
    refused::<ContainerSpec>(r#"{"id":"c1","name":"c1","ports":[{"container_ports":"0"}]}"#);
}

#[test]
fn network_mode_is_text() {
    for (mode, text) in [
        (NetworkMode::Host, "host"),
        (NetworkMode::None, "none"),
        (NetworkMode::Container("web".into()), "container:web"),
        (NetworkMode::Bridge("mybr0".into()), "mybr0"),
    ] {
        assert_eq!(round_trip(&mode), format!("\"{text}\""));
    }
    refused::<NetworkMode>(r#""container:""#);
}
