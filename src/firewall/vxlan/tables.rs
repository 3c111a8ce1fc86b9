//! The guard's nf_tables side: one batch being built (framing, the skeleton of a family's
//! table, elements) and sent, and the dumps that read a family's table back.

use std::collections::BTreeSet;

use super::layout::{
    Elem, Fam, CHAIN, ELEMS_PER_MSG, PEERS, R0, TABLE, TYPE_INTEGER, V4, V6, VNIS, VNI_FIELD,
};
use crate::error::{Errno, Op, Result};
use crate::firewall::rule::Proto;
use crate::socket::Socket;
use crate::wire::nft::{self, msg_type, BaseChain, CmpOp, ElemData, Expr, KeyField};
use crate::wire::nft::{PayloadBase, SetSpec};
use crate::wire::{MsgBuf, NlmF, RawMsg};

/// One family's table as read back.
#[derive(Debug, Default)]
pub(super) struct Table {
    /// Each rule's comment and the packets it counted.
    pub(super) rules: Vec<(String, u64)>,
    pub(super) elems: BTreeSet<Elem>,
    /// Its rules and both sets could be read.
    pub(super) sets: bool,
}

/// The guard's socket and the batch being built on it.
#[derive(Debug)]
pub(super) struct Tables {
    sock: Socket,
    buf: MsgBuf,
    first: u32,
    what: Vec<String>,
}

impl Tables {
    pub(super) fn new(sock: Socket) -> Tables {
        Tables {
            sock,
            buf: MsgBuf::with_capacity(8 * 1024),
            first: 0,
            what: Vec::new(),
        }
    }
}

/// The comments of a family's rules, in order: they name the port, so a table made
/// for another port (or by another version) does not match and is rebuilt.
pub(super) fn comments(port: u16, fam: Fam) -> Vec<String> {
    let p = format!("netplumb: VXLAN (udp {})", port);
    let mut c = vec![format!("{p} of guarded VNIs from non-peers: drop")];
    if fam == V6 {
        c.push(format!("{p} with its VNI in the first fragment: done"));
        c.push(format!("{p} without it: drop"));
    }
    c
}

// The batch: framing, the skeleton, elements.
impl Tables {
    pub(super) fn begin(&mut self) {
        self.buf.clear();
        self.what.clear();
        self.first = self.sock.next_seq(0);
        nft::batch(&mut self.buf, false, self.first.wrapping_sub(1));
    }

    /// The sequence number of the next message, described by `what` (only on failure).
    fn seq(&mut self, what: String) -> u32 {
        let seq = self.first.wrapping_add(self.what.len() as u32);
        self.what.push(what);
        seq
    }

    pub(super) fn commit(&mut self) -> Result<()> {
        let n = self.what.len();
        if n == 0 {
            return Ok(());
        }
        nft::batch(&mut self.buf, true, self.first.wrapping_add(n as u32));
        self.sock.next_seq(n as u32 + 1);
        let what = &self.what;
        let describe = |i: usize| (Op::Firewall, what.get(i).cloned().unwrap_or_default());
        self.sock
            .transact_batch(&self.buf, self.first, n, &describe)
    }

    pub(super) fn del_table(&mut self, fam: Fam) {
        let seq = self.seq(format!("nft delete table {} {}", fam.name, TABLE));
        let (m, t) = (nft::NFT_MSG_DELTABLE, TABLE.as_bytes());
        nft::table(&mut self.buf, m, NlmF::CHANGE, seq, fam.af, t);
    }

