//! Published ports in a batch: each port is one element of `ports` (with a host address)
//! or `ports_any` (without), and one of `published`, in its family's table; publishing or
//! withdrawing ports adds or removes those elements, many to a message.

use super::batch::{Batch, ELEMS_PER_MSG};
use super::elems;
use super::exprs::{Fam, FAMILIES};
use super::layout::{elem_tag, family_name, PORTS, PORTS_ANY, PUBLISHED};
use crate::firewall::rule::PortRule;
use crate::wire::nft::{self, ElemData};
use crate::wire::NlmF;

/// Adds to the batch the addition (`NFT_MSG_NEWSETELEM`) or the removal of the elements
/// of `ports` in our table `table`: per family and set, one message per
/// [`ELEMS_PER_MSG`] elements.
pub(super) fn write(b: &mut Batch, table: &str, msg: u16, ports: &[PortRule]) {
    for fam in FAMILIES {
        for (set, pick) in [(PORTS, 0), (PORTS_ANY, 1), (PUBLISHED, 2)] {
            let chosen: Vec<&PortRule> = ports
                .iter()
                .filter(|p| Fam::of(&p.container_ip) == fam)
                .filter(|p| pick == 2 || p.host_ip.is_some() == (pick == 0))
                .collect();
            for chunk in chosen.chunks(ELEMS_PER_MSG) {
                message(b, msg, fam, (table, set), chunk, pick == 2);
            }
        }
    }
}

fn message(
    b: &mut Batch,
    msg: u16,
    fam: Fam,
    (table, set): (&str, &str),
    ports: &[&PortRule],
    published: bool,
) {
    let verb = if msg == nft::NFT_MSG_NEWSETELEM {
        "add"
    } else {
        "destroy"
    };
    let seq = b.seq(|| {
        let first = ports.first().map(|p| p.to_string()).unwrap_or_default();
        format!(
            "nft {verb} element {} {table} {set} ({} elements: {first}, ...)",
            family_name(fam.af),
            ports.len()
        )
    });
    let flags = if msg == nft::NFT_MSG_NEWSETELEM {
        NlmF::REQUEST | NlmF::ACK | NlmF::CREATE
    } else {
        NlmF::CHANGE
    };
    let buf = &mut b.buf;
    let tok = nft::begin_elems(
        buf,
        msg,
        flags,
        seq,
        fam.af,
        (table.as_bytes(), set.as_bytes()),
    );
    // The comment, built once per run of ports of one network (usually all of them).
    let (mut tagged, mut ud, mut n) = (None::<&str>, [0u8; 128], 0);
    for p in ports {
        if msg == nft::NFT_MSG_NEWSETELEM && tagged != Some(p.network.as_str()) {
            n = nft::comment_udata(elem_tag(&p.network).as_bytes(), &mut ud);
            tagged = Some(&p.network);
        }
        let ud = &ud[..n];
        if published {
            nft::elem(buf, elems::published_key(p).as_slice(), ElemData::None, ud);
        } else {
            let v = elems::map_value(p);
            let data = if msg == nft::NFT_MSG_NEWSETELEM {
                ElemData::Value(v.as_slice())
            } else {
                ElemData::None
            };
            nft::elem(buf, elems::map_key(p).as_slice(), data, ud);
        }
    }
    nft::end_elems(buf, tok);
}
