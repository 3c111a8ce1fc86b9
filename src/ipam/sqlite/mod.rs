//! [`SqliteStore`]: the embedded default store, one SQLite database file shared by every
//! process on the host that opens it.
//!
//! - **Crash safety.** Write-ahead log (`journal_mode=WAL`): a transaction is in the
//!   database entirely or not at all, whatever instant a process is killed at; the next
//!   opener rolls an interrupted write back. With the default `synchronous=NORMAL` a
//!   commit survives the death of the process at once, and a power loss once the log is
//!   synced (at the latest at the next checkpoint); [`SqliteOptions::full_sync`] syncs at
//!   every commit.
//! - **Several processes.** Each [`StoreTxn`] starts with `BEGIN IMMEDIATE`, which takes
//!   the database's write lock (a POSIX lock, released by the kernel when a holder dies)
//!   before reading, so transactions of all processes run one after another and never
//!   conflict. Waiting for the lock is bounded by [`SqliteOptions::busy_timeout`].
//! - **Schema**, versioned by `PRAGMA user_version` (currently 1):
//!
//! ```sql
//! CREATE TABLE networks (name TEXT PRIMARY KEY, subnet TEXT NOT NULL, gateway TEXT,
//!     ip_range TEXT NOT NULL, reserved TEXT NOT NULL,  -- space-separated addresses
//!     cursor TEXT, last_released TEXT, revision INTEGER NOT NULL);
//! CREATE TABLE leases (network TEXT NOT NULL, address BLOB NOT NULL,  -- 16 bytes, big-endian
//!     ip TEXT NOT NULL, container TEXT NOT NULL, ifname TEXT NOT NULL,
//!     PRIMARY KEY (network, address)) WITHOUT ROWID;
//! CREATE UNIQUE INDEX leases_owner ON leases (network, container, ifname);
//! CREATE TABLE held_runs (network TEXT NOT NULL, first BLOB NOT NULL, last BLOB NOT NULL,
//!     PRIMARY KEY (network, first)) WITHOUT ROWID;  -- maximal runs of held addresses
//! ```
//!
//! `leases` is the truth; `held_runs` indexes it as maximal runs of consecutive held
//! addresses, updated in the same transaction, so that the first free address after the
//! cursor is one index lookup however full the network is. [`SqliteStore::check`]
//! verifies that the two agree.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

mod busy;
mod tx;

use tx::store_err;
pub(crate) use tx::SqliteTx;

use super::pool::to_u128;
use super::{IpamError, Store, StoreTxn};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE networks (name TEXT PRIMARY KEY, subnet TEXT NOT NULL, gateway TEXT,
    ip_range TEXT NOT NULL, reserved TEXT NOT NULL, cursor TEXT, last_released TEXT,
    revision INTEGER NOT NULL);
CREATE TABLE leases (network TEXT NOT NULL, address BLOB NOT NULL, ip TEXT NOT NULL,
    container TEXT NOT NULL, ifname TEXT NOT NULL,
    PRIMARY KEY (network, address)) WITHOUT ROWID;
CREATE UNIQUE INDEX leases_owner ON leases (network, container, ifname);
CREATE TABLE held_runs (network TEXT NOT NULL, first BLOB NOT NULL, last BLOB NOT NULL,
    PRIMARY KEY (network, first)) WITHOUT ROWID;
PRAGMA user_version = 1;
";

/// How a [`SqliteStore`] opens its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct SqliteOptions {
    busy_timeout: Duration,
    full_sync: bool,
    no_sync: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(30),
            full_sync: false,
            no_sync: false,
        }
    }
}

impl SqliteOptions {
    /// How long a transaction waits for another process's to finish before failing with
    /// [`IpamError::Store`] (default 30 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sync the log to disk at every commit (`synchronous=FULL`), so a commit also
    /// survives a power loss at once; slower. The default (`NORMAL`) survives any crash
    /// of the process.
    pub fn full_sync(mut self, on: bool) -> Self {
        self.full_sync = on;
        self
    }

    /// Never sync (`synchronous=OFF`), for a database on a tmpfs that dies with the boot
    /// anyway (a [`Host`](crate::network::Host)'s runtime database). A commit still
    /// survives any crash of the process; only a crash of the machine, which empties the
    /// tmpfs, could lose it. Overrides [`SqliteOptions::full_sync`].
    pub fn no_sync(mut self, on: bool) -> Self {
        self.no_sync = on;
        self
    }
}

/// The embedded default store: a SQLite database file, crash-safe and shared by several
/// processes. See the [module docs](self) for the format.
///
/// ```
/// use netplumb::ipam::{Ipam, NetworkSpec, Owner, SqliteStore};
/// let dir = std::env::temp_dir().join(format!("netplumb-doc-{}", std::process::id()));
/// let ipam = Ipam::new(SqliteStore::open(dir.join("ipam.db"))?);
/// ipam.create_network(&NetworkSpec::new("mybr0").subnet("172.26.0.0/16".parse().unwrap()))?;
/// let lease = ipam.allocate("mybr0", &Owner::new("3f2a1c0", "eth0"))?;
/// assert_eq!(lease.address.to_string(), "172.26.0.2");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), netplumb::ipam::IpamError>(())
/// ```
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    busy_timeout: Duration,
}

impl SqliteStore {
    /// Where [`SqliteStore::open_default`] keeps the database.
    pub const DEFAULT_PATH: &'static str = "/var/lib/netplumb/ipam.db";

