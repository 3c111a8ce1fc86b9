//! [`Veth`]: a veth pair (`ip link add NAME type veth peer name PEER netns NS`).

use std::fmt;

use super::{common_setters, IfName, LinkCommon, MacAddr, NsArg};
use crate::error::{Error, Op, Result};
use crate::request::Request;
use crate::wire::link::{self as wl, IfInfo, LinkAttrs, LinkKind};
use crate::wire::{MsgBuf, NlmF};

/// A veth pair. The peer can be created straight inside another namespace, which saves a
/// move and never exposes the peer in the host namespace.
///
/// Without names the kernel picks `vethN` for both ends.
///
/// The peer is created down: the kernel refuses (`ENOTCONN`) to create it up, so bring it
/// up with [`LinkSet`](super::LinkSet) through a handle in its namespace.
///
/// ```
/// use netplumb::link::Veth;
/// let v = Veth::new("veth3f2a1c0").peer("eth0").mtu(1500);
/// assert_eq!(v.to_string(), "ip link add veth3f2a1c0 mtu 1500 type veth peer name eth0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[must_use]
pub struct Veth {
    name: Option<IfName>,
    common: LinkCommon,
    peer: Option<IfName>,
    peer_common: LinkCommon,
    peer_netns: Option<NsArg>,
    queues: Option<u32>,
}

impl Veth {
    /// A veth pair whose first end is `name`.
    pub fn new(name: &str) -> Self {
        Veth {
            name: Some(IfName::unchecked(name)),
            ..Veth::default()
        }
    }

    /// A veth pair whose names the kernel chooses (`ip link add type veth`).
    pub fn anonymous() -> Self {
        Veth::default()
    }

    common_setters!();

    /// The peer's name (`peer name PEER`).
    pub fn peer(mut self, name: &str) -> Self {
        self.peer = Some(IfName::unchecked(name));
        self
    }

    /// Creates the peer directly in namespace `ns` (`peer ... netns NS`).
    pub fn peer_netns(mut self, ns: impl Into<NsArg>) -> Self {
        self.peer_netns = Some(ns.into());
        self
    }

    /// The peer's MTU (`peer ... mtu N`).
    pub fn peer_mtu(mut self, mtu: u32) -> Self {
        self.peer_common.mtu = Some(mtu);
        self
    }

    /// Transmit and receive queues of both ends (`numtxqueues N numrxqueues N` on each).
    ///
    /// Without it the kernel sizes a veth for one queue per possible CPU and then cuts
    /// both ends down to one queue in use, which waits for an RCU grace period while
    /// holding the rtnl lock; `queues(1)` gives the same single queue without the wait.
    ///
    /// ```
    /// use netplumb::link::Veth;
    /// let v = Veth::new("veth0").queues(1).peer("eth0");
    /// assert_eq!(
    ///     v.to_string(),
    ///     "ip link add veth0 numtxqueues 1 numrxqueues 1 type veth peer name eth0 numtxqueues 1 numrxqueues 1"
    /// );
    /// ```
    pub fn queues(mut self, n: u32) -> Self {
        self.queues = Some(n);
        self
    }

    /// The peer's MAC address (`peer ... address MAC`).
    pub fn peer_mac(mut self, mac: impl Into<MacAddr>) -> Self {
        self.peer_common.mac = Some(mac.into());
        self
    }
}

impl fmt::Display for Veth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ip link add")?;
        if let Some(n) = &self.name {
            write!(f, " {n}")?;
        }
        self.common.fmt_ip(f)?;
        let queues = |f: &mut fmt::Formatter<'_>| match self.queues {
            Some(q) => write!(f, " numtxqueues {q} numrxqueues {q}"),
            None => Ok(()),
        };
        queues(f)?;
        f.write_str(" type veth")?;
        if let Some(p) = &self.peer {
            write!(f, " peer name {p}")?;
        } else if self.peer_netns.is_some()
            || self.peer_common != LinkCommon::default()
            || self.queues.is_some()
        {
            f.write_str(" peer")?;
        }
        self.peer_common.fmt_ip(f)?;
        queues(f)?;
        if let Some(ns) = &self.peer_netns {
            write!(f, " netns {ns}")?;
        }
        Ok(())
    }
}

impl Request for Veth {
    fn op(&self) -> Op {
        Op::AddLink
    }

    fn validate(&self) -> Result<()> {
        if let Some(n) = &self.name {
            n.check()?;
        }
        if let Some(p) = &self.peer {
            p.check_as("peer name")?;
            if self.peer_netns.is_none() && Some(p) == self.name.as_ref() {
                return Err(Error::invalid(
                    "peer name",
                    p,
                    "same as the link's name in the same namespace",
                ));
            }
        }
        if let Some(q) = self.queues {
            // The kernel's own limit (4096) and at least one.
            if !(1..=4096).contains(&q) {
                return Err(Error::invalid("queues", q, "must be 1 to 4096"));
            }
        }
        self.common.check("link")?;
        self.peer_common.check("peer")
    }

    #[inline]
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        let mut attrs = self.common.attrs(self.name.as_ref().map(IfName::as_bytes));
        attrs.queues = self.queues;
        let kind = LinkKind::Veth {
            info: self.peer_common.ifinfo(),
            attrs: LinkAttrs {
                name: self.peer.as_ref().map(IfName::as_bytes),
                mtu: self.peer_common.mtu,
                mac: self.peer_common.mac.map(|m| m.0),
                group: self.peer_common.group,
                netns: self.peer_netns.as_ref().map(NsArg::target),
                queues: self.queues,
                ..LinkAttrs::default()
            },
        };
        let info: IfInfo = self.common.ifinfo();
        wl::link_msg(
            buf,
            wl::RTM_NEWLINK,
            NlmF::NEW_EXCL,
            seq,
            &info,
            &attrs,
            Some(&kind),
        );
    }
}
