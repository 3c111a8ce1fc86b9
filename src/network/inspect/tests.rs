//! The inspect output against Docker's JSON, byte for byte.

use super::*;
use crate::firewall::Proto;
use crate::link::MacAddr;
use crate::ports::PublishedPort;

const NET_ID: &str = "f2de39df4171b0dc801e8002d1d999b77256983dfc63041c0f34030aa3977566";
const WEB: &str = "3386a527aa08b37ea9232cbcace2d2458d49f44bb05a6b775fba7ddd40d8f92c";
const DB: &str = "94447ca479852d29aeddca75c28f7104df3c3196d7b6d83061879e339946805c";

fn network() -> NetworkInfo {
    NetworkInfo {
        name: "mybr0".into(),
        id: NET_ID.into(),
        created: "2024-05-06T07:08:09.123456789Z".into(),
        bridge: "br-f2de39df4171".into(),
        subnets: vec!["172.26.0.0/16".parse().unwrap()],
        gateways: vec!["172.26.0.1".parse().unwrap()],
        ip_range: Some("172.26.5.0/24".parse().unwrap()),
        icc: true,
        masquerade: true,
        host_binding: Some("0.0.0.0".parse().unwrap()),
        labels: [("env".to_string(), "test".to_string())].into(),
        ..NetworkInfo::default()
    }
}

fn attachment(container: &str, name: &str, last: u8) -> Attachment {
    Attachment {
        network: "mybr0".into(),
        container: container.into(),
        name: name.into(),
        ifname: "eth0".into(),
        host_veth: "veth1234567".into(),
        netns: format!("/var/run/netns/{name}").into(),
        mac: Some(MacAddr([0x02, 0x42, 172, 26, 5, last])),
        addrs: vec![format!("172.26.5.{last}/16").parse().unwrap()],
        hostname: container[..12].into(),
        ..Attachment::default()
    }
}

const EXPECTED_NETWORK: &str = r#"{
    "Name": "mybr0",
    "Id": "f2de39df4171b0dc801e8002d1d999b77256983dfc63041c0f34030aa3977566",
    "Created": "2024-05-06T07:08:09.123456789Z",
    "Scope": "local",
    "Driver": "bridge",
    "EnableIPv6": false,
    "IPAM": {
        "Driver": "default",
        "Options": {},
        "Config": [
            {
                "Subnet": "172.26.0.0/16",
                "IPRange": "172.26.5.0/24",
                "Gateway": "172.26.0.1"
            }
        ]
    },
    "Internal": false,
    "Attachable": false,
    "Ingress": false,
    "ConfigFrom": {
        "Network": ""
    },
    "ConfigOnly": false,
    "Containers": {
        "3386a527aa08b37ea9232cbcace2d2458d49f44bb05a6b775fba7ddd40d8f92c": {
            "Name": "web",
            "EndpointID": "@WEB_EP@",
            "MacAddress": "02:42:ac:1a:05:02",
            "IPv4Address": "172.26.5.2/16",
            "IPv6Address": ""
        },
        "94447ca479852d29aeddca75c28f7104df3c3196d7b6d83061879e339946805c": {
            "Name": "db",
            "EndpointID": "@DB_EP@",
            "MacAddress": "02:42:ac:1a:05:03",
            "IPv4Address": "172.26.5.3/16",
            "IPv6Address": ""
        }
    },
    "Options": {
        "com.docker.network.bridge.default_bridge": "false",
        "com.docker.network.bridge.enable_icc": "true",
        "com.docker.network.bridge.enable_ip_masquerade": "true",
        "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
        "com.docker.network.bridge.name": "br-f2de39df4171",
        "com.docker.network.driver.mtu": "1500"
    },
    "Labels": {
        "env": "test"
    }
}"#;

