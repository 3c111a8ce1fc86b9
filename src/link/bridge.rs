//! [`Bridge`] (`ip link add NAME type bridge`) and [`BridgePort`] settings
//! (`ip link set DEV type bridge_slave hairpin on`).

use std::fmt;

use super::{common_setters, IfName, LinkCommon, LinkId};
use crate::error::{Error, Op, Result};
use crate::request::Request;
use crate::wire::link::{self as wl, BridgeData, BridgePortData, IfInfo, LinkAttrs, LinkKind};
use crate::wire::{MsgBuf, NlmF};

/// A Linux bridge (Docker's `docker0`).
///
/// ```
/// use netplumb::link::Bridge;
/// let br = Bridge::new("docker0").stp(false).mtu(1500);
/// assert_eq!(br.to_string(), "ip link add docker0 mtu 1500 type bridge stp_state 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Bridge {
    name: IfName,
    common: LinkCommon,
    data: BridgeData,
}

impl Bridge {
    /// A bridge named `name`.
    pub fn new(name: &str) -> Self {
        Bridge {
            name: IfName::unchecked(name),
            common: LinkCommon::default(),
            data: BridgeData::default(),
        }
    }

    common_setters!();

    /// Spanning tree on or off (`type bridge stp_state 0|1`).
    pub fn stp(mut self, on: bool) -> Self {
        self.data.stp = Some(on);
        self
    }

    /// Forward delay in centiseconds (`type bridge forward_delay N`).
    pub fn forward_delay(mut self, centiseconds: u32) -> Self {
        self.data.forward_delay = Some(centiseconds);
        self
    }

    /// Multicast snooping on or off (`type bridge mcast_snooping 0|1`; the kernel's
    /// default is on). Off, multicast is flooded to every port, and adding or removing a
    /// port no longer restarts the multicast timers of every other port.
    ///
    /// ```
    /// use netplumb::link::Bridge;
    /// let br = Bridge::new("br0").multicast_snooping(false);
    /// assert_eq!(br.to_string(), "ip link add br0 type bridge mcast_snooping 0");
    /// ```
    pub fn multicast_snooping(mut self, on: bool) -> Self {
        self.data.mcast_snooping = Some(on);
        self
    }

    /// VLAN filtering on or off (`type bridge vlan_filtering 0|1`).
    pub fn vlan_filtering(mut self, on: bool) -> Self {
        self.data.vlan_filtering = Some(on);
        self
    }
}

impl fmt::Display for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ip link add {}", self.name)?;
        self.common.fmt_ip(f)?;
        f.write_str(" type bridge")?;
        if let Some(v) = self.data.forward_delay {
            write!(f, " forward_delay {v}")?;
        }
        if let Some(v) = self.data.stp {
            write!(f, " stp_state {}", v as u8)?;
        }
        if let Some(v) = self.data.vlan_filtering {
            write!(f, " vlan_filtering {}", v as u8)?;
        }
        if let Some(v) = self.data.mcast_snooping {
            write!(f, " mcast_snooping {}", v as u8)?;
        }
        Ok(())
    }
}

impl Request for Bridge {
    fn op(&self) -> Op {
        Op::AddLink
    }

    fn validate(&self) -> Result<()> {
        self.name.check()?;
        self.common.check("bridge")?;
        if let Some(d) = self.data.forward_delay {
            // The kernel accepts 2 to 30 seconds when STP is on.
            if self.data.stp == Some(true) && !(200..=3000).contains(&d) {
                return Err(Error::invalid(
                    "forward delay",
                    d,
                    "must be 200 to 3000 centiseconds with STP on",
                ));
            }
        }
        Ok(())
    }

    #[inline]
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        let attrs = self.common.attrs(Some(self.name.as_bytes()));
        let info: IfInfo = self.common.ifinfo();
        let kind = LinkKind::Bridge(self.data);
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

/// Settings of a link that is a bridge port (`ip link set DEV type bridge_slave ...`).
///
/// ```
/// use netplumb::link::BridgePort;
/// let p = BridgePort::new("veth0").hairpin(true).isolated(true);
/// assert_eq!(p.to_string(), "ip link set dev veth0 type bridge_slave hairpin on isolated on");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct BridgePort {
    link: LinkId,
    data: BridgePortData,
}

impl BridgePort {
    /// Settings for port `link`.
    pub fn new(link: impl Into<LinkId>) -> Self {
        BridgePort {
            link: link.into(),
            data: BridgePortData::default(),
        }
    }

    /// Hairpin mode: a frame may leave by the port it came in (`hairpin on|off`).
    pub fn hairpin(mut self, on: bool) -> Self {
        self.data.hairpin = Some(on);
        self
    }

    /// Isolation: isolated ports cannot talk to each other (`isolated on|off`).
    pub fn isolated(mut self, on: bool) -> Self {
        self.data.isolated = Some(on);
        self
    }

    /// MAC learning (`learning on|off`).
    pub fn learning(mut self, on: bool) -> Self {
        self.data.learning = Some(on);
        self
    }

    /// Unknown-unicast flooding (`flood on|off`).
    pub fn flood(mut self, on: bool) -> Self {
        self.data.flood = Some(on);
        self
    }
}

fn onoff(v: bool) -> &'static str {
    if v {
        "on"
    } else {
        "off"
    }
}

impl fmt::Display for BridgePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ip link set dev {} type bridge_slave", self.link)?;
        let d = &self.data;
        for (k, v) in [
            ("hairpin", d.hairpin),
            ("learning", d.learning),
            ("flood", d.flood),
            ("isolated", d.isolated),
        ] {
            if let Some(v) = v {
                write!(f, " {k} {}", onoff(v))?;
            }
        }
        Ok(())
    }
}

impl Request for BridgePort {
    fn op(&self) -> Op {
        Op::SetLink
    }

    fn validate(&self) -> Result<()> {
        self.link.check()
    }

    #[inline]
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        let attrs = LinkAttrs {
            name: self.link.name(),
            ..LinkAttrs::default()
        };
        let info = IfInfo::index(self.link.index());
        let kind = LinkKind::BridgePort(self.data);
        wl::link_msg(
            buf,
            wl::RTM_NEWLINK,
            NlmF::CHANGE,
            seq,
            &info,
            &attrs,
            Some(&kind),
        );
    }
}
