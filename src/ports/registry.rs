//! The registry of published host ports: a text file in a runtime folder, read and
//! rewritten only under an exclusive `flock` on a lock file next to it, so that any number
//! of threads and processes see one consistent set.
//!
//! The data file is a journal: each change appends its lines (and syncs), and later lines
//! win, so a change costs the same however many ports are published. When the journal has
//! grown to twice the live records it is compacted: rewritten whole to a temporary file,
//! synced and renamed over, so a crash mid-write leaves the old contents. A half-written
//! last line (a crash mid-append) is ignored. The lock is on a separate file because a
//! rename would swap the locked inode. Format, one record a line (`#` starts a comment):
//!
//! ```text
//! port tcp 0.0.0.0 32768 80          # PROTO HOST_IP HOST_PORT CONTAINER_PORT
//! unport tcp 0.0.0.0 32768 80        # the same port released
//! last tcp 0.0.0.0 32768-60999 32768  # PROTO HOST_IP RANGE LAST_PORT_HANDED_OUT
//! ```
//!
//! A process keeps the registry it last read or wrote, with the file's identity and
//! length: when only its own or appended lines are new, it reads just those.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::error::AllocError;
use super::published::{addrs_overlap, PublishedPort};
use super::range::{PortRange, Proto};
use crate::error::{Error, Result};

const DATA: &str = "published";
const LOCK: &str = "lock";

/// Where the round-robin search of one range on one address last stopped.
pub(crate) type CursorKey = (Proto, IpAddr, PortRange);

/// The registry's contents, held in memory while the lock is held.
#[derive(Debug, Default, Clone)]
pub(crate) struct Registry {
    /// Published ports by (protocol, host port).
    ports: BTreeMap<(Proto, u16), Vec<PublishedPort>>,
    /// The last port handed out per range, for Docker's round-robin order.
    cursors: BTreeMap<CursorKey, u16>,
    /// Lines describing the changes since the registry was read, to append.
    log: String,
    /// Lines in the file (live and superseded), to know when to compact.
    lines: usize,
}

impl PartialEq for Registry {
    /// The same records (the journal bookkeeping aside).
    fn eq(&self, other: &Self) -> bool {
        self.ports == other.ports && self.cursors == other.cursors
    }
}

impl Eq for Registry {}

/// What a process knows of the data file: its identity and the length it has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    /// The generation written in the first line at the last compaction (an inode number
    /// can come back after a rename; a generation does not).
    token: u64,
}

/// The generation in the first line of `text` (0 when there is none).
fn generation(text: &str) -> u64 {
    let first = text.lines().next().unwrap_or("");
    first
        .rsplit_once("generation ")
        .and_then(|(_, t)| u64::from_str_radix(t.trim(), 16).ok())
        .unwrap_or(0)
}

