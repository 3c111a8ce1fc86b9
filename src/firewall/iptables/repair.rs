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

use super::chains;
use super::render::{self, Family, Names, Rule, Table, Tag};
use super::save::{self, Edit};
use crate::firewall::repair::Repaired;
use crate::firewall::rule::{NetworkRules, PortRule};

/// The (table, chain) of each rule, sorted: what "the same rules" is compared on.
fn places<'a>(it: impl Iterator<Item = (Table, &'a str)>) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = it.map(|(t, c)| (t.name(), c.to_owned())).collect();
    v.sort();
    v
}

/// Adds to `e` (the rules of family `fam`) whatever puts back what `nets` and `ports`
/// need, noting in `rep` what it restores.
pub(super) fn family(
    names: &Names,
    e: &mut Edit,
    fam: Family,
    (nets, ports): (&[NetworkRules], &[PortRule]),
    rep: &mut Repaired,
) {
    let wanted: Vec<(&NetworkRules, Vec<Rule>)> = nets
        .iter()
        .map(|n| (n, render::network(names, n, fam)))
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
    chains::ensure_skeleton(names, e, fam);
    if e.len() > before {
        let bin = if fam == Family::V4 {
            "iptables"
        } else {
            "ip6tables"
        };
        rep.skeleton(format!("{bin}: chains and jumps"));
    }
    for (n, want) in wanted {
        if !net_intact(names, e, n, &want) {
            let mine = |t: Tag<'_>| matches!(t, Tag::Net { network, .. } if network == n.name);
            chains::delete_where(names, e, mine);
            chains::add_rules(names, e, &want);
            rep.network(&n.name);
        }
    }
    for p in fports {
        if !port_intact(names, e, p) {
            let key = render::port_key(p);
            let mine = |t: Tag<'_>| matches!(t, Tag::Port { network, key: k } if network == p.network && k == key);
            chains::delete_where(names, e, mine);
            chains::add_rules(names, e, &render::port(names, p));
            rep.port(p);
        }
    }
}

/// Whether network `n`'s rules there now are exactly `want`, by place and tag.
fn net_intact(names: &Names, e: &Edit, n: &NetworkRules, want: &[Rule]) -> bool {
    let tag = names.net_tag(n);
    let tagged = chains::tagged(names, &e.now);
    let have: Vec<_> = tagged
        .iter()
        .filter(|(.., cm)| {
            matches!(names.parse_tag(cm), Some(Tag::Net { network, .. }) if network == n.name)
        })
        .collect();
    have.iter().all(|(.., cm)| *cm == tag)
        && places(have.iter().map(|(t, c, ..)| (*t, *c)))
            == places(want.iter().map(|r| (r.table, r.chain.as_str())))
}

/// Whether published port `p`'s three rules are all there, with its tag and target.
fn port_intact(names: &Names, e: &Edit, p: &PortRule) -> bool {
    let (tag, key) = (names.port_tag(p), render::port_key(p));
    let tagged = chains::tagged(names, &e.now);
    let have: Vec<_> = tagged
        .iter()
        .filter(|(.., cm)| {
            matches!(names.parse_tag(cm), Some(Tag::Port { network, key: k }) if network == p.network && k == key)
        })
        .collect();
    let want = render::port(names, p);
    let target_ok = have.iter().any(|(t, c, r, _)| {
        *t == Table::Nat
            && *c == names.docker
            && save::option(r, "--to-destination") == Some(render::dnat_target(p))
    });
    target_ok
        && have.iter().all(|(.., cm)| *cm == tag)
        && places(have.iter().map(|(t, c, ..)| (*t, *c)))
            == places(want.iter().map(|r| (r.table, r.chain.as_str())))
}
