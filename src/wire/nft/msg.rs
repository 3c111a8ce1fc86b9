//! The nf_tables messages: batches, tables, chains, sets and maps with their elements,
//! rules (whose expressions [`Expr::put`](super::expr::Expr::put) writes), and dump
//! requests.

use super::attr::{attr_be32, nest, verdict};
use super::consts::*;
use crate::wire::{Msg, MsgBuf, Nest, NlmF};

/// The nfnetlink message type of an nf_tables message.
#[inline]
pub const fn msg_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// Starts an nf_tables message: header and `struct nfgenmsg`.
#[inline]
pub fn begin(buf: &mut MsgBuf, msg: u16, flags: NlmF, seq: u32, family: u8) -> Msg {
    let m = buf.begin_msg(msg_type(msg), flags.bits(), seq);
    buf.put(&[family, 0, 0, 0]);
    m
}

/// `NFNL_MSG_BATCH_BEGIN` / `END` for the nf_tables subsystem.
#[inline]
pub fn batch(buf: &mut MsgBuf, end: bool, seq: u32) {
    let ty = if end {
        NFNL_MSG_BATCH_END
    } else {
        NFNL_MSG_BATCH_BEGIN
    };
    let m = buf.begin_msg(ty, NlmF::REQUEST.bits(), seq);
    let res = NFNL_SUBSYS_NFTABLES.to_be_bytes();
    buf.put(&[0, 0, res[0], res[1]]);
    buf.end_msg(m);
}

/// `NFNL_MSG_BATCH_BEGIN` for the nf_tables subsystem with `NFNL_BATCH_GENID`: the kernel
/// applies the batch only if the ruleset is still at generation `genid` (as read with
/// [`getgen`]), and otherwise refuses it as a whole with `ERESTART`, acknowledging this
/// message (sequence number `seq`). Kernels before 4.19 ignore the attribute.
#[inline]
pub fn batch_checked(buf: &mut MsgBuf, seq: u32, genid: u32) {
    let m = buf.begin_msg(NFNL_MSG_BATCH_BEGIN, NlmF::REQUEST.bits(), seq);
    let res = NFNL_SUBSYS_NFTABLES.to_be_bytes();
    buf.put(&[0, 0, res[0], res[1]]);
    attr_be32(buf, NFNL_BATCH_GENID, genid);
    buf.end_msg(m);
}

/// `NFT_MSG_GETGEN`: asks for the ruleset generation (`nft list ruleset` reads it first);
/// the answer is an `NFT_MSG_NEWGEN` whose [`NFTA_GEN_ID`] [`parse_gen`](super::parse_gen)
/// reads.
#[inline]
pub fn getgen(buf: &mut MsgBuf, seq: u32) {
    let m = begin(buf, NFT_MSG_GETGEN, NlmF::REQUEST | NlmF::ACK, seq, 0);
    buf.end_msg(m);
}

/// `NFT_MSG_{NEW,DEL}TABLE`.
pub fn table(buf: &mut MsgBuf, msg: u16, flags: NlmF, seq: u32, family: u8, name: &[u8]) {
    let m = begin(buf, msg, flags, seq, family);
    buf.attr_str(NFTA_TABLE_NAME, name);
    if msg == NFT_MSG_NEWTABLE {
        attr_be32(buf, NFTA_TABLE_FLAGS, 0);
    }
    buf.end_msg(m);
}

/// A base chain's hook: where, at which priority, of which type, with which policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain<'a> {
    /// `NF_INET_*` hook number.
    pub hook: u32,
    /// Priority (`-100` dstnat, `0` filter, `100` srcnat).
    pub priority: i32,
    /// `filter`, `nat` or `route`.
    pub kind: &'a [u8],
    /// `NF_ACCEPT` or `NF_DROP`.
    pub policy: i32,
}

