//! nf_tables requests over `NETLINK_NETFILTER` (`nft`, nf_tables(8) netlink ABI of
//! `<linux/netfilter/nf_tables.h>` and `<linux/netfilter/nfnetlink.h>`): batches, tables,
//! chains, sets and maps with their elements, rules, and the expressions netplumb's
//! rules use (payload, meta, cmp, bitwise, lookup, immediate/verdict, ct, fib, nat,
//! masq, counter).
//!
//! Every integer attribute of nf_tables is big-endian. Nested attributes carry
//! `NLA_F_NESTED`, as libnftnl writes them.

use super::parse::Attrs;
use super::{Error, Msg, MsgBuf, Nest, NlmF, NLA_F_NESTED};

/// `NFNL_SUBSYS_NFTABLES`.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN`.
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

/// `NFT_MSG_NEWTABLE`.
pub const NFT_MSG_NEWTABLE: u16 = 0;
/// `NFT_MSG_GETTABLE`.
pub const NFT_MSG_GETTABLE: u16 = 1;
/// `NFT_MSG_DELTABLE`.
pub const NFT_MSG_DELTABLE: u16 = 2;
/// `NFT_MSG_NEWCHAIN`.
pub const NFT_MSG_NEWCHAIN: u16 = 3;
/// `NFT_MSG_GETCHAIN`.
pub const NFT_MSG_GETCHAIN: u16 = 4;
/// `NFT_MSG_DELCHAIN`.
pub const NFT_MSG_DELCHAIN: u16 = 5;
/// `NFT_MSG_NEWRULE`.
pub const NFT_MSG_NEWRULE: u16 = 6;
/// `NFT_MSG_GETRULE`.
pub const NFT_MSG_GETRULE: u16 = 7;
/// `NFT_MSG_DELRULE`.
pub const NFT_MSG_DELRULE: u16 = 8;
/// `NFT_MSG_NEWSET`.
pub const NFT_MSG_NEWSET: u16 = 9;
/// `NFT_MSG_GETSET`.
pub const NFT_MSG_GETSET: u16 = 10;
/// `NFT_MSG_DELSET`.
pub const NFT_MSG_DELSET: u16 = 11;
/// `NFT_MSG_NEWSETELEM`.
pub const NFT_MSG_NEWSETELEM: u16 = 12;
/// `NFT_MSG_GETSETELEM`.
pub const NFT_MSG_GETSETELEM: u16 = 13;
/// `NFT_MSG_DELSETELEM`.
pub const NFT_MSG_DELSETELEM: u16 = 14;
/// `NFT_MSG_NEWGEN`: the end of one transaction's notifications.
pub const NFT_MSG_NEWGEN: u16 = 15;
/// `NFT_MSG_DELOBJ`.
pub const NFT_MSG_DELOBJ: u16 = 20;
/// `NFT_MSG_DELFLOWTABLE`.
pub const NFT_MSG_DELFLOWTABLE: u16 = 24;
/// `NFTA_GEN_PROC_PID`: the thread that made the transaction.
pub const NFTA_GEN_PROC_PID: u16 = 2;
/// `NFNLGRP_NFTABLES`: the multicast group of nf_tables notifications.
pub const NFNLGRP_NFTABLES: u32 = 7;

