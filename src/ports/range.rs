//! [`Proto`], [`PortRange`] and [`HostPorts`]: the parts of a port mapping, and
//! [`PortSpecError`], which names the part that is wrong (it lives here, not beside the
//! `-p` parser, because a [`PortRange`] is built and parsed with it, and it names one).

use std::fmt;
use std::str::FromStr;

pub use crate::firewall::Proto;

/// A malformed `-p` or exposed-port spec; every variant names the bad part.
///
/// ```
/// use netplumb::ports::{PortMapping, PortSpecError};
/// let e = PortMapping::parse("127.0.0.1:8080:80/tpc").unwrap_err();
/// assert!(matches!(e, PortSpecError::UnknownProtocol { ref part, .. } if part == "tpc"));
/// assert_eq!(e.to_string(), r#"unknown protocol "tpc" in port spec "127.0.0.1:8080:80/tpc" (expected tcp, udp or sctp)"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortSpecError {
    /// The spec is empty.
    #[error("empty port spec")]
    Empty,
    /// Nothing where the container port should be (`127.0.0.1:8080:`, `/tcp`).
    #[error("no container port in port spec {spec:?}")]
    MissingContainerPort {
        /// The whole spec.
        spec: String,
    },
    /// A host address without both ports after it (`[::1]:80`, `1.2.3.4:80`).
    #[error("host address in port spec {spec:?} must be followed by HOST_PORT:CONTAINER_PORT (HOST_PORT may be empty)")]
    MissingHostPort {
        /// The whole spec.
        spec: String,
    },
    /// The host address is not an IP address.
    #[error("invalid host IP address {part:?} in port spec {spec:?}")]
    InvalidHostIp {
        /// The whole spec.
        spec: String,
        /// The address part.
        part: String,
    },
    /// An IPv6 host address without brackets (`::1:8080:80`; write `[::1]:8080:80`).
    #[error("IPv6 host address {part:?} in port spec {spec:?} must be in brackets: [{part}]")]
    Ipv6WithoutBrackets {
        /// The whole spec.
        spec: String,
        /// The address part.
        part: String,
    },
    /// An IPv4 host address in brackets, which are for IPv6 only (`[127.0.0.1]:80:80`).
    #[error("IPv4 host address {part:?} in port spec {spec:?} must not be in brackets")]
    BracketedIpv4 {
        /// The whole spec.
        spec: String,
        /// The bracketed address.
        part: String,
    },
    /// A port is not a number from 1 to 65535 (`http`, `70000`, `8000-`).
    #[error("invalid port {part:?} in port spec {spec:?} (expected 1-65535 or a range START-END)")]
    InvalidPort {
        /// The whole spec.
        spec: String,
        /// The port or range part.
        part: String,
    },
    /// A port is 0.
    #[error("port 0 in {part:?} of port spec {spec:?} (ports start at 1)")]
    PortZero {
        /// The whole spec.
        spec: String,
        /// The port or range part.
        part: String,
    },
    /// A range ends before it starts (`8010-8000`).
    #[error("reversed port range {part:?} in port spec {spec:?}")]
    ReversedRange {
        /// The whole spec.
        spec: String,
        /// The range part.
        part: String,
    },
    /// Host and container ranges of different lengths, with a container range.
    #[error(
        "host ports {host} and container ports {container} in port spec {spec:?} differ in length"
    )]
    RangeLengthMismatch {
        /// The whole spec.
        spec: String,
        /// The host range.
        host: PortRange,
        /// The container range.
        container: PortRange,
    },
    /// The protocol is not `tcp`, `udp` or `sctp`.
    #[error("unknown protocol {part:?} in port spec {spec:?} (expected tcp, udp or sctp)")]
    UnknownProtocol {
        /// The whole spec.
        spec: String,
        /// The protocol part.
        part: String,
    },
}

impl Proto {
    /// Parses `part` of `spec`; any case, as Docker (`TCP` is `tcp`).
    pub(crate) fn parse_in(spec: &str, part: &str) -> Result<Proto, PortSpecError> {
        match part.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(PortSpecError::UnknownProtocol {
                spec: spec.to_owned(),
                part: part.to_owned(),
            }),
        }
    }
}

impl FromStr for Proto {
    type Err = PortSpecError;

