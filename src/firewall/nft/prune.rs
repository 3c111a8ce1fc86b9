//! Our tables go when the last network that needs them goes: a table (`ip`, `ip6` or
//! `bridge`) that holds nothing of any network any more is deleted, in the batch that
//! removes the last network's rules, rather than left with base chains that every
//! forwarded packet still walks.
//!
//! What a table holds of someone: a rule or set element tagged with a network, a rule in
//! the users' chain (the users' rules are never deleted behind their back: the table
//! stays, as Docker's `DOCKER-USER` does), a rule in a chain that is not ours, an element
//! without our tag. The shared rules of our base chains belong to nobody.
//!
//! Deciding that a table is empty reads it and then deletes it; another process may add a
//! network in between. The batch therefore carries the ruleset generation read before the
//! table ([`nft::batch_checked`](crate::wire::nft::batch_checked)): if anything changed
//! the ruleset since, the kernel refuses the whole batch with `ERESTART`, and it is built
//! again from a fresh reading.

use super::batch::Batch;
use super::dump::{self, Tagged, TaggedElem};
use super::layout::{
    family_name, network_of, BRIDGE_CHAIN, BRIDGE_SETS, CHAINS, NFPROTO_BRIDGE, SET_NAMES, USER,
};
use crate::error::Result;
use crate::socket::Socket;
use crate::wire::nft;
use crate::wire::NlmF;

/// What our table of one family holds, as read for removing network `network`.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// The network's own rules and elements.
    pub mine: Tagged,
    /// Whether it holds anything of another network or of a user (see the module docs).
    pub others: bool,
}

/// Reads our table `table` of family `af` (`ip`, `ip6` or `bridge`): what network
/// `network` owns there, and whether anything else would keep the table.
pub(super) fn held(sock: &mut Socket, table: &str, af: u8, network: &str) -> Result<Held> {
    let (chains, sets): (&[&str], &[&'static str]) = if af == NFPROTO_BRIDGE {
        (&[BRIDGE_CHAIN], &BRIDGE_SETS)
    } else {
        (&CHAINS, &SET_NAMES)
    };
    let mut h = Held::default();
    for r in dump::all_rules(sock, table, af)? {
        match network_of(r.comment.as_bytes()) {
            Some(n) if n == network => h.mine.rules.push(r),
            Some(_) => h.others = true,
            None => h.others |= r.chain == USER || !chains.contains(&r.chain.as_str()),
        }
    }
    for &set in sets {
        for (key, _, comment) in dump::set_elements(sock, table, af, set)? {
            match network_of(comment.as_bytes()) {
                Some(n) if n == network => h.mine.elems.push(TaggedElem { af, set, key }),
                _ => h.others = true,
            }
        }
    }
    Ok(h)
}

/// Adds the deletion of our table `table` of family `af` (with everything in it).
pub(super) fn del_table(b: &mut Batch, af: u8, table: &str) {
    let seq = b.seq(|| format!("nft delete table {} {table}", family_name(af)));
    nft::table(
        &mut b.buf,
        nft::NFT_MSG_DELTABLE,
        NlmF::CHANGE,
        seq,
        af,
        table.as_bytes(),
    );
}