/// `NFTA_TABLE_NAME`.
pub const NFTA_TABLE_NAME: u16 = 1;
/// `NFTA_TABLE_FLAGS`.
pub const NFTA_TABLE_FLAGS: u16 = 2;
/// `NFTA_CHAIN_TABLE`.
pub const NFTA_CHAIN_TABLE: u16 = 1;
/// `NFTA_CHAIN_NAME`.
pub const NFTA_CHAIN_NAME: u16 = 3;
/// `NFTA_CHAIN_HOOK`.
pub const NFTA_CHAIN_HOOK: u16 = 4;
/// `NFTA_CHAIN_POLICY`.
pub const NFTA_CHAIN_POLICY: u16 = 5;
/// `NFTA_CHAIN_TYPE`.
pub const NFTA_CHAIN_TYPE: u16 = 7;
/// `NFTA_HOOK_HOOKNUM`.
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
/// `NFTA_HOOK_PRIORITY`.
pub const NFTA_HOOK_PRIORITY: u16 = 2;
/// `NFTA_RULE_TABLE`.
pub const NFTA_RULE_TABLE: u16 = 1;
/// `NFTA_RULE_CHAIN`.
pub const NFTA_RULE_CHAIN: u16 = 2;
/// `NFTA_RULE_HANDLE`.
pub const NFTA_RULE_HANDLE: u16 = 3;
/// `NFTA_RULE_EXPRESSIONS`.
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
/// `NFTA_RULE_USERDATA`.
pub const NFTA_RULE_USERDATA: u16 = 7;
/// `NFTA_LIST_ELEM`.
pub const NFTA_LIST_ELEM: u16 = 1;
/// `NFTA_EXPR_NAME`.
pub const NFTA_EXPR_NAME: u16 = 1;
/// `NFTA_EXPR_DATA`.
pub const NFTA_EXPR_DATA: u16 = 2;
/// `NFTA_DATA_VALUE`.
pub const NFTA_DATA_VALUE: u16 = 1;
/// `NFTA_DATA_VERDICT`.
pub const NFTA_DATA_VERDICT: u16 = 2;
/// `NFTA_VERDICT_CODE`.
pub const NFTA_VERDICT_CODE: u16 = 1;
/// `NFTA_VERDICT_CHAIN`.
pub const NFTA_VERDICT_CHAIN: u16 = 2;

