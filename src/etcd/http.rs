//! Just enough HTTP/1.1 for etcd's JSON gateway: `POST` with a `Content-Length` body on a
//! keep-alive connection, and responses framed by `Content-Length`, chunked encoding or
//! the end of the connection. Every read has a deadline; nothing here can block longer.
//!
//! Why not an HTTP crate: the library is synchronous, etcd's gateway needs no more than
//! this, and sockets must be created inside a chosen network namespace, which is one
//! `Netns::run` around `TcpStream::connect_timeout` here. TLS sits below, in
//! [`Stream`]: the framing here is the same over both.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::config::Endpoint;
use super::stream::{left, Stream};
use crate::error::Result;
use crate::netns::Netns;

/// Longest status line plus headers accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted (a range over a huge prefix should use a limit).
const MAX_BODY: usize = 256 * 1024 * 1024;
/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// A failure below JSON: the connection, or HTTP framing.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// The socket failed, timed out (`TimedOut`) or was closed (`UnexpectedEof`).
    Io(io::Error),
    /// The bytes were not HTTP as expected.
    Framing(String),
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

type HttpResult<T> = std::result::Result<T, HttpError>;

/// A response's status line and the headers that matter here.
#[derive(Debug)]
pub(crate) struct Head {
    pub(super) status: u16,
    pub(super) chunked: bool,
    length: Option<usize>,
    keep_alive: bool,
}

/// A whole response.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    /// Whether the connection can carry another request.
    pub(super) reusable: bool,
}

/// One connection (TCP, or TLS over TCP) to one endpoint, and the bytes read from it but
/// not yet consumed.
#[derive(Debug)]
pub(super) struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// The endpoint as `host:port`, for errors and the `Host` header.
    pub(super) name: String,
    /// Whether any byte of the current response has arrived.
    pub(super) answered: bool,
}

