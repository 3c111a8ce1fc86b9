//! Property test: the reply parsers never panic, whatever the bytes. Random buffers and
//! random mutations of well-formed replies go through message framing, ACK/extended-ACK
//! decoding and attribute iteration. Deterministic (seeded), so a failure reproduces.

mod common;
use common::Rng;
use netplumb::wire::nlmsg::{NLMSGERR_ATTR_MSG, NLMSG_ERROR};
use netplumb::wire::parse::Attrs;
use netplumb::wire::{Ack, Messages, MsgBuf, NlmF};

/// Feeds `bytes` to every parser and counts what they accepted.
fn parse_all(bytes: &[u8]) -> usize {
    let mut seen = 0;
    for m in Messages::new(bytes).take(64) {
        let Ok(m) = m else { break };
        seen += 1;
        if m.ty == NLMSG_ERROR {
            let _ = Ack::parse(&m);
        }
        for a in Attrs::new(m.payload).take(256) {
            if a.is_err() {
                break;
            }
        }
    }
    seen
}

fn valid_reply() -> Vec<u8> {
    let mut b = MsgBuf::new();
    let m = b.begin_msg(NLMSG_ERROR, (NlmF::CAPPED | NlmF::ACK_TLVS).bits(), 3);
    b.put(&(-17i32).to_ne_bytes());
    let inner = b.begin_msg(16, 0x605, 3);
    b.end_msg(inner);
    b.attr_str(NLMSGERR_ATTR_MSG, b"File exists");
    b.end_msg(m);
    let m = b.begin_msg(16, 2, 4);
    b.put(&[0u8; 16]);
    b.attr_str(3, b"eth0");
    let n = b.begin_nest(18);
    b.attr_str(1, b"veth");
    b.end_nest(n);
    b.end_msg(m);
    b.as_bytes().to_vec()
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        parse_all(&bytes);
    }
}

#[test]
fn mutated_replies_never_panic() {
    let good = valid_reply();
    assert_eq!(parse_all(&good), 2, "the unmutated reply parses fully");
    let ack = Ack::parse(&Messages::new(&good).next().unwrap().unwrap()).unwrap();
    assert_eq!((ack.errno, ack.msg), (17, Some("File exists")));
    let mut rng = Rng(42);
    for _ in 0..50_000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len());
            b[at] = rng.next() as u8;
        }
        b.truncate(rng.below(b.len() + 1));
        parse_all(&b);
    }
}
