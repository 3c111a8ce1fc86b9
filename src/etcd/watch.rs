//! [`Watch`]: a stream of changes to a key or a range, on a connection of its own.

use std::io;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::http::{Conn, Head, HttpError};
use super::kv::{WireKv, I64};
use super::reply::{cancel_status, http_err, status_err, timed_out, Streamed};
use super::{EtcdError, KeyValue};
use crate::error::Result;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was written.
    Put,
    /// The key was deleted (or its lease expired).
    Delete,
}

/// One change seen by a [`Watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change; after a delete, only the key and its `mod_revision`
    /// (the revision of the delete) are set.
    pub kv: KeyValue,
}

/// A stream of changes from [`super::Etcd::watch`]. It holds its own connection, which
/// closes (ending the watch on the server) when the `Watch` is dropped.
///
/// ```no_run
/// use std::time::Duration;
/// # let etcd = netplumb::etcd::Etcd::connect(netplumb::etcd::EtcdConfig::new("127.0.0.1:2379")?)?;
/// let mut w = etcd.watch("/leader", None, None)?;
/// match w.next(Duration::from_secs(5))? {
///     Some(events) => println!("{} change(s), last at revision {}", events.len(), w.revision()),
///     None => println!("nothing in 5 s"),
/// }
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug)]
pub struct Watch {
    conn: Conn,
    /// Body bytes not yet parsed into messages.
    pending: Vec<u8>,
    revision: i64,
    ended: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireWatch {
    created: bool,
    canceled: bool,
    compact_revision: I64,
    cancel_reason: String,
    events: Vec<WireEvent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    kv: WireKv,
}

const OP: &str = "watch";

impl Watch {
    /// Reads the response to a watch request up to the server's "created" message.
    pub(super) fn start(mut conn: Conn, head: Head, deadline: Instant) -> Result<Watch> {
        if head.status != 200 {
            let body = match conn.read_body(&head, deadline) {
                Ok((body, _)) => body,
                Err(e) => return Err(http_err(&conn.name, OP, e).into()),
            };
            return Err(status_err(OP, head.status, &body).into());
        }
        if !head.chunked {
            return Err(EtcdError::protocol(OP, "stream is not chunked").into());
        }
        let mut w = Watch {
            conn,
            pending: Vec::new(),
            revision: 0,
            ended: false,
        };
        loop {
            match w.message(deadline)? {
                Some(m) if m.created => return Ok(w),
                Some(_) => {}
                None => return Err(w.fail(io::ErrorKind::TimedOut.into())),
            }
        }
    }

    /// Waits up to `timeout` for changes: `Some(events)` (in revision order) as soon as
    /// some arrive, `None` if none did. A watch from a revision that was compacted away
    /// fails with [`EtcdError::Compacted`]; a server that goes away, with
    /// [`EtcdError::Unreachable`]. After a failure the watch stays failed: start a new
    /// one from [`revision`](Watch::revision)` + 1`.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<Vec<Event>>> {
        let deadline = Instant::now() + timeout;
        while let Some(m) = self.message(deadline)? {
            if m.events.is_empty() {
                continue; // a progress notification, or the "created" message
            }
            let events: Vec<Event> = m.events.into_iter().map(Event::from).collect();
            if let Some(last) = events.last() {
                self.revision = self.revision.max(last.kv.mod_revision);
            }
            return Ok(Some(events));
        }
        Ok(None)
    }

    /// The revision of the last change delivered (0 before the first).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The next message of the stream, or `None` if none came before `deadline`.
    fn message(&mut self, deadline: Instant) -> Result<Option<WireWatch>> {
        if self.ended {
            return Err(EtcdError::protocol(OP, "the watch has ended").into());
        }
        loop {
            if let Some(m) = self.parse()? {
                if m.canceled {
                    self.ended = true;
                    return Err(cancel_err(&m).into());
                }
                return Ok(Some(m));
            }
            match self.conn.next_chunk(deadline) {
                Ok(Some(data)) => self.pending.extend_from_slice(&data),
                Ok(None) => {
                    let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "watch stream ended");
                    return Err(self.fail(eof));
                }
                Err(HttpError::Io(e)) if timed_out(&e) => return Ok(None),
                Err(HttpError::Io(e)) => return Err(self.fail(e)),
                Err(e) => {
                    self.ended = true;
                    return Err(http_err(&self.conn.name, OP, e).into());
                }
            }
        }
    }

    /// Takes one complete JSON message off the front of the pending bytes.
    fn parse(&mut self) -> Result<Option<WireWatch>> {
        let mut it =
            serde_json::Deserializer::from_slice(&self.pending).into_iter::<Streamed<WireWatch>>();
        let m = match it.next() {
            None => {
                self.pending.clear(); // whitespace only
                return Ok(None);
            }
            Some(Err(e)) if e.is_eof() => return Ok(None),
            Some(Err(e)) => {
                self.ended = true;
                return Err(EtcdError::protocol(OP, e.to_string()).into());
            }
            Some(Ok(m)) => m,
        };
        let used = it.byte_offset();
        self.pending.drain(..used);
        match m.into_result(OP) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                self.ended = true;
                Err(e.into())
            }
        }
    }

    /// Ends the watch with an I/O failure.
    fn fail(&mut self, e: io::Error) -> crate::Error {
        self.ended = true;
        EtcdError::io(&self.conn.name, OP, e).into()
    }
}

fn cancel_err(m: &WireWatch) -> EtcdError {
    if m.compact_revision.0 > 0 {
        return EtcdError::Compacted {
            revision: m.compact_revision.0,
        };
    }
    if m.cancel_reason.is_empty() {
        return EtcdError::Server {
            op: OP,
            code: 0,
            message: "watch canceled by the server".to_string(),
        };
    }
    let (code, message) = cancel_status(&m.cancel_reason);
    EtcdError::Server {
        op: OP,
        code,
        message,
    }
}

impl From<WireEvent> for Event {
    fn from(w: WireEvent) -> Self {
        Event {
            kind: if w.kind == "DELETE" {
                EventKind::Delete
            } else {
                EventKind::Put
            },
            kv: w.kv.into(),
        }
    }
}
