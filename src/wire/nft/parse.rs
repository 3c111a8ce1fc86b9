//! Dump parsers: what a dumped rule says about itself (handle, comment, packet
//! counters) and the keys of a set-element dump.

use super::consts::*;
use super::udata::udata_comment;
use crate::wire::parse::Attrs;
use crate::wire::Error;

/// `NFTA_COUNTER_BYTES` (big-endian `u64`, in a dumped `counter` expression).
pub const NFTA_COUNTER_BYTES: u16 = 1;
/// `NFTA_COUNTER_PACKETS` (big-endian `u64`).
pub const NFTA_COUNTER_PACKETS: u16 = 2;

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

/// The ruleset generation (`NFTA_GEN_ID`) of an `NFT_MSG_NEWGEN` message; `msg` is the
/// payload after `struct nfgenmsg`. `None` when it is missing or short.
pub fn parse_gen(msg: &[u8]) -> Option<u32> {
    Attrs::new(msg)
        .filter_map(Result::ok)
        .find(|(t, _)| *t == NFTA_GEN_ID)
        .and_then(|(_, v)| <[u8; 4]>::try_from(v.get(..4)?).ok())
        .map(u32::from_be_bytes)
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
    use crate::wire::nft::expr::Expr;
    use crate::wire::nft::msg::{begin_elems, begin_rule, elem, end_elems, end_rule, ElemData};
    use crate::wire::nft::udata::comment_udata;
    use crate::wire::{Messages, MsgBuf, NlmF};

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

    /// `BATCH_BEGIN` with the generation, byte for byte, and the generation read back
    /// from an `NFT_MSG_NEWGEN`.
    #[test]
    fn checked_batch_begin_and_generation() {
        use crate::wire::nft::msg::{batch_checked, getgen};
        let mut b = MsgBuf::new();
        batch_checked(&mut b, 7, 0x0102_0304);
        #[rustfmt::skip]
        let want: [u8; 28] = [
            28, 0, 0, 0,        // nlmsg_len
            0x10, 0,            // NFNL_MSG_BATCH_BEGIN
            1, 0,               // NLM_F_REQUEST
            7, 0, 0, 0,         // seq
            0, 0, 0, 0,         // pid
            0, 0, 0, 10,        // nfgenmsg: AF_UNSPEC, version 0, res_id NFNL_SUBSYS_NFTABLES (be)
            8, 0, 1, 0,         // NFNL_BATCH_GENID
            1, 2, 3, 4,         // the generation (be)
        ];
        assert_eq!(b.as_bytes(), want);
        b.clear();
        getgen(&mut b, 9);
        let m = Messages::new(b.as_bytes()).next().unwrap().unwrap();
        assert_eq!(m.ty, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN);
        assert_eq!(parse_gen(&m.payload[4..]), None, "a request carries none");
        assert_eq!(parse_gen(&[8, 0, 1, 0, 0, 0, 1, 2]), Some(0x102));
        assert_eq!(parse_gen(&[6, 0, 1, 0, 0, 0]), None);
    }
}
