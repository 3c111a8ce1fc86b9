//! [`Errno`]: the system error number inside [`Error`](super::Error), as our own type.

use std::fmt;

use nix::errno::Errno as Sys;

/// A system error number (`errno`), as the kernel or libc returned it.
///
/// The crate's own type, so that [`Error`](super::Error) does not tie a user to the
/// version of the syscall crate we build on. The usual numbers are constants (matched like
/// an enum); [`raw`](Self::raw) and [`from_raw`](Self::from_raw) convert from and to the
/// plain number, and `Debug` prints the symbolic name.
///
/// ```
/// use netplumb::error::Errno;
///
/// let e = Errno::from_raw(17);
/// assert_eq!(e, Errno::EEXIST);
/// assert_eq!(format!("{e:?}"), "EEXIST");
/// assert_eq!(e.to_string(), "File exists");
/// assert!(matches!(e, Errno::EEXIST | Errno::EBUSY));
/// let io: std::io::Error = e.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::AlreadyExists);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Errno(i32);

macro_rules! errnos {
    ($($name:ident: $what:literal),* $(,)?) => {
        impl Errno {
            $(
                #[doc = $what]
                pub const $name: Errno = Errno(Sys::$name as i32);
            )*
        }
    };
}

errnos! {
    EPERM: "Operation not permitted.",
    ENOENT: "No such file or directory.",
    ESRCH: "No such process.",
    EINTR: "Interrupted system call.",
    EIO: "Input/output error.",
    EBADF: "Bad file descriptor.",
    EAGAIN: "Try again (also `EWOULDBLOCK`).",
    ENOMEM: "Out of memory.",
    EACCES: "Permission denied.",
    EBUSY: "Device or resource busy.",
    EEXIST: "File exists.",
    ENODEV: "No such device.",
    ENOTDIR: "Not a directory.",
    EINVAL: "Invalid argument.",
    ENOSPC: "No space left on device.",
    EROFS: "Read-only file system.",
    ERANGE: "Result out of range.",
    ENOTEMPTY: "Directory not empty.",
    EMSGSIZE: "Message too long.",
    EPROTONOSUPPORT: "Protocol not supported.",
    EOPNOTSUPP: "Operation not supported.",
    EAFNOSUPPORT: "Address family not supported by protocol.",
    EADDRINUSE: "Address already in use.",
    EADDRNOTAVAIL: "Cannot assign requested address.",
    ENETUNREACH: "Network is unreachable.",
    ENOBUFS: "No buffer space available.",
    ETIMEDOUT: "Connection timed out.",
    ERESTART: "Interrupted system call should be restarted (nf_tables: the ruleset changed).",
}

impl Errno {
    /// `EWOULDBLOCK`, the same number as [`EAGAIN`](Self::EAGAIN) on Linux.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;

    /// The error of number `n`.
    pub const fn from_raw(n: i32) -> Errno {
        Errno(n)
    }

    /// The plain number.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The system's description of it ("File exists").
    pub fn desc(self) -> &'static str {
        Sys::from_raw(self.0).desc()
    }

    /// The calling thread's last error (`errno` after a failed libc call).
    pub fn last() -> Errno {
        Errno(Sys::last_raw())
    }

    /// The syscall crate's value, for the calls made on it inside the crate.
    pub(crate) fn from_sys(e: Sys) -> Errno {
        Errno(e as i32)
    }
}

/// Our [`Errno`] from the syscall crate's (or our own), at the sites that build an error.
pub(crate) trait IntoErrno {
    fn into_errno(self) -> Errno;
}

impl IntoErrno for Sys {
    fn into_errno(self) -> Errno {
        Errno::from_sys(self)
    }
}

impl IntoErrno for Errno {
    fn into_errno(self) -> Errno {
        self
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Sys::from_raw(self.0) {
            Sys::UnknownErrno => write!(f, "errno {}", self.0),
            e => fmt::Debug::fmt(&e, f),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.desc())
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for std::io::Error {
    fn from(e: Errno) -> Self {
        std::io::Error::from_raw_os_error(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_names_and_texts_match_the_system() {
        for (ours, sys) in [
            (Errno::EEXIST, Sys::EEXIST),
            (Errno::ENODEV, Sys::ENODEV),
            (Errno::ERESTART, Sys::ERESTART),
            (Errno::EWOULDBLOCK, Sys::EWOULDBLOCK),
        ] {
            assert_eq!(ours.raw(), sys as i32);
            assert_eq!(format!("{ours:?}"), format!("{sys:?}"));
            assert_eq!(ours.desc(), sys.desc());
            assert_eq!(Errno::from_sys(sys), ours);
        }
        assert_eq!(format!("{:?}", Errno::from_raw(100_000)), "errno 100000");
    }
}
