//! nf_tables and nfnetlink constants, with their kernel names
//! (`<linux/netfilter/nf_tables.h>`, `<linux/netfilter/nfnetlink.h>`,
//! `<linux/netfilter.h>`), and the kernel's small enums as Rust enums.

/// `NFNL_SUBSYS_NFTABLES`.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN`.
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFNL_BATCH_GENID`: the ruleset generation a batch was built against (big-endian
/// `u32`, in `BATCH_BEGIN`); the kernel refuses the whole batch with `ERESTART` when the
/// ruleset has changed since.
pub const NFNL_BATCH_GENID: u16 = 1;

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
/// `NFT_MSG_GETGEN`: asks for the current ruleset generation.
pub const NFT_MSG_GETGEN: u16 = 16;
/// `NFTA_GEN_ID`: the ruleset generation (big-endian `u32`, in `NFT_MSG_NEWGEN`).
pub const NFTA_GEN_ID: u16 = 1;
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
