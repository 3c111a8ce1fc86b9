//! One nf_tables batch being built and sent: the messages between `BATCH_BEGIN` and
//! `BATCH_END`, applied by the kernel as a whole or not at all, and what each message does
//! (for the error that names a failed one).

use super::dump::TaggedRule;
use super::layout::family_name;
use crate::error::{Op, Result};
use crate::firewall::writers::note_writer;
use crate::socket::Socket;
use crate::wire::nft::{self, Expr};
use crate::wire::{MsgBuf, NlmF};

/// Most elements one `NFT_MSG_{NEW,DEL,DESTROY}SETELEM` message carries. The elements sit in
/// one nested attribute, whose length is 16 bits: 256 of the largest (an IPv6 `ports`
/// element with a 128-byte comment, 196 bytes) take 50 KB, under the 64 KiB limit. More
/// elements go in further messages of the same batch, which stays atomic.
pub(super) const ELEMS_PER_MSG: usize = 256;

/// One nf_tables batch being built: the messages between `BATCH_BEGIN` and `BATCH_END`,
/// and what each of them does (for the error that names a failed one).
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) buf: MsgBuf,
    first: u32,
    what: Vec<String>,
    /// When set, the chain of every rule added, in order (what a repair compares the
    /// kernel's rules with).
    planned: Option<Vec<String>>,
}

impl Batch {
    pub(super) fn new() -> Batch {
        Batch {
            buf: MsgBuf::with_capacity(16 * 1024),
            first: 0,
            what: Vec::new(),
            planned: None,
        }
    }

    /// A batch that is never sent: it records the chain of each rule added to it.
    pub(super) fn plan() -> Batch {
        Batch {
            buf: MsgBuf::with_capacity(4 * 1024),
            first: 0,
            what: Vec::new(),
            planned: Some(Vec::new()),
        }
    }

    /// The chains of the rules added to a [`Batch::plan`], in order.
    pub(super) fn planned(&self) -> &[String] {
        self.planned.as_deref().unwrap_or_default()
    }

    /// Starts a fresh batch numbered from the next sequence number of `sock`; with
    /// `generation`, the kernel applies it only if the ruleset is still at that
    /// generation (else the commit fails with `ERESTART`).
    pub(super) fn begin(&mut self, sock: &mut Socket, generation: Option<u32>) {
        let first = sock.next_seq(0);
        self.buf.clear();
        self.what.clear();
        self.first = first;
        match generation {
            Some(g) => nft::batch_checked(&mut self.buf, first.wrapping_sub(1), g),
            None => nft::batch(&mut self.buf, false, first.wrapping_sub(1)),
        }
    }

    /// Sends the batch on `sock` and waits for every acknowledgement.
    pub(super) fn commit(&mut self, sock: &mut Socket) -> Result<()> {
        let n = self.what.len();
        if n == 0 {
            return Ok(());
        }
        let first = self.first;
        nft::batch(&mut self.buf, true, first.wrapping_add(n as u32));
        sock.next_seq(n as u32 + 1);
        note_writer(None);
        let what = &self.what;
        let describe = |i: usize| (Op::Firewall, what.get(i).cloned().unwrap_or_default());
        sock.transact_batch(&self.buf, first, n, &describe)
    }

    /// The sequence number of the next message, described by `what` (only on failure).
    pub(super) fn seq(&mut self, what: impl FnOnce() -> String) -> u32 {
        let seq = self.first.wrapping_add(self.what.len() as u32);
        self.what.push(what());
        seq
    }

    /// Appends a rule to `chain` of our table in family `af`.
    pub(super) fn rule(
        &mut self,
        af: u8,
        table: &str,
        chain: &str,
        comment: &[u8],
        exprs: &[Expr<'_>],
    ) {
        if let Some(p) = &mut self.planned {
            p.push(chain.to_owned());
        }
        let seq = self.seq(|| format!("nft add rule {} {table} {chain}", family_name(af)));
        let flags = NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::APPEND;
        let r = nft::begin_rule(
            &mut self.buf,
            flags,
            seq,
            af,
            (table.as_bytes(), chain.as_bytes()),
        );
        for e in exprs {
            e.put(&mut self.buf);
        }
        let mut ud = [0u8; 128];
        let n = if comment.is_empty() {
            0
        } else {
            nft::comment_udata(comment, &mut ud)
        };
        nft::end_rule(&mut self.buf, r, &ud[..n]);
    }

    /// Adds the deletion of `rules` (by handle) of our table `table`.
    pub(super) fn del_rules(&mut self, table: &str, rules: &[TaggedRule]) {
        for r in rules {
            let seq = self.seq(|| {
                format!(
                    "nft delete rule {} {table} {} handle {}",
                    family_name(r.af),
                    r.chain,
                    r.handle
                )
            });
            nft::del_rule(
                &mut self.buf,
                seq,
                r.af,
                (table.as_bytes(), r.chain.as_bytes()),
                r.handle,
            );
        }
    }
}
