//! Per-namespace network sysctls (`sysctl net.ipv4.ip_forward`, proc(5) `/proc/sys/net`).
//!
//! `/proc/sys/net` shows the namespace of the *thread* that reads it, so every read and
//! write runs on a helper thread inside the namespace the caller names
//! ([`Netns::run`](crate::Netns::run)). Only `net.ipv4.*` and `net.ipv6.*` keys, which are
//! per namespace, are offered; host-wide keys (`net.core.*`) are not.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Errno, Error, Result};
use crate::link::IfName;
use crate::netns::Netns;

/// Which interfaces a per-interface key applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `all`: every interface.
    All,
    /// `default`: interfaces created later.
    Default,
    /// One interface.
    Dev(IfName),
}

impl Scope {
    /// One interface, by name (checked when the sysctl is used).
    pub fn dev(name: &str) -> Scope {
        Scope::Dev(IfName::unchecked(name))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Default => f.write_str("default"),
            Scope::Dev(n) => write!(f, "{n}"),
        }
    }
}

/// A typed per-namespace sysctl key.
///
/// ```
/// use netplumb::sysctl::{Scope, Sysctl};
/// assert_eq!(Sysctl::IpForward.to_string(), "net.ipv4.ip_forward");
/// assert_eq!(Sysctl::AcceptRa(Scope::dev("eth0")).to_string(), "net.ipv6.conf.eth0.accept_ra");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sysctl {
    /// `net.ipv4.ip_forward`.
    IpForward,
    /// `net.ipv6.conf.all.forwarding`.
    Ipv6Forward,
    /// `net.ipv6.conf.SCOPE.disable_ipv6`.
    DisableIpv6(Scope),
    /// `net.ipv4.conf.SCOPE.route_localnet`.
    RouteLocalnet(Scope),
    /// `net.ipv6.conf.SCOPE.accept_ra`.
    AcceptRa(Scope),
    /// `net.ipv4.conf.SCOPE.arp_notify`.
    ArpNotify(Scope),
    /// `net.ipv4.ip_local_port_range`: the ephemeral ports, `LOW HIGH` (also used for
    /// IPv6).
    IpLocalPortRange,
}

impl fmt::Display for Sysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sysctl::IpForward => f.write_str("net.ipv4.ip_forward"),
            Sysctl::Ipv6Forward => f.write_str("net.ipv6.conf.all.forwarding"),
            Sysctl::DisableIpv6(s) => write!(f, "net.ipv6.conf.{s}.disable_ipv6"),
            Sysctl::RouteLocalnet(s) => write!(f, "net.ipv4.conf.{s}.route_localnet"),
            Sysctl::AcceptRa(s) => write!(f, "net.ipv6.conf.{s}.accept_ra"),
            Sysctl::ArpNotify(s) => write!(f, "net.ipv4.conf.{s}.arp_notify"),
            Sysctl::IpLocalPortRange => f.write_str("net.ipv4.ip_local_port_range"),
        }
    }
}

impl Sysctl {
    fn path(&self) -> Result<PathBuf> {
        match self {
            Sysctl::DisableIpv6(Scope::Dev(n))
            | Sysctl::RouteLocalnet(Scope::Dev(n))
            | Sysctl::AcceptRa(Scope::Dev(n))
            | Sysctl::ArpNotify(Scope::Dev(n)) => n.check_as("sysctl interface")?,
            _ => {}
        }
        Ok(PathBuf::from("/proc/sys").join(self.to_string().replace('.', "/")))
    }

    /// Reads the value inside `ns` (`ip netns exec NS sysctl -n KEY`), trimmed.
    ///
    /// ```no_run
    /// use netplumb::{sysctl::Sysctl, Netns};
    /// let on = Sysctl::IpForward.get(&Netns::current()?)? == "1";
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn get(&self, ns: &Netns) -> Result<String> {
        let path = self.path()?;
        ns.run(|| std::fs::read_to_string(&path))?
            .map(|s| s.trim().to_owned())
            .map_err(|e| Error::io(&path, e))
    }

    /// Writes `value` inside `ns` (`ip netns exec NS sysctl -w KEY=VALUE`).
    pub fn set(&self, ns: &Netns, value: &str) -> Result<()> {
        if value.is_empty() || value.contains(['\n', '\0']) {
            return Err(Error::invalid(
                "sysctl value",
                value,
                "must be one non-empty line",
            ));
        }
        let path = self.path()?;
        log::debug!("in {ns}: sysctl {} = {value}", path.display());
        ns.run(|| std::fs::write(&path, value))?
            .map_err(|e| Error::io(&path, e))
    }

    /// Turns IPv6 off on interface `dev` of `ns`, before it goes up: no link-local
    /// address, no duplicate address detection, no multicast listener reports, no routes.
    /// A kernel without IPv6 (no `conf` folder) is left as it is. So is an interface
    /// when `/proc/sys` is read-only to the caller (Podman runs its network tool so in
    /// some setups): this spares the kernel work, nothing depends on it.
    pub(crate) fn disable_ipv6(ns: &Netns, dev: &str) -> Result<()> {
        match Sysctl::DisableIpv6(Scope::dev(dev)).set(ns, "1") {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(())
            }
            Err(Error::Io { source, path })
                if source.raw_os_error() == Some(Errno::EROFS.raw())
                    || source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                log::debug!("in {ns}: {} not written: {source}", path.display());
                Ok(())
            }
            r => r,
        }
    }

    /// Reads a boolean key (`"0"` is false, anything else true).
    pub fn get_bool(&self, ns: &Netns) -> Result<bool> {
        Ok(self.get(ns)? != "0")
    }

    /// Writes a boolean key as `1` or `0`.
    pub fn set_bool(&self, ns: &Netns, on: bool) -> Result<()> {
        self.set(ns, if on { "1" } else { "0" })
    }
}

/// This boot's id, `kernel.random.boot_id` (a UUID the kernel draws at boot): host-wide,
/// not per namespace, and only read. The runtime database of a
/// [`Host`](crate::network::Host) is named after it.
pub(crate) fn boot_id() -> Result<String> {
    const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
    let id = std::fs::read_to_string(BOOT_ID).map_err(|e| Error::io(BOOT_ID, e))?;
    let id = id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(Error::invalid("boot id", id, "not a UUID"));
    }
    Ok(id.to_owned())
}
