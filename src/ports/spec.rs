//! [`PortMapping`] and its parser for every Docker `-p` form, plus `-P` ([`publish_all`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::range::{HostPorts, PortRange, PortSpecError, Proto};

/// One `-p` option: container ports to publish on the host, and on which host address
/// and ports.
///
/// `Display` prints the canonical `-p` spec (`127.0.0.1:8080:80/tcp`, `[::1]::80/udp`,
/// `80/tcp`), which parses back to the same mapping. The host side is resolved to concrete
/// ports by [`PortAllocator::publish`](super::PortAllocator::publish).
///
/// ```
/// use netplumb::ports::{HostPorts, PortMapping, PortRange, Proto};
/// let m = PortMapping::parse("127.0.0.1:8080:80/udp")?;
/// assert_eq!(m.proto, Proto::Udp);
/// assert_eq!(m.host_ip, Some("127.0.0.1".parse().unwrap()));
/// assert_eq!(m.host_ports, HostPorts::Range(PortRange::single(8080)?));
/// assert_eq!(m.container_ports, PortRange::single(80)?);
/// assert_eq!(m.to_string(), "127.0.0.1:8080:80/udp");
///
/// let built = PortMapping::new(PortRange::single(80)?).proto(Proto::Udp)
///     .host_ip("127.0.0.1".parse().unwrap()).host_ports(HostPorts::Range(PortRange::single(8080)?));
/// assert_eq!(built, m);
/// # Ok::<(), netplumb::ports::PortSpecError>(())
/// ```
///
/// With feature `serde`: an object with the fields below, `proto` as `"tcp"`, `host_ip`
/// as an address or `null`, `host_ports` as in [`HostPorts`], `container_ports` as in
/// [`PortRange`]: `{"proto":"tcp","host_ip":"127.0.0.1","host_ports":"8080",
/// "container_ports":"80"}`. Missing `proto`, `host_ip` and `host_ports` take the
/// defaults of [`PortMapping::new`]; deserializing checks the mapping as
/// [`PortMapping::validate`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PortMapping {
    /// The protocol (`/tcp` when the spec names none).
    pub proto: Proto,
    /// The host address; `None` is the default host binding (`0.0.0.0`, all IPv4
    /// addresses, unless [`PortAllocator::default_host_ip`](super::PortAllocator::default_host_ip)
    /// says otherwise).
    pub host_ip: Option<IpAddr>,
    /// The host ports.
    pub host_ports: HostPorts,
    /// The container ports.
    pub container_ports: PortRange,
}

impl PortMapping {
    /// `container_ports` over TCP on any free host port of the default host address (`-p 80`).
    pub fn new(container_ports: PortRange) -> PortMapping {
        PortMapping {
            proto: Proto::Tcp,
            host_ip: None,
            host_ports: HostPorts::Any,
            container_ports,
        }
    }

    /// Sets the protocol (`-p 80/udp`).
    #[must_use]
    pub fn proto(mut self, proto: Proto) -> Self {
        self.proto = proto;
        self
    }

    /// Publishes on one host address only (`-p 127.0.0.1::80`).
    #[must_use]
    pub fn host_ip(mut self, ip: IpAddr) -> Self {
        self.host_ip = Some(ip);
        self
    }

    /// Sets the host ports (`-p 8080:80`); see [`HostPorts`].
    #[must_use]
    pub fn host_ports(mut self, ports: HostPorts) -> Self {
        self.host_ports = ports;
        self
    }

    /// Checks what the fields cannot express by type: a host range must match a container
    /// range in length, unless the container side is one port.
    pub fn validate(&self) -> Result<(), PortSpecError> {
        match self.host_ports {
            HostPorts::Range(host)
                if !self.container_ports.is_single()
                    && host.count() != self.container_ports.count() =>
            {
                Err(PortSpecError::RangeLengthMismatch {
                    spec: self.to_string(),
                    host,
                    container: self.container_ports,
                })
            }
            _ => Ok(()),
        }
    }

