//! `iptables-save` output read into a small model of the nat and filter tables, and the
//! edits made to that model written out as `iptables-restore --noflush` input.
//!
//! Every edit is applied to the model as it is written, so positions (`-I FORWARD N`) and
//! "is this chain still referenced" are answered against the state the restore will
//! meet, not the one that was read.

use std::fmt::Write as _;

use super::render::Table;

/// One chain and its rules, as `iptables-save` prints them after `-A CHAIN `.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Chain {
    pub name: String,
    pub rules: Vec<String>,
}

/// The nat and filter tables of one family (other tables are not ours and are skipped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Ruleset {
    tables: [Vec<Chain>; 2],
}

fn index(t: Table) -> usize {
    match t {
        Table::Nat => 0,
        Table::Filter => 1,
    }
}

impl Ruleset {
    /// Reads `iptables-save` output (any variant; comments, counters and other tables are
    /// skipped).
    pub(super) fn parse(text: &str) -> Ruleset {
        let mut rs = Ruleset::default();
        let mut table: Option<Table> = None;
        for line in text.lines().map(str::trim_end) {
            if let Some(name) = line.strip_prefix('*') {
                table = Table::BOTH.into_iter().find(|t| t.name() == name);
            } else if let (Some(t), Some(decl)) = (table, line.strip_prefix(':')) {
                let name = decl.split_whitespace().next().unwrap_or_default();
                rs.chain_mut(t, name);
            } else if let (Some(t), Some(rule)) = (table, line.strip_prefix("-A ")) {
                let (chain, spec) = rule.split_once(' ').unwrap_or((rule, ""));
                rs.chain_mut(t, chain).rules.push(spec.to_owned());
            }
        }
        rs
    }

    /// The chains of table `t`.
    pub(super) fn chains(&self, t: Table) -> &[Chain] {
        &self.tables[index(t)]
    }

    pub(super) fn chain(&self, t: Table, name: &str) -> Option<&Chain> {
        self.tables[index(t)].iter().find(|c| c.name == name)
    }

    /// The rules of a chain (none when it does not exist).
    pub(super) fn rules(&self, t: Table, name: &str) -> &[String] {
        self.chain(t, name).map_or(&[], |c| &c.rules)
    }

    fn chain_mut(&mut self, t: Table, name: &str) -> &mut Chain {
        let chains = &mut self.tables[index(t)];
        let i = match chains.iter().position(|c| c.name == name) {
            Some(i) => i,
            None => {
                chains.push(Chain {
                    name: name.to_owned(),
                    rules: Vec::new(),
                });
                chains.len() - 1
            }
        };
        &mut chains[i]
    }

    /// Rules of table `t` (in any chain) that jump to `target`.
    pub(super) fn references(&self, t: Table, target: &str) -> usize {
        self.chains(t)
            .iter()
            .filter(|c| c.name != target)
            .flat_map(|c| &c.rules)
            .filter(|r| self::target(r) == Some(target))
            .count()
    }
}

