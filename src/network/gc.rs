//! [`Host::gc`]: what dead containers and interrupted operations left behind.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use super::files::ContainerFiles;
use super::host::Host;
use super::port_rows::{self, SqlPorts};
use super::rules::port_rules;
use super::state::{Attachment, NetworkInfo};
use crate::error::Result;
use crate::firewall::{Firewall, PortRule};
use crate::ipam::{Owner, StoreTxn};
use crate::ports::{PortAllocator, PublishedPort};

/// What [`Host::gc`] removed.
///
/// With feature `serde`: an object with the fields below (missing ones empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
#[non_exhaustive]
pub struct GcReport {
    /// Attachments of dead containers that were disconnected (`network/container`).
    pub disconnected: Vec<String>,
    /// Host veths on our bridges that no record explained, deleted.
    pub stray_links: Vec<String>,
    /// Address leases released (`network address`).
    pub leases: Vec<String>,
    /// Published ports no record explained, withdrawn (firewall rules, `registry:` entries).
    pub ports: Vec<String>,
    /// Container folders whose `hosts` file lost peers that are gone.
    pub hosts: Vec<PathBuf>,
}

impl Host {
    /// Removes what dead containers and interrupted operations left (`gc`), given the
    /// containers still running (`live`). Run it when no other operation is under way on
    /// these records: at start-up, after a crash.
    ///
    /// 1. Attachments of containers not in `live`, and attachments whose host veth is
    ///    gone (the container's namespace died), are disconnected.
    /// 2. Veths on our bridges that no record explains are deleted (a connect or a
    ///    disconnect that was killed halfway).
    /// 3. Leases that no record explains are released.
    /// 4. Published ports that no record explains are withdrawn from the firewall and
    ///    the registry; the records' own ports are published again where missing.
    /// 5. Each network's firewall rules are written again from its records (`--link`
    ///    allowances of containers that are gone).
    /// 6. Peers' `hosts` files lose the names of containers no longer on their networks.
    pub fn gc(&mut self, live: &[&str]) -> Result<GcReport> {
        let started = std::time::Instant::now();
        let r = self.gc_steps(live);
        super::oplog::finish(
            started,
            &r,
            || format!("gc with {} live container(s)", live.len()),
            |r| {
                format!(
                    "gc: disconnected {}; stray links {}; leases {}; ports {}; hosts files {}",
                    super::oplog::list(&r.disconnected),
                    super::oplog::list(&r.stray_links),
                    super::oplog::list(&r.leases),
                    super::oplog::list(&r.ports),
                    r.hosts.len(),
                )
            },
        );
        r
    }

    fn gc_steps(&mut self, live: &[&str]) -> Result<GcReport> {
        let mut report = GcReport::default();
        let links = self.rtnl.links()?;
        let mut dead: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in self.attachments(None)? {
            let gone = !links.iter().any(|l| l.name == a.host_veth);
            if gone || !live.contains(&a.container.as_str()) {
                report
                    .disconnected
                    .push(format!("{}/{}", a.network, a.container));
                dead.entry(a.network).or_default().push(a.container);
            }
        }
        for (network, containers) in &dead {
            let refs: Vec<&str> = containers.iter().map(String::as_str).collect();
            self.disconnect_many(network, &refs)?;
        }
        let atts = self.attachments(None)?;
        let nets = self.defs.list()?;
        report.stray_links = self.gc_links(&nets, &atts)?;
        let (leases, registry) = self.gc_state(&atts)?;
        report.leases = leases;
        report.ports = self.gc_ports(&nets, &atts)?;
        report.ports.extend(registry);
        for net in &nets {
            if !self.ours(net) {
                continue;
            }
            let mine: Vec<Attachment> = atts
                .iter()
                .filter(|a| a.network == net.name)
                .cloned()
                .collect();
            self.fw.add_network(&self.rules(net, &mine))?;
        }
        report.hosts = gc_hosts(&atts)?;
        Ok(report)
    }

