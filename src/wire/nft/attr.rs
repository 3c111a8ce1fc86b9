//! The attribute helpers every nf_tables message shares: big-endian integers, nested
//! attributes (with `NLA_F_NESTED`, as libnftnl writes them), and verdict data.

use super::consts::{NFTA_DATA_VERDICT, NFTA_VERDICT_CHAIN, NFTA_VERDICT_CODE};
use crate::wire::{MsgBuf, Nest, NLA_F_NESTED};

#[inline]
pub(super) fn attr_be32(buf: &mut MsgBuf, ty: u16, v: u32) {
    buf.attr(ty, &v.to_be_bytes());
}

#[inline]
pub(super) fn nest(buf: &mut MsgBuf, ty: u16) -> Nest {
    buf.begin_nest(ty | NLA_F_NESTED)
}

/// `NFTA_DATA_VERDICT { NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN }`.
pub(super) fn verdict(buf: &mut MsgBuf, code: i32, chain: Option<&[u8]>) {
    let v = nest(buf, NFTA_DATA_VERDICT);
    attr_be32(buf, NFTA_VERDICT_CODE, code as u32);
    if let Some(c) = chain {
        buf.attr_str(NFTA_VERDICT_CHAIN, c);
    }
    buf.end_nest(v);
}
