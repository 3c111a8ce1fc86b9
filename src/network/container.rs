//! [`Container`]: what a connect needs to know of a container.

use std::net::IpAddr;
use std::path::PathBuf;

use super::files::{AddHost, DnsConfig};
use crate::error::{Error, Result};
use crate::firewall::Proto;
use crate::link::{IfName, MacAddr};
use crate::netns::Netns;
use crate::ports::PortMapping;
use ipnet::IpNet;

/// A static route of a container: destination, gateway, own metric.
pub(crate) type StaticRoute = (IpNet, IpAddr, Option<u32>);

/// A container to connect (`docker run --network NET ...`, `docker network connect`).
///
/// ```no_run
/// use netplumb::network::Container;
/// let ns = netplumb::NetnsDir::default().open("web")?;
/// let c = Container::new("3f2a1c0d9e8b", &ns)
///     .name("web")
///     .ip("172.26.0.10".parse().unwrap())
///     .publish("8080:80".parse().unwrap());
/// # Ok::<(), netplumb::Error>(())
/// ```
///
/// With feature `serde`: not serializable itself, since it holds an open namespace handle
/// (a file descriptor), which is not data and is new at each start of the container. Its
/// data form is [`ContainerSpec`](super::ContainerSpec) ([`Container::spec`]), which serializes;
/// [`Container::from_spec`] makes the container again in a given namespace.
#[derive(Debug, Clone)]
#[must_use]
pub struct Container {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) netns: Netns,
    pub(crate) ifname: String,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) ip6: Option<IpAddr>,
    pub(crate) mac: Option<MacAddr>,
    pub(crate) ports: Vec<PortMapping>,
    pub(crate) expose: Vec<(Proto, u16)>,
    pub(crate) links: Vec<String>,
    pub(crate) aliases: Vec<String>,
    pub(crate) files: Option<PathBuf>,
    pub(crate) hostname: Option<String>,
    pub(crate) add_hosts: Vec<AddHost>,
    pub(crate) dns: DnsConfig,
    pub(crate) route_metric: Option<u32>,
    pub(crate) default_route: bool,
    pub(crate) routes: Vec<StaticRoute>,
}

impl Container {
    /// Container `id` whose network namespace is `netns`.
    pub fn new(id: &str, netns: &Netns) -> Self {
        Container {
            id: id.to_owned(),
            name: id.chars().take(12).collect(),
            netns: netns.clone(),
            ifname: "eth0".to_owned(),
            ip: None,
            ip6: None,
            mac: None,
            ports: Vec::new(),
            expose: Vec::new(),
            links: Vec::new(),
            aliases: Vec::new(),
            files: None,
            hostname: None,
            add_hosts: Vec::new(),
            dns: DnsConfig::new(),
            route_metric: None,
            default_route: true,
            routes: Vec::new(),
        }
    }

    /// The container's name (`--name`; default: the first 12 characters of the id).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The interface name inside the container (default `eth0`).
    pub fn ifname(mut self, name: &str) -> Self {
        self.ifname = name.to_owned();
        self
    }

    /// A specific IPv4 address (`--ip`).
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// A specific IPv6 address (`--ip6`).
    pub fn ip6(mut self, ip: IpAddr) -> Self {
        self.ip6 = Some(ip);
        self
    }

    /// A specific MAC address (`--mac-address`; default `02:42:` and the IPv4 address).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// A published port (`-p`).
    pub fn publish(mut self, mapping: PortMapping) -> Self {
        self.ports.push(mapping);
        self
    }

    /// An exposed port (`--expose`, what `-P` publishes and `--link` opens).
    pub fn expose(mut self, proto: Proto, port: u16) -> Self {
        self.expose.push((proto, port));
        self
    }

    /// Publishes every exposed port to a free host port (`-P`).
    pub fn publish_all(mut self) -> Self {
        for (proto, port) in self.expose.clone() {
            if let Ok(m) = format!("{port}/{proto}").parse::<PortMapping>() {
                self.ports.push(m);
            }
        }
        self
    }

    /// A `--link` to another container of the network, by name or alias.
    pub fn link(mut self, other: &str) -> Self {
        self.links.push(other.to_owned());
        self
    }

    /// A `--link OTHER:ALIAS`: as [`Container::link`], and `ALIAS` names the other
    /// container in this one's `/etc/hosts`.
    pub fn link_as(mut self, other: &str, alias: &str) -> Self {
        self.links.push(format!("{other}:{alias}"));
        self
    }

