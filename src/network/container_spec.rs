//! [`ContainerSpec`]: a [`Container`] as plain data, without its namespace, for a runtime
//! to store, return or compare.

use std::net::IpAddr;
use std::path::PathBuf;

use super::container::Container;
use super::files::{AddHost, DnsConfig};
use crate::firewall::Proto;
use crate::link::MacAddr;
use crate::netns::Netns;
use crate::ports::PortMapping;
use ipnet::IpNet;

/// What a [`Container`] asks of a connect, without the namespace it is connected in: the
/// part a runtime keeps in its container configuration.
///
/// A [`Container`] holds an open namespace handle, which is not data: it lives as long as
/// the process holds it, and a container gets a new namespace each time it starts. Nor is
/// the namespace's path a stand-in: an unnamed namespace ([`Netns::new`]) is known by a
/// `/proc/thread-self/...` path that, opened again, names the reader's own namespace. So
/// the data form leaves the namespace out, and [`Container::from_spec`] puts one back:
///
/// ```no_run
/// use netplumb::network::{Container, ContainerSpec};
/// let ns = netplumb::NetnsDir::default().open("web")?;
/// let spec = Container::new("3f2a1c0d9e8b", &ns).name("web").publish("8080:80".parse().unwrap()).spec();
/// // ... stored; at the next start of the container, in its new namespace:
/// let ns = netplumb::NetnsDir::default().open("web")?;
/// let ctr = Container::from_spec(spec, &ns);
/// # Ok::<(), netplumb::Error>(())
/// ```
///
/// The path of the namespace a container is connected in is recorded in its
/// [`Attachment`](super::Attachment)s.
///
/// With feature `serde`: an object with the fields below; addresses, MAC, port ranges and
/// protocols as text (`"02:42:ac:1a:00:0a"`, `"8080"`, `"tcp"`), `expose` as
/// `[["tcp", 80]]`, `add_hosts` as `"db:172.18.0.3"`. Only `id` and `name` are required:
/// `ifname` defaults to `eth0`, everything else to none. Like the builder methods,
/// deserializing checks each value's own form (ports, MAC, `--add-host`), and a connect
/// checks the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ContainerSpec {
    /// The container's id.
    pub id: String,
    /// The container's name (`--name`).
    pub name: String,
    /// The interface name inside the container.
    #[cfg_attr(feature = "serde", serde(default = "eth0"))]
    pub ifname: String,
    /// A specific IPv4 address (`--ip`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub ip: Option<IpAddr>,
    /// A specific IPv6 address (`--ip6`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub ip6: Option<IpAddr>,
    /// A specific MAC address (`--mac-address`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub mac: Option<MacAddr>,
    /// The published ports (`-p`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub ports: Vec<PortMapping>,
    /// The exposed ports (`--expose`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub expose: Vec<(Proto, u16)>,
    /// The `--link`s, `OTHER` or `OTHER:ALIAS`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub links: Vec<String>,
    /// Other names of the container on the network (`--network-alias`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub aliases: Vec<String>,
    /// The folder of the container's `hosts`, `hostname` and `resolv.conf`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub files: Option<PathBuf>,
    /// The hostname (`--hostname`); `None` is the first 12 characters of the id.
    #[cfg_attr(feature = "serde", serde(default))]
    pub hostname: Option<String>,
    /// Extra `/etc/hosts` entries (`--add-host`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub add_hosts: Vec<AddHost>,
    /// DNS settings (`--dns`, `--dns-search`, `--dns-option`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub dns: DnsConfig,
    /// The metric of the default routes ([`Container::route_metric`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub route_metric: Option<u32>,
    /// Whether the default routes go through this network ([`Container::default_route`]).
    #[cfg_attr(feature = "serde", serde(default = "yes"))]
    pub default_route: bool,
    /// Static routes: destination, gateway and metric ([`Container::route`],
    /// [`Container::route_with_metric`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub routes: Vec<(IpNet, IpAddr, Option<u32>)>,
}

/// The default of a deserialized spec's `default_route`, as in [`Container::new`].
#[cfg(feature = "serde")]
fn yes() -> bool {
    true
}

/// The default `ifname` of a deserialized spec, as in [`Container::new`].
#[cfg(feature = "serde")]
fn eth0() -> String {
    "eth0".to_owned()
}

impl Container {
    /// The container as data, without its namespace: see [`ContainerSpec`].
    pub fn spec(&self) -> ContainerSpec {
        ContainerSpec {
            id: self.id.clone(),
            name: self.name.clone(),
            ifname: self.ifname.clone(),
            ip: self.ip,
            ip6: self.ip6,
            mac: self.mac,
            ports: self.ports.clone(),
            expose: self.expose.clone(),
            links: self.links.clone(),
            aliases: self.aliases.clone(),
            files: self.files.clone(),
            hostname: self.hostname.clone(),
            add_hosts: self.add_hosts.clone(),
            dns: self.dns.clone(),
            route_metric: self.route_metric,
            default_route: self.default_route,
            routes: self.routes.clone(),
        }
    }

    /// The container `spec` describes, in the namespace `netns`; `Container::from_spec(c.spec(), ns)`
    /// is `c` in `ns`.
    pub fn from_spec(spec: ContainerSpec, netns: &Netns) -> Container {
        let ContainerSpec {
            id,
            name,
            ifname,
            ip,
            ip6,
            mac,
            ports,
            expose,
            links,
            aliases,
            files,
            hostname,
            add_hosts,
            dns,
            route_metric,
            default_route,
            routes,
        } = spec;
        Container {
            id,
            name,
            netns: netns.clone(),
            ifname,
            ip,
            ip6,
            mac,
            ports,
            expose,
            links,
            aliases,
            files,
            hostname,
            add_hosts,
            dns,
            route_metric,
            default_route,
            routes,
        }
    }
}