/// `NFTA_SET_TABLE`.
pub const NFTA_SET_TABLE: u16 = 1;
/// `NFTA_SET_NAME`.
pub const NFTA_SET_NAME: u16 = 2;
/// `NFTA_SET_FLAGS`.
pub const NFTA_SET_FLAGS: u16 = 3;
/// `NFTA_SET_KEY_TYPE`.
pub const NFTA_SET_KEY_TYPE: u16 = 4;
/// `NFTA_SET_KEY_LEN`.
pub const NFTA_SET_KEY_LEN: u16 = 5;
/// `NFTA_SET_DATA_TYPE`.
pub const NFTA_SET_DATA_TYPE: u16 = 6;
/// `NFTA_SET_DATA_LEN`.
pub const NFTA_SET_DATA_LEN: u16 = 7;
/// `NFTA_SET_ID`.
pub const NFTA_SET_ID: u16 = 10;
/// `NFTA_SET_USERDATA`.
pub const NFTA_SET_USERDATA: u16 = 13;
/// `NFTA_SET_ELEM_LIST_TABLE`.
pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
/// `NFTA_SET_ELEM_LIST_SET`.
pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`.
pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// `NFTA_SET_ELEM_KEY`.
pub const NFTA_SET_ELEM_KEY: u16 = 1;
/// `NFTA_SET_ELEM_DATA`.
pub const NFTA_SET_ELEM_DATA: u16 = 2;

/// `NFTA_SET_ELEM_USERDATA`.
pub const NFTA_SET_ELEM_USERDATA: u16 = 6;
/// `NFT_MSG_DESTROYSETELEM`: delete elements, ignoring missing ones (Linux 6.3+).
pub const NFT_MSG_DESTROYSETELEM: u16 = 30;
/// `NFT_META_PROTOCOL`: the ethertype.
pub const NFT_META_PROTOCOL: u32 = 1;
/// `NFT_META_BRI_IIFNAME`: the bridge a frame came in on.
pub const NFT_META_BRI_IIFNAME: u32 = 17;
/// `NFTNL_UDATA_RULE_COMMENT` / `NFTNL_UDATA_SET_ELEM_COMMENT`: userdata TLV type that
/// `nft` shows as `comment "..."`.
pub const UDATA_COMMENT: u8 = 0;

/// Writes `comment` as the userdata TLV `nft` reads as a comment; returns its length.
pub fn comment_udata(comment: &[u8], out: &mut [u8; 128]) -> usize {
    let n = comment.len().min(out.len() - 3);
    out[0] = UDATA_COMMENT;
    out[1] = (n + 1) as u8;
    out[2..2 + n].copy_from_slice(&comment[..n]);
    out[2 + n] = 0;
    n + 3
}

/// Reads the comment out of userdata written by [`comment_udata`] (or by `nft`).
pub fn udata_comment(udata: &[u8]) -> Option<&[u8]> {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (ty, len) = (rest[0], rest[1] as usize);
        let val = rest.get(2..2 + len)?;
        if ty == UDATA_COMMENT {
            return Some(val.split(|&c| c == 0).next().unwrap_or(val));
        }
        rest = &rest[2 + len..];
    }
    None
}

/// `NFT_SET_MAP`: the set maps keys to data.
pub const NFT_SET_MAP: u32 = 0x8;
/// `NFT_SET_CONCAT`.
pub const NFT_SET_CONCAT: u32 = 0x80;
/// `NFT_DATA_VERDICT`: the data type of verdict maps.
pub const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

/// `NFT_REG_VERDICT`.
pub const NFT_REG_VERDICT: u32 = 0;
/// `NFT_REG32_00`: the first 32-bit register (concatenations are built from these).
pub const NFT_REG32_00: u32 = 8;

/// `NF_DROP`.
pub const NF_DROP: i32 = 0;
/// `NF_ACCEPT`.
pub const NF_ACCEPT: i32 = 1;
/// `NFT_CONTINUE`.
pub const NFT_CONTINUE: i32 = -1;
/// `NFT_JUMP`.
pub const NFT_JUMP: i32 = -3;
/// `NFT_GOTO`.
pub const NFT_GOTO: i32 = -4;
/// `NFT_RETURN`.
pub const NFT_RETURN: i32 = -5;

/// `NFPROTO_INET`.
pub const NFPROTO_INET: u8 = 1;
/// `NFPROTO_IPV4`.
pub const NFPROTO_IPV4: u8 = 2;
/// `NFPROTO_IPV6`.
pub const NFPROTO_IPV6: u8 = 10;
/// `NFPROTO_BRIDGE`.
pub const NFPROTO_BRIDGE: u8 = 7;

/// nft's data types, written in set userdata so that `nft list` can print the elements
/// (the kernel ignores them).
pub mod datatype {
    /// `integer`.
    pub const INTEGER: u32 = 4;
    /// `ipv4_addr`.
    pub const IPADDR: u32 = 7;
    /// `ipv6_addr`.
    pub const IP6ADDR: u32 = 8;
    /// `inet_proto`.
    pub const INET_PROTOCOL: u32 = 12;
    /// `inet_service`.
    pub const INET_SERVICE: u32 = 13;
    /// `ifname`.
    pub const IFNAME: u32 = 41;
}

/// Netfilter hooks (`NF_INET_*`).
pub mod hook {
    /// `NF_INET_PRE_ROUTING`.
    pub const PREROUTING: u32 = 0;
    /// `NF_INET_LOCAL_IN`.
    pub const INPUT: u32 = 1;
    /// `NF_INET_FORWARD`.
    pub const FORWARD: u32 = 2;
    /// `NF_INET_LOCAL_OUT`.
    pub const OUTPUT: u32 = 3;
    /// `NF_INET_POST_ROUTING`.
    pub const POSTROUTING: u32 = 4;
}

/// `enum nft_payload_bases`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadBase {
    /// `NFT_PAYLOAD_LL_HEADER`.
    Link = 0,
    /// `NFT_PAYLOAD_NETWORK_HEADER`.
    Network = 1,
    /// `NFT_PAYLOAD_TRANSPORT_HEADER`.
    Transport = 2,
}

/// `enum nft_meta_keys` (the ones used here).
pub mod meta {
    /// `NFT_META_IIF`.
    pub const IIF: u32 = 4;
    /// `NFT_META_OIF`.
    pub const OIF: u32 = 5;
    /// `NFT_META_IIFNAME`.
    pub const IIFNAME: u32 = 6;
    /// `NFT_META_OIFNAME`.
    pub const OIFNAME: u32 = 7;
    /// `NFT_META_NFPROTO`.
    pub const NFPROTO: u32 = 15;
    /// `NFT_META_L4PROTO`.
    pub const L4PROTO: u32 = 16;
}

/// `enum nft_ct_keys` (the ones used here).
pub mod ct {
    /// `NFT_CT_STATE`.
    pub const STATE: u32 = 0;
    /// `NFT_CT_STATUS`.
    pub const STATUS: u32 = 2;
    /// `NFT_CT_PROTO_DST`.
    pub const PROTO_DST: u32 = 12;
    /// `NF_CT_STATE_INVALID_BIT`.
    pub const STATE_INVALID: u32 = 1;
    /// `NF_CT_STATE_BIT(IP_CT_ESTABLISHED)`.
    pub const STATE_ESTABLISHED: u32 = 1 << 1;
    /// `NF_CT_STATE_BIT(IP_CT_RELATED)`.
    pub const STATE_RELATED: u32 = 1 << 2;
    /// `IPS_DST_NAT` in the status word.
    pub const STATUS_DNAT: u32 = 1 << 5;
}

/// `enum nft_cmp_ops`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `NFT_CMP_EQ`.
    Eq = 0,
    /// `NFT_CMP_NEQ`.
    Neq = 1,
    /// `NFT_CMP_GTE`: greater than or equal, comparing the bytes as a big-endian number
    /// (`nft` writes `@th,96,24 >= 0` with it, which holds whenever the field is there).
    Gte = 5,
}

/// `enum nft_nat_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatType {
    /// `NFT_NAT_SNAT`.
    Snat = 0,
    /// `NFT_NAT_DNAT`.
    Dnat = 1,
}

