//! [`SqliteTx`]: one `BEGIN IMMEDIATE` … `COMMIT` transaction, and the run index that
//! makes [`StoreTxn::first_free`] one lookup.

use std::net::IpAddr;
use std::path::Path;
use std::sync::MutexGuard;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};

use super::super::pool::{from_u128, to_u128};
use super::super::{IpamError, Network, Owner, StoreTxn};

/// One write transaction; rolled back when dropped unfinished.
pub(crate) struct SqliteTx<'a> {
    pub(super) conn: MutexGuard<'a, Connection>,
    path: &'a Path,
    open: bool,
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                log::warn!("{}: rollback: {e}", self.path.display());
            }
        }
    }
}

/// An address as the 16-byte big-endian key that sorts like the address.
fn key(a: u128) -> [u8; 16] {
    a.to_be_bytes()
}

fn unkey(row: &Row<'_>, i: usize) -> rusqlite::Result<u128> {
    let b = row.get_ref(i)?.as_blob()?;
    let arr: [u8; 16] = b.try_into().map_err(|_| {
        rusqlite::Error::InvalidColumnType(i, "address".into(), rusqlite::types::Type::Blob)
    })?;
    Ok(u128::from_be_bytes(arr))
}

pub(super) fn store_err(
    context: String,
    e: impl std::error::Error + Send + Sync + 'static,
) -> IpamError {
    IpamError::Store {
        context,
        source: Box::new(e),
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

impl<'a> SqliteTx<'a> {
    /// Takes the database's write lock (waiting up to the busy timeout).
    pub(super) fn begin(
        conn: MutexGuard<'a, Connection>,
        path: &'a Path,
    ) -> Result<Self, IpamError> {
        let mut tx = SqliteTx {
            conn,
            path,
            open: false,
        };
        tx.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| tx.err("begin transaction", e))?;
        tx.open = true;
        Ok(tx)
    }

    /// The connection, for the statements of the crate's own tables.
    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Commits.
    pub(crate) fn finish(mut self) -> Result<(), IpamError> {
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| self.err("commit", e))?;
        self.open = false;
        Ok(())
    }

    /// Every lease's address with its text column, for [`super::SqliteStore::check`].
    pub(super) fn texts(&self, net: &str) -> Result<Vec<(IpAddr, String)>, IpamError> {
        let v6 = self.is_v6(net)?;
        let mut st = self
            .conn
            .prepare_cached("SELECT address, ip FROM leases WHERE network = ?1")
            .map_err(|e| self.err("list leases", e))?;
        let rows = st
            .query_map([net], |r| Ok((from_u128(unkey(r, 0)?, v6), r.get(1)?)))
            .map_err(|e| self.err("list leases", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| self.err("list leases", e))
    }

    pub(super) fn err(&self, what: &str, e: rusqlite::Error) -> IpamError {
        store_err(format!("{}: {what}", self.path.display()), e)
    }

    pub(super) fn corrupt(&self, reason: String) -> IpamError {
        IpamError::Corrupt {
            context: self.path.display().to_string(),
            reason,
        }
    }

    fn exec(&self, what: &str, sql: &str, p: impl rusqlite::Params) -> Result<usize, IpamError> {
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err(what, e))?;
        st.execute(p).map_err(|e| self.err(what, e))
    }

    /// The run containing `a`, if `a` is held.
    fn run_at(&self, net: &str, a: u128) -> Result<Option<(u128, u128)>, IpamError> {
        let sql = "SELECT first, last FROM held_runs WHERE network = ?1 AND first <= ?2 ORDER BY first DESC LIMIT 1";
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("find run", e))?;
        let run = st
            .query_row(params![net, key(a)], |r| Ok((unkey(r, 0)?, unkey(r, 1)?)))
            .optional()
            .map_err(|e| self.err("find run", e))?;
        Ok(run.filter(|&(_, last)| last >= a))
    }

    pub(super) fn runs(&self, net: &str) -> Result<Vec<(u128, u128)>, IpamError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT first, last FROM held_runs WHERE network = ?1 ORDER BY first")
            .map_err(|e| self.err("list runs", e))?;
        let rows = st
            .query_map([net], |r| Ok((unkey(r, 0)?, unkey(r, 1)?)))
            .map_err(|e| self.err("list runs", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| self.err("list runs", e))
    }

    fn set_run(&self, net: &str, first: u128, last: u128) -> Result<(), IpamError> {
        let sql = "INSERT OR REPLACE INTO held_runs (network, first, last) VALUES (?1, ?2, ?3)";
        self.exec("write run", sql, params![net, key(first), key(last)])
            .map(drop)
    }

    fn drop_run(&self, net: &str, first: u128) -> Result<Option<u128>, IpamError> {
        let sql = "DELETE FROM held_runs WHERE network = ?1 AND first = ?2 RETURNING last";
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("delete run", e))?;
        st.query_row(params![net, key(first)], |r| unkey(r, 0))
            .optional()
            .map_err(|e| self.err("delete run", e))
    }

    /// Inserts a network (`expected` = `None`) or replaces it if its stored revision is
    /// `expected`; returns the number of rows written.
    fn write_network(&self, n: &Network, expected: Option<u64>) -> Result<usize, IpamError> {
        let text = |a: Option<IpAddr>| a.map(|a| a.to_string());
        let reserved: Vec<String> = n.reserved.iter().map(|a| a.to_string()).collect();
        let (subnet, gateway, range) = (n.subnet.to_string(), text(n.gateway), n.range.to_string());
        let (reserved, cursor, released) =
            (reserved.join(" "), text(n.cursor), text(n.last_released));
        let revision = expected.map_or(n.revision, |r| r + 1) as i64;
        let expected_i = expected.unwrap_or(0) as i64;
        let p: [&dyn rusqlite::ToSql; 9] = [
            &n.name,
            &subnet,
            &gateway,
            &range,
            &reserved,
            &cursor,
            &released,
            &revision,
            &expected_i,
        ];
        if expected.is_none() {
            let sql = "INSERT INTO networks (name, subnet, gateway, ip_range, reserved, cursor, last_released, revision)
                       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
            let mut st = self
                .conn
                .prepare_cached(sql)
                .map_err(|e| self.err("create network", e))?;
            return match st.execute(&p[..8]) {
                Err(e) if is_constraint(&e) => Err(IpamError::Conflict {
                    network: n.name.clone(),
                }),
                r => r.map_err(|e| self.err("create network", e)),
            };
        }
        let sql = "UPDATE networks SET subnet = ?2, gateway = ?3, ip_range = ?4, reserved = ?5, cursor = ?6,
                   last_released = ?7, revision = ?8 WHERE name = ?1 AND revision = ?9";
        self.exec("update network", sql, &p[..])
    }

    fn parse_network(&self, r: &Row<'_>) -> Result<Network, IpamError> {
        let get = |i: usize| {
            r.get::<_, Option<String>>(i)
                .map_err(|e| self.err("read network", e))
        };
        let name = get(0)?.unwrap_or_default();
        let bad = |what: &str, v: &str| self.corrupt(format!("network {name:?}: bad {what} {v:?}"));
        let net = |i: usize, what: &str| -> Result<ipnet::IpNet, IpamError> {
            let v = get(i)?.unwrap_or_default();
            v.parse().map_err(|_| bad(what, &v))
        };
        let addr = |i: usize, what: &str| -> Result<Option<IpAddr>, IpamError> {
            get(i)?
                .map(|v| v.parse().map_err(|_| bad(what, &v)))
                .transpose()
        };
        let reserved = get(4)?.unwrap_or_default();
        let reserved = reserved
            .split_whitespace()
            .map(|v| v.parse().map_err(|_| bad("reserved address", v)));
        Ok(Network {
            subnet: net(1, "subnet")?,
            gateway: addr(2, "gateway")?,
            range: net(3, "ip range")?,
            reserved: reserved.collect::<Result<_, _>>()?,
            cursor: addr(5, "cursor")?,
            last_released: addr(6, "last released address")?,
            revision: r
                .get::<_, i64>(7)
                .map_err(|e| self.err("read network", e))? as u64,
            name,
        })
    }

    fn query_networks(
        &self,
        sql: &str,
        p: impl rusqlite::Params,
    ) -> Result<Vec<Network>, IpamError> {
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("read networks", e))?;
        let mut rows = st.query(p).map_err(|e| self.err("read networks", e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| self.err("read networks", e))? {
            out.push(self.parse_network(r)?);
        }
        Ok(out)
    }

    fn is_v6(&self, net: &str) -> Result<bool, IpamError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT instr(subnet, ':') > 0 FROM networks WHERE name = ?1")
            .map_err(|e| self.err("read network", e))?;
        st.query_row([net], |r| r.get(0))
            .optional()
            .map_err(|e| self.err("read network", e))?
            .ok_or_else(|| IpamError::NetworkNotFound {
                network: net.to_string(),
            })
    }
}

