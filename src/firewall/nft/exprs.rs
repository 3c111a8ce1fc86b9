//! Rule building blocks per address family: the expression sequences of `iifname BR`,
//! `ip saddr NET`, `ct state ...` and friends, written straight into the batch buffer.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::wire::nft::{self, CmpOp, Expr, PayloadBase};

/// A netfilter address family of our tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fam {
    /// `nfgen_family` (`NFPROTO_IPV4`, `NFPROTO_IPV6`).
    pub af: u8,
    /// Address length in bytes.
    pub len: u32,
    /// Offset of the source address in the network header.
    pub saddr: u32,
    /// Offset of the destination address.
    pub daddr: u32,
}

pub(super) const V4: Fam = Fam {
    af: nft::NFPROTO_IPV4,
    len: 4,
    saddr: 12,
    daddr: 16,
};
pub(super) const V6: Fam = Fam {
    af: nft::NFPROTO_IPV6,
    len: 16,
    saddr: 8,
    daddr: 24,
};

/// Both IP families, in the order they are set up.
pub(super) const FAMILIES: [Fam; 2] = [V4, V6];

impl Fam {
    pub(super) fn of(ip: &IpAddr) -> Fam {
        if ip.is_ipv4() {
            V4
        } else {
            V6
        }
    }

    /// The 32-bit register right after an address loaded into register 0.
    pub(super) fn after_addr(&self, first: u32) -> u32 {
        first + self.len / 4
    }
}

/// 32-bit register `i` (`NFT_REG32_00 + i`).
pub(super) const fn reg(i: u32) -> u32 {
    nft::NFT_REG32_00 + i
}

/// Interface name as the kernel compares it: the name and its NUL.
pub(super) fn ifname(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    let n = name.len().min(15);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b
}

pub(super) fn ip_bytes(ip: &IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(a) => b[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => b.copy_from_slice(&a.octets()),
    }
    b
}

/// `meta iifname|oifname NAME` (or `!=`).
pub(super) fn ifname_cmp<'a>(
    out: bool,
    name: &'a [u8; 16],
    op: CmpOp,
    len: usize,
) -> [Expr<'a>; 2] {
    let key = if out {
        nft::meta::OIFNAME
    } else {
        nft::meta::IIFNAME
    };
    [
        Expr::Meta { key, dreg: reg(0) },
        Expr::Cmp {
            sreg: reg(0),
            op,
            data: &name[..len],
        },
    ]
}

/// The bytes of an address prefix and its mask, for [`addr_in`].
pub(super) struct Prefix {
    pub net: [u8; 16],
    pub mask: [u8; 16],
    pub zero: [u8; 16],
    pub len: usize,
}

impl Prefix {
    pub(super) fn new(net: &IpNet) -> Prefix {
        Prefix {
            net: ip_bytes(&net.network()),
            mask: ip_bytes(&net.netmask()),
            zero: [0; 16],
            len: if net.addr().is_ipv4() { 4 } else { 16 },
        }
    }
}

/// `ip saddr|daddr NET` into register `r`.
pub(super) fn addr_in<'a>(fam: Fam, src: bool, p: &'a Prefix, r: u32) -> [Expr<'a>; 3] {
    [
        Expr::Payload {
            base: PayloadBase::Network,
            offset: if src { fam.saddr } else { fam.daddr },
            len: fam.len,
            dreg: r,
        },
        Expr::Bitwise {
            sreg: r,
            dreg: r,
            mask: &p.mask[..p.len],
            xor: &p.zero[..p.len],
        },
        Expr::Cmp {
            sreg: r,
            op: CmpOp::Eq,
            data: &p.net[..p.len],
        },
    ]
}

/// Host-order `u32` bit masks for `ct state` / `ct status` tests.
pub(super) struct Bits {
    pub mask: [u8; 4],
    pub zero: [u8; 4],
}

impl Bits {
    pub(super) fn new(mask: u32) -> Bits {
        Bits {
            mask: mask.to_ne_bytes(),
            zero: [0; 4],
        }
    }
}

/// `ct state|status & BITS != 0`.
pub(super) fn ct_any<'a>(key: u32, b: &'a Bits) -> [Expr<'a>; 3] {
    [
        Expr::Ct { key, dreg: reg(0) },
        Expr::Bitwise {
            sreg: reg(0),
            dreg: reg(0),
            mask: &b.mask,
            xor: &b.zero,
        },
        Expr::Cmp {
            sreg: reg(0),
            op: CmpOp::Neq,
            data: &b.zero,
        },
    ]
}

/// `meta l4proto P`.
pub(super) fn l4proto(p: &[u8; 1]) -> [Expr<'_>; 2] {
    [
        Expr::Meta {
            key: nft::meta::L4PROTO,
            dreg: reg(0),
        },
        Expr::Cmp {
            sreg: reg(0),
            op: CmpOp::Eq,
            data: p,
        },
    ]
}

/// `th sport|dport PORT` (big-endian bytes).
pub(super) fn th_port(dst: bool, port: &[u8; 2]) -> [Expr<'_>; 2] {
    [
        Expr::Payload {
            base: PayloadBase::Transport,
            offset: if dst { 2 } else { 0 },
            len: 2,
            dreg: reg(0),
        },
        Expr::Cmp {
            sreg: reg(0),
            op: CmpOp::Eq,
            data: port,
        },
    ]
}

/// Loads `meta l4proto . ADDR . th dport` into registers from `first` on (the key of the
/// port maps); `addr` is `None` for the any-address map, and then only the first two
/// expressions are meant (the count is returned beside them).
pub(super) fn load_port_key(
    fam: Fam,
    addr: Option<bool>,
    first: u32,
) -> ([Expr<'static>; 3], usize) {
    let proto = Expr::Meta {
        key: nft::meta::L4PROTO,
        dreg: first,
    };
    let port = |dreg| Expr::Payload {
        base: PayloadBase::Transport,
        offset: 2,
        len: 2,
        dreg,
    };
    match addr {
        Some(src) => {
            let a = Expr::Payload {
                base: PayloadBase::Network,
                offset: if src { fam.saddr } else { fam.daddr },
                len: fam.len,
                dreg: first + 1,
            };
            ([proto, a, port(fam.after_addr(first + 1))], 3)
        }
        None => ([proto, port(first + 1), port(first + 1)], 2),
    }
}