    /// Parses one Docker `-p` spec: `[[HOST_IP:][HOST_PORTS]:]CONTAINER_PORTS[/PROTO]`.
    ///
    /// | spec | meaning |
    /// |---|---|
    /// | `80`, `80/udp`, `80-90` | any free host port(s) on the default host address |
    /// | `8080:80`, `8000-8010:80-90` | these host ports on the default host address |
    /// | `8000-8010:80` | any one free host port from 8000-8010 |
    /// | `127.0.0.1:8080:80`, `127.0.0.1::80` | one host address, a given or any free port |
    /// | `[::1]:8080:80`, `[::1]::80` | an IPv6 host address, always in brackets |
    ///
    /// The protocol is `tcp`, `udp` or `sctp` in any case; none means `tcp`. An empty host
    /// address (`:8080:80`) or host port (`::80`) means the default, as in Docker.
    ///
    /// `1.2.3.4:80` is refused, as Docker refuses it (its two fields are
    /// `HOST_PORT:CONTAINER_PORT`), with [`PortSpecError::MissingHostPort`] rather than a
    /// bad port: `1.2.3.4::80` (any host port) or `1.2.3.4:80:80` was meant.
    ///
    /// Stricter than Docker, which reads the last two `:`-fields as ports and so also takes
    /// `::1:8080:80`: an IPv6 address must be in brackets, as Docker documents it, because
    /// without them address and ports run together: `2001:db8::1:2:80`, meant as
    /// `[2001:db8::1:2]::80` with one `:` forgotten, would publish host port 2 on
    /// `2001:db8::1`. Brackets around an IPv4 address, a trailing `/`, port 0, `+80` and
    /// spaces are refused too.
    ///
    /// ```
    /// use netplumb::ports::{HostPorts, PortMapping, PortSpecError};
    /// let m = PortMapping::parse("[::1]::80")?;
    /// assert_eq!((m.host_ip, m.host_ports), (Some("::1".parse().unwrap()), HostPorts::Any));
    /// assert!(matches!(PortMapping::parse("::1:8080:80"),
    ///     Err(PortSpecError::Ipv6WithoutBrackets { part, .. }) if part == "::1"));
    /// assert!(matches!(PortMapping::parse("1.2.3.4:80"), Err(PortSpecError::MissingHostPort { .. })));
    /// # Ok::<(), PortSpecError>(())
    /// ```
    pub fn parse(spec: &str) -> Result<PortMapping, PortSpecError> {
        if spec.is_empty() {
            return Err(PortSpecError::Empty);
        }
        let (body, proto) = match spec.split_once('/') {
            Some((body, p)) => (body, Proto::parse_in(spec, p)?),
            None => (spec, Proto::Tcp),
        };
        let (ip, host, container) = split_spec(spec, body)?;
        if let (None, Some(h)) = (ip, host) {
            // `1.2.3.4:80`: an address where the host port goes (Docker: "Invalid
            // hostPort"); it needs both ports after it.
            if h.parse::<IpAddr>().is_ok() {
                return Err(PortSpecError::MissingHostPort {
                    spec: spec.to_owned(),
                });
            }
        }
        let host_ip = ip.map(|ip| parse_host_ip(spec, ip)).transpose()?.flatten();
        let host_ports = match host {
            None | Some("") => HostPorts::Any,
            Some(h) => HostPorts::Range(PortRange::parse_in(spec, h)?),
        };
        if container.is_empty() {
            return Err(PortSpecError::MissingContainerPort {
                spec: spec.to_owned(),
            });
        }
        let container_ports = PortRange::parse_in(spec, container)?;
        let m = PortMapping {
            proto,
            host_ip,
            host_ports,
            container_ports,
        };
        m.validate().map_err(|e| match e {
            PortSpecError::RangeLengthMismatch {
                host, container, ..
            } => PortSpecError::RangeLengthMismatch {
                spec: spec.to_owned(),
                host,
                container,
            },
            e => e,
        })?;
        Ok(m)
    }
}

/// Splits `body` (the spec without `/PROTO`) into address, host ports and container ports.
fn split_spec<'a>(
    spec: &str,
    body: &'a str,
) -> Result<(Option<&'a str>, Option<&'a str>, &'a str), PortSpecError> {
    if let Some(close) = body.strip_prefix('[').and_then(|_| body.find(']')) {
        let (ip, rest) = body.split_at(close + 1);
        let Some(rest) = rest.strip_prefix(':') else {
            let junk = rest.find(':').unwrap_or(rest.len());
            let part = &body[..close + 1 + junk];
            return Err(PortSpecError::InvalidHostIp {
                spec: spec.to_owned(),
                part: part.to_owned(),
            });
        };
        let (host, container) =
            rest.split_once(':')
                .ok_or_else(|| PortSpecError::MissingHostPort {
                    spec: spec.to_owned(),
                })?;
        return Ok((Some(ip), Some(host), container));
    }
    // Right to left: the container ports, then the host ports, then the rest is the address.
    let mut it = body.rsplitn(3, ':');
    let container = it.next().unwrap_or_default();
    let host = it.next();
    Ok((it.next(), host, container))
}

