//! The `iptables-restore` / `iptables-save` binaries (and their `ip6tables` twins): where
//! they are, whether they are new enough, and running them inside the backend's
//! namespace. The only place in the crate besides `netns` that starts processes.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use super::render::Family;
use crate::error::{Error, Result};
use crate::firewall::writers::note_writer;
use crate::netns::Netns;

/// The oldest iptables whose `iptables-restore` takes `--wait` (1.6.2).
pub(super) const MIN_VERSION: (u32, u32, u32) = (1, 6, 2);

/// Where binaries are looked for after `PATH` (a non-root shell often lacks the sbin
/// folders).
const FALLBACK_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

const INSTALL: &str =
    "install iptables 1.6.2 or newer (Debian, Ubuntu: `apt-get install iptables`; \
                       Fedora, RHEL: `dnf install iptables-nft`; Alpine: `apk add iptables`)";

/// Which iptables flavour to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IptablesVariant {
    /// `iptables-legacy-restore` when the namespace already has legacy (x_tables) tables
    /// and that binary exists, else plain `iptables-restore` (whichever the system's
    /// alternatives point at).
    #[default]
    Auto,
    /// `iptables-legacy-restore` and friends (the x_tables kernel interface).
    Legacy,
    /// `iptables-nft-restore` and friends (iptables rules stored as nf_tables objects).
    Nft,
}

/// The four binaries of one variant, resolved to paths.
#[derive(Debug, Clone)]
pub(super) struct Tools {
    restore: [PathBuf; 2],
    save: [PathBuf; 2],
    /// `iptables-restore --version` output, e.g. `iptables-restore v1.8.9 (nf_tables)`.
    pub version: String,
}

fn missing(name: &str, dirs: &[PathBuf]) -> Error {
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let msg = format!("not found (looked in {}): {INSTALL}", looked.join(":"));
    Error::io(name, io::Error::new(io::ErrorKind::NotFound, msg))
}

fn search_dirs(bin_dir: Option<&Path>) -> Vec<PathBuf> {
    if let Some(d) = bin_dir {
        return vec![d.to_path_buf()];
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(FALLBACK_DIRS.iter().map(PathBuf::from));
    dirs
}

fn find(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| missing(name, dirs))
}

impl Tools {
    /// Resolves the binaries of `variant` (`legacy_in_use`: the namespace has legacy
    /// tables) and checks the version of `iptables-restore` inside `ns`.
    pub(super) fn find(
        ns: &Netns,
        variant: IptablesVariant,
        bin_dir: Option<&Path>,
        legacy_in_use: bool,
    ) -> Result<Tools> {
        let dirs = search_dirs(bin_dir);
        let infix = match variant {
            IptablesVariant::Legacy => "-legacy",
            IptablesVariant::Nft => "-nft",
            IptablesVariant::Auto
                if legacy_in_use && find("iptables-legacy-restore", &dirs).is_ok() =>
            {
                "-legacy"
            }
            IptablesVariant::Auto => "",
        };
        let path = |fam: &str, verb: &str| find(&format!("{fam}tables{infix}-{verb}"), &dirs);
        let tools = Tools {
            restore: [path("ip", "restore")?, path("ip6", "restore")?],
            save: [path("ip", "save")?, path("ip6", "save")?],
            version: String::new(),
        };
        let version = check_version(ns, &tools.restore[0])?;
        check_version(ns, &tools.restore[1])?;
        Ok(Tools { version, ..tools })
    }

    fn restore(&self, fam: Family) -> &Path {
        &self.restore[fam as usize]
    }

    /// `iptables-save` (all tables) inside `ns`.
    pub(super) fn save(&self, ns: &Netns, fam: Family) -> Result<String> {
        let bin = &self.save[fam as usize];
        let out = run(ns, Command::new(bin).stdin(Stdio::null()), None)?;
        if !out.status.success() {
            return Err(failed(bin, &out, None));
        }
        String::from_utf8(out.stdout).map_err(|_| {
            Error::io(
                bin,
                io::Error::new(io::ErrorKind::InvalidData, "output is not UTF-8"),
            )
        })
    }

