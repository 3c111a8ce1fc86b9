//! File-level import cycles inside one folder of `src/`.
//!
//! For each folder, the nodes are its module file (`mod.rs`, or `x.rs` beside `x/`) and its
//! children (a file `y.rs`, or a subfolder `y/` taken whole). Node A has an edge to sibling
//! B when a file of A names an item that B defines: through `super::b::…`,
//! `super::super::…`, `crate::<path to b>::…`, `self::b::…` or a bare `b::…` in the module
//! file, or through `super::Item` when the module file re-exports `Item` from B. A child
//! that names an item *defined* in the module file has an edge to it; the module file's own
//! `mod` declarations and `pub use` re-exports of its children make no edge back. Paths
//! are read from `use` trees and from code, with comments and literals blanked out, and
//! `super` inside an inline `mod … { }` counts from that module.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One file of the crate: its module path (`["network", "host"]`) and its text with
/// comments, strings and chars blanked (same length and lines as the original).
struct File {
    name: String,
    module: Vec<String>,
    code: String,
    /// Inline modules: (start, end, name) byte spans of their bodies.
    inline: Vec<(usize, usize, String)>,
}

/// A path named at byte `at`, from the module `from` (the file's module plus the inline
/// modules around `at`); `reexport` when it is a `pub use` item.
struct Named {
    at: usize,
    from: Vec<String>,
    path: Vec<String>,
    alias: Option<String>,
    /// From a `use` item (else from code).
    is_use: bool,
    reexport: bool,
}

/// One edge of a folder's graph: from node, to node, where (`file:line`).
type Edge = (String, String, String);

/// The import cycles among the files of each folder, one line per cycle: the folder, its
/// files, and where each edge of the cycle is.
pub fn find(files: &[(String, String)]) -> Vec<String> {
    let files: Vec<File> = files.iter().map(|(n, t)| File::new(n, t)).collect();
    let crate_ = Crate::new(&files);
    let mut graphs: BTreeMap<Vec<String>, Vec<Edge>> = BTreeMap::new();
    for f in &files {
        for n in &crate_.named[&f.module] {
            if let Some((folder, a, b)) = crate_.edge(f, n) {
                let line = f.code[..n.at].matches('\n').count() + 1;
                graphs
                    .entry(folder)
                    .or_default()
                    .push((a, b, format!("{}:{line}", f.name)));
            }
        }
    }
    let mut out = Vec::new();
    for (folder, edges) in graphs {
        for scc in strongly_connected(&edges) {
            let mut seen = BTreeSet::new();
            let wheres: Vec<String> = edges
                .iter()
                .filter(|(a, b, _)| scc.contains(a) && scc.contains(b))
                .filter(|(a, b, _)| seen.insert((a.clone(), b.clone())))
                .map(|(a, b, at)| format!("{a} -> {b} ({at})"))
                .collect();
            let names: Vec<&str> = scc.iter().map(String::as_str).collect();
            out.push(format!(
                "src/{}: {} [{}]",
                folder.join("/"),
                names.join(", "),
                wheres.join("; ")
            ));
        }
    }
    out
}

impl File {
    fn new(name: &str, text: &str) -> File {
        let mut module: Vec<String> = name
            .trim_end_matches(".rs")
            .split('/')
            .map(str::to_string)
            .collect();
        if module.last().is_some_and(|m| m == "mod") || module == ["lib"] {
            module.pop(); // a folder's module file, or the crate root
        }
        let code = blank(text);
        let inline = inline_modules(&code);
        File {
            name: name.to_string(),
            module,
            code,
            inline,
        }
    }

    /// The module at byte `at`: the file's, plus the inline modules around it.
    fn module_at(&self, at: usize) -> Vec<String> {
        let mut m = self.module.clone();
        for (s, e, name) in &self.inline {
            if *s <= at && at < *e {
                m.push(name.clone());
            }
        }
        m
    }

    /// Every path this file names: the leaves of its `use` trees, then the paths in code.
    fn paths(&self) -> Vec<Named> {
        let mut out = Vec::new();
        let mut rest = self.code.clone();
        for (start, end) in words(&self.code, "use") {
            let Some(semi) = self.code[end..].find(';') else {
                continue;
            };
            let before = self.code[..start].trim_end();
            let reexport = before.ends_with("pub")
                || before.ends_with(')') && {
                    let open = before.rfind('(').unwrap_or(0);
                    before[..open].trim_end().ends_with("pub")
                };
            let tree = &self.code[end..end + semi];
            for (path, alias) in use_tree(tree) {
                out.push(Named {
                    at: start,
                    from: self.module_at(start),
                    path,
                    alias,
                    is_use: true,
                    reexport,
                });
            }
            rest.replace_range(start..end + semi, &" ".repeat(end + semi - start));
        }
        for (at, path) in code_paths(&rest) {
            out.push(Named {
                at,
                from: self.module_at(at),
                path,
                alias: None,
                is_use: false,
                reexport: false,
            });
        }
        out
    }
}

