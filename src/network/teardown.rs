//! Disconnecting containers and removing networks: [`Teardown`], the plan worked out
//! before the first change, and the teardown steps with their exact inverses.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

use ipnet::IpNet;

use super::files::{self, ContainerFiles, HostsFile};
use super::host::{Host, LEFT_GROUP};
use super::names::ipam_name;
use super::oplog;
use super::port_rows::SqlPorts;
use super::random;
use super::rules::port_rules;
use super::shared_ports::{self, rules_of};
use super::state::{rows, Attachment, NetworkInfo};
use crate::addr::Addr;
use crate::error::{Error, Object, Result, ResultExt};
use crate::fault;
use crate::firewall::{self, Firewall, NetworkRules, PortRule};
use crate::ipam::{undo as ipam_undo, IpamError, Owner, Released};
use crate::journal::{atomically, Txn};
use crate::link::{LinkDel, LinkId, LinkSet};
use crate::ports::book::PortBook;
use crate::ports::{PortAllocator, PublishedPort};
use crate::rtnl::Rtnl;

impl Host {
    /// Disconnects a container (`docker network disconnect`), all or nothing. Idempotent:
    /// a container that is not connected, or whose links are already gone, is not an error.
    pub fn disconnect(&mut self, network: &str, container: &str) -> Result<()> {
        self.disconnect_many(network, &[container])
    }

    /// Disconnects many containers of one network at once, all or nothing: their records
    /// go in one transaction, their ports in one firewall batch and one registry change,
    /// and their veths in one kernel unregister batch instead of one RCU grace period
    /// (~16 ms) each. The order, and what undoes each step, is described in the [`network`](crate::network) module docs.
    pub fn disconnect_many(&mut self, network: &str, containers: &[&str]) -> Result<()> {
        let started = Instant::now();
        let r = self.disconnect_checked(network, containers);
        oplog::finish(
            started,
            &r,
            || {
                format!(
                    "disconnect of {} from network {network}",
                    oplog::list(containers)
                )
            },
            |gone| match gone.as_slice() {
                [] => format!(
                    "disconnect from network {network}: {} not connected",
                    oplog::list(containers)
                ),
                gone => format!("disconnected from network {network}: {}", gone.join(", ")),
            },
        );
        r.map(drop)
    }

    /// The disconnect; returns what was disconnected, as `ID (NAME) ADDRESSES`.
    fn disconnect_checked(&mut self, network: &str, containers: &[&str]) -> Result<Vec<String>> {
        let Some((td, gone)) = self.plan_disconnect(network, containers)? else {
            return Ok(Vec::new());
        };
        atomically(|tx| self.teardown(&td, tx))?;
        Ok(gone)
    }

    /// Reads and works out everything a disconnect of `containers` changes, and names the
    /// connected ones as `ID (NAME) ADDRESSES`; `None` when none of them is connected.
    fn plan_disconnect(
        &mut self,
        network: &str,
        containers: &[&str],
    ) -> Result<Option<(Teardown, Vec<String>)>> {
        let mut atts = Vec::new();
        for c in containers {
            if let Some(a) = rows::attachment(&self.db(), network, c)? {
                atts.push(a);
            }
        }
        if atts.is_empty() {
            return Ok(None);
        }
        let net = self.defs.get(network)?;
        let leaving = |a: &Attachment| atts.iter().any(|b| b.container == a.container);
        let mut td = Teardown {
            network: network.to_owned(),
            containers: Some(atts.iter().map(|a| a.container.clone()).collect()),
            ..Teardown::default()
        };
        if let Some(net) = &net {
            if !net.icc || atts.iter().any(|a| !a.links.is_empty()) {
                let all = self.attachments(Some(network))?;
                let rest: Vec<Attachment> = all.iter().filter(|a| !leaving(a)).cloned().collect();
                let (new, old) = (self.rules(net, &rest), self.rules(net, &all));
                td.rules = (new != old).then_some((new, old));
            }
        }
        let peers: Vec<Attachment> = rows::with_files(&self.db(), network)?
            .into_iter()
            .filter(|p| !leaving(p))
            .collect();
        let names: Vec<&str> = atts.iter().map(|a| a.name.as_str()).collect();
        td.hosts = hosts_edits(&peers, &names)?;
        let v6 = net
            .as_ref()
            .map_or(true, |n| n.subnets.iter().any(|s| !s.addr().is_ipv4()));
        self.plan_common(&atts, v6, &mut td)?;
        let veths: Vec<&str> = atts.iter().map(|a| a.host_veth.as_str()).collect();
        self.plan_links(&veths, &mut td)?;
        let gone = atts
            .iter()
            .map(|a| format!("{} ({}) {}", a.container, a.name, oplog::list(&a.addrs)))
            .collect();
        Ok(Some((td, gone)))
    }

