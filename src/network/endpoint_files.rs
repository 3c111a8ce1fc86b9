//! A connect's container files: the container's own `hostname`, `hosts` and
//! `resolv.conf`, and its line in the `hosts` of its peers; and the files of a container
//! with no network.

use std::net::IpAddr;

use super::config::DEFAULT_NETWORK;
use super::container::Container;
use super::files::{self, ContainerFiles, HostEntry, Hostname, HostsFile, ResolvConf};
use super::host::Host;
use super::state::{rows, Attachment, NetworkInfo};
use crate::error::{Error, Result, ResultExt};
use crate::fault;
use crate::ipam::SqliteTx;
use crate::journal::Txn;

impl Host {
    /// Writes the container's `hostname`, `hosts` and `resolv.conf` (when it has a files
    /// folder), and adds it to the `hosts` of its peers on a user-defined network.
    pub(super) fn files_steps(
        &mut self,
        net: &NetworkInfo,
        ctr: &Container,
        att: &Attachment,
        db: &mut SqliteTx<'_>,
        tx: &mut Txn,
    ) -> Result<()> {
        // Peers' names go in this container's hosts (all of them, only when it has files);
        // this container goes in the hosts of the peers that have files.
        let user_net = net.name != DEFAULT_NETWORK;
        if let Some(dir) = &ctr.files {
            let peers: Vec<Attachment> = if user_net {
                rows::attachments(db.conn(), Some(&net.name))?
            } else {
                Vec::new()
            };
            fault::point("container files")?;
            let hosts = self.hosts_of(net, ctr, att, &peers, db)?;
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
                .map(|f| ContainerFiles::new(dir).read(f))
                .collect::<Result<Vec<_>>>()?;
            let d = dir.clone();
            tx.record(
                format!("restore {}/{{hostname,hosts,resolv.conf}}", d.display()),
                move || {
                    for (f, text) in names.iter().zip(old) {
                        match text {
                            Some(t) => files::write_atomic(&d, f, &t)?,
                            None => std::fs::remove_file(d.join(f))
                                .or_gone()
                                .map_err(|e| Error::io(&d, e))?,
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
        for p in rows::with_files(db.conn(), &net.name)? {
            let Some(pdir) = p.files.filter(|_| p.container != att.container) else {
                continue;
            };
            fault::point("peer files")?;
            let Some(before) = ContainerFiles::new(&pdir).read(ContainerFiles::HOSTS)? else {
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
        db: &mut SqliteTx<'_>,
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
        let all = if ctr.links.is_empty() {
            Vec::new()
        } else {
            rows::attachments(db.conn(), Some(&net.name))?
        };
        for l in &ctr.links {
            let (target, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
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
}

fn set_peer(hosts: &mut HostsFile, p: &Attachment) -> Result<()> {
    let aliases: Vec<&str> = p.aliases.iter().map(String::as_str).collect();
    let addrs: Vec<IpAddr> = p.addrs.iter().map(|a| a.addr()).collect();
    hosts.set_peer(&p.name, &aliases, &addrs)
}
