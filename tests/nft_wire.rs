//! nf_tables messages written by `wire::nft`, parsed back by netlink-packet-netfilter:
//! every field we write is what that crate reads. No kernel involved. Also proves that a
//! warm buffer encodes a published port's elements with 0 heap allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, DataAttribute, ExpressionAttribute, ListAttribute, NfTablesMessage,
    RuleAttribute, SetAttribute, SetElementAttribute, SetElementList, TableAttribute,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};
use netplumb::wire::nft::{self, BaseChain, CmpOp, ElemData, Expr, PayloadBase, SetSpec};
use netplumb::wire::{Messages, MsgBuf, NlmF};

/// Counts the allocations of the current thread only (tests run in parallel).
struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn parse(bytes: &[u8]) -> Vec<NfTablesMessage> {
    Messages::new(bytes)
        .map(|m| {
            let m = m.unwrap();
            let msg = NetlinkMessage::<NetfilterMessage>::deserialize(m.bytes).unwrap();
            match msg.payload {
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::NfTables(n),
                    ..
                }) => n,
                other => panic!("not an nf_tables message: {other:?}"),
            }
        })
        .collect()
}

#[test]
fn table_chain_and_set_parse_back() {
    let mut b = MsgBuf::new();
    nft::table(
        &mut b,
        nft::NFT_MSG_NEWTABLE,
        NlmF::NEW_EXCL,
        1,
        nft::NFPROTO_IPV4,
        b"netplumb",
    );
    let base = BaseChain {
        hook: nft::hook::POSTROUTING,
        priority: 100,
        kind: b"nat",
        policy: nft::NF_ACCEPT,
    };
    nft::chain(
        &mut b,
        nft::NFT_MSG_NEWCHAIN,
        NlmF::NEW_EXCL,
        2,
        nft::NFPROTO_IPV4,
        (b"netplumb", b"postrouting"),
        Some(&base),
    );
    let spec = SetSpec {
        name: b"ports",
        id: 7,
        flags: nft::NFT_SET_MAP,
        key_type: 1,
        key_len: 12,
        data: Some((2, 8)),
    };
    nft::set(
        &mut b,
        nft::NFT_MSG_NEWSET,
        NlmF::NEW_EXCL,
        3,
        nft::NFPROTO_IPV4,
        b"netplumb",
        &spec,
    );
    let msgs = parse(b.as_bytes());
    let NfTablesMessage::NewTable(t) = &msgs[0] else {
        panic!("{:?}", msgs[0])
    };
    assert!(t
        .attributes
        .contains(&TableAttribute::Name("netplumb".into())));
    let NfTablesMessage::NewChain(c) = &msgs[1] else {
        panic!("{:?}", msgs[1])
    };
    assert!(c
        .attributes
        .contains(&ChainAttribute::Name("postrouting".into())));
    assert!(c.attributes.contains(&ChainAttribute::Type("nat".into())));
    assert!(c.attributes.contains(&ChainAttribute::Policy(1)));
    assert!(c
        .attributes
        .iter()
        .any(|a| matches!(a, ChainAttribute::Hook(h) if h.len() == 2)));
    let NfTablesMessage::NewSet(s) = &msgs[2] else {
        panic!("{:?}", msgs[2])
    };
    for want in [
        SetAttribute::Name("ports".into()),
        SetAttribute::KeyLen(12),
        SetAttribute::DataLen(8),
        SetAttribute::Id(7),
    ] {
        assert!(s.attributes.contains(&want), "{want:?} in {s:?}");
    }
}

