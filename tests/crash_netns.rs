//! Kill storm on named namespaces: two child processes create and delete names of one
//! small set in one folder and are killed with SIGKILL at random moments 1–30 ms into that
//! work, round after round; in every other round the parent runs `NetnsDir::gc` over the
//! folder the whole time, beside the children. It checks that:
//! - no child ever fails: a cleanup that removed a name being made would make its
//!   maker's mount fail, and the child would exit with a panic instead of SIGKILL;
//! - after a round, the kernel has dropped every creation lock, every name `list` shows
//!   opens as a network namespace mounted exactly once, and every other file is half made
//!   (empty, unmounted);
//! - `gc` removes exactly the half-made names, and later children replace the ones left;
//! - at the end the folder holds only live, mounted namespaces, each of which can be
//!   deleted, after which nothing is left.
//!
//! The seed is printed; `NETPLUMB_CRASH_NETNS_SEED` replays one, and
//! `NETPLUMB_CRASH_NETNS_ROUNDS` sets the number of rounds (100; the storm also stops after
//! two minutes). The children are this test binary again, running the ignored test
//! `worker_process` with `NETPLUMB_CRASH_NETNS_WORKER` set. They are started from the
//! sandbox's thread, so they live in its network and mount namespaces and the folder is on
//! its private `/run`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Rng;
use netplumb::netns::Sandbox;
use netplumb::{Netns, NetnsDir};

/// The folder, on the sandbox's private `/run`.
const DIR: &str = "/run/crash-netns";
/// How many names the children share.
const NAMES: usize = 6;
const ROUNDS: usize = 100;
/// The storm stops after this long, whatever the rounds.
const TIME_BOUND: Duration = Duration::from_secs(120);

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

// ---- the child ----

/// Reports an unexpected error on stdout, where the parent looks (it may kill the child
/// before a panic would end it), then panics.
fn fail(out: &mut impl Write, what: &str) -> ! {
    let _ = writeln!(out, "ERROR {what}");
    panic!("{what}");
}

/// Not a test: the body of the child processes the kill storm starts and kills.
#[test]
#[ignore = "run as a worker process by the tests in this file"]
fn worker_process() {
    let Ok(dir) = std::env::var("NETPLUMB_CRASH_NETNS_WORKER") else {
        eprintln!("worker_process: only runs as a child of the kill storm");
        return;
    };
    assert_eq!(
        Netns::current().unwrap().inode().to_string(),
        env("NETPLUMB_CRASH_NETNS_HOST"),
        "not in the sandbox"
    );
    // Only this crate makes names here, so the lock alone decides.
    let dir = NetnsDir::new(dir).stale_after(Duration::ZERO);
    let mut rng = Rng(env("NETPLUMB_CRASH_NETNS_SEED").parse().unwrap());
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let name = format!("n{}", rng.below(NAMES));
        if rng.below(3) == 0 {
            writeln!(out, "DELETING {name}").unwrap();
            match dir.delete(&name) {
                Ok(()) => writeln!(out, "DELETED {name}").unwrap(),
                Err(e) if e.is_not_found() || e.is_busy() => writeln!(out, "SKIP {e}").unwrap(),
                Err(e) => fail(&mut out, &format!("delete {name}: {e}")),
            }
        } else {
            writeln!(out, "CREATING {name}").unwrap();
            match dir.create(&name) {
                Ok(_) => writeln!(out, "CREATED {name}").unwrap(),
                Err(e) if e.is_exists() => writeln!(out, "SKIP {e}").unwrap(),
                Err(e) => fail(&mut out, &format!("create {name}: {e}")),
            }
        }
    }
}

// ---- the parent ----

/// A child, once it has said READY, and the thread draining the rest of its output.
struct Worker {
    child: Child,
    reader: std::thread::JoinHandle<String>,
}

fn spawn(s: &Sandbox, seed: u64) -> Worker {
    let mut child = common::worker_command()
        .env("NETPLUMB_CRASH_NETNS_WORKER", DIR)
        .env("NETPLUMB_CRASH_NETNS_HOST", s.host().inode().to_string())
        .env("NETPLUMB_CRASH_NETNS_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The test harness prints its own lines first.
    let mut seen = String::new();
    while !seen.ends_with("READY\n") {
        let n = stdout.read_line(&mut seen).unwrap();
        assert!(n > 0, "the child did not start:\n{seen}");
    }
    let reader = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        rest
    });
    Worker { child, reader }
}

/// What a round did, summed over the storm.
#[derive(Default, Debug)]
struct Figures {
    rounds: usize,
    kills: usize,
    kills_inside_create: usize,
    kills_inside_delete: usize,
    created: usize,
    deleted: usize,
    half_made_found: usize,
    removed_by_gc: usize,
    removed_by_gc_beside_the_children: usize,
}

/// Kills `w` with SIGKILL and returns its output, failing if it ended any other way.
fn kill(mut w: Worker, f: &mut Figures) -> String {
    w.child.kill().unwrap();
    let status = w.child.wait().unwrap();
    let out = w.reader.join().unwrap();
    assert_eq!(status.signal(), Some(9), "the child failed:\n{out}");
    assert!(!out.contains("ERROR"), "the child failed:\n{out}");
    f.kills += 1;
    f.created += out.matches("CREATED").count();
    f.deleted += out.matches("DELETED").count();
    match out.lines().last().unwrap_or("") {
        l if l.starts_with("CREATING") => f.kills_inside_create += 1,
        l if l.starts_with("DELETING") => f.kills_inside_delete += 1,
        _ => {}
    }
    out
}

