//! Throwaway namespaces for tests, examples and benchmarks: [`sandbox`].

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::dir::NetnsDir;
use super::handle::{netns_err, on_thread, Netns};
use crate::error::{Error, IntoErrno, Result};

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
        errno: e.into_errno(),
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
            None::<crate::error::Errno>,
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
