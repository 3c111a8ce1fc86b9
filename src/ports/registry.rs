//! The registry of published host ports: a text file in a runtime folder, read and
//! rewritten only under an exclusive `flock` on a lock file next to it, so that any number
//! of threads and processes see one consistent set.
//!
//! The data file is replaced by an atomic rename, so a crash mid-write leaves the old
//! contents; the lock is on a separate file because a rename would swap the locked inode.
//! Format, one record a line (`#` starts a comment):
//!
//! ```text
//! port tcp 0.0.0.0 32768 80          # PROTO HOST_IP HOST_PORT CONTAINER_PORT
//! last tcp 0.0.0.0 32768-60999 32768  # PROTO HOST_IP RANGE LAST_PORT_HANDED_OUT
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::alloc::AllocError;
use super::published::{addrs_overlap, PublishedPort};
use super::range::{PortRange, Proto};
use crate::error::{Error, Result};

const DATA: &str = "published";
const LOCK: &str = "lock";

/// Where the round-robin search of one range on one address last stopped.
pub(crate) type CursorKey = (Proto, IpAddr, PortRange);

/// The registry's contents, held in memory while the lock is held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Registry {
    /// Published ports by (protocol, host port).
    ports: BTreeMap<(Proto, u16), Vec<PublishedPort>>,
    /// The last port handed out per range, for Docker's round-robin order.
    pub(crate) cursors: BTreeMap<CursorKey, u16>,
}

impl Registry {
    /// The published port that `p` would collide with, if any.
    pub(crate) fn conflict(&self, proto: Proto, ip: IpAddr, port: u16) -> Option<&PublishedPort> {
        self.ports
            .get(&(proto, port))
            .and_then(|v| v.iter().find(|q| addrs_overlap(q.host_ip, ip)))
    }

    /// Records `p` (the caller has checked [`Registry::conflict`]).
    pub(crate) fn insert(&mut self, p: PublishedPort) {
        self.ports
            .entry((p.proto, p.host_port))
            .or_default()
            .push(p);
    }

    /// Removes every record of `p`'s protocol, host address and host port; true if any.
    pub(crate) fn remove(&mut self, p: &PublishedPort) -> bool {
        let key = (p.proto, p.host_port);
        let Some(v) = self.ports.get_mut(&key) else {
            return false;
        };
        let before = v.len();
        v.retain(|q| q.host_ip != p.host_ip);
        let removed = v.len() != before;
        if v.is_empty() {
            self.ports.remove(&key);
        }
        removed
    }

    /// Every published port, ordered by protocol, host port, then insertion.
    pub(crate) fn all(&self) -> Vec<PublishedPort> {
        self.ports.values().flatten().copied().collect()
    }

    fn render(&self) -> String {
        let mut s = String::from(
            "# netplumb published host ports; written under flock(lock), do not edit\n",
        );
        for p in self.ports.values().flatten() {
            let _ = writeln!(
                s,
                "port {} {} {} {}",
                p.proto, p.host_ip, p.host_port, p.container_port
            );
        }
        for ((proto, ip, range), last) in &self.cursors {
            let _ = writeln!(
                s,
                "last {proto} {ip} {}-{} {last}",
                range.start(),
                range.end()
            );
        }
        s
    }

    fn parse(path: &Path, text: &str) -> Result<Registry> {
        let mut reg = Registry::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            let f: Vec<&str> = line.split_whitespace().collect();
            let corrupt = || AllocError::CorruptRegistry {
                path: path.to_path_buf(),
                line: n + 1,
            };
            match f.as_slice() {
                [] => {}
                ["port", proto, ip, host, ctr] => {
                    let p = PublishedPort::new(
                        proto.parse().map_err(|_| corrupt())?,
                        ip.parse().map_err(|_| corrupt())?,
                        host.parse().map_err(|_| corrupt())?,
                        ctr.parse().map_err(|_| corrupt())?,
                    );
                    reg.insert(p);
                }
                ["last", proto, ip, range, last] => {
                    let key = (
                        proto.parse().map_err(|_| corrupt())?,
                        ip.parse().map_err(|_| corrupt())?,
                        range.parse().map_err(|_| corrupt())?,
                    );
                    reg.cursors
                        .insert(key, last.parse().map_err(|_| corrupt())?);
                }
                _ => return Err(corrupt().into()),
            }
        }
        Ok(reg)
    }
}

