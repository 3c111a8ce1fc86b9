//! Migration of a state folder in the layout before the durable/runtime split: one
//! `ipam.db` with the IPAM tables, the network definitions (`net_networks`) and the
//! attachments (`net_attachments`), and the published-port journal `ports/published`.
//!
//! Run by the first open of a boot's runtime database, under its write lock: each
//! network definition becomes a file of the durable folder (with its IPAM networks'
//! subnet, gateway, range and reserved addresses); when the old files were written during
//! this boot, the IPAM networks (with their cursors), leases, attachments and published
//! ports move into the runtime database, else (written before the last reboot) they
//! describe links that are gone and are dropped. The old files are then renamed
//! `ipam.db.migrated` and `ports.migrated`. An `ipam.db` without `net_networks` is a
//! standalone IPAM database ([`crate::ipam::Ipam::open`]) and is left alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

use super::durable::Definitions;
use super::names::ipam_name;
use super::port_rows::{db_err, SqlPorts};
use super::state::NetworkInfo;
use crate::error::{Error, Result};
use crate::ipam::{Network, Owner, SqliteTx, StoreTxn};
use crate::ports::book::PortBook;
use crate::ports::registry::Registry;

const OLD_DB: &str = "ipam.db";
const OLD_PORTS: &str = "ports";

/// Migrates the old layout in `state_dir`, if there is one; an error names the folder
/// and what to do.
pub(crate) fn old_layout(
    tx: &mut SqliteTx<'_>,
    state_dir: &Path,
    defs: &Definitions,
) -> Result<()> {
    let db = state_dir.join(OLD_DB);
    if !db.exists() {
        return Ok(());
    }
    migrate(tx, state_dir, defs).map_err(|e| {
        Error::io(
            state_dir,
            std::io::Error::other(format!(
                "cannot migrate the state folder from the old layout ({OLD_DB}, {OLD_PORTS}/): {e}; \
                 move {OLD_DB}* and {OLD_PORTS}/ out of it to start with no networks"
            )),
        )
    })
}

fn migrate(tx: &mut SqliteTx<'_>, state_dir: &Path, defs: &Definitions) -> Result<()> {
    let path = state_dir.join(OLD_DB);
    let ports_file = state_dir.join(OLD_PORTS).join("published");
    // Before opening: opening a database in WAL mode touches its files.
    let wal = state_dir.join(format!("{OLD_DB}-wal"));
    let same_boot = written_this_boot(&[&path, &wal, &ports_file]);
    let old = Connection::open(&path).map_err(db_err)?;
    let ours: i64 = old
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'net_networks'",
            [],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    if ours == 0 {
        return Ok(()); // a standalone IPAM database
    }
    let ipam = old_ipam_networks(&old)?;
    let mut st = old
        .prepare("SELECT name, data FROM net_networks ORDER BY name")
        .map_err(db_err)?;
    let nets: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(db_err)?;
    drop(st);
    for (name, data) in &nets {
        let info = NetworkInfo::decode(name, data);
        let mine: Vec<Network> = ipam
            .iter()
            .filter(|n| n.name == ipam_name(name, false) || n.name == ipam_name(name, true))
            .map(|n| Network {
                cursor: None,
                last_released: None,
                revision: 0,
                ..n.clone()
            })
            .collect();
        if defs.get(name)?.is_none() {
            defs.create(&info, &mine)?;
        }
    }
    if same_boot {
        move_runtime(tx, &old, &ipam, &ports_file)?;
    }
    drop(old);
    log::info!(
        "{}: migrated {} network definition(s) from the old layout ({})",
        state_dir.display(),
        nets.len(),
        if same_boot {
            "leases, ports and records moved"
        } else {
            "written before the last boot: leases, ports and records dropped"
        }
    );
    for f in [
        OLD_DB.to_owned(),
        format!("{OLD_DB}-wal"),
        format!("{OLD_DB}-shm"),
        OLD_PORTS.to_owned(),
    ] {
        let from = state_dir.join(&f);
        if from.exists() {
            let to = state_dir.join(format!("{f}.migrated"));
            std::fs::rename(&from, &to).map_err(|e| Error::io(from, e))?;
        }
    }
    Ok(())
}