const NETWORK_COLUMNS: &str = "SELECT name, subnet, gateway, ip_range, reserved, cursor, last_released, revision FROM networks";

impl StoreTxn for SqliteTx<'_> {
    fn network(&mut self, name: &str) -> Result<Option<Network>, IpamError> {
        Ok(self
            .query_networks(&format!("{NETWORK_COLUMNS} WHERE name = ?1"), [name])?
            .pop())
    }

    fn networks(&mut self) -> Result<Vec<Network>, IpamError> {
        self.query_networks(&format!("{NETWORK_COLUMNS} ORDER BY name"), [])
    }

    fn create_network(&mut self, network: &Network) -> Result<(), IpamError> {
        self.write_network(network, None).map(drop)
    }

    fn update_network(&mut self, network: &Network) -> Result<(), IpamError> {
        match self.write_network(network, Some(network.revision))? {
            1 => Ok(()),
            _ => Err(IpamError::Conflict {
                network: network.name.clone(),
            }),
        }
    }

    fn delete_network(&mut self, network: &Network) -> Result<(), IpamError> {
        let n = &network.name;
        let sql = "DELETE FROM networks WHERE name = ?1 AND revision = ?2";
        if self.exec("delete network", sql, params![n, network.revision as i64])? != 1 {
            return Err(IpamError::Conflict { network: n.clone() });
        }
        self.exec(
            "delete network",
            "DELETE FROM leases WHERE network = ?1",
            [n],
        )?;
        self.exec(
            "delete network",
            "DELETE FROM held_runs WHERE network = ?1",
            [n],
        )
        .map(drop)
    }

    fn owner_of(&mut self, network: &str, address: IpAddr) -> Result<Option<Owner>, IpamError> {
        let sql = "SELECT container, ifname FROM leases WHERE network = ?1 AND address = ?2";
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("read lease", e))?;
        st.query_row(params![network, key(to_u128(address))], |r| {
            Ok(Owner {
                container: r.get(0)?,
                ifname: r.get(1)?,
            })
        })
        .optional()
        .map_err(|e| self.err("read lease", e))
    }

    fn address_of(&mut self, network: &str, owner: &Owner) -> Result<Option<IpAddr>, IpamError> {
        let v6 = self.is_v6(network)?;
        let sql =
            "SELECT address FROM leases WHERE network = ?1 AND container = ?2 AND ifname = ?3";
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("read lease", e))?;
        let a = st
            .query_row(params![network, owner.container, owner.ifname], |r| {
                unkey(r, 0)
            })
            .optional()
            .map_err(|e| self.err("read lease", e))?;
        Ok(a.map(|a| from_u128(a, v6)))
    }

    fn leases(&mut self, network: &str) -> Result<Vec<(IpAddr, Owner)>, IpamError> {
        let v6 = self.is_v6(network)?;
        let sql =
            "SELECT address, container, ifname FROM leases WHERE network = ?1 ORDER BY address";
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("list leases", e))?;
        let rows = st
            .query_map([network], |r| {
                Ok((
                    from_u128(unkey(r, 0)?, v6),
                    Owner {
                        container: r.get(1)?,
                        ifname: r.get(2)?,
                    },
                ))
            })
            .map_err(|e| self.err("list leases", e))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| self.err("list leases", e))
    }

    fn first_free(
        &mut self,
        network: &str,
        from: IpAddr,
        to: IpAddr,
    ) -> Result<Option<IpAddr>, IpamError> {
        let (f, t) = (to_u128(from), to_u128(to));
        let c = match self.run_at(network, f)? {
            Some((_, last)) => last.checked_add(1),
            None => Some(f),
        };
        Ok(c.filter(|&c| c <= t).map(|c| from_u128(c, from.is_ipv6())))
    }

    fn hold(&mut self, network: &str, address: IpAddr, owner: &Owner) -> Result<(), IpamError> {
        let a = to_u128(address);
        let sql = "INSERT INTO leases (network, address, ip, container, ifname) VALUES (?1, ?2, ?3, ?4, ?5)";
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("write lease", e))?;
        match st.execute(params![
            network,
            key(a),
            address.to_string(),
            owner.container,
            owner.ifname
        ]) {
            Err(e) if is_constraint(&e) => {
                return Err(IpamError::Conflict {
                    network: network.to_string(),
                })
            }
            r => r.map_err(|e| self.err("write lease", e))?,
        };
        let left = a
            .checked_sub(1)
            .map(|p| self.run_at(network, p))
            .transpose()?
            .flatten();
        let right_last = a
            .checked_add(1)
            .map(|n| self.drop_run(network, n))
            .transpose()?
            .flatten();
        let first = left.map_or(a, |(f, _)| f);
        self.set_run(network, first, right_last.unwrap_or(a))
    }

    fn free(&mut self, network: &str, address: IpAddr) -> Result<Option<Owner>, IpamError> {
        let a = to_u128(address);
        let sql =
            "DELETE FROM leases WHERE network = ?1 AND address = ?2 RETURNING container, ifname";
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.err("delete lease", e))?;
        let owner = st
            .query_row(params![network, key(a)], |r| {
                Ok(Owner {
                    container: r.get(0)?,
                    ifname: r.get(1)?,
                })
            })
            .optional()
            .map_err(|e| self.err("delete lease", e))?;
        drop(st);
        if owner.is_none() {
            return Ok(None);
        }
        let (first, last) = self
            .run_at(network, a)?
            .ok_or_else(|| self.corrupt(format!("held {address} has no run")))?;
        if first < a {
            self.set_run(network, first, a - 1)?;
        } else {
            self.drop_run(network, first)?;
        }
        if last > a {
            self.set_run(network, a + 1, last)?;
        }
        Ok(owner)
    }

    fn commit(self: Box<Self>) -> Result<(), IpamError> {
        (*self).finish()
    }
}