/// The registry folder, locked: load, change, store while it lives; unlocked on drop.
pub(crate) struct Locked {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Locked {
    /// Creates `dir` if needed and takes the exclusive lock, waiting for other holders.
    pub(crate) fn acquire(dir: &Path) -> Result<Locked> {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(lock) => {
                    return Ok(Locked {
                        dir: dir.to_path_buf(),
                        _lock: lock,
                    })
                }
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(Error::io(&path, std::io::Error::from(e))),
            }
        }
    }

    /// Reads the registry; a missing data file is an empty registry.
    pub(crate) fn load(&self) -> Result<Registry> {
        let path = self.dir.join(DATA);
        match fs::read_to_string(&path) {
            Ok(text) => Registry::parse(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Replaces the data file with `reg`: write a temporary file, sync it, rename it over.
    pub(crate) fn store(&self, reg: &Registry) -> Result<()> {
        let tmp = self.dir.join(format!("{DATA}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(reg.render().as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| Error::io(&tmp, e))?;
        let path = self.dir.join(DATA);
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("netplumb-registry-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn port(ip: &str, host: u16, ctr: u16) -> PublishedPort {
        PublishedPort::new(Proto::Tcp, ip.parse().unwrap(), host, ctr)
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = temp_dir("round-trip");
        let locked = Locked::acquire(&dir).unwrap();
        assert_eq!(
            locked.load().unwrap(),
            Registry::default(),
            "no file yet: empty"
        );
        let mut reg = Registry::default();
        reg.insert(port("0.0.0.0", 32768, 80));
        reg.insert(PublishedPort::new(
            Proto::Udp,
            "::1".parse().unwrap(),
            5353,
            53,
        ));
        reg.cursors.insert(
            (
                Proto::Tcp,
                "0.0.0.0".parse().unwrap(),
                PortRange::new(32768, 60999).unwrap(),
            ),
            32768,
        );
        locked.store(&reg).unwrap();
        assert_eq!(locked.load().unwrap(), reg);
        let text = fs::read_to_string(dir.join(DATA)).unwrap();
        assert!(text.contains("port tcp 0.0.0.0 32768 80\n"), "{text}");
        assert!(
            text.contains("last tcp 0.0.0.0 32768-60999 32768\n"),
            "{text}"
        );
        assert!(!dir.join("published.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conflicts_and_removal() {
        let mut reg = Registry::default();
        reg.insert(port("127.0.0.1", 8080, 80));
        assert!(reg
            .conflict(Proto::Tcp, "0.0.0.0".parse().unwrap(), 8080)
            .is_some());
        assert!(reg
            .conflict(Proto::Tcp, "127.0.0.2".parse().unwrap(), 8080)
            .is_none());
        assert!(reg
            .conflict(Proto::Udp, "127.0.0.1".parse().unwrap(), 8080)
            .is_none());
        assert!(!reg.remove(&port("127.0.0.2", 8080, 80)));
        assert!(reg.remove(&port("127.0.0.1", 8080, 80)));
        assert!(reg.all().is_empty());
    }

    #[test]
    fn corrupt_lines_are_reported_with_their_number() {
        let path = Path::new("/x/published");
        for bad in [
            "port tcp 0.0.0.0 70000 80",
            "port tcp nowhere 1 80",
            "bogus",
            "last tcp 0.0.0.0 9-1 5",
        ] {
            let e = Registry::parse(path, &format!("# header\n{bad}\n")).unwrap_err();
            assert!(
                matches!(
                    &e,
                    Error::PortAlloc(AllocError::CorruptRegistry { line: 2, .. })
                ),
                "{bad}: {e}"
            );
        }
        assert!(Registry::parse(path, "\n# only comments\n\n")
            .unwrap()
            .all()
            .is_empty());
    }
}
