//! Addresses (`ip address`, rtnetlink(7) `RTM_*ADDR`): [`Addr`] to add, replace or delete
//! one, [`AddrInfo`] for what a dump reports, and flushing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use netlink_packet_core::Parseable;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use crate::error::{Error, Op, Result};
use crate::link::Dev;
use crate::request::Request;
use crate::rtnl::Rtnl;
use crate::wire::addr::{self as wa, AddrMsg};
use crate::wire::{self, MsgBuf, NlmF, RawMsg};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Add,
    Replace,
    Del,
}

/// An address on a link (`ip address add ADDR/PLEN dev DEV`).
///
/// ```
/// use netplumb::addr::Addr;
/// let a = Addr::new(5, "10.0.0.1/24".parse().unwrap());
/// assert_eq!(a.to_string(), "ip address add 10.0.0.1/24 dev if5");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Addr {
    dev: Dev,
    net: IpNet,
    peer: Option<IpAddr>,
    broadcast: Option<Ipv4Addr>,
    nodad: bool,
    mode: Mode,
}

impl Addr {
    /// Adds `net` (the address and its prefix length) to link `dev` (a [`Link`](crate::link::Link) or an
    /// index).
    pub fn new(dev: impl Into<Dev>, net: IpNet) -> Self {
        Addr {
            dev: dev.into(),
            net,
            peer: None,
            broadcast: None,
            nodad: false,
            mode: Mode::Add,
        }
    }

    /// Replaces the address if it exists (`ip address replace`).
    pub fn replace(mut self) -> Self {
        self.mode = Mode::Replace;
        self
    }

    /// Deletes the address instead (`ip address del`).
    pub fn delete(mut self) -> Self {
        self.mode = Mode::Del;
        self
    }

    /// The point-to-point peer (`peer ADDR`); the prefix length then applies to the peer.
    pub fn peer(mut self, peer: IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// The IPv4 broadcast address (`broadcast ADDR`).
    pub fn broadcast(mut self, brd: Ipv4Addr) -> Self {
        self.broadcast = Some(brd);
        self
    }

    /// The IPv4 broadcast address computed from the prefix (`broadcast +`).
    pub fn auto_broadcast(mut self) -> Self {
        if let IpNet::V4(n) = self.net {
            if n.prefix_len() <= 30 {
                self.broadcast = Some(n.broadcast());
            }
        }
        self
    }

    /// Skips IPv6 duplicate address detection (`nodad`), so the address is usable at once.
    pub fn nodad(mut self) -> Self {
        self.nodad = true;
        self
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.mode {
            Mode::Add => "add",
            Mode::Replace => "replace",
            Mode::Del => "del",
        };
        match self.peer {
            Some(p) => write!(
                f,
                "ip address {verb} {} peer {p}/{}",
                self.net.addr(),
                self.net.prefix_len()
            )?,
            None => write!(f, "ip address {verb} {}", self.net)?,
        }
        if let Some(b) = self.broadcast {
            write!(f, " broadcast {b}")?;
        }
        write!(f, " dev {}", self.dev)?;
        if self.nodad {
            f.write_str(" nodad")?;
        }
        Ok(())
    }
}

impl Request for Addr {
    fn op(&self) -> Op {
        match self.mode {
            Mode::Add => Op::AddAddr,
            Mode::Replace => Op::ReplaceAddr,
            Mode::Del => Op::DelAddr,
        }
    }

    fn validate(&self) -> Result<()> {
        self.dev.check()?;
        if let Some(p) = self.peer {
            if p.is_ipv4() != self.net.addr().is_ipv4() {
                return Err(Error::invalid("peer", p, "family differs from the address"));
            }
        }
        if self.broadcast.is_some() && !self.net.addr().is_ipv4() {
            return Err(Error::invalid(
                "broadcast",
                self.net,
                "only IPv4 addresses have a broadcast",
            ));
        }
        if self.nodad && self.net.addr().is_ipv4() {
            return Err(Error::invalid(
                "nodad",
                self.net,
                "only applies to IPv6 addresses",
            ));
        }
        Ok(())
    }

