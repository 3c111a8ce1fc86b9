//! Netlink replies: message framing, `NLMSG_ERROR` acknowledgements with extended-ACK TLVs,
//! and the link, address, route, neighbour and namespace-id dump decoders. Every message's
//! payload goes to every decoder (its type is set to each one's), and its attributes are
//! walked at each family header's offset, nested ones too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netplumb::fuzzing;
use netplumb::wire::nlmsg::NLMSG_ERROR;
use netplumb::wire::parse::{i32_of, u32_of, Attrs};
use netplumb::wire::{self, Ack, Messages, RawMsg};

/// Walks `buf` as attributes, and each payload as nested attributes, `depth` levels down.
fn walk(buf: &[u8], depth: u32) {
    for a in Attrs::new(buf).take(512) {
        let Ok((_, payload)) = a else { break };
        let _ = (u32_of(payload), i32_of(payload));
        if depth > 0 {
            walk(payload, depth - 1);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for m in Messages::new(data).take(64) {
        let Ok(m) = m else { break };
        let _ = Ack::parse(&RawMsg {
            ty: NLMSG_ERROR,
            ..m
        });
        let _ = fuzzing::link(&RawMsg {
            ty: wire::link::RTM_NEWLINK,
            ..m
        });
        let _ = fuzzing::addr(&RawMsg {
            ty: wire::addr::RTM_NEWADDR,
            ..m
        });
        let _ = fuzzing::route(&RawMsg {
            ty: wire::route::RTM_NEWROUTE,
            ..m
        });
        let _ = fuzzing::neigh(&RawMsg {
            ty: wire::neigh::RTM_NEWNEIGH,
            ..m
        });
        let _ = fuzzing::nsid(&RawMsg {
            ty: wire::nsid::RTM_NEWNSID,
            ..m
        });
        // ifinfomsg / ifaddrmsg / rtmsg and ndmsg / rtgenmsg headers.
        for at in [16, 8, 12, 4] {
            walk(m.payload.get(at..).unwrap_or_default(), 3);
        }
    }
});