/// `NFT_MSG_{NEW,DEL}CHAIN`; a base chain when `base` is given.
pub fn chain(
    buf: &mut MsgBuf,
    msg: u16,
    flags: NlmF,
    seq: u32,
    family: u8,
    (table, name): (&[u8], &[u8]),
    base: Option<&BaseChain<'_>>,
) {
    let m = begin(buf, msg, flags, seq, family);
    buf.attr_str(NFTA_CHAIN_TABLE, table);
    buf.attr_str(NFTA_CHAIN_NAME, name);
    if let Some(b) = base {
        let h = nest(buf, NFTA_CHAIN_HOOK);
        attr_be32(buf, NFTA_HOOK_HOOKNUM, b.hook);
        attr_be32(buf, NFTA_HOOK_PRIORITY, b.priority as u32);
        buf.end_nest(h);
        attr_be32(buf, NFTA_CHAIN_POLICY, b.policy as u32);
        buf.attr_str(NFTA_CHAIN_TYPE, b.kind);
    }
    buf.end_msg(m);
}

/// A set or map's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSpec<'a> {
    /// The set's name.
    pub name: &'a [u8],
    /// Batch-local id, so rules in the same batch can refer to it.
    pub id: u32,
    /// `NFT_SET_*` flags.
    pub flags: u32,
    /// The key's data type (as `nft` numbers them; informational for the kernel).
    pub key_type: u32,
    /// The key's length in bytes (each concatenated field padded to 4).
    pub key_len: u32,
    /// For maps: data type and length (`NFT_DATA_VERDICT` with length 0 for verdicts).
    pub data: Option<(u32, u32)>,
}

/// `NFT_MSG_{NEW,DEL}SET`.
pub fn set(
    buf: &mut MsgBuf,
    msg: u16,
    flags: NlmF,
    seq: u32,
    family: u8,
    table: &[u8],
    s: &SetSpec<'_>,
) {
    set_with_udata(buf, (msg, flags, seq), family, table, s, &[]);
}

/// `NFT_MSG_{NEW,DEL}SET` (`(msg, flags, seq)`) whose new set carries `NFTA_SET_USERDATA`,
/// for instance a [`typeof_udata`](super::udata::typeof_udata) so that `nft list` can print its keys.
pub fn set_with_udata(
    buf: &mut MsgBuf,
    (msg, flags, seq): (u16, NlmF, u32),
    family: u8,
    table: &[u8],
    s: &SetSpec<'_>,
    udata: &[u8],
) {
    let m = begin(buf, msg, flags, seq, family);
    buf.attr_str(NFTA_SET_TABLE, table);
    buf.attr_str(NFTA_SET_NAME, s.name);
    if msg == NFT_MSG_NEWSET {
        attr_be32(buf, NFTA_SET_FLAGS, s.flags);
        attr_be32(buf, NFTA_SET_KEY_TYPE, s.key_type);
        attr_be32(buf, NFTA_SET_KEY_LEN, s.key_len);
        if let Some((ty, len)) = s.data {
            attr_be32(buf, NFTA_SET_DATA_TYPE, ty);
            attr_be32(buf, NFTA_SET_DATA_LEN, len);
        }
        attr_be32(buf, NFTA_SET_ID, s.id);
        if !udata.is_empty() {
            buf.attr(NFTA_SET_USERDATA, udata);
        }
    }
    buf.end_msg(m);
}

