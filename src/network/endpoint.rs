//! Connecting containers to networks and disconnecting them.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::fault;
use super::files::{
    self, AddHost, ContainerFiles, DnsConfig, HostEntry, Hostname, HostsFile, ResolvConf,
};
use super::host::{del_link, ignore_missing, ipam_name, mac_of, Host};
use super::state::{Attachment, NetworkInfo};
use crate::addr::Addr;
use crate::error::{Error, Result};
use crate::firewall::{self, Firewall, NetworkRules, PortRule, Proto};
use crate::ipam::{IpamError, Owner, Released};
use crate::journal::Txn;
use crate::link::{BridgePort, IfName, LinkDel, LinkSet, MacAddr, Veth};
use crate::netns::Netns;
use crate::ports::{HostPorts, PortAllocator, PortMapping, PortRange, PublishedPort};
use crate::request::Request;
use crate::route::Route;
use crate::rtnl::Rtnl;

/// A container to connect (`docker run --network NET ...`, `docker network connect`).
///
/// ```no_run
/// use netplumb::network::Container;
/// let ns = netplumb::NetnsDir::default().open("web")?;
/// let c = Container::new("3f2a1c0d9e8b", &ns)
///     .name("web")
///     .ip("172.26.0.10".parse().unwrap())
///     .publish("8080:80".parse().unwrap());
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Container {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) netns: Netns,
    pub(crate) ifname: String,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) ip6: Option<IpAddr>,
    pub(crate) mac: Option<MacAddr>,
    pub(crate) ports: Vec<PortMapping>,
    pub(crate) expose: Vec<(Proto, u16)>,
    pub(crate) links: Vec<String>,
    pub(crate) aliases: Vec<String>,
    pub(crate) files: Option<PathBuf>,
    pub(crate) hostname: Option<String>,
    pub(crate) add_hosts: Vec<AddHost>,
    pub(crate) dns: DnsConfig,
}

impl Container {
    /// Container `id` whose network namespace is `netns`.
    pub fn new(id: &str, netns: &Netns) -> Self {
        Container {
            id: id.to_owned(),
            name: id.chars().take(12).collect(),
            netns: netns.clone(),
            ifname: "eth0".to_owned(),
            ip: None,
            ip6: None,
            mac: None,
            ports: Vec::new(),
            expose: Vec::new(),
            links: Vec::new(),
            aliases: Vec::new(),
            files: None,
            hostname: None,
            add_hosts: Vec::new(),
            dns: DnsConfig::new(),
        }
    }

    /// The container's name (`--name`; default: the first 12 characters of the id).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The interface name inside the container (default `eth0`).
    pub fn ifname(mut self, name: &str) -> Self {
        self.ifname = name.to_owned();
        self
    }

    /// A specific IPv4 address (`--ip`).
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// A specific IPv6 address (`--ip6`).
    pub fn ip6(mut self, ip: IpAddr) -> Self {
        self.ip6 = Some(ip);
        self
    }

    /// A specific MAC address (`--mac-address`; default `02:42:` and the IPv4 address).
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    /// A published port (`-p`).
    pub fn publish(mut self, mapping: PortMapping) -> Self {
        self.ports.push(mapping);
        self
    }

    /// An exposed port (`--expose`, what `-P` publishes and `--link` opens).
    pub fn expose(mut self, proto: Proto, port: u16) -> Self {
        self.expose.push((proto, port));
        self
    }

    /// Publishes every exposed port to a free host port (`-P`).
    pub fn publish_all(mut self) -> Self {
        for (proto, port) in self.expose.clone() {
            if let Ok(m) = format!("{port}/{proto}").parse::<PortMapping>() {
                self.ports.push(m);
            }
        }
        self
    }

    /// A `--link` to another container of the network, by name or alias.
    pub fn link(mut self, other: &str) -> Self {
        self.links.push(other.to_owned());
        self
    }

    /// A `--link OTHER:ALIAS`: as [`Container::link`], and `ALIAS` names the other
    /// container in this one's `/etc/hosts`.
    pub fn link_as(mut self, other: &str, alias: &str) -> Self {
        self.links.push(format!("{other}:{alias}"));
        self
    }

