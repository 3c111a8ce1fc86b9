//! [`EtcdConfig`]: where etcd is, how long to wait for it, and which namespace to dial from.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::netns::Netns;

/// The client port etcd listens on unless told otherwise.
const DEFAULT_PORT: u16 = 2379;

/// One etcd server: a host name or address, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Endpoint {
    /// A host name, an IPv4 address or an IPv6 address (without brackets).
    pub(super) host: String,
    pub(super) port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How to reach etcd: one or more endpoints, a timeout, and optionally the network
/// namespace connections are made in.
///
/// ```
/// use std::time::Duration;
/// use netplumb::etcd::EtcdConfig;
/// let cfg = EtcdConfig::new("http://10.0.0.5:2379,10.0.0.6:2379")?
///     .timeout(Duration::from_secs(2));
/// assert_eq!(cfg.endpoints(), ["10.0.0.5:2379", "10.0.0.6:2379"]);
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct EtcdConfig {
    pub(super) endpoints: Vec<Endpoint>,
    pub(super) timeout: Duration,
    pub(super) netns: Option<Netns>,
}

impl EtcdConfig {
    /// Parses a comma-separated list of endpoints, each `http://HOST:PORT`,
    /// `etcd://HOST:PORT` or `HOST:PORT` (the port defaults to 2379; IPv6 addresses go in
    /// brackets, `[fd00::5]:2379`). Endpoints are tried in this order.
    ///
    /// A malformed list fails with [`Error::InvalidInput`] naming the bad part: the
    /// scheme (`https` is refused: this client speaks plain HTTP), the host, the port or
    /// a path.
    ///
    /// ```
    /// use netplumb::etcd::EtcdConfig;
    /// let err = EtcdConfig::new("127.0.0.1:99999").unwrap_err();
    /// assert!(err.is_invalid());
    /// assert!(err.to_string().contains("99999"), "{err}");
    /// ```
    pub fn new(urls: &str) -> Result<Self> {
        let mut endpoints = Vec::new();
        for part in urls.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(Error::invalid(
                    "etcd endpoint list",
                    urls,
                    "has an empty endpoint",
                ));
            }
            endpoints.push(parse_endpoint(part)?);
        }
        Ok(EtcdConfig {
            endpoints,
            timeout: Duration::from_secs(5),
            netns: None,
        })
    }

    /// How long one call may take, connecting included (default 5 s). A watch waits as
    /// long as [`Watch::next`](super::Watch::next) is told to instead. Host names are
    /// resolved by the system resolver, under its own timeouts: give addresses where
    /// that matters.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Make every connection inside `netns`, whatever namespace the calling thread is in
    /// (the socket is created on a helper thread in `netns`, and keeps that namespace).
    ///
    /// ```no_run
    /// use netplumb::etcd::{Etcd, EtcdConfig};
    /// let host = netplumb::Netns::open("/proc/1/ns/net")?;
    /// let etcd = Etcd::connect(EtcdConfig::new("127.0.0.1:2379")?.dial_in(&host))?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn dial_in(mut self, netns: &Netns) -> Self {
        self.netns = Some(netns.clone());
        self
    }

    /// The endpoints, as `host:port`, in the order they are tried.
    pub fn endpoints(&self) -> Vec<String> {
        self.endpoints.iter().map(Endpoint::to_string).collect()
    }
}

fn parse_endpoint(part: &str) -> Result<Endpoint> {
    let rest = match part.split_once("://") {
        Some(("http" | "etcd", rest)) => rest,
        Some(("https", _)) => {
            return Err(Error::invalid(
                "etcd endpoint scheme",
                "https",
                "is not supported (plain http only)",
            ))
        }
        Some((scheme, _)) => {
            return Err(Error::invalid(
                "etcd endpoint scheme",
                scheme,
                "is not http or etcd",
            ))
        }
        None => part,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !path.is_empty() && path != "/" {
        return Err(Error::invalid(
            "etcd endpoint path",
            path,
            "is not allowed (give host and port only)",
        ));
    }
    let (host, port) = split_host_port(authority)?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(Error::invalid(
                    "etcd endpoint port",
                    p,
                    "is not a number from 1 to 65535",
                ))
            }
        },
    };
    Ok(Endpoint { host, port })
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(String, Option<&str>)> {
    let bad_host = |reason| Err(Error::invalid("etcd endpoint host", authority, reason));
    if let Some(inner) = authority.strip_prefix('[') {
        let Some((v6, after)) = inner.split_once(']') else {
            return bad_host("has no closing ']'");
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return bad_host("is not an IPv6 address in brackets");
        }
        return match after {
            "" => Ok((v6.to_string(), None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((v6.to_string(), Some(p))),
                None => bad_host("has text after ']' that is not ':PORT'"),
            },
        };
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if host.is_empty() {
        return bad_host("is empty");
    }
    if host.contains(':') {
        return bad_host("is an IPv6 address without brackets");
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
    if !host.chars().all(ok) {
        return bad_host("is not a host name or address");
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(s: &str) -> Vec<String> {
        EtcdConfig::new(s).unwrap().endpoints()
    }

    fn bad(s: &str) -> String {
        let e = EtcdConfig::new(s).unwrap_err();
        assert!(e.is_invalid(), "{e}");
        e.to_string()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(eps("http://127.0.0.1:2379"), ["127.0.0.1:2379"]);
        assert_eq!(eps("etcd://etcd-0.local:32379/"), ["etcd-0.local:32379"]);
        assert_eq!(eps("10.0.0.5"), ["10.0.0.5:2379"]);
        assert_eq!(
            eps("[fd00::5]:2379, [::1]"),
            ["[fd00::5]:2379", "[::1]:2379"]
        );
        assert_eq!(
            eps("a:1,http://b:2,etcd://c:3"),
            ["a:1", "b:2", "c:3"],
            "order kept"
        );
    }

    #[test]
    fn names_the_bad_part() {
        let cases = [
            ("https://a:1", "etcd endpoint scheme \"https\""),
            ("ftp://a:1", "etcd endpoint scheme \"ftp\""),
            ("a:1,,b:2", "etcd endpoint list"),
            ("", "etcd endpoint list"),
            ("a:x", "etcd endpoint port \"x\""),
            ("a:0", "etcd endpoint port \"0\""),
            ("a:65536", "etcd endpoint port \"65536\""),
            ("a:", "etcd endpoint port \"\""),
            ("http://a:1/v3", "etcd endpoint path \"/v3\""),
            (":2379", "etcd endpoint host \":2379\""),
            ("fd00::5", "etcd endpoint host"),
            ("[fd00::5", "etcd endpoint host"),
            ("[nope]:1", "etcd endpoint host"),
            ("a b:1", "etcd endpoint host \"a b:1\""),
        ];
        for (input, want) in cases {
            let msg = bad(input);
            assert!(msg.contains(want), "{input:?}: {msg}");
        }
    }
}
