//! [`LinkSet`] (`ip link set`), [`LinkDel`] (`ip link del`) with its undo record
//! [`LinkDelIn`], and bulk deletion.

use std::fmt;

use super::{Dev, IfName, LinkCommon, LinkId, MacAddr, NsArg};
use crate::error::{Error, Op, Result, ResultExt};
use crate::journal::Undo;
use crate::netns::Netns;
use crate::request::Request;
use crate::rtnl::Rtnl;
use crate::wire::link::{self as wl, IfInfo, LinkAttrs};
use crate::wire::{MsgBuf, NlmF};

/// Changes to an existing link (`ip link set dev DEV ...`).
///
/// ```
/// use netplumb::link::LinkSet;
/// let set = LinkSet::new("veth0").mtu(1400).up();
/// assert_eq!(set.to_string(), "ip link set dev veth0 mtu 1400 up");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct LinkSet {
    link: LinkId,
    up: Option<bool>,
    rename: Option<IfName>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    controller: Option<Dev>,
    group: Option<u32>,
    netns: Option<NsArg>,
    addr_gen: Option<AddrGenMode>,
    route_localnet: Option<bool>,
}

/// How the kernel makes a link's IPv6 link-local address when it goes up
/// (`ip link set DEV addrgenmode MODE`).
///
/// ```
/// use netplumb::link::{AddrGenMode, LinkSet};
/// let set = LinkSet::new("eth0").addr_gen_mode(AddrGenMode::None);
/// assert_eq!(set.to_string(), "ip link set dev eth0 addrgenmode none");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrGenMode {
    /// From the MAC address (EUI-64), the kernel's default.
    Eui64,
    /// No link-local address at all: no duplicate address detection, no multicast
    /// listener reports, until an address is added by hand.
    None,
    /// Stable privacy addresses (RFC 7217); needs a secret set for the link.
    StablePrivacy,
    /// A random interface identifier.
    Random,
}

impl AddrGenMode {
    fn code(self) -> u8 {
        match self {
            AddrGenMode::Eui64 => 0,
            AddrGenMode::None => 1,
            AddrGenMode::StablePrivacy => 2,
            AddrGenMode::Random => 3,
        }
    }
}

impl fmt::Display for AddrGenMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrGenMode::Eui64 => "eui64",
            AddrGenMode::None => "none",
            AddrGenMode::StablePrivacy => "stable_secret",
            AddrGenMode::Random => "random",
        })
    }
}

impl LinkSet {
    /// Changes to `link` (an index, a name or a [`Link`](super::Link)).
    pub fn new(link: impl Into<LinkId>) -> Self {
        LinkSet {
            link: link.into(),
            up: None,
            rename: None,
            mtu: None,
            mac: None,
            controller: None,
            group: None,
            netns: None,
            addr_gen: None,
            route_localnet: None,
        }
    }

    /// Sets the link up (`ip link set DEV up`).
    pub fn up(mut self) -> Self {
        self.up = Some(true);
        self
    }

    /// Sets the link down (`ip link set DEV down`).
    pub fn down(mut self) -> Self {
        self.up = Some(false);
        self
    }

    /// Renames the link (`ip link set DEV name NEW`). The link must be addressed by index
    /// and be down: the kernel refuses to rename a link that is up (EBUSY).
    pub fn name(mut self, name: &str) -> Self {
        self.rename = Some(IfName::unchecked(name));
        self
    }

    /// Sets the MTU (`ip link set DEV mtu N`).
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Sets the MAC address (`ip link set DEV address MAC`).
    pub fn mac(mut self, mac: impl Into<MacAddr>) -> Self {
        self.mac = Some(mac.into());
        self
    }

    /// Makes the link a port of bridge `bridge` (`ip link set DEV master BR`): a
    /// [`Link`](super::Link) or an interface index, as [`Addr::new`](crate::addr::Addr::new)
    /// and [`Route::dev`](crate::route::Route::dev) take theirs.
    ///
    /// ```
    /// use netplumb::link::LinkSet;
    /// assert_eq!(LinkSet::new("veth0").controller(3).to_string(), "ip link set dev veth0 master if3");
    /// ```
    #[doc(alias = "master")]
    pub fn controller(mut self, bridge: impl Into<Dev>) -> Self {
        self.controller = Some(bridge.into());
        self
    }

    /// Detaches the link from its bridge (`ip link set DEV nomaster`).
    #[doc(alias = "nomaster")]
    pub fn no_controller(mut self) -> Self {
        self.controller = Some(Dev::from(0));
        self
    }