#[test]
fn elements_and_rules_parse_back() {
    let mut b = MsgBuf::new();
    let tok = nft::begin_elems(
        &mut b,
        nft::NFT_MSG_NEWSETELEM,
        NlmF::NEW_EXCL,
        1,
        nft::NFPROTO_IPV4,
        (b"netplumb", b"ports"),
    );
    let mut ud = [0u8; 128];
    let n = nft::comment_udata(b"netplumb net=n1", &mut ud);
    nft::elem(
        &mut b,
        &[6, 0, 0, 0, 0x1f, 0x90, 0, 0],
        ElemData::Value(&[172, 17, 0, 2, 0, 80, 0, 0]),
        &ud[..n],
    );
    nft::end_elems(&mut b, tok);
    let r = nft::begin_rule(
        &mut b,
        NlmF::NEW_EXCL,
        2,
        nft::NFPROTO_IPV4,
        (b"netplumb", b"dnat"),
    );
    Expr::Meta {
        key: nft::meta::L4PROTO,
        dreg: 8,
    }
    .put(&mut b);
    Expr::Payload {
        base: PayloadBase::Transport,
        offset: 2,
        len: 2,
        dreg: 9,
    }
    .put(&mut b);
    Expr::Cmp {
        sreg: 9,
        op: CmpOp::Eq,
        data: &[0, 80],
    }
    .put(&mut b);
    Expr::Lookup {
        set: b"ports_any",
        sreg: 8,
        dreg: Some(8),
        invert: false,
    }
    .put(&mut b);
    Expr::Verdict(nft::NFT_JUMP, Some(b"user")).put(&mut b);
    nft::end_rule(&mut b, r, &ud[..n]);
    let msgs = parse(b.as_bytes());
    let NfTablesMessage::NewSetElement(e) = &msgs[0] else {
        panic!("{:?}", msgs[0])
    };
    assert!(e.attributes.contains(&SetElementList::Set("ports".into())));
    let elems = e.attributes.iter().find_map(|a| match a {
        SetElementList::Elements(v) => Some(v),
        _ => None,
    });
    let ListAttribute::Element(attrs) = &elems.unwrap()[0] else {
        panic!()
    };
    assert!(
        attrs.contains(&SetElementAttribute::Key(DataAttribute::Value(vec![
            6, 0, 0, 0, 0x1f, 0x90, 0, 0
        ])))
    );
    assert!(
        attrs.contains(&SetElementAttribute::Data(DataAttribute::Value(vec![
            172, 17, 0, 2, 0, 80, 0, 0
        ])))
    );
    assert!(attrs.contains(&SetElementAttribute::UserData(ud[..n].to_vec())));
    assert_eq!(nft::udata_comment(&ud[..n]), Some(&b"netplumb net=n1"[..]));
    let NfTablesMessage::NewRule(rule) = &msgs[1] else {
        panic!("{:?}", msgs[1])
    };
    assert!(rule
        .attributes
        .contains(&RuleAttribute::Chain("dnat".into())));
    let exprs = rule.attributes.iter().find_map(|a| match a {
        RuleAttribute::Expressions(v) => Some(v),
        _ => None,
    });
    let names: Vec<String> = exprs
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ListAttribute::Element(a) => a.iter().find_map(|x| match x {
                ExpressionAttribute::Name(n) => Some(n.clone()),
                _ => None,
            }),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["meta", "payload", "cmp", "lookup", "immediate"]);
}

#[test]
fn a_warm_buffer_encodes_port_elements_without_allocating() {
    let mut b = MsgBuf::new();
    let key = [6u8, 0, 0, 0, 172, 17, 0, 1, 0x1f, 0x90, 0, 0];
    let val = [172u8, 17, 0, 2, 0, 80, 0, 0];
    let mut ud = [0u8; 128];
    let encode = |b: &mut MsgBuf, ud: &mut [u8; 128]| {
        b.clear();
        nft::batch(b, false, 0);
        let n = nft::comment_udata(b"netplumb net=bridge", ud);
        let tok = nft::begin_elems(
            b,
            nft::NFT_MSG_NEWSETELEM,
            NlmF::NEW_EXCL,
            1,
            nft::NFPROTO_IPV4,
            (b"netplumb", b"ports"),
        );
        nft::elem(b, &key, ElemData::Value(&val), &ud[..n]);
        nft::end_elems(b, tok);
        nft::batch(b, true, 2);
    };
    encode(&mut b, &mut ud);
    let before = allocs();
    for _ in 0..100 {
        encode(&mut b, &mut ud);
    }
    let after = allocs();
    // The counter works: this allocates.
    let v: Vec<u8> = Vec::with_capacity(1);
    drop(v);
    assert!(allocs() > after, "the counter counts");
    assert_eq!(after - before, 0, "encoding allocated");
}