/// `NFT_FIB_RESULT_ADDRTYPE`.
pub const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
/// `NFTA_FIB_F_DADDR`.
pub const NFTA_FIB_F_DADDR: u32 = 2;
/// `RTN_LOCAL`: a local address, what `fib daddr type local` compares with.
pub const RTN_LOCAL: u32 = 2;

#[inline]
fn attr_be32(buf: &mut MsgBuf, ty: u16, v: u32) {
    buf.attr(ty, &v.to_be_bytes());
}

#[inline]
fn nest(buf: &mut MsgBuf, ty: u16) -> Nest {
    buf.begin_nest(ty | NLA_F_NESTED)
}

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
/// for instance a [`typeof_udata`] so that `nft list` can print its keys.
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

/// One field of a set key as `nft` names it after `typeof`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    /// `ip saddr` (`NFPROTO_IPV4`) or `ip6 saddr` (`NFPROTO_IPV6`).
    Saddr(u8),
    /// A raw payload field, offset and length in bits: `@th,96,24` is
    /// `Raw(PayloadBase::Transport, 96, 24)`.
    Raw(PayloadBase, u32, u32),
}

/// `NFTNL_UDATA_SET_KEYBYTEORDER`.
pub const UDATA_SET_KEYBYTEORDER: u8 = 0;
/// `NFTNL_UDATA_SET_KEY_TYPEOF`.
pub const UDATA_SET_KEY_TYPEOF: u8 = 3;
/// `nft`'s `EXPR_PAYLOAD` and `EXPR_CONCAT`, as its `typeof` userdata names them.
const NFT_EXPR_PAYLOAD: u32 = 7;
const NFT_EXPR_CONCAT: u32 = 13;
/// `nft`'s `BYTEORDER_BIG_ENDIAN`.
const NFT_BYTEORDER_BIG_ENDIAN: u32 = 2;

/// Userdata TLVs (type, length byte, value; integers host-endian, as libnftnl writes
/// them) in a fixed buffer; what does not fit is left out.
struct Udata<'a> {
    out: &'a mut [u8; 128],
    n: usize,
}