    /// The table (created exclusively, so two processes racing cannot both make it), the
    /// sets, the chain and its rules.
    pub(super) fn skeleton(&mut self, fam: Fam, port: u16) {
        let (t, tb) = (TABLE, TABLE.as_bytes());
        let seq = self.seq(format!("nft add table {} {t}", fam.name));
        let (m, excl) = (nft::NFT_MSG_NEWTABLE, NlmF::NEW_EXCL);
        nft::table(&mut self.buf, m, excl, seq, fam.af, tb);
        let sets = [
            (VNIS, TYPE_INTEGER, 3, &[VNI_FIELD][..]),
            (
                PEERS,
                fam.atype << 6 | TYPE_INTEGER,
                fam.alen + 4,
                &[KeyField::Saddr(fam.af), VNI_FIELD],
            ),
        ];
        for (id, (set, key_type, key_len, fields)) in sets.into_iter().enumerate() {
            let seq = self.seq(format!("nft add set {} {t} {set}", fam.name));
            let (name, id, flags, data) = (set.as_bytes(), id as u32 + 1, 0, None);
            let spec = SetSpec {
                name,
                id,
                flags,
                key_type,
                key_len,
                data,
            };
            let mut ud = [0u8; 128];
            let n = nft::typeof_udata(fields, &mut ud);
            let head = (nft::NFT_MSG_NEWSET, excl, seq);
            nft::set_with_udata(&mut self.buf, head, fam.af, tb, &spec, &ud[..n]);
        }
        let seq = self.seq(format!("nft add chain {} {t} {CHAIN}", fam.name));
        let (hook, priority, kind, policy) = (nft::hook::INPUT, 0, &b"filter"[..], nft::NF_ACCEPT);
        let base = BaseChain {
            hook,
            priority,
            kind,
            policy,
        };
        let (m, names) = (nft::NFT_MSG_NEWCHAIN, (tb, CHAIN.as_bytes()));
        nft::chain(&mut self.buf, m, excl, seq, fam.af, names, Some(&base));
        self.rules(fam, port);
    }

    fn rules(&mut self, fam: Fam, port: u16) {
        let load = |base, offset, len, dreg| Expr::Payload {
            base,
            offset,
            len,
            dreg,
        };
        let cmp = |op, data| Expr::Cmp { sreg: R0, op, data };
        let set = |set: &'static str, invert| Expr::Lookup {
            set: set.as_bytes(),
            sreg: R0,
            dreg: None,
            invert,
        };
        let vni = |dreg| load(PayloadBase::Transport, 12, 3, dreg);
        let (udp, port_be) = ([Proto::Udp.number()], port.to_be_bytes());
        let head = [
            Expr::Meta {
                key: nft::meta::L4PROTO,
                dreg: R0,
            },
            cmp(CmpOp::Eq, &udp[..]),
            load(PayloadBase::Transport, 2, 2, R0),
            cmp(CmpOp::Eq, &port_be[..]),
        ];
        let drop = Expr::Verdict(nft::NF_DROP, None);
        let saddr = load(PayloadBase::Network, fam.saddr, fam.alen, R0);
        let guard = [
            vni(R0),
            set(VNIS, false),
            saddr,
            vni(R0 + fam.alen / 4),
            set(PEERS, true),
            Expr::Counter,
            drop,
        ];
        let readable = [
            vni(R0),
            cmp(CmpOp::Gte, &[0; 3]),
            Expr::Verdict(nft::NF_ACCEPT, None),
        ];
        let bodies: [&[Expr<'_>]; 3] = [&guard, &readable, &[Expr::Counter, drop]];
        for (comment, body) in comments(port, fam).iter().zip(bodies) {
            let seq = self.seq(format!("nft add rule {} {} {CHAIN}", fam.name, TABLE));
            let flags = NlmF::REQUEST | NlmF::ACK | NlmF::CREATE | NlmF::APPEND;
            let names = (TABLE.as_bytes(), CHAIN.as_bytes());
            let r = nft::begin_rule(&mut self.buf, flags, seq, fam.af, names);
            for e in head.iter().chain(body) {
                e.put(&mut self.buf);
            }
            let mut ud = [0u8; 128];
            let n = nft::comment_udata(comment.as_bytes(), &mut ud);
            nft::end_rule(&mut self.buf, r, &ud[..n]);
        }
    }

    /// Adds (`NFT_MSG_NEWSETELEM` without `NLM_F_EXCL`: present ones are kept) or deletes
    /// elements, one message per set and chunk.
    pub(super) fn elems<'a>(&mut self, fam: Fam, msg: u16, elems: impl Iterator<Item = &'a Elem>) {
        let (verb, flags) = match msg {
            nft::NFT_MSG_NEWSETELEM => ("add", NlmF::REQUEST | NlmF::ACK | NlmF::CREATE),
            _ => ("delete", NlmF::CHANGE),
        };
        let elems: Vec<&Elem> = elems.collect();
        for set in [VNIS, PEERS] {
            let of_set: Vec<&Elem> = elems.iter().copied().filter(|e| e.set() == set).collect();
            for chunk in of_set.chunks(ELEMS_PER_MSG) {
                let list: Vec<String> = chunk.iter().map(|e| e.to_string()).collect();
                let (t, list) = (TABLE, list.join(", "));
                let seq = self.seq(format!(
                    "nft {verb} element {} {t} {set} {{ {list} }}",
                    fam.name
                ));
                let names = (t.as_bytes(), set.as_bytes());
                let tok = nft::begin_elems(&mut self.buf, msg, flags, seq, fam.af, names);
                for e in chunk {
                    let (k, n) = e.key();
                    nft::elem(&mut self.buf, &k[..n], ElemData::None, &[]);
                }
                nft::end_elems(&mut self.buf, tok);
            }
        }
    }
}

