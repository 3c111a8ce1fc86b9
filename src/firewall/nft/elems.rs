//! The bytes of port-map and set elements, both ways: a [`PortRule`] becomes a key and a
//! value; a dumped element becomes a [`PortRule`] again.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::super::rule::{PortRule, Proto};

/// A small inline byte string (at most 28 bytes: IPv6 key of the port map).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bytes {
    b: [u8; 28],
    n: usize,
}

impl Bytes {
    fn new() -> Bytes {
        Bytes { b: [0; 28], n: 0 }
    }

    fn push(&mut self, data: &[u8]) {
        self.b[self.n..self.n + data.len()].copy_from_slice(data);
        self.n += data.len();
    }

    /// A register-sized word holding `data` followed by zeros.
    fn word(&mut self, data: &[u8]) {
        let mut w = [0u8; 4];
        w[..data.len()].copy_from_slice(data);
        self.push(&w);
    }

    fn addr(&mut self, ip: &IpAddr) {
        match ip {
            IpAddr::V4(a) => self.push(&a.octets()),
            IpAddr::V6(a) => self.push(&a.octets()),
        }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.b[..self.n]
    }
}

/// Key in `ports` (`proto . host addr . host port`) or `ports_any` (`proto . host port`).
pub(super) fn map_key(p: &PortRule) -> Bytes {
    let mut k = Bytes::new();
    k.word(&[p.proto.number()]);
    if let Some(h) = &p.host_ip {
        k.addr(h);
    }
    k.word(&p.host_port.to_be_bytes());
    k
}

/// Value in the port maps: `container addr . container port`.
pub(super) fn map_value(p: &PortRule) -> Bytes {
    let mut v = Bytes::new();
    v.addr(&p.container_ip);
    v.word(&p.container_port.to_be_bytes());
    v
}

/// Key in `published`: `container addr . proto . container port . host port` (the
/// last is the connection's original destination port, so two host ports published to
/// one container port are two elements).
pub(super) fn published_key(p: &PortRule) -> Bytes {
    let mut k = Bytes::new();
    k.addr(&p.container_ip);
    k.word(&[p.proto.number()]);
    k.word(&p.container_port.to_be_bytes());
    k.word(&p.host_port.to_be_bytes());
    k
}

fn addr_at(b: &[u8], v6: bool) -> Option<IpAddr> {
    if v6 {
        let a: [u8; 16] = b.get(..16)?.try_into().ok()?;
        Some(Ipv6Addr::from(a).into())
    } else {
        let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
        Some(Ipv4Addr::from(a).into())
    }
}

fn port_at(b: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Rebuilds a [`PortRule`] from a dumped element of `ports` (`any == false`) or
/// `ports_any`; `None` for bytes that are not ours.
pub(crate) fn decode(
    network: &str,
    v6: bool,
    any: bool,
    key: &[u8],
    value: &[u8],
) -> Option<PortRule> {
    let alen = if v6 { 16 } else { 4 };
    let proto = Proto::from_number(*key.first()?)?;
    let (host_ip, port_at_off) = if any {
        (None, 4)
    } else {
        (Some(addr_at(key.get(4..)?, v6)?), 4 + alen)
    };
    Some(PortRule {
        network: network.to_owned(),
        proto,
        host_ip,
        host_port: port_at(key.get(port_at_off..)?)?,
        container_ip: addr_at(value, v6)?,
        container_port: port_at(value.get(alen..)?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let p = PortRule::new("n", Proto::Udp, 5353, "fd00::2".parse().unwrap(), 53)
            .host_ip("fd00::1".parse().unwrap());
        let (k, v) = (map_key(&p), map_value(&p));
        assert_eq!(k.as_slice().len(), 24);
        assert_eq!(v.as_slice().len(), 20);
        assert_eq!(
            decode("n", true, false, k.as_slice(), v.as_slice()),
            Some(p)
        );
        let q = PortRule::new("n", Proto::Tcp, 8080, "172.17.0.2".parse().unwrap(), 80);
        let (k, v) = (map_key(&q), map_value(&q));
        assert_eq!(k.as_slice(), [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(v.as_slice(), [172, 17, 0, 2, 0, 80, 0, 0]);
        assert_eq!(
            decode("n", false, true, k.as_slice(), v.as_slice()),
            Some(q.clone())
        );
        assert_eq!(
            published_key(&q).as_slice(),
            [172, 17, 0, 2, 6, 0, 0, 0, 0, 80, 0, 0, 0x1f, 0x90, 0, 0]
        );
        assert_eq!(decode("n", false, true, &[99, 0, 0, 0], v.as_slice()), None);
    }
}