/// The regular files of the folder.
fn files(dir: &NetnsDir) -> BTreeSet<String> {
    fs::read_dir(dir.dir())
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// How many nsfs mounts sit exactly on `path`.
fn nsfs_mounts_on(path: &Path) -> usize {
    let info = fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    let p = path.to_string_lossy();
    info.lines()
        .filter(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-");
            f.get(4) == Some(&p.as_ref()) && sep.and_then(|s| f.get(s + 1)) == Some(&"nsfs")
        })
        .count()
}

/// Every listed name is a network namespace mounted once; every other file is half made
/// and no creation lock is held. Returns the half-made names.
fn census(dir: &NetnsDir) -> BTreeSet<String> {
    use nix::fcntl::{Flock, FlockArg};
    let listed: BTreeSet<String> = dir.list().unwrap().into_iter().collect();
    let nsfs_dev = fs::metadata("/proc/self/ns/net").unwrap().dev();
    for name in &listed {
        let path = dir.path(name);
        let ns = dir.open(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let st = fs::metadata(&path).unwrap();
        assert_eq!((st.dev(), st.ino()), (nsfs_dev, ns.inode()), "{name}");
        assert_eq!(nsfs_mounts_on(&path), 1, "{name}: stacked mounts");
    }
    let half: BTreeSet<String> = files(dir).difference(&listed).cloned().collect();
    for name in &half {
        let path = dir.path(name);
        assert_eq!(nsfs_mounts_on(&path), 0, "{name}");
        let f = fs::File::open(&path).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0, "{name}");
        let lock = Flock::lock(f, FlockArg::LockExclusiveNonblock);
        assert!(lock.is_ok(), "{name}: a dead maker's lock is still held");
    }
    half
}

/// One round: two children, killed 1–30 ms into their work (with `gc` beside them when
/// `gc_beside`), then the census, and `gc` when `gc_after`.
fn round(s: &Sandbox, rng: &mut Rng, f: &mut Figures, gc_beside: bool, gc_after: bool) {
    let dir = NetnsDir::new(DIR).stale_after(Duration::ZERO);
    let kids = [spawn(s, rng.next()), spawn(s, rng.next())];
    let mut delays: Vec<u64> = (0..2).map(|_| 1 + rng.below(30) as u64).collect();
    delays.sort_unstable();
    let stop = AtomicBool::new(false);
    let removed_beside = std::thread::scope(|sc| {
        let cleaner = gc_beside.then(|| {
            sc.spawn(|| {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += dir.gc().unwrap().len();
                }
                n
            })
        });
        let start = Instant::now();
        for (w, ms) in kids.into_iter().zip(&delays) {
            std::thread::sleep(Duration::from_millis(*ms).saturating_sub(start.elapsed()));
            kill(w, f);
        }
        stop.store(true, Ordering::Relaxed);
        cleaner.map_or(0, |c| c.join().unwrap())
    });
    f.removed_by_gc_beside_the_children += removed_beside;
    let half = census(&dir);
    f.half_made_found += half.len();
    if gc_after {
        let removed: BTreeSet<String> = dir.gc().unwrap().into_iter().collect();
        assert_eq!(
            removed, half,
            "gc removes the half-made names and only them"
        );
        f.removed_by_gc += removed.len();
        assert!(census(&dir).is_empty());
    }
    f.rounds += 1;
}

fn storm(s: &Sandbox) {
    let mut rng = match std::env::var("NETPLUMB_CRASH_NETNS_SEED") {
        Ok(seed) => Rng(seed.parse().unwrap()),
        Err(_) => Rng::from_clock(),
    };
    let rounds = std::env::var("NETPLUMB_CRASH_NETNS_ROUNDS")
        .map(|r| r.parse().unwrap())
        .unwrap_or(ROUNDS);
    eprintln!("crash_netns seed {} ({rounds} rounds)", rng.0);
    let dir = NetnsDir::new(DIR);
    let start = Instant::now();
    let mut f = Figures::default();
    for n in 0..rounds {
        if start.elapsed() > TIME_BOUND {
            eprintln!("crash_netns: time bound reached after {n} rounds");
            break;
        }
        // gc beside the children every other round; after them every fourth round (one
        // without gc beside), so that the children find half-made names to replace in
        // between.
        round(s, &mut rng, &mut f, n % 2 == 1, n % 4 == 2);
    }
    let last: BTreeSet<String> = dir
        .clone()
        .stale_after(Duration::ZERO)
        .gc()
        .unwrap()
        .into_iter()
        .collect();
    f.removed_by_gc += last.len();
    assert!(census(&dir).is_empty(), "half-made names after the last gc");
    let names = dir.list().unwrap();
    assert_eq!(files(&dir), names.iter().cloned().collect(), "only names");
    for name in &names {
        dir.delete(name)
            .unwrap_or_else(|e| panic!("delete {name}: {e}"));
    }
    assert!(files(&dir).is_empty(), "{:?}", files(&dir));
    let info = fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    assert!(
        !info.lines().any(|l| l.contains(&format!("{DIR}/"))),
        "mounts left under {DIR}"
    );
    eprintln!(
        "crash_netns: {f:?}; {} names live at the end, all deleted; {:?}",
        names.len(),
        start.elapsed()
    );
    assert!(f.kills_inside_create > 0, "no kill landed inside create");
}

#[test]
fn kill_9_while_creating_and_deleting_names_then_gc() {
    common::sandbox("kill_9_while_creating_and_deleting_names_then_gc", storm);
}
