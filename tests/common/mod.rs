//! Shared test policy: every privileged test runs inside `netns::sandbox`.
//!
//! With `CI=true`, a test that cannot create its namespaces fails; elsewhere it prints
//! `SKIPPED <name>: ...` to stderr and returns.

#![allow(dead_code)]

use netplumb::netns::Sandbox;
use netplumb::{Netns, Rtnl};

/// Runs `f` in a fresh sandbox, applying the privilege policy above.
pub fn sandbox<T: Send>(name: &str, f: impl FnOnce(&Sandbox) -> T + Send) -> Option<T> {
    let host_ino = Netns::current().map(|n| n.inode()).ok();
    let r = netplumb::netns::sandbox(|s| {
        // Guard: the body never runs in the namespace the test started in.
        assert_ne!(Some(s.host().inode()), host_ino, "sandbox still in the host namespace");
        f(s)
    });
    match r {
        Ok(v) => Some(v),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{name}: cannot create sandbox namespaces under CI=true: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED {name}: needs CAP_NET_ADMIN+CAP_SYS_ADMIN ({e})");
            None
        }
    }
}

/// An rtnl handle on the sandbox's host namespace.
pub fn rtnl(s: &Sandbox) -> Rtnl {
    Rtnl::open_in(s.host()).expect("rtnl in sandbox")
}

/// Names of the links in the namespace `rtnl` serves.
pub fn link_names(rtnl: &mut Rtnl) -> Vec<String> {
    rtnl.links().expect("dump links").into_iter().map(|l| l.name).collect()
}
