//! Reading our tables back: which families have them, the rules and elements a network
//! owns, and the whole state. Tables are decoded with netlink-packet-netfilter; rules
//! and set elements (which can be thousands) with the crate's own single-pass walker.

use netlink_packet_core::Parseable;
use netlink_packet_netfilter::nftables::{TableAttribute, TableMessage};

use super::elems;
use super::layout::{
    family_name, network_of, BRIDGE_SETS, NFPROTO_BRIDGE, PORTS, PORTS_ANY, SET_NAMES,
};
use crate::error::{Errno, Error, Op, Result};
use crate::firewall::state::FirewallState;
use crate::socket::Socket;
use crate::wire::nft::{self, msg_type};
use crate::wire::parse::Attrs;
use crate::wire::{self, MsgBuf, RawMsg};

/// A rule of ours that carries a network's tag.
#[derive(Debug, Clone)]
pub(crate) struct TaggedRule {
    pub af: u8,
    pub chain: String,
    pub handle: u64,
    pub comment: String,
}

/// A set element of ours that carries a network's tag.
#[derive(Debug, Clone)]
pub(super) struct TaggedElem {
    pub af: u8,
    pub set: &'static str,
    pub key: Vec<u8>,
}

/// What a network owns in our tables.
#[derive(Debug, Default)]
pub(super) struct Tagged {
    pub rules: Vec<TaggedRule>,
    pub elems: Vec<TaggedElem>,
}

fn family_of(m: &RawMsg<'_>) -> u8 {
    m.payload.first().copied().unwrap_or(0)
}

fn body<'a>(m: &RawMsg<'a>) -> &'a [u8] {
    m.payload.get(4..).unwrap_or(&[])
}

fn malformed(_: netlink_packet_core::DecodeError) -> Error {
    Error::Protocol(wire::Error::BadLength("nf_tables message"))
}

/// The current ruleset generation (`NFT_MSG_GETGEN`): a batch sent with it
/// ([`nft::batch_checked`]) applies only if nothing changed the ruleset since.
pub(super) fn generation(sock: &mut Socket) -> Result<u32> {
    let mut buf = MsgBuf::with_capacity(32);
    let seq = sock.next_seq(1);
    nft::getgen(&mut buf, seq);
    let mut gen = None;
    let describe = |_| (Op::GetFirewall, "nf_tables ruleset generation".to_owned());
    sock.transact(&buf, seq, 1, &describe, &mut |m| {
        if m.ty == msg_type(nft::NFT_MSG_NEWGEN) {
            gen = nft::parse_gen(body(m));
        }
        Ok(())
    })?;
    gen.ok_or(Error::Protocol(wire::Error::BadLength(
        "nf_tables generation",
    )))
}

/// The families (`NFPROTO_*`) in which table `table` exists.
pub(super) fn tables(sock: &mut Socket, table: &str) -> Result<Vec<u8>> {
    let out = std::cell::RefCell::new(Vec::new());
    let enc = |b: &mut MsgBuf, s| nft::dump(b, nft::NFT_MSG_GETTABLE, s, 0, None);
    sock.dump(
        "nf_tables tables",
        Op::GetFirewall,
        &enc,
        &mut || out.borrow_mut().clear(),
        &mut |m| {
            out.borrow_mut().extend(table_family(m, table)?);
            Ok(())
        },
    )?;
    Ok(out.into_inner())
}

/// The family of a table-dump message if it is table `table`; `None` for any other.
pub(crate) fn table_family(m: &RawMsg<'_>, table: &str) -> Result<Option<u8>> {
    if m.ty != msg_type(nft::NFT_MSG_NEWTABLE) {
        return Ok(None);
    }
    let t = TableMessage::parse(body(m)).map_err(malformed)?;
    let ours = t
        .attributes
        .iter()
        .any(|a| matches!(a, TableAttribute::Name(n) if n == table));
    Ok(ours.then(|| family_of(m)))
}

