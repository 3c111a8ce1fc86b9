//! Integration tests of the `netns` module against the running kernel: named namespaces
//! (`ip netns add/list/delete/identify/pids/attach/set/list-id`), entering namespaces with
//! `Netns::run` and `Netns::spawn`, opening namespace files and refusing everything else,
//! and what a fresh namespace looks like.
//!
//! Every test runs inside `common::sandbox`, so named namespaces live under the private
//! `/run` of the sandbox and never on the host.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixListener;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use netplumb::error::Errno;
use netplumb::link::LinkSet;
use netplumb::netns::DEFAULT_NETNS_DIR;
use netplumb::{Error, Netns, NetnsDir, Rtnl};

/// Kills and reaps a child process when dropped, also when a test fails half-way.
struct ChildGuard(Child);

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sleep 30` inside `ns`.
fn sleeper_in(ns: &Netns) -> ChildGuard {
    let child = ns
        .spawn(
            Command::new("sleep")
                .arg("30")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("spawn sleep inside the namespace");
    ChildGuard(child)
}

/// What `readlink /proc/PID/ns/net` prints for `ns`.
fn ns_link(ns: &Netns) -> String {
    format!("net:[{}]", ns.inode())
}

/// The calling thread's namespace as the kernel names it, read without the library.
fn thread_ns_link() -> String {
    fs::read_link("/proc/thread-self/ns/net")
        .expect("readlink /proc/thread-self/ns/net")
        .to_string_lossy()
        .into_owned()
}

/// The calling thread's id.
fn tid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// The inode behind a path (for a namespace file: the namespace's inode).
fn inode(path: &Path) -> u64 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .ino()
}

/// The mounts of the calling thread's mount namespace: (mount point, filesystem type).
fn mounts() -> Vec<(String, String)> {
    let info = fs::read_to_string("/proc/thread-self/mountinfo").expect("read mountinfo");
    info.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?;
            Some((point.to_string(), fstype.to_string()))
        })
        .collect()
}

/// How many nsfs mounts sit exactly on `path`.
fn nsfs_mounts_on(path: &Path) -> usize {
    let p = path.to_string_lossy();
    mounts()
        .iter()
        .filter(|(point, fstype)| *point == p && fstype == "nsfs")
        .count()
}

/// How many nsfs mounts sit anywhere under folder `dir`.
fn nsfs_mounts_under(dir: &Path) -> usize {
    mounts()
        .iter()
        .filter(|(point, fstype)| fstype == "nsfs" && Path::new(point).starts_with(dir))
        .count()
}

/// A scratch folder on the sandbox's private `/run`, removed (with its content) on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(name: &str) -> ScratchDir {
        let p = Path::new("/run").join(name);
        assert!(
            p.starts_with("/run/"),
            "scratch folders live on the sandbox /run"
        );
        fs::create_dir_all(&p).expect("create scratch folder");
        ScratchDir(p)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deletes every name of a netns folder on drop, even when a test fails half-way.
struct DirCleanup<'a>(&'a NetnsDir);

impl Drop for DirCleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.delete_all();
    }
}

/// Deletes the names of a custom netns folder, unmounts the folder (it was bind-mounted onto
/// itself to be shared) and removes `root` on drop.
struct CustomDirCleanup {
    root: PathBuf,
    dir: NetnsDir,
}

impl Drop for CustomDirCleanup {
    fn drop(&mut self) {
        let _ = self.dir.delete_all();
        let _ = nix::mount::umount2(self.dir.dir(), nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// `Netns::open(path)` on a helper thread; fails the test if it has not returned within a
/// few seconds (a FIFO opened for reading blocks until a writer comes).
fn open_or_fail_if_stuck(path: &Path) -> netplumb::Result<Netns> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    let h = std::thread::spawn(move || {
        let _ = tx.send(Netns::open(&p));
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(r) => {
            h.join().expect("open thread");
            r
        }
        Err(_) => {
            // Release a reader stuck in open(2) on a FIFO so the thread can end, then fail.
            let _unblock = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(path);
            panic!("Netns::open({}) did not return: it blocks", path.display());
        }
    }
}

/// Asserts that `r` is an `Error::Netns` about `path`; returns its errno.
fn assert_netns_refusal(r: netplumb::Result<Netns>, path: &Path) -> Option<Errno> {
    match r {
        Err(Error::Netns {
            path: p,
            reason,
            errno,
        }) => {
            assert_eq!(p, path, "the error names the path given");
            assert!(!reason.is_empty());
            errno
        }
        Err(e) => panic!("{}: expected Error::Netns, got {e:?}", path.display()),
        Ok(ns) => panic!("{}: opened as a network namespace: {ns:?}", path.display()),
    }
}

fn assert_invalid_name(r: netplumb::Result<impl std::fmt::Debug>, name: &str) {
    match r {
        Err(e @ Error::InvalidInput { .. }) => {
            assert!(e.is_invalid(), "{e}");
            if let Error::InvalidInput { field, .. } = &e {
                assert_eq!(*field, "namespace name");
            }
        }
        other => panic!("name {name:?}: expected Error::InvalidInput, got {other:?}"),
    }
}

fn link_names_in(ns: &Netns) -> Vec<String> {
    let mut r = Rtnl::open_in(ns).expect("rtnl inside namespace");
    common::link_names(&mut r)
}

// ---------------------------------------------------------------------------------------
// A1: ip netns add
// ---------------------------------------------------------------------------------------

#[test]
fn create_bind_mounts_a_new_namespace_file() {
    common::sandbox("create_bind_mounts_a_new_namespace_file", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let path = dir.path("ctr1");
        assert_eq!(path, Path::new("/run/netns/ctr1"));
        assert!(!path.exists());

        let ns = dir.create("ctr1").expect("create ctr1");
        assert_eq!(ns.path(), path);
        assert_eq!(ns.name(), Some("ctr1"));
        assert_eq!(ns.to_string(), "ctr1");
        assert_ne!(&ns, s.host(), "a new namespace, not the caller's");

        // The file is a bind mount of an nsfs inode: the namespace's.
        assert!(path.is_file());
        assert_eq!(inode(&path), ns.inode());
        assert_eq!(
            nsfs_mounts_on(&path),
            1,
            "one nsfs mount on {}",
            path.display()
        );
        let fs = nix::sys::statfs::statfs(&path).expect("statfs");
        assert_eq!(fs.filesystem_type(), nix::sys::statfs::NSFS_MAGIC);

        // The mount keeps the namespace alive without any handle.
        let ino = ns.inode();
        drop(ns);
        let again = dir.open("ctr1").expect("reopen ctr1");
        assert_eq!(again.inode(), ino);
        assert_eq!(Netns::open(&path).expect("open by path"), again);

        // The creating thread never left the sandbox namespace.
        assert_eq!(&Netns::current().unwrap(), s.host());
        assert_eq!(thread_ns_link(), ns_link(s.host()));

        dir.delete("ctr1").expect("delete ctr1");
        assert!(!path.exists());
        assert_eq!(nsfs_mounts_on(&path), 0);
    });
}

#[test]
fn create_existing_name_fails_and_changes_nothing() {
    common::sandbox("create_existing_name_fails_and_changes_nothing", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let first = dir.create("dup").expect("create dup");
        let path = dir.path("dup");
        let before = inode(&path);
        assert_eq!(before, first.inode());

        let err = dir
            .create("dup")
            .expect_err("second create of the same name");
        assert!(err.is_exists(), "is_exists() for {err}");
        assert!(
            matches!(
                &err,
                Error::Netns {
                    errno: Some(Errno::EEXIST),
                    ..
                }
            ),
            "{err:?}"
        );

        // Nothing changed: same namespace behind the name, no second mount stacked on it.
        assert_eq!(inode(&path), before);
        assert_eq!(dir.open("dup").unwrap(), first);
        assert_eq!(nsfs_mounts_on(&path), 1);
        assert_eq!(dir.list().unwrap(), vec!["dup".to_string()]);

        // The same holds for a name taken by attach.
        let child = sleeper_in(s.host());
        let err = dir
            .attach("dup", child.pid())
            .expect_err("attach onto a taken name");
        assert!(err.is_exists(), "{err}");
        assert_eq!(inode(&path), before);
        assert_eq!(nsfs_mounts_on(&path), 1);

        dir.delete("dup").unwrap();
        assert!(dir.list().unwrap().is_empty());
    });
}

#[test]
fn invalid_names_are_invalid_input() {
    common::sandbox("invalid_names_are_invalid_input", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let long = "n".repeat(256);
        let child = sleeper_in(s.host());
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "/abs",
            "../escape",
            "nul\0byte",
            long.as_str(),
        ] {
            assert_invalid_name(dir.create(name), name);
            assert_invalid_name(dir.open(name), name);
            assert_invalid_name(dir.delete(name), name);
            assert_invalid_name(dir.pids(name), name);
            assert_invalid_name(dir.attach(name, child.pid()), name);
        }
        // Nothing was made, not even the folder or a file one level up.
        assert!(dir.list().unwrap().is_empty());
        assert!(!Path::new("/run/escape").exists());
        assert!(!Path::new("/run/netns/a").exists());
        assert_eq!(nsfs_mounts_under(Path::new("/run")), 0);

        // The longest valid name works.
        let longest = "n".repeat(255);
        let ns = dir.create(&longest).expect("255-byte name");
        assert_eq!(ns.name(), Some(longest.as_str()));
        dir.delete(&longest).unwrap();
    });
}

// ---------------------------------------------------------------------------------------
// A2: list, delete, run, spawn, identify, pids, attach, nsids
// ---------------------------------------------------------------------------------------

#[test]
fn list_is_sorted_and_delete_removes_one_name() {
    common::sandbox("list_is_sorted_and_delete_removes_one_name", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        assert!(dir.list().unwrap().is_empty());
        let zeta = dir.create("zeta").unwrap();
        let alpha = dir.create("alpha").unwrap();
        let mid = dir.create("mid").unwrap();
        assert_eq!(dir.list().unwrap(), ["alpha", "mid", "zeta"]);
        assert_ne!(zeta, alpha);
        assert_ne!(alpha, mid);
        assert_ne!(zeta, mid);
        assert_eq!(nsfs_mounts_under(dir.dir()), 3);

        dir.delete("mid").expect("delete mid");
        assert_eq!(dir.list().unwrap(), ["alpha", "zeta"]);
        assert!(!dir.path("mid").exists());
        assert_eq!(nsfs_mounts_on(&dir.path("mid")), 0);
        // The others are untouched.
        assert_eq!(dir.open("alpha").unwrap(), alpha);
        assert_eq!(dir.open("zeta").unwrap(), zeta);

        // A handle outlives the name.
        assert_eq!(mid.run(Netns::current).unwrap().unwrap(), mid);

        let err = dir.delete("mid").expect_err("delete a deleted name");
        assert!(err.is_not_found(), "{err}");
        assert!(matches!(err, Error::Netns { .. }), "{err:?}");
        let err = dir.delete("never-made").expect_err("delete a missing name");
        assert!(err.is_not_found(), "{err}");
        let err = dir.open("never-made").expect_err("open a missing name");
        assert!(err.is_not_found(), "{err}");
        assert_eq!(dir.list().unwrap(), ["alpha", "zeta"]);
    });
}

#[test]
fn delete_all_removes_every_name() {
    common::sandbox("delete_all_removes_every_name", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        dir.delete_all().expect("delete_all with nothing to delete");
        let names = ["c", "a", "b"];
        let handles: Vec<Netns> = names.iter().map(|n| dir.create(n).unwrap()).collect();
        // A stray plain file in the folder is no namespace: not listed, but deleted too.
        fs::write(dir.path("stray"), b"not a namespace").unwrap();
        assert_eq!(dir.list().unwrap(), ["a", "b", "c"]);
        assert!(dir.open("stray").is_err());

        dir.delete_all().expect("delete_all");
        assert!(dir.list().unwrap().is_empty());
        for n in names.iter().chain(["stray"].iter()) {
            assert!(!dir.path(n).exists(), "{n} still there");
        }
        assert_eq!(nsfs_mounts_under(dir.dir()), 0);
        // The namespaces themselves live on in the handles.
        for h in &handles {
            assert_eq!(&h.run(Netns::current).unwrap().unwrap(), h);
        }
    });
}

#[test]
fn unmount_folder_undoes_the_folder_mount_and_refuses_while_names_remain() {
    common::sandbox("unmount_folder_undoes_the_folder_mount", |_s| {
        let scratch = ScratchDir::new("unmount-folder");
        let dir = NetnsDir::new(scratch.join("netns"));
        let point = dir.dir().to_string_lossy().into_owned();
        let on_folder = || mounts().iter().filter(|(p, _)| *p == point).count();
        // Never used: not a mount point, nothing to undo.
        fs::create_dir_all(dir.dir()).unwrap();
        assert_eq!(dir.unmount_folder().unwrap(), 0);
        let ns = dir.create("a").unwrap();
        assert_eq!(
            on_folder(),
            1,
            "the first name binds the folder onto itself"
        );
        // A name left: refused, and the name still works.
        let e = dir.unmount_folder().unwrap_err();
        assert_eq!(e.errno(), Some(Errno::EBUSY), "{e}");
        assert!(e.to_string().contains("still holds names"), "{e}");
        assert_eq!(dir.open("a").unwrap(), ns);
        dir.delete("a").unwrap();
        assert_eq!(dir.unmount_folder().unwrap(), 1);
        assert_eq!(on_folder(), 0, "the folder is a plain folder again");
        assert_eq!(dir.unmount_folder().unwrap(), 0, "nothing left to undo");
        // A file system mounted on the folder is not ours to remove.
        nix::mount::mount(
            Some("tmpfs"),
            dir.dir(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        assert_eq!(dir.unmount_folder().unwrap(), 0);
        assert_eq!(on_folder(), 1);
        nix::mount::umount2(dir.dir(), nix::mount::MntFlags::MNT_DETACH).unwrap();
    });
}

#[test]
fn missing_folder_lists_empty() {
    common::sandbox("missing_folder_lists_empty", |_s| {
        let dir = NetnsDir::new("/run/no-such-netns-folder");
        assert_eq!(dir.list().unwrap(), Vec::<String>::new());
        dir.delete_all().expect("delete_all on a missing folder");
        let err = dir.delete("x").expect_err("delete in a missing folder");
        assert!(err.is_not_found(), "{err}");
        assert!(!dir.dir().exists(), "listing must not create the folder");
    });
}

#[test]
fn run_enters_the_namespace_and_returns_the_result() {
    common::sandbox("run_enters_the_namespace_and_returns_the_result", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let ns = dir.create("runner").unwrap();
        let caller_tid = tid();
        let before = Netns::current().unwrap();
        assert_eq!(&before, s.host());

        let (inside, link, helper_tid) = ns
            .run(|| (Netns::current().unwrap(), thread_ns_link(), tid()))
            .expect("run");
        assert_eq!(inside, ns);
        assert_ne!(&inside, s.host());
        assert_eq!(link, ns_link(&ns));
        assert_ne!(
            helper_tid, caller_tid,
            "the closure runs on a helper thread"
        );

        assert_eq!(Netns::current().unwrap(), before);
        assert_eq!(thread_ns_link(), ns_link(s.host()));
        assert_eq!(tid(), caller_tid);

        // Unnamed namespaces work the same.
        let anon = Netns::new().expect("new unnamed namespace");
        assert_eq!(anon.name(), None);
        assert_eq!(anon.run(Netns::current).unwrap().unwrap(), anon);
        assert_ne!(anon, ns);
        assert_eq!(Netns::current().unwrap(), before);
    });
}

#[test]
fn run_leaves_the_caller_in_place_after_an_early_error() {
    common::sandbox("run_leaves_the_caller_in_place_after_an_early_error", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let ns = dir.create("early").unwrap();

        let r: netplumb::Result<Result<u32, String>> = ns.run(|| {
            let here = Netns::current().map_err(|e| e.to_string())?;
            if here != *s.host() {
                return Err(format!("inside {}", ns_link(&here)));
            }
            Ok(1)
        });
        assert_eq!(
            r.expect("run itself succeeds"),
            Err(format!("inside {}", ns_link(&ns)))
        );
        assert_eq!(&Netns::current().unwrap(), s.host());
        assert_eq!(thread_ns_link(), ns_link(s.host()));

        // A closure that itself fails with a netplumb error.
        let r = ns.run(|| Netns::open("/run/netns/does-not-exist"));
        let inner = r.expect("run itself succeeds");
        assert!(inner.expect_err("missing file").is_not_found());
        assert_eq!(&Netns::current().unwrap(), s.host());
    });
}

#[test]
fn run_leaves_the_caller_in_place_after_a_panic() {
    common::sandbox("run_leaves_the_caller_in_place_after_a_panic", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let ns = dir.create("panicky").unwrap();

        let caught = catch_unwind(AssertUnwindSafe(|| {
            ns.run(|| {
                if Netns::current().unwrap() == ns {
                    panic!("deliberate panic inside the namespace");
                }
            })
        }));
        let payload = caught.expect_err("the panic is re-raised in the caller");
        let msg = payload
            .downcast_ref::<&str>()
            .map(|m| m.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains("deliberate panic"), "payload: {msg:?}");

        assert_eq!(&Netns::current().unwrap(), s.host());
        assert_eq!(thread_ns_link(), ns_link(s.host()));
        // Both the handle and the name still work afterwards.
        assert_eq!(ns.run(Netns::current).unwrap().unwrap(), ns);
        assert_eq!(dir.open("panicky").unwrap(), ns);
    });
}

#[test]
fn spawn_starts_the_child_inside() {
    common::sandbox("spawn_starts_the_child_inside", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let ns = dir.create("exec").unwrap();

        let child = ns
            .spawn(
                Command::new("readlink")
                    .arg("/proc/self/ns/net")
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped()),
            )
            .expect("spawn readlink");
        let mut guard = ChildGuard(child);
        let mut out = String::new();
        guard
            .0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = guard.0.wait().unwrap();
        assert!(status.success(), "readlink: {status}");
        assert_eq!(out.trim(), ns_link(&ns));
        assert_ne!(out.trim(), ns_link(s.host()));

        // The same command spawned plainly runs in the caller's namespace.
        let plain = Command::new("readlink")
            .arg("/proc/self/ns/net")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&plain.stdout).trim(),
            ns_link(s.host())
        );
        assert_eq!(&Netns::current().unwrap(), s.host());

        // A program that does not exist is an error naming it, and changes nothing.
        let err = ns
            .spawn(&mut Command::new("/nonexistent/netplumb-no-such-program"))
            .expect_err("missing program");
        assert!(err.is_not_found(), "{err}");
        assert!(
            matches!(&err, Error::Io { path, .. }
            if path == Path::new("/nonexistent/netplumb-no-such-program")),
            "{err:?}"
        );
        assert_eq!(&Netns::current().unwrap(), s.host());
    });
}

#[test]
fn identify_pids_and_attach_follow_a_running_child() {
    common::sandbox("identify_pids_and_attach_follow_a_running_child", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let ns = dir.create("holder").unwrap();
        let other = dir.create("other").unwrap();
        let mut child = sleeper_in(&ns);
        let pid = child.pid();
        assert_eq!(Netns::from_pid(pid).unwrap(), ns);

        // ip netns identify PID
        assert_eq!(dir.identify(pid).unwrap(), ["holder"]);
        // ip netns pids NAME
        let pids = dir.pids("holder").unwrap();
        assert!(pids.contains(&pid), "{pid} not in {pids:?}");
        assert!(
            !pids.contains(&std::process::id()),
            "the test process is not inside"
        );
        assert!(pids.windows(2).all(|w| w[0] < w[1]), "ascending: {pids:?}");
        assert!(!dir.pids("other").unwrap().contains(&pid));
        let err = dir.pids("never-made").expect_err("pids of a missing name");
        assert!(err.is_not_found(), "{err}");

        // ip netns attach NAME PID: a second name for the child's namespace.
        let alias = dir.attach("alias", pid).expect("attach alias");
        assert_eq!(alias, ns);
        assert_eq!(alias.name(), Some("alias"));
        assert_eq!(dir.open("alias").unwrap().inode(), ns.inode());
        assert_eq!(inode(&dir.path("alias")), ns.inode());
        assert_eq!(nsfs_mounts_on(&dir.path("alias")), 1);
        assert_eq!(dir.list().unwrap(), ["alias", "holder", "other"]);
        assert_eq!(dir.identify(pid).unwrap(), ["alias", "holder"]);
        assert!(dir.pids("alias").unwrap().contains(&pid));

        // A process in an unnamed namespace is identified by no name.
        let host_child = sleeper_in(s.host());
        assert_eq!(
            dir.identify(host_child.pid()).unwrap(),
            Vec::<String>::new()
        );
        drop(host_child);

        // Attaching a process that does not exist makes nothing.
        let no_pid = i32::MAX as u32; // above any pid_max
        let err = dir
            .attach("ghost", no_pid)
            .expect_err("attach a missing pid");
        assert!(err.is_not_found(), "{err}");
        assert!(!dir.path("ghost").exists());
        let err = dir.identify(no_pid).expect_err("identify a missing pid");
        assert!(err.is_not_found(), "{err}");

        // Once the child is gone, it is in no namespace's pid list; names stay.
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        assert!(!dir.pids("holder").unwrap().contains(&pid));
        assert_eq!(dir.open("holder").unwrap(), ns);
        drop(other);
    });
}

#[test]
fn attach_names_an_unnamed_namespace() {
    common::sandbox("attach_names_an_unnamed_namespace", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let anon = Netns::new().unwrap();
        let child = sleeper_in(&anon);
        assert!(dir.identify(child.pid()).unwrap().is_empty());

        let named = dir.attach("named", child.pid()).expect("attach");
        assert_eq!(named, anon);
        assert_eq!(
            Netns::open(dir.path("named")).unwrap().inode(),
            anon.inode()
        );
        assert_eq!(dir.identify(child.pid()).unwrap(), ["named"]);

        // The name keeps the namespace after the process and every handle are gone.
        let ino = anon.inode();
        drop(child);
        drop(named);
        drop(anon);
        assert_eq!(dir.open("named").unwrap().inode(), ino);

        dir.delete("named").unwrap();
        assert!(dir.list().unwrap().is_empty());
    });
}

#[test]
fn nsids_set_get_and_list() {
    common::sandbox("nsids_set_get_and_list", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let a = dir.create("a").unwrap();
        let b = dir.create("b").unwrap();
        let c = dir.create("c").unwrap();
        let mut host = common::rtnl(s);

        assert_eq!(host.nsids().unwrap(), Vec::<i32>::new());
        assert_eq!(host.nsid_of(&a).unwrap(), None);
        assert!(host.nsids_named(dir).unwrap().is_empty());

        // ip netns set a 7
        host.set_nsid(&a, 7).expect("set nsid of a");
        assert_eq!(host.nsid_of(&a).unwrap(), Some(7));
        assert_eq!(host.nsid_of(&b).unwrap(), None);
        assert_eq!(host.nsids().unwrap(), [7]);
        assert_eq!(host.nsids_named(dir).unwrap(), [("a".to_string(), 7)]);

        // ip netns set b 3; list-id is sorted by id, the named pairs by name.
        host.set_nsid(&b, 3).expect("set nsid of b");
        assert_eq!(host.nsids().unwrap(), [3, 7]);
        assert_eq!(
            host.nsids_named(dir).unwrap(),
            [("a".to_string(), 7), ("b".to_string(), 3)]
        );

        // A namespace keeps its id; an id names one namespace.
        let err = host.set_nsid(&b, 9).expect_err("second id for b");
        assert!(err.is_exists(), "{err}");
        assert_eq!(host.nsid_of(&b).unwrap(), Some(3));
        let err = host.set_nsid(&c, 7).expect_err("id 7 is taken");
        assert!(err.is_exists(), "{err}");
        assert_eq!(host.nsid_of(&c).unwrap(), None);
        assert_eq!(host.nsids().unwrap(), [3, 7]);

        // Negative ids are refused before the kernel is asked.
        let err = host.set_nsid(&c, -1).expect_err("negative id");
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        assert_eq!(host.nsid_of(&c).unwrap(), None);

        // Ids are per namespace: a's own table is empty.
        let mut in_a = Rtnl::open_in(&a).unwrap();
        assert!(in_a.nsids().unwrap().is_empty());
        assert_eq!(in_a.nsid_of(&b).unwrap(), None);
        in_a.set_nsid(&b, 7)
            .expect("the same id in another namespace's table");
        assert_eq!(in_a.nsid_of(&b).unwrap(), Some(7));
        assert_eq!(host.nsid_of(&b).unwrap(), Some(3));
    });
}

// ---------------------------------------------------------------------------------------
// Half-made names: a maker killed between the file and the mount
// ---------------------------------------------------------------------------------------

/// What a maker killed between its two steps leaves: an empty, read-only, unmounted file
/// (made here the way `create` made it before it locked it), with no maker behind it.
fn half_made(dir: &NetnsDir, name: &str) -> PathBuf {
    let path = dir.path(name);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)
        .expect("make a half-made name");
    path
}

#[test]
fn a_half_made_name_of_a_dead_maker_is_cleaned_and_not_listed() {
    common::sandbox(
        "a_half_made_name_of_a_dead_maker_is_cleaned_and_not_listed",
        |s| {
            let dir = s.netns_dir();
            let _cleanup = DirCleanup(dir);
            let live = dir.create("live").unwrap();
            let old = half_made(dir, "old");
            let half = half_made(dir, "half");
            assert_eq!(
                dir.list().unwrap(),
                ["live"],
                "half-made names are not listed"
            );
            assert!(dir.open("half").is_err());

            // Just made, it could be a tool that takes no lock at work: left for now.
            assert_eq!(dir.gc().unwrap(), Vec::<String>::new());
            assert!(half.exists() && old.exists());
            let err = dir
                .create("half")
                .expect_err("create over a young half-made name");
            assert!(err.is_exists(), "{err}");

            // Trusting the lock alone, its maker is known to be gone: removed.
            let now = dir.clone().stale_after(Duration::ZERO);
            half_made(dir, "other");
            assert_eq!(now.gc().unwrap(), ["half", "old", "other"]);
            assert!(!half.exists() && !old.exists());
            assert_eq!(
                now.gc().unwrap(),
                Vec::<String>::new(),
                "nothing left to do"
            );
            assert_eq!(dir.list().unwrap(), ["live"]);
            assert_eq!(
                dir.open("live").unwrap(),
                live,
                "a complete name is untouched"
            );
            assert_eq!(nsfs_mounts_on(&dir.path("live")), 1);

            // create replaces a half-made name; delete removes one.
            half_made(dir, "again");
            let again = now.create("again").expect("create over a half-made name");
            assert_ne!(again, live);
            assert_eq!(dir.open("again").unwrap(), again);
            assert_eq!(nsfs_mounts_on(&dir.path("again")), 1);
            let gone = half_made(dir, "gone");
            dir.delete("gone").expect("delete a half-made name");
            assert!(!gone.exists());

            // Once older than `stale_after` (2 s by default), the default folder agrees.
            half_made(dir, "late");
            half_made(dir, "stale");
            std::thread::sleep(Duration::from_millis(2100));
            let late = dir
                .create("late")
                .expect("create over an old half-made name");
            assert_eq!(dir.gc().unwrap(), ["stale"]);
            assert_eq!(dir.list().unwrap(), ["again", "late", "live"]);
            assert_eq!(dir.open("late").unwrap(), late);
        },
    );
}

#[test]
fn a_name_a_live_process_is_making_is_left_alone() {
    common::sandbox("a_name_a_live_process_is_making_is_left_alone", |s| {
        use nix::fcntl::{Flock, FlockArg};
        let dir = s.netns_dir().clone().stale_after(Duration::ZERO);
        let _cleanup = DirCleanup(&dir);
        dir.create("done").unwrap();
        // A maker between its two steps: the file is there, locked, and not mounted yet.
        let path = half_made(&dir, "making");
        let file = fs::File::open(&path).unwrap();
        let held = Flock::lock(file, FlockArg::LockExclusive).expect("hold the lock");

        assert_eq!(dir.gc().unwrap(), Vec::<String>::new());
        assert!(path.exists(), "gc removed a name being made");
        assert_eq!(dir.list().unwrap(), ["done"]);
        let err = dir
            .create("making")
            .expect_err("create over a name being made");
        assert!(err.is_exists(), "{err}");
        let err = dir.delete("making").expect_err("delete a name being made");
        assert!(err.is_busy(), "{err}");
        let holder = sleeper_in(&dir.open("done").unwrap());
        let err = dir
            .attach("making", holder.pid())
            .expect_err("attach over a name being made");
        assert!(err.is_exists(), "{err}");
        let err = dir
            .delete_all()
            .expect_err("delete_all with a name being made");
        assert!(err.is_busy(), "{err}");
        assert!(path.exists(), "delete_all removed a name being made");
        assert_eq!(fs::metadata(&path).unwrap().len(), 0, "untouched");
        assert_eq!(nsfs_mounts_on(&path), 0);

        // Its maker dies (the kernel drops the lock): now it is half made, and goes.
        drop(held);
        assert_eq!(dir.gc().unwrap(), ["making"]);
        assert!(!path.exists());
    });
}

// ---------------------------------------------------------------------------------------
// A3: opening namespace files, refusing the rest
// ---------------------------------------------------------------------------------------

#[test]
fn open_by_proc_path_and_from_pid() {
    common::sandbox("open_by_proc_path_and_from_pid", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let ns = dir.create("target").unwrap();
        let child = sleeper_in(&ns);
        let pid = child.pid();

        let proc_path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let by_path = Netns::open(&proc_path).expect("open /proc/PID/ns/net");
        assert_eq!(by_path, ns);
        assert_eq!(by_path.path(), proc_path);
        assert_eq!(by_path.name(), None);
        assert_eq!(by_path.to_string(), ns_link(&ns));
        assert_eq!(
            fs::read_link(&proc_path).unwrap().to_string_lossy(),
            ns_link(&ns)
        );

        let by_pid = Netns::from_pid(pid).expect("from_pid");
        assert_eq!(by_pid, ns);
        assert_eq!(by_pid.path(), proc_path);

        // The calling thread's own files.
        let me = Netns::open("/proc/thread-self/ns/net").unwrap();
        assert_eq!(&me, s.host());
        let by_tid = Netns::open(format!("/proc/self/task/{}/ns/net", tid())).unwrap();
        assert_eq!(&by_tid, s.host());

        // A pid that does not exist.
        let err = Netns::from_pid(i32::MAX as u32).expect_err("missing pid");
        assert!(err.is_not_found(), "{err}");
        assert!(matches!(err, Error::Netns { .. }), "{err:?}");
    });
}

#[test]
fn open_refuses_other_namespace_types() {
    common::sandbox("open_refuses_other_namespace_types", |_s| {
        for p in [
            "/proc/self/ns/uts",
            "/proc/self/ns/mnt",
            "/proc/thread-self/ns/uts",
            "/proc/thread-self/ns/mnt",
            "/proc/thread-self/ns/ipc",
            "/proc/thread-self/ns/user",
        ] {
            let path = Path::new(p);
            let errno = assert_netns_refusal(open_or_fail_if_stuck(path), path);
            assert_eq!(
                errno, None,
                "{p}: refused for its type, not for an I/O error"
            );
        }
    });
}

#[test]
fn open_refuses_files_folders_fifos_and_sockets() {
    common::sandbox("open_refuses_files_folders_fifos_and_sockets", |s| {
        let scratch = ScratchDir::new("netns-test-refusals");

        let file = scratch.join("plain");
        fs::write(&file, b"not a namespace").unwrap();
        assert_netns_refusal(open_or_fail_if_stuck(&file), &file);

        let empty = scratch.join("empty");
        fs::write(&empty, b"").unwrap();
        assert_netns_refusal(open_or_fail_if_stuck(&empty), &empty);

        let folder = scratch.join("folder");
        fs::create_dir(&folder).unwrap();
        assert_netns_refusal(open_or_fail_if_stuck(&folder), &folder);

        let fifo = scratch.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_netns_refusal(open_or_fail_if_stuck(&fifo), &fifo);

        let sock = scratch.join("sock");
        let _listener = UnixListener::bind(&sock).unwrap();
        assert_netns_refusal(open_or_fail_if_stuck(&sock), &sock);

        let dev = Path::new("/dev/null");
        assert_netns_refusal(open_or_fail_if_stuck(dev), dev);

        let missing = scratch.join("missing");
        let r = open_or_fail_if_stuck(&missing);
        let errno = assert_netns_refusal(r, &missing);
        assert_eq!(errno, Some(Errno::ENOENT));
        let err = Netns::open(&missing).unwrap_err();
        assert!(err.is_not_found(), "{err}");

        // A symlink to a namespace file is followed.
        let ns = Netns::new().unwrap();
        let holder = sleeper_in(&ns);
        let link = scratch.join("link");
        std::os::unix::fs::symlink(format!("/proc/{}/ns/net", holder.pid()), &link).unwrap();
        assert_eq!(Netns::open(&link).unwrap(), ns);

        // The same refusals through a netns folder: a plain file in it is not a namespace,
        // so list and identify skip it.
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let real = dir.create("real").unwrap();
        fs::write(dir.path("bogus"), b"").unwrap();
        assert_eq!(dir.list().unwrap(), ["real"]);
        assert_netns_refusal(dir.open("bogus"), &dir.path("bogus"));
        let inside = sleeper_in(&real);
        assert_eq!(dir.identify(inside.pid()).unwrap(), ["real"]);
        dir.delete("bogus")
            .expect("delete a plain file in the folder");
        assert_eq!(dir.list().unwrap(), ["real"]);

        assert_eq!(&Netns::current().unwrap(), s.host());
    });
}

// ---------------------------------------------------------------------------------------
// A4: a fresh namespace
// ---------------------------------------------------------------------------------------

#[test]
fn new_namespace_has_only_lo_and_it_is_down() {
    common::sandbox("new_namespace_has_only_lo_and_it_is_down", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let named = dir.create("fresh").unwrap();
        let anon = Netns::new().unwrap();
        for ns in [&named, &anon] {
            let mut r = Rtnl::open_in(ns).unwrap();
            assert_eq!(r.netns(), ns);
            let links = r.links().unwrap();
            assert_eq!(links.len(), 1, "{links:?}");
            assert_eq!(links[0].name, "lo");
            assert!(!links[0].is_up(), "lo starts down: {:?}", links[0]);
            assert!(!r.link("lo").unwrap().is_up());
        }
        assert_eq!(link_names_in(&named), ["lo"]);
    });
}

#[test]
fn loopback_udp_works_only_once_lo_is_up() {
    common::sandbox("loopback_udp_works_only_once_lo_is_up", |s| {
        let dir = s.netns_dir();
        let _cleanup = DirCleanup(dir);
        let ns = dir.create("udp").unwrap();
        let any: SocketAddr = "127.0.0.1:9".parse().unwrap();

        // lo down: no route even to 127.0.0.1.
        let err = ns
            .run(|| {
                let sock = UdpSocket::bind("0.0.0.0:0")?;
                sock.send_to(b"early", any).map(|_| ())
            })
            .unwrap()
            .expect_err("send with lo down");
        assert_eq!(err.raw_os_error(), Some(Errno::ENETUNREACH.raw()), "{err}");

        // ip link set lo up, inside.
        let mut r = Rtnl::open_in(&ns).unwrap();
        r.execute(&LinkSet::new("lo").up()).expect("set lo up");
        assert!(r.link("lo").unwrap().is_up());

        let (rx, tx) = ns
            .run(|| -> std::io::Result<(UdpSocket, UdpSocket)> {
                Ok((
                    UdpSocket::bind("127.0.0.1:0")?,
                    UdpSocket::bind("127.0.0.1:0")?,
                ))
            })
            .unwrap()
            .expect("bind inside");
        let to = rx.local_addr().unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // The sockets belong to the namespace they were made in, whichever thread uses them.
        tx.send_to(b"hello lo", to).expect("send inside");
        let mut buf = [0u8; 64];
        let (n, from) = rx.recv_from(&mut buf).expect("datagram received");
        assert_eq!(&buf[..n], b"hello lo");
        assert_eq!(from, tx.local_addr().unwrap());

        // The sandbox's own lo is still down, and from there the port is unreachable.
        let mut host = common::rtnl(s);
        assert!(!host.link("lo").unwrap().is_up());
        let err = UdpSocket::bind("0.0.0.0:0")
            .unwrap()
            .send_to(b"x", to)
            .expect_err("host lo down");
        assert_eq!(err.raw_os_error(), Some(Errno::ENETUNREACH.raw()), "{err}");

        r.execute(&LinkSet::new("lo").down()).unwrap();
        assert!(!r.link("lo").unwrap().is_up());
    });
}

// ---------------------------------------------------------------------------------------
// A folder other than the default
// ---------------------------------------------------------------------------------------

#[test]
fn custom_folder_works_the_same() {
    common::sandbox("custom_folder_works_the_same", |s| {
        assert_eq!(NetnsDir::default().dir(), Path::new(DEFAULT_NETNS_DIR));
        assert_eq!(DEFAULT_NETNS_DIR, "/var/run/netns");

        let root = PathBuf::from("/run/netns-custom-test");
        let dir = NetnsDir::new(root.join("nested/names"));
        assert_eq!(dir.dir(), root.join("nested/names"));
        assert_eq!(dir.path("x"), root.join("nested/names/x"));
        assert!(dir.list().unwrap().is_empty());

        let _cleanup = CustomDirCleanup {
            root: root.clone(),
            dir: dir.clone(),
        };
        let default_dir = s.netns_dir();
        let _cleanup_default = DirCleanup(default_dir);

        let c1 = dir
            .create("c1")
            .expect("create in a custom folder (made on demand)");
        let c0 = dir.create("c0").unwrap();
        assert!(dir.dir().is_dir());
        assert_eq!(c1.path(), dir.path("c1"));
        assert_eq!(c1.name(), Some("c1"));
        assert_eq!(dir.list().unwrap(), ["c0", "c1"]);
        assert_eq!(nsfs_mounts_on(&dir.path("c1")), 1);
        assert_eq!(inode(&dir.path("c0")), c0.inode());
        assert_eq!(dir.open("c1").unwrap(), c1);
        assert!(dir.create("c1").unwrap_err().is_exists());

        // Independent of the sandbox's default folder, even for the same name.
        assert!(default_dir.list().unwrap().is_empty());
        let other_c1 = default_dir.create("c1").unwrap();
        assert_ne!(other_c1, c1);
        assert_eq!(default_dir.list().unwrap(), ["c1"]);

        let child = sleeper_in(&c1);
        assert_eq!(dir.identify(child.pid()).unwrap(), ["c1"]);
        assert!(default_dir.identify(child.pid()).unwrap().is_empty());
        assert!(dir.pids("c1").unwrap().contains(&child.pid()));
        dir.attach("c1-alias", child.pid()).unwrap();
        assert_eq!(dir.identify(child.pid()).unwrap(), ["c1", "c1-alias"]);
        drop(child);

        let mut host = common::rtnl(s);
        host.set_nsid(&c0, 11).unwrap();
        assert_eq!(host.nsids_named(&dir).unwrap(), [("c0".to_string(), 11)]);
        assert!(host.nsids_named(default_dir).unwrap().is_empty());

        dir.delete("c0").unwrap();
        assert_eq!(dir.list().unwrap(), ["c1", "c1-alias"]);
        dir.delete_all().unwrap();
        assert!(dir.list().unwrap().is_empty());
        assert_eq!(nsfs_mounts_under(dir.dir()), 0);
        assert_eq!(
            default_dir.list().unwrap(),
            ["c1"],
            "the other folder is untouched"
        );
    });
}