/// The words of a rule, with `"..."` quoting (and `\"` inside it) undone.
pub(super) fn words(spec: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut escaped, mut any) = (false, false, false);
    for ch in spec.chars() {
        match ch {
            _ if escaped => {
                cur.push(ch);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The value after option `opt` (`--comment`, `--to-destination`, ...).
pub(super) fn option(spec: &str, opt: &str) -> Option<String> {
    let w = words(spec);
    let i = w.iter().position(|x| x == opt)?;
    w.get(i + 1).cloned()
}

/// The `-j` target of a rule.
pub(super) fn target(spec: &str) -> Option<&str> {
    let mut it = spec.split_whitespace();
    while let Some(w) = it.next() {
        if w == "-j" || w == "-g" {
            return it.next();
        }
    }
    None
}

/// The rule's `-m comment` text.
pub(super) fn comment(spec: &str) -> Option<String> {
    if !spec.contains("--comment") {
        return None;
    }
    option(spec, "--comment")
}

/// A model being edited and the `iptables-restore --noflush` lines that do the same.
#[derive(Debug)]
pub(super) struct Edit {
    pub now: Ruleset,
    lines: [Vec<String>; 2],
}

impl Edit {
    pub(super) fn new(read: Ruleset) -> Edit {
        Edit {
            now: read,
            lines: Default::default(),
        }
    }

    fn push(&mut self, t: Table, line: String) {
        self.lines[index(t)].push(line);
    }

    /// Creates a chain (only call when it is missing: `:CHAIN` flushes an existing one).
    pub(super) fn new_chain(&mut self, t: Table, name: &str) {
        self.now.chain_mut(t, name);
        self.push(t, format!(":{name} - [0:0]"));
    }

    pub(super) fn append(&mut self, t: Table, chain: &str, spec: &str) {
        self.now.chain_mut(t, chain).rules.push(spec.to_owned());
        self.push(t, format!("-A {chain} {spec}"));
    }

    /// Inserts at 1-based position `pos` (clamped to the end of the chain).
    pub(super) fn insert(&mut self, t: Table, chain: &str, pos: usize, spec: &str) {
        let rules = &mut self.now.chain_mut(t, chain).rules;
        let pos = pos.clamp(1, rules.len() + 1);
        rules.insert(pos - 1, spec.to_owned());
        self.push(t, format!("-I {chain} {pos} {spec}"));
    }

    /// Deletes the first rule of `chain` equal to `spec` (as read back).
    pub(super) fn delete(&mut self, t: Table, chain: &str, spec: &str) {
        let rules = &mut self.now.chain_mut(t, chain).rules;
        if let Some(i) = rules.iter().position(|r| r == spec) {
            rules.remove(i);
            self.push(t, format!("-D {chain} {spec}"));
        }
    }

    /// Empties and deletes a chain nobody jumps to any more.
    pub(super) fn remove_chain(&mut self, t: Table, name: &str) {
        let chains = &mut self.now.tables[index(t)];
        if let Some(i) = chains.iter().position(|c| c.name == name) {
            if !chains[i].rules.is_empty() {
                self.push(t, format!("-F {name}"));
            }
            self.now.tables[index(t)].remove(i);
            self.push(t, format!("-X {name}"));
        }
    }

    /// How many restore lines the edits so far make.
    pub(super) fn len(&self) -> usize {
        self.lines.iter().map(Vec::len).sum()
    }

    /// The restore input, or `None` when nothing changes.
    pub(super) fn input(&self) -> Option<String> {
        let mut s = String::new();
        for t in Table::BOTH {
            let lines = &self.lines[index(t)];
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(s, "*{}", t.name());
            for l in lines {
                s.push_str(l);
                s.push('\n');
            }
            s.push_str("COMMIT\n");
        }
        (!s.is_empty()).then_some(s)
    }

    /// Line `n` (1-based) of [`input`](Self::input), for error messages.
    pub(super) fn line(&self, n: usize) -> Option<String> {
        self.input()?
            .lines()
            .nth(n.checked_sub(1)?)
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = "# Generated by iptables-nft-save v1.8.9 (nf_tables) on Mon Nov 23 11:21:58 2026
*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [12:720]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A DOCKER -p tcp -m tcp --dport 80 -m comment --comment \"netplumb net=x h=1\" -j DNAT --to-destination 10.1.1.1:80
COMMIT
# Warning: iptables-legacy tables present, use iptables-legacy-save to see them
";

    #[test]
    fn parse_and_edit() {
        let rs = Ruleset::parse(SAVED);
        assert_eq!(rs.chains(Table::Nat).len(), 2);
        assert!(rs.chains(Table::Filter).is_empty(), "raw is not read");
        let dnat = rs.rules(Table::Nat, "DOCKER")[0].clone();
        assert_eq!(comment(&dnat).as_deref(), Some("netplumb net=x h=1"));
        assert_eq!(target(&dnat), Some("DNAT"));
        assert_eq!(
            option(&dnat, "--to-destination").as_deref(),
            Some("10.1.1.1:80")
        );
        assert_eq!(rs.references(Table::Nat, "DOCKER"), 1);
        let mut e = Edit::new(rs);
        assert_eq!(e.input(), None);
        e.new_chain(Table::Filter, "DOCKER-USER");
        e.insert(Table::Filter, "FORWARD", 5, "-j DOCKER-USER");
        e.delete(Table::Nat, "DOCKER", &dnat);
        e.delete(Table::Nat, "DOCKER", "-j nothing-like-this");
        e.delete(
            Table::Nat,
            "PREROUTING",
            "-m addrtype --dst-type LOCAL -j DOCKER",
        );
        e.remove_chain(Table::Nat, "DOCKER");
        assert_eq!(
            e.input().unwrap(),
            format!(
                "*nat\n-D DOCKER {dnat}\n-D PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n-X DOCKER\nCOMMIT\n\
                 *filter\n:DOCKER-USER - [0:0]\n-I FORWARD 1 -j DOCKER-USER\nCOMMIT\n"
            )
        );
        assert_eq!(e.line(4).as_deref(), Some("-X DOCKER"));
        assert!(e.now.chain(Table::Nat, "DOCKER").is_none());
    }

    #[test]
    fn words_undo_quoting() {
        assert_eq!(
            words(r#"-m comment --comment "a \"b\" c" -j X"#),
            ["-m", "comment", "--comment", "a \"b\" c", "-j", "X"]
        );
        assert_eq!(words(r#"--comment "" -j X"#), ["--comment", "", "-j", "X"]);
    }
}