#[test]
fn network_json_has_dockers_keys_in_dockers_order() {
    let atts = [attachment(DB, "db", 3), attachment(WEB, "web", 2)];
    let got = NetworkInspect::new(&network(), &atts);
    let want = EXPECTED_NETWORK
        .replace("@WEB_EP@", &endpoint_id(NET_ID, WEB))
        .replace("@DB_EP@", &endpoint_id(NET_ID, DB));
    assert_eq!(got.to_json_pretty(), want);
    let back: NetworkInspect = serde_json::from_str(&want).unwrap();
    assert_eq!(back, got, "reads back");
}

#[test]
fn default_network_options_and_ids() {
    let mut net = network();
    net.name = "bridge".into();
    net.bridge = "docker0".into();
    net.ip_range = None;
    net.mtu = Some(1450);
    net.icc = false;
    net.labels.clear();
    let got = NetworkInspect::new(&net, &[]);
    assert_eq!(
        got.options["com.docker.network.bridge.default_bridge"],
        "true"
    );
    assert_eq!(got.options["com.docker.network.bridge.enable_icc"], "false");
    assert_eq!(got.options["com.docker.network.bridge.name"], "docker0");
    assert_eq!(got.options["com.docker.network.driver.mtu"], "1450");
    let json = got.to_json_pretty();
    assert!(json.contains("\"Containers\": {},\n"), "{json}");
    assert!(json.contains("\"Labels\": {}\n}"), "{json}");
    assert!(!json.contains("IPRange"), "no range, no key: {json}");
    let ep = endpoint_id(NET_ID, WEB);
    assert_eq!(ep.len(), 64);
    assert!(ep.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(ep, endpoint_id(NET_ID, WEB), "stable");
    assert_ne!(ep, endpoint_id(NET_ID, DB));
}

/// `docker network inspect bridge` as Docker 24 printed it (IPAM options `null`).
const DOCKER_OUTPUT: &str = r#"[
    {
        "Name": "bridge",
        "Id": "f2de39df4171b0dc801e8002d1d999b77256983dfc63041c0f34030aa3977566",
        "Created": "2016-10-19T06:04:10.120581227Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": null,
            "Config": [
                {
                    "Subnet": "172.17.0.0/16",
                    "Gateway": "172.17.0.1"
                }
            ]
        },
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {
            "Network": ""
        },
        "ConfigOnly": false,
        "Containers": {
            "3386a527aa08b37ea9232cbcace2d2458d49f44bb05a6b775fba7ddd40d8f92c": {
                "Name": "networktest",
                "EndpointID": "647c12443e91faf0fd508b6edfe59c30b642abb60dfab890b4bdccee38750bc1",
                "MacAddress": "02:42:ac:11:00:02",
                "IPv4Address": "172.17.0.2/16",
                "IPv6Address": ""
            }
        },
        "Options": {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": "docker0",
            "com.docker.network.driver.mtu": "1500"
        },
        "Labels": {}
    }
]"#;

#[test]
fn reads_dockers_own_output_and_writes_it_back() {
    let nets: Vec<NetworkInspect> = serde_json::from_str(DOCKER_OUTPUT).unwrap();
    assert_eq!(nets[0].containers.len(), 1);
    assert_eq!(
        nets[0].ipam.config[0].gateway.as_deref(),
        Some("172.17.0.1")
    );
    // The only difference: IPAM options print as `{}`.
    assert_eq!(
        to_json_pretty(&nets),
        DOCKER_OUTPUT.replace("\"Options\": null", "\"Options\": {}")
    );
}

