//! The only place with `unsafe`: thin wrappers for the syscalls `nix` does not wrap.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

// NS_GET_NSTYPE = _IO(0xb7, 0x3), see ioctl_ns(2).
nix::ioctl_none_bad!(ns_get_nstype_raw, nix::request_code_none!(0xb7, 0x3));

/// The namespace type (`CLONE_NEW*`) of a namespace file descriptor (`NS_GET_NSTYPE`).
pub fn ns_type(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd's inode.
    unsafe { ns_get_nstype_raw(fd.as_raw_fd()) }
}
