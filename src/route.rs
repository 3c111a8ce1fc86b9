//! Routes (`ip route`, rtnetlink(7) `RTM_*ROUTE`): [`Route`] to add, replace or delete one,
//! and [`RouteInfo`] for what a dump reports.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_core::Parseable;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};

use crate::error::{Error, Op, Result};
use crate::link::Dev;
use crate::request::Request;
use crate::rtnl::Rtnl;
use crate::wire::route::{self as wr, RouteMsg};
use crate::wire::{self, MsgBuf, NlmF, RawMsg};

/// The main routing table.
pub const TABLE_MAIN: u32 = 254;

/// A route's scope (`ip route ... scope SCOPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `global`: reached via a gateway.
    Universe,
    /// `link`: directly on the link.
    Link,
    /// `host`: this host.
    Host,
}

impl Scope {
    fn raw(self) -> u8 {
        match self {
            Scope::Universe => wr::RT_SCOPE_UNIVERSE,
            Scope::Link => wr::RT_SCOPE_LINK,
            Scope::Host => wr::RT_SCOPE_HOST,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Add,
    Append,
    Replace,
    Del,
}

/// A route (`ip route add DST via GW dev DEV`).
///
/// ```
/// use netplumb::route::Route;
/// use std::net::Ipv4Addr;
/// let r = Route::default_v4().via(Ipv4Addr::new(172, 17, 0, 1).into()).dev(7);
/// assert_eq!(r.to_string(), "ip route add default via 172.17.0.1 dev if7");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Route {
    dst: IpNet,
    via: Option<IpAddr>,
    dev: Option<Dev>,
    metric: Option<u32>,
    table: u32,
    scope: Option<Scope>,
    src: Option<IpAddr>,
    onlink: bool,
    mode: Mode,
}

impl Route {
    /// A route to `dst`.
    pub fn new(dst: IpNet) -> Self {
        Route {
            dst,
            via: None,
            dev: None,
            metric: None,
            table: TABLE_MAIN,
            scope: None,
            src: None,
            onlink: false,
            mode: Mode::Add,
        }
    }

    /// The IPv4 default route (`default` = 0.0.0.0/0).
    pub fn default_v4() -> Self {
        Route::new(IpNet::new(Ipv4Addr::UNSPECIFIED.into(), 0).unwrap_or_default())
    }

    /// The IPv6 default route (`default` = ::/0).
    pub fn default_v6() -> Self {
        Route::new(IpNet::new(Ipv6Addr::UNSPECIFIED.into(), 0).unwrap_or_default())
    }

    /// The gateway (`via ADDR`); its family must be the destination's.
    pub fn via(mut self, gw: IpAddr) -> Self {
        self.via = Some(gw);
        self
    }

    /// The output link (`dev DEV`).
    pub fn dev(mut self, dev: impl Into<Dev>) -> Self {
        self.dev = Some(dev.into());
        self
    }

    /// The metric (`metric N`).
    pub fn metric(mut self, metric: u32) -> Self {
        self.metric = Some(metric);
        self
    }

    /// The table (`table N`, default main = 254).
    pub fn table(mut self, table: u32) -> Self {
        self.table = table;
        self
    }

    /// The scope (`scope link|host|global`); by default `link` without a gateway.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The preferred source address (`src ADDR`).
    pub fn src(mut self, src: IpAddr) -> Self {
        self.src = Some(src);
        self
    }

    /// Pretends the gateway is on the link even if no prefix covers it (`onlink`).
    pub fn onlink(mut self) -> Self {
        self.onlink = true;
        self
    }

    /// Replaces a route to the same destination (`ip route replace`).
    pub fn replace(mut self) -> Self {
        self.mode = Mode::Replace;
        self
    }

