//! [`Owner`]: who holds a lease.

use std::fmt;

/// Who holds a lease: a container and its interface (CNI's `CNI_CONTAINERID` and
/// `CNI_IFNAME`).
///
/// With feature `serde`: `{"container": "3f2a1c0d9e8b", "ifname": "eth0"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Owner {
    /// The container id.
    pub container: String,
    /// The interface name inside the container.
    pub ifname: String,
}

impl Owner {
    /// The owner `container`/`ifname`.
    pub fn new(container: impl Into<String>, ifname: impl Into<String>) -> Self {
        Owner {
            container: container.into(),
            ifname: ifname.into(),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "container {} ({})", self.container, self.ifname)
    }
}
