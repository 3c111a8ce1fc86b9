//! Putting back what someone else removed from our tables ([`Firewall::repair`]): a
//! flushed ruleset, a deleted or emptied table, a flushed chain or set.
//!
//! Each part is compared with what it should hold, and only a damaged part is rewritten:
//! - a missing table: the family's whole skeleton, every network's rules and elements
//!   and every port's elements;
//! - missing sets and chains: created (a missing users' chain comes back empty);
//! - a chain whose shared (untagged) rules are not exactly the expected ones, at its
//!   head: its shared rules are deleted and appended again; for `forward`, whose shared
//!   rules must come before the networks' rules, the networks' rules follow them again;
//! - a network whose tagged rules differ in number per chain or in tag from what its
//!   settings make: its rules are deleted and added again; a missing `bridges` element
//!   is added;
//! - missing port-map and anti-spoofing elements are added.
//!
//! Everything goes in one batch, so a repair applies as a whole or not at all.
//!
//! [`Firewall::repair`]: super::super::Firewall::repair

use super::super::rule::{NetworkRules, PortRule};
use super::super::Repaired;
use super::dump::{self, TaggedRule};
use super::exprs::{self, Fam};
use super::network::{self, network_of};
use super::skeleton::{self, family_name, BRIDGES, CHAINS, DNAT, FORWARD, OUTPUT, PREROUTING};
use super::{elems, spoof, Batch, Nftables};
use crate::error::{Errno, Result};
use crate::wire::nft::{self, ElemData};
use crate::wire::NlmF;

/// How many shared rules each chain of a family holds.
fn shared_rules(fam: Fam, table: &str, chain: &str) -> usize {
    let mut p = Batch::plan();
    skeleton::chain_rules(&mut p, fam, table, chain);
    p.planned().len()
}

/// The chains of `net`'s rules in family `fam`, one entry per rule, sorted.
fn network_plan(fam: Fam, table: &str, net: &NetworkRules, tag: &str) -> Vec<String> {
    let mut p = Batch::plan();
    network::add(&mut p, fam, table, net, tag);
    let mut chains = p.planned().to_vec();
    chains.sort();
    chains
}

fn in_family(nets: &[NetworkRules], fam: Fam) -> Vec<&NetworkRules> {
    nets.iter()
        .filter(|n| n.subnets.iter().any(|s| Fam::of(&s.addr()) == fam))
        .collect()
}