    /// Adds the route beside any routes to the same destination with the same metric
    /// (`ip route append`): a second default route through another interface, say. Only
    /// the very same route is refused as existing.
    ///
    /// ```
    /// use netplumb::route::Route;
    /// let r = Route::default_v4().via("172.18.0.1".parse().unwrap()).dev(9).metric(100);
    /// assert_eq!(r.append().to_string(), "ip route append default via 172.18.0.1 dev if9 metric 100");
    /// ```
    pub fn append(mut self) -> Self {
        self.mode = Mode::Append;
        self
    }

    /// Deletes the route instead (`ip route del`).
    pub fn delete(mut self) -> Self {
        self.mode = Mode::Del;
        self
    }

    fn effective_scope(&self) -> u8 {
        match (self.scope, self.mode) {
            (Some(s), _) => s.raw(),
            (None, Mode::Del) => 255, // RT_SCOPE_NOWHERE: match any scope, as `ip route del`
            (None, _) if self.via.is_none() && self.dev.is_some() => wr::RT_SCOPE_LINK,
            (None, _) => wr::RT_SCOPE_UNIVERSE,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.mode {
            Mode::Add => "add",
            Mode::Append => "append",
            Mode::Replace => "replace",
            Mode::Del => "del",
        };
        if self.dst.prefix_len() == 0 {
            write!(f, "ip route {verb} default")?;
        } else {
            write!(f, "ip route {verb} {}", self.dst)?;
        }
        if let Some(g) = self.via {
            write!(f, " via {g}")?;
        }
        if let Some(d) = self.dev {
            write!(f, " dev {d}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        if self.table != TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        match self.scope {
            Some(Scope::Link) => f.write_str(" scope link")?,
            Some(Scope::Host) => f.write_str(" scope host")?,
            Some(Scope::Universe) => f.write_str(" scope global")?,
            None => {}
        }
        if let Some(s) = self.src {
            write!(f, " src {s}")?;
        }
        if self.onlink {
            f.write_str(" onlink")?;
        }
        Ok(())
    }
}

impl Request for Route {
    fn op(&self) -> Op {
        match self.mode {
            Mode::Add | Mode::Append => Op::AddRoute,
            Mode::Replace => Op::ReplaceRoute,
            Mode::Del => Op::DelRoute,
        }
    }

    fn validate(&self) -> Result<()> {
        let v4 = self.dst.addr().is_ipv4();
        if self.dst.trunc() != self.dst {
            return Err(Error::invalid(
                "destination",
                self.dst,
                "host bits set (use the network address)",
            ));
        }
        if let Some(g) = self.via {
            if g.is_ipv4() != v4 {
                return Err(Error::invalid(
                    "gateway",
                    g,
                    "family differs from the destination",
                ));
            }
        }
        if let Some(s) = self.src {
            if s.is_ipv4() != v4 {
                return Err(Error::invalid(
                    "source",
                    s,
                    "family differs from the destination",
                ));
            }
        }
        if let Some(d) = self.dev {
            d.check()?;
        }
        if self.mode != Mode::Del && self.via.is_none() && self.dev.is_none() {
            return Err(Error::invalid(
                "route",
                self.dst,
                "needs a gateway (via) or a device (dev)",
            ));
        }
        if self.table == 0 {
            return Err(Error::invalid("table", 0, "must not be 0"));
        }
        Ok(())
    }

    #[inline]
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        let (ty, flags, protocol, kind) = match self.mode {
            Mode::Add => (
                wr::RTM_NEWROUTE,
                NlmF::NEW_EXCL,
                wr::RTPROT_BOOT,
                wr::RTN_UNICAST,
            ),
            Mode::Append => (
                wr::RTM_NEWROUTE,
                NlmF::NEW_APPEND,
                wr::RTPROT_BOOT,
                wr::RTN_UNICAST,
            ),
            Mode::Replace => (
                wr::RTM_NEWROUTE,
                NlmF::NEW_REPLACE,
                wr::RTPROT_BOOT,
                wr::RTN_UNICAST,
            ),
            Mode::Del => (wr::RTM_DELROUTE, NlmF::CHANGE, 0, 0),
        };
        let msg = RouteMsg {
            family: wire::addr::family_of(&self.dst.addr()),
            dst: (self.dst.prefix_len() != 0).then(|| self.dst.addr()),
            dst_len: self.dst.prefix_len(),
            table: self.table,
            protocol,
            scope: self.effective_scope(),
            kind,
            flags: if self.onlink { wr::RTNH_F_ONLINK } else { 0 },
            gateway: self.via,
            oif: self.dev.map(|d| d.index),
            metric: self.metric,
            prefsrc: self.src,
        };
        wr::route_msg(buf, ty, flags, seq, &msg);
    }
}

/// A route as a dump reports it (`ip route show table all`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteInfo {
    /// The destination (`0.0.0.0/0` or `::/0` for default).
    pub dst: IpNet,
    /// The gateway.
    pub via: Option<IpAddr>,
    /// The output link's index.
    pub oif: Option<u32>,
    /// The metric.
    pub metric: Option<u32>,
    /// The table.
    pub table: u32,
    /// `rtm_scope`.
    pub scope: u8,
    /// `rtm_protocol` (2 kernel, 3 boot, 4 static).
    pub protocol: u8,
    /// `rtm_type` (1 unicast, 2 local, 3 broadcast).
    pub kind: u8,
    /// The preferred source.
    pub src: Option<IpAddr>,
}

impl RouteInfo {
    /// A default route.
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some((*v).into()),
        RouteAddress::Inet6(v) => Some((*v).into()),
        _ => None,
    }
}

