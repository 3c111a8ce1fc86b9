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
//!
//! A name is made in two steps (a file, then a bind mount on it), and a process can die
//! between them. [`NetnsDir`] marks the file as "being made" with a lock that dies with its
//! maker, so that [`NetnsDir::gc`], [`NetnsDir::delete`] and [`NetnsDir::create`] remove
//! such a half-made name and never one a live process is making (see [`NetnsDir`]).

mod background;
mod claim;
mod dir;
mod handle;
mod sandbox;
mod worker;

pub(crate) use background::{Background, StopFlag};
pub use dir::{NetnsDir, DEFAULT_NETNS_DIR};
pub use handle::Netns;
pub use sandbox::{sandbox, Sandbox};
pub(crate) use worker::Worker;
