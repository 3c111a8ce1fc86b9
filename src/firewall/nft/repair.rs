//! Putting back what someone else removed from our tables ([`Firewall::repair`]): a
//! flushed ruleset, a deleted or emptied table, a flushed chain or set.
//!
//! Each part is compared with what it should hold, and only a damaged part is rewritten:
//! - a missing table: the family's whole skeleton, every network's rules and elements
//!   and every port's elements (only for a family that one of the networks or ports
//!   has: the `ip6` table is not made for IPv4-only networks);
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
//! [`Firewall::repair`]: crate::firewall::Firewall::repair

use super::batch::Batch;
use super::dump::{self, TaggedRule};
use super::exprs::{self, Fam, FAMILIES};
use super::layout::{
    family_name, network_of, tag, BRIDGES, BRIDGE_CHAIN, BRIDGE_SETS, CHAINS, DNAT, FORWARD,
    NFPROTO_BRIDGE, OUTPUT, PORTS, PORTS_ANY, PREROUTING, PUBLISHED, SET_NAMES,
};
use super::{elems, network, ports, skeleton, spoof};
use crate::error::Result;
use crate::firewall::repair::Repaired;
use crate::firewall::rule::{NetworkRules, PortRule};
use crate::socket::Socket;
use crate::wire::nft;

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

/// Reads our tables `table` (on `sock`) and adds to `batch` whatever puts them right for
/// `nets` and `ports`, noting in `rep` what it restores.
pub(super) fn plan(
    sock: &mut Socket,
    batch: &mut Batch,
    table: &str,
    (nets, ports): (&[NetworkRules], &[PortRule]),
    rep: &mut Repaired,
) -> Result<()> {
    Repair { sock, batch, table }.plan(nets, ports, rep)
}

/// A repair being planned: the socket it reads on, the batch it writes to, our tables'
/// name.
struct Repair<'a> {
    sock: &'a mut Socket,
    batch: &'a mut Batch,
    table: &'a str,
}

