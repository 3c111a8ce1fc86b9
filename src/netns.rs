//! Network namespaces (`ip netns`, namespaces(7), setns(2)).
//!
//! A [`Netns`] is an owned handle on a namespace file descriptor, cheap to clone. A
//! [`NetnsDir`] is the folder of named namespaces (`/var/run/netns` by default, any other on
//! request), where [`NetnsDir::create`] bind-mounts a new namespace as `ip netns add` does.
//!
//! **The caller's thread never changes namespace.** [`Netns::run`] and [`Netns::spawn`] do
//! their work on a short-lived helper thread that enters the namespace and then ends, so an
//! early return, a `?` or a panic inside can never leave the caller in the wrong namespace.
//!
//! [`sandbox`] runs a closure on a fresh thread in fresh network and mount namespaces with a
//! private `/run`: everything made inside (links, named namespaces, mounts) disappears with
//! the thread. Tests, examples and benchmarks use it so that they never touch the host.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use crate::error::{Errno, Error, Result};

/// The folder `ip netns` uses for named namespaces.
pub const DEFAULT_NETNS_DIR: &str = "/var/run/netns";

/// The calling thread's own namespace file (fact: `/proc/self` names the main thread's).
const THREAD_SELF_NET: &str = "/proc/thread-self/ns/net";

/// An open network namespace.
///
/// Holds the namespace's file descriptor, so the namespace lives at least as long as any
/// clone of the handle, even after its name is deleted.
#[derive(Clone)]
pub struct Netns {
    fd: Arc<OwnedFd>,
    path: Arc<Path>,
    id: (u64, u64),
}

impl fmt::Debug for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netns")
            .field("path", &self.path)
            .field("fd", &self.fd.as_raw_fd())
            .field("inode", &self.id.1)
            .finish()
    }
}

impl fmt::Display for Netns {
    /// The name `ip` would use: the file name under a netns folder, else `net:[INODE]`
    /// (what `readlink /proc/PID/ns/net` prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "net:[{}]", self.id.1),
        }
    }
}

impl PartialEq for Netns {
    /// Two handles are equal when they name the same namespace (device and inode).
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Netns {}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn netns_err(path: &Path, reason: &'static str, errno: Option<Errno>) -> Error {
    Error::Netns {
        path: path.to_path_buf(),
        reason,
        errno,
    }
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(0))
}

fn open_err(path: &Path, e: &std::io::Error) -> Error {
    let errno = errno_of(e);
    let reason = match errno {
        Errno::ENOENT => "not found",
        Errno::EACCES | Errno::EPERM => "permission denied",
        _ => "cannot open",
    };
    netns_err(path, reason, Some(errno))
}

/// Opens `path` and checks that it is a network namespace file, never blocking on a FIFO,
/// socket or device.
fn open_checked(path: &Path) -> Result<(OwnedFd, (u64, u64))> {
    let meta = fs::metadata(path).map_err(|e| open_err(path, &e))?;
    let ft = meta.file_type();
    if ft.is_dir() || ft.is_fifo() || ft.is_socket() || ft.is_char_device() || ft.is_block_device()
    {
        return Err(netns_err(
            path,
            "not a network namespace (not a namespace file)",
            None,
        ));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
        .open(path)
        .map_err(|e| open_err(path, &e))?;
    let fd = OwnedFd::from(file);
    let fs = fstatfs(&fd).map_err(|e| netns_err(path, "cannot stat", Some(e)))?;
    if fs.filesystem_type() != NSFS_MAGIC {
        return Err(netns_err(
            path,
            "not a network namespace (not a namespace file)",
            None,
        ));
    }
    let ty = crate::sys::ns_type(fd.as_fd())
        .map_err(|e| netns_err(path, "cannot query namespace type", Some(e)))?;
    if ty != CloneFlags::CLONE_NEWNET.bits() {
        return Err(netns_err(
            path,
            "not a network namespace (another namespace type)",
            None,
        ));
    }
    let st = nix::sys::stat::fstat(&fd).map_err(|e| netns_err(path, "cannot stat", Some(e)))?;
    Ok((fd, (st.st_dev, st.st_ino)))
}

/// Runs `f` on a new thread that first enters `ns` (if given); the caller's thread is untouched.
fn on_thread<T: Send>(ns: Option<&Netns>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            if let Some(ns) = ns {
                setns(ns.fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Privilege {
                    what: "enter network namespace",
                    errno: e,
                })?;
            }
            f()
        });
        match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