    /// Another name of the container on the network (`--network-alias`).
    pub fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.to_owned());
        self
    }

    /// The folder the container's `hosts`, `hostname` and `resolv.conf` are written to.
    pub fn files(mut self, dir: impl Into<PathBuf>) -> Self {
        self.files = Some(dir.into());
        self
    }

    /// The hostname (`--hostname`; default: the first 12 characters of the id).
    pub fn hostname(mut self, name: &str) -> Self {
        self.hostname = Some(name.to_owned());
        self
    }

    /// An extra `/etc/hosts` entry (`--add-host name:ip`; `host-gateway` is the network's
    /// gateway).
    pub fn add_host(mut self, entry: AddHost) -> Self {
        self.add_hosts.push(entry);
        self
    }

    /// DNS settings for `/etc/resolv.conf` (`--dns`, `--dns-search`, `--dns-option`);
    /// by default the host's, without loopback nameservers.
    pub fn dns(mut self, dns: DnsConfig) -> Self {
        self.dns = dns;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.id.is_empty()
            || !self
                .id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
        {
            return Err(Error::invalid(
                "container id",
                &self.id,
                "must be [A-Za-z0-9_.-]+",
            ));
        }
        let name_ok = self.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && self
                .name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
        if !name_ok {
            // Names end up in peers' hosts files and in paths.
            return Err(Error::invalid(
                "container name",
                &self.name,
                "must be [a-zA-Z0-9][a-zA-Z0-9_.-]*",
            ));
        }
        IfName::unchecked(&self.ifname).check_as("container interface")?;
        for p in &self.ports {
            p.validate()?;
        }
        Ok(())
    }
}