    /// The parts of a teardown plan a disconnect and a removal share: ports and leases.
    pub(crate) fn plan_common(
        &mut self,
        atts: &[Attachment],
        v6: bool,
        td: &mut Teardown,
    ) -> Result<()> {
        let one_per_port = self.one_rule_per_port();
        for a in atts {
            let rules = port_rules(&td.network, &a.addrs, &a.ports)?;
            if a.ports.is_empty() {
                continue;
            }
            // The container's attachments on other networks keep the host ports they
            // share with this one (shared_ports.rs).
            let survivors: Vec<Attachment> = rows::of(&self.db(), &a.container)?
                .into_iter()
                .filter(|s| s.network != td.network)
                .collect();
            let (out, next) =
                shared_ports::disconnect_changes(one_per_port, rules, &rules_of(&survivors)?);
            td.port_rules.extend(out);
            td.republish.extend(next);
            let kept: Vec<PublishedPort> = survivors.iter().flat_map(|s| s.ports.clone()).collect();
            td.ports
                .extend(a.ports.iter().filter(|p| !kept.contains(p)).cloned());
        }
        for fam in [false, true].into_iter().filter(|f| !f || v6) {
            let name = ipam_name(&td.network, fam);
            let net = match self.ipam.network(&name) {
                Ok(n) => n,
                Err(crate::ipam::IpamError::NetworkNotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            for a in atts {
                let owner = Owner::new(a.container.clone(), a.ifname.clone());
                if self.ipam.lease_of(&name, &owner)?.is_some() {
                    td.leases.push((name.clone(), owner));
                }
            }
            td.ipam_nets.push(net);
        }
        Ok(())
    }

    /// Finds the links named `names` (those still there) for [`Host::teardown_links`],
    /// and, for more than one, a free interface group to delete them as one.
    pub(crate) fn plan_links(&mut self, names: &[&str], td: &mut Teardown) -> Result<()> {
        if let [one] = names {
            if let Some(l) = self.rtnl.link(*one).optional()? {
                td.links.push((l.index, l.name, l.group));
            }
            return Ok(());
        }
        let links = self.rtnl.links()?;
        let wanted: HashSet<&str> = names.iter().copied().collect();
        td.links.extend(
            links
                .iter()
                .filter(|l| wanted.contains(l.name.as_str()))
                .map(|l| (l.index, l.name.clone(), l.group)),
        );
        // Processes deleting at once must not pick the same group: start at a place of
        // our own, and skip the groups in use.
        let used: HashSet<u32> = links.iter().map(|l| l.group).collect();
        let mut g = BULK_GROUP_BASE + (random::number() & 0xf_ffff);
        while used.contains(&g) {
            g = BULK_GROUP_BASE + (g.wrapping_add(1) & 0xf_ffff);
        }
        td.group = g;
        Ok(())
    }

    /// Carries out a [`Teardown`], recording the inverse of every step but the last in `tx`.
    pub(crate) fn teardown(&mut self, td: &Teardown, tx: &mut Txn) -> Result<()> {
        self.teardown_state(td, tx)?;
        if td.containers.is_none() {
            fault::point("definition")?;
            if let Some(text) = self.defs.remove(&td.network)? {
                let (defs, name) = (self.defs.clone(), td.network.clone());
                tx.record(format!("restore the definition of {name}"), move || {
                    defs.restore(&name, &text)
                });
            }
        }
        self.teardown_firewall(td, tx)?;
        for e in &td.hosts {
            fault::point("peer files")?;
            files::rewrite_in_place(&e.dir, ContainerFiles::HOSTS, &e.after)?;
            let (dir, before) = (e.dir.clone(), e.before.clone());
            tx.record(format!("restore {}/hosts", dir.display()), move || {
                files::rewrite_in_place(&dir, ContainerFiles::HOSTS, &before)
            });
        }
        for &(dev, a) in &td.bridge_addrs {
            fault::point("gateway address")?;
            self.rtnl.execute(&Addr::new(dev, a).delete()).or_gone()?;
            let ns = self.netns.clone();
            tx.record(format!("ip addr add {a} dev {dev}"), move || {
                Rtnl::open_in(&ns)?.execute(&gateway_addr(dev, a))
            });
        }
        self.teardown_links(td, tx)
    }

    /// The records, the leases (and for a removal the IPAM networks) and the host ports,
    /// in one transaction of the runtime database; its inverse puts all of them back, as
    /// they were (the leases' owners and the allocation cursors too), in one transaction.
    fn teardown_state(&mut self, td: &Teardown, tx: &mut Txn) -> Result<()> {
        let ipam = self.ipam.clone();
        let mut db = ipam.store().begin_tx()?;
        fault::point("record")?;
        let only: Option<Vec<&str>> = td
            .containers
            .as_ref()
            .map(|v| v.iter().map(String::as_str).collect());
        let taken = rows::take(db.conn(), &td.network, only.as_deref())?;
        let mut last: HashMap<&str, Option<IpAddr>> = td
            .ipam_nets
            .iter()
            .map(|n| (n.name.as_str(), n.last_released))
            .collect();
        let mut released = Vec::new();
        for (name, owner) in &td.leases {
            fault::point("lease")?;
            let l = match ipam.release_owner_in(&mut db, name, owner) {
                Ok(Released::Freed(l)) => l,
                Ok(Released::NotHeld) | Err(IpamError::NetworkNotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let prev = last.insert(name, Some(l.address)).flatten();
            released.push((name.clone(), owner.clone(), l.address, prev));
        }
        let mut removed = Vec::new();
        for n in td.ipam_nets.iter().filter(|_| td.containers.is_none()) {
            fault::point("ipam network")?;
            match ipam.remove_network_in(&mut db, &n.name) {
                Ok(()) => removed.push(n.clone()),
                Err(IpamError::NetworkNotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !td.ports.is_empty() {
            fault::point("port registry")?;
            PortAllocator::release_in(&mut SqlPorts { conn: db.conn() }, &td.ports)?;
        }
        db.finish()?;
        let ports = td.ports.clone();
        tx.record(
            format!(
                "restore the records, leases and ports of {} container(s) of {}",
                taken.attachments(),
                td.network
            ),
            move || {
                let mut db = ipam.store().begin_tx()?;
                for n in &removed {
                    ipam_undo::recreate(&mut db, n)?;
                }
                for (name, owner, addr, prev) in released.iter().rev() {
                    ipam_undo::rehold(&mut db, name, owner, *addr, *prev)?;
                }
                let mut book = SqlPorts { conn: db.conn() };
                for p in &ports {
                    book.insert(*p)?;
                }
                rows::restore(db.conn(), &taken)?;
                Ok(db.finish()?)
            },
        );
        Ok(())
    }

    /// The firewall steps. Each inverse is recorded before its step: a backend that
    /// writes each address family on its own may fail halfway, and the inverses are
    /// harmless where nothing changed.
    fn teardown_firewall(&mut self, td: &Teardown, tx: &mut Txn) -> Result<()> {
        let (ns, backend) = (self.netns.clone(), self.fw.backend());
        if let Some(rules) = &td.removal {
            // Removing a network's rules removes its published ports too.
            fault::point("firewall")?;
            let (ns, rules, ports) = (ns.clone(), rules.clone(), td.port_rules.clone());
            tx.record(
                format!("restore the firewall of {}", td.network),
                move || {
                    let mut fw = firewall::open(backend, &ns)?;
                    fw.add_network(&rules)?;
                    if ports.is_empty() {
                        return Ok(());
                    }
                    fw.publish(&ports)
                },
            );
            self.fw.remove_network(&td.network)?;
            return self.republish(&td.republish, tx);
        }
        if !td.port_rules.is_empty() {
            fault::point("firewall ports")?;
            let (ns, rules) = (ns.clone(), td.port_rules.clone());
            tx.record(format!("publish {} port(s)", rules.len()), move || {
                firewall::open(backend, &ns)?.publish(&rules)
            });
            self.fw.unpublish(&td.port_rules)?;
        }
        if let Some((new, old)) = &td.rules {
            fault::point("firewall rules")?;
            let (ns, old) = (ns.clone(), old.clone());
            tx.record(
                format!("restore firewall rules of {}", td.network),
                move || firewall::open(backend, &ns)?.add_network(&old),
            );
            self.fw.add_network(new)?;
        }
        self.republish(&td.republish, tx)
    }

    /// The last step: deletes the links in one request (a veth takes its container end,
    /// address, routes and neighbours with it). No inverse could give them back their
    /// interface indexes, which is why nothing comes after this step.
    fn teardown_links(&mut self, td: &Teardown, tx: &mut Txn) -> Result<()> {
        if td.links.is_empty() {
            return Ok(());
        }
        // A disconnect with deferral on: down and into the reaper's group, deleted in the
        // background. (A network removal deletes at once: its bridge goes too.)
        if let Some(reaper) = self.reaper.as_ref().filter(|_| td.containers.is_some()) {
            fault::point("links")?;
            let links: Vec<(u32, u32)> = td.links.iter().map(|&(i, _, g)| (i, g)).collect();
            return reaper.defer(&mut self.rtnl, &links);
        }
        if self.leave && td.containers.is_some() {
            return self.leave_links(td, tx);
        }
        // A network removal deletes its links with those disconnects left for later
        // (`Host::leave_link_deletion`, any network's, any process's): one unregister
        // batch, one set of the kernel's grace periods, where two requests paid two.
        let group = if td.removal.is_some() {
            LEFT_GROUP
        } else {
            td.group
        };
        let all = match td.links.as_slice() {
            [(_, name, _)] if td.removal.is_none() => {
                fault::point("links")?;
                return self.rtnl.execute(&LinkDel::new(name.as_str())).or_gone();
            }
            all => all,
        };
        fault::point("link group")?;
        let moves: Vec<LinkSet> = all
            .iter()
            .map(|(i, n, _)| LinkSet::new(LinkId::named(*i, n)).group(group))
            .collect();
        let moved = self.rtnl.execute_batch(&moves);
        let (ns, back) = (
            self.netns.clone(),
            all.iter().map(|&(i, _, g)| (i, g)).collect::<Vec<_>>(),
        );
        tx.record(
            format!("put {} link(s) back in their groups", back.len()),
            move || {
                let reqs: Vec<LinkSet> = back
                    .iter()
                    .map(|&(i, g)| LinkSet::new(i).group(g))
                    .collect();
                Rtnl::open_in(&ns)?.execute_batch(&reqs).or_gone()
            },
        );
        moved.or_gone()?;
        fault::point("links")?;
        // `ip link del group N`: one unregister batch for all of them.
        self.rtnl.execute(&LinkDel::group(group)).or_gone()
    }
}

impl Host {
    /// A disconnect with [`Host::leave_link_deletion`] on: the links down and into
    /// [`LEFT_GROUP`], deleted later; the undo puts them back up in their groups.
    fn leave_links(&mut self, td: &Teardown, tx: &mut Txn) -> Result<()> {
        fault::point("links")?;
        let reqs: Vec<LinkSet> = td
            .links
            .iter()
            .map(|(i, n, _)| LinkSet::new(LinkId::named(*i, n)).group(LEFT_GROUP).down())
            .collect();
        let r = self.rtnl.execute_batch(&reqs).or_gone();
        let (ns, back) = (
            self.netns.clone(),
            td.links.iter().map(|&(i, _, g)| (i, g)).collect::<Vec<_>>(),
        );
        tx.record(format!("put {} link(s) back up", back.len()), move || {
            let reqs: Vec<LinkSet> = back
                .iter()
                .map(|&(i, g)| LinkSet::new(i).group(g).up())
                .collect();
            Rtnl::open_in(&ns)?.execute_batch(&reqs).or_gone()
        });
        r?;
        self.left = true;
        Ok(())
    }

    /// Removes a network (`docker network rm`), all or nothing. Refuses while containers
    /// are attached unless `force`, which disconnects them in the same teardown. A network
    /// that is not there is not an error.
    pub fn remove_network(&mut self, name: &str, force: bool) -> Result<()> {
        let started = Instant::now();
        let r = self.remove_checked(name, force);
        oplog::finish(
            started,
            &r,
            || format!("network remove {name}"),
            |r| match r {
                None => format!("network remove {name}: no such network"),
                Some((bridge, n)) => format!(
                    "network {name} removed: bridge {bridge}, {n} container(s) disconnected"
                ),
            },
        );
        r.map(drop)
    }

    /// The removal; returns the bridge and how many containers went with it.
    fn remove_checked(&mut self, name: &str, force: bool) -> Result<Option<(String, usize)>> {
        let Some(info) = self.defs.get(name)? else {
            return Ok(None);
        };
        let atts = self.attachments(Some(name))?;
        if !atts.is_empty() && !force {
            return Err(Error::Busy {
                object: Object::Network,
                name: name.to_owned(),
                endpoints: atts.iter().map(|a| a.name.clone()).collect(),
            });
        }
        let td = self.plan_removal(&info, &atts)?;
        atomically(|tx| self.teardown(&td, tx))?;
        self.bridges.remove(&info.bridge);
        Ok(Some((info.bridge, atts.len())))
    }

    /// Reads and works out everything removing network `info` with `atts` changes: as a
    /// disconnect of all of them, plus the network's firewall rules, IPAM networks and
    /// records, and its bridge (deleted with the veths in one request when netplumb made
    /// it; else only the gateway addresses netplumb put on it come off).
    fn plan_removal(&mut self, info: &NetworkInfo, atts: &[Attachment]) -> Result<Teardown> {
        let mut td = Teardown {
            network: info.name.clone(),
            removal: Some(self.rules(info, atts)),
            ..Teardown::default()
        };
        let names: Vec<&str> = atts.iter().map(|a| a.name.as_str()).collect();
        td.hosts = hosts_edits(atts, &names)?;
        self.plan_common(atts, true, &mut td)?;
        let mut links: Vec<&str> = atts.iter().map(|a| a.host_veth.as_str()).collect();
        let bridge = self.rtnl.link(info.bridge.as_str()).optional()?;
        match &bridge {
            Some(_) if info.bridge_created => links.push(&info.bridge),
            Some(br) => {
                let present = self.rtnl.addrs(Some(br.into()))?;
                td.bridge_addrs = info
                    .bridge_addrs
                    .iter()
                    .filter(|a| present.iter().any(|p| p.addr == **a))
                    .map(|a| (br.index, *a))
                    .collect();
            }
            None => {}
        }
        self.plan_links(&links, &mut td)?;
        Ok(td)
    }
}

/// First interface group tried for bulk deletion, well away from the small numbers
/// `/etc/iproute2/group` and admins use (and from [`Rtnl::delete_links`]' own).
const BULK_GROUP_BASE: u32 = 0x6e80_0000;

/// Everything a disconnect or a network removal changes, read and worked out before the
/// first change, so that no lookup or check can fail once the teardown has begun.
///
/// The order, and what undoes each step ([`Host::teardown`]):
/// 1. the records, the leases (for a removal also the IPAM networks) and the host ports,
///    in one transaction of the runtime database (undo: all of them put back as they
///    were, the leases' owners and allocation cursors too, in one transaction). First,
///    so that from then on the containers are not "connected" and a crash leaves only
///    what [`Host::gc`] recognises as unexplained (veths, firewall ports, `hosts` lines);
/// 2. for a removal, the network's definition (undo: the file as it was);
/// 3. the firewall: published ports, then the network's rules (nothing reaches a
///    half-removed container; undo: the same rules and ports again);
/// 4. the peers' `hosts` files (undo: the text they had);
/// 5. gateway addresses on a bridge netplumb did not create (undo: added again);
/// 6. last, the links, in one kernel request. Deleting a veth deletes its container end
///    with its address, routes and neighbours; re-creating it would give new interface
///    indexes, so this is the one step without an inverse, and nothing after it can fail.
#[derive(Debug, Default)]
pub(crate) struct Teardown {
    pub(crate) network: String,
    /// The containers leaving; `None`: every one, and the network itself.
    pub(crate) containers: Option<Vec<String>>,
    /// For a removal, the network's firewall rules as they are.
    pub(crate) removal: Option<NetworkRules>,
    pub(crate) port_rules: Vec<PortRule>,
    /// Ports of the leaving containers' other networks that take over host ports the
    /// leaving attachments held in the firewall (shared_ports.rs), published last.
    pub(crate) republish: Vec<PortRule>,
    pub(crate) ports: Vec<PublishedPort>,
    /// The network's rules after and before, when the leaving containers change them.
    pub(crate) rules: Option<(NetworkRules, NetworkRules)>,
    pub(crate) hosts: Vec<HostsEdit>,
    /// Leases to release: the IPAM network and the owner.
    pub(crate) leases: Vec<(String, Owner)>,
    /// The IPAM networks involved, as they were.
    pub(crate) ipam_nets: Vec<crate::ipam::Network>,
    /// Gateway addresses to take off a bridge netplumb did not create: (ifindex, address).
    pub(crate) bridge_addrs: Vec<(u32, IpNet)>,
    /// Links to delete: (ifindex, name, interface group).
    pub(crate) links: Vec<(u32, String, u32)>,
    /// The free interface group to delete several links as one.
    pub(crate) group: u32,
}

/// A peer's `hosts` file, before and after the teardown.
#[derive(Debug)]
pub(crate) struct HostsEdit {
    dir: PathBuf,
    before: String,
    after: String,
}

/// The `hosts` edits that take `names` out of the files of `peers` (those that list them).
/// A peer whose file cannot be read is skipped: there is nothing to keep current.
pub(crate) fn hosts_edits(peers: &[Attachment], names: &[&str]) -> Result<Vec<HostsEdit>> {
    let mut out = Vec::new();
    for p in peers {
        let Some(dir) = &p.files else { continue };
        let Ok(Some(before)) = ContainerFiles::new(dir).read(ContainerFiles::HOSTS) else {
            continue;
        };
        let mut h = HostsFile::parse(&before);
        let mut changed = false;
        for n in names.iter().filter(|n| **n != p.name) {
            changed |= h.remove_peer(n);
        }
        if changed {
            let after = h.render();
            out.push(HostsEdit {
                dir: dir.clone(),
                before,
                after,
            });
        }
    }
    Ok(out)
}

/// A gateway address, added as `create_network` adds it.
pub(crate) fn gateway_addr(dev: u32, net: IpNet) -> Addr {
    if net.addr().is_ipv4() {
        Addr::new(dev, net).auto_broadcast()
    } else {
        Addr::new(dev, net).nodad()
    }
}