/// A new generation: time and process, mixed.
fn new_generation() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    (t ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

/// A registry with the stamp of the file it matches.
pub(crate) type Cached = (Stamp, Registry);

impl Registry {
    /// The published port that `p` would collide with, if any.
    pub(crate) fn conflict(&self, proto: Proto, ip: IpAddr, port: u16) -> Option<&PublishedPort> {
        self.ports
            .get(&(proto, port))
            .and_then(|v| v.iter().find(|q| addrs_overlap(q.host_ip, ip)))
    }

    /// Records `p` (the caller has checked [`Registry::conflict`]).
    pub(crate) fn insert(&mut self, p: PublishedPort) {
        let _ = writeln!(
            self.log,
            "port {} {} {} {}",
            p.proto, p.host_ip, p.host_port, p.container_port
        );
        self.apply_insert(p);
    }

    fn apply_insert(&mut self, p: PublishedPort) {
        self.ports
            .entry((p.proto, p.host_port))
            .or_default()
            .push(p);
    }

    /// The last port handed out in a range.
    pub(crate) fn cursor(&self, key: &CursorKey) -> Option<u16> {
        self.cursors.get(key).copied()
    }

    /// Moves a range's cursor.
    pub(crate) fn set_cursor(&mut self, key: CursorKey, port: u16) {
        let (proto, ip, range) = key;
        let _ = writeln!(
            self.log,
            "last {proto} {ip} {}-{} {port}",
            range.start(),
            range.end()
        );
        self.cursors.insert(key, port);
    }

    /// Removes every record of `p`'s protocol, host address and host port; true if any.
    pub(crate) fn remove(&mut self, p: &PublishedPort) -> bool {
        let removed = self.apply_remove(p);
        if removed {
            let _ = writeln!(
                self.log,
                "unport {} {} {} {}",
                p.proto, p.host_ip, p.host_port, p.container_port
            );
        }
        removed
    }

    fn apply_remove(&mut self, p: &PublishedPort) -> bool {
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

    /// The round-robin cursors.
    pub(crate) fn cursors(&self) -> impl Iterator<Item = (&CursorKey, u16)> {
        self.cursors.iter().map(|(k, v)| (k, *v))
    }

    /// Every published port, ordered by protocol, host port, then insertion.
    pub(crate) fn all(&self) -> Vec<PublishedPort> {
        self.ports.values().flatten().copied().collect()
    }

    fn render(&self, token: u64) -> String {
        let mut s = format!(
            "# netplumb published host ports; written under flock(lock), do not edit; generation {token:016x}\n",
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

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Registry> {
        let mut reg = Registry::default();
        reg.apply(path, text, 0)?;
        Ok(reg)
    }

    /// Applies the lines of `text` (numbered from `first_line` + 1 in errors).
    fn apply(&mut self, path: &Path, text: &str, first_line: usize) -> Result<()> {
        let reg = self;
        for (n, line) in text.lines().enumerate() {
            let n = n + first_line;
            reg.lines += 1;
            let line = line.split('#').next().unwrap_or_default();
            let f: Vec<&str> = line.split_whitespace().collect();
            let corrupt = || AllocError::CorruptRegistry {
                path: path.to_path_buf(),
                line: n + 1,
            };
            // No record holds port 0: a line that says so is corrupt.
            let port = |s: &str| {
                s.parse::<u16>()
                    .ok()
                    .filter(|&p| p != 0)
                    .ok_or_else(corrupt)
            };
            match f.as_slice() {
                [] => {}
                [_verb @ ("port" | "unport"), proto, ip, host, ctr] => {
                    let p = PublishedPort::new(
                        proto.parse().map_err(|_| corrupt())?,
                        ip.parse().map_err(|_| corrupt())?,
                        port(host)?,
                        port(ctr)?,
                    );
                    if f[0] == "port" {
                        reg.apply_insert(p);
                    } else {
                        reg.apply_remove(&p);
                    }
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
        Ok(())
    }

    /// Lines a compacted file would have.
    fn live_lines(&self) -> usize {
        self.ports.values().map(Vec::len).sum::<usize>() + self.cursors.len()
    }
}

/// The registry folder, locked: load, change, store while it lives; unlocked on drop.
/// How long [`Locked::acquire`] waits for another process's change of the registry
/// before it gives up (with `EWOULDBLOCK`).
pub(crate) const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
        // Bounded: another process holds it for one change (milliseconds); one that holds
        // it for LOCK_TIMEOUT is stuck, and waiting on would only hang this one too.
        let deadline = std::time::Instant::now() + LOCK_TIMEOUT;
        let mut pause = std::time::Duration::from_micros(50);
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    return Ok(Locked {
                        dir: dir.to_path_buf(),
                        _lock: lock,
                    })
                }
                Err((f, Errno::EINTR)) => file = f,
                Err((f, Errno::EWOULDBLOCK)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(5));
                    file = f;
                }
                Err((_, e)) => return Err(Error::io(&path, std::io::Error::from(e))),
            }
        }
    }

    /// Reads the registry; a missing data file is an empty registry. With `cache` (the
    /// registry this process last read or wrote, and the file's stamp then), only lines
    /// appended since are read.
    pub(crate) fn load(&self, cache: Option<Cached>) -> Result<(Stamp, Registry)> {
        let path = self.dir.join(DATA);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((
                    Stamp {
                        dev: 0,
                        ino: 0,
                        len: 0,
                        token: 0,
                    },
                    Registry::default(),
                ))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let now = Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            token: 0,
        };
        if let Some((old, mut reg)) = cache {
            if (old.dev, old.ino) == (now.dev, now.ino)
                && old.len <= now.len
                && first_line_token(&path)? == old.token
            {
                let tail = if old.len < now.len {
                    read_from(&path, old.len)?
                } else {
                    String::new()
                };
                let tail = complete_lines(&tail);
                reg.apply(&path, tail, reg.lines)?;
                reg.log.clear();
                return Ok((
                    Stamp {
                        len: old.len + tail.len() as u64,
                        ..old
                    },
                    reg,
                ));
            }
        }
        let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let whole = complete_lines(&text);
        let reg = Registry::parse(&path, whole)?;
        Ok((
            Stamp {
                len: whole.len() as u64,
                token: generation(whole),
                ..now
            },
            reg,
        ))
    }

    /// Writes `reg`'s changes: appended to the journal (and synced), or, when the journal
    /// holds twice the live records, the whole registry to a temporary file renamed over.
    /// Returns the new stamp, for the next [`Locked::load`].
    pub(crate) fn store(&self, stamp: Stamp, reg: &mut Registry) -> Result<Stamp> {
        let path = self.dir.join(DATA);
        let appended = reg.log.lines().count();
        // Appending needs the file to end where we read it (no half line from a crash).
        let intact = stamp.ino != 0
            && fs::metadata(&path).is_ok_and(|m| m.len() == stamp.len && m.ino() == stamp.ino);
        if intact && reg.lines + appended <= 2 * reg.live_lines() + 64 {
            let mut f = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            f.write_all(reg.log.as_bytes())
                .and_then(|()| f.sync_data())
                .map_err(|e| Error::io(&path, e))?;
            reg.lines += appended;
            let len = stamp.len + reg.log.len() as u64;
            reg.log.clear();
            return Ok(Stamp { len, ..stamp });
        }
        let tmp = self.dir.join(format!("{DATA}.tmp"));
        let token = new_generation();
        let text = reg.render(token);
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        let meta = fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        reg.lines = text.lines().count();
        reg.log.clear();
        Ok(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            token,
        })
    }
}