/// `veth` and 7 hex digits derived from the container and network (a `salt` breaks ties).
fn host_veth_name(container: &str, network: &str, salt: u32) -> String {
    let h = format!("{container}/{network}/{salt}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
    format!("veth{:07x}", h & 0xfff_ffff)
}

impl Host {
    /// Connects a container to a network (`docker network connect`), all or nothing.
    /// Connecting a container that is already connected returns its attachment.
    pub fn connect(&mut self, network: &str, ctr: &Container) -> Result<Attachment> {
        ctr.validate()?;
        let net = self.network(network)?;
        if let Some(a) = self.state.attachment(network, &ctr.id)? {
            return Ok(a);
        }
        if net.internal && !ctr.ports.is_empty() {
            return Err(Error::invalid(
                "ports",
                network,
                "an internal network publishes no ports",
            ));
        }
        let mut tx = Txn::new();
        match self.connect_steps(&net, ctr, &mut tx) {
            Ok(a) => {
                tx.commit();
                Ok(a)
            }
            Err(e) => Err(tx.fail(e)),
        }
    }

    fn connect_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
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
        self.lease_steps(net, ctr, &mut att, tx)?;
        self.veth_steps(net, ctr, &mut att, tx)?;
        self.inside_steps(net, ctr, &att, tx)?;
        self.port_steps(net, ctr, &mut att, tx)?;
        self.files_steps(net, ctr, &att, tx)?;
        fault::point("record")?;
        self.state.put_attachment(&att)?;
        let (state, n, c) = (
            self.state.clone(),
            att.network.clone(),
            att.container.clone(),
        );
        tx.record(format!("forget {c} on {n}"), move || {
            state.delete_attachment(&n, &c)
        });
        if !ctr.links.is_empty() || !net.icc {
            fault::point("links")?;
            self.apply_rules(net, &ctr.id, tx)?;
        }
        Ok(att)
    }

    fn lease_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &mut Attachment,
        tx: &mut Txn,
    ) -> Result<()> {
        let owner = Owner::new(ctr.id.clone(), ctr.ifname.clone());
        for s in net.subnets.clone() {
            let v6 = !s.addr().is_ipv4();
            let name = ipam_name(&net.name, v6);
            let before = ipam_undo::read(&self.ipam, &name, &owner)?;
            fault::point("lease")?;
            let want = if v6 { ctr.ip6 } else { ctr.ip };
            let lease = match want {
                Some(ip) => self.ipam.allocate_addr(&name, &owner, ip)?,
                None => self.ipam.allocate(&name, &owner)?,
            };
            att.addrs.push(lease.cidr());
            if before.held.is_some() {
                continue; // held before this connect: it stays
            }
            let (ipam, o, a) = (self.ipam.clone(), owner.clone(), lease.address);
            tx.record(format!("release {a} of {name}"), move || {
                ipam_undo::unhold(&ipam, &name, &o, a, &before.net)
            });
        }
        Ok(())
    }

    fn veth_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &mut Attachment,
        tx: &mut Txn,
    ) -> Result<()> {
        let mac = ctr.mac.unwrap_or_else(|| mac_of(att.addrs[0].addr()));
        att.mac = Some(mac);
        fault::point("veth")?;
        let mut br = self.bridge_index(&net.bridge, false)?;
        let (mut salt, mut looked_up) = (0, false);
        loop {
            att.host_veth = host_veth_name(&ctr.id, &net.name, salt);
            // One request: the pair, the peer straight in the container, the host end up
            // and already a port of the bridge.
            let mut v = Veth::new(&att.host_veth)
                .controller(br)
                .up()
                .peer(&ctr.ifname)
                .peer_netns(&ctr.netns)
                .peer_mac(mac);
            if let Some(m) = net.mtu {
                v = v.mtu(m).peer_mtu(m);
            }
            match self.rtnl.execute(&v) {
                Err(e) if e.is_exists() && salt < 8 => salt += 1,
                // The cached bridge index may be stale (bridge recreated): look it up once.
                Err(e) if !e.is_exists() && !looked_up => {
                    looked_up = true;
                    let fresh = self.bridge_index(&net.bridge, true)?;
                    if fresh == br {
                        return Err(e);
                    }
                    br = fresh;
                }
                r => break r?,
            }
        }
        // Deleting the host end deletes the container end, its address and its routes.
        let (ns, name) = (self.netns.clone(), att.host_veth.clone());
        tx.record(format!("ip link del {name}"), move || del_link(&ns, &name));
        fault::point("bridge port")?;
        // Hairpin lets a container reach its own published ports through a host address;
        // with ICC off, ports without links are isolated (no frames between them at all).
        let isolated = !net.icc && ctr.links.is_empty() && ctr.expose.is_empty();
        self.rtnl.execute(
            &BridgePort::new(att.host_veth.as_str())
                .hairpin(true)
                .isolated(isolated),
        )?;
        Ok(())
    }

    fn inside_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &Attachment,
        tx: &mut Txn,
    ) -> Result<()> {
        let first = self.state.attachments_of(&ctr.id)?.is_empty();
        fault::point("container link")?;
        let mut inside = Rtnl::open_in(&ctr.netns)?;
        let link = inside.link(ctr.ifname.as_str())?;
        let lo = inside.link("lo")?;
        fault::point("container address")?;
        // lo and eth0 up, the addresses, the default route: one batch. Deleting the veth
        // undoes all but lo, which goes down again if it was down.
        let mut reqs: Vec<Box<dyn Request>> = vec![
            Box::new(LinkSet::new(&lo).up()),
            Box::new(LinkSet::new(&link).up()),
        ];
        for a in &att.addrs {
            let add = if a.addr().is_ipv4() {
                Addr::new(&link, *a).auto_broadcast()
            } else {
                Addr::new(&link, *a).nodad()
            };
            reqs.push(Box::new(add));
        }
        if first && !net.internal {
            for g in &net.gateways {
                let r = if g.is_ipv4() {
                    Route::default_v4()
                } else {
                    Route::default_v6()
                };
                reqs.push(Box::new(r.via(*g).dev(&link)));
            }
        }
        if !lo.is_up() {
            // Up, lo gets 127.0.0.1/8, which stays when it goes down again.
            let had = inside.addrs(Some((&lo).into()))?;
            let (ns, lo) = (ctr.netns.clone(), lo.index);
            tx.record("ip link set lo down (in the container)", move || {
                let mut r = Rtnl::open_in(&ns)?;
                r.execute(&LinkSet::new(lo).down())?;
                for a in r.addrs(Some(lo.into()))? {
                    if a.addr.addr().is_ipv4() && !had.iter().any(|h| h.addr == a.addr) {
                        ignore_missing(r.execute(&Addr::new(lo, a.addr).delete()))?;
                    }
                }
                Ok(())
            });
        }
        fault::point("default route")?;
        inside.execute_batch(&reqs)
    }

    fn port_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &mut Attachment,
        tx: &mut Txn,
    ) -> Result<()> {
        if ctr.ports.is_empty() {
            return Ok(());
        }
        fault::point("port allocation")?;
        let alloc = self
            .ports
            .clone()
            .default_host_ip(net.host_binding.unwrap_or([0, 0, 0, 0].into()));
        let published = alloc.publish(&ctr.ports)?;
        let (undo_alloc, p) = (alloc.clone(), published.clone());
        tx.record(format!("release {} host port(s)", p.len()), move || {
            undo_alloc.release(&p)
        });
        let rules = port_rules(&net.name, &att.addrs, &published)?;
        fault::point("firewall ports")?;
        self.fw.publish(&rules)?;
        let (ns, backend) = (self.netns.clone(), self.fw.backend());
        let undo_rules = rules.clone();
        tx.record(format!("unpublish {} port(s)", rules.len()), move || {
            firewall::open(backend, &ns)?.unpublish(&undo_rules)
        });
        att.ports = published;
        Ok(())
    }

    /// Writes the container's `hostname`, `hosts` and `resolv.conf` (when it has a files
    /// folder), and adds it to the `hosts` of its peers on a user-defined network (G2).
    fn files_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &Attachment,
        tx: &mut Txn,
    ) -> Result<()> {
        // Peers' names go in this container's hosts (all of them, only when it has files);
        // this container goes in the hosts of the peers that have files.
        let user_net = net.name != super::DEFAULT_NETWORK;
        if let Some(dir) = &ctr.files {
            let peers: Vec<Attachment> = if user_net {
                self.state.attachments(Some(&net.name))?
            } else {
                Vec::new()
            };
            fault::point("container files")?;
            let hosts = self.hosts_of(net, ctr, att, &peers)?;
            let hostname = Hostname::new(&att.hostname)?;
            let host_resolv = ResolvConf::read_host().unwrap_or_else(|_| ResolvConf::parse(""));
            let resolv = ResolvConf::for_container(&host_resolv, &ctr.dns, net.ipv6)?;
            // What the files were (a container on another network has them already).
            let names = [
                ContainerFiles::HOSTNAME,
                ContainerFiles::HOSTS,
                ContainerFiles::RESOLV_CONF,
            ];
            let old = names
                .iter()
                .map(|f| read_file(dir, f))
                .collect::<Result<Vec<_>>>()?;
            let d = dir.clone();
            tx.record(
                format!("restore {}/{{hostname,hosts,resolv.conf}}", d.display()),
                move || {
                    for (f, text) in names.iter().zip(old) {
                        match text {
                            Some(t) => files::write_atomic(&d, f, &t)?,
                            None => ignore_gone_file(std::fs::remove_file(d.join(f)), &d)?,
                        }
                    }
                    Ok(())
                },
            );
            ContainerFiles::new(dir).write(&hostname, &hosts, &resolv)?;
        }
        if !user_net {
            return Ok(());
        }
        for p in self.state.attachments_with_files(&net.name)? {
            let Some(pdir) = p.files.filter(|_| p.container != att.container) else {
                continue;
            };
            fault::point("peer files")?;
            let Some(before) = read_file(&pdir, ContainerFiles::HOSTS)? else {
                continue; // the peer has no hosts file (yet, or any more)
            };
            let mut h = HostsFile::parse(&before);
            set_peer(&mut h, att)?;
            files::rewrite_in_place(&pdir, ContainerFiles::HOSTS, &h.render())?;
            tx.record(format!("restore {}/hosts", pdir.display()), move || {
                files::rewrite_in_place(&pdir, ContainerFiles::HOSTS, &before)
            });
        }
        Ok(())
    }

    /// The `hosts` file of a container joining `net`: its own lines, its `--add-host`s,
    /// its `peers`, and the containers its `--link`s name.
    fn hosts_of(
        &self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &Attachment,
        peers: &[Attachment],
    ) -> Result<HostsFile> {
        let hostname = Hostname::new(&att.hostname)?;
        let mut hosts = HostsFile::new().ipv6(net.ipv6).hostname(hostname);
        for a in &att.addrs {
            hosts = hosts.addr(a.addr());
        }
        for alias in &ctr.aliases {
            hosts = hosts.alias(alias)?;
        }
        for e in &ctr.add_hosts {
            for entry in e.resolve(&net.gateways)? {
                hosts = hosts.add_host(entry);
            }
        }
        for p in peers {
            set_peer(&mut hosts, p)?;
        }
        for l in &ctr.links {
            let (target, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            let all = self.state.attachments(Some(&net.name))?;
            if let Some(b) = all
                .iter()
                .find(|b| b.name == target || b.aliases.iter().any(|x| x == target))
            {
                for a in &b.addrs {
                    hosts = hosts.add_host(HostEntry::new(a.addr(), &[alias, b.name.as_str()])?);
                }
            }
        }
        Ok(hosts)
    }

    /// Writes the files of a container that has no network to connect to
    /// (`--network none`, `host`): `hostname`, `hosts` with the localhost lines and the
    /// `--add-host` entries, and `resolv.conf`. Does nothing without a files folder.
    pub fn write_files(&self, ctr: &Container) -> Result<()> {
        let Some(dir) = &ctr.files else { return Ok(()) };
        let hostname = Hostname::new(
            ctr.hostname
                .as_deref()
                .unwrap_or(&ctr.id.chars().take(12).collect::<String>()),
        )?;
        let mut hosts = HostsFile::new().hostname(hostname.clone());
        for e in &ctr.add_hosts {
            for entry in e.resolve(&[])? {
                hosts = hosts.add_host(entry);
            }
        }
        let host_resolv = ResolvConf::read_host().unwrap_or_else(|_| ResolvConf::parse(""));
        let resolv = ResolvConf::for_container(&host_resolv, &ctr.dns, false)?;
        ContainerFiles::new(dir).write(&hostname, &hosts, &resolv)
    }

    /// Re-applies a network's rules now that `added` is attached (its links count); the
    /// undo re-applies the rules as they were without it.
    fn apply_rules(&mut self, net: &NetworkInfo, added: &str, tx: &mut Txn) -> Result<()> {
        let atts = self.state.attachments(Some(&net.name))?;
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

    /// Disconnects a container (`docker network disconnect`), all or nothing. Idempotent:
    /// a container that is not connected, or whose links are already gone, is not an error.
    pub fn disconnect(&mut self, network: &str, container: &str) -> Result<()> {
        self.disconnect_many(network, &[container])
    }

    /// Disconnects many containers of one network at once, all or nothing: their records
    /// go in one transaction, their ports in one firewall batch and one registry change,
    /// and their veths in one kernel unregister batch instead of one RCU grace period
    /// (~16 ms) each. See [`Teardown`] for the order and what undoes each step.
    pub fn disconnect_many(&mut self, network: &str, containers: &[&str]) -> Result<()> {
        let Some(td) = self.plan_disconnect(network, containers)? else {
            return Ok(());
        };
        let mut tx = Txn::new();
        match self.teardown(&td, &mut tx) {
            Ok(()) => {
                tx.commit();
                Ok(())
            }
            Err(e) => Err(tx.fail(e)),
        }
    }

    /// Reads and works out everything a disconnect of `containers` changes; `None` when
    /// none of them is connected.
    fn plan_disconnect(&mut self, network: &str, containers: &[&str]) -> Result<Option<Teardown>> {
        let mut atts = Vec::new();
        for c in containers {
            if let Some(a) = self.state.attachment(network, c)? {
                atts.push(a);
            }
        }
        if atts.is_empty() {
            return Ok(None);
        }
        let net = self.state.network(network)?;
        let leaving = |a: &Attachment| atts.iter().any(|b| b.container == a.container);
        let mut td = Teardown {
            network: network.to_owned(),
            containers: Some(atts.iter().map(|a| a.container.clone()).collect()),
            ..Teardown::default()
        };
        if let Some(net) = &net {
            if !net.icc || atts.iter().any(|a| !a.links.is_empty()) {
                let all = self.state.attachments(Some(network))?;
                let rest: Vec<Attachment> = all.iter().filter(|a| !leaving(a)).cloned().collect();
                let (new, old) = (self.rules(net, &rest), self.rules(net, &all));
                td.rules = (new != old).then_some((new, old));
            }
        }
        let peers: Vec<Attachment> = self
            .state
            .attachments_with_files(network)?
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
        Ok(Some(td))
    }

    /// The parts of a teardown plan a disconnect and a removal share: ports and leases.
    pub(crate) fn plan_common(
        &mut self,
        atts: &[Attachment],
        v6: bool,
        td: &mut Teardown,
    ) -> Result<()> {
        for a in atts {
            td.port_rules
                .extend(port_rules(&td.network, &a.addrs, &a.ports)?);
            td.ports.extend(a.ports.iter().cloned());
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
            match self.rtnl.link(*one) {
                Ok(l) => td.links.push((l.index, l.name, l.group)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
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
        let mut g = BULK_GROUP_BASE + (random_u32() & 0xf_ffff);
        while used.contains(&g) {
            g = BULK_GROUP_BASE + (g.wrapping_add(1) & 0xf_ffff);
        }
        td.group = g;
        Ok(())
    }

    /// Carries out a [`Teardown`], recording the inverse of every step but the last in `tx`.
    pub(crate) fn teardown(&mut self, td: &Teardown, tx: &mut Txn) -> Result<()> {
        fault::point("record")?;
        let only: Option<Vec<&str>> = td
            .containers
            .as_ref()
            .map(|v| v.iter().map(String::as_str).collect());
        let taken = self
            .state
            .take(&td.network, only.as_deref(), td.containers.is_none())?;
        let state = self.state.clone();
        tx.record(
            format!(
                "restore the records of {} container(s) of {}",
                taken.attachments(),
                td.network
            ),
            move || state.restore(&taken),
        );
        self.teardown_firewall(td, tx)?;
        for e in &td.hosts {
            fault::point("peer files")?;
            files::rewrite_in_place(&e.dir, ContainerFiles::HOSTS, &e.after)?;
            let (dir, before) = (e.dir.clone(), e.before.clone());
            tx.record(format!("restore {}/hosts", dir.display()), move || {
                files::rewrite_in_place(&dir, ContainerFiles::HOSTS, &before)
            });
        }
        self.teardown_ipam(td, tx)?;
        if !td.ports.is_empty() {
            fault::point("port registry")?;
            self.ports.release(&td.ports)?;
            let (alloc, ports) = (self.ports.clone(), td.ports.clone());
            tx.record(format!("reserve {} host port(s)", ports.len()), move || {
                reserve(&alloc, &ports)
            });
        }
        for &(dev, a) in &td.bridge_addrs {
            fault::point("gateway address")?;
            ignore_missing(self.rtnl.execute(&Addr::new(dev, a).delete()))?;
            let ns = self.netns.clone();
            tx.record(format!("ip addr add {a} dev {dev}"), move || {
                Rtnl::open_in(&ns)?.execute(&gateway_addr(dev, a))
            });
        }
        self.teardown_links(td, tx)
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
            return self.fw.remove_network(&td.network);
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
            let old = old.clone();
            tx.record(
                format!("restore firewall rules of {}", td.network),
                move || firewall::open(backend, &ns)?.add_network(&old),
            );
            self.fw.add_network(new)?;
        }
        Ok(())
    }

    /// Releases the leases (and, for a removal, the IPAM networks); each undo puts the
    /// lease and the network's allocation cursors back as they were.
    fn teardown_ipam(&mut self, td: &Teardown, tx: &mut Txn) -> Result<()> {
        let mut last: HashMap<&str, Option<IpAddr>> = td
            .ipam_nets
            .iter()
            .map(|n| (n.name.as_str(), n.last_released))
            .collect();
        for (name, owner) in &td.leases {
            fault::point("lease")?;
            let l = match self.ipam.release_owner(name, owner) {
                Ok(Released::Freed(l)) => l,
                Ok(Released::NotHeld) | Err(IpamError::NetworkNotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let prev = last.insert(name, Some(l.address)).flatten();
            let (ipam, name, owner) = (self.ipam.clone(), name.clone(), owner.clone());
            tx.record(format!("hold {} of {name} again", l.address), move || {
                ipam_undo::rehold(&ipam, &name, &owner, l.address, prev)
            });
        }
        if td.containers.is_some() {
            return Ok(());
        }
        for n in &td.ipam_nets {
            fault::point("ipam network")?;
            match self.ipam.remove_network(&n.name) {
                Ok(()) => {}
                Err(IpamError::NetworkNotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
            let (ipam, n) = (self.ipam.clone(), n.clone());
            tx.record(format!("restore IPAM network {}", n.name), move || {
                ipam_undo::recreate(&ipam, &n)
            });
        }
        Ok(())
    }

    /// The last step: deletes the links in one request (a veth takes its container end,
    /// address, routes and neighbours with it). No inverse could give them back their
    /// interface indexes, which is why nothing comes after this step.
    fn teardown_links(&mut self, td: &Teardown, tx: &mut Txn) -> Result<()> {
        let all = match td.links.as_slice() {
            [] => return Ok(()),
            [(_, name, _)] => {
                fault::point("links")?;
                return ignore_missing(self.rtnl.execute(&LinkDel::new(name.as_str())));
            }
            all => all,
        };
        fault::point("link group")?;
        let moves: Vec<LinkSet> = all
            .iter()
            .map(|&(i, _, _)| LinkSet::new(i).group(td.group))
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
                ignore_gone(Rtnl::open_in(&ns)?.execute_batch(&reqs))
            },
        );
        ignore_gone(moved)?;
        fault::point("links")?;
        // `ip link del group N`: one unregister batch for all of them.
        ignore_gone(self.rtnl.execute(&LinkDel::group(td.group)))
    }
}

/// First interface group tried for bulk deletion, well away from the small numbers
/// `/etc/iproute2/group` and admins use (and from [`Rtnl::delete_links`]' own).
const BULK_GROUP_BASE: u32 = 0x6e80_0000;

/// Everything a disconnect or a network removal changes, read and worked out before the
/// first change, so that no lookup or check can fail once the teardown has begun.
///
/// The order, and what undoes each step ([`Host::teardown`]):
/// 1. the records (one transaction; undo: the same rows put back). First, so that from
///    then on the containers are not "connected" and a crash leaves only what
///    [`Host::gc`] recognises as unexplained (veths, leases, ports);
/// 2. the firewall: published ports, then the network's rules (nothing reaches a
///    half-removed container; undo: the same rules and ports again);
/// 3. the peers' `hosts` files (undo: the text they had);
/// 4. the leases, and for a removal the IPAM networks (undo: the same address held by the
///    same owner, the allocation cursors as they were, the network record as it was);
/// 5. the host ports in the registry (undo: the same ports reserved again);
/// 6. gateway addresses on a bridge netplumb did not create (undo: added again);
/// 7. last, the links, in one kernel request. Deleting a veth deletes its container end
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
        let Ok(Some(before)) = read_file(dir, ContainerFiles::HOSTS) else {
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

/// The text of `dir/name`; `None` when there is no such file.
fn read_file(dir: &Path, name: &str) -> Result<Option<String>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Treats "no such file" as done.
fn ignore_gone_file(r: std::io::Result<()>, dir: &Path) -> Result<()> {
    match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir, e)),
        _ => Ok(()),
    }
}

/// Treats "no such device" as done: links that went away meanwhile.
fn ignore_gone(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.errno() == Some(nix::errno::Errno::ENODEV) => Ok(()),
        r => r,
    }
}

/// A gateway address, added as `create_network` adds it.
pub(crate) fn gateway_addr(dev: u32, net: IpNet) -> Addr {
    if net.addr().is_ipv4() {
        Addr::new(dev, net).auto_broadcast()
    } else {
        Addr::new(dev, net).nodad()
    }
}

/// Reserves `ports` in the registry again, at the same host addresses and ports.
fn reserve(alloc: &PortAllocator, ports: &[PublishedPort]) -> Result<()> {
    let mut maps = Vec::with_capacity(ports.len());
    for p in ports {
        let one = |n| PortRange::single(n).map_err(Error::from);
        maps.push(
            PortMapping::new(one(p.container_port)?)
                .proto(p.proto)
                .host_ip(p.host_ip)
                .host_ports(HostPorts::Range(one(p.host_port)?)),
        );
    }
    alloc.publish(&maps).map(drop)
}

/// A random number, for choices that concurrent processes should not share.
fn random_u32() -> u32 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&std::thread::current().id(), &mut h);
    std::hash::Hasher::write_u32(&mut h, std::process::id());
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::hash::Hasher::write_u128(&mut h, t.as_nanos());
    std::hash::Hasher::finish(&h) as u32
}

