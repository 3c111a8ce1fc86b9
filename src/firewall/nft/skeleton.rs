//! The objects every network shares, created once per namespace in one batch: our
//! tables, base chains at their hooks and priorities, the port maps and sets, the users'
//! chain, and the handful of rules that consult the maps.

use super::batch::Batch;
use super::exprs::{self, reg, Bits, Fam, V4};
use super::layout::{
    family_name, BRIDGES, CHAINS, DNAT, FORWARD, OUTPUT, PORTS, PORTS_ANY, POSTROUTING, PREROUTING,
    PUBLISHED, SET_NAMES, USER,
};
use crate::wire::nft::{self, hook, BaseChain, CmpOp, Expr, NatType, PayloadBase, SetSpec};
use crate::wire::NlmF;

// `nft` data type numbers (for `nft list` to print keys; the kernel ignores them).
use crate::wire::nft::datatype::{
    IFNAME as TYPE_IFNAME, INET_PROTOCOL as TYPE_INET_PROTOCOL, INET_SERVICE as TYPE_INET_SERVICE,
    IP6ADDR as TYPE_IP6ADDR, IPADDR as TYPE_IPADDR,
};

const fn concat(types: &[u32]) -> u32 {
    let mut t = 0;
    let mut i = 0;
    while i < types.len() {
        t = (t << 6) | types[i];
        i += 1;
    }
    t
}

const DSTNAT: i32 = -100;
const FILTER: i32 = 0;
const SRCNAT: i32 = 100;

fn addr_type(fam: Fam) -> u32 {
    if fam == V4 {
        TYPE_IPADDR
    } else {
        TYPE_IP6ADDR
    }
}

/// Adds the creation of the sets among `names` to the batch.
pub(super) fn sets(b: &mut Batch, fam: Fam, table: &str, names: &[&str]) {
    let at = addr_type(fam);
    let (p, s) = (TYPE_INET_PROTOCOL, TYPE_INET_SERVICE);
    let value = Some((concat(&[at, s]), fam.len + 4));
    let specs = [
        (PORTS, concat(&[p, at, s]), 8 + fam.len, value),
        (PORTS_ANY, concat(&[p, s]), 8, value),
        (PUBLISHED, concat(&[at, p, s, s]), fam.len + 12, None),
        (BRIDGES, TYPE_IFNAME, 16, None),
    ];
    for (i, (name, key_type, key_len, data)) in specs.into_iter().enumerate() {
        if !names.contains(&name) {
            continue;
        }
        let spec = SetSpec {
            name: name.as_bytes(),
            id: i as u32 + 1,
            flags: if data.is_some() { nft::NFT_SET_MAP } else { 0 },
            key_type,
            key_len,
            data,
        };
        let seq = b.seq(|| format!("nft add set {} {table} {name}", family_name(fam.af)));
        nft::set(
            &mut b.buf,
            nft::NFT_MSG_NEWSET,
            NlmF::NEW_EXCL,
            seq,
            fam.af,
            table.as_bytes(),
            &spec,
        );
    }
}

/// Adds the creation of one chain (a base chain when `base` is given) to the batch.
pub(super) fn add_chain(
    b: &mut Batch,
    af: u8,
    table: &str,
    name: &str,
    base: Option<BaseChain<'_>>,
) {
    let seq = b.seq(|| format!("nft add chain {} {table} {name}", family_name(af)));
    let names = (table.as_bytes(), name.as_bytes());
    nft::chain(
        &mut b.buf,
        nft::NFT_MSG_NEWCHAIN,
        NlmF::NEW_EXCL,
        seq,
        af,
        names,
        base.as_ref(),
    );
}

/// Adds the skeleton of family `fam` to the batch. The
/// table is created with `NLM_F_EXCL`, so two processes racing to create it cannot both
/// succeed: the loser's batch fails as a whole and it retries without the skeleton.
pub(super) fn add(b: &mut Batch, fam: Fam, table: &str) {
    let seq = b.seq(|| format!("nft add table {} {table}", family_name(fam.af)));
    nft::table(
        &mut b.buf,
        nft::NFT_MSG_NEWTABLE,
        NlmF::NEW_EXCL,
        seq,
        fam.af,
        table.as_bytes(),
    );
    sets(b, fam, table, SET_NAMES.as_slice());
    chains(b, fam.af, table, CHAINS.as_slice());
    for chain in CHAINS {
        chain_rules(b, fam, table, chain);
    }
}

