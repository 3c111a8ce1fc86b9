//! Name resolution for `dns_enabled` networks, by Podman's aardvark-dns: the same
//! configuration files and signals as netavark uses with it.
//!
//! In `CONFIG/aardvark-dns/`, one file per network: a first line with the addresses the
//! server answers on (the network's gateways, comma-separated), then one line per
//! container: `ID IPV4S IPV6S NAMES` (lists comma-separated: the container's name and its
//! aliases). aardvark-dns writes its pid to `aardvark.pid` there; a change is signalled
//! with SIGHUP, and a server that is not running is started
//! (`aardvark-dns --config DIR -p PORT run`, which returns once the server is up). Changes
//! are serialised by a lock on `CONFIG/aardvark.lock`.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::Res;

/// The search domain Podman puts in the container's resolv.conf for these names.
pub const SEARCH_DOMAIN: &str = "dns.podman";

/// One container on one network, as the server's file lists it.
pub struct Entry {
    /// The network (the file's name).
    pub network: String,
    /// Where the server answers: the network's gateways.
    pub gateways: Vec<IpAddr>,
    /// The container's id.
    pub id: String,
    /// Its addresses on the network.
    pub ips: Vec<IpAddr>,
    /// Its name and aliases.
    pub names: Vec<String>,
    /// Upstream name servers of the network, if any.
    pub network_dns: Vec<IpAddr>,
    /// Upstream name servers of the container's own, if any.
    pub container_dns: Vec<IpAddr>,
}

/// The aardvark-dns of one Podman configuration folder.
pub struct Aardvark {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl Aardvark {
    /// The server of `config`, run from `bin`, on `NETAVARK_DNS_PORT` (53 unless set).
    /// `None` when `bin` does not exist: then no network gets name resolution, as with
    /// netavark.
    pub fn new(config: &Path, bin: &Path) -> Res<Option<Aardvark>> {
        if !bin.exists() {
            log::info!("{} does not exist: no DNS", bin.display());
            return Ok(None);
        }
        let port = match std::env::var("NETAVARK_DNS_PORT") {
            Ok(p) => p
                .parse()
                .map_err(|_| format!("NETAVARK_DNS_PORT {p:?} is not a port"))?,
            Err(_) => 53,
        };
        Ok(Some(Aardvark {
            dir: config.join("aardvark-dns"),
            bin: bin.to_owned(),
            port,
        }))
    }

    /// Lists `entries` and has the server (started if need be) read them again.
    pub fn add(&self, entries: &[Entry]) -> Res {
        if entries.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        for e in entries {
            let path = self.dir.join(&e.network);
            let mut text = fs::read_to_string(&path).unwrap_or_default();
            if text.is_empty() {
                text = format!("{}{}\n", join(&e.gateways), servers_field(&e.network_dns));
            }
            let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = e.ips.iter().partition(|a| a.is_ipv4());
            text.push_str(&format!(
                "{} {} {} {}{}\n",
                e.id,
                join(&v4),
                join(&v6),
                e.names.join(","),
                servers_field(&e.container_dns)
            ));
            write(&path, &text)?;
        }
        self.notify(true)
    }

    /// Takes container `id` off the files of `networks`; a file left with no container
    /// goes. The server reads them again (and stops when none is left).
    pub fn remove(&self, id: &str, networks: &[&str]) -> Res {
        let _lock = self.lock()?;
        let mut changed = false;
        for n in networks {
            let path = self.dir.join(n);
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let mut lines = text.lines();
            let head = lines.next().unwrap_or_default();
            let all: Vec<&str> = lines.collect();
            let rest: Vec<&str> = all
                .iter()
                .copied()
                .filter(|l| l.split(' ').next() != Some(id))
                .collect();
            if rest.len() == all.len() {
                continue; // not listed there: nothing to write or signal
            }
            changed = true;
            if rest.is_empty() {
                fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            } else {
                write(&path, &format!("{head}\n{}\n", rest.join("\n")))?;
            }
        }
        if changed {
            self.notify(false)?;
        }
        Ok(())
    }

    /// Sets the upstream name servers of `network` (the first line's second field; none
    /// removes them) and has the server read its files again (`update`).
    pub fn set_network_servers(&self, network: &str, servers: &[IpAddr]) -> Res {
        let _lock = self.lock()?;
        let path = self.dir.join(network);
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut lines = text.lines();
        let gateways = lines
            .next()
            .unwrap_or_default()
            .split(' ')
            .next()
            .unwrap_or_default();
        let mut out = format!("{gateways}{}\n", servers_field(servers));
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
        write(&path, &out)?;
        self.notify(false)
    }

    fn lock(&self) -> Res<Flock<fs::File>> {
        fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let path = self.dir.join("..").join("aardvark.lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| format!("lock {}: {e}", path.display()))
    }

    /// SIGHUP to a running server; else, when `start`, a new one.
    fn notify(&self, start: bool) -> Res {
        let pid = fs::read_to_string(self.dir.join("aardvark.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            match kill(Pid::from_raw(pid), Signal::SIGHUP) {
                Ok(()) => return Ok(()),
                Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => return Err(format!("signal aardvark-dns (pid {pid}): {e}")),
            }
        }
        if !start {
            return Ok(());
        }
        let out = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "run"])
            .output()
            .map_err(|e| format!("start {}: {e}", self.bin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}): {}",
                self.bin.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }
}

/// ` SERVER,SERVER`, or nothing.
fn servers_field(addrs: &[IpAddr]) -> String {
    if addrs.is_empty() {
        String::new()
    } else {
        format!(" {}", join(addrs))
    }
}

fn join(addrs: &[IpAddr]) -> String {
    let v: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    v.join(",")
}

/// Replaces `path` with `text`: a temporary file beside the server's folder (never one
/// the server could take for a network) renamed over it.
fn write(path: &Path, text: &str) -> Res {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"))
        .join(format!(".aardvark-{name}.{}.tmp", std::process::id()));
    let r = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| fs::rename(&tmp, path));
    r.map_err(|e| format!("{}: {e}", path.display()))
}