/// The file from byte `from` on.
fn read_from(path: &Path, from: u64) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    f.seek(SeekFrom::Start(from))
        .map_err(|e| Error::io(path, e))?;
    let mut s = String::new();
    f.read_to_string(&mut s).map_err(|e| Error::io(path, e))?;
    Ok(s)
}

/// The generation in the first line of the file at `path`.
fn first_line_token(path: &Path) -> Result<u64> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 160];
    let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
    Ok(generation(&String::from_utf8_lossy(&head[..n])))
}

/// `text` up to its last newline: a line without one is a crash mid-append.
fn complete_lines(text: &str) -> &str {
    text.rfind('\n').map_or("", |i| &text[..=i])
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
    fn round_trip_through_the_journal() {
        let dir = temp_dir("round-trip");
        let locked = Locked::acquire(&dir).unwrap();
        let (stamp, mut reg) = locked.load(None).unwrap();
        assert_eq!(reg, Registry::default(), "no file yet: empty");
        reg.insert(port("0.0.0.0", 32768, 80));
        reg.insert(PublishedPort::new(
            Proto::Udp,
            "::1".parse().unwrap(),
            5353,
            53,
        ));
        let key = (
            Proto::Tcp,
            "0.0.0.0".parse().unwrap(),
            PortRange::new(32768, 60999).unwrap(),
        );
        reg.set_cursor(key, 32768);
        let stamp = locked.store(stamp, &mut reg).unwrap();
        assert_eq!(
            locked.load(None).unwrap().1,
            reg,
            "another process reads the same"
        );
        let text = fs::read_to_string(dir.join(DATA)).unwrap();
        assert!(text.contains("port tcp 0.0.0.0 32768 80\n"), "{text}");
        assert!(
            text.contains("last tcp 0.0.0.0 32768-60999 32768\n"),
            "{text}"
        );
        assert!(!dir.join("published.tmp").exists());

        // A small change is appended, not rewritten.
        let (stamp, mut mine) = locked.load(Some((stamp, reg.clone()))).unwrap();
        assert!(mine.remove(&port("0.0.0.0", 32768, 80)));
        let stamp = locked.store(stamp, &mut mine).unwrap();
        let text = fs::read_to_string(dir.join(DATA)).unwrap();
        assert!(text.ends_with("unport tcp 0.0.0.0 32768 80\n"), "{text}");
        assert_eq!(locked.load(None).unwrap().1, mine);

        // Another process appends; the cached reader reads only the tail.
        let (other_stamp, mut other) = locked.load(None).unwrap();
        other.insert(port("0.0.0.0", 32769, 81));
        locked.store(other_stamp, &mut other).unwrap();
        let (_, cached) = locked.load(Some((stamp, mine))).unwrap();
        assert_eq!(cached, other);

        // A line cut short by a crash is ignored, and the next change rewrites the file.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(DATA))
            .unwrap();
        f.write_all(b"port tcp 0.0.0.0 4").unwrap();
        let (stamp, mut again) = locked.load(None).unwrap();
        assert_eq!(again, other);
        again.insert(port("0.0.0.0", 32770, 82));
        locked.store(stamp, &mut again).unwrap();
        assert_eq!(locked.load(None).unwrap().1, again);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_journal_is_compacted() {
        let dir = temp_dir("compact");
        let locked = Locked::acquire(&dir).unwrap();
        let (mut stamp, mut reg) = locked.load(None).unwrap();
        for i in 0..200 {
            reg.insert(port("0.0.0.0", 10000 + i, 80));
            stamp = locked.store(stamp, &mut reg).unwrap();
            assert!(reg.remove(&port("0.0.0.0", 10000 + i, 80)));
            stamp = locked.store(stamp, &mut reg).unwrap();
        }
        let lines = fs::read_to_string(dir.join(DATA)).unwrap().lines().count();
        assert!(lines <= 66, "compacted: {lines} lines");
        assert_eq!(locked.load(None).unwrap().1, Registry::default());
        let _ = stamp;
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