const EXPECTED_CONTAINER: &str = r#"{
    "SandboxKey": "/var/run/netns/web",
    "Ports": {
        "443/tcp": null,
        "80/tcp": [
            {
                "HostIp": "0.0.0.0",
                "HostPort": "8080"
            },
            {
                "HostIp": "::",
                "HostPort": "8080"
            }
        ]
    },
    "Networks": {
        "bridge": {
            "Links": null,
            "Aliases": null,
            "MacAddress": "02:42:ac:11:00:02",
            "NetworkID": "@BRIDGE_ID@",
            "EndpointID": "@BRIDGE_EP@",
            "Gateway": "172.17.0.1",
            "IPAddress": "172.17.0.2",
            "IPPrefixLen": 16,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": null
        },
        "mybr0": {
            "Links": [
                "db"
            ],
            "Aliases": [
                "www"
            ],
            "MacAddress": "02:42:ac:1a:05:02",
            "NetworkID": "f2de39df4171b0dc801e8002d1d999b77256983dfc63041c0f34030aa3977566",
            "EndpointID": "@MYBR0_EP@",
            "Gateway": "172.26.0.1",
            "IPAddress": "172.26.5.2",
            "IPPrefixLen": 16,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": [
                "web",
                "3386a527aa08",
                "www"
            ]
        }
    }
}"#;

#[test]
fn container_json_has_dockers_keys_in_dockers_order() {
    let all = "0.0.0.0".parse().unwrap();
    let mut on_user = attachment(WEB, "web", 2);
    on_user.links = vec!["db".into()];
    on_user.aliases = vec!["www".into()];
    on_user.expose = vec![(Proto::Tcp, 80), (Proto::Tcp, 443)];
    on_user.ports = vec![
        PublishedPort::new(Proto::Tcp, all, 8080, 80),
        PublishedPort::new(Proto::Tcp, "::".parse().unwrap(), 8080, 80),
    ];
    let mut on_default = attachment(WEB, "web", 2);
    on_default.network = "bridge".into();
    on_default.addrs = vec!["172.17.0.2/16".parse().unwrap()];
    on_default.mac = Some(MacAddr([0x02, 0x42, 172, 17, 0, 2]));
    let mut bridge = network();
    bridge.name = "bridge".into();
    bridge.id = "b".repeat(64);
    bridge.subnets = vec!["172.17.0.0/16".parse().unwrap()];
    bridge.gateways = vec!["172.17.0.1".parse().unwrap()];
    let got = ContainerNetworks::new(&[on_default, on_user], &[network(), bridge.clone()]);
    let want = EXPECTED_CONTAINER
        .replace("@BRIDGE_ID@", &bridge.id)
        .replace("@BRIDGE_EP@", &endpoint_id(&bridge.id, WEB))
        .replace("@MYBR0_EP@", &endpoint_id(NET_ID, WEB));
    assert_eq!(got.to_json_pretty(), want);
    let back: ContainerNetworks = serde_json::from_str(&want).unwrap();
    assert_eq!(back, got, "reads back");
    assert_eq!(
        ContainerNetworks::new(&[], &[]).to_json_pretty(),
        "{\n    \"SandboxKey\": \"\",\n    \"Ports\": {},\n    \"Networks\": {}\n}"
    );
}

#[test]
fn ipv6_addresses_and_gateways() {
    let mut net = network();
    net.ipv6 = true;
    net.subnets.push("fd00:1::/64".parse().unwrap());
    net.gateways.push("fd00:1::1".parse().unwrap());
    let mut a = attachment(WEB, "web", 2);
    a.addrs.push("fd00:1::2/64".parse().unwrap());
    let n = NetworkInspect::new(&net, std::slice::from_ref(&a));
    assert!(n.enable_ipv6);
    assert_eq!(n.ipam.config[1].subnet, "fd00:1::/64");
    assert_eq!(n.ipam.config[1].gateway.as_deref(), Some("fd00:1::1"));
    assert_eq!(n.ipam.config[1].ip_range, None, "the range is IPv4's");
    assert_eq!(n.containers[WEB].ipv6_address, "fd00:1::2/64");
    let c = ContainerNetworks::new(&[a], &[net]);
    let s = &c.networks["mybr0"];
    assert_eq!(
        (s.global_ipv6_address.as_str(), s.global_ipv6_prefix_len),
        ("fd00:1::2", 64)
    );
    assert_eq!(s.ipv6_gateway, "fd00:1::1");
}
