//! [`IfName`] (interface names, checked before any syscall) and [`MacAddr`], and the
//! names and MACs netplumb derives: [`veth_name`] from a key, [`MacAddr::from_ip`] from an
//! address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{Error, Result};

/// `IFNAMSIZ - 1`: the longest interface name the kernel takes.
pub const IFNAME_MAX: usize = 15;

/// An interface name, stored inline (no heap).
///
/// Built unchecked by the specs' setters and checked by [`IfName::check`] before any syscall:
/// 1 to 15 bytes, no `/`, no whitespace, no `:`, no `%` (the kernel would turn `veth%d` into
/// a name of its own choosing, which a caller that records the requested name would leak),
/// not `.` or `..`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfName {
    bytes: [u8; 16],
    len: u8,
    /// Length of the input, which may exceed what is stored.
    given: u16,
}

/// `veth` and 7 hex digits of the FNV-1a hash of `key`: the host end of a veth pair, named
/// so that whoever knows the key finds the link again (a container id and a network, say).
pub(crate) fn veth_name(key: &str) -> String {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("veth{:07x}", h & 0xfff_ffff)
}

impl IfName {
    /// A checked name.
    ///
    /// ```
    /// use netplumb::link::IfName;
    /// assert!(IfName::new("veth3f2a1c0").is_ok());
    /// assert!(IfName::new("veth%d").is_err());
    /// assert!(IfName::new("averyveryverylongname").is_err());
    /// ```
    pub fn new(s: &str) -> Result<IfName> {
        let n = IfName::unchecked(s);
        n.check()?;
        Ok(n)
    }

    /// Stores `s` (its first 16 bytes) without checking; [`IfName::check`] reports problems.
    pub fn unchecked(s: &str) -> IfName {
        let mut bytes = [0u8; 16];
        let len = s.len().min(16);
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        IfName {
            bytes,
            len: len as u8,
            given: s.len().min(u16::MAX as usize) as u16,
        }
    }

    /// Checks the name as the kernel's `dev_valid_name` does, and refuses `%`.
    pub fn check(&self) -> Result<()> {
        self.check_as("link name")
    }

    pub(crate) fn check_as(&self, field: &'static str) -> Result<()> {
        let bad = |reason| Err(Error::invalid(field, self, reason));
        if self.given == 0 {
            return bad("empty");
        }
        if self.given as usize > IFNAME_MAX {
            return bad("longer than 15 bytes");
        }
        let b = self.as_bytes();
        if b == b"." || b == b".." {
            return bad("'.' and '..' are not link names");
        }
        if b.iter()
            .any(|&c| c == b'/' || c == b':' || c.is_ascii_whitespace() || c == 0)
        {
            return bad("contains '/', ':', whitespace or NUL");
        }
        if b.contains(&b'%') {
            return bad("contains '%' (the kernel would pick the name)");
        }
        if std::str::from_utf8(b).is_err() {
            return bad("not UTF-8");
        }
        Ok(())
    }

    /// The name's bytes (no NUL).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))?;
        if self.given as usize > self.len as usize {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IfName({self})")
    }
}

impl FromStr for IfName {
    type Err = Error;
    fn from_str(s: &str) -> Result<IfName> {
        IfName::new(s)
    }
}

/// A 48-bit Ethernet address.
///
/// With feature `serde`: its text form, `"02:42:ac:11:00:02"`; deserializing parses it as
/// [`str::parse`] does, so a malformed address is an error.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The MAC Docker derives from a container's address: `02:42` and the IPv4 address,
    /// or the last four bytes of an IPv6 one.
    ///
    /// ```
    /// use netplumb::link::MacAddr;
    /// let m = MacAddr::from_ip("172.17.0.2".parse().unwrap());
    /// assert_eq!(m.to_string(), "02:42:ac:11:00:02");
    /// ```
    pub fn from_ip(ip: IpAddr) -> MacAddr {
        let b = match ip {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(a) => {
                let o = a.octets();
                [o[12], o[13], o[14], o[15]]
            }
        };
        MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]])
    }

    /// The bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// True for a multicast (group) address, which no link may have.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = Error;
    /// Parses `02:42:ac:11:00:02` (or with `-`).
    fn from_str(s: &str) -> Result<MacAddr> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next().filter(|p| p.len() == 2);
            *b = p
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| Error::invalid("MAC address", s, "expected six hex pairs"))?;
        }
        if parts.next().is_some() {
            return Err(Error::invalid("MAC address", s, "expected six hex pairs"));
        }
        Ok(MacAddr(out))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["eth0", "veth3f2a1c0", "a", "123456789012345"] {
            assert!(IfName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "veth%d",
            "1234567890123456",
            "a:1",
            "tab\t",
        ] {
            let e = IfName::new(bad).unwrap_err();
            assert!(e.is_invalid(), "{bad}: {e}");
            assert!(e.to_string().contains("link name"), "{e}");
        }
    }

    #[test]
    fn veth_names_are_stable() {
        // The veths made by earlier versions must still be found by these names.
        assert_eq!(veth_name("c1/n1/0"), "veth84a0ef0");
        assert_eq!(veth_name("overlay/c1/ov1"), "veth668a447");
    }

    #[test]
    fn mac_round_trip() {
        let m: MacAddr = "02:42:ac:11:00:02".parse().unwrap();
        assert_eq!(m.to_string(), "02:42:ac:11:00:02");
        assert!("02:42:ac:11:00".parse::<MacAddr>().is_err());
        assert!("02:42:ac:11:00:02:03".parse::<MacAddr>().is_err());
        assert!("zz:42:ac:11:00:02".parse::<MacAddr>().is_err());
    }
}
