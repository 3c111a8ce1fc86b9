//! Cold runs: the bench binary started again, once per operation, inside the sandbox's
//! namespaces (a child started from the sandbox's thread lives in its network and mount
//! namespaces), as a runtime's tool pays it: the process starts, opens what it needs,
//! does one thing and exits. The parent times each child from spawn to exit.
//!
//! The child's command line is `ARG OP ...`:
//! - `exit`: nothing (what starting a process costs);
//! - `connect ID NETNS`: `Host::open_in` on the bench's state folder, then the connect of
//!   container `ID` (namespace at path `NETNS`) with one published port;
//! - `disconnect ID`: `Host::open_in`, then the disconnect of `ID` (which waits for the
//!   kernel to delete the veth);
//! - `floor K NETNS BRIDGE`: the kernel floor's sockets, then its requests for container
//!   `K` on the floor bridge of index `BRIDGE`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::floor::{Floor, NET};
use netplumb::network::{Container, Host};
use netplumb::Netns;

/// The first argument that makes the bench binary a cold child.
const ARG: &str = "--attach-cold-child";

/// Runs the child's operation when this process is a cold child, and returns its exit
/// code; `None` for the bench itself.
pub fn child(state: &str) -> Option<i32> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some(ARG) {
        return None;
    }
    let a: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let r = match a[..] {
        ["exit"] => Ok(()),
        ["connect", id, ns] => connect(state, id, ns),
        ["disconnect", id] => disconnect(state, id),
        ["floor", k, ns, bridge] => floor(k, ns, bridge),
        _ => Err(format!("bad arguments {a:?}")),
    };
    Some(match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("attach cold child {a:?}: {e}");
            1
        }
    })
}

fn connect(state: &str, id: &str, ns: &str) -> Result<(), String> {
    let mut h = Host::open_in(&Netns::current().map_err(str)?, state).map_err(str)?;
    let ns = Netns::open(ns).map_err(str)?;
    let c = Container::new(id, &ns).publish("80".parse().map_err(str)?);
    h.connect(NET, &c).map(drop).map_err(str)
}

fn disconnect(state: &str, id: &str) -> Result<(), String> {
    let mut h = Host::open_in(&Netns::current().map_err(str)?, state).map_err(str)?;
    h.disconnect(NET, id).map_err(str)
}

fn floor(k: &str, ns: &str, bridge: &str) -> Result<(), String> {
    let k = k.parse().map_err(str)?;
    let bridge = bridge.parse().map_err(str)?;
    let ns = Netns::open(ns).map_err(str)?;
    Floor::open(&Netns::current().map_err(str)?, bridge).connect(&ns, k, None);
    Ok(())
}

fn str(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Starts cold children of this binary and times them.
pub struct Spawner {
    exe: PathBuf,
}

impl Spawner {
    /// A spawner of this very binary.
    pub fn new() -> Spawner {
        Spawner {
            exe: std::env::current_exe().expect("the bench binary's path"),
        }
    }

    /// Runs one child with `args` (after [`ARG`]) from the calling thread, so in its
    /// namespaces; returns the µs from spawn to exit. A failed child panics.
    pub fn time(&self, args: &[&str]) -> f64 {
        let t = Instant::now();
        let st = Command::new(&self.exe)
            .arg(ARG)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("start a cold child");
        let us = t.elapsed().as_secs_f64() * 1e6;
        assert!(st.success(), "cold child {args:?}: {st}");
        us
    }

    /// `time` with a path argument.
    pub fn time_at(&self, op: &str, id: &str, ns: &Path, more: &[&str]) -> f64 {
        let ns = ns.to_str().expect("a UTF-8 namespace path");
        let args: Vec<&str> = [op, id, ns]
            .into_iter()
            .chain(more.iter().copied())
            .collect();
        self.time(&args)
    }
}
