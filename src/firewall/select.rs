//! Choosing a backend: explicitly, or by what the kernel and the host already use.

use std::fmt;
use std::str::FromStr;

use super::backend::Firewall;
#[cfg(feature = "iptables")]
use super::iptables::Iptables;
use super::nft::Nftables;
use super::repair::Repaired;
use super::rule::{NetworkRules, PortRule};
use super::state::{legacy_tables_in_use, FirewallState};
use crate::error::{Error, Result};
use crate::netns::Netns;

/// A firewall backend.
///
/// ```
/// use netplumb::firewall::Backend;
/// assert_eq!("iptables".parse::<Backend>().unwrap(), Backend::Iptables);
/// assert_eq!(Backend::Auto.to_string(), "auto");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Backend {
    /// Decide when opening (see [`Backend::detect`]).
    #[default]
    Auto,
    /// The native nf_tables backend ([`Nftables`]).
    Nftables,
    /// The iptables backend (feature `iptables`): Docker's chain layout through
    /// `iptables-restore`.
    Iptables,
    /// No firewall at all (netavark's `none` driver, Docker's `--iptables=false`): no
    /// masquerade, isolation or published ports; the caller manages the firewall.
    Disabled,
}

impl Backend {
    /// The name [`FromStr`] reads: `auto`, `nftables`, `iptables`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Nftables => "nftables",
            Backend::Iptables => "iptables",
            Backend::Disabled => "none",
        }
    }

    /// What [`Backend::Auto`] picks in namespace `ns`:
    /// 1. [`Backend::Iptables`] when the namespace already has iptables-legacy (x_tables)
    ///    tables (`/proc/net/ip_tables_names` or `ip6_tables_names` lists one): the host
    ///    is managed through iptables-legacy, and nf_tables rules beside them would be
    ///    judged separately. Needs the `iptables` feature; without it, a warning is
    ///    logged and the rule goes on to 2.
    /// 2. [`Backend::Nftables`] when the kernel answers nf_tables requests.
    /// 3. [`Backend::Iptables`] otherwise (with the feature; else the nf_tables error).
    pub fn detect(ns: &Netns) -> Result<Backend> {
        if legacy_tables_in_use(ns)? {
            if cfg!(feature = "iptables") {
                return Ok(Backend::Iptables);
            }
            log::warn!("{ns} has iptables-legacy tables, but netplumb was built without the `iptables` feature: using nf_tables");
        }
        Ok(Self::nftables_or_iptables(ns)?.0)
    }

    /// After the legacy check: nf_tables when it answers (one generation request, no
    /// dump), with the backend opened for it; else iptables (with the feature).
    fn nftables_or_iptables(ns: &Netns) -> Result<(Backend, Option<Nftables>)> {
        match Nftables::open_in(ns).and_then(|mut fw| fw.probe().map(|()| fw)) {
            Ok(fw) => Ok((Backend::Nftables, Some(fw))),
            Err(_) if cfg!(feature = "iptables") => Ok((Backend::Iptables, None)),
            Err(e) => Err(e),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Backend> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "nftables" | "nft" => Ok(Backend::Nftables),
            "iptables" => Ok(Backend::Iptables),
            "none" | "disabled" => Ok(Backend::Disabled),
            _ => Err(Error::invalid(
                "firewall backend",
                s,
                "expected auto, nftables, iptables or none",
            )),
        }
    }
}

/// A backend chosen at run time ([`open`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyFirewall {
    /// The native nf_tables backend.
    Nftables(Nftables),
    /// The iptables backend.
    #[cfg(feature = "iptables")]
    Iptables(Iptables),
    /// No firewall ([`Backend::Disabled`]).
    Disabled(NoFirewall),
}

/// The firewall of [`Backend::Disabled`]: every change is accepted and nothing is written.
#[derive(Debug, Clone)]
pub struct NoFirewall {
    ns: Netns,
}

impl NoFirewall {
    /// No firewall for namespace `ns`.
    ///
    /// ```
    /// use netplumb::firewall::{Firewall, NoFirewall};
    /// let mut fw = NoFirewall::new(&netplumb::Netns::current()?);
    /// assert!(fw.state()?.networks.is_empty());
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn new(ns: &Netns) -> Self {
        NoFirewall { ns: ns.clone() }
    }
}

impl Firewall for NoFirewall {
    fn add_network(&mut self, _: &NetworkRules) -> Result<()> {
        Ok(())
    }

    fn remove_network(&mut self, _: &str) -> Result<()> {
        Ok(())
    }

    fn publish(&mut self, _: &[PortRule]) -> Result<()> {
        Ok(())
    }

    fn unpublish(&mut self, _: &[PortRule]) -> Result<()> {
        Ok(())
    }

    fn state(&mut self) -> Result<FirewallState> {
        Ok(FirewallState::default())
    }

    fn repair(&mut self, _: &[NetworkRules], _: &[PortRule]) -> Result<Repaired> {
        Ok(Repaired::default())
    }
}