/// Connects to `ep` within `timeout`, inside `netns` if given. The outer error is a
/// failure to enter the namespace; the inner one a failure to connect.
pub(super) fn dial(
    ep: &Endpoint,
    netns: Option<&Netns>,
    timeout: Duration,
) -> Result<io::Result<TcpStream>> {
    let connect = || -> io::Result<TcpStream> {
        let deadline = Instant::now() + timeout;
        let addrs: Vec<SocketAddr> = (ep.host.as_str(), ep.port).to_socket_addrs()?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host name has no address");
        for a in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
            }
            match TcpStream::connect_timeout(&a, left) {
                Ok(s) => {
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match netns {
        Some(ns) => ns.run(connect),
        None => Ok(connect()),
    }
}

impl Conn {
    pub(super) fn new(stream: Stream, name: String) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
            name,
            answered: false,
        }
    }

    /// Whether an idle connection is still open and silent, so a request may go on it.
    pub(super) fn is_reusable(&self) -> bool {
        // Over TLS too: a byte waiting on an idle connection is a close_notify, or
        // something else this client did not ask for.
        let tcp = self.stream.tcp();
        if !self.buf.is_empty() || tcp.set_nonblocking(true).is_err() {
            return false;
        }
        let r = tcp.peek(&mut [0u8; 1]);
        let back = tcp.set_nonblocking(false).is_ok();
        back && matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Sends `POST path` with a JSON `body`, and the authentication token `token` as
    /// the `Authorization` header (as etcd's gateway takes it: the token alone).
    pub(super) fn send(
        &mut self,
        path: &str,
        body: &[u8],
        token: Option<&str>,
        deadline: Instant,
    ) -> HttpResult<()> {
        let auth = match token {
            Some(t) => format!("Authorization: {t}\r\n"),
            None => String::new(),
        };
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             {auth}Content-Length: {}\r\n\r\n",
            self.name,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.stream.tcp().set_write_timeout(Some(left(deadline)?))?;
        self.answered = false;
        self.stream.write_all(&req)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends a request and reads the whole response.
    pub(super) fn exchange(
        &mut self,
        path: &str,
        body: &[u8],
        token: Option<&str>,
        deadline: Instant,
    ) -> HttpResult<Response> {
        self.send(path, body, token, deadline)?;
        let head = self.read_head(deadline)?;
        let (body, framed) = self.read_body(&head, deadline)?;
        Ok(Response {
            status: head.status,
            body,
            reusable: framed && head.keep_alive && self.buf.is_empty(),
        })
    }

    /// Reads more bytes into the buffer, waiting until `deadline` at most.
    fn fill(&mut self, deadline: Instant) -> HttpResult<()> {
        self.stream.tcp().set_read_timeout(Some(left(deadline)?))?;
        let old = self.buf.len();
        self.buf.resize(old + READ_SIZE, 0);
        let r = loop {
            match self.stream.read(&mut self.buf[old..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        };
        let n = *r.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        match r {
            Ok(0) => Err(HttpError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ))),
            Ok(_) => {
                self.answered = true;
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the status line and headers.
    pub(super) fn read_head(&mut self, deadline: Instant) -> HttpResult<Head> {
        let mut searched = 0;
        let end = loop {
            if let Some(i) = find(&self.buf[searched..], b"\r\n\r\n") {
                break searched + i;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(HttpError::Framing("response headers too long".into()));
            }
            searched = self.buf.len().saturating_sub(3);
            self.fill(deadline)?;
        };
        let text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        parse_head(&text)
    }

    /// Reads the body `head` announces. Returns it, and whether it was framed (so the
    /// connection is still usable afterwards).
    pub(super) fn read_body(
        &mut self,
        head: &Head,
        deadline: Instant,
    ) -> HttpResult<(Vec<u8>, bool)> {
        if head.chunked {
            let mut body = Vec::new();
            while let Some(chunk) = self.next_chunk(deadline)? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(HttpError::Framing("response body too large".into()));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok((body, true));
        }
        if let Some(n) = head.length {
            if n > MAX_BODY {
                return Err(HttpError::Framing("response body too large".into()));
            }
            while self.buf.len() < n {
                self.fill(deadline)?;
            }
            return Ok((self.buf.drain(..n).collect(), true));
        }
        // Neither: the body runs to the end of the connection.
        loop {
            match self.fill(deadline) {
                Ok(()) if self.buf.len() > MAX_BODY => {
                    return Err(HttpError::Framing("response body too large".into()))
                }
                Ok(()) => {}
                Err(HttpError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Ok((std::mem::take(&mut self.buf), false))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The next chunk of a chunked body, waiting until `deadline` at most; `None` after
    /// the last one. A timeout leaves the connection where it was, so it can be resumed.
    pub(super) fn next_chunk(&mut self, deadline: Instant) -> HttpResult<Option<Vec<u8>>> {
        loop {
            match take_chunk(&mut self.buf)? {
                Some(chunk) => return Ok(chunk),
                None => self.fill(deadline)?,
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads a status line and headers (the text before the empty line).
pub(crate) fn parse_head(text: &str) -> HttpResult<Head> {
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let (Some(status), true) = (status, version.starts_with("HTTP/1.")) else {
        let shown: String = status_line.chars().take(80).collect();
        return Err(HttpError::Framing(format!(
            "not an HTTP status line: {shown:?}"
        )));
    };
    let mut head = Head {
        status,
        chunked: false,
        length: None,
        keep_alive: version == "HTTP/1.1",
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::Framing(format!(
                "malformed header line {line:?}"
            )));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| HttpError::Framing(format!("malformed Content-Length {value:?}")))?;
            head.length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                head.keep_alive = false;
            } else if v.contains("keep-alive") {
                head.keep_alive = true;
            }
        }
    }
    Ok(head)
}

/// Takes one complete chunk off the front of `buf`: `Some(Some(data))`, `Some(None)` for
/// the last chunk (trailers skipped), or `None` when more bytes are needed.
pub(crate) fn take_chunk(buf: &mut Vec<u8>) -> HttpResult<Option<Option<Vec<u8>>>> {
    let Some(eol) = find(buf, b"\r\n") else {
        if buf.len() > 1024 {
            return Err(HttpError::Framing("chunk size line too long".into()));
        }
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[..eol]);
    let hex = line.split(';').next().unwrap_or_default().trim();
    let size = usize::from_str_radix(hex, 16)
        .ok()
        .filter(|&n| n <= MAX_BODY)
        .ok_or_else(|| HttpError::Framing(format!("malformed chunk size {hex:?}")))?;
    let data = eol + 2;
    if size == 0 {
        // Trailers (the gateway sends some), then an empty line.
        let rest = &buf[data..];
        let end = if rest.starts_with(b"\r\n") {
            data + 2
        } else {
            match find(rest, b"\r\n\r\n") {
                Some(i) => data + i + 4,
                None if rest.len() > MAX_HEAD => {
                    return Err(HttpError::Framing("chunk trailers too long".into()))
                }
                None => return Ok(None),
            }
        };
        buf.drain(..end);
        return Ok(Some(None));
    }
    if buf.len() < data + size + 2 {
        return Ok(None);
    }
    if &buf[data + size..data + size + 2] != b"\r\n" {
        return Err(HttpError::Framing("chunk not followed by CRLF".into()));
    }
    let chunk = buf[data..data + size].to_vec();
    buf.drain(..data + size + 2);
    Ok(Some(Some(chunk)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_with_trailers_and_partial_input() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n!\r\n0\r\nGrpc-Trailer: x\r\n\r\nNEXT";
        // Fed one byte at a time, the decoder yields the same chunks as fed at once.
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut ended = false;
        for &b in wire.iter() {
            buf.push(b);
            while let Some(c) = take_chunk(&mut buf).unwrap() {
                match c {
                    Some(d) => out.push(d),
                    None => ended = true,
                }
            }
        }
        assert_eq!(out, [b"hello".to_vec(), b"!".to_vec()]);
        assert!(ended);
        assert_eq!(buf, b"NEXT");
        let mut plain = b"0\r\n\r\nX".to_vec();
        assert_eq!(take_chunk(&mut plain).unwrap(), Some(None));
        assert_eq!(plain, b"X");
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"0123456789abcdefxyz;: \r\n\r\nHTTP/1.1 200";
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut buf = bytes.clone();
            while let Ok(Some(_)) = take_chunk(&mut buf) {}
            let _ = parse_head(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn bad_framing_is_an_error_not_a_panic() {
        for bad in [&b"zz\r\n"[..], b"3\r\nabcXY", b"ffffffffffffffffff\r\n"] {
            assert!(take_chunk(&mut bad.to_vec()).is_err(), "{bad:?}");
        }
        assert!(parse_head("SSH-2.0-OpenSSH").is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\nContent-Length: x").is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\nno colon").is_err());
        let h =
            parse_head("HTTP/1.1 404 Not Found\r\ncontent-length: 7\r\nConnection: close").unwrap();
        assert_eq!(
            (h.status, h.length, h.keep_alive, h.chunked),
            (404, Some(7), false, false)
        );
        let h = parse_head("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked").unwrap();
        assert!(h.chunked && !h.keep_alive);
    }
}
