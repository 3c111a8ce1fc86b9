//! # netplumb
//!
//! Container networking as plain, synchronous library calls: network namespaces, links
//! (veth, bridge, VXLAN), addresses, routes and sysctls over rtnetlink, with no `ip`
//! process and no async runtime.
//!
//! ## Quick start
//!
//! ```no_run
//! use netplumb::{addr::Addr, link::{LinkSet, Veth}, route::Route, Netns, NetnsDir, Rtnl};
//!
//! let dir = NetnsDir::default();                       // /var/run/netns, as `ip netns`
//! let ctr = dir.create("ctr1")?;                       // ip netns add ctr1
//! let mut host = Rtnl::open()?;                        // this thread's namespace
//! host.execute(&Veth::new("veth3f2a1c0").peer("eth0").peer_netns(&ctr).up())?;
//! let mut inside = Rtnl::open_in(&ctr)?;               // socket made inside ctr1
//! let eth0 = inside.link("eth0")?;
//! inside.execute(&LinkSet::new(&eth0).up())?;
//! inside.execute(&Addr::new(&eth0, "172.17.0.2/16".parse()?))?;
//! inside.execute(&Route::default_v4().via("172.17.0.1".parse()?).dev(&eth0))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every request is a plain value whose `Display` is the equivalent `ip` command, so it can
//! be logged, validated ([`Request::validate`]) or collected in a dry-run [`request::Plan`]
//! before anything touches the kernel.
//!
//! ## Layers
//!
//! Modules import only from layers below them (checked by `tests/layering.rs`):
//!
//! | layer | modules | role |
//! |---|---|---|
//! | 0 | [`wire`] | bytes of requests, framing of replies; no I/O, no allocation on emit |
//! | 0 | [`error`], `sys` | the error type; the only `unsafe` (one ioctl) |
//! | 1 | `socket`, [`netns`] | netlink I/O; namespaces and threads |
//! | 2 | [`rtnl`], [`request`] | the handle, the request trait, dry-run plans |
//! | 3 | [`link`], [`addr`], [`route`], [`neigh`], [`sysctl`] | typed specs and queries |
//! | 3 | [`ipam`] | address management; no netlink |
//! | 4 | [`ports`] | `-p`/`-P` port mappings, host-port allocation, `docker port` |
//!
//! ## Namespaces and threads
//!
//! The calling thread never changes namespace. [`Rtnl::open_in`] opens its socket on a
//! helper thread inside the target namespace; [`Netns::run`] and [`Netns::spawn`] use a
//! helper thread too. [`netns::sandbox`] runs code in throwaway namespaces with a private
//! `/run`, which the tests, examples and benchmarks use so that they never touch the host.
//!
//! ## Requirements
//!
//! Linux; root, or CAP_NET_ADMIN for links, addresses and routes plus CAP_SYS_ADMIN for
//! namespaces and mounts.

#![deny(unsafe_code, missing_docs)]

pub mod addr;
pub mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "_fault-injection")]
pub mod fault;
#[cfg(not(feature = "_fault-injection"))]
mod fault;
pub mod firewall;
pub mod ipam;
pub mod journal;
pub mod link;
pub mod neigh;
pub mod netns;
pub mod network;
pub mod overlay;
pub mod ports;
pub mod request;
pub mod route;
pub mod rtnl;
mod socket;
mod sys;
pub mod sysctl;
pub mod wire;

pub use error::{Error, ErrorKind, Result};

#[doc(hidden)]
pub mod fuzzing;
pub use netns::{Netns, NetnsDir};
pub use request::Request;
pub use rtnl::Rtnl;

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
