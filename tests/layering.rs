//! Enforces the layer map of the crate docs: a module imports only from layers below it,
//! the map in the crate docs (src/lib.rs), README.md and here is one and the same, files of
//! one folder import each other in no circle, and each kind of effect happens only in its
//! own module.

#[path = "layering/cycles.rs"]
mod cycles;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layer map, bottom up: each top-level module of `src/` and its layer. A module may
/// import from any lower layer, never from its own or a higher one (but see
/// [`EXCEPTIONS`]). The crate docs and README.md's "Layout" show the same table.
const LAYERS: &[(u32, &[&str])] = &[
    (0, &["wire"]),
    (1, &["error", "sys"]),
    (2, &["socket", "netns", "fault"]),
    (3, &["request", "journal"]),
    (4, &["rtnl", "etcd"]),
    (5, &["link"]),
    (6, &["addr", "route", "neigh", "sysctl", "firewall", "ipam"]),
    (7, &["ports"]),
    (8, &["network"]),
    (9, &["overlay"]),
    (10, &["fuzzing"]),
];

/// Imports the layers do not allow: (module, the module it names, why).
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "error",
        "ipam",
        "`Error::Ipam` wraps `IpamError` so that `?` converts it",
    ),
    (
        "error",
        "ports",
        "`Error::PortSpec`/`PortAlloc` wrap the ports' leaf errors for `?`",
    ),
    (
        "error",
        "etcd",
        "`Error::Etcd` wraps `EtcdError` so that `?` converts it",
    ),
];

/// The layer of a top-level module; panics for one the map does not have.
fn layer(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(_, ms)| ms.contains(&module))
        .map(|(n, _)| *n)
        .unwrap_or_else(|| panic!("module {module} is missing from the layer map"))
}

/// Whether `module` may name `other`.
fn allowed(module: &str, other: &str) -> bool {
    module == other
        || layer(other) < layer(module)
        || EXCEPTIONS
            .iter()
            .any(|(m, o, _)| *m == module && *o == other)
}

/// The crate root's re-exports (`pub use error::{Error, Result};` in src/lib.rs): each
/// name and the module it comes from, so that `crate::Error` counts as `error`.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let (module, names) = rest.split_once("::").expect("pub use module::…");
        for name in names.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !name.is_empty() && name != "as" {
                out.insert(name.to_string(), module.to_string());
            }
        }
    }
    out
}

/// The layer table of a Markdown text, the first one after `heading`: each row's layer and
/// modules (`| 2 | `socket`, [`netns`] | … |`).
fn table_after(text: &str, heading: &str) -> Vec<(u32, Vec<String>)> {
    let after = &text[text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"))..];
    after
        .lines()
        .map(|l| l.trim_start_matches("//!").trim())
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let n = cells[1]
                .parse()
                .unwrap_or_else(|_| panic!("layer of {row:?}"));
            let modules = cells[2]
                .split(',')
                .map(|m| m.trim_matches(|c: char| "[]` ".contains(c)).to_string())
                .collect();
            (n, modules)
        })
        .collect()
}

fn the_map() -> Vec<(u32, Vec<String>)> {
    LAYERS
        .iter()
        .map(|(n, ms)| (*n, ms.iter().map(|m| m.to_string()).collect()))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// Lines of code, without comments (enough for this scan: no block comments in src/).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("")))
        .filter(|(_, l)| !l.trim().is_empty())
}

