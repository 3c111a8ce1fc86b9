//! Anti-spoofing on the bridge ports of networks with ICC off
//! ([`NetworkRules::endpoint`]): a frame that comes in on a bridge port and claims the
//! address of a registered container other than the one behind that port is dropped
//! before the bridge (or the host) acts on it.
//!
//! It needs the port a frame came in on, which the `ip` and `ip6` tables cannot see for
//! bridged traffic (there `iifname` is the bridge), so it lives in a `bridge` table of
//! the same name, created with the first endpoint and deleted with the last:
//!
//! ```text
//! table bridge netplumb {
//!   set addrs4  { type ipv4_addr }            # every registered address
//!   set owners4 { type ifname . ipv4_addr }   # and the port it belongs to
//!   set addrs6  { type ipv6_addr }
//!   set owners6 { type ifname . ipv6_addr }
//!   chain prerouting {
//!     type filter hook prerouting priority filter; policy accept;
//!     meta protocol ip  ip saddr @addrs4  iifname . ip saddr != @owners4 drop
//!     meta protocol ip6 ip6 saddr @addrs6 iifname . ip6 saddr != @owners6 drop
//!     meta protocol arp arp htype 1 ptype ip hlen 6 plen 4 arp saddr ip @addrs4 iifname . arp saddr ip != @owners4 drop
//!   }
//! }
//! ```
//!
//! Addresses nobody registered pass (a container may route other subnets), and so does
//! everything on networks with ICC on. Elements carry their network's tag, like the port
//! maps' elements.

use std::net::IpAddr;

use super::batch::{Batch, ELEMS_PER_MSG};
use super::dump::{self, TaggedElem};
use super::exprs::{ifname, reg};
use super::layout::{
    elem_tag, ADDRS4, ADDRS6, BRIDGE_CHAIN, BRIDGE_SETS, NFPROTO_BRIDGE, OWNERS4, OWNERS6,
};
use super::prune;
use super::skeleton::add_chain;
use crate::error::Result;
use crate::firewall::rule::NetworkRules;
use crate::socket::Socket;
use crate::wire::nft::{self, hook, BaseChain, CmpOp, ElemData, Expr, PayloadBase, SetSpec};
use crate::wire::NlmF;

use crate::wire::nft::datatype::{
    IFNAME as TYPE_IFNAME, IP6ADDR as TYPE_IP6ADDR, IPADDR as TYPE_IPADDR,
};

/// `NF_BR_PRI_FILTER_BRIDGED`: before the bridge (and br_netfilter) act on the frame.
const PRIORITY: i32 = -200;

/// How many rules the chain holds.
pub(super) const RULES: usize = 3;

/// The sets an address of this family goes in: (addresses, owners).
fn sets_of(addr: &IpAddr) -> (&'static str, &'static str) {
    if addr.is_ipv4() {
        (ADDRS4, OWNERS4)
    } else {
        (ADDRS6, OWNERS6)
    }
}

