//! Container files: hostname, `/etc/hosts`, `/etc/resolv.conf`.
//!
//! The files Docker writes for each container, as plain values with no netlink and no
//! namespace switch:
//!
//! - [`Hostname`] (`--hostname`; Docker's default is [`default_hostname`], the short id);
//! - [`HostsFile`] (`/etc/hosts`): Docker's localhost and IPv6 lines, `--add-host` entries
//!   ([`parse_add_host`]), the container's own name → address lines, and the peers on its
//!   user-defined networks, kept current with [`HostsFile::set_peer`] and
//!   [`HostsFile::remove_peer`] as containers connect and leave;
//! - [`ResolvConf`] (`/etc/resolv.conf`): from `--dns`, `--dns-search`, `--dns-option`
//!   ([`DnsConfig`]) or derived from the host's file, as Docker does.
//!
//! [`ContainerFiles`] writes them into a directory the runtime names and bind-mounts into the
//! container; nothing here writes to the host's `/etc`.
//!
//! ```
//! use netplumb::network::files::{default_hostname, parse_add_host, DnsConfig, HostsFile, ResolvConf};
//!
//! let hostname = default_hostname("3f2a1c0b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a")?;
//! let mut hosts = HostsFile::new().hostname(hostname).addr("172.18.0.2".parse().unwrap());
//! for entry in parse_add_host("www.example.com:1.1.1.1")?.resolve(&[])? {
//!     hosts = hosts.add_host(entry);
//! }
//! hosts.set_peer("db", &["database"], &["172.18.0.3".parse().unwrap()])?;
//! assert_eq!(hosts.addrs_of("database"), ["172.18.0.3".parse::<std::net::IpAddr>().unwrap()]);
//!
//! let host = ResolvConf::parse("nameserver 127.0.0.53\nsearch lan\n");
//! let resolv = ResolvConf::for_container(&host, &DnsConfig::new(), false)?;
//! assert_eq!(resolv.render(), "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
//! # Ok::<(), netplumb::Error>(())
//! ```

mod container;
mod hosts;
mod name;
mod resolv;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod write_tests;

pub use container::{rewrite_in_place, write_atomic, ContainerFiles};
pub use hosts::{parse_add_host, AddHost, AddHostTarget, HostEntry, HostsFile, HOST_GATEWAY};
pub use name::{default_hostname, Hostname};
pub use resolv::{
    DnsConfig, ResolvConf, DEFAULT_NAMESERVERS_V4, DEFAULT_NAMESERVERS_V6, HOST_RESOLV_CONF,
    SYSTEMD_RESOLVED_UPSTREAM,
};