    /// Opens (or creates, with its parent folders) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IpamError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database at [`SqliteStore::DEFAULT_PATH`].
    pub fn open_default() -> Result<Self, IpamError> {
        Self::open(Self::DEFAULT_PATH)
    }

    /// Opens (or creates) the database at `path` with the given options.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, IpamError> {
        Self::open_extended(path, options, |_, _| Ok::<(), IpamError>(()))
    }

    /// As [`SqliteStore::open_with`]; `extend` runs inside the transaction that checks
    /// (and in a new database creates) the IPAM schema, told whether the database is new,
    /// so that the owner of a shared database adds its own tables and rows under the same
    /// write lock, at no extra transaction per open.
    pub(crate) fn open_extended<E: From<IpamError>>(
        path: impl AsRef<Path>,
        options: SqliteOptions,
        extend: impl FnOnce(&mut SqliteTx<'_>, bool) -> Result<(), E>,
    ) -> Result<Self, E> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| store_err(format!("create {}", dir.display()), e))?;
        }
        let ctx = |what: &str| format!("{}: {what}", path.display());
        let mut conn = Connection::open(&path).map_err(|e| store_err(ctx("open"), e))?;
        busy::wait_up_to(options.busy_timeout);
        // `busy_handler` takes `&mut self` in newer rusqlite releases, `&self` in older ones.
        let handle: &mut Connection = &mut conn;
        handle
            .busy_handler(Some(busy::on_busy))
            .map_err(|e| store_err(ctx("busy handler"), e))?;
        conn.set_prepared_statement_cache_capacity(32);
        let mode =
            wal(&conn, options.busy_timeout).map_err(|e| store_err(ctx("journal_mode=WAL"), e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(IpamError::Corrupt {
                context: ctx("journal_mode"),
                reason: format!("WAL refused (mode {mode})"),
            }
            .into());
        }
        let sync = match (options.no_sync, options.full_sync) {
            (true, _) => "OFF",
            (false, true) => "FULL",
            (false, false) => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(|e| store_err(ctx("synchronous"), e))?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            path,
            busy_timeout: options.busy_timeout,
        };
        store.migrate(extend)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for reads outside a transaction (each statement its own).
    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the schema in a new database, under the write lock so that concurrent first
    /// openers create it once; refuses a database written by a newer version.
    fn migrate<E: From<IpamError>>(
        &self,
        extend: impl FnOnce(&mut SqliteTx<'_>, bool) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut tx = self.begin_tx()?;
        let version: i64 = tx
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| tx.err("read schema version", e))?;
        match version {
            0 => tx
                .conn
                .execute_batch(SCHEMA)
                .map_err(|e| tx.err("create schema", e))?,
            SCHEMA_VERSION => {}
            v => {
                return Err(IpamError::Corrupt {
                    context: self.path.display().to_string(),
                    reason: format!(
                    "schema version {v} is newer than this netplumb supports ({SCHEMA_VERSION})"
                ),
                }
                .into())
            }
        }
        extend(&mut tx, version == 0)?;
        Ok(tx.finish()?)
    }

    /// Verifies the database: SQLite's own integrity check, every lease on an address its
    /// network may hand out (in the subnet, not the gateway or a reserved address) and
    /// stored consistently, and the run index equal to the leases.
    pub fn check(&self) -> Result<(), IpamError> {
        let mut tx = self.begin_tx()?;
        let ok: String = tx
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| tx.err("integrity_check", e))?;
        if ok != "ok" {
            return Err(tx.corrupt(format!("integrity check: {ok}")));
        }
        for net in tx.networks()? {
            let leases = tx.leases(&net.name)?;
            let mut expect: Vec<(u128, u128)> = Vec::new();
            for (a, _) in &leases {
                if let Some(why) = net.refuse(*a) {
                    return Err(tx.corrupt(format!("lease on {a}: {why}")));
                }
                match expect.last_mut() {
                    Some((_, last)) if *last + 1 == to_u128(*a) => *last += 1,
                    _ => expect.push((to_u128(*a), to_u128(*a))),
                }
            }
            let texts = tx.texts(&net.name)?;
            if let Some((a, text)) = texts
                .iter()
                .find(|(a, t)| t.parse::<IpAddr>().ok() != Some(*a))
            {
                let reason = format!("lease {a} of network {:?} stored as {text:?}", net.name);
                return Err(tx.corrupt(reason));
            }
            let runs = tx.runs(&net.name)?;
            if runs != expect {
                return Err(tx.corrupt(format!(
                    "network {:?}: run index disagrees with its {} leases",
                    net.name,
                    leases.len()
                )));
            }
        }
        Ok(())
    }

    /// Starts a transaction (`BEGIN IMMEDIATE`) that the crate uses beyond [`StoreTxn`]:
    /// a [`Host`](crate::network::Host) writes its attachment and port rows in it too.
    pub(crate) fn begin_tx(&self) -> Result<SqliteTx<'_>, IpamError> {
        busy::wait_up_to(self.busy_timeout);
        SqliteTx::begin(
            self.conn.lock().unwrap_or_else(|e| e.into_inner()),
            &self.path,
        )
    }
}

/// Switches the database to write-ahead logging. Switching needs a moment of exclusive
/// access, and SQLite answers "busy" at once instead of waiting when processes open a new
/// database together, so this retries until `timeout`.
fn wal(conn: &Connection, timeout: Duration) -> rusqlite::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == ErrorCode::DatabaseBusy && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            r => return r,
        }
    }
}

impl Store for SqliteStore {
    fn begin(&self) -> Result<Box<dyn StoreTxn + '_>, IpamError> {
        Ok(Box::new(self.begin_tx()?))
    }
}