/// Parses the address part: `None` for an empty one (the default), brackets for IPv6 only.
fn parse_host_ip(spec: &str, part: &str) -> Result<Option<IpAddr>, PortSpecError> {
    if part.is_empty() {
        return Ok(None);
    }
    let (spec, owned) = (spec.to_owned(), part.to_owned());
    if let Some(inner) = part.strip_prefix('[').and_then(|p| p.strip_suffix(']')) {
        return match (inner.parse::<Ipv6Addr>(), inner.parse::<Ipv4Addr>()) {
            (Ok(a), _) => Ok(Some(IpAddr::V6(a))),
            (_, Ok(_)) => Err(PortSpecError::BracketedIpv4 { spec, part: owned }),
            _ => Err(PortSpecError::InvalidHostIp { spec, part: owned }),
        };
    }
    match (part.parse::<Ipv4Addr>(), part.parse::<Ipv6Addr>()) {
        (Ok(a), _) => Ok(Some(IpAddr::V4(a))),
        (_, Ok(_)) => Err(PortSpecError::Ipv6WithoutBrackets { spec, part: owned }),
        _ => Err(PortSpecError::InvalidHostIp { spec, part: owned }),
    }
}

impl fmt::Display for PortMapping {
    /// The canonical `-p` spec, which parses back to this mapping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V4(a)) => write!(f, "{a}:")?,
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:")?,
            None => {}
        }
        match (self.host_ports, self.host_ip) {
            (HostPorts::Range(r), _) => write!(f, "{r}:")?,
            (HostPorts::Any, Some(_)) => f.write_str(":")?,
            (HostPorts::Any, None) => {}
        }
        write!(f, "{}/{}", self.container_ports, self.proto)
    }
}

impl FromStr for PortMapping {
    type Err = PortSpecError;

    fn from_str(s: &str) -> Result<PortMapping, PortSpecError> {
        PortMapping::parse(s)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for PortMapping {
    /// The fields, then [`PortMapping::validate`]: a mapping is never made unchecked.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Fields {
            #[serde(default)]
            proto: Proto,
            #[serde(default)]
            host_ip: Option<IpAddr>,
            #[serde(default)]
            host_ports: HostPorts,
            container_ports: PortRange,
        }
        let f = <Fields as serde::Deserialize>::deserialize(d)?;
        let m = PortMapping {
            proto: f.proto,
            host_ip: f.host_ip,
            host_ports: f.host_ports,
            container_ports: f.container_ports,
        };
        m.validate().map_err(serde::de::Error::custom)?;
        Ok(m)
    }
}

/// `-P`: every exposed port (`80`, `80/tcp`, `53/udp`, `8000-8010/tcp`) to any free host
/// port on the default host address, in the order given, without duplicates.
///
/// ```
/// use netplumb::ports::publish_all;
/// let ms = publish_all(["80/tcp", "53/udp", "80"])?;
/// let specs: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
/// assert_eq!(specs, ["80/tcp", "53/udp"]);
/// assert!(publish_all(["8080:80"]).is_err()); // an exposed port has no host part
/// # Ok::<(), netplumb::ports::PortSpecError>(())
/// ```
#[doc(alias = "-P")]
#[doc(alias = "publish-all")]
pub fn publish_all<S: AsRef<str>>(
    exposed: impl IntoIterator<Item = S>,
) -> Result<Vec<PortMapping>, PortSpecError> {
    let mut out: Vec<PortMapping> = Vec::new();
    for spec in exposed {
        let spec = spec.as_ref();
        if spec.is_empty() {
            return Err(PortSpecError::Empty);
        }
        let (body, proto) = match spec.split_once('/') {
            Some((body, p)) => (body, Proto::parse_in(spec, p)?),
            None => (spec, Proto::Tcp),
        };
        if body.is_empty() {
            return Err(PortSpecError::MissingContainerPort {
                spec: spec.to_owned(),
            });
        }
        let m = PortMapping::new(PortRange::parse_in(spec, body)?).proto(proto);
        if !out.contains(&m) {
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