    /// Sets the interface group (`ip link set DEV group N`).
    pub fn group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }

    /// Sets how the link's IPv6 link-local address is made when it next goes up
    /// (`ip link set DEV addrgenmode MODE`). The kernel applies it after any `up` of the
    /// same request, so set it in a request before the one that brings the link up.
    pub fn addr_gen_mode(mut self, mode: AddrGenMode) -> Self {
        self.addr_gen = Some(mode);
        self
    }

    /// Sets `net.ipv4.conf.DEV.route_localnet` over netlink (`IFLA_INET_CONF`), which a
    /// read-only `/proc/sys` does not stop: whether packets to and from 127.0.0.0/8 may
    /// be routed through the link (`sysctl -w net.ipv4.conf.DEV.route_localnet=1`).
    ///
    /// ```
    /// use netplumb::link::LinkSet;
    /// let set = LinkSet::new("br0").route_localnet(true);
    /// assert_eq!(set.to_string(), "ip link set dev br0 route_localnet 1");
    /// ```
    pub fn route_localnet(mut self, on: bool) -> Self {
        self.route_localnet = Some(on);
        self
    }

    /// Moves the link to another namespace (`ip link set DEV netns NS|PID`).
    pub fn netns(mut self, ns: impl Into<NsArg>) -> Self {
        self.netns = Some(ns.into());
        self
    }
}

impl fmt::Display for LinkSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ip link set dev {}", self.link)?;
        if let Some(ns) = &self.netns {
            write!(f, " netns {ns}")?;
        }
        if let Some(n) = &self.rename {
            write!(f, " name {n}")?;
        }
        if let Some(m) = self.mtu {
            write!(f, " mtu {m}")?;
        }
        if let Some(m) = self.mac {
            write!(f, " address {m}")?;
        }
        match &self.controller {
            Some(c) if c.index == 0 => f.write_str(" nomaster")?,
            Some(c) => write!(f, " master {c}")?,
            None => {}
        }
        if let Some(g) = self.group {
            write!(f, " group {g}")?;
        }
        if let Some(m) = self.addr_gen {
            write!(f, " addrgenmode {m}")?;
        }
        if let Some(on) = self.route_localnet {
            write!(f, " route_localnet {}", u8::from(on))?;
        }
        match self.up {
            Some(true) => f.write_str(" up"),
            Some(false) => f.write_str(" down"),
            None => Ok(()),
        }
    }
}

impl Request for LinkSet {
    fn op(&self) -> Op {
        Op::SetLink
    }

    fn validate(&self) -> Result<()> {
        self.link.check()?;
        if let Some(n) = &self.rename {
            n.check_as("new link name")?;
            if !self.link.has_index() {
                return Err(Error::invalid(
                    "link",
                    self.link,
                    "a rename must address the link by index",
                ));
            }
        }
        LinkCommon {
            mtu: self.mtu,
            mac: self.mac,
            ..LinkCommon::default()
        }
        .check("link")
    }

    #[inline(always)]
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        // The hot path of every `ip link set`, always inlined into its caller: for a
        // 32-byte `up` a call and its register spills cost as much as the encode. The
        // attributes are gathered only once the header is written, so that each is read
        // as it is written rather than all held (spilled) across the header's stores; the
        // link's fields are read directly (this module may) rather than through
        // `LinkId::index`/`name`, so that the common case calls nothing out of line.
        let (flags, change) = match self.up {
            Some(true) => (wl::IFF_UP, wl::IFF_UP),
            Some(false) => (0, wl::IFF_UP),
            None => (0, 0),
        };
        let info = IfInfo {
            index: self.link.index as i32,
            flags,
            change,
            ..IfInfo::default()
        };
        let m = wl::begin_link(buf, wl::RTM_SETLINK, NlmF::CHANGE, seq, &info);
        // By name only when there is no index (as `LinkId::name`); else the new name.
        let by_name = self.link.name.as_ref().filter(|_| self.link.index == 0);
        LinkAttrs {
            name: by_name.or(self.rename.as_ref()).map(IfName::as_bytes),
            mtu: self.mtu,
            mac: self.mac.map(|m| m.0),
            master: self.controller.map(|d| d.index),
            group: self.group,
            netns: self.netns.as_ref().map(NsArg::target),
            addr_gen_mode: self.addr_gen.map(AddrGenMode::code),
            route_localnet: self.route_localnet,
            ..LinkAttrs::default()
        }
        .put(buf);
        buf.end_msg(m);
    }
}

/// Deletes a link (`ip link del dev DEV`) or every link of an interface group
/// (`ip link del group N`). Deleting one end of a veth deletes both.
///
/// ```
/// use netplumb::link::LinkDel;
/// assert_eq!(LinkDel::new("veth0").to_string(), "ip link del dev veth0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct LinkDel {
    link: Option<LinkId>,
    group: u32,
}

impl LinkDel {
    /// Deletes `link`.
    pub fn new(link: impl Into<LinkId>) -> Self {
        LinkDel {
            link: Some(link.into()),
            group: 0,
        }
    }

    /// Deletes every link of interface group `group` (not 0, the default group) in one
    /// unregister batch.
    pub fn group(group: u32) -> Self {
        LinkDel { link: None, group }
    }

    /// This deletion in namespace `ns`, as an undo record: the inverse of creating the
    /// link ([`LinkDelIn`]).
    pub fn in_netns(self, ns: &Netns) -> LinkDelIn {
        LinkDelIn {
            del: self,
            netns: ns.clone(),
        }
    }
}

