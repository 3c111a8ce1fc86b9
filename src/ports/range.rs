//! [`Proto`], [`PortRange`] and [`HostPorts`]: the parts of a port mapping.

use std::fmt;
use std::str::FromStr;

use super::spec::PortSpecError;

pub use crate::firewall::Proto;

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