/// The body of an nf_tables message: what follows `struct nfgenmsg`.
fn body<'a>(m: &RawMsg<'a>) -> &'a [u8] {
    m.payload.get(4..).unwrap_or(&[])
}

// Reading back.
impl Tables {
    /// Runs a dump or a get; `false` when the table or set is not there (`ENOENT`).
    fn dump(
        &mut self,
        enc: &dyn Fn(&mut MsgBuf, u32),
        on: &mut dyn FnMut(&RawMsg<'_>) -> Result<()>,
    ) -> Result<bool> {
        let what = "nf_tables vxlan guard";
        match self.sock.dump(what, Op::GetFirewall, enc, &mut || {}, on) {
            Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(false),
            Err(e) => Err(e),
            Ok(()) => Ok(true),
        }
    }

    /// Whether family `fam`'s table exists (a rule dump of a missing table is empty, not
    /// an error: ask for the table).
    pub(super) fn exists(&mut self, fam: Fam) -> Result<bool> {
        let (get, t) = (NlmF::REQUEST | NlmF::ACK, TABLE.as_bytes());
        let enc = |b: &mut MsgBuf, s| nft::table(b, nft::NFT_MSG_GETTABLE, get, s, fam.af, t);
        self.dump(&enc, &mut |_| Ok(()))
    }

    pub(super) fn read_all(&mut self) -> Result<[Option<Table>; 2]> {
        Ok([self.read(V4)?, self.read(V6)?])
    }

    /// Family `fam`'s table, or `None` when it does not exist.
    fn read(&mut self, fam: Fam) -> Result<Option<Table>> {
        if !self.exists(fam)? {
            return Ok(None);
        }
        let t = TABLE.as_bytes();
        let mut table = Table::default();
        let enc = |b: &mut MsgBuf, s| nft::dump(b, nft::NFT_MSG_GETRULE, s, fam.af, Some(t));
        table.sets = self.dump(&enc, &mut |m| {
            if m.ty == msg_type(nft::NFT_MSG_NEWRULE) && m.payload.first() == Some(&fam.af) {
                let r = nft::parse_rule(body(m))?;
                let comment = String::from_utf8_lossy(r.comment.unwrap_or_default());
                table.rules.push((comment.into_owned(), r.packets));
            }
            Ok(())
        })?;
        for set in [VNIS, PEERS] {
            let s = set.as_bytes();
            let enc = |b: &mut MsgBuf, seq| nft::dump_elems(b, seq, fam.af, (t, s));
            let elems = &mut table.elems;
            table.sets &= self.dump(&enc, &mut |m| {
                if m.ty == msg_type(nft::NFT_MSG_NEWSETELEM) {
                    nft::elem_keys(body(m), &mut |k| elems.extend(Elem::parse(set, k)))?;
                }
                Ok(())
            })?;
        }
        Ok(Some(table))
    }
}
