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
//! A module imports only from layers below its own, never from its own layer or above.
//! `tests/layering.rs` checks every `crate::` path in `src/` against this table, checks that
//! this table, the one in README.md and its own agree, and fails on files of one folder that
//! import each other in a circle. One exception, upward: [`error`] names the leaf errors of
//! `ipam`, `ports` and `etcd`, so that `?` converts them into [`Error`].
//!
//! | layer | modules | role |
//! |---|---|---|
//! | 0 | [`wire`] | message bytes and reply framing; no I/O, no allocation on emit |
//! | 1 | [`error`], `sys` | the error type; the only `unsafe` |
//! | 2 | `socket`, [`netns`], `fault` | netlink I/O; namespaces and helper threads; the test-only fault hook |
//! | 3 | [`request`], [`journal`] | requests as data, dry-run plans; the undo journal |
//! | 4 | [`rtnl`], `etcd` | the handles: rtnetlink in one namespace; the etcd client |
//! | 5 | [`link`] | link specs and queries, the names and references the layers above take |
//! | 6 | [`addr`], [`route`], [`neigh`], [`sysctl`], [`firewall`], [`ipam`] | what a link and a network are given |
//! | 7 | [`ports`] | `-p`/`-P` port mappings, host-port allocation, `docker port` |
//! | 8 | [`network`] | Docker's bridge driver: networks, containers, teardown, gc |
//! | 9 | [`overlay`] | VXLAN overlay networks across hosts |
//! | 10 | `fuzzing` | hidden: the parsers that are not public, for the fuzz targets |
//!
//! ### 0: bytes
//!
//! [`wire`] writes every netlink request and frames every reply into a caller-owned buffer.
//! It is pure (no I/O, nothing else from the crate), so it can be tested byte for byte and
//! fuzzed.
//!
//! ### 1: errors and the system
//!
//! [`error`] is the one error type every call returns, with kinds to match on. `sys` holds
//! the crate's only `unsafe`: thin wrappers for the syscalls `nix` does not wrap.
//!
//! ### 2: sockets, namespaces, the fault hook
//!
//! `socket` is the one place that does netlink I/O (sequence numbers, ACKs, extended ACKs,
//! interrupted dumps, batches). [`netns`] opens, creates and enters network namespaces,
//! always from helper threads, and runs the sandbox the tests use. `fault` is the step hook
//! of the rollback tests: a no-op unless the feature `_fault-injection` is on.
//!
//! ### 3: requests and the undo journal
//!
//! [`request`] makes a kernel change a value ([`Request`]) that validates, encodes and
//! prints as its `ip` command, and collects values in a dry-run [`request::Plan`].
//! [`journal`] records the inverse of each step of a multi-step operation
//! ([`journal::Txn`]) and runs them when a later step fails.
//!
//! ### 4: handles
//!
//! [`rtnl`] is the rtnetlink handle of one namespace ([`Rtnl`]): it executes requests and
//! runs dumps. `etcd` (feature `etcd`) is a synchronous etcd v3 client that can dial from
//! inside a namespace.
//!
//! ### 5: links
//!
//! [`link`] has the link kinds (veth, bridge, VXLAN, dummy), link changes and deletion,
//! link dumps, and the interface names and link references every layer above takes.
//!
//! ### 6: what links and networks are given
//!
//! [`addr`], [`route`] and [`neigh`] are addresses, routes, and neighbour and FDB entries
//! on links; [`sysctl`] the per-namespace network sysctls; [`firewall`] the rule model
//! and its nf_tables and iptables backends; [`ipam`] subnets and addresses, with no
//! netlink and no namespace.
//!
//! ### 7: published ports
//!
//! [`ports`] parses `-p`/`-P`, allocates host ports across processes and prints
//! `docker port` lines.
//!
//! ### 8 and 9: networks
//!
//! [`network`] is Docker's bridge driver as library calls ([`network::Host`]), each
//! operation one undo journal. [`overlay`] spans networks across hosts with VXLAN on top
//! of it.
//!
//! ### 10: the fuzzing shim
//!
//! `fuzzing` is hidden and outside the API: it makes the private parsers reachable for
//! `fuzz/` and `tests/parse_props.rs`.
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
//!
//! ## Feature flags
//!
//! - `serde` (default): `Serialize`/`Deserialize` for the data types (networks,
//!   attachments, configurations, port mappings, leases, reports; see each type), and
//!   Docker-shaped JSON of networks and containers (`network::inspect`).
//! - `store` (default): the SQLite state store (`ipam::SqliteStore`, and `Host`'s runtime
//!   database), and with it the `network` and `overlay` modules. Off, no SQLite is built.
//! - `bundled-sqlite` (default; implies `store`): SQLite compiled in; without it the
//!   system's `libsqlite3`.
//! - `iptables`: the iptables firewall backend, which runs `iptables-restore`.
//! - `etcd`: the etcd client (plain or TLS, with user/password authentication), and etcd
//!   as the store of IPAM and overlay networks.
//! - `_fault-injection`: test-only and unstable, outside semver: the fault hook `fault` of
//!   the rollback tests, whose failures are [`Error`]'s `Injected` variant.
//!
//! ## Minimum supported Rust version
//!
//! Rust 1.80 (`rust-version` in Cargo.toml); `.ci/run` builds the library with it.

#![deny(unsafe_code, missing_docs)]
// Without the state store there is no `network` module, whose crate-private helpers in
// the lower layers (link naming, the namespace worker, IPAM and port transactions) then
// go unused.
#![cfg_attr(not(feature = "store"), allow(dead_code, unused_imports))]
// ...and the docs' links to those modules (and to the SQLite store) have no target.
#![cfg_attr(not(feature = "store"), allow(rustdoc::broken_intra_doc_links))]

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
#[cfg(feature = "store")]
pub mod network;
#[cfg(feature = "store")]
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
/// The IP network types of our signatures, re-exported so that a user names the very
/// version we build with and needs no `ipnet` dependency of their own. Parse user input
/// with [`ipam::parse_subnet`], whose errors name the field and what is wrong.
///
/// ```
/// use netplumb::{IpNet, Ipv4Net};
///
/// let net: IpNet = netplumb::ipam::parse_subnet("subnet", "172.28.0.0/16")?;
/// assert_eq!(net, IpNet::V4(Ipv4Net::new([172, 28, 0, 0].into(), 16).unwrap()));
/// # Ok::<(), netplumb::ipam::IpamError>(())
/// ```
pub use ipnet::{IpNet, Ipv4Net, Ipv6Net};

#[doc(hidden)]
pub mod fuzzing;
pub use netns::{Netns, NetnsDir};
pub use request::Request;
pub use rtnl::Rtnl;

/// The README's snippets, compiled as doctests. Each is a whole program as a user would
/// paste it; the overlay one needs the `etcd` feature, so they are compiled with it (the
/// test command turns it on).
#[cfg(all(doctest, feature = "etcd"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