impl Repair<'_> {
    /// Reads our tables and adds to the batch whatever puts them right.
    fn plan(
        &mut self,
        nets: &[NetworkRules],
        ports: &[PortRule],
        rep: &mut Repaired,
    ) -> Result<()> {
        if nets.is_empty() && ports.is_empty() {
            return Ok(());
        }
        let table = self.table;
        let present = dump::tables(self.sock, table)?;
        for fam in FAMILIES {
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
            if fnets.is_empty() && fports.is_empty() {
                continue; // a family nobody needs has no table
            }
            // The whole family is gone: build it again as `add_network` and `publish` do.
            skeleton::add(self.batch, fam, table);
            rep.skeleton(format!("table {} {table}", family_name(fam.af)));
            for n in fnets {
                self.readd_network(fam, n, &[]);
                rep.network(&n.name);
            }
            ports::write(self.batch, table, nft::NFT_MSG_NEWSETELEM, &fports);
            fports.iter().for_each(|p| rep.port(p));
        }
        self.repair_spoof(nets, present.contains(&NFPROTO_BRIDGE), rep)
    }

    /// Deletes `old` (rules of network `n`) and adds `n`'s rules and `bridges` element of
    /// family `fam` again.
    fn readd_network(&mut self, fam: Fam, n: &NetworkRules, old: &[TaggedRule]) {
        let table = self.table;
        self.batch.del_rules(table, old);
        network::add(self.batch, fam, table, n, &tag(n));
        network::bridge_elem(self.batch, fam, table, n);
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
        let rules = dump::all_rules(self.sock, self.table, fam.af)?;
        let forward_rebuilt = self.repair_shared(fam, &rules, rep);
        self.repair_networks(fam, nets, &rules, forward_rebuilt, rep)?;
        self.repair_ports(fam, ports, rep)
    }

    /// Creates the sets and chains of family `fam` that are missing.
    fn repair_objects(&mut self, fam: Fam, rep: &mut Repaired) -> Result<()> {
        let table = self.table;
        let (af, fname) = (fam.af, family_name(fam.af));
        let sets = dump::names(self.sock, table, af, nft::NFT_MSG_GETSET)?;
        let missing: Vec<&str> = SET_NAMES
            .into_iter()
            .filter(|s| !sets.iter().any(|x| x == s))
            .collect();
        skeleton::sets(self.batch, fam, table, &missing);
        for s in &missing {
            rep.skeleton(format!("set {fname} {table} {s}"));
        }
        let chains = dump::names(self.sock, table, af, nft::NFT_MSG_GETCHAIN)?;
        let missing: Vec<&str> = CHAINS
            .into_iter()
            .filter(|c| !chains.iter().any(|x| x == c))
            .collect();
        skeleton::chains(self.batch, af, table, &missing);
        for c in &missing {
            rep.skeleton(format!("chain {fname} {table} {c}"));
        }
        Ok(())
    }

    /// Puts back the shared rules of each chain whose shared rules (`rules` of family
    /// `fam`, as read) are not exactly the expected ones at its head. Returns whether
    /// `forward`'s were, whose networks' rules must then follow them again.
    fn repair_shared(&mut self, fam: Fam, rules: &[TaggedRule], rep: &mut Repaired) -> bool {
        let table = self.table;
        let fname = family_name(fam.af);
        let mut forward_rebuilt = false;
        for chain in [PREROUTING, OUTPUT, DNAT, FORWARD] {
            let want = shared_rules(fam, table, chain);
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
            self.batch.del_rules(table, &shared);
            skeleton::chain_rules(self.batch, fam, table, chain);
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
        let table = self.table;
        let bridges = dump::set_elements(self.sock, table, fam.af, BRIDGES)?;
        for n in nets {
            let tag = tag(n);
            let have: Vec<TaggedRule> = rules
                .iter()
                .filter(|r| network_of(r.comment.as_bytes()) == Some(n.name.as_str()))
                .cloned()
                .collect();
            let mut chains: Vec<String> = have.iter().map(|r| r.chain.clone()).collect();
            chains.sort();
            let intact = !forward_rebuilt
                && have.iter().all(|r| r.comment == tag)
                && chains == network_plan(fam, table, n, &tag);
            if !intact {
                self.readd_network(fam, n, &have);
                rep.network(&n.name);
            } else if !bridges.iter().any(|(k, ..)| *k == exprs::ifname(&n.bridge)) {
                network::bridge_elem(self.batch, fam, table, n);
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
        let table = self.table;
        let mut keys = Vec::new();
        for set in [PORTS, PORTS_ANY, PUBLISHED] {
            let have = dump::set_elements(self.sock, table, fam.af, set)?;
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
        ports::write(self.batch, table, nft::NFT_MSG_NEWSETELEM, &missing);
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
        let table = self.table;
        let guarded: Vec<&NetworkRules> = nets
            .iter()
            .filter(|n| !n.enforced_endpoints().is_empty())
            .collect();
        if guarded.is_empty() {
            return Ok(());
        }
        let af = NFPROTO_BRIDGE;
        if !present {
            spoof::add_skeleton(self.batch, table);
            rep.skeleton(format!("table bridge {table}"));
            for n in guarded {
                let want = spoof::wanted(n.enforced_endpoints());
                spoof::elems(self.batch, table, nft::NFT_MSG_NEWSETELEM, &n.name, &want);
                rep.network(&n.name);
            }
            return Ok(());
        }
        self.repair_spoof_objects(rep)?;
        for n in guarded {
            let have = dump::tagged_elems(self.sock, table, af, &BRIDGE_SETS, &n.name)?;
            let missing: Vec<(&'static str, Vec<u8>)> = spoof::wanted(n.enforced_endpoints())
                .into_iter()
                .filter(|(s, k)| !have.iter().any(|h| h.set == *s && h.key == *k))
                .collect();
            if !missing.is_empty() {
                let add = nft::NFT_MSG_NEWSETELEM;
                spoof::elems(self.batch, table, add, &n.name, &missing);
                rep.network(&n.name);
            }
        }
        Ok(())
    }

    /// Creates the bridge table's missing sets and chain, and puts its rules back when
    /// they are not all there.
    fn repair_spoof_objects(&mut self, rep: &mut Repaired) -> Result<()> {
        let (table, af) = (self.table, NFPROTO_BRIDGE);
        let sets = dump::names(self.sock, table, af, nft::NFT_MSG_GETSET)?;
        let missing: Vec<&str> = BRIDGE_SETS
            .into_iter()
            .filter(|s| !sets.iter().any(|x| x == s))
            .collect();
        spoof::add_sets(self.batch, table, &missing);
        for s in &missing {
            rep.skeleton(format!("set bridge {table} {s}"));
        }
        let chains = dump::names(self.sock, table, af, nft::NFT_MSG_GETCHAIN)?;
        if !chains.iter().any(|c| c == BRIDGE_CHAIN) {
            let base = spoof::base();
            skeleton::add_chain(self.batch, af, table, BRIDGE_CHAIN, Some(base));
            rep.skeleton(format!("chain bridge {table} {BRIDGE_CHAIN}"));
        }
        let rules: Vec<TaggedRule> = dump::all_rules(self.sock, table, af)?
            .into_iter()
            .filter(|r| r.chain == BRIDGE_CHAIN)
            .collect();
        if rules.len() != spoof::RULES {
            self.batch.del_rules(table, &rules);
            spoof::add_rules(self.batch, table);
            rep.skeleton(format!("rules of chain bridge {table} {BRIDGE_CHAIN}"));
        }
        Ok(())
    }
}