fn named_modules(line: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            found.push(&rest[..end]);
        }
    }
    // `use crate::{a::B, C};` names `a` and `C`: the first word of each top-level element.
    if let Some(inner) = line.trim_start().strip_prefix("use crate::{") {
        let (mut depth, mut start, mut elems) = (0, 0, Vec::new());
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                '}' | ',' if depth == 0 => {
                    elems.push(&inner[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        for e in elems.into_iter().map(str::trim) {
            let end = e
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(e.len());
            if end > 0 {
                found.push(&e[..end]);
            }
        }
    }
    found
}

/// Each `crate::` path of `src/`: (file, line, importing module, named module).
fn imports(src: &Path) -> Vec<(PathBuf, usize, String, String)> {
    let reexports = root_reexports(&fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = Vec::new();
    for f in files {
        let module = top_module(src, &f);
        if module == "lib" {
            continue;
        }
        let text = fs::read_to_string(&f).unwrap();
        for (n, line) in code_lines(&text) {
            for m in named_modules(line) {
                let named = if m.starts_with(char::is_uppercase) {
                    reexports.get(m).unwrap_or_else(|| {
                        panic!("{}:{n}: crate::{m} is not a root re-export", f.display())
                    })
                } else {
                    m
                };
                out.push((f.clone(), n, module.clone(), named.to_string()));
            }
        }
    }
    out
}

#[test]
fn modules_import_only_from_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad: Vec<String> = imports(&src)
        .into_iter()
        .filter(|(_, _, module, named)| !allowed(module, named))
        .map(|(f, n, module, named)| {
            format!(
                "{}:{n}: {module} (layer {}) may not use crate::{named} (layer {})",
                f.display(),
                layer(&module),
                layer(&named)
            )
        })
        .collect();
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn every_exception_is_still_needed() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let used: BTreeSet<(String, String)> = imports(&src)
        .into_iter()
        .map(|(_, _, module, named)| (module, named))
        .collect();
    for (m, o, why) in EXCEPTIONS {
        assert!(
            layer(o) >= layer(m),
            "{m} -> {o} is allowed by the layers: drop the exception"
        );
        assert!(
            used.contains(&(m.to_string(), o.to_string())),
            "{m} no longer names {o} ({why}): drop the exception"
        );
    }
}

#[test]
fn the_map_has_every_module_once() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let on_disk: BTreeSet<String> = fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|x| x == "rs"))
        .map(|p| top_module(&src, &p))
        .filter(|m| m != "lib")
        .collect();
    let mapped: Vec<&str> = LAYERS
        .iter()
        .flat_map(|(_, ms)| ms.iter().copied())
        .collect();
    let unique: BTreeSet<String> = mapped.iter().map(|m| m.to_string()).collect();
    assert_eq!(unique.len(), mapped.len(), "a module is in two layers");
    assert_eq!(unique, on_disk, "the layer map and src/ differ");
}

#[test]
fn the_crate_docs_and_the_readme_show_this_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    assert_eq!(table_after(&lib, "//! ## Layers"), the_map(), "src/lib.rs");
    assert_eq!(table_after(&readme, "\n## Layout"), the_map(), "README.md");
}

#[test]
fn files_of_a_folder_import_each_other_in_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let files: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let name = f.strip_prefix(&src).unwrap().to_str().unwrap().to_string();
            (name, fs::read_to_string(f).unwrap())
        })
        .collect();
    let found = cycles::find(&files);
    assert!(
        found.is_empty(),
        "files that import each other in a circle:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_cycle_finder_sees_circles() {
    let crate_ = |files: &[(&str, &str)]| {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        cycles::find(&files)
    };
    let base = [
        ("lib.rs", "mod a;\npub use a::X;"),
        (
            "a/mod.rs",
            "mod x;\nmod y;\npub use x::X;\npub struct Shared;",
        ),
        ("a/x.rs", "use super::Shared;\npub struct X;"),
    ];
    // A re-export and a child's use of an item defined in mod.rs: no circle.
    let y = (
        "a/y.rs",
        "use super::Shared;\n// super::x::X in a comment\npub struct Y;",
    );
    assert_eq!(
        crate_(&[base[0], base[1], base[2], y]),
        Vec::<String>::new()
    );
    // x -> y through a path in code, y -> x through mod.rs's re-export.
    let x = ("a/x.rs", "pub struct X;\nfn f() { super::y::g() }");
    let y = ("a/y.rs", "use crate::a::{X, Shared};\npub fn g() {}");
    let found = crate_(&[base[0], base[1], x, y]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("src/a: x.rs, y.rs ["), "{found:?}");
    assert!(found[0].contains("x.rs -> y.rs (a/x.rs:2)"), "{found:?}");
    assert!(found[0].contains("y.rs -> x.rs (a/y.rs:1)"), "{found:?}");
    // mod.rs code that calls a child which uses an item of mod.rs.
    let m = (
        "a/mod.rs",
        "mod x;\nmod y;\npub struct Shared;\nfn f() { x::g() }",
    );
    let x = ("a/x.rs", "use super::{Shared as S};\npub fn g() {}");
    let found = crate_(&[base[0], m, x, y]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("src/a: mod.rs, x.rs ["), "{found:?}");
    // `super` inside an inline module counts from it; a folder child is one node.
    let x = (
        "a/x.rs",
        "pub struct X;\nmod tests {\n    use super::super::y::z::Z;\n}",
    );
    let y = ("a/y.rs", "mod z;");
    let z = ("a/y/z.rs", "pub struct Z;\nuse crate::a::x::X;");
    let found = crate_(&[base[0], base[1], x, y, z]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("src/a: x.rs, y/ ["), "{found:?}");
}