/// Exact undo of lease changes: the lease and the network's allocation cursors as they
/// were, through one store transaction each.
mod ipam_undo {
    use std::net::IpAddr;

    use crate::error::Result;
    use crate::ipam::{Ipam, IpamError, Network, Owner, Store, Transaction};

    /// A network as it was before a connect, and the address `owner` held there then.
    pub(super) struct Before {
        pub(super) net: Network,
        pub(super) held: Option<IpAddr>,
    }

    fn not_found(name: &str) -> IpamError {
        IpamError::NetworkNotFound {
            network: name.to_owned(),
        }
    }

    pub(super) fn read(ipam: &Ipam, name: &str, owner: &Owner) -> Result<Before> {
        let mut tx = ipam.store().begin()?;
        let net = tx.network(name)?.ok_or_else(|| not_found(name))?;
        let held = tx.address_of(name, owner)?;
        tx.commit()?;
        Ok(Before { net, held })
    }

    /// Runs `f` on network `name` in one transaction, and stores the network it leaves.
    fn change(
        ipam: &Ipam,
        name: &str,
        f: impl FnOnce(&mut dyn Transaction, &mut Network) -> Result<()>,
    ) -> Result<()> {
        let mut tx = ipam.store().begin()?;
        let mut net = tx.network(name)?.ok_or_else(|| not_found(name))?;
        f(&mut *tx, &mut net)?;
        tx.update_network(&net)?;
        Ok(tx.commit()?)
    }

