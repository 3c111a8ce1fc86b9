//! The guard's table layout: the names of its tables, chain and sets, the two families,
//! and the set elements (a guarded VNI, a peer of a VNI) with their keys.

use std::fmt;
use std::net::IpAddr;

use crate::wire::nft::{self, KeyField, PayloadBase};

/// The name of our tables (`ip netplumb_vxlan`, `ip6 netplumb_vxlan`).
pub(super) const TABLE: &str = "netplumb_vxlan";
/// The chain, and the sets.
pub(super) const CHAIN: &str = "input";
pub(super) const VNIS: &str = "vnis";
pub(super) const PEERS: &str = "peers";
/// Most elements per `NFT_MSG_*SETELEM` message (its element list has a 16-bit length).
pub(super) const ELEMS_PER_MSG: usize = 256;
// `nft` data type numbers (`integer`, `ipv4_addr`, `ipv6_addr`), as `nft` sets them for
// our `typeof` keys; the kernel ignores them.
pub(super) use crate::wire::nft::datatype::INTEGER as TYPE_INTEGER;
use crate::wire::nft::datatype::{IP6ADDR as TYPE_IP6ADDR, IPADDR as TYPE_IPADDR};
pub(super) const R0: u32 = nft::NFT_REG32_00;
/// The VNI in the transport header, in bits for `nft`.
pub(super) const VNI_FIELD: KeyField = KeyField::Raw(PayloadBase::Transport, 96, 24);

/// One family of our tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fam {
    /// `nfgen_family`.
    pub(super) af: u8,
    /// As `nft` names it.
    pub(super) name: &'static str,
    /// Address length in bytes.
    pub(super) alen: u32,
    /// Offset of the source address in the network header.
    pub(super) saddr: u32,
    /// `nft` data type of an address.
    pub(super) atype: u32,
}

pub(super) const V4: Fam = Fam {
    af: nft::NFPROTO_IPV4,
    name: "ip",
    alen: 4,
    saddr: 12,
    atype: TYPE_IPADDR,
};
pub(super) const V6: Fam = Fam {
    af: nft::NFPROTO_IPV6,
    name: "ip6",
    alen: 16,
    saddr: 8,
    atype: TYPE_IP6ADDR,
};

/// A set element: a guarded VNI, or a peer of a VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Elem {
    Vni(u32),
    Peer(u32, IpAddr),
}

impl Elem {
    pub(super) fn vni(&self) -> u32 {
        match *self {
            Elem::Vni(v) | Elem::Peer(v, _) => v,
        }
    }

    pub(super) fn set(&self) -> &'static str {
        match self {
            Elem::Vni(_) => VNIS,
            Elem::Peer(..) => PEERS,
        }
    }

    /// Whether family `fam`'s sets hold it (VNIs are guarded in both).
    pub(super) fn in_fam(&self, fam: Fam) -> bool {
        match self {
            Elem::Vni(_) => true,
            Elem::Peer(_, ip) => ip.is_ipv6() == (fam == V6),
        }
    }

    /// The set key: `vnis` holds the VNI's 3 bytes; `peers` the address, then the VNI's
    /// 3 bytes and the zero byte the payload expression leaves in its register.
    pub(super) fn key(&self) -> ([u8; 20], usize) {
        let mut k = [0u8; 20];
        let vni = &self.vni().to_be_bytes()[1..];
        let n = match self {
            Elem::Vni(_) => {
                let n = put(&mut k, vni);
                return (k, n);
            }
            Elem::Peer(_, IpAddr::V4(a)) => put(&mut k, &a.octets()),
            Elem::Peer(_, IpAddr::V6(a)) => put(&mut k, &a.octets()),
        };
        // A whole register word: the VNI and the zero byte `k` already holds.
        let n = n + put(&mut k[n..], vni) + 1;
        (k, n)
    }

    pub(super) fn parse(set: &str, key: &[u8]) -> Option<Elem> {
        let vni = |b: &[u8]| Some(u32::from_be_bytes([0, *b.first()?, *b.get(1)?, *b.get(2)?]));
        if set == VNIS {
            return (key.len() == 3).then(|| vni(key)).flatten().map(Elem::Vni);
        }
        let ip: IpAddr = match key.len() {
            8 => <[u8; 4]>::try_from(&key[..4]).ok()?.into(),
            20 => <[u8; 16]>::try_from(&key[..16]).ok()?.into(),
            _ => return None,
        };
        Some(Elem::Peer(vni(&key[key.len() - 4..])?, ip))
    }
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Elem::Vni(v) => write!(f, "{v}"),
            Elem::Peer(v, ip) => write!(f, "{ip} . {v}"),
        }
    }
}

fn put(out: &mut [u8], data: &[u8]) -> usize {
    out[..data.len()].copy_from_slice(data);
    data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let v4: IpAddr = "192.0.2.2".parse().unwrap();
        let v6: IpAddr = "2001:db8::2".parse().unwrap();
        for (e, len) in [
            (Elem::Vni(0xff_ffff), 3),
            (Elem::Peer(42, v4), 8),
            (Elem::Peer(7, v6), 20),
        ] {
            let (k, n) = e.key();
            assert_eq!(n, len);
            assert_eq!(Elem::parse(e.set(), &k[..n]), Some(e));
        }
        assert_eq!(Elem::Vni(0x0a0b0c).key().0[..3], [0x0a, 0x0b, 0x0c]);
        assert_eq!(Elem::Peer(256, v4).key().0[..8], [192, 0, 2, 2, 0, 1, 0, 0]);
        assert_eq!(Elem::parse(VNIS, &[1, 2, 3, 4]), None);
        assert_eq!(Elem::Peer(256, v4).to_string(), "192.0.2.2 . 256");
    }
}