/// What the crate is made of: its modules, and the paths each file names.
struct Crate<'a> {
    files: HashMap<Vec<String>, &'a File>,
    /// Every module, by path: file modules and inline ones.
    modules: BTreeSet<Vec<String>>,
    /// The paths each file names, by the file's module.
    named: HashMap<Vec<String>, Vec<Named>>,
}

impl<'a> Crate<'a> {
    fn new(files: &'a [File]) -> Crate<'a> {
        let mut modules = BTreeSet::new();
        for f in files {
            modules.insert(f.module.clone());
            for (s, _, _) in &f.inline {
                modules.insert(f.module_at(*s));
            }
        }
        Crate {
            files: files.iter().map(|f| (f.module.clone(), f)).collect(),
            named: files
                .iter()
                .map(|f| (f.module.clone(), f.paths()))
                .collect(),
            modules,
        }
    }

    /// The absolute path of `path` named from module `from`; `None` for a path outside
    /// the crate (a dependency, std) or a local name.
    fn absolute(&self, from: &[String], path: &[String]) -> Option<Vec<String>> {
        let first = path.first()?.as_str();
        let abs = match first {
            "crate" => path[1..].to_vec(),
            "self" => [from, &path[1..]].concat(),
            "super" => {
                let ups = path.iter().take_while(|s| *s == "super").count();
                let base = from.get(..from.len().checked_sub(ups)?)?;
                [base, &path[ups..]].concat()
            }
            _ => {
                let child = [from, &path[..1]].concat();
                if !self.modules.contains(&child) {
                    return None;
                }
                [from, path].concat()
            }
        };
        Some(abs)
    }

    /// Splits an absolute path into its deepest module and the item names after it.
    fn split(&self, abs: &[String]) -> (Vec<String>, Vec<String>) {
        let mut n = abs.len();
        while n > 0 && !self.modules.contains(&abs[..n]) {
            n -= 1;
        }
        (abs[..n].to_vec(), abs[n..].to_vec())
    }

    /// The edge `n` makes in the graph of some folder: (folder, from node, to node).
    fn edge(&self, f: &File, n: &Named) -> Option<(Vec<String>, String, String)> {
        let abs = self.absolute(&n.from, &n.path)?;
        let (target, items) = self.split(&abs);
        let here = &f.module;
        let common = here.iter().zip(&target).take_while(|(a, b)| a == b).count();
        if common == 0 {
            return None; // between top-level modules: the layer map's business
        }
        let folder = here[..common].to_vec();
        let node_of = |m: &[String]| self.node(&folder, m);
        match (here.len() > common, target.len() > common) {
            // Two siblings under `folder`.
            (true, true) => Some((folder.clone(), node_of(here), node_of(&target))),
            // A file naming an item of an enclosing module: where that item comes from.
            (true, false) => {
                let to = self.item_home(&folder, items.first()?)?;
                Some((folder.clone(), node_of(here), to))
            }
            // The module file naming into a child; re-exports make no edge.
            (false, true) if !n.reexport => Some((
                folder.clone(),
                self.node(&folder, &folder),
                node_of(&target),
            )),
            _ => None,
        }
    }

    /// The node of `folder`'s graph that module `m` (inside `folder`) belongs to: a child
    /// file (`host.rs`), a child folder taken whole (`files/`), or the module file.
    fn node(&self, folder: &[String], m: &[String]) -> String {
        let child = m.get(..folder.len() + 1);
        match child.filter(|c| self.files.contains_key(*c)) {
            Some(c)
                if self
                    .files
                    .keys()
                    .any(|k| k.len() > c.len() && k.starts_with(c)) =>
            {
                format!("{}/", c[folder.len()])
            }
            Some(c) => format!("{}.rs", c[folder.len()]),
            // The module file, or an inline module in it.
            None => {
                let name = &self.files[folder].name;
                name.rsplit('/').next().unwrap_or(name).to_string()
            }
        }
    }

    /// The node of `folder`'s graph where the item `name` of `folder`'s module file comes
    /// from: the child it is imported from, or the module file that defines it; `None` when
    /// it comes from outside the folder.
    fn item_home(&self, folder: &[String], name: &str) -> Option<String> {
        let uses = self.named.get(folder)?;
        let import = uses.iter().find(|n| {
            n.is_use
                && n.from == folder
                && n.alias.as_deref().or(n.path.last().map(String::as_str)) == Some(name)
        });
        let Some(import) = import else {
            return Some(self.node(folder, folder)); // defined there
        };
        let (m, _) = self.split(&self.absolute(folder, &import.path)?);
        (m.len() > folder.len() && m.starts_with(folder)).then(|| self.node(folder, &m))
    }
}

/// Blanks comments, string and char literals (keeping newlines and byte offsets).
fn blank(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    let wipe = |out: &mut Vec<u8>, s: usize, e: usize| {
        for c in &mut out[s..e] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        let end = if rest.starts_with(b"//") {
            i + rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            i + 2 + position(&rest[2..], b"*/").map_or(rest.len() - 2, |p| p + 2)
        } else if rest.starts_with(b"r#\"") || rest.starts_with(b"r\"") {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            let close: Vec<u8> = std::iter::once(b'"').chain(vec![b'#'; hashes]).collect();
            let open = 2 + hashes;
            i + open
                + position(&rest[open..], &close).map_or(rest.len() - open, |p| p + close.len())
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            i + (j + 1).min(rest.len())
        } else if rest[0] == b'\'' && rest.get(1) == Some(&b'\\') {
            i + 2
                + rest[2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map_or(0, |p| p + 1)
        } else if rest[0] == b'\'' && rest.get(2) == Some(&b'\'') {
            i + 3
        } else {
            i += 1;
            continue;
        };
        let ident_before = i > 0 && is_ident(b[i - 1]);
        if ident_before && rest[0] == b'r' {
            i += 1; // an identifier ending in r, not a raw string
            continue;
        }
        wipe(&mut out, i, end);
        i = end;
    }
    String::from_utf8(out).expect("blanking keeps UTF-8 (only ASCII is replaced)")
}

fn position(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The byte spans (start, end) of the keyword `word` standing alone.
fn words<'t>(code: &'t str, word: &'t str) -> impl Iterator<Item = (usize, usize)> + 't {
    let b = code.as_bytes();
    code.match_indices(word).filter_map(move |(at, _)| {
        let end = at + word.len();
        let before = at == 0 || !(is_ident(b[at - 1]) || b[at - 1] == b'#');
        let after = b.get(end).is_some_and(|c| c.is_ascii_whitespace());
        (before && after).then_some((at, end))
    })
}

/// The bodies of inline modules (`mod name { … }`): (start, end, name).
fn inline_modules(code: &str) -> Vec<(usize, usize, String)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for (_, end) in words(code, "mod") {
        let rest = &code[end..];
        let name_len = rest
            .trim_start()
            .bytes()
            .take_while(|&c| is_ident(c))
            .count();
        let name_at = end + (rest.len() - rest.trim_start().len());
        let after = code[name_at + name_len..].trim_start();
        if name_len == 0 || !after.starts_with('{') {
            continue;
        }
        let open = code.len() - after.len();
        let mut depth = 0;
        let close = (open..b.len()).find(|&i| {
            match b[i] {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
            depth == 0
        });
        let name = code[name_at..name_at + name_len].to_string();
        out.push((open, close.unwrap_or(b.len()), name));
    }
    out
}

/// The leaves of a `use` tree (`super::{a, b::{self, C as D}}`): each full path and its
/// alias.
fn use_tree(tree: &str) -> Vec<(Vec<String>, Option<String>)> {
    let tokens = tokens(tree);
    let mut out = Vec::new();
    let mut i = 0;
    subtree(&tokens, &mut i, &[], &mut out);
    out
}

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut end = at + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !(d.is_alphanumeric() || d == '_') {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            out.push(text[at..end].to_string());
        } else if c == ':' {
            if chars.peek().map(|&(_, d)| d) == Some(':') {
                chars.next();
                out.push("::".into());
            }
        } else if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    out
}

/// Reads one use tree at `t[*i]` below `prefix`, pushing its leaves to `out`.
fn subtree(
    t: &[String],
    i: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let mut path = prefix.to_vec();
    while let Some(tok) = t.get(*i) {
        *i += 1;
        match tok.as_str() {
            "::" => continue,
            "{" => {
                while t.get(*i).is_some_and(|s| s != "}") {
                    subtree(t, i, &path, out);
                    if t.get(*i).is_some_and(|s| s == ",") {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            // `a::{self}` names `a` itself
            "self" if !path.is_empty() => {}
            word => path.push(word.to_string()),
        }
        if t.get(*i).is_some_and(|s| s == "::") {
            continue;
        }
        let mut alias = None;
        if t.get(*i).is_some_and(|s| s == "as") {
            alias = t.get(*i + 1).cloned();
            *i += 2;
        }
        out.push((path, alias));
        return;
    }
}

/// Paths with at least two segments in code (`super::host::Host`, `files::hosts`), and
/// where each starts.
fn code_paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = is_ident(b[i]) && (i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b':'));
        if !starts {
            i += 1;
            continue;
        }
        let at = i;
        let mut path = Vec::new();
        loop {
            let s = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            path.push(code[s..i].to_string());
            if code[i..].starts_with("::") && b.get(i + 2).is_some_and(|&c| is_ident(c)) {
                i += 2;
            } else {
                break;
            }
        }
        if path.len() > 1 {
            out.push((at, path));
        }
    }
    out
}

/// The strongly connected components of more than one node (Tarjan), each sorted.
fn strongly_connected(edges: &[Edge]) -> Vec<BTreeSet<String>> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (a, b, _) in edges {
        next.entry(a).or_default().insert(b);
        next.entry(b).or_default();
    }
    struct State<'e> {
        index: HashMap<&'e str, usize>,
        low: HashMap<&'e str, usize>,
        stack: Vec<&'e str>,
        on_stack: BTreeSet<&'e str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'e>(v: &'e str, next: &BTreeMap<&'e str, BTreeSet<&'e str>>, s: &mut State<'e>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &next[v] {
            if !s.index.contains_key(w) {
                visit(w, next, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in next.keys() {
        if !s.index.contains_key(v) {
            visit(v, &next, &mut s);
        }
    }
    s.out
}
