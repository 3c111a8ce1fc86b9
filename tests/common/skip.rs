//! Tests that cannot run say so, and are counted.
//!
//! libtest has no "skipped" result, and it hides a passing test's stderr. So a test that
//! cannot run (no privileges, a missing binary or kernel feature) calls [`skip`], which
//! prints `SKIPPED <test>: <why>` to stderr, appends the same line to the file named by
//! `NETPLUMB_SKIP_LOG` (set by `tests/run.sh`, which lists and counts the lines at the
//! end), and fails the test under `CI=true`.
//!
//! A variant that does not apply by design (a backend that cannot do what the test checks)
//! is no skip: [`not_applicable`] logs it as `NOT APPLICABLE <test>: <why>`, uncounted,
//! and it never fails.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// The environment variable naming the file every skip line is appended to.
pub const LOG_VAR: &str = "NETPLUMB_SKIP_LOG";

/// The Debian package of each binary the tests run, for the skip messages.
const PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("bridge", "iproute2"),
    ("nft", "nftables"),
    ("iptables", "iptables"),
    ("ip6tables", "iptables"),
    ("iptables-save", "iptables"),
    ("ip6tables-save", "iptables"),
    ("iptables-restore", "iptables"),
    ("ip6tables-restore", "iptables"),
    ("iptables-legacy", "iptables"),
    ("iptables-legacy-save", "iptables"),
    ("ip6tables-legacy-save", "iptables"),
    ("etcd", "etcd-server"),
    ("kill", "procps"),
    ("openssl", "openssl"),
    ("go", "golang-go"),
];

thread_local! {
    /// The test the current thread runs (set by `common::sandbox`), for [`witness`] and
    /// [`need`], which are called deep inside a test.
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// What [`need`] unwinds with: `common::sandbox` catches it and the test ends as skipped.
pub struct Skipped;

/// Names the test the current thread runs.
pub fn set_current(test: &str) {
    CURRENT.with(|c| *c.borrow_mut() = Some(test.to_owned()));
}

/// The test the current thread runs: the one [`set_current`] named, else the thread's
/// name (libtest names its threads after their tests).
pub fn current() -> String {
    CURRENT
        .with(|c| c.borrow().clone())
        .or_else(|| std::thread::current().name().map(str::to_owned))
        .unwrap_or_else(|| "(unnamed test)".to_owned())
}

/// Prints `SKIPPED test: why` to stderr and appends it to the skip log; under `CI=true`
/// it panics instead of letting the test pass. The caller returns after it.
pub fn skip(test: &str, why: impl Display) {
    let line = format!("SKIPPED {test}: {why}");
    record(&line);
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{line} (a skip fails under CI=true)");
    }
}

/// [`skip`] for the test the current thread runs.
pub fn skip_here(why: impl Display) {
    skip(&current(), why);
}

/// [`not_applicable`] for the test the current thread runs.
pub fn not_applicable_here(why: impl Display) {
    not_applicable(&current(), why);
}

/// Prints and logs `NOT APPLICABLE test: why`: the test's subject does not exist in this
/// variant by design. Not counted as a skip, and never a failure.
pub fn not_applicable(test: &str, why: impl Display) {
    record(&format!("NOT APPLICABLE {test}: {why}"));
}

/// Prints `line` and appends it to the skip log, once per process.
fn record(line: &str) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if !seen
        .get_or_insert_with(HashSet::new)
        .insert(line.to_owned())
    {
        return;
    }
    eprintln!("{line}");
    let Some(path) = std::env::var_os(LOG_VAR) else {
        return;
    };
    // One short write on an O_APPEND file: lines of parallel tests and of the worker
    // processes do not interleave.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    if let Err(e) = log.and_then(|mut f| f.write_all(format!("{line}\n").as_bytes())) {
        panic!("cannot append to {LOG_VAR} {}: {e}", path.to_string_lossy());
    }
}

/// Where `bin` is on `PATH` (an executable file), if it is.
pub fn which(bin: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(bin)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The path of `bin` on `PATH`; when it is missing, [`skip`]s `test` (naming the Debian
/// package that has it) and returns `None`: the test returns.
pub fn tool(test: &str, bin: &str) -> Option<PathBuf> {
    let found = which(bin);
    if found.is_none() {
        skip(test, missing(bin));
    }
    found
}

/// [`tool`] for the test the current thread runs: a test that goes on without a check
/// when this returns `None` (a witness it can do without), but is counted as skipped.
pub fn witness(bin: &str) -> Option<PathBuf> {
    tool(&current(), bin)
}

/// A reference CNI plugin (Debian package containernetworking-plugins, in `/usr/lib/cni`;
/// or `/opt/cni/bin`); when it is missing the current test is skipped and this is `None`.
pub fn cni_plugin(name: &str) -> Option<PathBuf> {
    let found = ["/usr/lib/cni", "/opt/cni/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        skip(
            &current(),
            format!("needs the CNI plugin {name} (Debian package containernetworking-plugins)"),
        );
    }
    found
}

/// The path of `bin`, which the rest of the current test cannot do without: when it is
/// missing, the test is [`skip`]ped and ends here (it unwinds to `common::sandbox`).
pub fn need(bin: &str) -> PathBuf {
    match witness(bin) {
        Some(p) => p,
        None => std::panic::resume_unwind(Box::new(Skipped)),
    }
}

/// "needs `nft` (Debian package nftables)".
fn missing(bin: &str) -> String {
    match PACKAGES.iter().find(|(b, _)| *b == bin) {
        Some((_, pkg)) => format!("needs `{bin}` on PATH (Debian package {pkg})"),
        None => format!("needs `{bin}` on PATH"),
    }
}