    /// Removes what an interrupted connect of `container` to `network` left: a process
    /// killed halfway, whose database transaction rolled back while the kernel objects it
    /// had made stayed (its veth pair, the container's interface with it, and published
    /// ports). For a caller that keeps no state and is told to tear down a container
    /// that may never have been connected, as a CNI plugin's `DEL` after a crashed `ADD`.
    ///
    /// Runs under the runtime database's write lock, which every connect holds from its
    /// first step to its commit: no connect is under way meanwhile, so what no record
    /// explains is left over. Removed: the veths named for this container on this
    /// network, and published ports that no attachment has. Returns whether
    /// anything was removed; nothing is done when the container is connected (use
    /// [`Host::disconnect`]) or the network does not exist.
    ///
    /// ```no_run
    /// # use netplumb::network::Host;
    /// let mut host = Host::open_in(&netplumb::Netns::current()?, "/var/lib/netplumb")?;
    /// host.disconnect("web", "c1")?;
    /// host.clear_interrupted("web", "c1")?;
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn clear_interrupted(&mut self, network: &str, container: &str) -> Result<bool> {
        let net = match self.network(network) {
            Ok(n) => n,
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        };
        let ipam = self.ipam.clone();
        let mut db = ipam.store().begin_tx()?;
        if super::state::rows::attachment(db.conn(), network, container)?.is_some() {
            return Ok(false);
        }
        let names: Vec<String> = (0..=8)
            .map(|salt| super::names::host_veth_name(container, network, salt))
            .collect();
        let stray: Vec<u32> = self
            .rtnl
            .links()?
            .into_iter()
            .filter(|l| l.is_kind("veth") && names.contains(&l.name))
            .map(|l| l.index)
            .collect();
        self.rtnl.delete_links(&stray)?;
        // Every network's: a host port may be shared with a container's other networks.
        let atts = super::state::rows::attachments(db.conn(), None)?;
        let nets = self.defs.list()?;
        let ports = if self.ours(&net) {
            self.gc_ports(&nets, &atts)?
        } else {
            Vec::new()
        };
        drop(db);
        if !stray.is_empty() || !ports.is_empty() {
            log::info!(
                target: "netplumb::network",
                "cleared an interrupted connect of {container} to network {network}: {} link(s), ports {}",
                stray.len(),
                super::oplog::list(&ports)
            );
        }
        Ok(!stray.is_empty() || !ports.is_empty())
    }

    /// Releases the leases and host ports that no record explains, in one transaction of
    /// the runtime database (since connects and disconnects write all three in one
    /// transaction, only a database from before that, or written by hand, has any).
    fn gc_state(&mut self, atts: &[Attachment]) -> Result<(Vec<String>, Vec<String>)> {
        let owners: Vec<Owner> = atts
            .iter()
            .map(|a| Owner::new(a.container.clone(), a.ifname.clone()))
            .collect();
        let live: HashSet<&Owner> = owners.iter().collect();
        let ipam = self.ipam.clone();
        let mut db = ipam.store().begin_tx()?;
        let mut leases = Vec::new();
        for net in db.networks()? {
            for l in ipam.gc_in(&mut db, &net.name, &live)? {
                leases.push(format!("{} {}", l.network, l.address));
            }
        }
        let recorded: Vec<PublishedPort> = atts.iter().flat_map(|a| a.ports.clone()).collect();
        let unexplained: Vec<PublishedPort> = port_rows::published(db.conn())?
            .into_iter()
            .filter(|p| !recorded.contains(p))
            .collect();
        PortAllocator::release_in(&mut SqlPorts { conn: db.conn() }, &unexplained)?;
        db.finish()?;
        Ok((
            leases,
            unexplained
                .iter()
                .map(|p| format!("registry: {p}"))
                .collect(),
        ))
    }

