//! Container files: hostname, `/etc/hosts`, `/etc/resolv.conf`.
//!
//! The files Docker writes for each container, as plain values with no netlink and no
//! namespace switch:
//!
//! - [`Hostname`] (`--hostname`; Docker's default is [`default_hostname`], the short id);
//! - [`HostsFile`] (`/etc/hosts`): Docker's localhost and IPv6 lines, `--add-host` entries
//!   ([`parse_add_host`]), the container's own name → address lines, and the peers on its
//!   user-defined networks, kept current with [`HostsFile::set_peer`] and
//!   [`HostsFile::remove_peer`] as containers connect and leave;
//! - [`ResolvConf`] (`/etc/resolv.conf`): from `--dns`, `--dns-search`, `--dns-option`
//!   ([`DnsConfig`]) or derived from the host's file, as Docker does.
//!
//! [`ContainerFiles`] writes them into a directory the runtime names and bind-mounts into the
//! container; nothing here writes to the host's `/etc`.
//!
//! ```
//! use netplumb::network::files::{default_hostname, parse_add_host, DnsConfig, HostsFile, ResolvConf};
//!
//! let hostname = default_hostname("3f2a1c0b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a")?;
//! let mut hosts = HostsFile::new().hostname(hostname).addr("172.18.0.2".parse().unwrap());
//! for entry in parse_add_host("www.example.com:1.1.1.1")?.resolve(&[])? {
//!     hosts = hosts.add_host(entry);
//! }
//! hosts.set_peer("db", &["database"], &["172.18.0.3".parse().unwrap()])?;
//! assert_eq!(hosts.addrs_of("database"), ["172.18.0.3".parse::<std::net::IpAddr>().unwrap()]);
//!
//! let host = ResolvConf::parse("nameserver 127.0.0.53\nsearch lan\n");
//! let resolv = ResolvConf::for_container(&host, &DnsConfig::new(), false)?;
//! assert_eq!(resolv.render(), "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
//! # Ok::<(), netplumb::Error>(())
//! ```

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

mod hosts;
mod resolv;
#[cfg(test)]
mod tests;

pub use hosts::{parse_add_host, AddHost, AddHostTarget, HostEntry, HostsFile, HOST_GATEWAY};
pub use resolv::{
    DnsConfig, ResolvConf, DEFAULT_NAMESERVERS_V4, DEFAULT_NAMESERVERS_V6, HOST_RESOLV_CONF,
    SYSTEMD_RESOLVED_UPSTREAM,
};

/// The longest DNS name, in bytes (RFC 1123, section 2.1).
const NAME_MAX: usize = 253;
/// The longest DNS label, in bytes.
const LABEL_MAX: usize = 63;

/// What is wrong with `name` as an RFC 1123 host name, if anything.
fn dns_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.len() > NAME_MAX {
        return Some("longer than 253 bytes");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("has an empty label (leading, trailing or doubled '.')");
        }
        if label.len() > LABEL_MAX {
            return Some("has a label longer than 63 bytes");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Some("has a character other than letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("has a label that starts or ends with '-'");
        }
    }
    None
}

/// Checks a name written into `/etc/hosts` that is not the host name (an `--add-host` name,
/// a container name, an alias). These follow Docker, which allows `_` and the like: only
/// what would break the file's syntax is refused.
fn check_hosts_name(field: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > NAME_MAX {
        "longer than 253 bytes"
    } else if !name.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        "has whitespace, '#', a control or a non-ASCII character"
    } else {
        return Ok(());
    };
    Err(Error::invalid(field, name, reason))
}

/// A container's host name (`docker run --hostname`), checked against RFC 1123: labels of 1
/// to 63 letters, digits and `-`, not starting or ending with `-`, separated by `.`, at most
/// 253 bytes in all. A label may start with a digit, so Docker's default (the short id,
/// [`default_hostname`]) is valid even when it is all digits.
///
/// The kernel's UTS host name holds at most 64 bytes; a longer name is a valid DNS name, and
/// fine in `/etc/hosts`, but `sethostname` refuses it.
///
/// ```
/// use netplumb::network::files::Hostname;
/// let h: Hostname = "web.example.com".parse()?;
/// assert_eq!(h.short(), "web");
/// assert_eq!(h.to_string(), "web.example.com");
/// let e = Hostname::new("-web").unwrap_err();
/// assert_eq!(e.to_string(), r#"invalid hostname "-web": has a label that starts or ends with '-'"#);
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(String);

