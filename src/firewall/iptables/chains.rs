//! Our rules in one family's ruleset being edited: the skeleton (our chains, the jumps to
//! them and their places in `FORWARD`), and the rules that carry our tags, found,
//! deleted, and added at their places.

use super::render::{self, Family, Names, Place, Rule, Table, Tag};
use super::save::{self, Edit, Ruleset};

/// The built-in chains we jump from.
const BUILTIN: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// The rules of `rs` that carry one of our tags: table, chain, rule, comment.
pub(super) fn tagged<'a>(names: &Names, rs: &'a Ruleset) -> Vec<(Table, &'a str, &'a str, String)> {
    let mut out = Vec::new();
    for t in Table::BOTH {
        for c in rs.chains(t) {
            for r in &c.rules {
                if let Some(cm) = save::comment(r) {
                    if names.parse_tag(&cm).is_some() {
                        out.push((t, c.name.as_str(), r.as_str(), cm));
                    }
                }
            }
        }
    }
    out
}

/// Deletes every tagged rule whose tag passes `pick`.
pub(super) fn delete_where(names: &Names, e: &mut Edit, pick: impl Fn(Tag<'_>) -> bool) {
    let doomed: Vec<(Table, String, String)> = tagged(names, &e.now)
        .into_iter()
        .filter(|(.., cm)| names.parse_tag(cm).is_some_and(&pick))
        .map(|(t, c, r, _)| (t, c.to_owned(), r.to_owned()))
        .collect();
    for (t, c, r) in doomed {
        e.delete(t, &c, &r);
    }
}

/// Adds the skeleton pieces that are missing: chains, the jumps, `USER` first in
/// `FORWARD` with the isolation jump right after it, and the isolation bypass.
pub(super) fn ensure_skeleton(names: &Names, e: &mut Edit, fam: Family) {
    let n = names;
    let sk = render::skeleton(n, fam);
    for t in Table::BOTH {
        for c in n.chains(t) {
            if e.now.chain(t, c).is_none() {
                e.new_chain(t, c);
            }
        }
    }
    for (chain, spec) in [("PREROUTING", &sk.prerouting), ("OUTPUT", &sk.output)] {
        if !e
            .now
            .rules(Table::Nat, chain)
            .iter()
            .any(|r| is_jump(r, &n.docker))
        {
            e.append(Table::Nat, chain, spec);
        }
    }
    for (pos, (chain, spec)) in [(&n.user, &sk.user), (&n.stage1, &sk.stage1)]
        .into_iter()
        .enumerate()
    {
        let fwd = e.now.rules(Table::Filter, "FORWARD");
        if fwd.get(pos).is_some_and(|r| is_jump(r, chain)) {
            continue;
        }
        let stale: Vec<String> = fwd.iter().filter(|r| is_jump(r, chain)).cloned().collect();
        for r in stale {
            e.delete(Table::Filter, "FORWARD", &r);
        }
        e.insert(Table::Filter, "FORWARD", pos + 1, spec);
    }
    if e.now.rules(Table::Filter, &n.stage1).first() != Some(&sk.dnat_return) {
        e.delete(Table::Filter, &n.stage1, &sk.dnat_return);
        e.insert(Table::Filter, &n.stage1, 1, &sk.dnat_return);
    }
}

/// An untagged jump to `chain` (the skeleton's jumps carry no comment).
fn is_jump(rule: &str, chain: &str) -> bool {
    save::target(rule) == Some(chain) && save::comment(rule).is_none()
}

/// Adds rules at their places.
pub(super) fn add_rules(names: &Names, e: &mut Edit, rules: &[Rule]) {
    let n = names;
    let mut after = None;
    for r in rules {
        match r.place {
            Place::Append => e.append(r.table, &r.chain, &r.spec),
            Place::Top => e.insert(r.table, &r.chain, 1, &r.spec),
            Place::AfterJumps => {
                let pos = *after.get_or_insert_with(|| {
                    let fwd = e.now.rules(Table::Filter, "FORWARD");
                    fwd.iter()
                        .rposition(|x| is_jump(x, &n.stage1) || is_jump(x, &n.user))
                        .map_or(1, |i| i + 2)
                });
                e.insert(r.table, &r.chain, pos, &r.spec);
                after = Some(pos + 1);
            }
        }
    }
}

/// Once no tagged rule of ours is left: removes the jumps and our chains. The users'
/// chain (and its jump) stays while it holds rules, unless `all`.
pub(super) fn remove_skeleton(names: &Names, e: &mut Edit, all: bool) {
    if !tagged(names, &e.now).is_empty() {
        return;
    }
    let n = names;
    let keep_user = !all && !e.now.rules(Table::Filter, &n.user).is_empty();
    for t in Table::BOTH {
        let ours: Vec<&str> = n
            .chains(t)
            .into_iter()
            .filter(|c| !(keep_user && *c == n.user))
            .collect();
        let builtin: Vec<(String, String)> = e
            .now
            .chains(t)
            .iter()
            .filter(|c| BUILTIN.contains(&c.name.as_str()))
            .flat_map(|c| {
                c.rules
                    .iter()
                    .filter(|r| ours.iter().any(|o| is_jump(r, o)))
                    .map(move |r| (c.name.clone(), r.clone()))
            })
            .collect();
        for (c, r) in builtin {
            e.delete(t, &c, &r);
        }
        // Our chains may jump to each other: drop those references before counting
        // who else still uses a chain (never delete one another tool jumps to).
        let inner: Vec<(String, String)> = ours
            .iter()
            .flat_map(|c| {
                e.now
                    .rules(t, c)
                    .iter()
                    .filter(|r| save::target(r).is_some_and(|x| ours.contains(&x)))
                    .map(move |r| (c.to_string(), r.clone()))
            })
            .collect();
        for (c, r) in inner {
            e.delete(t, &c, &r);
        }
        for c in ours {
            if e.now.references(t, c) == 0 {
                e.remove_chain(t, c);
            }
        }
    }
}