fn addr_bytes(addr: &IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The key of `dev . addr` in an owners set.
fn owner_key(dev: &str, addr: &IpAddr) -> Vec<u8> {
    let mut k = ifname(dev).to_vec();
    k.extend(addr_bytes(addr));
    k
}

/// The elements (set, key) that endpoints `eps` need.
pub(super) fn wanted(eps: &[(String, IpAddr)]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for (dev, addr) in eps {
        let (addrs, owners) = sets_of(addr);
        for e in [(addrs, addr_bytes(addr)), (owners, owner_key(dev, addr))] {
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// Adds the table, its sets, its chain and its rules to the batch.
pub(super) fn add_skeleton(b: &mut Batch, table: &str) {
    let af = NFPROTO_BRIDGE;
    let seq = b.seq(|| format!("nft add table bridge {table}"));
    nft::table(
        &mut b.buf,
        nft::NFT_MSG_NEWTABLE,
        NlmF::NEW_EXCL,
        seq,
        af,
        table.as_bytes(),
    );
    add_sets(b, table, &BRIDGE_SETS);
    add_chain(b, af, table, BRIDGE_CHAIN, Some(base()));
    add_rules(b, table);
}

/// The chain's hook: bridge prerouting, before the bridge decides anything.
pub(super) fn base() -> BaseChain<'static> {
    BaseChain {
        hook: hook::PREROUTING,
        priority: PRIORITY,
        kind: b"filter",
        policy: nft::NF_ACCEPT,
    }
}

/// Adds the creation of the sets among `names` to the batch.
pub(super) fn add_sets(b: &mut Batch, table: &str, names: &[&str]) {
    let specs = [
        (ADDRS4, TYPE_IPADDR, 4),
        (OWNERS4, TYPE_IFNAME << 6 | TYPE_IPADDR, 20),
        (ADDRS6, TYPE_IP6ADDR, 16),
        (OWNERS6, TYPE_IFNAME << 6 | TYPE_IP6ADDR, 32),
    ];
    for (i, (name, key_type, key_len)) in specs.into_iter().enumerate() {
        if !names.contains(&name) {
            continue;
        }
        let spec = SetSpec {
            name: name.as_bytes(),
            id: 16 + i as u32,
            flags: 0,
            key_type,
            key_len,
            data: None,
        };
        let seq = b.seq(|| format!("nft add set bridge {table} {name}"));
        nft::set(
            &mut b.buf,
            nft::NFT_MSG_NEWSET,
            NlmF::NEW_EXCL,
            seq,
            NFPROTO_BRIDGE,
            table.as_bytes(),
            &spec,
        );
    }
}

/// Appends the chain's rules.
pub(super) fn add_rules(b: &mut Batch, table: &str) {
    let lookup = |set: &'static str, invert| Expr::Lookup {
        set: set.as_bytes(),
        sreg: reg(0),
        dreg: None,
        invert,
    };
    let meta = |key, dreg| Expr::Meta { key, dreg };
    let load = |offset, len, dreg| Expr::Payload {
        base: PayloadBase::Network,
        offset,
        len,
        dreg,
    };
    let cmp = |data| Expr::Cmp {
        sreg: reg(0),
        op: CmpOp::Eq,
        data,
    };
    let drop = Expr::Verdict(nft::NF_DROP, None);
    // Ethernet/IPv4 ARP: htype 1, ptype 0x0800, hlen 6, plen 4.
    let arp_head = [0u8, 1, 8, 0, 6, 4];
    let guards = [
        Guard {
            ether: 0x0800u16.to_be_bytes(),
            head: None,
            saddr: (12, 4),
            sets: (ADDRS4, OWNERS4),
        },
        Guard {
            ether: 0x86ddu16.to_be_bytes(),
            head: None,
            saddr: (8, 16),
            sets: (ADDRS6, OWNERS6),
        },
        Guard {
            ether: 0x0806u16.to_be_bytes(),
            head: Some(&arp_head),
            saddr: (14, 4),
            sets: (ADDRS4, OWNERS4),
        },
    ];
    let iifname = meta(nft::meta::IIFNAME, reg(0));
    let proto = meta(nft::NFT_META_PROTOCOL, reg(0));
    for g in &guards {
        let (off, len) = g.saddr;
        let mut e = vec![proto, cmp(&g.ether)];
        if let Some(h) = g.head {
            e.extend([load(0, h.len() as u32, reg(0)), cmp(h)]);
        }
        e.extend([
            load(off, len, reg(0)),
            lookup(g.sets.0, false),
            iifname,
            load(off, len, reg(4)),
            lookup(g.sets.1, true),
            drop,
        ]);
        b.rule(NFPROTO_BRIDGE, table, BRIDGE_CHAIN, b"", &e);
    }
}

/// One anti-spoofing rule: frames of an ethertype (whose network header starts with
/// `head`), the source address at `saddr` (offset, length), checked against `sets`
/// (addresses, owners).
struct Guard<'a> {
    ether: [u8; 2],
    head: Option<&'a [u8]>,
    saddr: (u32, u32),
    sets: (&'static str, &'static str),
}

/// Adds (`NFT_MSG_NEWSETELEM`, tagged with `network`) or deletes elements to the batch,
/// one message per set and chunk.
pub(super) fn elems(
    b: &mut Batch,
    table: &str,
    msg: u16,
    network: &str,
    list: &[(&'static str, Vec<u8>)],
) {
    let add = msg == nft::NFT_MSG_NEWSETELEM;
    let mut ud = [0u8; 128];
    let n = if add {
        nft::comment_udata(elem_tag(network).as_bytes(), &mut ud)
    } else {
        0
    };
    for set in BRIDGE_SETS {
        let keys: Vec<&[u8]> = list
            .iter()
            .filter(|(s, _)| *s == set)
            .map(|(_, k)| k.as_slice())
            .collect();
        for chunk in keys.chunks(ELEMS_PER_MSG) {
            let verb = if add { "add" } else { "delete" };
            let seq = b.seq(|| {
                format!(
                    "nft {verb} element bridge {table} {set} ({} elements of network {network})",
                    chunk.len()
                )
            });
            let flags = if add {
                NlmF::REQUEST | NlmF::ACK | NlmF::CREATE
            } else {
                NlmF::CHANGE
            };
            let names = (table.as_bytes(), set.as_bytes());
            let tok = nft::begin_elems(&mut b.buf, msg, flags, seq, NFPROTO_BRIDGE, names);
            for k in chunk {
                nft::elem(&mut b.buf, k, ElemData::None, &ud[..n]);
            }
            nft::end_elems(&mut b.buf, tok);
        }
    }
}

/// Adds to batch `b` what makes the bridge table of our table `table` hold exactly the
/// enforced endpoints of `net` (creating the table with the first one, deleting it when
/// nothing else is left in it); reads the table (on `sock`) only when it exists.
pub(super) fn sync(
    sock: &mut Socket,
    b: &mut Batch,
    table: &str,
    net: &NetworkRules,
) -> Result<()> {
    let want = wanted(net.enforced_endpoints());
    let present = dump::tables(sock, table)?.contains(&NFPROTO_BRIDGE);
    if !present && want.is_empty() {
        return Ok(());
    }
    let have: Vec<TaggedElem> = if present {
        let held = prune::held(sock, table, NFPROTO_BRIDGE, &net.name)?;
        if want.is_empty() && !held.others {
            // The last guarded endpoint goes: so does the table.
            prune::del_table(b, NFPROTO_BRIDGE, table);
            return Ok(());
        }
        held.mine.elems
    } else {
        add_skeleton(b, table);
        Vec::new()
    };
    let add: Vec<(&'static str, Vec<u8>)> = want
        .iter()
        .filter(|(s, k)| !have.iter().any(|h| h.set == *s && h.key == *k))
        .cloned()
        .collect();
    let del: Vec<(&'static str, Vec<u8>)> = have
        .into_iter()
        .filter(|h| !want.iter().any(|(s, k)| h.set == *s && h.key == *k))
        .map(|h| (h.set, h.key))
        .collect();
    if !del.is_empty() {
        elems(b, table, nft::NFT_MSG_DELSETELEM, &net.name, &del);
    }
    if !add.is_empty() {
        elems(b, table, nft::NFT_MSG_NEWSETELEM, &net.name, &add);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_port_then_address() {
        let eps = vec![
            ("veth1".to_owned(), "10.0.0.2".parse().unwrap()),
            ("veth1".to_owned(), "fd00::2".parse().unwrap()),
        ];
        let w = wanted(&eps);
        assert_eq!(w.len(), 4);
        assert_eq!(w[0], (ADDRS4, vec![10, 0, 0, 2]));
        let mut k = b"veth1".to_vec();
        k.resize(16, 0);
        k.extend([10, 0, 0, 2]);
        assert_eq!(w[1], (OWNERS4, k));
        assert_eq!(w[3].1.len(), 32);
    }
}
