//! [`Nftables`]: the nf_tables backend's handle on one namespace, and its
//! [`Firewall`] verbs, each one atomic batch built from the other files' pieces.

use std::time::Duration;

use super::batch::{Batch, ELEMS_PER_MSG};
use super::dump;
use super::exprs::{Fam, FAMILIES};
use super::layout::{family_name, tag, DEFAULT_TABLE};
use super::{network, ports, prune, repair, skeleton, spoof};
use crate::error::{Errno, Result};
use crate::firewall::backend::Firewall;
use crate::firewall::repair::{validate_all, Repaired};
use crate::firewall::rule::{check_network_name, NetworkRules, PortRule};
use crate::firewall::state::FirewallState;
use crate::netns::Netns;
use crate::socket::Socket;
use crate::wire::nft::{self, ElemData};
use crate::wire::NlmF;

/// How many times a batch built against an older ruleset generation is built again (each
/// refusal means another process's change went through meanwhile).
const GENERATION_TRIES: u32 = 100;

/// How many times a batch is built again after our tables appeared (`EEXIST` on our
/// exclusive create) or went (`ENOENT`) meanwhile.
const TABLE_TRIES: u32 = 3;

/// The native nf_tables backend, bound to one network namespace.
///
/// It creates the `ip` table with the first network, the `ip6` table with the first
/// network that has an IPv6 subnet, and the `bridge` table (anti-spoofing) with the first
/// guarded endpoint; each goes again when nothing of any network is left in it (see
/// [`Nftables::remove_network`](Firewall::remove_network)). A table whose users' chain
/// holds rules stays.
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
    /// The families (`NFPROTO_*`) whose table the last successful batch left in place.
    ready: Vec<u8>,
    /// Set by `ensure_skeleton`: neither our `ip` nor our `ip6` table existed, so nothing
    /// of ours can be in them yet.
    fresh: bool,
}

/// The backend's netlink socket. The kernel makes the last close of a netfilter socket
/// that deleted nf_tables objects wait for the deletion's RCU grace period (10–15 ms
/// here); a short-lived process (a CNI plugin, a runtime's network tool) can hand the
/// socket to a child that outlives it (clear `FD_CLOEXEC` on it before spawning), so
/// that its own exit does not wait.
///
/// ```no_run
/// use std::os::fd::AsFd;
/// let fw = netplumb::firewall::Nftables::open_in(&netplumb::Netns::current()?)?;
/// let fd = fw.as_fd();
/// # let _ = fd;
/// # Ok::<(), netplumb::Error>(())
/// ```
impl std::os::fd::AsFd for Nftables {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
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
            ready: Vec::new(),
            fresh: false,
        })
    }

    /// Whether nf_tables answers in the namespace: one `NFT_MSG_GETGEN`, no dump.
    pub(crate) fn probe(&mut self) -> Result<()> {
        dump::generation(&mut self.sock).map(drop)
    }

    /// Uses tables named `name` instead of `netplumb`.
    #[must_use]
    pub fn with_table(mut self, name: &str) -> Self {
        self.table = name.to_owned();
        self.ready.clear();
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
        self.begin(None);
        for af in present {
            prune::del_table(&mut self.batch, af, &self.table);
        }
        self.ready.clear();
        self.commit()
    }

    fn begin(&mut self, generation: Option<u32>) {
        self.batch.begin(&mut self.sock, generation);
    }

    /// Sends the batch and waits for every acknowledgement.
    fn commit(&mut self) -> Result<()> {
        self.batch.commit(&mut self.sock)
    }

    /// The families (`NFPROTO_*`) in which our table exists.
    fn tables(&mut self) -> Result<Vec<u8>> {
        dump::tables(&mut self.sock, &self.table)
    }

    /// Makes sure the skeleton of each family of `fams` exists; adds what is missing to
    /// the current batch.
    fn ensure_skeleton(&mut self, fams: &[Fam]) -> Result<()> {
        self.fresh = false;
        if fams.iter().all(|f| self.ready.contains(&f.af)) {
            return Ok(());
        }
        let present = self.tables()?;
        self.fresh = !FAMILIES.iter().any(|f| present.contains(&f.af));
        let table = self.table.clone();
        for &fam in fams {
            if !present.contains(&fam.af) {
                skeleton::add(&mut self.batch, fam, &table);
            }
        }
        Ok(())
    }

    /// Runs `build` in a fresh batch and commits it. With `checked`, the batch carries the
    /// ruleset generation read before `build` reads anything, so it applies only on the
    /// ruleset `build` saw; when another process changed the ruleset meanwhile
    /// (`ERESTART`), or created (`EEXIST` on our exclusive table create) or deleted
    /// (`ENOENT`) one of our tables, it is built again from a fresh reading.
    fn retry(
        &mut self,
        checked: bool,
        build: &mut dyn FnMut(&mut Nftables) -> Result<()>,
    ) -> Result<()> {
        let (mut restarts, mut races) = (0, 0);
        loop {
            let generation = match checked {
                true => Some(dump::generation(&mut self.sock)?),
                false => None,
            };
            self.begin(generation);
            build(self)?;
            let e = match self.commit() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            self.ready.clear();
            match e.errno() {
                Some(Errno::ERESTART) if restarts < GENERATION_TRIES => restarts += 1,
                Some(Errno::EEXIST | Errno::ENOENT) if races < TABLE_TRIES => races += 1,
                _ => return Err(e),
            }
            // A little while, different in each thread, so that two writers that keep
            // refusing each other's batches fall out of step.
            let tid = nix::unistd::gettid().as_raw() as u64;
            std::thread::sleep(Duration::from_micros(
                50 + (tid * 37 + restarts as u64 * 101) % 500,
            ));
        }
    }

    /// Runs `build` behind the skeleton of the families `fams` (see [`Nftables::retry`]).
    fn apply(
        &mut self,
        fams: &[Fam],
        checked: bool,
        build: &mut dyn FnMut(&mut Nftables) -> Result<()>,
    ) -> Result<()> {
        self.retry(checked, &mut |fw| {
            fw.ensure_skeleton(fams)?;
            build(fw)
        })?;
        self.ready = fams.iter().map(|f| f.af).collect();
        Ok(())
    }

    /// Adds to the batch the addition or removal (by `msg`) of the elements of `ports`.
    fn elems(&mut self, msg: u16, ports: &[PortRule]) {
        ports::write(&mut self.batch, &self.table, msg, ports);
    }

    /// Adds to the batch the deletion of the rules and elements of `found`.
    fn del_tagged(&mut self, found: &dump::Tagged) {
        let table = self.table.clone();
        self.del_rules(&found.rules);
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
        }
    }
}