impl Netns {
    /// Opens any path to a network namespace file: `/proc/PID/ns/net`, a bind mount under a
    /// netns folder, `/proc/thread-self/ns/net`.
    ///
    /// Anything else is refused with [`Error::Netns`]: other namespace types (`ns/uts`,
    /// `ns/mnt`), plain files, folders, FIFOs and sockets.
    ///
    /// ```no_run
    /// let ns = netplumb::Netns::open("/proc/1/ns/net")?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        let (fd, id) = open_checked(path)?;
        Ok(Netns {
            fd: Arc::new(fd),
            path: Arc::from(path),
            id,
        })
    }

    /// The namespace of process `pid` (`/proc/PID/ns/net`).
    pub fn from_pid(pid: u32) -> Result<Netns> {
        Netns::open(format!("/proc/{pid}/ns/net"))
    }

    /// The calling thread's namespace (`/proc/thread-self/ns/net`, which unlike
    /// `/proc/self/ns/net` is right on every thread).
    pub fn current() -> Result<Netns> {
        Netns::open(THREAD_SELF_NET)
    }

    /// Creates a new, unnamed namespace: it lives as long as a handle to it does.
    ///
    /// ```no_run
    /// let ns = netplumb::Netns::new()?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn new() -> Result<Netns> {
        on_thread(None, || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::Privilege {
                what: "create network namespace",
                errno: e,
            })?;
            Netns::current()
        })
    }

    /// The path the handle was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file name when the handle was opened from a named-namespace folder.
    pub fn name(&self) -> Option<&str> {
        let p: &Path = &self.path;
        if p.starts_with("/proc") {
            return None;
        }
        p.file_name().and_then(OsStr::to_str)
    }

    /// The namespace's inode number (what `ls -i /proc/PID/ns/net` and `lsns` show).
    pub fn inode(&self) -> u64 {
        self.id.1
    }

    /// Runs `f` inside this namespace, on a helper thread, and returns its result
    /// (`ip netns exec NAME` for a closure). Panics in `f` are re-raised in the caller.
    ///
    /// The caller's thread never changes namespace, so nothing `f` does (an early return,
    /// a `?`, a panic) can leave it in the wrong one.
    ///
    /// ```no_run
    /// # let ns = netplumb::Netns::new()?;
    /// let forwarding = ns.run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"))?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        if self.is_current() {
            // Already there: no thread to start, nothing to switch.
            return Ok(f());
        }
        on_thread(Some(self), || Ok(f()))
    }

    /// Whether the calling thread is in this namespace.
    fn is_current(&self) -> bool {
        fs::metadata(THREAD_SELF_NET).is_ok_and(|m| (m.dev(), m.ino()) == self.id)
    }

    /// Spawns `cmd` inside this namespace (`ip netns exec NAME cmd`). The child inherits the
    /// namespace from the helper thread that starts it.
    ///
    /// Unlike `ip netns exec`, this changes only the network namespace: it does not remount
    /// `/sys` (so `/sys/class/net` in the child still shows the caller's namespace) and does
    /// not bind `/etc/netns/NAME` files over `/etc`.
    ///
    /// ```no_run
    /// # let ns = netplumb::Netns::new()?;
    /// let out = ns.spawn(std::process::Command::new("ip").arg("link"))?.wait_with_output();
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn spawn(&self, cmd: &mut Command) -> Result<Child> {
        let prog = PathBuf::from(cmd.get_program());
        on_thread(Some(self), move || {
            cmd.spawn().map_err(|e| Error::io(prog, e))
        })
    }
}

/// A folder of named namespaces, as `ip netns` keeps in `/var/run/netns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsDir {
    dir: PathBuf,
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

impl NetnsDir {
    /// A folder of named namespaces at `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        NetnsDir { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of namespace `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates a file for `name`, failing with "already exists" if it is there.
    fn claim(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        make_shared_mount(&self.dir)?;
        let path = self.path(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_ro()
            .open(&path)
        {
            Ok(_) => Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(netns_err(&path, "already exists", Some(Errno::EEXIST)))
            }
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Bind-mounts `source` (a namespace file) on the claimed `path`; removes `path` on failure.
    fn bind(path: &Path, source: &Path) -> Result<Netns> {
        let r = mount(
            Some(source),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| netns_err(path, "cannot bind-mount the namespace", Some(e)))
        .and_then(|()| Netns::open(path));
        if r.is_err() {
            let _ = umount2(path, MntFlags::MNT_DETACH);
            let _ = fs::remove_file(path);
        }
        r
    }

    /// Creates a persistent named namespace (`ip netns add NAME`).
    ///
    /// Fails with "already exists" (and changes nothing) if the name is taken.
    ///
    /// ```no_run
    /// let dir = netplumb::NetnsDir::new("/tmp/my-netns");
    /// let ns = dir.create("ctr1")?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn create(&self, name: &str) -> Result<Netns> {
        let path = self.claim(name)?;
        let made = on_thread(None, || {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::Privilege {
                what: "create network namespace",
                errno: e,
            })?;
            Self::bind(&path, Path::new(THREAD_SELF_NET))
        });
        if made.is_err() {
            let _ = fs::remove_file(&path);
        }
        made
    }

