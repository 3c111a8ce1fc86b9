//! The native nf_tables backend: rules as nf_tables objects over `NETLINK_NETFILTER`,
//! every change one atomic batch.

pub(crate) mod dump;
pub(crate) mod elems;
mod exprs;
pub(crate) mod network;
mod repair;
mod skeleton;
mod spoof;
mod watch;

pub use dump::FirewallState;
pub use skeleton::USER;
pub(crate) use watch::note_writer;
pub use watch::{FirewallWatch, RepairFn, WatchStats};

use super::rule::{NetworkRules, PortRule};
use super::{Firewall, Repaired};
use crate::error::{Errno, Op, Result};
use crate::netns::Netns;
use crate::socket::Socket;
use crate::wire::nft::{self, ElemData, Expr};
use crate::wire::{MsgBuf, NlmF};
use exprs::Fam;

/// The default name of our tables (`ip netplumb`, `ip6 netplumb`, `bridge netplumb`).
pub const DEFAULT_TABLE: &str = "netplumb";

/// Most elements one `NFT_MSG_{NEW,DEL,DESTROY}SETELEM` message carries. The elements sit in
/// one nested attribute, whose length is 16 bits: 256 of the largest (an IPv6 `ports`
/// element with a 128-byte comment, 196 bytes) take 50 KB, under the 64 KiB limit. More
/// elements go in further messages of the same batch, which stays atomic.
const ELEMS_PER_MSG: usize = 256;

/// One nf_tables batch being built: the messages between `BATCH_BEGIN` and `BATCH_END`,
/// and what each of them does (for the error that names a failed one).
#[derive(Debug)]
pub(super) struct Batch {
    buf: MsgBuf,
    first: u32,
    what: Vec<String>,
    /// When set, the chain of every rule added, in order (what a repair compares the
    /// kernel's rules with).
    planned: Option<Vec<String>>,
}

impl Batch {
    fn new() -> Batch {
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

    fn start(&mut self, first: u32) {
        self.buf.clear();
        self.what.clear();
        self.first = first;
        nft::batch(&mut self.buf, false, first.wrapping_sub(1));
    }

    /// The sequence number of the next message, described by `what` (only on failure).
    pub(super) fn seq(&mut self, what: impl FnOnce() -> String) -> u32 {
        let seq = self.first.wrapping_add(self.what.len() as u32);
        self.what.push(what());
        seq
    }

    fn len(&self) -> usize {
        self.what.len()
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
        let seq =
            self.seq(|| format!("nft add rule {} {table} {chain}", skeleton::family_name(af)));
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
}

/// The native nf_tables backend, bound to one network namespace.
///
/// ```no_run
/// use netplumb::firewall::{Firewall, Nftables, NetworkRules, PortRule, Proto};
/// let mut fw = Nftables::open_in(&netplumb::Netns::current()?)?;
/// fw.add_network(&NetworkRules::new("bridge", "docker0").subnet("172.17.0.0/16".parse().unwrap()))?;
/// fw.publish(&[PortRule::new("bridge", Proto::Tcp, 8080, "172.17.0.2".parse().unwrap(), 80)])?;
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug)]
pub struct Nftables {
    sock: Socket,
    batch: Batch,
    table: String,
    netns: Netns,
    ready: bool,
    /// Set by `ensure_skeleton`: none of our tables existed, so the batch being built
    /// creates them all and nothing of ours can be in the kernel yet.
    fresh: bool,
}

impl Nftables {
    /// A backend for namespace `ns` (its netlink socket is opened inside it), using tables
    /// named `netplumb`.
    pub fn open_in(ns: &Netns) -> Result<Nftables> {
        Ok(Nftables {
            sock: ns.run(Socket::netfilter)??,
            batch: Batch::new(),
            table: DEFAULT_TABLE.to_owned(),
            netns: ns.clone(),
            ready: false,
            fresh: false,
        })
    }

    /// Uses tables named `name` instead of `netplumb`.
    #[must_use]
    pub fn with_table(mut self, name: &str) -> Self {
        self.table = name.to_owned();
        self.ready = false;
        self
    }

