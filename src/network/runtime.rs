//! The runtime half of the state: one SQLite database in the runtime folder (default
//! `/run/netplumb`, a tmpfs) holding everything that describes this boot's links and
//! namespaces: the IPAM store (networks' allocation state, leases, held runs), the
//! published host ports with their round-robin cursors, and the attachment records. A
//! connect, disconnect and gc write all three in one transaction, so a crash leaves all
//! of them or none.
//!
//! - **No syncs** (`synchronous=OFF`): a commit survives any crash of the process; only a
//!   crash of the machine could lose one, and that ends the boot, whose state this is.
//! - **One file per boot**: the database is `netplumb-BOOT_ID.db`, named after
//!   `/proc/sys/kernel/random/boot_id`. A runtime folder that outlives a reboot (one
//!   configured on a disk) thus never shows a past boot's leases, ports or records, and a
//!   database a power cut may have torn is never read again: the first open of a boot
//!   creates a new file and deletes the old ones.
//! - **Seeded from the definitions**: a new database gets each defined network's IPAM
//!   networks (same subnet, gateway, range and reserved addresses, no leases), so the
//!   networks stay usable after a reboot; an old-layout state folder is migrated into it
//!   (`migrate.rs`).
//!
//! ```sql
//! -- the IPAM tables (ipam::sqlite), then:
//! CREATE TABLE net_attachments (…);  -- see state.rs
//! CREATE TABLE net_ports (proto TEXT NOT NULL, host_ip TEXT NOT NULL,
//!     host_port INTEGER NOT NULL, container_port INTEGER NOT NULL,
//!     PRIMARY KEY (proto, host_port, host_ip)) WITHOUT ROWID;
//! CREATE TABLE net_port_cursors (proto TEXT NOT NULL, host_ip TEXT NOT NULL,
//!     range TEXT NOT NULL, last INTEGER NOT NULL,
//!     PRIMARY KEY (proto, host_ip, range)) WITHOUT ROWID;
//! CREATE TABLE net_runtime (key TEXT PRIMARY KEY, value TEXT NOT NULL);
//!     -- version, boot, state_dir: what made this database
//! ```

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::durable::Definitions;
use super::migrate;
use crate::error::{Error, Result};
use crate::ipam::{Ipam, SqliteOptions, SqliteStore, SqliteTx, StoreTxn};
use crate::ports::book::PortBook;
use crate::ports::registry::CursorKey;
use crate::ports::{Proto, PublishedPort};

const SCHEMA: &str = "
CREATE TABLE net_attachments (network TEXT NOT NULL, container TEXT NOT NULL,
    data TEXT NOT NULL, files INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (network, container));
CREATE INDEX net_attachments_files ON net_attachments (network, files);
CREATE INDEX net_attachments_container ON net_attachments (container);
CREATE TABLE net_ports (proto TEXT NOT NULL, host_ip TEXT NOT NULL, host_port INTEGER NOT NULL,
    container_port INTEGER NOT NULL, PRIMARY KEY (proto, host_port, host_ip)) WITHOUT ROWID;
CREATE TABLE net_port_cursors (proto TEXT NOT NULL, host_ip TEXT NOT NULL, range TEXT NOT NULL,
    last INTEGER NOT NULL, PRIMARY KEY (proto, host_ip, range)) WITHOUT ROWID;
CREATE TABLE net_runtime (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
const PREFIX: &str = "netplumb-";

pub(crate) fn db_err(e: rusqlite::Error) -> Error {
    Error::io("runtime database", std::io::Error::other(e))
}

/// This boot's id (hex digits and dashes).
fn boot_id() -> Result<String> {
    let id = std::fs::read_to_string(BOOT_ID).map_err(|e| Error::io(BOOT_ID, e))?;
    let id = id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(Error::invalid("boot id", id, "not a UUID"));
    }
    Ok(id.to_owned())
}

/// The runtime database of boot `boot` in `run_dir`.
pub(crate) fn db_path(run_dir: &Path, boot: &str) -> PathBuf {
    run_dir.join(format!("{PREFIX}{boot}.db"))
}

/// Opens this boot's runtime database in `run_dir`; a new one is set up (tables, the
/// definitions' IPAM networks, an old layout migrated, past boots' files deleted) under
/// the write lock of the open itself.
pub(crate) fn open(state_dir: &Path, run_dir: &Path, defs: &Definitions) -> Result<Ipam> {
    let boot = boot_id()?;
    open_boot(state_dir, run_dir, defs, &boot)
}

/// [`open`], for boot `boot`.
pub(crate) fn open_boot(
    state_dir: &Path,
    run_dir: &Path,
    defs: &Definitions,
    boot: &str,
) -> Result<Ipam> {
    let path = db_path(run_dir, boot);
    let opts = SqliteOptions::default().no_sync(true);
    let store = SqliteStore::open_extended(&path, opts, |tx, fresh| {
        if !fresh {
            return Ok::<(), Error>(());
        }
        set_up(tx, state_dir, defs, boot)?;
        remove_past_boots(run_dir, &path);
        Ok(())
    })?;
    Ok(Ipam::new(store))
}