    /// `iptables-restore --noflush --wait` of `input` inside `ns`, one process. `line`
    /// gives the text of an input line for the error of a failed one.
    pub(super) fn apply(
        &self,
        ns: &Netns,
        fam: Family,
        input: &str,
        wait: Duration,
        line: &dyn Fn(usize) -> Option<String>,
    ) -> Result<()> {
        let bin = self.restore(fam);
        // Whole seconds, at least one: `--wait` without a number would wait forever.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let out = run(
            ns,
            Command::new(bin)
                .args(["--noflush", "--wait", &secs.max(1).to_string()])
                .stdin(Stdio::piped()),
            Some(input),
        )?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr);
        let at = text
            .split("line ")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok());
        Err(failed(
            bin,
            &out,
            at.and_then(line)
                .map(|l| format!("input line {}: {l}", at.unwrap_or(0))),
        ))
    }
}

fn failed(bin: &Path, out: &std::process::Output, context: Option<String>) -> Error {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut msg = format!("{}: {}", out.status, stderr.trim());
    if let Some(c) = context {
        msg.push_str(" (");
        msg.push_str(&c);
        msg.push(')');
    }
    Error::io(bin, io::Error::other(msg))
}

/// Spawns `cmd` inside `ns`, feeds it `input`, and collects its output.
fn run(ns: &Netns, cmd: &mut Command, input: Option<&str>) -> Result<std::process::Output> {
    let prog = PathBuf::from(cmd.get_program());
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C");
    let mut child = ns.spawn(cmd)?;
    // A restore's nf_tables changes (iptables-nft) are ours, not damage to repair.
    note_writer(Some(child.id()));
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A child that fails early closes its end: its exit status tells why.
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait_with_output().map_err(|e| Error::io(prog, e))
}

/// Parses `v1.8.9` out of a `--version` line.
pub(super) fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut it = v.split('.').map(|x| x.parse::<u32>());
    Some((
        it.next()?.ok()?,
        it.next()?.ok()?,
        it.next().unwrap_or(Ok(0)).ok()?,
    ))
}

/// Runs `bin --version` inside `ns` and refuses versions older than [`MIN_VERSION`].
fn check_version(ns: &Netns, bin: &Path) -> Result<String> {
    let out = run(
        ns,
        Command::new(bin).arg("--version").stdin(Stdio::null()),
        None,
    )?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let old = |why: String| {
        Error::io(
            bin,
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{why}: netplumb needs --noflush and --wait; {INSTALL}"),
            ),
        )
    };
    match parse_version(&text) {
        Some(v) if v >= MIN_VERSION => Ok(text),
        Some((a, b, c)) => Err(old(format!("version {a}.{b}.{c} is too old"))),
        None => Err(old(format!(
            "cannot tell its version from {text:?} (exit {})",
            out.status
        ))),
    }
}

/// Our lock around read-modify-apply, one per namespace: `LOCK_DIR/iptables-INODE.lock`.
/// `iptables --wait` serialises single commits; this also keeps another netplumb
/// process from changing the rules between our `iptables-save` and `iptables-restore`.
/// Waits up to `wait` for it, then fails with a timed-out error.
pub(super) fn lock(dir: &Path, ns: &Netns, wait: Duration) -> Result<Flock<std::fs::File>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(format!("iptables-{}.lock", ns.inode()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(l),
            Err((back, nix::errno::Errno::EWOULDBLOCK)) => {
                if std::time::Instant::now() >= deadline {
                    let why = format!("held by another process for more than {wait:?}");
                    return Err(Error::io(
                        &path,
                        io::Error::new(io::ErrorKind::TimedOut, why),
                    ));
                }
                f = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((_, e)) => return Err(Error::io(&path, io::Error::from(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("iptables-restore v1.8.9 (nf_tables)"),
            Some((1, 8, 9))
        );
        assert_eq!(parse_version("iptables-restore v1.4.21"), Some((1, 4, 21)));
        assert_eq!(parse_version("iptables-restore v1.8"), Some((1, 8, 0)));
        assert_eq!(parse_version("something else"), None);
        assert!(parse_version("iptables-restore v1.6.1").unwrap() < MIN_VERSION);
    }

    #[test]
    fn missing_binary_names_it_and_what_to_install() {
        let e = find("iptables-restore", &[PathBuf::from("/nonexistent")])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("iptables-restore: not found"), "{e}");
        assert!(e.contains("apt-get install iptables"), "{e}");
    }
}