    /// The namespace this backend writes to.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The name of our tables.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Deletes our tables (all networks, all ports, the users' chain) in one batch.
    /// Tables that are not there are skipped.
    pub fn flush(&mut self) -> Result<()> {
        let present = self.tables()?;
        self.begin();
        for af in present {
            let t = self.table.clone();
            let seq = self
                .batch
                .seq(|| format!("nft delete table {} {t}", skeleton::family_name(af)));
            nft::table(
                &mut self.batch.buf,
                nft::NFT_MSG_DELTABLE,
                NlmF::CHANGE,
                seq,
                af,
                t.as_bytes(),
            );
        }
        self.ready = false;
        self.commit()
    }

    fn begin(&mut self) {
        let first = self.sock.next_seq(0);
        self.batch.start(first);
    }

    /// Sends the batch and waits for every acknowledgement.
    fn commit(&mut self) -> Result<()> {
        let n = self.batch.len();
        if n == 0 {
            return Ok(());
        }
        let first = self.batch.first;
        nft::batch(&mut self.batch.buf, true, first.wrapping_add(n as u32));
        self.sock.next_seq(n as u32 + 1);
        note_writer(None);
        let what = &self.batch.what;
        let describe = |i: usize| (Op::Firewall, what.get(i).cloned().unwrap_or_default());
        self.sock
            .transact_batch(&self.batch.buf, first, n, &describe)
    }

    /// The families (`NFPROTO_*`) in which our table exists.
    fn tables(&mut self) -> Result<Vec<u8>> {
        dump::tables(&mut self.sock, &self.table)
    }

    /// Makes sure the skeleton exists; adds what is missing to the current batch.
    fn ensure_skeleton(&mut self) -> Result<()> {
        self.fresh = false;
        if self.ready {
            return Ok(());
        }
        let present = self.tables()?;
        self.fresh = present.is_empty();
        let table = self.table.clone();
        for fam in skeleton::FAMILIES {
            if !present.contains(&fam.af) {
                skeleton::add(&mut self.batch, fam, &table);
            }
        }
        Ok(())
    }