    /// Another name of the container on the network (`--network-alias`).
    pub fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.to_owned());
        self
    }

    /// The folder the container's `hosts`, `hostname` and `resolv.conf` are written to.
    pub fn files(mut self, dir: impl Into<PathBuf>) -> Self {
        self.files = Some(dir.into());
        self
    }

    /// The metric of the container's default routes (`ip route add default ... metric
    /// N`); the kernel's default (0 for IPv4, 1024 for IPv6) when not set. Without a
    /// metric only the container's first network gives it default routes (as Docker);
    /// with one, every network it joins adds its own beside the others' (`ip route
    /// append`, as netavark), so the container keeps a way out when one network goes. A
    /// container on several networks prefers the route of the lowest metric.
    ///
    /// ```
    /// # let ns = netplumb::Netns::current().unwrap();
    /// let c = netplumb::network::Container::new("3f2a1c0d9e8b", &ns).route_metric(100);
    /// # let _ = c;
    /// ```
    pub fn route_metric(mut self, metric: u32) -> Self {
        self.route_metric = Some(metric);
        self
    }

    /// Whether the container gets its default routes through this network's gateways
    /// (default: yes, for the first network it joins, or for every network with a
    /// [`Container::route_metric`]). `false` is netavark's
    /// `no_default_route` option: the container reaches the network's subnets only, and
    /// whatever [`Container::route`] adds.
    ///
    /// ```
    /// # let ns = netplumb::Netns::current().unwrap();
    /// let c = netplumb::network::Container::new("3f2a1c0d9e8b", &ns).default_route(false);
    /// # let _ = c;
    /// ```
    pub fn default_route(mut self, yes: bool) -> Self {
        self.default_route = yes;
        self
    }

    /// A static route in the container through this network: to `dst` via `gateway`
    /// (`ip route add DST via GATEWAY dev eth0`, with [`Container::route_metric`]). The
    /// gateway must be of `dst`'s family (refused before any change otherwise) and
    /// reachable on the network: the kernel refuses one it cannot reach, naming the
    /// route, and the connect is undone.
    ///
    /// ```
    /// # let ns = netplumb::Netns::current().unwrap();
    /// let c = netplumb::network::Container::new("3f2a1c0d9e8b", &ns)
    ///     .route("10.99.0.0/16".parse().unwrap(), "172.18.0.254".parse().unwrap());
    /// # let _ = c;
    /// ```
    pub fn route(mut self, dst: IpNet, gateway: IpAddr) -> Self {
        self.routes.push((dst.trunc(), gateway, None));
        self
    }

    /// [`Container::route`] with its own metric instead of [`Container::route_metric`].
    ///
    /// ```
    /// # let ns = netplumb::Netns::current().unwrap();
    /// let c = netplumb::network::Container::new("3f2a1c0d9e8b", &ns).route_with_metric(
    ///     "10.99.0.0/16".parse().unwrap(),
    ///     "172.18.0.254".parse().unwrap(),
    ///     300,
    /// );
    /// # let _ = c;
    /// ```
    pub fn route_with_metric(mut self, dst: IpNet, gateway: IpAddr, metric: u32) -> Self {
        self.routes.push((dst.trunc(), gateway, Some(metric)));
        self
    }

    /// The hostname (`--hostname`; default: the first 12 characters of the id).
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = Some(name.to_owned());
        self
    }

    /// An extra `/etc/hosts` entry (`--add-host name:ip`; `host-gateway` is the network's
    /// gateway).
    pub fn add_host(mut self, entry: AddHost) -> Self {
        self.add_hosts.push(entry);
        self
    }

    /// DNS settings for `/etc/resolv.conf` (`--dns`, `--dns-search`, `--dns-option`);
    /// by default the host's, without loopback nameservers.
    pub fn dns(mut self, dns: DnsConfig) -> Self {
        self.dns = dns;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.id.is_empty()
            || !self
                .id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
        {
            return Err(Error::invalid(
                "container id",
                &self.id,
                "must be [A-Za-z0-9_.-]+",
            ));
        }
        let name_ok = self.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && self
                .name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
        if !name_ok {
            // Names end up in peers' hosts files and in paths.
            return Err(Error::invalid(
                "container name",
                &self.name,
                "must be [a-zA-Z0-9][a-zA-Z0-9_.-]*",
            ));
        }
        IfName::unchecked(&self.ifname).check_as("container interface")?;
        for p in &self.ports {
            p.validate()?;
        }
        for (dst, gw, _) in &self.routes {
            if dst.addr().is_ipv4() != gw.is_ipv4() {
                return Err(Error::invalid(
                    "route gateway",
                    format!("{dst} via {gw}"),
                    "must be of the destination's address family",
                ));
            }
        }
        Ok(())
    }
}
