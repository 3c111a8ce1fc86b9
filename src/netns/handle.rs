//! The namespace handle: [`Netns`], opening namespace files and checking what they are,
//! and the helper thread every namespace switch happens on.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use nix::errno::Errno;

use crate::error::{Error, IntoErrno, Result};

/// The calling thread's own namespace file (fact: `/proc/self` names the main thread's).
pub(super) const THREAD_SELF_NET: &str = "/proc/thread-self/ns/net";

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

pub(super) fn netns_err(path: &Path, reason: &'static str, errno: Option<impl IntoErrno>) -> Error {
    Error::Netns {
        path: path.to_path_buf(),
        reason,
        errno: errno.map(IntoErrno::into_errno),
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
pub(super) fn open_checked(path: &Path) -> Result<(OwnedFd, (u64, u64))> {
    let meta = fs::metadata(path).map_err(|e| open_err(path, &e))?;
    let ft = meta.file_type();
    if ft.is_dir() || ft.is_fifo() || ft.is_socket() || ft.is_char_device() || ft.is_block_device()
    {
        return Err(netns_err(
            path,
            "not a network namespace (not a namespace file)",
            None::<Errno>,
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
            None::<Errno>,
        ));
    }
    let ty = crate::sys::ns_type(fd.as_fd())
        .map_err(|e| netns_err(path, "cannot query namespace type", Some(e)))?;
    if ty != CloneFlags::CLONE_NEWNET.bits() {
        return Err(netns_err(
            path,
            "not a network namespace (another namespace type)",
            None::<Errno>,
        ));
    }
    let st = nix::sys::stat::fstat(&fd).map_err(|e| netns_err(path, "cannot stat", Some(e)))?;
    Ok((fd, (st.st_dev, st.st_ino)))
}

/// Runs `f` on a new thread that first enters `ns` (if given); the caller's thread is untouched.
pub(super) fn on_thread<T: Send>(
    ns: Option<&Netns>,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|s| {
        let h = s.spawn(move || {
            if let Some(ns) = ns {
                setns(ns.fd.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Privilege {
                    what: "enter network namespace",
                    errno: e.into_errno(),
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

    /// Opens the namespace file `source` as [`Netns::open`] does, as the name `path` it is
    /// about to be mounted on.
    pub(super) fn open_as(source: &Path, path: &Path) -> Result<Netns> {
        let (fd, id) = open_checked(source)?;
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
                errno: e.into_errno(),
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

    /// The namespace's device and inode numbers.
    pub(super) fn id(&self) -> (u64, u64) {
        self.id
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
    pub(super) fn is_current(&self) -> bool {
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
