//! The published host ports and round-robin cursors of the runtime database
//! (`net_ports`, `net_port_cursors`; see `runtime.rs`), as the port allocator's
//! [`PortBook`], on the connection of the caller's transaction.

use std::net::IpAddr;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::ports::book::PortBook;
use crate::ports::registry::CursorKey;
use crate::ports::{Proto, PublishedPort};

/// A runtime database failure, as an I/O error of the database.
pub(crate) fn db_err(e: rusqlite::Error) -> Error {
    Error::io("runtime database", std::io::Error::other(e))
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
