//! Enforces the layer table of the crate docs: a module imports only from layers below it,
//! and each kind of effect happens only in its own module.

use std::fs;
use std::path::{Path, PathBuf};

/// The crate-internal modules each top-level module may name.
fn allowed(module: &str) -> Option<&'static [&'static str]> {
    Some(match module {
        "wire" => &[],
        // error names the leaf errors of wire, ipam and ports for `#[from]`
        "error" => &["wire", "sys", "ipam", "ports", "etcd"],
        "sys" => &["error"],
        "socket" => &["wire", "error", "sys"],
        "netns" => &["error", "sys"],
        "rtnl" | "request" => &["wire", "error", "sys", "socket", "netns", "request", "rtnl"],
        "link" => &["wire", "error", "sys", "netns", "rtnl", "request"],
        "addr" | "route" | "neigh" | "sysctl" => {
            &["wire", "error", "sys", "netns", "rtnl", "request", "link"]
        }
        // etcd dials inside a chosen namespace
        "etcd" => &["error", "netns"],
        "ipam" => &["error", "etcd"],
        // firewall names link only for IfName checks
        "firewall" => &["wire", "error", "sys", "socket", "netns", "request", "link"],
        "ports" => &["error", "netns", "sysctl", "firewall"],
        "journal" => &["error", "netns"],
        "network" => &[
            "error", "netns", "rtnl", "request", "journal", "link", "addr", "route", "neigh",
            "sysctl", "firewall", "ipam", "ports",
        ],
        "overlay" => &[
            "error", "netns", "rtnl", "request", "journal", "link", "addr", "route", "neigh",
            "sysctl", "firewall", "ipam", "network", "etcd",
        ],
        "lib" => return None,
        other => panic!("module {other} is missing from the layer table in tests/layering.rs"),
    })
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
    if let Some(inner) = line.trim_start().strip_prefix("use crate::{") {
        found.extend(
            inner
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty()),
        );
    }
    found
}

#[test]
fn modules_import_only_from_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut bad = Vec::new();
    for f in &files {
        let module = top_module(&src, f);
        let Some(ok) = allowed(&module) else { continue };
        let text = fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&text) {
            for m in named_modules(line) {
                if m != module
                    && !ok.contains(&m)
                    && !m.chars().next().is_some_and(char::is_uppercase)
                {
                    bad.push(format!(
                        "{}:{n}: {module} may not use crate::{m}",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
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
        ["error", "Error", "rtnl", "Rtnl"]
    );
    assert!(!allowed("wire").unwrap().contains(&"link"));
}
