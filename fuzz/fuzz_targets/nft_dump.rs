//! nf_tables dumps: tables, rules and set elements, as the firewall backend and the VXLAN
//! guard read them back, down to the published ports rebuilt from port-map elements.
//! Every message goes to every decoder (its type is set to each one's).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netplumb::fuzzing;
use netplumb::wire::nft::{self, msg_type};
use netplumb::wire::{Messages, RawMsg};

fuzz_target!(|data: &[u8]| {
    for m in Messages::new(data).take(64) {
        let Ok(m) = m else { break };
        let body = m.payload.get(4..).unwrap_or_default();
        let af = m.payload.first().copied().unwrap_or(0);
        let table = RawMsg {
            ty: msg_type(nft::NFT_MSG_NEWTABLE),
            ..m
        };
        let _ = fuzzing::nft_table(&table, "netplumb");
        if let Ok(Some((_, _, comment))) = fuzzing::nft_rule(
            &RawMsg {
                ty: msg_type(nft::NFT_MSG_NEWRULE),
                ..m
            },
            af,
        ) {
            let _ = fuzzing::nft_network_of(comment.as_bytes());
        }
        if let Ok(r) = nft::parse_rule(body) {
            let _ = r.comment.map(fuzzing::nft_network_of);
        }
        let _ = nft::elem_keys(body, &mut |k| assert!(k.len() <= body.len()));
        let _ = nft::udata_comment(body);
        let Ok(elems) = fuzzing::nft_elements(body) else {
            continue;
        };
        for (key, value, comment) in elems {
            let net = fuzzing::nft_network_of(comment.as_bytes()).unwrap_or("");
            for (v6, any) in [(false, false), (false, true), (true, false), (true, true)] {
                if let Some(p) = fuzzing::nft_port(net, v6, any, &key, &value) {
                    assert_eq!(p.host_ip.is_none(), any, "{p:?}");
                    assert_eq!(p.container_ip.is_ipv6(), v6, "{p:?}");
                }
            }
        }
    }
});