    /// Undoes a connect's allocation of `addr`: released, and the cursor back where it was.
    pub(super) fn unhold(
        ipam: &Ipam,
        name: &str,
        owner: &Owner,
        addr: IpAddr,
        before: &Network,
    ) -> Result<()> {
        change(ipam, name, |tx, net| {
            if tx.owner_of(name, addr)?.as_ref() == Some(owner) {
                tx.free(name, addr)?;
            }
            if net.cursor == Some(addr) {
                net.cursor = before.cursor;
            }
            Ok(())
        })
    }

    /// Undoes a release: `owner` holds `addr` again, and `last_released` is back to `prev`
    /// unless another release came since.
    pub(super) fn rehold(
        ipam: &Ipam,
        name: &str,
        owner: &Owner,
        addr: IpAddr,
        prev: Option<IpAddr>,
    ) -> Result<()> {
        change(ipam, name, |tx, net| {
            tx.hold(name, addr, owner)?;
            if net.last_released == Some(addr) {
                net.last_released = prev;
            }
            Ok(())
        })
    }

    /// Undoes the removal of an IPAM network: its record exactly as it was.
    pub(super) fn recreate(ipam: &Ipam, net: &Network) -> Result<()> {
        let mut tx = ipam.store().begin()?;
        tx.create_network(net)?;
        Ok(tx.commit()?)
    }
}

/// The firewall rules of published ports: each host port to the container's address of
/// the host address's family.
pub(crate) fn port_rules(
    network: &str,
    addrs: &[IpNet],
    ports: &[PublishedPort],
) -> Result<Vec<PortRule>> {
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        let Some(c) = addrs
            .iter()
            .find(|a| a.addr().is_ipv4() == p.host_ip.is_ipv4())
        else {
            return Err(Error::invalid(
                "host address",
                p.host_ip,
                "the container has no address of that family",
            ));
        };
        let mut r = PortRule::new(network, p.proto, p.host_port, c.addr(), p.container_port);
        if !p.host_ip.is_unspecified() {
            r = r.host_ip(p.host_ip);
        }
        out.push(r);
    }
    Ok(out)
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

fn set_peer(hosts: &mut HostsFile, p: &Attachment) -> Result<()> {
    let aliases: Vec<&str> = p.aliases.iter().map(String::as_str).collect();
    let addrs: Vec<IpAddr> = p.addrs.iter().map(|a| a.addr()).collect();
    hosts.set_peer(&p.name, &aliases, &addrs)
}
