//! The creation lock of a named namespace, and how a half-made name is told apart from one
//! being made (flock(2), open(2) `O_TMPFILE`, linkat(2)).
//!
//! A name's file appears in the folder already locked (`flock(LOCK_EX)`) and stays locked
//! until the namespace is bind-mounted on it. The kernel drops a `flock` lock when the last
//! descriptor of the file closes, so also when its holder dies, SIGKILL included; the lock
//! names no process, so a reused pid cannot fake it. An empty, unmounted regular file that
//! nobody holds locked is therefore half made by a process that is gone.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{AtFlags, Flock, FlockArg, AT_FDCWD};
use nix::libc;
use nix::unistd::linkat;

use super::handle::{netns_err, open_checked};
use nix::errno::Errno;

use crate::error::{Error, Result};

/// How many times a look at a name that keeps changing under us is tried again.
pub(super) const TRIES: usize = 8;

/// What a name in a netns folder is, as far as making and removing it goes.
pub(super) enum Entry {
    /// No file by that name.
    Missing,
    /// A network namespace is mounted there: a complete name.
    Mounted,
    /// Being made: its maker holds the lock, or the file is too young to judge.
    Making,
    /// An unmounted regular file that nobody held locked; the lock is now ours. Half made
    /// by a process that is gone when it is empty, else a stray file.
    Unlocked {
        /// The file, locked.
        claim: Claim,
        /// Whether it is empty, as a name's file before its mount.
        half_made: bool,
    },
    /// Anything else (a folder, a link, another kind of mount): not ours to judge.
    Other,
}

/// A name's file, held under its creation lock.
pub(super) struct Claim {
    /// Held for its lock, which goes with it.
    _lock: Flock<File>,
    path: PathBuf,
    id: (u64, u64),
}

fn lock(f: File, how: FlockArg, path: &Path) -> Result<Flock<File>> {
    Flock::lock(f, how).map_err(|(_, e)| netns_err(path, "cannot lock the name", Some(e)))
}

impl Claim {
    fn new(file: Flock<File>, path: &Path) -> Result<Claim> {
        let meta = file.metadata().map_err(|e| Error::io(path, e))?;
        Ok(Claim {
            _lock: file,
            path: path.to_owned(),
            id: (meta.dev(), meta.ino()),
        })
    }

    /// Puts a new, empty file at `path`, locked from its first instant: it is made unnamed
    /// (`O_TMPFILE`), locked, then linked at `path`, which fails when the name is taken.
    /// `None`: the name is taken.
    ///
    /// On a filesystem without `O_TMPFILE` the file is made at `path` and locked just
    /// after; [`probe`]'s age rule covers that moment, and a file removed in it is noticed.
    pub(super) fn take(path: &Path) -> Result<Option<Claim>> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let unnamed = OpenOptions::new()
            .write(true)
            .mode(0o444)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        let f = match unnamed {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                return Self::take_named(path)
            }
            Err(e) => return Err(Error::io(dir, e)),
        };
        let file = lock(f, FlockArg::LockExclusive, path)?;
        // linkat(2) names an O_TMPFILE file through its /proc link (AT_EMPTY_PATH would
        // need CAP_DAC_READ_SEARCH).
        let fd_link = format!("/proc/self/fd/{}", file.as_raw_fd());
        match linkat(
            AT_FDCWD,
            fd_link.as_str(),
            AT_FDCWD,
            path,
            AtFlags::AT_SYMLINK_FOLLOW,
        ) {
            Ok(()) => Claim::new(file, path).map(Some),
            Err(Errno::EEXIST) => Ok(None),
            Err(e) => Err(netns_err(path, "cannot create the name", Some(e))),
        }
    }

    /// [`Claim::take`] without `O_TMPFILE`.
    fn take_named(path: &Path) -> Result<Option<Claim>> {
        let made = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o444)
            .open(path);
        let f = match made {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let c = Claim::new(lock(f, FlockArg::LockExclusive, path)?, path)?;
        // Removed as abandoned before we locked it: the caller looks at the name again.
        Ok(c.is_named().then_some(c))
    }

    /// The name's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still leads to this file: not removed, replaced or mounted over
    /// (stat(2) follows a mount on the path).
    fn is_named(&self) -> bool {
        fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }

    /// Removes the name if it is still this file; whether it did. Nobody else removes or
    /// mounts on a file whose lock we hold, so the path cannot change in between.
    pub(super) fn remove(self) -> Result<bool> {
        if !self.is_named() {
            return Ok(false);
        }
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }
}

/// How long ago the file's inode last changed (made, linked).
fn age(meta: &Metadata) -> Duration {
    let secs = u64::try_from(meta.ctime()).unwrap_or(0);
    let nanos = u32::try_from(meta.ctime_nsec()).unwrap_or(0);
    let changed = UNIX_EPOCH + Duration::new(secs, nanos);
    SystemTime::now()
        .duration_since(changed)
        .unwrap_or(Duration::ZERO)
}

/// Locks `f`, the unmounted regular file at `path`, if nobody holds it. `None`: look
/// again (it is locked, or the name leads elsewhere now).
fn lock_unmounted(
    f: File,
    meta: &Metadata,
    path: &Path,
    stale_after: Duration,
) -> Result<Option<Entry>> {
    let file = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(file) => file,
        Err((_, Errno::EWOULDBLOCK)) => {
            // Its maker, or another look like this one that lets go at once: wait a moment
            // (a maker is done within milliseconds).
            std::thread::sleep(Duration::from_millis(1));
            return Ok(None);
        }
        Err((_, e)) => return Err(netns_err(path, "cannot lock the name", Some(e))),
    };
    let claim = Claim::new(file, path)?;
    if !claim.is_named() {
        // Mounted on (its maker finished) or removed since it was opened.
        return Ok(None);
    }
    let half_made = meta.len() == 0;
    if half_made && age(meta) < stale_after {
        return Ok(Some(Entry::Making));
    }
    Ok(Some(Entry::Unlocked { claim, half_made }))
}

/// Looks at the name at `path` (see the module docs). A half-made file younger than
/// `stale_after` counts as [`Entry::Making`]: a tool that takes no lock (`ip netns add`)
/// may be between its file and its mount.
pub(super) fn probe(path: &Path, stale_after: Duration) -> Result<Entry> {
    for _ in 0..TRIES {
        match fs::symlink_metadata(path) {
            // A link, a folder, a FIFO, a device: not opened at all.
            Ok(m) if !m.file_type().is_file() => return Ok(Entry::Other),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Entry::Missing),
            Err(e) => return Err(Error::io(path, e)),
        }
        if open_checked(path).is_ok() {
            return Ok(Entry::Mounted);
        }
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)
            .open(path);
        let f = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Entry::Missing),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => continue, // now a link
            Err(e) => return Err(Error::io(path, e)),
        };
        let meta = f.metadata().map_err(|e| Error::io(path, e))?;
        let dir_dev = path
            .parent()
            .and_then(|d| fs::metadata(d).ok())
            .map(|m| m.dev());
        if dir_dev != Some(meta.dev()) {
            if open_checked(path).is_ok() {
                continue; // mounted since we looked
            }
            return Ok(Entry::Other);
        }
        if !meta.is_file() {
            return Ok(Entry::Other);
        }
        if let Some(entry) = lock_unmounted(f, &meta, path, stale_after)? {
            return Ok(entry);
        }
    }
    // Still locked, or it keeps changing under us: someone is at work on it.
    Ok(Entry::Making)
}
