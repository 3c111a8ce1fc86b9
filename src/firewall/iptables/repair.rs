//! Putting back what someone else removed ([`Firewall::repair`]) in the iptables layout:
//! flushed or deleted chains, deleted jumps, a flushed `FORWARD`, a ruleset flushed under
//! iptables-nft.
//!
//! One read and (when something is missing) one restore per family, under our lock:
//! - the skeleton (chains, jumps, their places in `FORWARD`, the isolation bypass) is
//!   completed as every change does;
//! - a network whose tagged rules differ, per table and chain, in number or in tag from
//!   what its settings make gets all its rules again;
//! - so does a published port whose three rules are not all there.
//!
//! [`Firewall::repair`]: crate::firewall::Firewall::repair

use super::render::{self, Family, Rule, Table, Tag};
use super::save::Edit;
use super::Iptables;
use crate::error::Result;
use crate::firewall::repair::Repaired;
use crate::firewall::rule::{NetworkRules, PortRule};

/// The (table, chain) of each rule, sorted: what "the same rules" is compared on.
fn places<'a>(it: impl Iterator<Item = (Table, &'a str)>) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = it.map(|(t, c)| (t.name(), c.to_owned())).collect();
    v.sort();
    v
}

impl Iptables {
    /// [`Firewall::repair`](crate::firewall::Firewall::repair) for iptables.
    pub(super) fn repair_all(
        &mut self,
        nets: &[NetworkRules],
        ports: &[PortRule],
    ) -> Result<Repaired> {
        crate::firewall::repair::validate_all(nets, ports)?;
        let mut rep = Repaired::default();
        if nets.is_empty() && ports.is_empty() {
            return Ok(rep);
        }
        self.transact(&Family::BOTH, &mut |fw, fam, e| {
            fw.repair_family(e, fam, nets, ports, &mut rep);
            Ok(())
        })?;
        rep.sort();
        Ok(rep)
    }

    fn repair_family(
        &self,
        e: &mut Edit,
        fam: Family,
        nets: &[NetworkRules],
        ports: &[PortRule],
        rep: &mut Repaired,
    ) {
        let wanted: Vec<(&NetworkRules, Vec<Rule>)> = nets
            .iter()
            .map(|n| (n, render::network(&self.names, n, fam)))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        let fports: Vec<&PortRule> = ports
            .iter()
            .filter(|p| Family::of(&p.container_ip) == fam)
            .collect();
        if wanted.is_empty() && fports.is_empty() {
            return;
        }
        let before = e.len();
        self.ensure_skeleton(e, fam);
        if e.len() > before {
            let bin = if fam == Family::V4 {
                "iptables"
            } else {
                "ip6tables"
            };
            rep.skeleton(format!("{bin}: chains and jumps"));
        }
        for (n, want) in wanted {
            if !self.net_intact(e, n, &want) {
                let mine = |t: Tag<'_>| matches!(t, Tag::Net { network, .. } if network == n.name);
                self.delete_where(e, mine);
                self.add_rules(e, &want);
                rep.network(&n.name);
            }
        }
        for p in fports {
            if !self.port_intact(e, p) {
                let key = render::port_key(p);
                let mine = |t: Tag<'_>| matches!(t, Tag::Port { network, key: k } if network == p.network && k == key);
                self.delete_where(e, mine);
                self.add_rules(e, &render::port(&self.names, p));
                rep.port(p);
            }
        }
    }

    /// Whether network `n`'s rules there now are exactly `want`, by place and tag.
    fn net_intact(&self, e: &Edit, n: &NetworkRules, want: &[Rule]) -> bool {
        let tag = self.names.net_tag(n);
        let tagged = self.tagged(&e.now);
        let have: Vec<_> = tagged
            .iter()
            .filter(|(.., cm)| {
                matches!(self.names.parse_tag(cm), Some(Tag::Net { network, .. }) if network == n.name)
            })
            .collect();
        have.iter().all(|(.., cm)| *cm == tag)
            && places(have.iter().map(|(t, c, ..)| (*t, *c)))
                == places(want.iter().map(|r| (r.table, r.chain.as_str())))
    }

    /// Whether published port `p`'s three rules are all there, with its tag and target.
    fn port_intact(&self, e: &Edit, p: &PortRule) -> bool {
        let (tag, key) = (self.names.port_tag(p), render::port_key(p));
        let tagged = self.tagged(&e.now);
        let have: Vec<_> = tagged
            .iter()
            .filter(|(.., cm)| {
                matches!(self.names.parse_tag(cm), Some(Tag::Port { network, key: k }) if network == p.network && k == key)
            })
            .collect();
        let want = render::port(&self.names, p);
        let target_ok = have.iter().any(|(t, c, r, _)| {
            *t == Table::Nat
                && *c == self.names.docker
                && super::save::option(r, "--to-destination") == Some(render::dnat_target(p))
        });
        target_ok
            && have.iter().all(|(.., cm)| *cm == tag)
            && places(have.iter().map(|(t, c, ..)| (*t, *c)))
                == places(want.iter().map(|r| (r.table, r.chain.as_str())))
    }
}
