//! The folder of named namespaces: [`NetnsDir`] (`ip netns add/list/delete/attach`).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::claim::{probe, Claim, Entry, TRIES};
use super::handle::{netns_err, on_thread, open_checked, Netns, THREAD_SELF_NET};
use nix::errno::Errno;

use crate::error::{Error, IntoErrno, Result};

/// The folder `ip netns` uses for named namespaces.
pub const DEFAULT_NETNS_DIR: &str = "/var/run/netns";

/// How old a half-made name must be before it counts as abandoned, by default.
const STALE_AFTER: Duration = Duration::from_secs(2);

/// A folder of named namespaces, as `ip netns` keeps in `/var/run/netns`.
///
/// # How a half-made namespace is told apart from one being made
///
/// A name is made in two steps: a file in the folder, then the namespace bind-mounted on
/// it. A process killed between the two leaves an empty, unmounted file, which `ip netns`
/// lists as "Peer netns reference is invalid". So that such a file can be told from one
/// whose maker is still at work, [`create`](Self::create) and [`attach`](Self::attach)
/// keep the file locked (`flock(LOCK_EX)`) from the instant it appears until the mount is
/// done: the file is made unnamed (`O_TMPFILE`), locked, and only then linked under its
/// name, which fails if the name is taken.
///
/// The kernel releases the lock when the maker closes the file or dies, however it dies
/// (SIGKILL included), and the lock records no pid, so a reused pid cannot keep a dead
/// maker's file alive. A name is then one of:
/// - **complete**: a network namespace is mounted on it;
/// - **being made**: its empty file is locked;
/// - **half made**: its empty file is unmounted and unlocked: its maker is gone.
///
/// [`list`](Self::list) shows complete names only. [`gc`](Self::gc) removes half-made
/// ones, [`delete`](Self::delete) removes a half-made name as well as a complete one, and
/// [`create`](Self::create) replaces a half-made name; none of them touches a name being
/// made (`delete` fails with "is being created", `create` with "already exists").
///
/// Tools that take no lock (`ip netns add`, or this crate on a filesystem without
/// `O_TMPFILE`) leave their file unlocked for a moment before they lock or mount it; a
/// half-made file younger than [`stale_after`](Self::stale_after) (2 s unless set)
/// therefore counts as being made for `gc` and `create`. `delete` is asked for the name
/// and does not wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsDir {
    dir: PathBuf,
    stale_after: Duration,
}

impl Default for NetnsDir {
    fn default() -> Self {
        NetnsDir::new(DEFAULT_NETNS_DIR)
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::invalid(
            "namespace name",
            name,
            "must be 1 to 255 bytes",
        ));
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::invalid(
            "namespace name",
            name,
            "must not contain '/' or be '.' or '..'",
        ));
    }
    Ok(())
}

/// Makes the netns folder a shared mount point, so that names created later propagate to
/// other mount namespaces (what `ip netns add` does).
fn make_shared_mount(dir: &Path) -> Result<()> {
    // Two threads making their first names at once must not both bind the folder onto
    // itself (the mounts would stack); across processes `ip netns add` has the same race.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let shared = || {
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then share it (as `ip netns add`).
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| netns_err(dir, "cannot bind-mount the netns folder", Some(e)))?;
            shared().map_err(|e| netns_err(dir, "cannot make the netns folder shared", Some(e)))
        }
        Err(e) => Err(netns_err(
            dir,
            "cannot make the netns folder shared",
            Some(e),
        )),
    }
}

/// Whether the top mount on `dir` (canonical) is a bind of a folder of the file system
/// beneath it, as [`make_shared_mount`] makes, read from this thread's mount table.
fn self_bind_mounted(dir: &Path) -> Result<bool> {
    let table = "/proc/thread-self/mountinfo";
    let text = fs::read_to_string(table).map_err(|e| Error::io(table, e))?;
    // Fields: id, parent id, major:minor, root, mount point, ...
    let mounts: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let Some(top) = mounts
        .iter()
        .rev()
        .find(|m| m.len() > 4 && Path::new(&unescape(m[4])) == dir)
    else {
        return Ok(false);
    };
    let parent = mounts.iter().find(|m| m.len() > 4 && m[0] == top[1]);
    Ok(parent.is_some_and(|p| p[2] == top[2]) && top[3] != "/")
}

