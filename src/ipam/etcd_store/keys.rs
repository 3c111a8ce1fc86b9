//! The key layout of [`EtcdStore`](super::EtcdStore): where each record lives under the
//! prefix, names percent-encoded so that no two of them share a key.

use std::fmt::Write as _;

use super::super::{IpamError, Owner};

/// The keys of one store, built from its prefix (which ends in `/`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Keys<'a>(&'a str);

impl<'a> Keys<'a> {
    /// The keys under `prefix`.
    pub(super) fn new(prefix: &'a str) -> Self {
        Keys(prefix)
    }

    /// The prefix of every key.
    pub(super) fn prefix(self) -> &'a str {
        self.0
    }

    /// `networks/`: every network record.
    pub(super) fn networks(self) -> Vec<u8> {
        format!("{}networks/", self.0).into_bytes()
    }

    /// `networks/NAME`: the network record.
    pub(super) fn network(self, name: &str) -> Vec<u8> {
        format!("{}networks/{}", self.0, seg(name)).into_bytes()
    }

    /// `index`: rewritten by every network creation and removal.
    pub(super) fn index(self) -> Vec<u8> {
        format!("{}index", self.0).into_bytes()
    }

    /// `leases/NAME/`: every lease of a network.
    pub(super) fn lease_prefix(self, net: &str) -> Vec<u8> {
        format!("{}leases/{}/", self.0, seg(net)).into_bytes()
    }

    /// `leases/NAME/ADDRESS`, the address as 32 hex digits (key order is address order).
    pub(super) fn lease(self, net: &str, a: u128) -> Vec<u8> {
        let mut k = self.lease_prefix(net);
        k.extend_from_slice(format!("{a:032x}").as_bytes());
        k
    }

    /// `owners/NAME/`: every owner of a network.
    pub(super) fn owner_prefix(self, net: &str) -> Vec<u8> {
        format!("{}owners/{}/", self.0, seg(net)).into_bytes()
    }

    /// `owners/NAME/CONTAINER/IFNAME`: the address the owner holds.
    pub(super) fn owner(self, net: &str, o: &Owner) -> Vec<u8> {
        let mut k = self.owner_prefix(net);
        k.extend_from_slice(format!("{}/{}", seg(&o.container), seg(&o.ifname)).as_bytes());
        k
    }
}

/// The address in a lease key.
pub(super) fn lease_addr(key: &[u8], v6: bool) -> Result<u128, IpamError> {
    let hex = key.rsplit(|&b| b == b'/').next().unwrap_or_default();
    std::str::from_utf8(hex)
        .ok()
        .filter(|h| h.len() == 32)
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .filter(|&a| v6 || a <= u128::from(u32::MAX))
        .ok_or_else(|| corrupt(key, "not a lease key"))
}

/// A key as text, for messages.
pub(super) fn text(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// [`IpamError::Corrupt`] naming `key`.
pub(super) fn corrupt(key: &[u8], reason: impl Into<String>) -> IpamError {
    IpamError::Corrupt {
        context: format!("etcd key {}", text(key)),
        reason: reason.into(),
    }
}

/// Percent-encodes `%`, `/` and control characters of a key segment.
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '%' || c == '/' || c.is_control() {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_collide() {
        assert_eq!(seg("br0"), "br0");
        assert_eq!(seg("a/b"), "a%2Fb");
        assert_eq!(seg("50%"), "50%25");
        assert_eq!(seg("x\ny"), "x%0Ay");
        assert_ne!(seg("a%2Fb"), seg("a/b"));
    }

    #[test]
    fn lease_keys_round_trip() {
        let keys = Keys::new("/p/");
        let k = keys.lease("a/b", 0x0a00_0001);
        assert_eq!(text(&k), "/p/leases/a%2Fb/0000000000000000000000000a000001");
        assert_eq!(lease_addr(&k, false).unwrap(), 0x0a00_0001);
        let v6 = keys.lease("n", u128::MAX);
        assert_eq!(lease_addr(&v6, true).unwrap(), u128::MAX);
        assert!(matches!(
            lease_addr(&v6, false),
            Err(IpamError::Corrupt { .. })
        ));
    }
}