/// Adds the creation of chains `names` (base chains at their hooks) to the batch.
pub(super) fn chains(b: &mut Batch, af: u8, table: &str, names: &[&str]) {
    let base = |hook, priority, kind: &'static [u8]| {
        Some(BaseChain {
            hook,
            priority,
            kind,
            policy: nft::NF_ACCEPT,
        })
    };
    for name in names {
        let spec = match *name {
            PREROUTING => base(hook::PREROUTING, DSTNAT, b"nat"),
            OUTPUT => base(hook::OUTPUT, DSTNAT, b"nat"),
            POSTROUTING => base(hook::POSTROUTING, SRCNAT, b"nat"),
            FORWARD => base(hook::FORWARD, FILTER, b"filter"),
            _ => None,
        };
        add_chain(b, af, table, name, spec);
    }
}

/// Appends the shared rules of chain `chain` (none for `postrouting` and the users'
/// chain).
pub(super) fn chain_rules(b: &mut Batch, fam: Fam, table: &str, chain: &str) {
    match chain {
        PREROUTING => prerouting(b, fam, table),
        OUTPUT => b.rule(
            fam.af,
            table,
            OUTPUT,
            b"",
            &[Expr::Verdict(nft::NFT_JUMP, Some(DNAT.as_bytes()))],
        ),
        DNAT => dnat(b, fam, table),
        FORWARD => forward(b, fam, table),
        _ => {}
    }
}

fn prerouting(b: &mut Batch, fam: Fam, table: &str) {
    // A new connection to a loopback address that arrives from an interface is dropped
    // (CVE-2020-8558): a port published on 127.0.0.1 stays reachable from the host alone,
    // and `route_localnet` on a bridge (set for those ports) does not open the host's
    // own 127.0.0.1 services to the containers. The host's own connections never pass
    // here: their NAT was decided in `output`, and a nat chain sees only new ones.
    let lo = if fam == V4 { "127.0.0.0/8" } else { "::1/128" };
    let p = exprs::Prefix::new(&lo.parse().unwrap_or_default());
    let [a, m, c] = exprs::addr_in(fam, false, &p, reg(0));
    b.rule(
        fam.af,
        table,
        PREROUTING,
        b"",
        &[a, m, c, Expr::Verdict(nft::NF_DROP, None)],
    );
    b.rule(
        fam.af,
        table,
        PREROUTING,
        b"",
        &[Expr::Verdict(nft::NFT_JUMP, Some(DNAT.as_bytes()))],
    );
}

fn dnat(b: &mut Batch, fam: Fam, table: &str) {
    let nat = Expr::Nat {
        kind: NatType::Dnat,
        family: fam.af,
        addr: reg(0),
        port: Some(fam.after_addr(reg(0))),
    };
    let lookup = |set: &'static str| Expr::Lookup {
        set: set.as_bytes(),
        sreg: reg(0),
        dreg: Some(reg(0)),
        invert: false,
    };
    let (k, _) = exprs::load_port_key(fam, Some(false), reg(0));
    b.rule(
        fam.af,
        table,
        DNAT,
        b"",
        &[k[0], k[1], k[2], lookup(PORTS), nat],
    );
    let local = nft::RTN_LOCAL.to_ne_bytes();
    let (k, n) = exprs::load_port_key(fam, None, reg(0));
    debug_assert_eq!(n, 2);
    let fib = [
        Expr::FibDaddrType { dreg: reg(0) },
        Expr::Cmp {
            sreg: reg(0),
            op: CmpOp::Eq,
            data: &local,
        },
    ];
    b.rule(
        fam.af,
        table,
        DNAT,
        b"",
        &[fib[0], fib[1], k[0], k[1], lookup(PORTS_ANY), nat],
    );
}

fn forward(b: &mut Batch, fam: Fam, table: &str) {
    b.rule(
        fam.af,
        table,
        FORWARD,
        b"",
        &[Expr::Verdict(nft::NFT_JUMP, Some(USER.as_bytes()))],
    );
    // A connection our maps DNATed to a container port is let through:
    // ct status dnat  ip daddr . meta l4proto . th dport . ct original proto-dst @published
    let dnat = Bits::new(nft::ct::STATUS_DNAT);
    let [c0, c1, c2] = exprs::ct_any(nft::ct::STATUS, &dnat);
    let r = fam.after_addr(reg(0));
    let load = [
        Expr::Payload {
            base: PayloadBase::Network,
            offset: fam.daddr,
            len: fam.len,
            dreg: reg(0),
        },
        Expr::Meta {
            key: nft::meta::L4PROTO,
            dreg: r,
        },
        Expr::Payload {
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
            dreg: r + 1,
        },
        Expr::CtOriginal {
            key: nft::ct::PROTO_DST,
            dreg: r + 2,
        },
    ];
    let lookup = Expr::Lookup {
        set: PUBLISHED.as_bytes(),
        sreg: reg(0),
        dreg: None,
        invert: false,
    };
    let accept = Expr::Verdict(nft::NF_ACCEPT, None);
    b.rule(
        fam.af,
        table,
        FORWARD,
        b"",
        &[
            c0, c1, c2, load[0], load[1], load[2], load[3], lookup, accept,
        ],
    );
}