/// The undo of creating a link: deletes it in the namespace it was made in, a link
/// already gone being fine. It carries the namespace and opens a socket there when it
/// runs, so a rollback needs none of the caller's handles. Deleting a veth deletes its
/// peer too, with the peer's addresses and routes, and a link's bridge membership goes
/// with it: those need no undo of their own.
///
/// ```no_run
/// use netplumb::{journal::Txn, link::{LinkDel, Veth}, Netns, Rtnl};
/// let ns = Netns::current()?;
/// let mut tx = Txn::new();
/// Rtnl::open_in(&ns)?.execute(&Veth::new("veth3f2a1c0").peer("eth0"))?;
/// tx.push(LinkDel::new("veth3f2a1c0").in_netns(&ns));
/// assert_eq!(tx.pending(), ["ip link del veth3f2a1c0"]);
/// drop(tx); // not committed: the veth is deleted again
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LinkDelIn {
    del: LinkDel,
    netns: Netns,
}

impl Undo for LinkDelIn {
    fn describe(&self) -> String {
        match &self.del.link {
            Some(l) => format!("ip link del {l}"),
            None => format!("ip link del group {}", self.del.group),
        }
    }

    fn undo(self: Box<Self>) -> Result<()> {
        Rtnl::open_in(&self.netns)?.execute(&self.del).or_gone()
    }
}

impl fmt::Display for LinkDel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.link {
            Some(l) => write!(f, "ip link del dev {l}"),
            None => write!(f, "ip link del group {}", self.group),
        }
    }
}

impl Request for LinkDel {
    fn op(&self) -> Op {
        Op::DelLink
    }

    fn validate(&self) -> Result<()> {
        match &self.link {
            Some(l) => l.check(),
            None if self.group == 0 => Err(Error::invalid(
                "group",
                0,
                "deleting group 0 would delete every default link",
            )),
            None => Ok(()),
        }
    }

    #[inline]
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        match &self.link {
            Some(l) => {
                let info = IfInfo::index(l.index());
                let attrs = LinkAttrs {
                    name: l.name(),
                    ..LinkAttrs::default()
                };
                wl::link_msg(buf, wl::RTM_DELLINK, NlmF::CHANGE, seq, &info, &attrs, None);
            }
            None => wl::del_link(buf, seq, 0, Some(self.group)),
        }
    }
}

/// First interface group tried for bulk deletion; well away from the small numbers
/// `/etc/iproute2/group` and admins use.
const BULK_GROUP_BASE: u32 = 0x6e70_0000;

impl Rtnl {
    /// Deletes many links at once (`ip link del group N` after moving them to a fresh
    /// group).
    ///
    /// Deleting links one by one costs a kernel RCU grace period each (~16 ms for a veth);
    /// deleting an interface group unregisters all of them in one batch, so 1,000 veths go
    /// in well under a second. Links already gone are skipped. Returns how many links were
    /// deleted (a veth counts once, its peer is removed with it).
    pub fn delete_links(&mut self, indexes: &[u32]) -> Result<usize> {
        if indexes.is_empty() {
            return Ok(0);
        }
        let links = self.links()?;
        let used: std::collections::HashSet<u32> = links.iter().map(|l| l.group).collect();
        let group = (BULK_GROUP_BASE..)
            .find(|g| !used.contains(g))
            .ok_or_else(|| Error::invalid("group", BULK_GROUP_BASE, "no free interface group"))?;
        let present: Vec<LinkSet> = indexes
            .iter()
            .filter(|i| links.iter().any(|l| l.index == **i))
            .map(|&i| LinkSet::new(i).group(group))
            .collect();
        if present.is_empty() {
            return Ok(0);
        }
        // A link deleted meanwhile (or the peer of one already listed) is fine.
        self.execute_batch(&present).or_gone()?;
        self.execute(&LinkDel::group(group))?;
        Ok(present.len())
    }

    /// Renames `link` to `name` (`ip link set DEV name NEW`), also when it is up: kernels
    /// before 6.x refuse to rename a running link (EBUSY), and then the link is set down,
    /// renamed and set up again. If the rename fails after that, the link is set up again.
    ///
    /// ```no_run
    /// # let mut rtnl = netplumb::Rtnl::open_in(&netplumb::Netns::current()?)?;
    /// let veth = rtnl.link("veth1")?;
    /// rtnl.rename(&veth, "eth0")?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn rename(&mut self, link: &super::Link, name: &str) -> Result<()> {
        let set = LinkSet::new(link.index).name(name);
        match self.execute(&set) {
            Err(e) if e.is_busy() && link.is_up() => {
                self.execute(&LinkSet::new(link.index).down())?;
                let renamed = self.execute(&set);
                let up = self.execute(&LinkSet::new(link.index).up());
                renamed.and(up)
            }
            other => other,
        }
    }
}
