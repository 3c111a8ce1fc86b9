//! [`PublishedPort`]: one container port on one concrete host address and port, and the
//! `docker port` listing of a container's published ports.

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::range::Proto;

/// One published port: a container port reachable on a concrete host address and port.
///
/// What [`PortAllocator::publish`](super::PortAllocator::publish) returns, and what the
/// firewall rules (DNAT, hairpin masquerade, forward accept) are built from. `Display` is a
/// `docker port` line.
///
/// ```
/// use netplumb::ports::{Proto, PublishedPort};
/// let p = PublishedPort::new(Proto::Tcp, "0.0.0.0".parse().unwrap(), 32768, 80);
/// assert_eq!(p.to_string(), "80/tcp -> 0.0.0.0:32768");
/// let v6 = PublishedPort::new(Proto::Udp, "::1".parse().unwrap(), 5353, 53);
/// assert_eq!(v6.to_string(), "53/udp -> [::1]:5353");
/// ```
///
/// With feature `serde`: an object with the fields below, `proto` as `"tcp"`:
/// `{"proto":"tcp","host_ip":"0.0.0.0","host_port":32768,"container_port":80}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PublishedPort {
    /// The protocol.
    pub proto: Proto,
    /// The host address (`0.0.0.0` or `::` for all addresses of that family).
    pub host_ip: IpAddr,
    /// The host port.
    pub host_port: u16,
    /// The container port.
    pub container_port: u16,
}

impl PublishedPort {
    /// Container port `container_port` published on `host_ip:host_port` over `proto`.
    pub fn new(proto: Proto, host_ip: IpAddr, host_port: u16, container_port: u16) -> Self {
        PublishedPort {
            proto,
            host_ip,
            host_port,
            container_port,
        }
    }

    /// The host side as a socket address.
    pub fn host_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host_ip, self.host_port)
    }

    /// Whether this and `other` claim the same host port: same protocol and port, and the
    /// same address or an unspecified address (`0.0.0.0`, `::`) of the same family on
    /// either side, since that one covers every address of its family.
    ///
    /// ```
    /// use netplumb::ports::{Proto, PublishedPort};
    /// let at = |ip: &str, port| PublishedPort::new(Proto::Tcp, ip.parse().unwrap(), port, 80);
    /// assert!(at("0.0.0.0", 8080).overlaps(&at("127.0.0.1", 8080)));
    /// assert!(!at("127.0.0.1", 8080).overlaps(&at("127.0.0.2", 8080)));
    /// assert!(!at("0.0.0.0", 8080).overlaps(&at("::", 8080)));
    /// ```
    pub fn overlaps(&self, other: &PublishedPort) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && addrs_overlap(self.host_ip, other.host_ip)
    }
}

/// Same address, or an unspecified one of the same family on either side.
pub(crate) fn addrs_overlap(a: IpAddr, b: IpAddr) -> bool {
    a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
}

impl fmt::Display for PublishedPort {
    /// `80/tcp -> 0.0.0.0:32768`, a line of `docker port C`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}",
            self.container_port,
            self.proto,
            self.host_addr()
        )
    }
}

/// The lines of `docker port C`: one `80/tcp -> 0.0.0.0:32768` per published port, in
/// Docker's order (natural string order, so `80/tcp` comes before `443/tcp`).
///
/// ```
/// use netplumb::ports::{port_lines, Proto, PublishedPort};
/// let all = "0.0.0.0".parse().unwrap();
/// let ports = [
///     PublishedPort::new(Proto::Tcp, all, 32772, 443),
///     PublishedPort::new(Proto::Tcp, all, 32771, 80),
/// ];
/// assert_eq!(port_lines(&ports), ["80/tcp -> 0.0.0.0:32771", "443/tcp -> 0.0.0.0:32772"]);
/// ```
#[doc(alias = "docker port")]
pub fn port_lines(published: &[PublishedPort]) -> Vec<String> {
    let mut lines: Vec<String> = published.iter().map(ToString::to_string).collect();
    lines.sort_by(|a, b| natural_cmp(a, b));
    lines.dedup();
    lines
}