/// What a set element maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemData<'a> {
    /// A plain set element.
    None,
    /// A data map value.
    Value(&'a [u8]),
    /// A verdict map value: code and, for jump/goto, the chain.
    Verdict(i32, Option<&'a [u8]>),
}

/// Starts `NFT_MSG_{NEW,DEL}SETELEM` for `set`; add elements with [`elem`], close with
/// [`end_elems`].
pub fn begin_elems(
    buf: &mut MsgBuf,
    msg: u16,
    flags: NlmF,
    seq: u32,
    family: u8,
    (table, set): (&[u8], &[u8]),
) -> (Msg, Nest) {
    let m = begin(buf, msg, flags, seq, family);
    buf.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
    buf.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    let n = nest(buf, NFTA_SET_ELEM_LIST_ELEMENTS);
    (m, n)
}

/// One element inside [`begin_elems`]/[`end_elems`], with optional userdata (an `nft`
/// comment TLV).
#[inline]
pub fn elem(buf: &mut MsgBuf, key: &[u8], data: ElemData<'_>, userdata: &[u8]) {
    let e = nest(buf, NFTA_LIST_ELEM);
    let k = nest(buf, NFTA_SET_ELEM_KEY);
    buf.attr(NFTA_DATA_VALUE, key);
    buf.end_nest(k);
    match data {
        ElemData::None => {}
        ElemData::Value(v) => {
            let d = nest(buf, NFTA_SET_ELEM_DATA);
            buf.attr(NFTA_DATA_VALUE, v);
            buf.end_nest(d);
        }
        ElemData::Verdict(code, chain) => {
            let d = nest(buf, NFTA_SET_ELEM_DATA);
            verdict(buf, code, chain);
            buf.end_nest(d);
        }
    }
    if !userdata.is_empty() {
        buf.attr(NFTA_SET_ELEM_USERDATA, userdata);
    }
    buf.end_nest(e);
}

/// Closes a message started by [`begin_elems`].
#[inline]
pub fn end_elems(buf: &mut MsgBuf, (m, n): (Msg, Nest)) {
    buf.end_nest(n);
    buf.end_msg(m);
}

/// Starts `NFT_MSG_NEWRULE` (appended to `chain`); add expressions with
/// [`Expr::put`](super::expr::Expr::put),
/// close with [`end_rule`].
pub fn begin_rule(
    buf: &mut MsgBuf,
    flags: NlmF,
    seq: u32,
    family: u8,
    (table, chain): (&[u8], &[u8]),
) -> (Msg, Nest) {
    let m = begin(buf, NFT_MSG_NEWRULE, flags, seq, family);
    buf.attr_str(NFTA_RULE_TABLE, table);
    buf.attr_str(NFTA_RULE_CHAIN, chain);
    let n = nest(buf, NFTA_RULE_EXPRESSIONS);
    (m, n)
}

/// Closes a rule; `userdata` (our tag, so a dump can tell our rules apart) is stored
/// with it.
pub fn end_rule(buf: &mut MsgBuf, (m, n): (Msg, Nest), userdata: &[u8]) {
    buf.end_nest(n);
    if !userdata.is_empty() {
        buf.attr(NFTA_RULE_USERDATA, userdata);
    }
    buf.end_msg(m);
}

/// `NFT_MSG_DELRULE` of the rule with `handle`.
pub fn del_rule(
    buf: &mut MsgBuf,
    seq: u32,
    family: u8,
    (table, chain): (&[u8], &[u8]),
    handle: u64,
) {
    let m = begin(buf, NFT_MSG_DELRULE, NlmF::CHANGE, seq, family);
    buf.attr_str(NFTA_RULE_TABLE, table);
    buf.attr_str(NFTA_RULE_CHAIN, chain);
    buf.attr(NFTA_RULE_HANDLE, &handle.to_be_bytes());
    buf.end_msg(m);
}

/// A dump request (`NFT_MSG_GET*` with `NLM_F_DUMP`), optionally for one table.
pub fn dump(buf: &mut MsgBuf, msg: u16, seq: u32, family: u8, table: Option<&[u8]>) {
    let m = begin(buf, msg, NlmF::GET_DUMP, seq, family);
    if let Some(t) = table {
        // NFTA_{CHAIN,RULE,SET}_TABLE are all attribute 1.
        buf.attr_str(NFTA_RULE_TABLE, t);
    }
    buf.end_msg(m);
}

/// `NFT_MSG_GETSETELEM` dump of one set.
pub fn dump_elems(buf: &mut MsgBuf, seq: u32, family: u8, (table, set): (&[u8], &[u8])) {
    let m = begin(buf, NFT_MSG_GETSETELEM, NlmF::GET_DUMP, seq, family);
    buf.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
    buf.attr_str(NFTA_SET_ELEM_LIST_SET, set);
    buf.end_msg(m);
}