/// Decodes an `RTM_NEWROUTE` message of a route dump; other messages give `None`.
pub(crate) fn parse_route(m: &RawMsg<'_>) -> Result<Option<RouteInfo>> {
    if m.ty != wr::RTM_NEWROUTE {
        return Ok(None);
    }
    let msg = RouteMessage::parse(m.payload)
        .map_err(|_| Error::Protocol(wire::Error::BadLength("route message")))?;
    let h = &msg.header;
    let unspec: IpAddr = match u8::from(h.address_family) {
        wire::addr::AF_INET => Ipv4Addr::UNSPECIFIED.into(),
        wire::addr::AF_INET6 => Ipv6Addr::UNSPECIFIED.into(),
        _ => return Ok(None),
    };
    let mut r = RouteInfo {
        dst: IpNet::new(unspec, 0).unwrap_or_default(),
        via: None,
        oif: None,
        metric: None,
        table: h.table as u32,
        scope: u8::from(h.scope),
        protocol: u8::from(h.protocol),
        kind: u8::from(h.kind),
        src: None,
    };
    for a in &msg.attributes {
        match a {
            RouteAttribute::Destination(d) => {
                if let Some(ip) = ip_of(d) {
                    r.dst = IpNet::new(ip, h.destination_prefix_length).unwrap_or(r.dst);
                }
            }
            RouteAttribute::Gateway(g) => r.via = ip_of(g),
            RouteAttribute::Oif(o) => r.oif = Some(*o),
            RouteAttribute::Priority(p) => r.metric = Some(*p),
            RouteAttribute::Table(t) => r.table = *t,
            RouteAttribute::PrefSource(s) => r.src = ip_of(s),
            _ => {}
        }
    }
    Ok(Some(r))
}

impl Rtnl {
    /// The routes of every table (`ip route show table all`, `ip -6 route show table all`),
    /// IPv4 then IPv6.
    pub fn routes(&mut self) -> Result<Vec<RouteInfo>> {
        let mut all = Vec::new();
        for fam in [wire::addr::AF_INET, wire::addr::AF_INET6] {
            let enc = move |b: &mut MsgBuf, s| wr::dump_routes(b, s, fam);
            all.extend(self.dump("routes", Op::GetRoute, &enc, &mut parse_route)?);
        }
        Ok(all)
    }

    /// The routes of the main table (`ip route show`; `ip -6 route show`).
    pub fn main_routes(&mut self) -> Result<Vec<RouteInfo>> {
        let mut v = self.routes()?;
        v.retain(|r| r.table == TABLE_MAIN);
        Ok(v)
    }
}