    fn from_str(s: &str) -> Result<Proto, PortSpecError> {
        Proto::parse_in(s, s)
    }
}

/// An inclusive, non-empty range of ports from 1 to 65535 (`80`, `8000-8010`).
///
/// ```
/// use netplumb::ports::PortRange;
/// let r: PortRange = "8000-8010".parse()?;
/// assert_eq!((r.start(), r.end(), r.count()), (8000, 8010, 11));
/// assert_eq!(PortRange::single(80)?.to_string(), "80");
/// assert!(PortRange::new(8010, 8000).is_err());
/// # Ok::<(), netplumb::ports::PortSpecError>(())
/// ```
///
/// With feature `serde`: its text form, `"80"` or `"8000-8010"` (a string, also for one
/// port); deserializing parses it as [`str::parse`] does, so `"0"`, `"90-80"` or
/// `"http"` is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    start: u16,
    end: u16,
}

impl PortRange {
    /// The ports `start..=end`; refuses port 0 and `end < start`.
    pub fn new(start: u16, end: u16) -> Result<PortRange, PortSpecError> {
        let part = || format!("{start}-{end}");
        if start == 0 {
            return Err(PortSpecError::PortZero {
                spec: part(),
                part: part(),
            });
        }
        if end < start {
            return Err(PortSpecError::ReversedRange {
                spec: part(),
                part: part(),
            });
        }
        Ok(PortRange { start, end })
    }

    /// The one port `port`; refuses 0.
    pub fn single(port: u16) -> Result<PortRange, PortSpecError> {
        PortRange::new(port, port)
    }

    /// The first port.
    pub fn start(self) -> u16 {
        self.start
    }

    /// The last port (inclusive).
    pub fn end(self) -> u16 {
        self.end
    }

    /// How many ports the range holds (at least 1).
    pub fn count(self) -> u16 {
        self.end - self.start + 1
    }

    /// Whether the range holds exactly one port.
    pub fn is_single(self) -> bool {
        self.start == self.end
    }

    /// Whether `port` is in the range.
    pub fn contains(self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    /// The ports in ascending order.
    pub fn iter(self) -> std::ops::RangeInclusive<u16> {
        self.start..=self.end
    }

    /// Parses `part` (`80` or `8000-8010`) of `spec`.
    pub(crate) fn parse_in(spec: &str, part: &str) -> Result<PortRange, PortSpecError> {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (start, end) = (parse_port(spec, part, a)?, parse_port(spec, part, b)?);
        if start == 0 || end == 0 {
            return Err(PortSpecError::PortZero {
                spec: spec.to_owned(),
                part: part.to_owned(),
            });
        }
        if end < start {
            return Err(PortSpecError::ReversedRange {
                spec: spec.to_owned(),
                part: part.to_owned(),
            });
        }
        Ok(PortRange { start, end })
    }
}

/// One decimal port number (digits only: no sign, no spaces); 0 is left to the caller.
fn parse_port(spec: &str, part: &str, digits: &str) -> Result<u16, PortSpecError> {
    let bad = || PortSpecError::InvalidPort {
        spec: spec.to_owned(),
        part: part.to_owned(),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for PortRange {
    type Err = PortSpecError;

    fn from_str(s: &str) -> Result<PortRange, PortSpecError> {
        PortRange::parse_in(s, s)
    }
}

/// Which host ports a mapping asks for.
///
/// With feature `serde`: `null` for [`HostPorts::Any`], the range's text form
/// (`"8080"`, `"8000-8010"`) for [`HostPorts::Range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HostPorts {
    /// Any free port from the dynamic range (`-p 80`, `-p 127.0.0.1::80`, `-P`).
    #[default]
    Any,
    /// These ports. With a container range of the same length, port `i` maps to container
    /// port `i` (`8000-8010:80-90`; a single `8080:80` is the one-port case). With a single
    /// container port and a longer host range, any one free port of the range
    /// (`8000-8010:80`).
    Range(PortRange),
}

#[cfg(feature = "serde")]
impl serde::Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for HostPorts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HostPorts::Any => s.serialize_none(),
            HostPorts::Range(r) => s.serialize_some(r),
        }
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for HostPorts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let range = <Option<PortRange> as serde::Deserialize>::deserialize(d)?;
        Ok(range.map_or(HostPorts::Any, HostPorts::Range))
    }
}