    #[inline]
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        let (ty, flags) = match self.mode {
            Mode::Add => (wa::RTM_NEWADDR, NlmF::NEW_EXCL),
            Mode::Replace => (wa::RTM_NEWADDR, NlmF::NEW_REPLACE),
            Mode::Del => (wa::RTM_DELADDR, NlmF::CHANGE),
        };
        let msg = AddrMsg {
            index: self.dev.index,
            local: self.net.addr(),
            prefix_len: self.net.prefix_len(),
            scope: 0,
            peer: self.peer,
            broadcast: self.broadcast.map(IpAddr::V4),
            label: None,
            flags: if self.nodad { wa::IFA_F_NODAD } else { 0 },
        };
        wa::addr_msg(buf, ty, flags, seq, &msg);
    }
}

/// An address as a dump reports it (`ip address show`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AddrInfo {
    /// The link's index.
    pub index: u32,
    /// The local address and prefix length.
    pub addr: IpNet,
    /// The point-to-point peer, when it differs from the local address.
    pub peer: Option<IpAddr>,
    /// The IPv4 broadcast address.
    pub broadcast: Option<Ipv4Addr>,
    /// The label (`eth0`, `eth0:1`).
    pub label: Option<String>,
    /// `ifa_scope` (0 global, 253 link, 254 host).
    pub scope: u8,
}

/// Decodes an `RTM_NEWADDR` message of an address dump; other messages give `None`.
pub(crate) fn parse_addr(m: &RawMsg<'_>) -> Result<Option<AddrInfo>> {
    if m.ty != wa::RTM_NEWADDR {
        return Ok(None);
    }
    let msg = AddressMessage::parse(m.payload)
        .map_err(|_| Error::Protocol(wire::Error::BadLength("address message")))?;
    let (mut local, mut address, mut info) = (None, None, None);
    let mut out = AddrInfo {
        index: msg.header.index,
        addr: IpNet::default(),
        peer: None,
        broadcast: None,
        label: None,
        scope: u8::from(msg.header.scope),
    };
    for a in msg.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(ip),
            AddressAttribute::Address(ip) => address = Some(ip),
            AddressAttribute::Broadcast(b) => out.broadcast = Some(b),
            AddressAttribute::Label(l) => out.label = Some(l),
            _ => {}
        }
    }
    if let Some(ip) = local.or(address) {
        info = IpNet::new(ip, msg.header.prefix_len).ok();
    }
    let Some(net) = info else { return Ok(None) };
    out.addr = net;
    out.peer = address.filter(|a| Some(*a) != local && local.is_some());
    Ok(Some(out))
}

impl Rtnl {
    /// The addresses of one link, or of every link with `None` (`ip address show`).
    pub fn addrs(&mut self, dev: Option<Dev>) -> Result<Vec<AddrInfo>> {
        let index = dev.map(|d| d.index).unwrap_or(0);
        let enc = |b: &mut MsgBuf, s| wa::dump_addrs(b, s, 0, index);
        self.dump("addresses", Op::GetAddr, &enc, &mut parse_addr)
    }

    /// Deletes every address of `dev` (`ip address flush dev DEV`), in one batch. Returns
    /// how many were deleted.
    pub fn flush_addrs(&mut self, dev: impl Into<Dev>) -> Result<usize> {
        let dev = dev.into();
        let dels: Vec<Addr> = self
            .addrs(Some(dev))?
            .into_iter()
            .map(|a| {
                let d = Addr::new(dev, a.addr).delete();
                match a.peer {
                    Some(p) => d.peer(p),
                    None => d,
                }
            })
            .collect();
        self.execute_batch(&dels)?;
        Ok(dels.len())
    }
}
