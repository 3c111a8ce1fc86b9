//! Connecting containers to networks and disconnecting them.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Instant;

use super::clash;
use super::container::{Container, StaticRoute};
use super::host::Host;
use super::names::{host_veth_name, ipam_name};
use super::oplog;
use super::port_rows::SqlPorts;
use super::reconnect;
use super::rules::port_rules;
use super::runtime;
use super::shared_ports::{self, rules_of, SharedBook};
use super::state::{rows, Attachment, NetworkInfo};
use crate::addr::Addr;
use crate::error::{Error, Object, Result, ResultExt};
use crate::fault;
use crate::firewall::{self, Firewall};
use crate::ipam::{IpamError, Owner, SqliteTx};
use crate::journal::{atomically, Txn};
use crate::link::{AddrGenMode, BridgePort, Dev, Link, LinkDel, LinkSet, MacAddr, Veth};
use crate::netns::Netns;
use crate::ports::PublishedPort;
use crate::request::Request;
use crate::route::Route;
use crate::rtnl::Rtnl;
use crate::sysctl::Sysctl;

impl Host {
    /// Connects a container to a network (`docker network connect`), all or nothing.
    ///
    /// Connecting a container that is already connected, with the same request, returns
    /// its attachment. A request that differs in anything the attachment records (the
    /// namespace, the name, the interface name, a requested address or MAC, the ports,
    /// exposed ports, links, aliases, files folder or hostname) is refused with
    /// [`Error::Conflict`] naming what differs, and changes nothing: a container restarted
    /// with a fresh namespace is disconnected first, then connected again. A container
    /// whose name another container of the network has is refused with [`Error::Exists`]
    /// (object [`Object::Endpoint`](crate::error::Object::Endpoint)), as Docker refuses it.
    ///
    /// The lease, the published ports and the attachment record are written in one
    /// transaction of the runtime database, committed as the last step: a failure or a
    /// crash at any point leaves none of them (and [`Host::gc`] recognises the links and
    /// firewall rules a crash leaves).
    pub fn connect(&mut self, network: &str, ctr: &Container) -> Result<Attachment> {
        let started = Instant::now();
        let r = self.connect_checked(network, ctr);
        oplog::finish(
            started,
            &r,
            || format!("connect of container {} to network {network}", ctr.id),
            |a| oplog::connected(a, &ctr.netns),
        );
        r
    }

    fn connect_checked(&mut self, network: &str, ctr: &Container) -> Result<Attachment> {
        ctr.validate()?;
        let net = self.network(network)?;
        if net.internal && !ctr.ports.is_empty() {
            return Err(Error::invalid(
                "ports",
                network,
                "an internal network publishes no ports",
            ));
        }
        if net.subnets.is_empty() && !ctr.ports.is_empty() {
            return Err(Error::invalid(
                "ports",
                network,
                "a network without addresses publishes no ports",
            ));
        }
        let ipam = self.ipam.clone();
        let mut db = ipam.store().begin_tx()?;
        if let Some(a) = rows::attachment(db.conn(), network, &ctr.id)? {
            drop(db);
            return self.same_request(&a, ctr).map(|()| a);
        }
        reconnect::name_free(db.conn(), network, ctr)?;
        atomically(|tx| {
            let att = self.connect_steps(&net, ctr, &mut db, tx)?;
            db.finish()?;
            Ok(att)
        })
    }

