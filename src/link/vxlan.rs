//! [`Vxlan`]: a VXLAN device (`ip link add NAME type vxlan id VNI ...`).

use std::fmt;
use std::net::IpAddr;

use super::{common_setters, IfName, LinkCommon};
use crate::error::{Error, Op, Result};
use crate::request::Request;
use crate::wire::link::{self as wl, IfInfo, LinkKind, VxlanData};
use crate::wire::{MsgBuf, NlmF};

/// The IANA VXLAN port, which Docker's overlay uses.
pub const VXLAN_PORT: u16 = 4789;

/// A VXLAN device.
///
/// ```
/// use netplumb::link::Vxlan;
/// let v = Vxlan::new("vxlan0", 256).port(4789).learning(false).proxy(true).mtu(1450);
/// assert_eq!(v.to_string(), "ip link add vxlan0 mtu 1450 type vxlan id 256 dstport 4789 nolearning proxy");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Vxlan {
    name: IfName,
    common: LinkCommon,
    data: VxlanData,
}

impl Vxlan {
    /// A VXLAN device `name` with network identifier `vni`.
    pub fn new(name: &str, vni: u32) -> Self {
        Vxlan {
            name: IfName::unchecked(name),
            common: LinkCommon::default(),
            data: VxlanData {
                vni,
                remote: None,
                local: None,
                dev: None,
                ttl: None,
                learning: None,
                proxy: None,
                port: None,
            },
        }
    }

    common_setters!();

    /// The unicast remote or multicast group (`remote ADDR` / `group ADDR`).
    pub fn remote(mut self, addr: IpAddr) -> Self {
        self.data.remote = Some(addr);
        self
    }

    /// The local source address (`local ADDR`).
    pub fn local(mut self, addr: IpAddr) -> Self {
        self.data.local = Some(addr);
        self
    }

    /// The underlay device (`dev DEV`): a [`Link`](super::Link) or an interface index.
    pub fn dev(mut self, dev: impl Into<super::Dev>) -> Self {
        self.data.dev = Some(dev.into().index);
        self
    }

    /// The UDP destination port (`dstport N`; the kernel's default is 8472, Docker's 4789).
    pub fn port(mut self, port: u16) -> Self {
        self.data.port = Some(port);
        self
    }

    /// MAC learning (`learning` / `nolearning`).
    pub fn learning(mut self, on: bool) -> Self {
        self.data.learning = Some(on);
        self
    }

    /// Answer ARP requests and IPv6 neighbour solicitations from the device's own
    /// neighbour table instead of flooding them (`proxy`): what an overlay with a
    /// control plane uses.
    pub fn proxy(mut self, on: bool) -> Self {
        self.data.proxy = Some(on);
        self
    }

    /// The outer TTL (`ttl N`).
    pub fn ttl(mut self, ttl: u8) -> Self {
        self.data.ttl = Some(ttl);
        self
    }
}

impl fmt::Display for Vxlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ip link add {}", self.name)?;
        self.common.fmt_ip(f)?;
        write!(f, " type vxlan id {}", self.data.vni)?;
        if let Some(r) = self.data.remote {
            let word = if r.is_multicast() { "group" } else { "remote" };
            write!(f, " {word} {r}")?;
        }
        if let Some(l) = self.data.local {
            write!(f, " local {l}")?;
        }
        if let Some(d) = self.data.dev {
            write!(f, " dev if{d}")?;
        }
        if let Some(p) = self.data.port {
            write!(f, " dstport {p}")?;
        }
        if let Some(t) = self.data.ttl {
            write!(f, " ttl {t}")?;
        }
        match self.data.learning {
            Some(true) => f.write_str(" learning")?,
            Some(false) => f.write_str(" nolearning")?,
            None => {}
        }
        match self.data.proxy {
            Some(true) => f.write_str(" proxy"),
            Some(false) => f.write_str(" noproxy"),
            None => Ok(()),
        }
    }
}

impl Request for Vxlan {
    fn op(&self) -> Op {
        Op::AddLink
    }

    fn validate(&self) -> Result<()> {
        self.name.check()?;
        self.common.check("vxlan")?;
        if self.data.vni >= 1 << 24 {
            return Err(Error::invalid("vni", self.data.vni, "must be below 2^24"));
        }
        if let (Some(r), Some(l)) = (self.data.remote, self.data.local) {
            if r.is_ipv4() != l.is_ipv4() {
                return Err(Error::invalid(
                    "remote",
                    r,
                    "family differs from the local address",
                ));
            }
        }
        if self.data.port == Some(0) {
            return Err(Error::invalid("port", 0, "must not be 0"));
        }
        Ok(())
    }

    #[inline]
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        let attrs = self.common.attrs(Some(self.name.as_bytes()));
        let info: IfInfo = self.common.ifinfo();
        let kind = LinkKind::Vxlan(self.data);
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
