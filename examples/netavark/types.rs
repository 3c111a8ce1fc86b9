//! The JSON of Podman's network tool contract (netavark 1.4): what `setup` and `teardown`
//! read, and the status `setup` prints. Fields the contract has and this tool does not
//! use are still read, so that a request that names them parses; unknown fields are
//! ignored, as netavark ignores them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use netplumb::IpNet;
use serde::{Deserialize, Serialize};

/// One call's request: the container and every network it joins.
#[derive(Debug, Deserialize)]
pub struct NetworkOptions {
    /// The container's id.
    pub container_id: String,
    /// The container's name (its DNS name).
    pub container_name: String,
    /// Per network, what this container asks of it; the keys match `network_info`.
    pub networks: BTreeMap<String, PerNetwork>,
    /// The networks, described in full.
    pub network_info: BTreeMap<String, Network>,
    /// The container's published ports.
    #[serde(default)]
    pub port_mappings: Option<Vec<PortMapping>>,
    /// DNS servers of the container's own.
    #[serde(default)]
    pub dns_servers: Option<Vec<IpAddr>>,
}

/// What a container asks of one network.
#[derive(Debug, Deserialize)]
pub struct PerNetwork {
    /// Names the network's DNS resolves to this container.
    #[serde(default)]
    pub aliases: Option<Vec<String>>,
    /// The interface's name inside the container.
    pub interface_name: String,
    /// The addresses, chosen by the caller (one per subnet).
    #[serde(default)]
    pub static_ips: Option<Vec<IpAddr>>,
    /// The interface's MAC address.
    #[serde(default)]
    pub static_mac: Option<String>,
}

/// One network, as the caller defines it.
#[derive(Debug, Deserialize)]
pub struct Network {
    /// Whether the network has DNS.
    #[serde(default)]
    pub dns_enabled: bool,
    /// `bridge` (the only driver this tool has).
    pub driver: String,
    /// The network's id.
    #[allow(dead_code)] // part of the contract
    pub id: String,
    /// No route out of the network.
    #[serde(default)]
    pub internal: bool,
    /// The network has an IPv6 subnet (the subnets say so too; they are what counts).
    #[serde(default)]
    #[allow(dead_code)] // part of the contract
    pub ipv6_enabled: bool,
    /// The network's name.
    pub name: String,
    /// The bridge's name on the host.
    #[serde(default)]
    pub network_interface: Option<String>,
    /// Driver options (`mtu`, `isolate`, `metric`, …).
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    /// IPAM options (`driver`: `host-local`, `none`, `dhcp`).
    #[serde(default)]
    pub ipam_options: Option<BTreeMap<String, String>>,
    /// The subnets and their gateways.
    #[serde(default)]
    pub subnets: Option<Vec<Subnet>>,
    /// Upstream name servers of the network's DNS.
    #[serde(default)]
    pub network_dns_servers: Option<Vec<IpAddr>>,
    /// Static routes in the containers (netavark ≥ 1.8).
    #[serde(default)]
    pub routes: Option<Vec<Route>>,
}

/// A static route of a network.
#[derive(Debug, Deserialize)]
pub struct Route {
    /// Where it leads.
    pub destination: IpNet,
    /// Through which address of the network.
    pub gateway: IpAddr,
    /// Its metric (else the network's `metric`).
    #[serde(default)]
    pub metric: Option<u32>,
}

/// A subnet of a network.
#[derive(Debug, Deserialize)]
pub struct Subnet {
    /// The gateway (the bridge's address in it).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// The subnet.
    pub subnet: IpNet,
}

/// A published port range.
#[derive(Debug, Deserialize)]
pub struct PortMapping {
    /// The first container port.
    pub container_port: u16,
    /// The host address; empty for all.
    #[serde(default)]
    pub host_ip: String,
    /// The first host port.
    pub host_port: u16,
    /// `tcp`, `udp`, `sctp`, or several of them separated by commas; empty is `tcp`.
    #[serde(default)]
    pub protocol: String,
    /// How many ports, from the first ones up; 0 or 1 is one.
    #[serde(default)]
    pub range: u16,
}

/// What `setup` reports for one network.
#[derive(Debug, Serialize)]
pub struct StatusBlock {
    /// Search domains for the container's resolv.conf.
    pub dns_search_domains: Vec<String>,
    /// Name servers for the container's resolv.conf.
    pub dns_server_ips: Vec<IpAddr>,
    /// The container's interfaces on the network, by name.
    pub interfaces: BTreeMap<String, NetInterface>,
}

/// One interface of the container.
#[derive(Debug, Serialize)]
pub struct NetInterface {
    /// Its MAC address.
    pub mac_address: String,
    /// Its addresses, each with its subnet's prefix and gateway.
    pub subnets: Vec<NetAddress>,
}

/// An address of an interface.
#[derive(Debug, Serialize)]
pub struct NetAddress {
    /// The gateway of its subnet; none on an internal network.
    pub gateway: Option<IpAddr>,
    /// The address with its subnet's prefix length.
    pub ipnet: IpNet,
}
