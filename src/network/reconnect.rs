//! A connect of a container that is already connected, or whose name is taken: the same
//! request again is done already; anything else is refused with what differs.
//!
//! A container restarted with a fresh namespace gets [`Error::Conflict`] naming
//! `namespace`, not a replacement of its attachment: the library cannot tell a restart from
//! two containers given the same id, and replacing would tear down published ports and
//! `hosts` entries behind the runtime's back. The runtime disconnects first (as Docker's
//! and Podman's runtimes do when a container stops), then connects again.

use std::os::unix::fs::MetadataExt;

use rusqlite::Connection;

use super::container::Container;
use super::host::Host;
use super::state::{rows, Attachment};
use crate::error::{Error, Object, Result, ResultExt};
use crate::netns::Netns;
use crate::ports::{HostPorts, PortMapping, PublishedPort};

impl Host {
    /// `Ok` when `att` (the container's attachment to the network) is what `ctr` asks
    /// for, else [`Error::Conflict`] naming every part that differs.
    pub(super) fn same_request(&mut self, att: &Attachment, ctr: &Container) -> Result<()> {
        let hostname = ctr
            .hostname
            .clone()
            .unwrap_or_else(|| ctr.id.chars().take(12).collect());
        let has = |ip: Option<std::net::IpAddr>| {
            ip.map_or(true, |ip| att.addrs.iter().any(|a| a.addr() == ip))
        };
        let mut differs = Vec::new();
        for (what, same) in [
            ("name", att.name == ctr.name),
            ("interface name", att.ifname == ctr.ifname),
            ("ip", has(ctr.ip)),
            ("ip6", has(ctr.ip6)),
            ("mac", ctr.mac.is_none() || ctr.mac == att.mac),
            ("ports", same_ports(&ctr.ports, &att.ports)),
            ("exposed ports", att.expose == ctr.expose),
            ("links", att.links == ctr.links),
            ("aliases", att.aliases == ctr.aliases),
            ("files", att.files == ctr.files),
            ("hostname", att.hostname == hostname),
        ] {
            if !same {
                differs.push(what);
            }
        }
        if !self.same_netns(att, &ctr.netns)? {
            differs.insert(0, "namespace");
        }
        if differs.is_empty() {
            return Ok(());
        }
        Err(Error::Conflict {
            object: Object::Container,
            name: ctr.id.clone(),
            network: att.network.clone(),
            differs,
        })
    }

    /// Whether `ns` is the namespace `att` was connected in: the same file (a named
    /// namespace), holding the attachment's interface with its MAC address. The inode
    /// alone does not tell: the kernel gives a namespace made after the old one died the
    /// old one's inode number again, but not its link (a veth dies with its namespace).
    fn same_netns(&mut self, att: &Attachment, ns: &Netns) -> Result<bool> {
        let named = !att.netns.as_os_str().is_empty();
        if named && !std::fs::metadata(&att.netns).is_ok_and(|m| m.ino() == ns.inode()) {
            return Ok(false);
        }
        let mut inside = self.rtnl_in(ns)?;
        let link = inside.link(att.ifname.as_str()).optional()?;
        Ok(link.is_some_and(|l| att.mac.is_none() || l.mac == att.mac))
    }
}

/// Refuses `ctr` when another container of `network` has its name, as Docker does
/// ("endpoint with name web already exists in network n").
pub(super) fn name_free(conn: &Connection, network: &str, ctr: &Container) -> Result<()> {
    let taken = rows::named(conn, network, &ctr.name)?;
    match taken.into_iter().find(|a| a.container != ctr.id) {
        None => Ok(()),
        Some(a) => Err(Error::Exists {
            object: Object::Endpoint,
            name: ctr.name.clone(),
            detail: Some(format!("in network {network} (container {})", a.container)),
        }),
    }
}

/// Whether the published ports are what the mappings ask for: every container port of
/// every mapping is published, and every published port answers a mapping (a mapping
/// without a host address may be published on more than one).
fn same_ports(want: &[PortMapping], have: &[PublishedPort]) -> bool {
    let answers = |m: &PortMapping, p: &PublishedPort| {
        p.proto == m.proto
            && m.container_ports.contains(p.container_port)
            && m.host_ip.map_or(true, |ip| ip == p.host_ip)
            && match m.host_ports {
                HostPorts::Any => true,
                HostPorts::Range(r) => r.contains(p.host_port),
            }
    };
    want.iter().all(|m| {
        m.container_ports
            .iter()
            .all(|c| have.iter().any(|p| p.container_port == c && answers(m, p)))
    }) && have.iter().all(|p| want.iter().any(|m| answers(m, p)))
}
