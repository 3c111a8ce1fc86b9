//! The byte stream under the HTTP client: a TCP connection, or TLS over one
//! ([`rustls::StreamOwned`]), and the TLS handshake, done within the call's deadline.
//!
//! Read and write timeouts are set on the TCP socket in both cases: rustls reads and
//! writes through it, so a timed-out read surfaces as the same `WouldBlock`/`TimedOut`
//! error, and the TLS state stays consistent for the next read (a watch resumes after
//! one).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// A connection's transport.
pub(super) enum Stream {
    /// `http://`: the bytes go as they are.
    Plain(TcpStream),
    /// `https://`: TLS, its handshake done.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stream::Plain(s) => f.debug_tuple("Plain").field(s).finish(),
            Stream::Tls(s) => f.debug_tuple("Tls").field(&s.sock).finish(),
        }
    }
}

impl Stream {
    /// The TCP socket, for timeouts and the idle check.
    pub(super) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Runs the TLS handshake with `host` (a name or an address, matched against the
    /// certificate's names or IP addresses) on `tcp`, until `deadline` at most. A TLS
    /// failure (an untrusted certificate, an alert from the server) is an
    /// [`io::ErrorKind::InvalidData`] error wrapping the [`rustls::Error`].
    pub(super) fn tls(
        mut tcp: TcpStream,
        config: &Arc<ClientConfig>,
        host: &str,
        deadline: Instant,
    ) -> io::Result<Stream> {
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not a TLS server name: {e}"),
            )
        })?;
        let mut conn = ClientConnection::new(config.clone(), name).map_err(invalid_data)?;
        while conn.is_handshaking() {
            flush_tls(&mut conn, &mut tcp, deadline)?;
            if conn.is_handshaking() && conn.wants_read() {
                tcp.set_read_timeout(Some(left(deadline)?))?;
                if conn.read_tls(&mut tcp)? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed during the TLS handshake",
                    ));
                }
                if let Err(e) = conn.process_new_packets() {
                    // Tell the server why (the alert rustls queued), as far as it listens.
                    let _ = flush_tls(&mut conn, &mut tcp, deadline);
                    return Err(invalid_data(e));
                }
            }
        }
        // The client's last handshake message.
        flush_tls(&mut conn, &mut tcp, deadline)?;
        Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }
}

/// Writes what rustls has queued for the server.
fn flush_tls(
    conn: &mut ClientConnection,
    tcp: &mut TcpStream,
    deadline: Instant,
) -> io::Result<()> {
    while conn.wants_write() {
        tcp.set_write_timeout(Some(left(deadline)?))?;
        conn.write_tls(tcp)?;
    }
    Ok(())
}

fn invalid_data(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    /// For TLS, sends the records still queued (a `write` may leave some).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The time left until `deadline`, or a timeout error if none is.
pub(super) fn left(deadline: Instant) -> io::Result<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
    }
    Ok(d)
}