impl Hostname {
    /// A checked host name; the error names the rule the value breaks.
    pub fn new(name: &str) -> Result<Hostname> {
        match dns_name_problem(name) {
            Some(reason) => Err(Error::invalid("hostname", name, reason)),
            None => Ok(Hostname(name.to_owned())),
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label (`web` for `web.example.com`).
    pub fn short(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl FromStr for Hostname {
    type Err = Error;

    fn from_str(s: &str) -> Result<Hostname> {
        Hostname::new(s)
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Docker's default host name: the first 12 hex digits of the container id, lower-cased.
///
/// ```
/// use netplumb::network::files::default_hostname;
/// let id = "3f2a1c0b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
/// assert_eq!(default_hostname(id)?.as_str(), "3f2a1c0b9d8e");
/// assert!(default_hostname("web").is_err());
/// # Ok::<(), netplumb::Error>(())
/// ```
pub fn default_hostname(container_id: &str) -> Result<Hostname> {
    match container_id.get(..12) {
        Some(short) if short.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Hostname(short.to_ascii_lowercase()))
        }
        _ => Err(Error::invalid(
            "container id",
            container_id,
            "does not start with 12 hex digits",
        )),
    }
}

/// The mode of the files written here: `rw-r--r--`, whatever the umask.
const FILE_MODE: u32 = 0o644;

/// Tells the temporary files of concurrent writers in one process apart.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn check_file_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name == "." || name == ".." {
        "not a file name"
    } else if name.contains(['/', '\0']) {
        "contains '/' or NUL"
    } else {
        return Ok(());
    };
    Err(Error::invalid("file name", name, reason))
}

/// Writes `contents` to `dir/name` atomically: a temporary file in `dir` (mode 0644, written
/// and synced), then renamed over `name`, so a reader sees the old file or the new one,
/// never a part. The temporary file is removed on failure. Errors are [`Error::Io`] naming
/// `dir/name`, or [`Error::InvalidInput`] for a `name` that is not a plain file name.
///
/// A rename gives `name` a new inode: a bind mount of the old file keeps showing the old
/// contents. Use [`rewrite_in_place`] for a file that is already bind-mounted.
///
/// ```no_run
/// use netplumb::network::files::write_atomic;
/// write_atomic("/var/lib/myruntime/3f2a1c0b9d8e".as_ref(), "hostname", "3f2a1c0b9d8e\n")?;
/// # Ok::<(), netplumb::Error>(())
/// ```
pub fn write_atomic(dir: &Path, name: &str, contents: &str) -> Result<()> {
    check_file_name(name)?;
    let target = dir.join(name);
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let written = write_new(&tmp, contents).and_then(|()| fs::rename(&tmp, &target));
    written.map_err(|e| {
        // Best effort: the temporary file may not exist, and the first error is the one to report.
        let _ = fs::remove_file(&tmp);
        Error::io(target, e)
    })
}

fn write_new(path: &Path, contents: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Rewrites the existing file `dir/name` in place, keeping its inode (and mode), so that a
/// bind mount of it shows the new contents: what Docker does to update a running
/// container's `/etc/hosts`. Not atomic: a reader may see a mix of old and new for a moment
/// (never an empty file). Fails with [`Error::Io`] if the file does not exist.
pub fn rewrite_in_place(dir: &Path, name: &str, contents: &str) -> Result<()> {
    check_file_name(name)?;
    let path = dir.join(name);
    let rewrite = || -> io::Result<()> {
        let mut file = OpenOptions::new().write(true).open(&path)?;
        file.write_all(contents.as_bytes())?;
        file.set_len(contents.len() as u64)?;
        file.sync_all()
    };
    rewrite().map_err(|e| Error::io(&path, e))
}

/// The directory that holds one container's `hostname`, `hosts` and `resolv.conf`. The
/// runtime names it (it must exist) and bind-mounts the files over the container's
/// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`.
///
/// ```no_run
/// use netplumb::network::files::{ContainerFiles, DnsConfig, HostsFile, Hostname, ResolvConf};
/// let files = ContainerFiles::new("/var/lib/myruntime/3f2a1c0b9d8e");
/// let hostname = Hostname::new("3f2a1c0b9d8e")?;
/// let hosts = HostsFile::new().hostname(hostname.clone()).addr("172.17.0.2".parse().unwrap());
/// let resolv = ResolvConf::for_container(&ResolvConf::read_host()?, &DnsConfig::new(), false)?;
/// files.write(&hostname, &hosts, &resolv)?;
///
/// // Later, a peer joins a shared network: the hosts file is bind-mounted by now.
/// let mut hosts = files.read_hosts()?;
/// hosts.set_peer("db", &[], &["172.17.0.3".parse().unwrap()])?;
/// files.update_hosts(&hosts)?;
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFiles {
    dir: PathBuf,
}

impl ContainerFiles {
    /// The host name file's name.
    pub const HOSTNAME: &'static str = "hostname";
    /// The hosts file's name.
    pub const HOSTS: &'static str = "hosts";
    /// The resolver configuration's name.
    pub const RESOLV_CONF: &'static str = "resolv.conf";

    /// The files in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> ContainerFiles {
        ContainerFiles { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of one of the files (`ContainerFiles::HOSTS`, ...), for the bind mount.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `hostname`: the name and a newline, as Docker does.
    pub fn write_hostname(&self, hostname: &Hostname) -> Result<()> {
        write_atomic(&self.dir, Self::HOSTNAME, &format!("{hostname}\n"))
    }

    /// Writes `hosts` atomically (before it is bind-mounted).
    pub fn write_hosts(&self, hosts: &HostsFile) -> Result<()> {
        write_atomic(&self.dir, Self::HOSTS, &hosts.render())
    }

    /// Writes `resolv.conf` atomically.
    pub fn write_resolv_conf(&self, resolv: &ResolvConf) -> Result<()> {
        write_atomic(&self.dir, Self::RESOLV_CONF, &resolv.render())
    }

    /// Writes all three files.
    pub fn write(&self, hostname: &Hostname, hosts: &HostsFile, resolv: &ResolvConf) -> Result<()> {
        self.write_hostname(hostname)?;
        self.write_hosts(hosts)?;
        self.write_resolv_conf(resolv)
    }

    /// Reads `hosts` back, to change its peers.
    pub fn read_hosts(&self) -> Result<HostsFile> {
        let path = self.path(Self::HOSTS);
        let text = fs::read_to_string(&path).map_err(|e| Error::io(path, e))?;
        Ok(HostsFile::parse(&text))
    }

    /// Rewrites `hosts` in place ([`rewrite_in_place`]), so that the container sees the
    /// change through its bind mount; writes it atomically if it does not exist yet.
    pub fn update_hosts(&self, hosts: &HostsFile) -> Result<()> {
        match rewrite_in_place(&self.dir, Self::HOSTS, &hosts.render()) {
            Err(e) if e.is_not_found() => self.write_hosts(hosts),
            other => other,
        }
    }
}