    /// Names the namespace of a running process (`ip netns attach NAME PID`).
    pub fn attach(&self, name: &str, pid: u32) -> Result<Netns> {
        let source = PathBuf::from(format!("/proc/{pid}/ns/net"));
        Netns::open(&source)?;
        let path = self.claim(name)?;
        Self::bind(&path, &source)
    }

    /// Opens the named namespace `name`.
    pub fn open(&self, name: &str) -> Result<Netns> {
        check_name(name)?;
        Netns::open(self.path(name))
    }

    /// The names in the folder, sorted (`ip netns list`). A missing folder is an empty list.
    pub fn list(&self) -> Result<Vec<String>> {
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

    /// Deletes the name `name` (`ip netns delete NAME`): unmounts and removes the file. The
    /// namespace itself lives on while a process or handle holds it.
    pub fn delete(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let path = self.path(name);
        if !path.exists() {
            return Err(netns_err(&path, "not found", Some(Errno::ENOENT)));
        }
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(netns_err(&path, "cannot unmount", Some(e))),
        }
        fs::remove_file(&path).map_err(|e| Error::io(&path, e))
    }

    /// Deletes every name in the folder (`ip -all netns delete`).
    pub fn delete_all(&self) -> Result<()> {
        let mut first = None;
        for name in self.list()? {
            if let Err(e) = self.delete(&name) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
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
                .is_ok_and(|m| (m.dev(), m.ino()) == target.id);
            if same {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        Ok(pids)
    }
}

trait ModeRo {
    fn mode_ro(&mut self) -> &mut Self;
}

impl ModeRo for OpenOptions {
    fn mode_ro(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o444)
    }
}

/// A throwaway world: fresh network and mount namespaces on a thread of its own, with a
/// private tmpfs on `/run`. See [`sandbox`].
#[derive(Debug)]
pub struct Sandbox {
    host: Netns,
    dir: NetnsDir,
}

impl Sandbox {
    /// The sandbox's own namespace: the "host" its containers hang off.
    pub fn host(&self) -> &Netns {
        &self.host
    }

    /// The named-namespace folder inside the sandbox (`/run/netns` on its private tmpfs).
    pub fn netns_dir(&self) -> &NetnsDir {
        &self.dir
    }
}

fn enter_sandbox() -> Result<Sandbox> {
    let outer = File::open("/proc/self/ns/net")
        .and_then(|f| f.metadata())
        .map(|m| m.ino());
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS).map_err(|e| Error::Privilege {
        what: "create sandbox namespaces",
        errno: e,
    })?;
    let none = None::<&str>;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| netns_err(Path::new("/"), "cannot make mounts private", Some(e)))?;
    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )
    .map_err(|e| netns_err(Path::new("/run"), "cannot mount a private /run", Some(e)))?;
    let host = Netns::current()?;
    if outer.is_ok_and(|ino| ino == host.inode()) {
        return Err(netns_err(
            host.path(),
            "sandbox did not leave the host namespace",
            None,
        ));
    }
    Ok(Sandbox {
        host,
        dir: NetnsDir::new("/run/netns"),
    })
}

/// Runs `f` on a fresh thread inside fresh network and mount namespaces with a private
/// tmpfs on `/run`, and returns what it returns. Panics in `f` are re-raised.
///
/// Everything made inside — links, addresses, named namespaces (under `/run/netns` of the
/// sandbox), mounts — is gone when the thread ends, even after a panic. Needs root (or
/// CAP_SYS_ADMIN + CAP_NET_ADMIN); without it, returns [`Error::Privilege`].
///
/// ```no_run
/// netplumb::netns::sandbox(|s| {
///     let ctr = s.netns_dir().create("ctr1").unwrap();
///     assert_ne!(&ctr, s.host());
/// })?;
/// # Ok::<(), netplumb::Error>(())
/// ```
pub fn sandbox<T: Send>(f: impl FnOnce(&Sandbox) -> T + Send) -> Result<T> {
    on_thread(None, || {
        let s = enter_sandbox()?;
        Ok(f(&s))
    })
}
