//! [`Repaired`]: what [`Firewall::repair`](crate::firewall::Firewall::repair) found missing and put
//! back.

use std::fmt;

use super::rule::{NetworkRules, PortRule};
use crate::error::Result;

/// What a backend's [`repair`](crate::firewall::Firewall::repair) restored. Empty when the ruleset
/// was intact (and then nothing was written).
///
/// ```
/// use netplumb::firewall::Repaired;
/// let r = Repaired::default();
/// assert!(r.is_empty());
/// assert_eq!(r.to_string(), "nothing to repair");
/// ```
///
/// With feature `serde`: an object with the fields below (missing ones empty), `ports` as
/// in [`PortRule`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
#[non_exhaustive]
pub struct Repaired {
    /// Shared objects re-created or re-filled, named as `nft` or `iptables` would:
    /// `table ip netplumb`, `chain ip netplumb forward`, `set ip netplumb ports`,
    /// `rules of chain ip netplumb prerouting`; `iptables: chains and jumps`.
    pub skeleton: Vec<String>,
    /// Networks whose rules (or anti-spoofing elements) were restored, sorted.
    pub networks: Vec<String>,
    /// Published ports restored, sorted.
    pub ports: Vec<PortRule>,
}

impl Repaired {
    /// Whether nothing had to be restored.
    ///
    /// ```
    /// # use netplumb::firewall::Repaired;
    /// assert!(Repaired::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.skeleton.is_empty() && self.networks.is_empty() && self.ports.is_empty()
    }

    pub(crate) fn skeleton(&mut self, what: String) {
        if !self.skeleton.contains(&what) {
            self.skeleton.push(what);
        }
    }

    pub(crate) fn network(&mut self, name: &str) {
        if !self.networks.iter().any(|n| n == name) {
            self.networks.push(name.to_owned());
        }
    }

    pub(crate) fn port(&mut self, p: &PortRule) {
        if !self.ports.contains(p) {
            self.ports.push(p.clone());
        }
    }

    /// Sorts networks and ports (the backends find them in family order).
    pub(crate) fn sort(&mut self) {
        self.networks.sort();
        self.ports.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    }
}

impl fmt::Display for Repaired {
    /// One line: `restored table ip netplumb; networks net0; 2 port(s)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing to repair");
        }
        let mut parts = Vec::new();
        if !self.skeleton.is_empty() {
            parts.push(self.skeleton.join(", "));
        }
        if !self.networks.is_empty() {
            parts.push(format!("networks {}", self.networks.join(", ")));
        }
        if !self.ports.is_empty() {
            parts.push(format!("{} port(s)", self.ports.len()));
        }
        write!(f, "restored {}", parts.join("; "))
    }
}

/// Checks every network and port given to a repair before anything is read or written.
pub(crate) fn validate_all(nets: &[NetworkRules], ports: &[PortRule]) -> Result<()> {
    for n in nets {
        n.validate()?;
    }
    for p in ports {
        p.validate()?;
    }
    Ok(())
}