/// Runs a dump, treating a missing table or set as empty: `on` adds what each message
/// says to the list returned. A dump the kernel interrupted (the ruleset changed under
/// it) is read again from an empty list.
fn dump_or_empty<T>(
    sock: &mut Socket,
    what: &'static str,
    enc: &dyn Fn(&mut MsgBuf, u32),
    on: &mut dyn FnMut(&RawMsg<'_>, &mut Vec<T>) -> Result<()>,
) -> Result<Vec<T>> {
    let out = std::cell::RefCell::new(Vec::new());
    let reset = &mut || out.borrow_mut().clear();
    match sock.dump(what, Op::GetFirewall, enc, reset, &mut |m| {
        on(m, &mut out.borrow_mut())
    }) {
        Ok(()) => Ok(out.into_inner()),
        Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn comment_of(udata: &[u8]) -> Option<String> {
    nft::udata_comment(udata)
        .and_then(|c| std::str::from_utf8(c).ok())
        .map(str::to_owned)
}

/// Every rule of ours in family `af`, with its chain, handle and comment.
fn rules(sock: &mut Socket, table: &str, af: u8) -> Result<Vec<TaggedRule>> {
    let enc = |b: &mut MsgBuf, s| nft::dump(b, nft::NFT_MSG_GETRULE, s, af, Some(table.as_bytes()));
    dump_or_empty(sock, "nf_tables rules", &enc, &mut |m, out| {
        out.extend(tagged_rule(m, af)?);
        Ok(())
    })
}

/// A rule-dump message of family `af` with its chain, handle and comment; `None` for any
/// other message.
pub(crate) fn tagged_rule(m: &RawMsg<'_>, af: u8) -> Result<Option<TaggedRule>> {
    if m.ty != msg_type(nft::NFT_MSG_NEWRULE) || family_of(m) != af {
        return Ok(None);
    }
    let mut t = TaggedRule {
        af,
        chain: String::new(),
        handle: 0,
        comment: String::new(),
    };
    // Our own walker, which reads only these three: netlink-packet-netfilter 0.4 decodes
    // every expression and panics on some malformed ones (fuzz/README.md).
    let bad = || Error::Protocol(wire::Error::BadLength("nf_tables rule"));
    for a in Attrs::new(body(m)) {
        match a? {
            (nft::NFTA_RULE_CHAIN, c) => {
                let c = c.strip_suffix(&[0]).unwrap_or(c);
                t.chain = String::from_utf8(c.to_vec()).map_err(|_| bad())?;
            }
            (nft::NFTA_RULE_HANDLE, h) => {
                t.handle = u64::from_be_bytes(h.try_into().map_err(|_| bad())?);
            }
            (nft::NFTA_RULE_USERDATA, u) => t.comment = comment_of(u).unwrap_or_default(),
            _ => {}
        }
    }
    Ok(Some(t))
}

/// One dumped element: key, data, comment.
pub(crate) type Elem = (Vec<u8>, Vec<u8>, String);

fn elements(sock: &mut Socket, table: &str, af: u8, set: &str) -> Result<Vec<Elem>> {
    let enc = |b: &mut MsgBuf, s| nft::dump_elems(b, s, af, (table.as_bytes(), set.as_bytes()));
    dump_or_empty(sock, "nf_tables set elements", &enc, &mut |m, out| {
        if m.ty == msg_type(nft::NFT_MSG_NEWSETELEM) {
            parse_elements(body(m), out)?;
        }
        Ok(())
    })
}

/// The `NFTA_DATA_VALUE` inside a nested data attribute.
fn data_value(nested: &[u8]) -> Result<Vec<u8>> {
    for a in Attrs::new(nested) {
        let (ty, v) = a?;
        if ty == nft::NFTA_DATA_VALUE {
            return Ok(v.to_vec());
        }
    }
    Ok(Vec::new())
}

/// Walks a set-element dump message with the crate's own attribute iterator: one pass,
/// no intermediate tree (large maps are read back in linear time).
pub(crate) fn parse_elements(msg: &[u8], out: &mut Vec<Elem>) -> Result<()> {
    for a in Attrs::new(msg) {
        let (ty, list) = a?;
        if ty != nft::NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for item in Attrs::new(list) {
            let (_, attrs) = item?;
            let mut e: Elem = Default::default();
            for x in Attrs::new(attrs) {
                match x? {
                    (nft::NFTA_SET_ELEM_KEY, v) => e.0 = data_value(v)?,
                    (nft::NFTA_SET_ELEM_DATA, v) => e.1 = data_value(v)?,
                    (nft::NFTA_SET_ELEM_USERDATA, v) => e.2 = comment_of(v).unwrap_or_default(),
                    _ => {}
                }
            }
            out.push(e);
        }
    }
    Ok(())
}

/// The rules and (with `elems`) the set elements tagged with `network`, the bridge
/// table's included.
pub(super) fn tagged(sock: &mut Socket, table: &str, network: &str, elems: bool) -> Result<Tagged> {
    let mut t = Tagged::default();
    let mine = |c: &str| network_of(c.as_bytes()) == Some(network);
    for af in [nft::NFPROTO_IPV4, nft::NFPROTO_IPV6] {
        t.rules.extend(
            rules(sock, table, af)?
                .into_iter()
                .filter(|r| mine(&r.comment)),
        );
        if elems {
            t.elems
                .extend(tagged_elems(sock, table, af, &SET_NAMES, network)?);
        }
    }
    if elems {
        let (af, sets) = (NFPROTO_BRIDGE, BRIDGE_SETS);
        t.elems
            .extend(tagged_elems(sock, table, af, &sets, network)?);
    }
    Ok(t)
}

/// The elements of `sets` (of family `af`) tagged with `network`; missing tables and
/// sets are empty.
pub(super) fn tagged_elems(
    sock: &mut Socket,
    table: &str,
    af: u8,
    sets: &[&'static str],
    network: &str,
) -> Result<Vec<TaggedElem>> {
    let mut out = Vec::new();
    for &set in sets {
        for (key, _, comment) in elements(sock, table, af, set)? {
            if network_of(comment.as_bytes()) == Some(network) {
                out.push(TaggedElem { af, set, key });
            }
        }
    }
    Ok(out)
}

/// Every element of set `set` (of family `af`): key, data, comment. A missing table or
/// set is empty.
pub(super) fn set_elements(sock: &mut Socket, table: &str, af: u8, set: &str) -> Result<Vec<Elem>> {
    elements(sock, table, af, set)
}

/// Every rule of our table in family `af`, in chain order: chain, handle and comment.
pub(super) fn all_rules(sock: &mut Socket, table: &str, af: u8) -> Result<Vec<TaggedRule>> {
    rules(sock, table, af)
}

/// The names of the chains (`NFT_MSG_GETCHAIN`) or sets (`NFT_MSG_GETSET`) of our table
/// in family `af`; none when the table is missing.
pub(super) fn names(sock: &mut Socket, table: &str, af: u8, get: u16) -> Result<Vec<String>> {
    let (new, name_attr) = match get {
        nft::NFT_MSG_GETCHAIN => (nft::NFT_MSG_NEWCHAIN, nft::NFTA_CHAIN_NAME),
        _ => (nft::NFT_MSG_NEWSET, nft::NFTA_SET_NAME),
    };
    let enc = |b: &mut MsgBuf, s| nft::dump(b, get, s, af, Some(table.as_bytes()));
    dump_or_empty(sock, "nf_tables chains or sets", &enc, &mut |m, out| {
        if m.ty != msg_type(new) || family_of(m) != af {
            return Ok(());
        }
        let mut tbl = None;
        let mut name = None;
        for a in Attrs::new(body(m)) {
            match a? {
                (1, v) => tbl = Some(v),
                (t, v) if t == name_attr => name = Some(v),
                _ => {}
            }
        }
        let text = |v: &[u8]| {
            String::from_utf8_lossy(v.split(|&c| c == 0).next().unwrap_or(&[])).into_owned()
        };
        if let (Some(t), Some(n)) = (tbl, name) {
            if text(t) == table {
                out.push(text(n));
            }
        }
        Ok(())
    })
}

/// The whole state of our tables.
pub(super) fn state(sock: &mut Socket, table: &str) -> Result<FirewallState> {
    let mut st = FirewallState::default();
    let present = tables(sock, table)?;
    for af in [nft::NFPROTO_IPV4, nft::NFPROTO_IPV6] {
        if !present.contains(&af) {
            continue;
        }
        st.families.push(family_name(af));
        for r in rules(sock, table, af)? {
            if let Some(net) = network_of(r.comment.as_bytes()) {
                match st.networks.iter().position(|n| n == net) {
                    Some(i) => st.rules[i] += 1,
                    None => {
                        st.networks.push(net.to_owned());
                        st.rules.push(1);
                    }
                }
            }
        }
        for (set, any) in [(PORTS, false), (PORTS_ANY, true)] {
            for (key, value, comment) in elements(sock, table, af, set)? {
                let net = network_of(comment.as_bytes()).unwrap_or("");
                if let Some(p) = elems::decode(net, af == nft::NFPROTO_IPV6, any, &key, &value) {
                    st.ports.push(p);
                }
            }
        }
    }
    st.sort();
    Ok(st)
}