impl Udata<'_> {
    fn put(&mut self, ty: u8, v: &[u8]) {
        if let Some(d) = self.out.get_mut(self.n..self.n + 2 + v.len()) {
            d[0] = ty;
            d[1] = v.len() as u8;
            d[2..].copy_from_slice(v);
            self.n += 2 + v.len();
        }
    }

    fn u32(&mut self, ty: u8, v: u32) {
        self.put(ty, &v.to_ne_bytes());
    }

    fn nest(&mut self, ty: u8, inner: impl FnOnce(&mut Self)) {
        let at = self.n;
        self.put(ty, &[]);
        inner(self);
        if let Some(l) = self.out.get_mut(at + 1) {
            *l = (self.n - at - 2).min(255) as u8;
        }
    }

    /// `NFTNL_UDATA_SET_TYPEOF_{EXPR,DATA}` (or `..._KEY_CONCAT_SUB_*`: same numbers).
    fn payload(&mut self, f: &KeyField) {
        self.u32(0, NFT_EXPR_PAYLOAD);
        // NFTNL_UDATA_SET_KEY_PAYLOAD_{DESC,TYPE,BASE,OFFSET,LEN}
        self.nest(1, |u| match *f {
            KeyField::Saddr(af) => {
                // nft's PROTO_DESC_IP / IP6 and its IPHDR_SADDR / IP6HDR_SADDR
                let (desc, field) = if af == NFPROTO_IPV6 {
                    (13, 8)
                } else {
                    (12, 11)
                };
                u.u32(0, desc);
                u.u32(1, field);
            }
            KeyField::Raw(base, offset, len) => {
                u.u32(0, 0);
                u.u32(1, 0);
                u.u32(2, base as u32 + 1);
                u.u32(3, offset);
                u.u32(4, len);
            }
        });
    }
}

/// Writes the set userdata that `nft` stores for `typeof F1 . F2 ...`, so that it can
/// print keys it has no data type for; returns its length.
pub fn typeof_udata(fields: &[KeyField], out: &mut [u8; 128]) -> usize {
    let mut u = Udata { out, n: 0 };
    let order = if fields.len() == 1 {
        NFT_BYTEORDER_BIG_ENDIAN
    } else {
        0
    };
    u.u32(UDATA_SET_KEYBYTEORDER, order);
    u.nest(UDATA_SET_KEY_TYPEOF, |u| match fields {
        [one] => u.payload(one),
        _ => {
            u.u32(0, NFT_EXPR_CONCAT);
            u.nest(1, |u| {
                for (i, f) in fields.iter().enumerate() {
                    u.nest(i as u8, |u| u.payload(f));
                }
            });
        }
    });
    u.n
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

fn verdict(buf: &mut MsgBuf, code: i32, chain: Option<&[u8]>) {
    let v = nest(buf, NFTA_DATA_VERDICT);
    attr_be32(buf, NFTA_VERDICT_CODE, code as u32);
    if let Some(c) = chain {
        buf.attr_str(NFTA_VERDICT_CHAIN, c);
    }
    buf.end_nest(v);
}

/// Starts `NFT_MSG_NEWRULE` (appended to `chain`); add expressions with [`Expr::put`],
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

/// `NFTA_COUNTER_BYTES` (big-endian `u64`, in a dumped `counter` expression).
pub const NFTA_COUNTER_BYTES: u16 = 1;
/// `NFTA_COUNTER_PACKETS` (big-endian `u64`).
pub const NFTA_COUNTER_PACKETS: u16 = 2;

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

/// What a dumped rule (`NFT_MSG_NEWRULE` in a `NFT_MSG_GETRULE` reply) says about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleInfo<'a> {
    /// `NFTA_RULE_HANDLE`.
    pub handle: u64,
    /// The comment in `NFTA_RULE_USERDATA`, if any.
    pub comment: Option<&'a [u8]>,
    /// Packets counted by the rule's `counter` expressions, summed.
    pub packets: u64,
}

fn be64(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Reads a dumped rule; `msg` is the payload after `struct nfgenmsg`.
pub fn parse_rule(msg: &[u8]) -> Result<RuleInfo<'_>, Error> {
    let mut r = RuleInfo::default();
    for a in Attrs::new(msg) {
        match a? {
            (NFTA_RULE_HANDLE, v) => r.handle = be64(v),
            (NFTA_RULE_USERDATA, v) => r.comment = udata_comment(v),
            (NFTA_RULE_EXPRESSIONS, list) => {
                for e in Attrs::new(list) {
                    // Saturating: counters come from the kernel (or whoever answers).
                    r.packets = r.packets.saturating_add(counter_packets(e?.1)?);
                }
            }
            _ => {}
        }
    }
    Ok(r)
}

