//! The rules of one network, tagged with its name so that they can be found and removed
//! exactly: outbound masquerade or SNAT, hairpin, invalid-state drop, established accept,
//! `--link` allowances, inter-container policy and isolation from other networks.
//!
//! Traffic between two ports of one bridge reaches these rules through the kernel's
//! bridge netfilter (`net.bridge.bridge-nf-call-iptables`, on by default); frames that
//! are not IP are kept apart by bridge-port isolation, which the network layer sets.

use std::net::IpAddr;

use super::batch::Batch;
use super::exprs::{self, ifname, reg, Bits, Fam, Prefix, V4};
use super::layout::{elem_tag, family_name, BRIDGES, FORWARD, POSTROUTING};
use crate::firewall::rule::{LinkAllow, NetworkRules};
use crate::wire::nft::{self, CmpOp, ElemData, Expr, NatType, PayloadBase};
use crate::wire::NlmF;

/// Context shared by the rules of one network and family.
struct Net<'a> {
    fam: Fam,
    table: &'a str,
    tag: &'a [u8],
    br: [u8; 16],
    br_len: usize,
}

impl Net<'_> {
    fn rule(&self, b: &mut Batch, chain: &str, exprs: &[Expr<'_>]) {
        b.rule(self.fam.af, self.table, chain, self.tag, exprs);
    }

    fn dev(&self, out: bool, op: CmpOp) -> [Expr<'_>; 2] {
        exprs::ifname_cmp(out, &self.br, op, self.br_len)
    }
}

/// Adds the rules of `net` for family `fam`.
pub(super) fn add(b: &mut Batch, fam: Fam, table: &str, net: &NetworkRules, tag: &str) {
    let subnets: Vec<Prefix> = net
        .subnets
        .iter()
        .filter(|s| Fam::of(&s.addr()) == fam)
        .map(Prefix::new)
        .collect();
    if subnets.is_empty() {
        return;
    }
    let n = Net {
        fam,
        table,
        tag: tag.as_bytes(),
        br: ifname(&net.bridge),
        br_len: net.bridge.len() + 1,
    };
    postrouting(b, &n, net, &subnets);
    forward(b, &n, net);
}

/// Adds network `net`'s element of the `bridges` set of family `fam` (present ones are
/// kept).
pub(super) fn bridge_elem(b: &mut Batch, fam: Fam, table: &str, net: &NetworkRules) {
    let mut ud = [0u8; 128];
    let len = nft::comment_udata(elem_tag(&net.name).as_bytes(), &mut ud);
    let seq = b.seq(|| {
        format!(
            "nft add element {} {table} bridges {{ {} }}",
            family_name(fam.af),
            net.bridge
        )
    });
    let buf = &mut b.buf;
    let tok = nft::begin_elems(
        buf,
        nft::NFT_MSG_NEWSETELEM,
        NlmF::REQUEST | NlmF::ACK | NlmF::CREATE,
        seq,
        fam.af,
        (table.as_bytes(), BRIDGES.as_bytes()),
    );
    nft::elem(buf, &ifname(&net.bridge), ElemData::None, &ud[..len]);
    nft::end_elems(buf, tok);
}

fn postrouting(b: &mut Batch, n: &Net<'_>, net: &NetworkRules, subnets: &[Prefix]) {
    let [o0, o1] = n.dev(true, CmpOp::Neq);
    let snat = net
        .snat
        .iter()
        .find(|a| Fam::of(a) == n.fam)
        .map(exprs::ip_bytes);
    for p in subnets {
        let [s0, s1, s2] = exprs::addr_in(n.fam, true, p, reg(0));
        if !net.internal {
            match &snat {
                Some(a) => {
                    let load = Expr::Load {
                        dreg: reg(0),
                        data: &a[..n.fam.len as usize],
                    };
                    let nat = Expr::Nat {
                        kind: NatType::Snat,
                        family: n.fam.af,
                        addr: reg(0),
                        port: None,
                    };
                    n.rule(b, POSTROUTING, &[s0, s1, s2, o0, o1, load, nat]);
                }
                None if net.masquerade => n.rule(b, POSTROUTING, &[s0, s1, s2, o0, o1, Expr::Masq]),
                None => {}
            }
        }
        // Hairpin: a container reaching a published port of its own network through a
        // host address; without it the reply would skip the reverse NAT.
        let dnat = Bits::new(nft::ct::STATUS_DNAT);
        let [c0, c1, c2] = exprs::ct_any(nft::ct::STATUS, &dnat);
        let [d0, d1, d2] = exprs::addr_in(n.fam, false, p, reg(0));
        n.rule(
            b,
            POSTROUTING,
            &[c0, c1, c2, s0, s1, s2, d0, d1, d2, Expr::Masq],
        );
    }
    if net.loopback && n.fam == V4 {
        // The host reaching a port published on 127.0.0.1 (needs route_localnet).
        let lo = Prefix::new(&"127.0.0.0/8".parse().unwrap_or_default());
        let dnat = Bits::new(nft::ct::STATUS_DNAT);
        let [c0, c1, c2] = exprs::ct_any(nft::ct::STATUS, &dnat);
        let [s0, s1, s2] = exprs::addr_in(n.fam, true, &lo, reg(0));
        let [b0, b1] = n.dev(true, CmpOp::Eq);
        n.rule(
            b,
            POSTROUTING,
            &[c0, c1, c2, s0, s1, s2, b0, b1, Expr::Masq],
        );
    }
}