/// Opens `backend` for namespace `ns` ([`Backend::Auto`]: see [`Backend::detect`]).
///
/// ```no_run
/// use netplumb::firewall::{self, Backend, Firewall, NetworkRules};
/// let mut fw = firewall::open(Backend::Auto, &netplumb::Netns::current()?)?;
/// println!("using {}", fw.backend());
/// fw.add_network(&NetworkRules::new("bridge", "docker0").subnet("172.17.0.0/16".parse().unwrap()))?;
/// # Ok::<(), netplumb::Error>(())
/// ```
pub fn open(backend: Backend, ns: &Netns) -> Result<AnyFirewall> {
    match backend {
        Backend::Auto if legacy_tables_in_use(ns)? => open(Backend::detect(ns)?, ns),
        // The probe's backend is the one to use: not opened twice.
        Backend::Auto => match Backend::nftables_or_iptables(ns)? {
            (_, Some(fw)) => Ok(AnyFirewall::Nftables(fw)),
            (b, None) => open(b, ns),
        },
        Backend::Nftables => Ok(AnyFirewall::Nftables(Nftables::open_in(ns)?)),
        Backend::Disabled => Ok(AnyFirewall::Disabled(NoFirewall::new(ns))),
        #[cfg(feature = "iptables")]
        Backend::Iptables => Ok(AnyFirewall::Iptables(Iptables::open_in(ns)?)),
        #[cfg(not(feature = "iptables"))]
        Backend::Iptables => Err(Error::invalid(
            "firewall backend",
            "iptables",
            "netplumb was built without the `iptables` feature",
        )),
    }
}

impl AnyFirewall {
    fn inner(&mut self) -> &mut dyn Firewall {
        match self {
            AnyFirewall::Nftables(fw) => fw,
            #[cfg(feature = "iptables")]
            AnyFirewall::Iptables(fw) => fw,
            AnyFirewall::Disabled(fw) => fw,
        }
    }

    /// Which backend this is (never [`Backend::Auto`]).
    pub fn backend(&self) -> Backend {
        match self {
            AnyFirewall::Nftables(_) => Backend::Nftables,
            #[cfg(feature = "iptables")]
            AnyFirewall::Iptables(_) => Backend::Iptables,
            AnyFirewall::Disabled(_) => Backend::Disabled,
        }
    }

    /// The namespace the backend writes to.
    pub fn netns(&self) -> &Netns {
        match self {
            AnyFirewall::Nftables(fw) => fw.netns(),
            #[cfg(feature = "iptables")]
            AnyFirewall::Iptables(fw) => fw.netns(),
            AnyFirewall::Disabled(fw) => &fw.ns,
        }
    }

    /// Removes everything the backend installed, the users' chain included
    /// ([`Nftables::flush`], `Iptables::flush`).
    pub fn flush(&mut self) -> Result<()> {
        match self {
            AnyFirewall::Nftables(fw) => fw.flush(),
            #[cfg(feature = "iptables")]
            AnyFirewall::Iptables(fw) => fw.flush(),
            AnyFirewall::Disabled(_) => Ok(()),
        }
    }
}

impl From<Nftables> for AnyFirewall {
    fn from(fw: Nftables) -> Self {
        AnyFirewall::Nftables(fw)
    }
}

#[cfg(feature = "iptables")]
impl From<Iptables> for AnyFirewall {
    fn from(fw: Iptables) -> Self {
        AnyFirewall::Iptables(fw)
    }
}

/// One debug line per firewall change: the backend, its namespace and what changed.
fn log_change(fw: &AnyFirewall, what: std::fmt::Arguments<'_>) {
    log::debug!("firewall ({} in {}): {what}", fw.backend(), fw.netns());
}

/// The published ports of a change, as `0.0.0.0:8080 -> 10.0.0.2:80/tcp, …`.
fn port_list(ports: &[PortRule]) -> String {
    let v: Vec<String> = ports.iter().map(ToString::to_string).collect();
    v.join(", ")
}

/// Every change is logged at debug level, naming the backend and its namespace. A `Host`
/// network without addresses (nothing to masquerade, isolate by address or publish) has
/// no rules: adding it changes nothing, and repairs leave it out.
impl Firewall for AnyFirewall {
    fn add_network(&mut self, net: &NetworkRules) -> Result<()> {
        if net.addressless && net.subnets.is_empty() {
            log_change(
                self,
                format_args!("network {} has no subnets: no rules", net.name),
            );
            return Ok(());
        }
        log_change(
            self,
            format_args!(
                "add network {} on {} (subnets {:?}, masquerade {}, icc {}, internal {})",
                net.name, net.bridge, net.subnets, net.masquerade, net.icc, net.internal
            ),
        );
        self.inner().add_network(net)
    }

    fn remove_network(&mut self, name: &str) -> Result<()> {
        log_change(self, format_args!("remove network {name}"));
        self.inner().remove_network(name)
    }

    fn publish(&mut self, ports: &[PortRule]) -> Result<()> {
        if log::log_enabled!(log::Level::Debug) && !ports.is_empty() {
            log_change(self, format_args!("publish {}", port_list(ports)));
        }
        self.inner().publish(ports)
    }

    fn unpublish(&mut self, ports: &[PortRule]) -> Result<()> {
        if log::log_enabled!(log::Level::Debug) && !ports.is_empty() {
            log_change(self, format_args!("unpublish {}", port_list(ports)));
        }
        self.inner().unpublish(ports)
    }

    fn state(&mut self) -> Result<FirewallState> {
        self.inner().state()
    }

    fn repair(&mut self, networks: &[NetworkRules], ports: &[PortRule]) -> Result<Repaired> {
        let with_rules: Vec<NetworkRules> = networks
            .iter()
            .filter(|n| !(n.addressless && n.subnets.is_empty()))
            .cloned()
            .collect();
        self.inner().repair(&with_rules, ports)
    }
}