impl Firewall for Nftables {
    /// One batch, built against the ruleset generation it read (built again when
    /// another process changed the ruleset meanwhile). Creates the tables of the network's families that are
    /// missing; a table of a family the network no longer has goes when nothing else is
    /// left in it.
    fn add_network(&mut self, net: &NetworkRules) -> Result<()> {
        net.validate()?;
        let tag = tag(net);
        let table = self.table.clone();
        let fams = families(net.subnets.iter().map(|s| s.addr()));
        self.apply(&fams, true, &mut |fw| {
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
            let mut old = existing.rules;
            for fam in FAMILIES.into_iter().filter(|f| !fams.contains(f)) {
                let left = old.iter().any(|r| r.af == fam.af)
                    && !prune::held(&mut fw.sock, &table, fam.af, &net.name)?.others;
                if left {
                    prune::del_table(&mut fw.batch, fam.af, &table);
                    old.retain(|r| r.af != fam.af);
                }
            }
            fw.del_rules(&old);
            for &fam in &fams {
                network::add(&mut fw.batch, fam, &table, net, &tag);
            }
            for &fam in &fams {
                network::bridge_elem(&mut fw.batch, fam, &table, net);
            }
            Ok(())
        })
    }

    /// One batch, built against the ruleset generation it read: deletes the network's
    /// rules and elements, or the whole table of a family (and the `bridge` table) when
    /// nothing of another network or of a user is left in it. A batch refused because
    /// another process changed the ruleset meanwhile is built again from a fresh reading,
    /// so a table another process has just filled is never deleted.
    fn remove_network(&mut self, name: &str) -> Result<()> {
        check_network_name(name)?;
        let table = self.table.clone();
        self.retry(true, &mut |fw| {
            for af in fw.tables()? {
                let held = prune::held(&mut fw.sock, &table, af, name)?;
                if held.others {
                    fw.del_tagged(&held.mine);
                } else {
                    prune::del_table(&mut fw.batch, af, &table);
                }
            }
            Ok(())
        })?;
        self.ready.clear();
        Ok(())
    }

    fn publish(&mut self, ports: &[PortRule]) -> Result<()> {
        for p in ports {
            p.validate()?;
        }
        let fams = families(ports.iter().map(|p| p.container_ip));
        self.apply(&fams, false, &mut |fw| {
            fw.elems(nft::NFT_MSG_NEWSETELEM, ports);
            Ok(())
        })
    }

    fn unpublish(&mut self, ports: &[PortRule]) -> Result<()> {
        for p in ports {
            p.validate()?;
        }
        let fams = families(ports.iter().map(|p| p.container_ip));
        self.retry(false, &mut |fw| {
            let present = if fams.iter().all(|f| fw.ready.contains(&f.af)) {
                fw.ready.clone()
            } else {
                fw.tables()?
            };
            // A family without its table has no port to withdraw.
            let there: Vec<PortRule> = ports
                .iter()
                .filter(|p| present.contains(&Fam::of(&p.container_ip).af))
                .cloned()
                .collect();
            fw.elems(nft::NFT_MSG_DESTROYSETELEM, &there);
            Ok(())
        })
    }

    fn state(&mut self) -> Result<FirewallState> {
        let table = self.table.clone();
        dump::state(&mut self.sock, &table)
    }

    /// One batch, built against the ruleset generation it read (built again when
    /// another process changed the ruleset meanwhile). Creates a missing table only for a family that one of
    /// `networks` or `ports` needs.
    fn repair(&mut self, networks: &[NetworkRules], ports: &[PortRule]) -> Result<Repaired> {
        validate_all(networks, ports)?;
        let table = self.table.clone();
        let mut rep = Repaired::default();
        self.retry(true, &mut |fw| {
            rep = Repaired::default();
            let what = (networks, ports);
            repair::plan(&mut fw.sock, &mut fw.batch, &table, what, &mut rep)
        })?;
        self.ready.clear();
        rep.sort();
        Ok(rep)
    }
}

/// The families of `addrs`, in [`FAMILIES`] order.
fn families(addrs: impl Iterator<Item = std::net::IpAddr>) -> Vec<Fam> {
    let fams: Vec<Fam> = addrs.map(|a| Fam::of(&a)).collect();
    FAMILIES.into_iter().filter(|f| fams.contains(f)).collect()
}

impl Nftables {
    /// Adds to the batch the deletion of `rules` (by handle).
    fn del_rules(&mut self, rules: &[dump::TaggedRule]) {
        self.batch.del_rules(&self.table, rules);
    }
}