    /// Runs `build` in a fresh batch behind the skeleton, commits, and retries once when
    /// another process created the skeleton meanwhile (our `NLM_F_EXCL` table create fails)
    /// or removed it (our elements' table is gone).
    fn apply(&mut self, build: &mut dyn FnMut(&mut Nftables) -> Result<()>) -> Result<()> {
        let mut tries = 0;
        loop {
            self.begin();
            self.ensure_skeleton()?;
            build(self)?;
            match self.commit() {
                Ok(()) => {
                    self.ready = true;
                    return Ok(());
                }
                Err(e)
                    if tries == 0 && matches!(e.errno(), Some(Errno::EEXIST | Errno::ENOENT)) =>
                {
                    self.ready = false;
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn elems(&mut self, msg: u16, ports: &[PortRule]) {
        let table = self.table.clone();
        for fam in skeleton::FAMILIES {
            for (set, pick) in [
                (skeleton::PORTS, 0),
                (skeleton::PORTS_ANY, 1),
                (skeleton::PUBLISHED, 2),
            ] {
                let chosen: Vec<&PortRule> = ports
                    .iter()
                    .filter(|p| Fam::of(&p.container_ip) == fam)
                    .filter(|p| pick == 2 || p.host_ip.is_some() == (pick == 0))
                    .collect();
                for chunk in chosen.chunks(ELEMS_PER_MSG) {
                    self.elems_msg(msg, fam, (&table, set), chunk, pick == 2);
                }
            }
        }
    }

    fn elems_msg(
        &mut self,
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
        let seq = self.batch.seq(|| {
            let first = ports.first().map(|p| p.to_string()).unwrap_or_default();
            format!(
                "nft {verb} element {} {table} {set} ({} elements: {first}, ...)",
                skeleton::family_name(fam.af),
                ports.len()
            )
        });
        let flags = if msg == nft::NFT_MSG_NEWSETELEM {
            NlmF::REQUEST | NlmF::ACK | NlmF::CREATE
        } else {
            NlmF::CHANGE
        };
        let buf = &mut self.batch.buf;
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
                n = nft::comment_udata(network::elem_tag(&p.network).as_bytes(), &mut ud);
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

    /// Adds to the batch the deletion of every rule and element tagged with `network`.
    fn remove_tagged(&mut self, network: &str) -> Result<usize> {
        let table = self.table.clone();
        let found = dump::tagged(&mut self.sock, &table, network, true)?;
        self.del_rules(&found.rules);
        let mut n = found.rules.len();
        // Elements come grouped by family and set: one message per group (and per
        // ELEMS_PER_MSG elements), not one per element.
        let mut rest = &found.elems[..];
        while let Some(first) = rest.first() {
            let same = rest
                .iter()
                .take(ELEMS_PER_MSG)
                .take_while(|e| (e.af, e.set) == (first.af, first.set))
                .count();
            let (group, tail) = rest.split_at(same);
            rest = tail;
            let seq = self.batch.seq(|| {
                format!(
                    "nft delete element {} {table} {} ({} elements)",
                    skeleton::family_name(first.af),
                    first.set,
                    group.len()
                )
            });
            let buf = &mut self.batch.buf;
            let tok = nft::begin_elems(
                buf,
                nft::NFT_MSG_DELSETELEM,
                NlmF::CHANGE,
                seq,
                first.af,
                (table.as_bytes(), first.set.as_bytes()),
            );
            for e in group {
                nft::elem(buf, &e.key, ElemData::None, &[]);
            }
            nft::end_elems(buf, tok);
            n += group.len();
        }
        Ok(n)
    }
}

impl Firewall for Nftables {
    fn add_network(&mut self, net: &NetworkRules) -> Result<()> {
        net.validate()?;
        let tag = network::tag(net);
        let table = self.table.clone();
        self.apply(&mut |fw| {
            // Tables created by this very batch hold nothing yet: skip reading them back.
            let existing = if fw.fresh {
                dump::Tagged::default()
            } else {
                dump::tagged(&mut fw.sock, &table, &net.name, false)?
            };
            let same =
                !existing.rules.is_empty() && existing.rules.iter().all(|r| r.comment == tag);
            fw.sync_endpoints(net)?;
            if same {
                return Ok(()); // the same rules are there already
            }
            // Different settings under the same name: replace, in the same batch.
            fw.del_rules(&existing.rules);
            for fam in skeleton::FAMILIES {
                network::add(&mut fw.batch, fam, &table, net, &tag);
            }
            for fam in skeleton::FAMILIES
                .into_iter()
                .filter(|f| net.subnets.iter().any(|s| Fam::of(&s.addr()) == *f))
            {
                fw.bridge_elem(fam, net);
            }
            Ok(())
        })
    }

    fn remove_network(&mut self, name: &str) -> Result<()> {
        super::rule::check_network_name(name)?;
        if self.tables()?.is_empty() {
            return Ok(());
        }
        self.begin();
        self.remove_tagged(name)?;
        self.commit()
    }

    fn publish(&mut self, ports: &[PortRule]) -> Result<()> {
        for p in ports {
            p.validate()?;
        }
        self.apply(&mut |fw| {
            fw.elems(nft::NFT_MSG_NEWSETELEM, ports);
            Ok(())
        })
    }

    fn unpublish(&mut self, ports: &[PortRule]) -> Result<()> {
        for p in ports {
            p.validate()?;
        }
        if !self.ready && self.tables()?.is_empty() {
            return Ok(());
        }
        self.begin();
        self.elems(nft::NFT_MSG_DESTROYSETELEM, ports);
        self.commit()
    }

    fn state(&mut self) -> Result<FirewallState> {
        let table = self.table.clone();
        dump::state(&mut self.sock, &table)
    }

    fn repair(&mut self, networks: &[NetworkRules], ports: &[PortRule]) -> Result<Repaired> {
        self.repair_all(networks, ports)
    }
}

impl Nftables {
    /// Adds to the batch the deletion of `rules` (by handle).
    fn del_rules(&mut self, rules: &[dump::TaggedRule]) {
        let table = self.table.clone();
        for r in rules {
            let seq = self.batch.seq(|| {
                format!(
                    "nft delete rule {} {table} {} handle {}",
                    skeleton::family_name(r.af),
                    r.chain,
                    r.handle
                )
            });
            nft::del_rule(
                &mut self.batch.buf,
                seq,
                r.af,
                (table.as_bytes(), r.chain.as_bytes()),
                r.handle,
            );
        }
    }
}