    fn connect_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        db: &mut SqliteTx<'_>,
        tx: &mut Txn,
    ) -> Result<Attachment> {
        let mut att = Attachment {
            network: net.name.clone(),
            container: ctr.id.clone(),
            name: ctr.name.clone(),
            ifname: ctr.ifname.clone(),
            netns: netns_path(&ctr.netns),
            expose: ctr.expose.clone(),
            links: ctr.links.clone(),
            aliases: ctr.aliases.clone(),
            files: ctr.files.clone(),
            hostname: ctr
                .hostname
                .clone()
                .unwrap_or_else(|| ctr.id.chars().take(12).collect()),
            ..Attachment::default()
        };
        self.lease_steps(net, ctr, &mut att, db)?;
        self.bridge_again(net, db, tx)?;
        self.veth_steps(net, ctr, &mut att, tx)?;
        self.inside_steps(net, ctr, &att, db, tx)?;
        self.port_steps(net, ctr, &mut att, db, tx)?;
        self.files_steps(net, ctr, &att, db, tx)?;
        fault::point("record")?;
        rows::put(db.conn(), &att)?;
        if !ctr.links.is_empty() || !net.icc {
            fault::point("links")?;
            self.apply_rules(net, &ctr.id, db, tx)?;
        }
        Ok(att)
    }

    /// The container's addresses, in the connect's transaction (no undo: rolling the
    /// transaction back releases them). An IPAM network missing from the runtime
    /// database (removed by an interrupted operation) is seeded again from the
    /// network's definition first.
    fn lease_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &mut Attachment,
        db: &mut SqliteTx<'_>,
    ) -> Result<()> {
        let owner = Owner::new(ctr.id.clone(), ctr.ifname.clone());
        for s in net.subnets.clone() {
            let v6 = !s.addr().is_ipv4();
            let name = ipam_name(&net.name, v6);
            fault::point("lease")?;
            let want = if v6 { ctr.ip6 } else { ctr.ip };
            let lease = match self.ipam.allocate_in(db, &name, &owner, want) {
                Err(IpamError::NetworkNotFound { .. }) => {
                    for n in self.defs.ipam_of(&net.name)? {
                        runtime::seed(db, &n)?;
                    }
                    self.ipam.allocate_in(db, &name, &owner, want)?
                }
                r => r?,
            };
            att.addrs.push(lease.cidr());
        }
        Ok(())
    }

    /// Makes the network's bridge, gateway addresses, forwarding and firewall rules again
    /// when the bridge is gone (after a reboot, which the definitions outlive), as
    /// `create_network` made them.
    fn bridge_again(
        &mut self,
        net: &NetworkInfo,
        db: &mut SqliteTx<'_>,
        tx: &mut Txn,
    ) -> Result<()> {
        match self.bridge_index(&net.bridge, false) {
            Err(e) if e.is_not_found() => {}
            r => return r.map(drop),
        }
        log::info!(
            "network {}: bridge {} is gone, making it again",
            net.name,
            net.bridge
        );
        let mut info = net.clone();
        info.bridge_addrs.clear();
        self.bridge_steps(&mut info, false, tx)?;
        self.forwarding_steps(&info, tx)?;
        let atts = rows::attachments(db.conn(), Some(&net.name))?;
        let had = self.fw.state()?.networks.contains(&net.name);
        self.fw.add_network(&self.rules(net, &atts))?;
        if !had {
            let (ns, backend, name) = (self.netns.clone(), self.fw.backend(), net.name.clone());
            tx.record(format!("remove firewall rules of {name}"), move || {
                firewall::open(backend, &ns)?.remove_network(&name)
            });
        }
        self.bridge_index(&net.bridge, true).map(drop)
    }

    fn veth_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &mut Attachment,
        tx: &mut Txn,
    ) -> Result<()> {
        let mac = ctr.mac.unwrap_or_else(|| match att.addrs.first() {
            Some(a) => MacAddr::from_ip(a.addr()),
            // No address to derive it from: a random, locally administered one.
            None => super::random::mac(),
        });
        att.mac = Some(mac);
        fault::point("veth")?;
        self.add_veth(net, ctr, att, mac)?;
        // Deleting the host end deletes the container end, its address and its routes.
        tx.push(LinkDel::new(att.host_veth.as_str()).in_netns(&self.netns));
        fault::point("bridge port")?;
        // A bridge port forwards frames; an IPv6 stack of its own (link-local address,
        // duplicate address detection, multicast reports, routes in the host's table that
        // every later link change walks) would only make each connect slower than the
        // one before. Off before the port goes up.
        Sysctl::disable_ipv6(&self.netns, &att.host_veth)?;
        // Hairpin lets a container reach its own published ports through a host address;
        // with ICC off, ports without links are isolated (no frames between them at all).
        let isolated = !net.icc && ctr.links.is_empty() && ctr.expose.is_empty();
        let port: [Box<dyn Request>; 2] = [
            Box::new(
                BridgePort::new(att.host_veth.as_str())
                    .hairpin(true)
                    .isolated(isolated),
            ),
            Box::new(LinkSet::new(att.host_veth.as_str()).up()),
        ];
        self.rtnl.execute_batch(&port)?;
        Ok(())
    }

    /// Makes the veth pair, its peer straight in the container, the host end a port of
    /// the bridge; a host end name taken gets another (a salt), up to 8 times.
    fn add_veth(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &mut Attachment,
        mac: MacAddr,
    ) -> Result<()> {
        let mut br = self
            .bridge_index(&net.bridge, false)
            .map_err(|e| no_bridge(net, e))?;
        let (mut salt, mut looked_up, mut swept) = (0, false, false);
        loop {
            att.host_veth = host_veth_name(&ctr.id, &net.name, salt);
            // One request: the pair, the peer straight in the container, the host end up
            // and already a port of the bridge.
            let mut v = Veth::new(&att.host_veth)
                .controller(Dev::named(br, &net.bridge))
                .queues(1)
                .peer(&ctr.ifname)
                .peer_netns(&ctr.netns)
                .peer_mac(mac);
            if let Some(m) = net.mtu {
                v = v.mtu(m).peer_mtu(m);
            }
            match self.rtnl.execute(&v) {
                // A deferred deletion of this container's last veth may still hold a name.
                Err(e)
                    if e.is_exists()
                        && (self.left || self.reaper.as_ref().is_some_and(|r| r.pending())) =>
                {
                    self.left = false;
                    self.flush_link_deletions()?;
                }
                // Another process's disconnect may have left a veth of this name for later
                // (`Host::leave_link_deletion`): the links left are deleted, once, and the
                // request tried again.
                Err(e) if e.is_exists() && !swept => {
                    swept = true;
                    self.rtnl
                        .execute(&LinkDel::group(super::host::LEFT_GROUP))
                        .or_gone()?;
                }
                // The container's interface name is taken in its namespace: no salt helps.
                Err(e) if e.is_exists() && self.has_link(&ctr.netns, &ctr.ifname) => {
                    let in_ns = clash::in_netns(&ctr.netns);
                    return Err(clash::exists(Object::Link, &ctr.ifname, in_ns, &e));
                }
                Err(e) if e.is_exists() && salt < 8 => salt += 1,
                Err(e) if e.is_exists() => {
                    let at = clash::IN_HOST.to_owned();
                    return Err(clash::exists(Object::Link, &att.host_veth, at, &e));
                }
                // The cached bridge index may be stale (bridge recreated): look it up once.
                Err(e) if !e.is_exists() && !looked_up => {
                    looked_up = true;
                    let fresh = self
                        .bridge_index(&net.bridge, true)
                        .map_err(|e| no_bridge(net, e))?;
                    if fresh == br {
                        return Err(e);
                    }
                    br = fresh;
                }
                r => break r?,
            }
        }
        Ok(())
    }

    fn inside_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &Attachment,
        db: &mut SqliteTx<'_>,
        tx: &mut Txn,
    ) -> Result<()> {
        let first = rows::of(db.conn(), &ctr.id)?.is_empty();
        fault::point("container link")?;
        let mut inside = self.rtnl_in(&ctr.netns)?;
        let in_ns = clash::in_netns(&ctr.netns);
        let link = inside.link(ctr.ifname.as_str()).map_err(|e| {
            if e.is_not_found() {
                clash::not_found(Object::Link, &ctr.ifname, in_ns.clone(), &e)
            } else {
                e
            }
        })?;
        let lo = inside.link("lo")?;
        fault::point("container address")?;
        // lo and eth0 up, the addresses, the default route: one batch. Deleting the veth
        // undoes all but lo, which goes down again if it was down.
        let mut reqs: Vec<Box<dyn Request>> = vec![Box::new(LinkSet::new(&lo).up())];
        if !att.addrs.iter().any(|a| a.addr().is_ipv6()) {
            // No IPv6 subnet, no IPv6 address, not even a link-local one (as Docker): the
            // link-local's duplicate address probes and multicast reports would be
            // flooded to every port of the bridge, so each connect would cost more than
            // the one before.
            reqs.push(Box::new(
                LinkSet::new(&link).addr_gen_mode(AddrGenMode::None),
            ));
        }
        reqs.push(Box::new(LinkSet::new(&link).up()));
        // What each request adds, for an error that names it: none before the addresses.
        let mut adds = clash::Adds::default();
        for _ in &reqs {
            adds.push(None);
        }
        // Default routes: through the first network (Docker); with a metric, through
        // every network, beside the others' (netavark).
        let defaults = match (ctr.default_route, first, ctr.route_metric) {
            (false, ..) | (true, false, None) => Defaults::None,
            (true, true, _) => Defaults::Add,
            (true, false, Some(_)) => Defaults::Append,
        };
        let routes = (defaults, ctr.route_metric, &ctr.routes[..]);
        addrs_and_routes(net, att, &link, routes, &in_ns, (&mut reqs, &mut adds));
        if !lo.is_up() {
            // Up, lo gets 127.0.0.1/8, which stays when it goes down again.
            let had = inside.addrs(Some((&lo).into()))?;
            let (ns, lo) = (ctr.netns.clone(), lo.index);
            tx.record("ip link set lo down (in the container)", move || {
                let mut r = Rtnl::open_in(&ns)?;
                r.execute(&LinkSet::new(lo).down())?;
                for a in r.addrs(Some(lo.into()))? {
                    if a.addr.addr().is_ipv4() && !had.iter().any(|h| h.addr == a.addr) {
                        r.execute(&Addr::new(lo, a.addr).delete()).or_gone()?;
                    }
                }
                Ok(())
            });
        }
        fault::point("default route")?;
        inside.execute_batch(&reqs).map_err(|e| adds.explain(e))
    }

    fn port_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &mut Attachment,
        db: &mut SqliteTx<'_>,
        tx: &mut Txn,
    ) -> Result<()> {
        if ctr.ports.is_empty() {
            return Ok(());
        }
        fault::point("port allocation")?;
        // With no host binding set, ports without a host address go on every address of
        // each family the network has (both on a dual-stack network).
        let has = |v6: bool| net.subnets.iter().any(|s| s.addr().is_ipv6() == v6);
        let any: IpAddr = if has(false) {
            [0; 4].into()
        } else {
            [0u16; 8].into()
        };
        let alloc = self
            .ports
            .clone()
            .default_host_ip(net.host_binding.unwrap_or(any));
        // The container's attachments on other networks: the host ports they publish are
        // the container's own (shared_ports.rs).
        let others: Vec<Attachment> = rows::of(db.conn(), &ctr.id)?
            .into_iter()
            .filter(|a| a.network != net.name)
            .collect();
        let held: Vec<PublishedPort> = others.iter().flat_map(|a| a.ports.clone()).collect();
        // In the connect's transaction: rolling it back releases them.
        let book = &mut SharedBook {
            inner: SqlPorts { conn: db.conn() },
            held: &held,
        };
        let published = if net.host_binding.is_none() && has(false) && has(true) {
            alloc.publish_dual_stack_in(book, &ctr.ports)?
        } else {
            alloc.publish_in(book, &ctr.ports)?
        };
        let rules = port_rules(&net.name, &att.addrs, &published)?;
        let (rules, take) =
            shared_ports::connect_changes(self.one_rule_per_port(), rules, &rules_of(&others)?);
        fault::point("firewall ports")?;
        let (ns, backend) = (self.netns.clone(), self.fw.backend());
        // Each inverse recorded before its step (a backend may fail halfway; the inverses
        // are harmless where nothing changed).
        if !take.is_empty() {
            let back = take.clone();
            tx.record(format!("publish {} port(s) again", take.len()), move || {
                firewall::open(backend, &ns)?.publish(&back)
            });
            self.fw.unpublish(&take)?;
        }
        let (ns, undo_rules) = (self.netns.clone(), rules.clone());
        tx.record(format!("unpublish {} port(s)", rules.len()), move || {
            firewall::open(backend, &ns)?.unpublish(&undo_rules)
        });
        self.fw.publish(&rules)?;
        att.ports = published;
        Ok(())
    }

    /// Whether namespace `ns` has a link named `name` (`false` when it cannot be told).
    fn has_link(&mut self, ns: &Netns, name: &str) -> bool {
        self.rtnl_in(ns).and_then(|mut r| r.link(name)).is_ok()
    }

    /// Re-applies a network's rules now that `added` is attached (its links count); the
    /// undo re-applies the rules as they were without it.
    fn apply_rules(
        &mut self,
        net: &NetworkInfo,
        added: &str,
        db: &mut SqliteTx<'_>,
        tx: &mut Txn,
    ) -> Result<()> {
        let atts = rows::attachments(db.conn(), Some(&net.name))?;
        self.fw.add_network(&self.rules(net, &atts))?;
        let before: Vec<Attachment> = atts.into_iter().filter(|a| a.container != added).collect();
        let old = self.rules(net, &before);
        let (ns, backend) = (self.netns.clone(), self.fw.backend());
        tx.record(
            format!("restore firewall rules of {}", net.name),
            move || firewall::open(backend, &ns)?.add_network(&old),
        );
        Ok(())
    }
}

