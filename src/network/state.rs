//! Network definitions ([`NetworkInfo`], kept in the durable folder: see
//! `durable.rs`) and attachments ([`Attachment`], rows of the runtime database beside
//! the leases and published ports, so that one transaction writes all three). Each
//! record is held as `key=value` lines; unknown keys are ignored, so the format can grow.
//!
//! ```sql
//! CREATE TABLE net_attachments (network TEXT NOT NULL, container TEXT NOT NULL,
//!     data TEXT NOT NULL, files INTEGER NOT NULL DEFAULT 0,  -- 1: has container files
//!     PRIMARY KEY (network, container));
//! CREATE INDEX net_attachments_files ON net_attachments (network, files);
//! CREATE INDEX net_attachments_container ON net_attachments (container);
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::firewall::Proto;
use crate::link::MacAddr;
use crate::ports::PublishedPort;

/// A network as netplumb created it.
///
/// With feature `serde`: an object with the fields below; addresses and networks as text
/// (`"172.18.0.0/16"`). Missing fields take their defaults, so a record written before a
/// field was added still loads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
#[non_exhaustive]
pub struct NetworkInfo {
    /// The name.
    pub name: String,
    /// The id: 64 hex digits.
    pub id: String,
    /// Creation time, RFC 3339 (UTC).
    pub created: String,
    /// The bridge.
    pub bridge: String,
    /// Whether netplumb created the bridge (else it was there and is kept on removal).
    pub bridge_created: bool,
    /// The gateway addresses netplumb put on the bridge (removed with the network).
    pub bridge_addrs: Vec<IpNet>,
    /// The subnets (IPv4 first).
    pub subnets: Vec<IpNet>,
    /// The gateways, in subnet order.
    pub gateways: Vec<IpAddr>,
    /// The IPv4 allocation range.
    pub ip_range: Option<IpNet>,
    /// The MTU.
    pub mtu: Option<u32>,
    /// Internal: no outbound traffic.
    pub internal: bool,
    /// Inter-container communication.
    pub icc: bool,
    /// Outbound masquerade.
    pub masquerade: bool,
    /// Default host address of published ports.
    pub host_binding: Option<IpAddr>,
    /// IPv6 enabled.
    pub ipv6: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// The firewall backend that holds the network's rules (`nftables`, `iptables`).
    pub firewall: String,
}

/// A container's link to a network.
///
/// With feature `serde`: an object with the fields below; `mac` as text
/// (`"02:42:ac:12:00:02"`), `addrs` as `"172.18.0.2/16"`, `expose` as `[["tcp", 80]]`.
/// Missing fields take their defaults, so a record written before a field was added
/// still loads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
#[non_exhaustive]
pub struct Attachment {
    /// The network's name.
    pub network: String,
    /// The container's id.
    pub container: String,
    /// The container's name.
    pub name: String,
    /// The interface inside the container (`eth0`).
    pub ifname: String,
    /// The host end of the veth (`veth` + 7 hex digits).
    pub host_veth: String,
    /// The container's namespace file.
    pub netns: PathBuf,
    /// The container interface's MAC address.
    pub mac: Option<MacAddr>,
    /// The container's addresses with their prefix.
    pub addrs: Vec<IpNet>,
    /// The published ports.
    pub ports: Vec<PublishedPort>,
    /// The exposed ports (for `--link` and `-P`).
    pub expose: Vec<(Proto, u16)>,
    /// Containers this one links to (`--link NAME`), by name.
    pub links: Vec<String>,
    /// Other names of the container on this network.
    pub aliases: Vec<String>,
    /// Where the container's files (`hosts`, `resolv.conf`, `hostname`) are written.
    pub files: Option<PathBuf>,
    /// The hostname.
    pub hostname: String,
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(" ")
}

fn split<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

