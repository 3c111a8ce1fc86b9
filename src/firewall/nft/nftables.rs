//! [`Nftables`]: the nf_tables backend's handle on one namespace, and its
//! [`Firewall`] verbs, each one atomic batch built from the other files' pieces.

use super::batch::{Batch, ELEMS_PER_MSG};
use super::dump;
use super::exprs::{Fam, FAMILIES};
use super::layout::{family_name, tag, DEFAULT_TABLE};
use super::{network, ports, repair, skeleton, spoof};
use crate::error::{Errno, Result};
use crate::firewall::backend::Firewall;
use crate::firewall::repair::{validate_all, Repaired};
use crate::firewall::rule::{check_network_name, NetworkRules, PortRule};
use crate::firewall::state::FirewallState;
use crate::netns::Netns;
use crate::socket::Socket;
use crate::wire::nft::{self, ElemData};
use crate::wire::NlmF;

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
                .seq(|| format!("nft delete table {} {t}", family_name(af)));
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
        self.batch.begin(&mut self.sock);
    }

    /// Sends the batch and waits for every acknowledgement.
    fn commit(&mut self) -> Result<()> {
        self.batch.commit(&mut self.sock)
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
        for fam in FAMILIES {
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

    /// Adds to the batch the addition or removal (by `msg`) of the elements of `ports`.
    fn elems(&mut self, msg: u16, ports: &[PortRule]) {
        ports::write(&mut self.batch, &self.table, msg, ports);
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
                    family_name(first.af),
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
        let tag = tag(net);
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
            spoof::sync(&mut fw.sock, &mut fw.batch, &table, net)?;
            if same {
                return Ok(()); // the same rules are there already
            }
            // Different settings under the same name: replace, in the same batch.
            fw.del_rules(&existing.rules);
            for fam in FAMILIES {
                network::add(&mut fw.batch, fam, &table, net, &tag);
            }
            for fam in FAMILIES
                .into_iter()
                .filter(|f| net.subnets.iter().any(|s| Fam::of(&s.addr()) == *f))
            {
                network::bridge_elem(&mut fw.batch, fam, &table, net);
            }
            Ok(())
        })
    }

    fn remove_network(&mut self, name: &str) -> Result<()> {
        check_network_name(name)?;
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

    /// One batch, retried once when another process changed our tables meanwhile.
    fn repair(&mut self, networks: &[NetworkRules], ports: &[PortRule]) -> Result<Repaired> {
        validate_all(networks, ports)?;
        let mut tries = 0;
        loop {
            self.begin();
            let mut rep = Repaired::default();
            let table = self.table.clone();
            repair::plan(
                &mut self.sock,
                &mut self.batch,
                &table,
                (networks, ports),
                &mut rep,
            )?;
            self.ready = false;
            match self.commit() {
                Ok(()) => {
                    rep.sort();
                    return Ok(rep);
                }
                Err(e)
                    if tries == 0 && matches!(e.errno(), Some(Errno::EEXIST | Errno::ENOENT)) =>
                {
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Nftables {
    /// Adds to the batch the deletion of `rules` (by handle).
    fn del_rules(&mut self, rules: &[dump::TaggedRule]) {
        self.batch.del_rules(&self.table, rules);
    }
}
