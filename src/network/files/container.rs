//! [`ContainerFiles`]: the folder of one container's `hostname`, `hosts` and
//! `resolv.conf`, and the two ways of writing them ([`write_atomic`] before the bind
//! mount, [`rewrite_in_place`] after it).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::hosts::HostsFile;
use super::name::Hostname;
use super::resolv::ResolvConf;
use crate::error::{Error, Result, ResultExt};

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

/// Writes `contents` to `dir/name` atomically: a temporary file in `dir` (mode 0644), then
/// renamed over `name`, so a reader (and a process killed half-way) sees the old file or
/// the new one, never a part. Not synced to disk: these files belong to a running
/// container, which a power cut ends, and its next start writes them again; a sync
/// would cost each connect milliseconds on a disk for nothing. The temporary file is removed on failure. Errors are [`Error::Io`] naming
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
    if written.is_ok() {
        log::debug!("wrote {} ({} bytes)", target.display(), contents.len());
    }
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
    file.write_all(contents.as_bytes())
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
        file.set_len(contents.len() as u64)
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

    /// The text of one of the files (`ContainerFiles::HOSTS`, ...); `None` when it does
    /// not exist.
    pub(crate) fn read(&self, name: &str) -> Result<Option<String>> {
        let path = self.path(name);
        fs::read_to_string(&path)
            .optional()
            .map_err(|e| Error::io(path, e))
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