/// A mount table path with its octal escapes (`\040` for a space) decoded.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let digits = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], digits) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl NetnsDir {
    /// A folder of named namespaces at `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        NetnsDir {
            dir: dir.into(),
            stale_after: STALE_AFTER,
        }
    }

    /// How old an unlocked half-made name must be before [`gc`](Self::gc) removes it and
    /// [`create`](Self::create) replaces it (2 s unless set; see [`NetnsDir`]). Zero trusts
    /// the lock alone, which is right when only this crate makes names in the folder.
    pub fn stale_after(mut self, age: Duration) -> Self {
        self.stale_after = age;
        self
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of namespace `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Puts a locked, empty file at `name`, replacing a half-made one; "already exists"
    /// if the name is complete or being made.
    fn claim(&self, name: &str) -> Result<Claim> {
        check_name(name)?;
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        make_shared_mount(&self.dir)?;
        let path = self.path(name);
        for _ in 0..TRIES {
            if let Some(c) = Claim::take(&path)? {
                return Ok(c);
            }
            match probe(&path, self.stale_after)? {
                Entry::Unlocked {
                    claim,
                    half_made: true,
                } => {
                    if claim.remove()? {
                        log::info!("replacing the half-made namespace {}", path.display());
                    }
                }
                Entry::Missing => {}
                Entry::Mounted | Entry::Making | Entry::Unlocked { .. } | Entry::Other => break,
            }
        }
        Err(netns_err(&path, "already exists", Some(Errno::EEXIST)))
    }

    /// Bind-mounts `source` (a namespace file) on the claimed name. The handle is opened
    /// from `source`, so it is the namespace mounted even if the name is deleted at once.
    fn bind(claim: &Claim, source: &Path) -> Result<Netns> {
        let path = claim.path();
        let ns = Netns::open_as(source, path)?;
        mount(
            Some(source),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| netns_err(path, "cannot bind-mount the namespace", Some(e)))?;
        Ok(ns)
    }

    /// Ends a claim: on failure the name's file goes; either way the lock is released
    /// (after the mount, so that the name is never unlocked and unmounted).
    fn finish(claim: Claim, made: Result<Netns>) -> Result<Netns> {
        match &made {
            Ok(ns) => log::debug!(
                "named namespace {} (net:[{}])",
                ns.path().display(),
                ns.inode()
            ),
            Err(_) => {
                let _ = claim.remove();
            }
        }
        made
    }

    /// Creates a persistent named namespace (`ip netns add NAME`).
    ///
    /// Fails with "already exists" (and changes nothing) if the name is taken or being
    /// made; a name half made by a process that is gone is replaced (see [`NetnsDir`]).
    ///
    /// ```no_run
    /// let dir = netplumb::NetnsDir::new("/tmp/my-netns");
    /// let ns = dir.create("ctr1")?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn create(&self, name: &str) -> Result<Netns> {
        let claim = self.claim(name)?;
        let made = on_thread(None, || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::Privilege {
                what: "create network namespace",
                errno: e.into_errno(),
            })?;
            Self::bind(&claim, Path::new(THREAD_SELF_NET))
        });
        Self::finish(claim, made)
    }

    /// Names the namespace of a running process (`ip netns attach NAME PID`).
    pub fn attach(&self, name: &str, pid: u32) -> Result<Netns> {
        let source = PathBuf::from(format!("/proc/{pid}/ns/net"));
        Netns::open(&source)?;
        let claim = self.claim(name)?;
        let made = Self::bind(&claim, &source);
        Self::finish(claim, made)
    }

    /// Opens the named namespace `name`.
    pub fn open(&self, name: &str) -> Result<Netns> {
        check_name(name)?;
        Netns::open(self.path(name))
    }

    /// The regular files in the folder, sorted; a missing folder has none.
    fn files(&self) -> Result<Vec<String>> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                if let Some(n) = entry.file_name().to_str() {
                    names.push(n.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    /// The names of the network namespaces mounted in the folder, sorted (`ip netns
    /// list`). Files that are no namespace (a name being made or half made, a stray file)
    /// are left out. A missing folder is an empty list.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut names = self.files()?;
        names.retain(|n| open_checked(&self.path(n)).is_ok());
        Ok(names)
    }

    /// Removes the names half made by processes that are gone (see [`NetnsDir`]) and
    /// returns them, sorted. Names being made, complete names and files that are none of
    /// ours are left alone; a name that cannot be looked at is logged and skipped.
    ///
    /// ```no_run
    /// let removed = netplumb::NetnsDir::default().gc()?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn gc(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for name in self.files()? {
            let path = self.path(&name);
            let gone = match probe(&path, self.stale_after) {
                Ok(Entry::Unlocked {
                    claim,
                    half_made: true,
                }) => claim.remove(),
                Ok(_) => Ok(false),
                Err(e) => Err(e),
            };
            match gone {
                Ok(true) => {
                    log::info!("removed the half-made namespace {}", path.display());
                    removed.push(name);
                }
                Ok(false) => {}
                Err(e) => log::warn!("cannot clean up {}: {e}", path.display()),
            }
        }
        Ok(removed)
    }

    /// Deletes the name `name` (`ip netns delete NAME`): unmounts and removes the file. The
    /// namespace itself lives on while a process or handle holds it.
    ///
    /// A name half made by a process that is gone is removed too; one that a live process
    /// is making is not, and the call fails with "is being created" (`EBUSY`).
    pub fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let path = self.path(name);
        let mut seen = false;
        for _ in 0..TRIES {
            match probe(&path, Duration::ZERO)? {
                Entry::Missing if seen => {
                    log::debug!("deleted the named namespace {}", path.display());
                    return Ok(());
                }
                Entry::Missing => return Err(netns_err(&path, "not found", Some(Errno::ENOENT))),
                Entry::Making => {
                    return Err(netns_err(&path, "is being created", Some(Errno::EBUSY)))
                }
                // Half made, or a stray file: removed under its lock, so never a name
                // that a maker has put there since.
                Entry::Unlocked { claim, .. } => {
                    if claim.remove()? {
                        return Ok(());
                    }
                }
                // Unmounted by someone else since we looked (EINVAL): look again.
                Entry::Mounted => match umount2(&path, MntFlags::MNT_DETACH) {
                    Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
                    Err(e) => return Err(netns_err(&path, "cannot unmount", Some(e))),
                },
                Entry::Other => return remove_other(&path),
            }
            seen = true;
        }
        Err(netns_err(&path, "keeps changing", Some(Errno::EBUSY)))
    }

    /// Deletes every name in the folder (`ip -all netns delete`): complete names, half-made
    /// ones and stray files. A name being made stays and counts as an error ("is being
    /// created"); the first error is returned after the rest is done.
    pub fn delete_all(&self) -> Result<()> {
        let mut first = None;
        for name in self.files()? {
            if let Err(e) = self.delete(&name) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Undoes what the first [`create`](Self::create) or [`attach`](Self::attach) did to
    /// the folder: there, as `ip netns add` does, the folder is bound onto itself and made
    /// a shared mount point, so that names made later show in every mount namespace. This
    /// unmounts that bind mount (each of them, should two makers have stacked theirs) and
    /// returns how many it removed; `0` when the folder is no such mount (never used, or
    /// a file system mounted there, which is left alone).
    ///
    /// The folder must hold no name: with a name in it, nothing is changed and the call
    /// fails with "still holds names" (`EBUSY`), since unmounting the folder would take
    /// the names' mounts with it. A bind mount is told apart from a file system mounted
    /// there by the mount table: same device as the mount it sits on, and a root below
    /// that device's own.
    ///
    /// ```no_run
    /// let dir = netplumb::NetnsDir::new("/run/my-runtime/netns");
    /// dir.create("web")?;
    /// dir.delete("web")?;
    /// assert_eq!(dir.unmount_folder()?, 1);
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn unmount_folder(&self) -> Result<usize> {
        let names = self.files()?;
        if !names.is_empty() {
            return Err(netns_err(
                &self.dir,
                "still holds names",
                Some(Errno::EBUSY),
            ));
        }
        let dir = fs::canonicalize(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut removed = 0;
        while self_bind_mounted(&dir)? {
            umount2(&dir, MntFlags::empty())
                .map_err(|e| netns_err(&dir, "cannot unmount the netns folder", Some(e)))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The names of the namespace process `pid` is in (`ip netns identify PID`).
    pub fn identify(&self, pid: u32) -> Result<Vec<String>> {
        let target = Netns::from_pid(pid)?;
        let mut names = Vec::new();
        for name in self.list()? {
            if Netns::open(self.path(&name)).is_ok_and(|ns| ns == target) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The processes whose namespace is `name` (`ip netns pids NAME`), ascending.
    pub fn pids(&self, name: &str) -> Result<Vec<u32>> {
        let target = self.open(name)?;
        let mut pids = Vec::new();
        let rd = fs::read_dir("/proc").map_err(|e| Error::io("/proc", e))?;
        for entry in rd.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let same = fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| (m.dev(), m.ino()) == target.id());
            if same {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        Ok(pids)
    }
}

/// Removes what is at `path` that is not a name of ours (a link, another mount): unmount
/// if mounted, then remove.
fn remove_other(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(netns_err(path, "cannot unmount", Some(e))),
    }
    fs::remove_file(path).map_err(|e| Error::io(path, e))
}
