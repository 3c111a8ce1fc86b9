//! Docker-shaped inspect output (feature `serde`, on by default): what
//! `docker network inspect NET` prints for a network ([`NetworkInspect`]), and what
//! `docker inspect C` prints under `NetworkSettings` for a container
//! ([`ContainerNetworks`]).
//!
//! Field names, their order and the value formats follow Docker's JSON: maps are sorted by
//! key (as Go prints them), absent lists are `null`, addresses are strings, and
//! [`to_json_pretty`] indents by four spaces as the `docker` command does.
//!
//! ```no_run
//! use netplumb::network::Host;
//! let host = Host::open_in(&netplumb::Netns::current()?, "/var/lib/netplumb")?;
//! let net = host.inspect_network("bridge")?;
//! println!("{}", netplumb::network::inspect::to_json_pretty(&[net])); // docker network inspect bridge
//! # Ok::<(), netplumb::Error>(())
//! ```
//!
//! Values netplumb does not keep are derived or fixed: `EndpointID` is a stable 64-hex-digit
//! digest of the network and container ids; `Scope` is `local`, `Driver` `bridge`, IPAM's
//! `Driver` `default`; `Attachable`, `Ingress` and `ConfigOnly` are `false`. `Options`
//! always carries the six `com.docker.network.*` keys (Docker shows them for the default
//! network, and for a user network only those given with `-o`), the MTU as `1500` when the
//! network has none of its own.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use super::config::DEFAULT_NETWORK;
use super::host::Host;
use super::state::{Attachment, NetworkInfo};
use crate::error::Result;

/// Docker's default MTU, shown when a network has none of its own.
const DEFAULT_MTU: u32 = 1500;

/// A `null` in Docker's JSON reads as the empty value.
fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> std::result::Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One network as `docker network inspect` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct NetworkInspect {
    /// The name.
    pub name: String,
    /// The id: 64 hex digits.
    pub id: String,
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
    /// `local`.
    pub scope: String,
    /// `bridge`.
    pub driver: String,
    /// Whether the network has IPv6.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Address management.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// No outbound traffic, no published ports.
    pub internal: bool,
    /// `false` (a swarm notion).
    pub attachable: bool,
    /// `false` (a swarm notion).
    pub ingress: bool,
    /// `{"Network": ""}`.
    pub config_from: ConfigFrom,
    /// `false`.
    pub config_only: bool,
    /// The attached containers by id.
    #[serde(deserialize_with = "null_as_default")]
    pub containers: BTreeMap<String, EndpointResource>,
    /// The driver options (`com.docker.network.bridge.*`, `com.docker.network.driver.mtu`).
    #[serde(deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
}

/// A network's address management (`IPAM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Ipam {
    /// `default`.
    pub driver: String,
    /// Driver options (none).
    #[serde(deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    /// One entry per subnet.
    #[serde(deserialize_with = "null_as_default")]
    pub config: Vec<IpamConfig>,
}

/// One subnet of a network (`IPAM.Config[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct IpamConfig {
    /// `172.17.0.0/16`.
    pub subnet: String,
    /// The allocation range (`--ip-range`), when there is one.
    #[serde(rename = "IPRange", default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// `172.17.0.1`, when the subnet has a gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// Where a network's configuration came from (`ConfigFrom`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ConfigFrom {
    /// `""`.
    pub network: String,
}

/// A container on a network (`Containers.ID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct EndpointResource {
    /// The container's name.
    pub name: String,
    /// The endpoint's id (64 hex digits).
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// `02:42:ac:11:00:02`.
    pub mac_address: String,
    /// `172.17.0.2/16`, or `""`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// `fd00::2/64`, or `""`.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// A container's network settings, as `docker inspect C` prints them under
/// `NetworkSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ContainerNetworks {
    /// The container's namespace file, or `""`.
    pub sandbox_key: String,
    /// `"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]`; `null` for a port that is
    /// exposed but not published.
    #[serde(deserialize_with = "null_as_default")]
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    /// The container's networks by name.
    #[serde(deserialize_with = "null_as_default")]
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// One host address a container port is published on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct PortBinding {
    /// `0.0.0.0`, `::` or one address.
    pub host_ip: String,
    /// The host port, as a string.
    pub host_port: String,
}

