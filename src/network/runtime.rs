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

use std::path::{Path, PathBuf};

use rusqlite::params;

use super::durable::Definitions;
use super::migrate;
use super::port_rows::db_err;
use crate::error::{Error, Result};
use crate::ipam::{Ipam, SqliteOptions, SqliteStore, SqliteTx, StoreTxn};

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

const PREFIX: &str = "netplumb-";

/// The runtime database of boot `boot` in `run_dir`.
pub(crate) fn db_path(run_dir: &Path, boot: &str) -> PathBuf {
    run_dir.join(format!("{PREFIX}{boot}.db"))
}

/// Opens this boot's runtime database in `run_dir`; a new one is set up (tables, the
/// definitions' IPAM networks, an old layout migrated, past boots' files deleted) under
/// the write lock of the open itself.
pub(crate) fn open(
    state_dir: &Path,
    run_dir: &Path,
    defs: &Definitions,
    busy: std::time::Duration,
) -> Result<Ipam> {
    let boot = crate::sysctl::boot_id()?;
    open_boot(state_dir, run_dir, defs, &boot, busy)
}

/// [`open`], for boot `boot`.
pub(crate) fn open_boot(
    state_dir: &Path,
    run_dir: &Path,
    defs: &Definitions,
    boot: &str,
    busy: std::time::Duration,
) -> Result<Ipam> {
    let path = db_path(run_dir, boot);
    let opts = SqliteOptions::default().no_sync(true).busy_timeout(busy);
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