fn set_up(tx: &mut SqliteTx<'_>, state_dir: &Path, defs: &Definitions, boot: &str) -> Result<()> {
    let conn = tx.conn();
    conn.execute_batch(SCHEMA).map_err(db_err)?;
    let dir = state_dir.display().to_string();
    for (k, v) in [
        ("version", "1"),
        ("boot", boot),
        ("state_dir", dir.as_str()),
    ] {
        conn.execute(
            "INSERT INTO net_runtime (key, value) VALUES (?1, ?2)",
            params![k, v],
        )
        .map_err(db_err)?;
    }
    migrate::old_layout(tx, state_dir, defs)?;
    for (_, nets) in defs.all()? {
        for n in nets {
            seed(tx, &n)?;
        }
    }
    Ok(())
}

/// Creates IPAM network `n` (no leases, cursors at the start) unless it is there.
pub(crate) fn seed(tx: &mut dyn StoreTxn, n: &crate::ipam::Network) -> Result<()> {
    if tx.network(&n.name)?.is_none() {
        log::debug!("runtime database: seeding IPAM network {}", n.name);
        tx.create_network(n)?;
    }
    Ok(())
}

/// Deletes the runtime databases of past boots (best effort: they are never read).
fn remove_past_boots(run_dir: &Path, ours: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    let ours = ours.file_name().map(|f| f.to_string_lossy().into_owned());
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let db = name
            .strip_suffix("-wal")
            .or_else(|| name.strip_suffix("-shm"))
            .unwrap_or(&name);
        if db.starts_with(PREFIX) && db.ends_with(".db") && Some(db) != ours.as_deref() {
            log::debug!("removing {name}, the runtime database of a past boot");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The published ports and cursors of the runtime database, on the connection of the
/// caller's transaction.
pub(crate) struct SqlPorts<'c> {
    pub(crate) conn: &'c mut Connection,
}

fn cursor_params(key: &CursorKey) -> (String, String, String) {
    let (proto, ip, range) = key;
    (proto.to_string(), ip.to_string(), range.to_string())
}

impl PortBook for SqlPorts<'_> {
    fn conflict(&mut self, proto: Proto, ip: IpAddr, port: u16) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT host_ip FROM net_ports WHERE proto = ?1 AND host_port = ?2")
            .map_err(db_err)?;
        let ips: Vec<String> = st
            .query_map(params![proto.to_string(), port], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(db_err)?;
        Ok(ips
            .iter()
            .filter_map(|i| i.parse().ok())
            .any(|q| crate::ports::published::addrs_overlap(q, ip)))
    }

    fn cursor(&mut self, key: &CursorKey) -> Result<Option<u16>> {
        let (p, ip, r) = cursor_params(key);
        self.conn
            .prepare_cached(
                "SELECT last FROM net_port_cursors WHERE proto = ?1 AND host_ip = ?2 AND range = ?3",
            )
            .and_then(|mut st| st.query_row(params![p, ip, r], |r| r.get(0)).optional())
            .map_err(db_err)
    }

    fn set_cursor(&mut self, key: CursorKey, port: u16) -> Result<()> {
        let (p, ip, r) = cursor_params(&key);
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO net_port_cursors (proto, host_ip, range, last) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut st| st.execute(params![p, ip, r, port]))
            .map_err(db_err)?;
        Ok(())
    }

    fn insert(&mut self, p: PublishedPort) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO net_ports (proto, host_ip, host_port, container_port) VALUES (?1, ?2, ?3, ?4)")
            .and_then(|mut st| {
                st.execute(params![
                    p.proto.to_string(),
                    p.host_ip.to_string(),
                    p.host_port,
                    p.container_port
                ])
            })
            .map_err(db_err)?;
        Ok(())
    }

    fn remove(&mut self, p: &PublishedPort) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "DELETE FROM net_ports WHERE proto = ?1 AND host_port = ?2 AND host_ip = ?3",
            )
            .and_then(|mut st| {
                st.execute(params![
                    p.proto.to_string(),
                    p.host_port,
                    p.host_ip.to_string()
                ])
            })
            .map_err(db_err)?;
        Ok(n > 0)
    }
}

/// Every published port of the runtime database, by protocol and host port.
pub(crate) fn published(conn: &Connection) -> Result<Vec<PublishedPort>> {
    let mut st = conn
        .prepare_cached("SELECT proto, host_ip, host_port, container_port FROM net_ports")
        .map_err(db_err)?;
    let rows: Vec<(String, String, u16, u16)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .and_then(|rows| rows.collect())
        .map_err(db_err)?;
    let mut out: Vec<PublishedPort> = rows
        .into_iter()
        .filter_map(|(p, ip, h, c)| {
            Some(PublishedPort::new(p.parse().ok()?, ip.parse().ok()?, h, c))
        })
        .collect();
    out.sort_by_key(|p| (p.proto, p.host_port));
    Ok(out)
}