fn lines(pairs: &[(&str, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

fn fields(data: &str) -> BTreeMap<&str, &str> {
    data.lines().filter_map(|l| l.split_once('=')).collect()
}

impl NetworkInfo {
    pub(crate) fn encode(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        lines(&[
            ("id", self.id.clone()),
            ("created", self.created.clone()),
            ("bridge", self.bridge.clone()),
            ("bridge_created", self.bridge_created.to_string()),
            ("bridge_addrs", join(&self.bridge_addrs)),
            ("subnets", join(&self.subnets)),
            ("gateways", join(&self.gateways)),
            (
                "ip_range",
                self.ip_range.map(|r| r.to_string()).unwrap_or_default(),
            ),
            ("mtu", self.mtu.map(|m| m.to_string()).unwrap_or_default()),
            ("internal", self.internal.to_string()),
            ("icc", self.icc.to_string()),
            ("masquerade", self.masquerade.to_string()),
            (
                "host_binding",
                self.host_binding.map(|h| h.to_string()).unwrap_or_default(),
            ),
            ("ipv6", self.ipv6.to_string()),
            ("labels", labels.join("\u{1f}")),
            ("firewall", self.firewall.clone()),
        ])
    }

    pub(crate) fn decode(name: &str, data: &str) -> NetworkInfo {
        let f = fields(data);
        let get = |k: &str| f.get(k).copied().unwrap_or("");
        NetworkInfo {
            name: name.to_owned(),
            id: get("id").to_owned(),
            created: get("created").to_owned(),
            bridge: get("bridge").to_owned(),
            bridge_created: get("bridge_created") == "true",
            bridge_addrs: split(get("bridge_addrs")),
            subnets: split(get("subnets")),
            gateways: split(get("gateways")),
            ip_range: get("ip_range").parse().ok(),
            mtu: get("mtu").parse().ok(),
            internal: get("internal") == "true",
            icc: get("icc") != "false",
            masquerade: get("masquerade") != "false",
            host_binding: get("host_binding").parse().ok(),
            ipv6: get("ipv6") == "true",
            labels: get("labels")
                .split('\u{1f}')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            firewall: get("firewall").to_owned(),
        }
    }
}

fn port_text(p: &PublishedPort) -> String {
    format!(
        "{},{},{},{}",
        p.proto, p.host_ip, p.host_port, p.container_port
    )
}

fn port_parse(s: &str) -> Option<PublishedPort> {
    let mut it = s.split(',');
    let proto: Proto = it.next()?.parse().ok()?;
    let ip: IpAddr = it.next()?.parse().ok()?;
    Some(PublishedPort::new(
        proto,
        ip,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

impl Attachment {
    fn encode(&self) -> String {
        let expose: Vec<String> = self
            .expose
            .iter()
            .map(|(p, n)| format!("{n}/{p}"))
            .collect();
        lines(&[
            ("name", self.name.clone()),
            ("ifname", self.ifname.clone()),
            ("host_veth", self.host_veth.clone()),
            ("netns", self.netns.display().to_string()),
            ("mac", self.mac.map(|m| m.to_string()).unwrap_or_default()),
            ("addrs", join(&self.addrs)),
            (
                "ports",
                self.ports
                    .iter()
                    .map(port_text)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ("expose", expose.join(" ")),
            ("links", self.links.join(" ")),
            ("aliases", self.aliases.join(" ")),
            (
                "files",
                self.files
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("hostname", self.hostname.clone()),
        ])
    }

    fn decode(network: &str, container: &str, data: &str) -> Attachment {
        let f = fields(data);
        let get = |k: &str| f.get(k).copied().unwrap_or("");
        let words = |k: &str| get(k).split_whitespace().map(str::to_owned).collect();
        Attachment {
            network: network.to_owned(),
            container: container.to_owned(),
            name: get("name").to_owned(),
            ifname: get("ifname").to_owned(),
            host_veth: get("host_veth").to_owned(),
            netns: PathBuf::from(get("netns")),
            mac: get("mac").parse().ok(),
            addrs: split(get("addrs")),
            ports: get("ports")
                .split_whitespace()
                .filter_map(port_parse)
                .collect(),
            expose: get("expose")
                .split_whitespace()
                .filter_map(|e| {
                    let (n, p) = e.split_once('/')?;
                    Some((p.parse().ok()?, n.parse().ok()?))
                })
                .collect(),
            links: words("links"),
            aliases: words("aliases"),
            files: Some(get("files"))
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            hostname: get("hostname").to_owned(),
        }
    }
}

/// The attachment rows of the runtime database, read and written on the connection the
/// caller holds (in a transaction for writes: the connect, disconnect or gc it is part
/// of).
pub(crate) mod rows {
    use super::*;

    fn db_err(e: rusqlite::Error) -> Error {
        Error::io("runtime database", std::io::Error::other(e))
    }

    fn collect<T>(
        st: &mut rusqlite::Statement<'_>,
        p: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        st.query_map(p, f)
            .and_then(|rows| rows.collect())
            .map_err(db_err)
    }

    pub(crate) fn attachment(
        conn: &Connection,
        network: &str,
        container: &str,
    ) -> Result<Option<Attachment>> {
        conn.prepare_cached(
            "SELECT data FROM net_attachments WHERE network = ?1 AND container = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![network, container], |r| r.get::<_, String>(0))
                .optional()
        })
        .map(|d| d.map(|d| Attachment::decode(network, container, &d)))
        .map_err(db_err)
    }

    /// Attachments of one network, or of every network with `None`.
    pub(crate) fn attachments(conn: &Connection, network: Option<&str>) -> Result<Vec<Attachment>> {
        let mut st = conn
            .prepare_cached("SELECT network, container, data FROM net_attachments WHERE ?1 IS NULL OR network = ?1 ORDER BY network, container")
            .map_err(db_err)?;
        collect(&mut st, params![network], |r| {
            Ok(Attachment::decode(
                &r.get::<_, String>(0)?,
                &r.get::<_, String>(1)?,
                &r.get::<_, String>(2)?,
            ))
        })
    }

    /// The attachments of a network whose containers have files to keep current (an
    /// index lookup: cheap however many containers the network has).
    pub(crate) fn with_files(conn: &Connection, network: &str) -> Result<Vec<Attachment>> {
        let mut st = conn
            .prepare_cached(
                "SELECT container, data FROM net_attachments WHERE network = ?1 AND files = 1",
            )
            .map_err(db_err)?;
        collect(&mut st, params![network], |r| {
            Ok(Attachment::decode(
                network,
                &r.get::<_, String>(0)?,
                &r.get::<_, String>(1)?,
            ))
        })
    }

    /// The attachments of `network` whose container is named `name` (its record starts
    /// with the `name=` line; no column, so the on-disk layout stays as it is).
    pub(crate) fn named(conn: &Connection, network: &str, name: &str) -> Result<Vec<Attachment>> {
        let mut st = conn
            .prepare_cached(
                "SELECT container, data FROM net_attachments WHERE network = ?1 AND instr(char(10) || data, char(10) || 'name=' || ?2 || char(10)) > 0",
            )
            .map_err(db_err)?;
        let all = collect(&mut st, params![network, name], |r| {
            Ok(Attachment::decode(
                network,
                &r.get::<_, String>(0)?,
                &r.get::<_, String>(1)?,
            ))
        })?;
        Ok(all.into_iter().filter(|a| a.name == name).collect())
    }

    /// The attachments of one container, on every network.
    pub(crate) fn of(conn: &Connection, container: &str) -> Result<Vec<Attachment>> {
        let mut st = conn
            .prepare_cached(
                "SELECT network, data FROM net_attachments WHERE container = ?1 ORDER BY network",
            )
            .map_err(db_err)?;
        collect(&mut st, params![container], |r| {
            Ok(Attachment::decode(
                &r.get::<_, String>(0)?,
                container,
                &r.get::<_, String>(1)?,
            ))
        })
    }

    pub(crate) fn put(conn: &Connection, a: &Attachment) -> Result<()> {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO net_attachments (network, container, data, files) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut st| st.execute(params![a.network, a.container, a.encode(), a.files.is_some()]))
        .map_err(db_err)?;
        Ok(())
    }

    /// Deletes the attachments of `containers` on `network` (every attachment of it with
    /// `None`); returns the rows as they were.
    pub(crate) fn take(
        conn: &Connection,
        network: &str,
        containers: Option<&[&str]>,
    ) -> Result<Taken> {
        let mut taken = Taken::default();
        let mut st = conn
            .prepare_cached("DELETE FROM net_attachments WHERE network = ?1 AND (?2 IS NULL OR container = ?2) RETURNING container, data, files")
            .map_err(db_err)?;
        let all = [None];
        let which: Vec<Option<&str>> = match containers {
            None => all.to_vec(),
            Some(cs) => cs.iter().map(|c| Some(*c)).collect(),
        };
        for c in which {
            let rows = collect(&mut st, params![network, c], |r| {
                Ok((network.to_owned(), r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            taken.attachments.extend(rows);
        }
        Ok(taken)
    }

    /// Puts back rows [`take`] took, byte for byte.
    pub(crate) fn restore(conn: &Connection, taken: &Taken) -> Result<()> {
        for (n, c, data, files) in &taken.attachments {
            conn.execute(
                "INSERT OR REPLACE INTO net_attachments (network, container, data, files) VALUES (?1, ?2, ?3, ?4)",
                params![n, c, data, files],
            )
            .map_err(db_err)?;
        }
        Ok(())
    }
}

/// Attachment rows as they were stored, taken out by [`rows::take`] and put back, byte
/// for byte, by [`rows::restore`] (the undo of a disconnect or a network removal).
#[derive(Debug, Clone, Default)]
pub(crate) struct Taken {
    /// `(network, container, data, files)` of each attachment row taken.
    attachments: Vec<(String, String, String, bool)>,
}

impl Taken {
    /// How many attachment rows were taken.
    pub(crate) fn attachments(&self) -> usize {
        self.attachments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let n = NetworkInfo {
            name: "n".into(),
            id: "ab".repeat(32),
            subnets: vec![
                "172.26.0.0/16".parse().unwrap(),
                "fd00::/64".parse().unwrap(),
            ],
            gateways: vec!["172.26.0.1".parse().unwrap()],
            labels: [("a".to_string(), "b=c".to_string())].into(),
            icc: false,
            masquerade: true,
            ..NetworkInfo::default()
        };
        assert_eq!(NetworkInfo::decode("n", &n.encode()), n);
        let a = Attachment {
            network: "n".into(),
            container: "c1".into(),
            ports: vec![PublishedPort::new(
                Proto::Udp,
                "::".parse().unwrap(),
                5353,
                53,
            )],
            expose: vec![(Proto::Tcp, 80)],
            links: vec!["db".into()],
            mac: Some(MacAddr([2, 0x42, 172, 26, 0, 2])),
            ..Attachment::default()
        };
        assert_eq!(Attachment::decode("n", "c1", &a.encode()), a);
    }
}