    /// Whether network `net`'s rules are in this host's firewall backend.
    fn ours(&self, net: &NetworkInfo) -> bool {
        net.firewall.is_empty() || net.firewall == self.fw.backend().as_str()
    }

    /// Deletes the veths on the networks' bridges that none of `atts` names.
    fn gc_links(&mut self, nets: &[NetworkInfo], atts: &[Attachment]) -> Result<Vec<String>> {
        let links = self.rtnl.links()?;
        let ours: Vec<u32> = links
            .iter()
            .filter(|l| nets.iter().any(|n| n.bridge == l.name))
            .map(|l| l.index)
            .collect();
        let stray: Vec<&crate::link::Link> = links
            .iter()
            .filter(|l| l.is_kind("veth") && l.controller.is_some_and(|c| ours.contains(&c)))
            .filter(|l| !atts.iter().any(|a| a.host_veth == l.name))
            .collect();
        self.rtnl
            .delete_links(&stray.iter().map(|l| l.index).collect::<Vec<_>>())?;
        Ok(stray.iter().map(|l| l.name.clone()).collect())
    }

    /// Withdraws the published ports of our networks that none of `atts` has from the
    /// firewall, and publishes theirs again where the firewall lacks them.
    fn gc_ports(&mut self, nets: &[NetworkInfo], atts: &[Attachment]) -> Result<Vec<String>> {
        let mut want = Vec::new();
        for a in atts {
            if nets.iter().any(|n| n.name == a.network && self.ours(n)) {
                want.extend(port_rules(&a.network, &a.addrs, &a.ports)?);
            }
        }
        if self.one_rule_per_port() {
            want = super::shared_ports::holders(&want);
        }
        let key = |r: &PortRule| {
            let ip = r.host_ip.filter(|i| !i.is_unspecified());
            (
                r.network.clone(),
                r.proto,
                ip,
                r.host_port,
                r.container_ip,
                r.container_port,
            )
        };
        let have = self.fw.state()?.ports;
        let stray: Vec<PortRule> = have
            .iter()
            .filter(|p| nets.iter().any(|n| n.name == p.network && self.ours(n)))
            .filter(|p| !want.iter().any(|w| key(w) == key(p)))
            .cloned()
            .collect();
        let missing: Vec<PortRule> = want
            .iter()
            .filter(|w| !have.iter().any(|p| key(w) == key(p)))
            .cloned()
            .collect();
        if !stray.is_empty() {
            self.fw.unpublish(&stray)?;
        }
        if !missing.is_empty() {
            self.fw.publish(&missing)?;
        }
        Ok(stray.iter().map(|p| p.to_string()).collect())
    }
}

/// Takes out of each attachment's `hosts` file the peers that are not attached to a
/// network of that container any more; returns the folders whose file changed.
fn gc_hosts(atts: &[Attachment]) -> Result<Vec<PathBuf>> {
    let mut fixed = Vec::new();
    for a in atts {
        let Some(dir) = &a.files else { continue };
        if fixed.contains(dir) {
            continue; // one folder per container, however many networks
        }
        let nets: Vec<&str> = atts
            .iter()
            .filter(|b| b.container == a.container)
            .map(|b| b.network.as_str())
            .collect();
        let peers: Vec<&str> = atts
            .iter()
            .filter(|b| b.container != a.container && nets.contains(&b.network.as_str()))
            .map(|b| b.name.as_str())
            .collect();
        let files = ContainerFiles::new(dir);
        let Ok(mut hosts) = files.read_hosts() else {
            continue;
        };
        let gone: Vec<String> = hosts
            .peers()
            .iter()
            .filter_map(|e| e.names().first().cloned())
            .filter(|n| !peers.contains(&n.as_str()))
            .collect();
        let mut changed = false;
        for n in &gone {
            changed |= hosts.remove_peer(n);
        }
        if changed {
            files.update_hosts(&hosts)?;
            fixed.push(dir.clone());
        }
    }
    Ok(fixed)
}
