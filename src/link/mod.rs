//! Links (`ip link`, rtnetlink(7) `RTM_*LINK`): the specs of the kinds netplumb creates
//! ([`Veth`], [`Bridge`], [`Vxlan`]), changes to existing links ([`LinkSet`],
//! [`BridgePort`]), deletion ([`LinkDel`]; [`LinkDelIn`], the undo of creating a link;
//! and bulk deletion in one unregister batch), and
//! what a dump says about a link ([`Link`]).

mod bridge;
mod dummy;
pub(crate) mod info;
mod name;
mod set;
mod veth;
mod vxlan;

pub use bridge::{Bridge, BridgePort};
pub use dummy::{Dummy, Ifb};
pub use info::{BridgeInfo, BridgePortInfo, Link, OperState, VxlanInfo};
pub(crate) use name::veth_name;
pub use name::{IfName, MacAddr, IFNAME_MAX};
pub use set::{AddrGenMode, LinkDel, LinkDelIn, LinkSet};
pub use veth::Veth;
pub use vxlan::{Vxlan, VXLAN_PORT};

use std::fmt;

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::wire::link::NsTarget;

/// Which link a request addresses: by index (always unambiguous) or by name, with the
/// name kept for messages when both are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkId {
    index: u32,
    name: Option<IfName>,
}

impl LinkId {
    /// The link with interface index `index`.
    pub fn by_index(index: u32) -> LinkId {
        LinkId { index, name: None }
    }

    /// The link with interface index `index`, known by `name` in messages and logs
    /// (`ip link set dev veth1234567 down`, not `… dev if7 …`).
    ///
    /// ```
    /// use netplumb::link::{LinkId, LinkSet};
    /// let set = LinkSet::new(LinkId::named(7, "veth1234567")).down();
    /// assert_eq!(set.to_string(), "ip link set dev veth1234567 down");
    /// ```
    pub fn named(index: u32, name: &str) -> LinkId {
        LinkId {
            index,
            name: Some(IfName::unchecked(name)),
        }
    }

    /// The link named `name` (checked before use).
    pub fn by_name(name: &str) -> LinkId {
        LinkId {
            index: 0,
            name: Some(IfName::unchecked(name)),
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        match (self.index, &self.name) {
            (0, Some(n)) => n.check(),
            (0, None) => Err(Error::invalid("link index", 0, "must not be 0")),
            _ => Ok(()),
        }
    }

    /// True when the link is addressed by index.
    pub fn has_index(&self) -> bool {
        self.index != 0
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The name to send: only when addressing by name.
    pub(crate) fn name(&self) -> Option<&[u8]> {
        match self.index {
            0 => self.name.as_ref().map(IfName::as_bytes),
            _ => None,
        }
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "if{}", self.index),
        }
    }
}

impl From<u32> for LinkId {
    fn from(i: u32) -> Self {
        LinkId::by_index(i)
    }
}

impl From<&str> for LinkId {
    fn from(s: &str) -> Self {
        LinkId::by_name(s)
    }
}

impl From<&Link> for LinkId {
    fn from(l: &Link) -> Self {
        LinkId {
            index: l.index,
            name: Some(IfName::unchecked(&l.name)),
        }
    }
}

/// A link addressed by index, with its name when known (for messages): what address and
/// route requests need, since the kernel takes only an index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dev {
    /// The interface index.
    pub index: u32,
    name: Option<IfName>,
}

impl Dev {
    /// Link `index`, known by `name` in messages.
    pub fn named(index: u32, name: &str) -> Dev {
        Dev {
            index,
            name: Some(IfName::unchecked(name)),
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.index == 0 {
            return Err(Error::invalid("dev", 0, "link index must not be 0"));
        }
        Ok(())
    }
}

impl fmt::Display for Dev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n}"),
            None => write!(f, "if{}", self.index),
        }
    }
}

impl From<u32> for Dev {
    fn from(index: u32) -> Self {
        Dev { index, name: None }
    }
}

impl From<&Link> for Dev {
    fn from(l: &Link) -> Self {
        Dev::named(l.index, &l.name)
    }
}

/// A namespace a link is created in or moved to: a handle, or the namespace of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsArg {
    /// An open namespace.
    Netns(Netns),
    /// The namespace of process `pid` (`ip link set DEV netns PID`).
    Pid(u32),
}