/// Which default routes a connect adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Defaults {
    /// None: not the container's first network (and no metric), or not wanted.
    None,
    /// The first network's: refused if the namespace has such a route already.
    Add,
    /// Another network's, beside the default routes the container has.
    Append,
}

/// The container's addresses on `link`, its default routes (`defaults`), and its static
/// routes, each with what it adds (for an error that names it).
fn addrs_and_routes(
    net: &NetworkInfo,
    att: &Attachment,
    link: &Link,
    (defaults, metric, statics): (Defaults, Option<u32>, &[StaticRoute]),
    in_ns: &str,
    (reqs, adds): (&mut Vec<Box<dyn Request>>, &mut clash::Adds),
) {
    let on_link = format!("on {} {in_ns}", link.name);
    for a in &att.addrs {
        let add = if a.addr().is_ipv4() {
            Addr::new(link, *a).auto_broadcast()
        } else {
            Addr::new(link, *a).nodad()
        };
        reqs.push(Box::new(add));
        adds.push(Some((Object::Address, a.to_string(), on_link.clone())));
    }
    if defaults != Defaults::None && !net.internal {
        for g in &net.gateways {
            let r = if g.is_ipv4() {
                Route::default_v4()
            } else {
                Route::default_v6()
            };
            let mut r = r.via(*g).dev(link);
            if let Some(m) = metric {
                r = r.metric(m);
            }
            if defaults == Defaults::Append {
                r = r.append();
            }
            reqs.push(Box::new(r));
            let default = format!("default via {g}");
            adds.push(Some((Object::Route, default, in_ns.to_owned())));
        }
    }
    for (dst, gw, own) in statics {
        let r = Route::new(*dst).via(*gw).dev(link);
        reqs.push(Box::new(match own.or(metric) {
            Some(m) => r.metric(m),
            None => r,
        }));
        adds.push(Some((
            Object::Route,
            format!("{dst} via {gw}"),
            in_ns.to_owned(),
        )));
    }
}

/// A failed lookup of `net`'s bridge, told as the bridge by name.
fn no_bridge(net: &NetworkInfo, e: Error) -> Error {
    if !e.is_not_found() {
        return e;
    }
    let detail = format!("(the bridge of network {}) {}", net.name, clash::IN_HOST);
    clash::not_found(Object::Link, &net.bridge, detail, &e)
}

/// A path that names the namespace for the records: its own path when it is a file that
/// stays (a named namespace), else `/proc/PID/task/TID/ns/net`-like paths are kept as given.
fn netns_path(ns: &Netns) -> PathBuf {
    let p = ns.path().to_path_buf();
    if std::fs::metadata(&p).is_ok_and(|m| m.ino() == ns.inode()) {
        p
    } else {
        PathBuf::new()
    }
}
