//! The expression encoder: the nf_tables expressions netplumb's rules use (payload,
//! meta, cmp, bitwise, lookup, immediate/verdict, ct, fib, nat, masq, counter).

use super::attr::{attr_be32, nest, verdict};
use super::consts::*;
use crate::wire::MsgBuf;

/// One nf_tables expression of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expr<'a> {
    /// Load `len` bytes at `offset` of a header into register `dreg`.
    Payload {
        /// Which header.
        base: PayloadBase,
        /// Byte offset.
        offset: u32,
        /// Byte length.
        len: u32,
        /// Destination register.
        dreg: u32,
    },
    /// Load packet metadata `key` (`meta::*`) into `dreg`.
    Meta {
        /// The key.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// Load conntrack `key` (`ct::*`) into `dreg`.
    Ct {
        /// The key.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// Load conntrack `key` of the original direction (`ct original KEY`) into `dreg`.
    CtOriginal {
        /// The key.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// Load constant `data` into `dreg` (`immediate`).
    Load {
        /// Destination register.
        dreg: u32,
        /// The value.
        data: &'a [u8],
    },
    /// Compare register `sreg` with `data`.
    Cmp {
        /// Source register.
        sreg: u32,
        /// The operation.
        op: CmpOp,
        /// The value.
        data: &'a [u8],
    },
    /// `dreg = (sreg & mask) ^ xor` over `mask.len()` bytes.
    Bitwise {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// AND mask.
        mask: &'a [u8],
        /// XOR value (same length as `mask`).
        xor: &'a [u8],
    },
    /// Look `sreg` up in `set`; with `dreg`, load the mapped data; `invert` matches on miss.
    Lookup {
        /// The set's name.
        set: &'a [u8],
        /// Source register.
        sreg: u32,
        /// Destination register for maps.
        dreg: Option<u32>,
        /// Match when the key is *not* in the set.
        invert: bool,
    },
    /// A verdict: accept, drop, return, or jump/goto a chain.
    Verdict(i32, Option<&'a [u8]>),
    /// `fib daddr type` into `dreg`.
    FibDaddrType {
        /// Destination register.
        dreg: u32,
    },
    /// SNAT/DNAT to the address (and port) held in registers.
    Nat {
        /// SNAT or DNAT.
        kind: NatType,
        /// `NFPROTO_IPV4` or `NFPROTO_IPV6`.
        family: u8,
        /// Register with the address.
        addr: u32,
        /// Register with the port, if any.
        port: Option<u32>,
    },
    /// Masquerade.
    Masq,
    /// Count packets and bytes.
    Counter,
}

/// `NFTA_LOOKUP_*`.
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_LOOKUP_FLAGS: u16 = 5;
/// `NFT_LOOKUP_F_INV`.
const NFT_LOOKUP_F_INV: u32 = 1;

impl Expr<'_> {
    fn name(&self) -> &'static [u8] {
        match self {
            Expr::Payload { .. } => b"payload",
            Expr::Meta { .. } => b"meta",
            Expr::Ct { .. } | Expr::CtOriginal { .. } => b"ct",
            Expr::Load { .. } => b"immediate",
            Expr::Cmp { .. } => b"cmp",
            Expr::Bitwise { .. } => b"bitwise",
            Expr::Lookup { .. } => b"lookup",
            Expr::Verdict(..) => b"immediate",
            Expr::FibDaddrType { .. } => b"fib",
            Expr::Nat { .. } => b"nat",
            Expr::Masq => b"masq",
            Expr::Counter => b"counter",
        }
    }

    /// Appends the expression (`NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA }`).
    #[inline]
    pub fn put(&self, buf: &mut MsgBuf) {
        let e = nest(buf, NFTA_LIST_ELEM);
        buf.attr_str(NFTA_EXPR_NAME, self.name());
        let d = nest(buf, NFTA_EXPR_DATA);
        self.put_data(buf);
        buf.end_nest(d);
        buf.end_nest(e);
    }

    fn put_data(&self, buf: &mut MsgBuf) {
        match *self {
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                // NFTA_PAYLOAD_DREG, BASE, OFFSET, LEN
                attr_be32(buf, 1, dreg);
                attr_be32(buf, 2, base as u32);
                attr_be32(buf, 3, offset);
                attr_be32(buf, 4, len);
            }
            // NFTA_META_DREG, KEY / NFTA_CT_DREG, KEY
            Expr::Meta { key, dreg } | Expr::Ct { key, dreg } => {
                attr_be32(buf, 1, dreg);
                attr_be32(buf, 2, key);
            }
            Expr::CtOriginal { key, dreg } => {
                // NFTA_CT_DREG, KEY, DIRECTION (IP_CT_DIR_ORIGINAL)
                attr_be32(buf, 1, dreg);
                attr_be32(buf, 2, key);
                buf.attr_u8(3, 0);
            }
            Expr::Load { dreg, data } => {
                // NFTA_IMMEDIATE_DREG, DATA { NFTA_DATA_VALUE }
                attr_be32(buf, 1, dreg);
                let n = nest(buf, 2);
                buf.attr(NFTA_DATA_VALUE, data);
                buf.end_nest(n);
            }
            Expr::Cmp { sreg, op, data } => {
                // NFTA_CMP_SREG, OP, DATA { NFTA_DATA_VALUE }
                attr_be32(buf, 1, sreg);
                attr_be32(buf, 2, op as u32);
                let n = nest(buf, 3);
                buf.attr(NFTA_DATA_VALUE, data);
                buf.end_nest(n);
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                // NFTA_BITWISE_SREG, DREG, LEN, MASK, XOR
                attr_be32(buf, 1, sreg);
                attr_be32(buf, 2, dreg);
                attr_be32(buf, 3, mask.len() as u32);
                for (ty, v) in [(4u16, mask), (5, xor)] {
                    let n = nest(buf, ty);
                    buf.attr(NFTA_DATA_VALUE, v);
                    buf.end_nest(n);
                }
            }
            Expr::Lookup {
                set,
                sreg,
                dreg,
                invert,
            } => {
                buf.attr_str(NFTA_LOOKUP_SET, set);
                attr_be32(buf, NFTA_LOOKUP_SREG, sreg);
                if let Some(d) = dreg {
                    attr_be32(buf, NFTA_LOOKUP_DREG, d);
                }
                if invert {
                    attr_be32(buf, NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
                }
            }
            Expr::Verdict(code, chain) => {
                // NFTA_IMMEDIATE_DREG = verdict register, NFTA_IMMEDIATE_DATA
                attr_be32(buf, 1, NFT_REG_VERDICT);
                let n = nest(buf, 2);
                verdict(buf, code, chain);
                buf.end_nest(n);
            }
            Expr::FibDaddrType { dreg } => {
                // NFTA_FIB_DREG, RESULT, FLAGS
                attr_be32(buf, 1, dreg);
                attr_be32(buf, 2, NFT_FIB_RESULT_ADDRTYPE);
                attr_be32(buf, 3, NFTA_FIB_F_DADDR);
            }
            Expr::Nat {
                kind,
                family,
                addr,
                port,
            } => {
                // NFTA_NAT_TYPE, FAMILY, REG_ADDR_MIN, (REG_PROTO_MIN)
                attr_be32(buf, 1, kind as u32);
                attr_be32(buf, 2, family as u32);
                attr_be32(buf, 3, addr);
                if let Some(p) = port {
                    attr_be32(buf, 5, p);
                }
            }
            Expr::Masq | Expr::Counter => {}
        }
    }
}