/// The lines of `docker port C PORT/PROTO`: the host addresses (`0.0.0.0:32771`) that
/// container port `container_port` over `proto` is published on, in Docker's order. Empty
/// when it is not published (where `docker port` fails with "No public port '80/tcp'
/// published for C").
///
/// ```
/// use netplumb::ports::{port_lines_for, Proto, PublishedPort};
/// let all = "0.0.0.0".parse().unwrap();
/// let ports = [PublishedPort::new(Proto::Tcp, all, 32771, 80), PublishedPort::new(Proto::Udp, all, 32771, 80)];
/// assert_eq!(port_lines_for(&ports, 80, Proto::Tcp), ["0.0.0.0:32771"]);
/// assert!(port_lines_for(&ports, 443, Proto::Tcp).is_empty());
/// ```
pub fn port_lines_for(
    published: &[PublishedPort],
    container_port: u16,
    proto: Proto,
) -> Vec<String> {
    let mut lines: Vec<String> = published
        .iter()
        .filter(|p| p.container_port == container_port && p.proto == proto)
        .map(|p| p.host_addr().to_string())
        .collect();
    lines.sort_by(|a, b| natural_cmp(a, b));
    lines.dedup();
    lines
}

/// Natural order (Docker's `sortorder.NaturalLess`): runs of digits compare as numbers,
/// everything else byte by byte.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let (ta, tb) = (trim_zeros(da), trim_zeros(db));
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
                    .then_with(|| da.len().cmp(&db.len()));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => (a, b) = (&a[1..], &b[1..]),
        }
    }
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    s.split_at(
        s.iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(s.len()),
    )
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    &s[s.iter().position(|&c| c != b'0').unwrap_or(s.len())..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut v = vec![
            "443/tcp", "80/udp", "80/tcp", "8080/tcp", "53/sctp", "53/tcp",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["53/sctp", "53/tcp", "80/tcp", "80/udp", "443/tcp", "8080/tcp"]
        );
        assert_eq!(natural_cmp("a9", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("a010", "a10"), Ordering::Greater);
        assert_eq!(natural_cmp("x", "x"), Ordering::Equal);
        assert_eq!(natural_cmp("x", "x1"), Ordering::Less);
    }

    #[test]
    fn listing_sorts_and_filters() {
        let all = "0.0.0.0".parse().unwrap();
        let lo = "127.0.0.1".parse().unwrap();
        let ports = [
            PublishedPort::new(Proto::Udp, all, 32769, 53),
            PublishedPort::new(Proto::Tcp, lo, 8080, 80),
            PublishedPort::new(Proto::Tcp, all, 32768, 80),
            PublishedPort::new(Proto::Tcp, "::".parse().unwrap(), 32768, 80),
        ];
        assert_eq!(
            port_lines(&ports),
            [
                "53/udp -> 0.0.0.0:32769",
                "80/tcp -> 0.0.0.0:32768",
                "80/tcp -> 127.0.0.1:8080",
                "80/tcp -> [::]:32768"
            ]
        );
        assert_eq!(
            port_lines_for(&ports, 80, Proto::Tcp),
            ["0.0.0.0:32768", "127.0.0.1:8080", "[::]:32768"]
        );
        assert_eq!(port_lines_for(&ports, 53, Proto::Udp), ["0.0.0.0:32769"]);
        assert!(port_lines_for(&ports, 53, Proto::Tcp).is_empty());
    }

    #[test]
    fn overlap_rules() {
        let at = |ip: &str, port, proto| PublishedPort::new(proto, ip.parse().unwrap(), port, 1);
        assert!(at("0.0.0.0", 1, Proto::Tcp).overlaps(&at("10.0.0.1", 1, Proto::Tcp)));
        assert!(at("::1", 1, Proto::Tcp).overlaps(&at("::", 1, Proto::Tcp)));
        assert!(!at("0.0.0.0", 1, Proto::Tcp).overlaps(&at("0.0.0.0", 1, Proto::Udp)));
        assert!(!at("0.0.0.0", 1, Proto::Tcp).overlaps(&at("0.0.0.0", 2, Proto::Tcp)));
        assert!(!at("::", 1, Proto::Tcp).overlaps(&at("10.0.0.1", 1, Proto::Tcp)));
    }
}