/// The packets of a `counter` expression (0 for any other expression).
fn counter_packets(expr: &[u8]) -> Result<u64, Error> {
    let (mut counter, mut packets) = (false, 0);
    for a in Attrs::new(expr) {
        match a? {
            (NFTA_EXPR_NAME, n) => counter = n.starts_with(b"counter\0"),
            (NFTA_EXPR_DATA, d) => {
                for x in Attrs::new(d) {
                    if let (NFTA_COUNTER_PACKETS, v) = x? {
                        packets = be64(v);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(if counter { packets } else { 0 })
}

/// Calls `f` with the key of every element of a set-element message (a
/// `NFT_MSG_GETSETELEM` reply); `msg` is the payload after `struct nfgenmsg`.
pub fn elem_keys(msg: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<(), Error> {
    for a in Attrs::new(msg) {
        let (ty, list) = a?;
        if ty != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for item in Attrs::new(list) {
            for x in Attrs::new(item?.1) {
                let (ty, key) = x?;
                if ty != NFTA_SET_ELEM_KEY {
                    continue;
                }
                for v in Attrs::new(key) {
                    if let (NFTA_DATA_VALUE, k) = v? {
                        f(k);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Messages;

    /// A request's body reads back like a dump of the same object.
    #[test]
    fn rules_and_elements_read_back() {
        let mut b = MsgBuf::new();
        let r = begin_rule(&mut b, NlmF::CHANGE, 1, NFPROTO_IPV4, (b"t", b"c"));
        Expr::Counter.put(&mut b);
        Expr::Verdict(NF_DROP, None).put(&mut b);
        let mut ud = [0u8; 128];
        let n = comment_udata(b"hello", &mut ud);
        end_rule(&mut b, r, &ud[..n]);
        let tok = begin_elems(&mut b, NFT_MSG_NEWSETELEM, NlmF::CHANGE, 2, 2, (b"t", b"s"));
        elem(&mut b, &[1, 2, 3, 0], ElemData::None, &[]);
        elem(&mut b, &[4, 5, 6, 0, 7, 8, 9, 0], ElemData::None, b"x");
        end_elems(&mut b, tok);
        let msgs: Vec<_> = Messages::new(b.as_bytes()).map(|m| m.unwrap()).collect();
        let rule = parse_rule(&msgs[0].payload[4..]).unwrap();
        assert_eq!(rule.comment, Some(&b"hello"[..]));
        assert_eq!((rule.handle, rule.packets), (0, 0));
        let mut keys = Vec::new();
        elem_keys(&msgs[1].payload[4..], &mut |k| keys.push(k.to_vec())).unwrap();
        assert_eq!(keys, [vec![1, 2, 3, 0], vec![4, 5, 6, 0, 7, 8, 9, 0]]);
        assert!(parse_rule(&[9, 0, 1, 0]).is_err());
    }

    /// The bytes `nft` 1.0.6 stores for `typeof @th,96,24` and
    /// `typeof ip saddr . @th,96,24` (little-endian host).
    #[cfg(target_endian = "little")]
    #[test]
    fn typeof_udata_is_what_nft_writes() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let vni = KeyField::Raw(PayloadBase::Transport, 96, 24);
        let mut out = [0u8; 128];
        let n = typeof_udata(&[vni], &mut out);
        assert_eq!(
            hex(&out[..n]),
            "0004020000000326000407000000011e00040000000001040000000002040300000003046000000004041800\
             0000"
        );
        let n = typeof_udata(&[KeyField::Saddr(NFPROTO_IPV4), vni], &mut out);
        assert_eq!(
            hex(&out[..n]),
            "000400000000034600040d000000013e0014000407000000010c00040c00000001040b00000001260004070000\
             00011e000400000000010400000000020403000000030460000000040418000000"
        );
        let n = typeof_udata(&[KeyField::Saddr(NFPROTO_IPV6), vni], &mut out);
        assert!(hex(&out[..n]).contains("0c00040d0000000104080000000126"));
    }
}