/// Whether any of `files` was modified since this boot began.
fn written_this_boot(files: &[&PathBuf]) -> bool {
    let Some(boot) = boot_time() else {
        return false;
    };
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .any(|t| t >= boot)
}

/// When this boot began (`btime` in `/proc/stat`).
fn boot_time() -> Option<SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The IPAM networks of the old database, with their cursors.
fn old_ipam_networks(old: &Connection) -> Result<Vec<Network>> {
    let mut st = old
        .prepare(
            "SELECT name, subnet, gateway, ip_range, reserved, cursor, last_released FROM networks",
        )
        .map_err(db_err)?;
    let texts: Vec<[Option<String>; 7]> = st
        .query_map([], |r| {
            let mut row: [Option<String>; 7] = Default::default();
            for (i, v) in row.iter_mut().enumerate() {
                *v = r.get(i)?;
            }
            Ok(row)
        })
        .and_then(|rows| rows.collect())
        .map_err(db_err)?;
    texts
        .into_iter()
        .map(|[name, subnet, gw, range, reserved, cursor, released]| {
            let ip = |s: Option<String>| s.and_then(|s| s.parse().ok());
            let text = |s: Option<String>| s.unwrap_or_default();
            let (subnet, range) = (text(subnet), text(range));
            let bad = |what: &'static str, v: &str| {
                Error::invalid(what, v, "unreadable in the old ipam.db")
            };
            Ok(Network {
                subnet: subnet.parse().map_err(|_| bad("subnet", &subnet))?,
                gateway: ip(gw),
                range: range.parse().map_err(|_| bad("ip range", &range))?,
                reserved: text(reserved)
                    .split_whitespace()
                    .filter_map(|a| a.parse().ok())
                    .collect(),
                cursor: ip(cursor),
                last_released: ip(released),
                revision: 0,
                name: text(name),
            })
        })
        .collect()
}

/// Moves the IPAM networks and leases, the attachments and the published ports of the
/// old layout into the runtime database.
fn move_runtime(
    tx: &mut SqliteTx<'_>,
    old: &Connection,
    ipam: &[Network],
    ports_file: &Path,
) -> Result<()> {
    for n in ipam {
        if tx.network(&n.name)?.is_none() {
            tx.create_network(n)?;
        }
    }
    let mut st = old
        .prepare("SELECT network, ip, container, ifname FROM leases")
        .map_err(db_err)?;
    let leases: Vec<(String, String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .and_then(|rows| rows.collect())
        .map_err(db_err)?;
    for (net, ip, container, ifname) in leases {
        let Ok(ip) = ip.parse() else { continue };
        tx.hold(&net, ip, &Owner::new(container, ifname))?;
    }
    let mut st = old
        .prepare("SELECT network, container, data, files FROM net_attachments")
        .map_err(db_err)?;
    let atts: Vec<(String, String, String, bool)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .and_then(|rows| rows.collect())
        .map_err(db_err)?;
    for (n, c, data, files) in atts {
        tx.conn()
            .execute(
                "INSERT OR REPLACE INTO net_attachments (network, container, data, files) VALUES (?1, ?2, ?3, ?4)",
                params![n, c, data, files],
            )
            .map_err(db_err)?;
    }
    let text = match std::fs::read_to_string(ports_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(ports_file, e)),
    };
    let whole = text.rfind('\n').map_or("", |i| &text[..=i]);
    let reg = Registry::parse(ports_file, whole)?;
    let mut book = SqlPorts { conn: tx.conn() };
    for p in reg.all() {
        book.insert(p)?;
    }
    for (k, last) in reg.cursors() {
        book.set_cursor(*k, last)?;
    }
    Ok(())
}