impl Nftables {
    /// [`Firewall::repair`](super::super::Firewall::repair) for nf_tables: one batch,
    /// retried once when another process changed our tables meanwhile.
    pub(super) fn repair_all(
        &mut self,
        nets: &[NetworkRules],
        ports: &[PortRule],
    ) -> Result<Repaired> {
        crate::firewall::repair::validate_all(nets, ports)?;
        let mut tries = 0;
        loop {
            self.begin();
            let mut rep = Repaired::default();
            self.plan_repair(nets, ports, &mut rep)?;
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

    /// Reads our tables and adds to the batch whatever puts them right.
    fn plan_repair(
        &mut self,
        nets: &[NetworkRules],
        ports: &[PortRule],
        rep: &mut Repaired,
    ) -> Result<()> {
        if nets.is_empty() && ports.is_empty() {
            return Ok(());
        }
        let table = self.table.clone();
        let present = self.tables()?;
        for fam in skeleton::FAMILIES {
            let fnets = in_family(nets, fam);
            let fports: Vec<PortRule> = ports
                .iter()
                .filter(|p| Fam::of(&p.container_ip) == fam)
                .cloned()
                .collect();
            if present.contains(&fam.af) {
                self.repair_family(fam, &fnets, &fports, rep)?;
                continue;
            }
            // The whole family is gone: build it again as `add_network` and `publish` do.
            skeleton::add(&mut self.batch, fam, &table);
            rep.skeleton(format!("table {} {table}", family_name(fam.af)));
            for n in fnets {
                self.readd_network(fam, n, &[]);
                rep.network(&n.name);
            }
            self.elems(nft::NFT_MSG_NEWSETELEM, &fports);
            fports.iter().for_each(|p| rep.port(p));
        }
        self.repair_spoof(nets, present.contains(&spoof::NFPROTO_BRIDGE), rep)
    }

    /// Deletes `old` (rules of network `n`) and adds `n`'s rules and `bridges` element of
    /// family `fam` again.
    fn readd_network(&mut self, fam: Fam, n: &NetworkRules, old: &[TaggedRule]) {
        let table = self.table.clone();
        self.del_rules(old);
        network::add(&mut self.batch, fam, &table, n, &network::tag(n));
        self.bridge_elem(fam, n);
    }

    /// Adds network `n`'s element of the `bridges` set (present ones are kept).
    pub(super) fn bridge_elem(&mut self, fam: Fam, n: &NetworkRules) {
        let table = self.table.clone();
        let mut ud = [0u8; 128];
        let len = nft::comment_udata(network::elem_tag(&n.name).as_bytes(), &mut ud);
        let seq = self.batch.seq(|| {
            format!(
                "nft add element {} {table} bridges {{ {} }}",
                family_name(fam.af),
                n.bridge
            )
        });
        let buf = &mut self.batch.buf;
        let tok = nft::begin_elems(
            buf,
            nft::NFT_MSG_NEWSETELEM,
            NlmF::REQUEST | NlmF::ACK | NlmF::CREATE,
            seq,
            fam.af,
            (table.as_bytes(), BRIDGES.as_bytes()),
        );
        nft::elem(buf, &exprs::ifname(&n.bridge), ElemData::None, &ud[..len]);
        nft::end_elems(buf, tok);
    }

    /// Repairs one family whose table exists.
    fn repair_family(
        &mut self,
        fam: Fam,
        nets: &[&NetworkRules],
        ports: &[PortRule],
        rep: &mut Repaired,
    ) -> Result<()> {
        self.repair_objects(fam, rep)?;
        let rules = dump::all_rules(&mut self.sock, &self.table.clone(), fam.af)?;
        let forward_rebuilt = self.repair_shared(fam, &rules, rep);
        self.repair_networks(fam, nets, &rules, forward_rebuilt, rep)?;
        self.repair_ports(fam, ports, rep)
    }

    /// Creates the sets and chains of family `fam` that are missing.
    fn repair_objects(&mut self, fam: Fam, rep: &mut Repaired) -> Result<()> {
        let table = self.table.clone();
        let (af, fname) = (fam.af, family_name(fam.af));
        let sets = dump::names(&mut self.sock, &table, af, nft::NFT_MSG_GETSET)?;
        let missing: Vec<&str> = skeleton::SET_NAMES
            .into_iter()
            .filter(|s| !sets.iter().any(|x| x == s))
            .collect();
        skeleton::sets(&mut self.batch, fam, &table, &missing);
        for s in &missing {
            rep.skeleton(format!("set {fname} {table} {s}"));
        }
        let chains = dump::names(&mut self.sock, &table, af, nft::NFT_MSG_GETCHAIN)?;
        let missing: Vec<&str> = CHAINS
            .into_iter()
            .filter(|c| !chains.iter().any(|x| x == c))
            .collect();
        skeleton::chains(&mut self.batch, af, &table, &missing);
        for c in &missing {
            rep.skeleton(format!("chain {fname} {table} {c}"));
        }
        Ok(())
    }

    /// Puts back the shared rules of each chain whose shared rules (`rules` of family
    /// `fam`, as read) are not exactly the expected ones at its head. Returns whether
    /// `forward`'s were, whose networks' rules must then follow them again.
    fn repair_shared(&mut self, fam: Fam, rules: &[TaggedRule], rep: &mut Repaired) -> bool {
        let table = self.table.clone();
        let fname = family_name(fam.af);
        let mut forward_rebuilt = false;
        for chain in [PREROUTING, OUTPUT, DNAT, FORWARD] {
            let want = shared_rules(fam, &table, chain);
            let mine: Vec<&TaggedRule> = rules.iter().filter(|r| r.chain == chain).collect();
            let shared: Vec<TaggedRule> = mine
                .iter()
                .filter(|r| network_of(r.comment.as_bytes()).is_none())
                .map(|r| (*r).clone())
                .collect();
            let at_head = mine
                .iter()
                .take(shared.len())
                .all(|r| network_of(r.comment.as_bytes()).is_none());
            if shared.len() == want && at_head {
                continue;
            }
            self.del_rules(&shared);
            skeleton::chain_rules(&mut self.batch, fam, &table, chain);
            rep.skeleton(format!("rules of chain {fname} {table} {chain}"));
            forward_rebuilt |= chain == FORWARD;
        }
        forward_rebuilt
    }

    /// Adds again the rules of each network whose rules differ, per chain, in number or
    /// tag from what its settings make (all of them after `forward` was rebuilt), and
    /// missing `bridges` elements.
    fn repair_networks(
        &mut self,
        fam: Fam,
        nets: &[&NetworkRules],
        rules: &[TaggedRule],
        forward_rebuilt: bool,
        rep: &mut Repaired,
    ) -> Result<()> {
        let table = self.table.clone();
        let bridges = dump::set_elements(&mut self.sock, &table, fam.af, BRIDGES)?;
        for n in nets {
            let tag = network::tag(n);
            let have: Vec<TaggedRule> = rules
                .iter()
                .filter(|r| network_of(r.comment.as_bytes()) == Some(n.name.as_str()))
                .cloned()
                .collect();
            let mut chains: Vec<String> = have.iter().map(|r| r.chain.clone()).collect();
            chains.sort();
            let intact = !forward_rebuilt
                && have.iter().all(|r| r.comment == tag)
                && chains == network_plan(fam, &table, n, &tag);
            if !intact {
                self.readd_network(fam, n, &have);
                rep.network(&n.name);
            } else if !bridges.iter().any(|(k, ..)| *k == exprs::ifname(&n.bridge)) {
                self.bridge_elem(fam, n);
                rep.network(&n.name);
            }
        }
        Ok(())
    }

    /// Adds the port-map elements of `ports` (all of family `fam`) that are missing.
    fn repair_ports(&mut self, fam: Fam, ports: &[PortRule], rep: &mut Repaired) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let table = self.table.clone();
        let mut keys = Vec::new();
        for set in [skeleton::PORTS, skeleton::PORTS_ANY, skeleton::PUBLISHED] {
            let have = dump::set_elements(&mut self.sock, &table, fam.af, set)?;
            keys.push(have.into_iter().map(|(k, ..)| k).collect::<Vec<_>>());
        }
        let missing: Vec<PortRule> = ports
            .iter()
            .filter(|p| {
                let map = if p.host_ip.is_some() { 0 } else { 1 };
                let k = elems::map_key(p);
                let pk = elems::published_key(p);
                !keys[map].iter().any(|x| x.as_slice() == k.as_slice())
                    || !keys[2].iter().any(|x| x.as_slice() == pk.as_slice())
            })
            .cloned()
            .collect();
        // Elements that are there are kept (no NLM_F_EXCL), so the whole port goes again.
        self.elems(nft::NFT_MSG_NEWSETELEM, &missing);
        missing.iter().for_each(|p| rep.port(p));
        Ok(())
    }

    /// Repairs the bridge table of the anti-spoofing elements (see `spoof`).
    fn repair_spoof(
        &mut self,
        nets: &[NetworkRules],
        present: bool,
        rep: &mut Repaired,
    ) -> Result<()> {
        let table = self.table.clone();
        let guarded: Vec<&NetworkRules> = nets
            .iter()
            .filter(|n| !n.enforced_endpoints().is_empty())
            .collect();
        if guarded.is_empty() {
            return Ok(());
        }
        let af = spoof::NFPROTO_BRIDGE;
        if !present {
            spoof::add_skeleton(&mut self.batch, &table);
            rep.skeleton(format!("table bridge {table}"));
            for n in guarded {
                let want = spoof::wanted(n.enforced_endpoints());
                spoof::elems(
                    &mut self.batch,
                    &table,
                    nft::NFT_MSG_NEWSETELEM,
                    &n.name,
                    &want,
                );
                rep.network(&n.name);
            }
            return Ok(());
        }
        self.repair_spoof_objects(rep)?;
        for n in guarded {
            let have = dump::tagged_elems(&mut self.sock, &table, af, &spoof::SETS, &n.name)?;
            let missing: Vec<(&'static str, Vec<u8>)> = spoof::wanted(n.enforced_endpoints())
                .into_iter()
                .filter(|(s, k)| !have.iter().any(|h| h.set == *s && h.key == *k))
                .collect();
            if !missing.is_empty() {
                let add = nft::NFT_MSG_NEWSETELEM;
                spoof::elems(&mut self.batch, &table, add, &n.name, &missing);
                rep.network(&n.name);
            }
        }
        Ok(())
    }

    /// Creates the bridge table's missing sets and chain, and puts its rules back when
    /// they are not all there.
    fn repair_spoof_objects(&mut self, rep: &mut Repaired) -> Result<()> {
        let (table, af) = (self.table.clone(), spoof::NFPROTO_BRIDGE);
        let sets = dump::names(&mut self.sock, &table, af, nft::NFT_MSG_GETSET)?;
        let missing: Vec<&str> = spoof::SETS
            .into_iter()
            .filter(|s| !sets.iter().any(|x| x == s))
            .collect();
        spoof::add_sets(&mut self.batch, &table, &missing);
        for s in &missing {
            rep.skeleton(format!("set bridge {table} {s}"));
        }
        let chains = dump::names(&mut self.sock, &table, af, nft::NFT_MSG_GETCHAIN)?;
        if !chains.iter().any(|c| c == spoof::CHAIN) {
            let base = spoof::base();
            skeleton::add_chain(&mut self.batch, af, &table, spoof::CHAIN, Some(base));
            rep.skeleton(format!("chain bridge {table} {}", spoof::CHAIN));
        }
        let rules: Vec<TaggedRule> = dump::all_rules(&mut self.sock, &table, af)?
            .into_iter()
            .filter(|r| r.chain == spoof::CHAIN)
            .collect();
        if rules.len() != spoof::RULES {
            self.del_rules(&rules);
            spoof::add_rules(&mut self.batch, &table);
            rep.skeleton(format!("rules of chain bridge {table} {}", spoof::CHAIN));
        }
        Ok(())
    }
}