#[test]
fn effects_happen_only_where_they_belong() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // (needle, the only top-level modules where it may appear)
    let rules: &[(&str, &[&str])] = &[
        ("unsafe ", &["sys"]),
        ("setns(", &["netns"]),
        ("unshare(", &["netns"]),
        // child processes: only the iptables backend runs binaries (inside its namespace)
        ("Command::new", &["firewall"]),
        (".spawn()", &["netns"]),
        ("println!", &[]),
        ("eprintln!", &[]),
        ("/proc/sys", &["sysctl"]),
        ("NlSocket", &["socket"]),
    ];
    let mut bad = Vec::new();
    for f in &files {
        let module = top_module(&src, f);
        let text = fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&text) {
            for (needle, places) in rules {
                if line.contains(needle) && !places.contains(&module.as_str()) {
                    bad.push(format!(
                        "{}:{n}: `{needle}` outside {places:?}",
                        f.display()
                    ));
                }
            }
            // Within firewall, only the iptables backend starts processes.
            if line.contains("Command::new") && !f.starts_with(src.join("firewall/iptables")) {
                bad.push(format!(
                    "{}:{n}: `Command::new` outside src/firewall/iptables/",
                    f.display()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "effects in the wrong place:\n{}",
        bad.join("\n")
    );
}

#[test]
fn tests_and_examples_never_open_the_callers_namespace() {
    // A test or example that opened a handle on its own thread's namespace would act on
    // whatever namespace that thread is in; they go through the sandbox's namespaces.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in ["tests", "examples", "benches"] {
        if root.join(d).is_dir() {
            rust_files(&root.join(d), &mut files);
        }
    }
    let needle = ["Rtnl::", "open()"].concat();
    let offenders: Vec<_> = files
        .iter()
        .filter(|f| fs::read_to_string(f).unwrap().contains(&needle))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "{offenders:?}");
}

#[test]
fn the_scanner_sees_violations() {
    assert_eq!(named_modules("use crate::link::Link;"), ["link"]);
    assert_eq!(
        named_modules("use crate::{error::Error, rtnl::Rtnl};"),
        ["error", "rtnl"]
    );
    assert_eq!(
        named_modules("use crate::{link::{IfName, Veth}, Error};"),
        ["link", "Error"]
    );
    assert!(!allowed("wire", "link"));
    assert!(
        !allowed("link", "addr"),
        "a layer's own neighbours are off limits"
    );
    assert!(allowed("addr", "link"));
    let lib = "pub use error::{Error, ErrorKind, Result};\npub use rtnl::Rtnl;";
    let re = root_reexports(lib);
    assert_eq!(re["Result"], "error");
    assert_eq!(re["Rtnl"], "rtnl");
    let md =
        "## Layout\n\n| layer | modules | role |\n|---|---|---|\n| 1 | [`error`], `sys` | x |\n";
    assert_eq!(
        table_after(md, "## Layout"),
        [(1, vec!["error".to_string(), "sys".to_string()])]
    );
}