fn forward(b: &mut Batch, n: &Net<'_>, net: &NetworkRules) {
    let (accept, drop) = (
        Expr::Verdict(nft::NF_ACCEPT, None),
        Expr::Verdict(nft::NF_DROP, None),
    );
    let [i0, i1] = n.dev(false, CmpOp::Eq);
    let [o0, o1] = n.dev(true, CmpOp::Eq);
    let invalid = Bits::new(nft::ct::STATE_INVALID);
    let [v0, v1, v2] = exprs::ct_any(nft::ct::STATE, &invalid);
    n.rule(b, FORWARD, &[o0, o1, v0, v1, v2, drop]);
    n.rule(b, FORWARD, &[i0, i1, v0, v1, v2, drop]);
    let est = Bits::new(nft::ct::STATE_ESTABLISHED | nft::ct::STATE_RELATED);
    let [e0, e1, e2] = exprs::ct_any(nft::ct::STATE, &est);
    n.rule(b, FORWARD, &[o0, o1, e0, e1, e2, accept]);
    for l in net.links.iter().filter(|l| Fam::of(&l.from) == n.fam) {
        for (dir, (src, dst)) in [(true, (l.from, l.to)), (false, (l.to, l.from))] {
            link_rule(n, l, (src, dst), dir, &mut |e| {
                n.rule(
                    b,
                    FORWARD,
                    &[
                        i0, i1, o0, o1, e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], accept,
                    ],
                )
            });
        }
    }
    n.rule(
        b,
        FORWARD,
        &[i0, i1, o0, o1, if net.icc { accept } else { drop }],
    );
    let isolate = Expr::Lookup {
        set: BRIDGES.as_bytes(),
        sreg: reg(0),
        dreg: None,
        invert: false,
    };
    let load_oif = Expr::Meta {
        key: nft::meta::OIFNAME,
        dreg: reg(0),
    };
    n.rule(b, FORWARD, &[i0, i1, load_oif, isolate, drop]);
    n.rule(
        b,
        FORWARD,
        &[i0, i1, if net.internal { drop } else { accept }],
    );
    n.rule(b, FORWARD, &[o0, o1, drop]);
}

/// The eight expressions of `ip saddr SRC ip daddr DST meta l4proto P th dport|sport PORT`.
fn link_rule(
    n: &Net<'_>,
    l: &LinkAllow,
    (src, dst): (IpAddr, IpAddr),
    dport: bool,
    emit: &mut dyn FnMut([Expr<'_>; 8]),
) {
    let (s, d) = (exprs::ip_bytes(&src), exprs::ip_bytes(&dst));
    let len = n.fam.len as usize;
    let proto = [l.proto.number()];
    let port = l.port.to_be_bytes();
    let load = |src: bool| Expr::Payload {
        base: PayloadBase::Network,
        offset: if src { n.fam.saddr } else { n.fam.daddr },
        len: n.fam.len,
        dreg: reg(0),
    };
    let cmp = |data| Expr::Cmp {
        sreg: reg(0),
        op: CmpOp::Eq,
        data,
    };
    let [p0, p1] = exprs::l4proto(&proto);
    let [t0, t1] = exprs::th_port(dport, &port);
    emit([
        load(true),
        cmp(&s[..len]),
        load(false),
        cmp(&d[..len]),
        p0,
        p1,
        t0,
        t1,
    ]);
}