impl NsArg {
    pub(crate) fn target(&self) -> NsTarget {
        use std::os::fd::{AsFd, AsRawFd};
        match self {
            NsArg::Netns(ns) => NsTarget::Fd(ns.as_fd().as_raw_fd()),
            NsArg::Pid(p) => NsTarget::Pid(*p),
        }
    }
}

impl fmt::Display for NsArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NsArg::Netns(ns) => write!(f, "{ns}"),
            NsArg::Pid(p) => write!(f, "{p}"),
        }
    }
}

impl From<&Netns> for NsArg {
    fn from(ns: &Netns) -> Self {
        NsArg::Netns(ns.clone())
    }
}

impl From<Netns> for NsArg {
    fn from(ns: Netns) -> Self {
        NsArg::Netns(ns)
    }
}

impl From<u32> for NsArg {
    fn from(pid: u32) -> Self {
        NsArg::Pid(pid)
    }
}

/// Settings every created link kind shares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LinkCommon {
    pub(crate) mtu: Option<u32>,
    pub(crate) mac: Option<MacAddr>,
    pub(crate) up: bool,
    pub(crate) group: Option<u32>,
    pub(crate) controller: Option<Dev>,
}

impl LinkCommon {
    pub(crate) fn check(&self, side: &'static str) -> Result<()> {
        if self.mtu == Some(0) {
            return Err(Error::invalid(side, "mtu 0", "MTU must be positive"));
        }
        if let Some(m) = self.mac {
            if m.is_multicast() || m.0 == [0; 6] {
                return Err(Error::invalid(side, m, "MAC must be unicast and non-zero"));
            }
        }
        Ok(())
    }

    /// The common attributes of a link named `name` (`None`: the kernel picks one).
    #[inline]
    pub(crate) fn attrs<'a>(&self, name: Option<&'a [u8]>) -> crate::wire::link::LinkAttrs<'a> {
        crate::wire::link::LinkAttrs {
            name,
            mtu: self.mtu,
            mac: self.mac.map(|m| m.0),
            group: self.group,
            master: self.controller.map(|d| d.index),
            ..Default::default()
        }
    }

    pub(crate) fn ifinfo(&self) -> crate::wire::link::IfInfo {
        let up = if self.up {
            crate::wire::link::IFF_UP
        } else {
            0
        };
        crate::wire::link::IfInfo {
            flags: up,
            change: up,
            ..Default::default()
        }
    }

    pub(crate) fn fmt_ip(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = self.mtu {
            write!(f, " mtu {m}")?;
        }
        if let Some(m) = self.mac {
            write!(f, " address {m}")?;
        }
        if let Some(g) = self.group {
            write!(f, " group {g}")?;
        }
        if let Some(c) = &self.controller {
            write!(f, " master {c}")?;
        }
        if self.up {
            f.write_str(" up")?;
        }
        Ok(())
    }
}

/// Generates the setters of [`LinkCommon`] on a spec with a `common` field.
macro_rules! common_setters {
    () => {
        /// The MTU (`ip link add ... mtu N`).
        pub fn mtu(mut self, mtu: u32) -> Self {
            self.common.mtu = Some(mtu);
            self
        }

        /// The MAC address (`ip link add ... address MAC`).
        pub fn mac(mut self, mac: impl Into<$crate::link::MacAddr>) -> Self {
            self.common.mac = Some(mac.into());
            self
        }

        /// Brings the link up as it is created (`ip link add ... up`).
        pub fn up(mut self) -> Self {
            self.common.up = true;
            self
        }

        /// The interface group (`ip link add ... group N`).
        pub fn group(mut self, group: u32) -> Self {
            self.common.group = Some(group);
            self
        }

        /// Makes the new link a port of bridge `bridge` (a [`Link`](crate::link::Link) or an
        /// interface index) as it is created (`ip link add ... master BR`), saving a request.
        #[doc(alias = "master")]
        pub fn controller(mut self, bridge: impl Into<$crate::link::Dev>) -> Self {
            self.common.controller = Some(bridge.into());
            self
        }
    };
}
pub(crate) use common_setters;
