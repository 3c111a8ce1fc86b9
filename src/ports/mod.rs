//! Publishing container ports on the host (`docker run -p` / `-P`, `docker port`).
//!
//! - [`PortMapping`] is one `-p` option as a typed value, parsed from every Docker form
//!   ([`PortMapping::parse`]); malformed specs get a [`PortSpecError`] naming the bad part.
//!   [`publish_all`] turns a container's exposed ports into the mappings of `-P`.
//! - [`PortAllocator`] resolves mappings to concrete [`PublishedPort`]s in one namespace:
//!   fixed host ports are checked, "any port" ones come from the dynamic range (the
//!   namespace's `net.ipv4.ip_local_port_range` unless configured), skipping ports that
//!   are already published or that a socket in the namespace uses. A `flock`ed registry
//!   file keeps concurrent processes from getting the same port.
//! - [`port_lines`] and [`port_lines_for`] print what `docker port C` and
//!   `docker port C 80/tcp` print.
//!
//! A mapping without a host address uses the default host binding, `0.0.0.0` (Docker's
//! `host_binding_ipv4`), changed with [`PortAllocator::default_host_ip`].
//!
//! This module decides *which* ports; the firewall rules that carry traffic to the
//! container (DNAT, hairpin masquerade, forward accept) are built from the
//! [`PublishedPort`]s it returns.
//!
//! ```no_run
//! use netplumb::ports::{port_lines, port_lines_for, publish_all, PortAllocator, PortMapping, Proto};
//! use netplumb::Netns;
//!
//! // docker run -p 127.0.0.1::5000 -p 4000:5000/udp -P (EXPOSE 80)
//! let mut mappings = vec![PortMapping::parse("127.0.0.1::5000")?, PortMapping::parse("4000:5000/udp")?];
//! mappings.extend(publish_all(["80/tcp"])?);
//! let alloc = PortAllocator::new(&Netns::current()?);
//! let published = alloc.publish(&mappings)?;
//! for line in port_lines(&published) {
//!     println!("{line}"); // 80/tcp -> 0.0.0.0:32768, 5000/tcp -> 127.0.0.1:32768, …
//! }
//! let _ = port_lines_for(&published, 80, Proto::Tcp); // ["0.0.0.0:32768"]
//! # Ok::<(), netplumb::Error>(())
//! ```

mod alloc;
pub(crate) mod book;
mod error;
pub(crate) mod published;
mod range;
pub(crate) mod registry;
mod spec;

pub use alloc::{PortAllocator, DEFAULT_HOST_IP, DEFAULT_REGISTRY_DIR};
pub use error::AllocError;
pub use published::{port_lines, port_lines_for, PublishedPort};
pub use range::{HostPorts, PortRange, PortSpecError, Proto};
pub use spec::{publish_all, PortMapping};