/// A container's settings on one network (`NetworkSettings.Networks.NAME`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct EndpointSettings {
    /// `--link`s on this network, or `null`.
    pub links: Option<Vec<String>>,
    /// Other names of the container on this network, or `null`.
    pub aliases: Option<Vec<String>>,
    /// `02:42:ac:11:00:02`.
    pub mac_address: String,
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id (as in [`EndpointResource::endpoint_id`]).
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The network's IPv4 gateway, or `""`.
    pub gateway: String,
    /// The IPv4 address without prefix, or `""`.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// The IPv4 prefix length (0 without an address).
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// The network's IPv6 gateway, or `""`.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// The IPv6 address without prefix, or `""`.
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// The IPv6 prefix length (0 without an address).
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// Names the container answers to on a user network (name, short id, aliases);
    /// `null` on the default network, which has no name resolution.
    #[serde(rename = "DNSNames")]
    pub dns_names: Option<Vec<String>>,
}

/// A stable 64-hex-digit digest of `parts` (four FNV-1a lanes), for ids netplumb does not
/// keep.
fn digest64(parts: &[&str]) -> String {
    let mut out = String::with_capacity(64);
    for lane in 0u64..4 {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ lane.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in parts.iter().flat_map(|p| p.bytes().chain([0])) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// The endpoint id of container `container` on network `network` (ids).
fn endpoint_id(network: &str, container: &str) -> String {
    digest64(&["endpoint", network, container])
}

fn first_of(addrs: &[IpNet], v4: bool) -> Option<IpNet> {
    addrs.iter().copied().find(|a| a.addr().is_ipv4() == v4)
}

fn gateway_of(net: &NetworkInfo, v4: bool) -> Option<IpAddr> {
    net.gateways.iter().copied().find(|g| g.is_ipv4() == v4)
}

fn text<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl NetworkInspect {
    /// The inspect output of `net` with its attachments `atts` (those of other networks
    /// are ignored).
    pub fn new(net: &NetworkInfo, atts: &[Attachment]) -> NetworkInspect {
        let config = net
            .subnets
            .iter()
            .map(|s| IpamConfig {
                subnet: s.to_string(),
                ip_range: net
                    .ip_range
                    .filter(|r| s.contains(r))
                    .map(|r| r.to_string()),
                gateway: net
                    .gateways
                    .iter()
                    .find(|g| s.contains(*g))
                    .map(ToString::to_string),
            })
            .collect();
        let containers = atts
            .iter()
            .filter(|a| a.network == net.name)
            .map(|a| {
                let ep = EndpointResource {
                    name: a.name.clone(),
                    endpoint_id: endpoint_id(&net.id, &a.container),
                    mac_address: text(a.mac),
                    ipv4_address: text(first_of(&a.addrs, true)),
                    ipv6_address: text(first_of(&a.addrs, false)),
                };
                (a.container.clone(), ep)
            })
            .collect();
        NetworkInspect {
            name: net.name.clone(),
            id: net.id.clone(),
            created: net.created.clone(),
            scope: "local".into(),
            driver: "bridge".into(),
            enable_ipv6: net.ipv6,
            ipam: Ipam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config,
            },
            internal: net.internal,
            attachable: false,
            ingress: false,
            config_from: ConfigFrom::default(),
            config_only: false,
            containers,
            options: options(net),
            labels: net.labels.clone(),
        }
    }

    /// Pretty JSON, indented as `docker network inspect` does (one object; Docker prints
    /// a list of them: use [`to_json_pretty`] on a slice).
    pub fn to_json_pretty(&self) -> String {
        to_json_pretty(self)
    }
}

/// The driver options of a network, with Docker's keys.
fn options(net: &NetworkInfo) -> BTreeMap<String, String> {
    let bridge = |k: &str| format!("com.docker.network.bridge.{k}");
    let host_binding = net
        .host_binding
        .map_or_else(|| "0.0.0.0".to_owned(), |h| h.to_string());
    let mut opts = BTreeMap::from([
        (
            bridge("default_bridge"),
            (net.name == DEFAULT_NETWORK).to_string(),
        ),
        (bridge("enable_icc"), net.icc.to_string()),
        (bridge("enable_ip_masquerade"), net.masquerade.to_string()),
        (bridge("host_binding_ipv4"), host_binding),
        (bridge("name"), net.bridge.clone()),
        (
            "com.docker.network.driver.mtu".to_owned(),
            net.mtu.unwrap_or(DEFAULT_MTU).to_string(),
        ),
    ]);
    // Which firewall backend holds the network's rules (netplumb's own key).
    if !net.firewall.is_empty() {
        opts.insert("netplumb.firewall".to_owned(), net.firewall.clone());
    }
    opts
}

impl ContainerNetworks {
    /// The network settings of one container from its attachments `atts` (every network
    /// it is on) and the networks `nets` (for ids and gateways; more are fine).
    pub fn new(atts: &[Attachment], nets: &[NetworkInfo]) -> ContainerNetworks {
        let mut out = ContainerNetworks {
            sandbox_key: atts
                .iter()
                .map(|a| a.netns.display().to_string())
                .find(|p| !p.is_empty())
                .unwrap_or_default(),
            ..ContainerNetworks::default()
        };
        for a in atts {
            for (proto, port) in &a.expose {
                out.ports.entry(format!("{port}/{proto}")).or_insert(None);
            }
            for p in &a.ports {
                let binding = PortBinding {
                    host_ip: p.host_ip.to_string(),
                    host_port: p.host_port.to_string(),
                };
                let list = out
                    .ports
                    .entry(format!("{}/{}", p.container_port, p.proto))
                    .or_insert(None);
                let list = list.get_or_insert_with(Vec::new);
                if !list.contains(&binding) {
                    list.push(binding);
                }
            }
            let net = nets.iter().find(|n| n.name == a.network);
            out.networks
                .insert(a.network.clone(), endpoint_settings(a, net));
        }
        out
    }

    /// Pretty JSON, indented as `docker inspect` does.
    pub fn to_json_pretty(&self) -> String {
        to_json_pretty(self)
    }
}

fn endpoint_settings(a: &Attachment, net: Option<&NetworkInfo>) -> EndpointSettings {
    let (v4, v6) = (first_of(&a.addrs, true), first_of(&a.addrs, false));
    let net_id = net.map(|n| n.id.clone()).unwrap_or_default();
    let some = |v: &Vec<String>| Some(v.clone()).filter(|v| !v.is_empty());
    let user_network = a.network != DEFAULT_NETWORK;
    let dns_names = user_network.then(|| {
        let mut names = vec![a.name.clone(), a.container.chars().take(12).collect()];
        names.extend(a.aliases.iter().cloned());
        names.dedup();
        names
    });
    EndpointSettings {
        links: some(&a.links),
        aliases: some(&a.aliases),
        mac_address: text(a.mac),
        endpoint_id: endpoint_id(&net_id, &a.container),
        network_id: net_id,
        gateway: text(net.and_then(|n| gateway_of(n, true))),
        ip_address: text(v4.map(|a| a.addr())),
        ip_prefix_len: v4.map_or(0, |a| a.prefix_len()),
        ipv6_gateway: text(v6.and(net.and_then(|n| gateway_of(n, false)))),
        global_ipv6_address: text(v6.map(|a| a.addr())),
        global_ipv6_prefix_len: v6.map_or(0, |a| a.prefix_len()),
        dns_names,
    }
}

/// Pretty JSON with four-space indentation, as the `docker` command prints it; on a slice,
/// the list `docker network inspect A B` prints.
pub fn to_json_pretty<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    // These types have string keys and no custom serializers: writing them cannot fail.
    value
        .serialize(&mut ser)
        .expect("inspect types serialize infallibly");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

impl Host {
    /// `docker network inspect NAME`; [`crate::Error::NotFound`] when there is no such
    /// network.
    pub fn inspect_network(&self, name: &str) -> Result<NetworkInspect> {
        let net = self.network(name)?;
        Ok(NetworkInspect::new(&net, &self.attachments(Some(name))?))
    }

    /// The `NetworkSettings` of `docker inspect C` for the container whose id or name is
    /// `container`: empty when it is on no network.
    pub fn inspect_container(&self, container: &str) -> Result<ContainerNetworks> {
        let atts: Vec<Attachment> = self
            .attachments(None)?
            .into_iter()
            .filter(|a| a.container == container || a.name == container)
            .collect();
        Ok(ContainerNetworks::new(&atts, &self.networks()?))
    }
}

#[cfg(test)]
mod tests;
