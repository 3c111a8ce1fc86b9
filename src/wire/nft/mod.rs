//! nf_tables requests over `NETLINK_NETFILTER` (`nft`, nf_tables(8) netlink ABI of
//! `<linux/netfilter/nf_tables.h>` and `<linux/netfilter/nfnetlink.h>`): batches, tables,
//! chains, sets and maps with their elements, rules, and the expressions netplumb's
//! rules use (payload, meta, cmp, bitwise, lookup, immediate/verdict, ct, fib, nat,
//! masq, counter).
//!
//! Every integer attribute of nf_tables is big-endian. Nested attributes carry
//! `NLA_F_NESTED`, as libnftnl writes them.
//!
//! Its parts: the constants with their kernel names, the messages, the expression
//! encoder, the userdata `nft` reads (comments, `typeof`), and the dump parsers. Every
//! item is reachable as `wire::nft::NAME`.

mod attr;
mod consts;
mod expr;
mod msg;
mod parse;
mod udata;

pub use consts::*;
pub use expr::Expr;
pub use msg::{
    batch, batch_checked, begin, begin_elems, begin_rule, chain, del_rule, dump, dump_elems, elem,
    end_elems, end_rule, getgen, msg_type, set, set_with_udata, table, BaseChain, ElemData,
    SetSpec,
};
pub use parse::{
    elem_keys, parse_gen, parse_rule, RuleInfo, NFTA_COUNTER_BYTES, NFTA_COUNTER_PACKETS,
};
pub use udata::{
    comment_udata, typeof_udata, udata_comment, KeyField, UDATA_COMMENT, UDATA_SET_KEYBYTEORDER,
    UDATA_SET_KEY_TYPEOF,
};
