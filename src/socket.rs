//! The one place that does netlink I/O: a blocking `NETLINK_ROUTE` socket with sequence
//! checking, ACK and extended-ACK decoding, interrupted-dump retry and batched sends
//! (netlink(7)).

use netlink_sys::{
    protocols::{NETLINK_NETFILTER, NETLINK_ROUTE},
    Socket as NlSocket, SocketAddr,
};
use nix::sys::socket::MsgFlags;

use crate::error::{Errno, Error, IntoErrno, Op, Result};
use crate::wire::{nlmsg, Ack, Messages, MsgBuf, RawMsg};

/// Receive buffer: the kernel's dump datagrams are at most 32 KiB.
const RX_LEN: usize = 64 * 1024;
/// Most requests one `sendmsg` carries: their ACKs must fit the receive queue.
pub(crate) const BATCH_MSGS: usize = 256;
/// Most bytes one `sendmsg` carries (the socket's send buffer is ~208 KiB).
pub(crate) const BATCH_BYTES: usize = 64 * 1024;
/// Receive queue asked for (needs CAP_NET_ADMIN to exceed `rmem_max`; best effort).
const RCVBUF: usize = 4 * 1024 * 1024;
/// How often an interrupted dump is restarted before giving up.
const DUMP_RETRIES: usize = 8;

/// How a failed request is described: called only on the failure path.
pub(crate) type Describe<'a> = &'a dyn Fn(usize) -> (Op, String);

/// A blocking rtnetlink socket. It serves the namespace it was created in.
#[derive(Debug)]
pub(crate) struct Socket {
    sock: NlSocket,
    seq: u32,
    rx: Vec<u8>,
}

fn transfer(errno: Errno, what: &str) -> Error {
    Error::Kernel {
        op: Op::Transfer,
        target: what.to_string(),
        errno,
        extack: None,
    }
}

/// The errno of an I/O error; `EIO` for one that carries none.
fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

impl std::os::fd::AsFd for Socket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Socket {
    /// Opens a route socket in the calling thread's network namespace.
    pub(crate) fn route() -> Result<Socket> {
        Self::open(NETLINK_ROUTE, "NETLINK_ROUTE")
    }

    /// Opens a netfilter socket (nf_tables) in the calling thread's network namespace.
    pub(crate) fn netfilter() -> Result<Socket> {
        Self::open(NETLINK_NETFILTER, "NETLINK_NETFILTER")
    }

    fn open(protocol: isize, label: &'static str) -> Result<Socket> {
        let fail = |e: std::io::Error| Error::Kernel {
            op: Op::Socket,
            target: label.into(),
            errno: io_errno(&e),
            extack: None,
        };
        let mut sock = NlSocket::new(protocol).map_err(fail)?;
        sock.bind_auto().map_err(fail)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        sock.set_ext_ack(true).map_err(fail)?;
        sock.set_cap_ack(true).map_err(fail)?;
        sock.set_netlink_get_strict_chk(true).map_err(fail)?;
        let _ =
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &RCVBUF);
        // Large nf_tables batches (thousands of elements) go in one sendmsg.
        let _ =
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::SndBufForce, &RCVBUF);
        let seq = std::process::id().wrapping_mul(2654435761);
        Ok(Socket {
            sock,
            seq,
            rx: Vec::with_capacity(RX_LEN),
        })
    }

    /// Opens a netfilter socket in the calling thread's network namespace that receives
    /// the notifications of nfnetlink multicast group `group` (`NFNLGRP_*`, nfnetlink(7)).
    pub(crate) fn netfilter_group(group: u32) -> Result<Socket> {
        let s = Self::netfilter()?;
        s.sock.add_membership(group).map_err(|e| Error::Kernel {
            op: Op::Socket,
            target: format!("NETLINK_NETFILTER group {group}"),
            errno: io_errno(&e),
            extack: None,
        })?;
        Ok(s)
    }

    /// Waits at most `timeout` for a datagram of notifications and returns it; `None`
    /// when none came. A receive queue that overflowed fails with `ENOBUFS` (events were
    /// lost); the socket stays usable.
    pub(crate) fn recv_notifications(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Option<&[u8]>> {
        let tv = nix::sys::time::TimeVal::new(
            timeout.as_secs() as _,
            timeout.subsec_micros().max(1) as _,
        );
        nix::sys::socket::setsockopt(&self.sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .map_err(|e| transfer(e.into_errno(), "setsockopt SO_RCVTIMEO"))?;
        match self.recv() {
            Ok(()) => Ok(Some(&self.rx)),
            Err(e) if matches!(e.errno(), Some(Errno::EAGAIN)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reserves `n` consecutive sequence numbers and returns the first.
    pub(crate) fn next_seq(&mut self, n: u32) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(n);
        first
    }

    fn send(&self, bytes: &[u8]) -> Result<()> {
        let n = self
            .sock
            .send(bytes, 0)
            .map_err(|e| transfer(io_errno(&e), "sendmsg"))?;
        if n != bytes.len() {
            return Err(transfer(Errno::EMSGSIZE, "sendmsg (short write)"));
        }
        Ok(())
    }

    fn recv(&mut self) -> Result<()> {
        self.recv_flags(0)
    }

    fn recv_flags(&mut self, flags: i32) -> Result<()> {
        self.rx.clear();
        let n = loop {
            match self.sock.recv(&mut self.rx, flags) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(transfer(io_errno(&e), "recvmsg")),
            }
        };
        if n > self.rx.len() {
            return Err(transfer(Errno::EMSGSIZE, "recvmsg (datagram truncated)"));
        }
        Ok(())
    }

    /// Sends the requests in `buf` (sequence numbers `first..first + count`, each asking for
    /// an ACK) in one `sendmsg`, then waits for every ACK. Messages other than ACKs that carry
    /// one of those sequence numbers go to `on_reply`. Returns the first failure.
    pub(crate) fn transact(
        &mut self,
        buf: &MsgBuf,
        first: u32,
        count: usize,
        describe: Describe<'_>,
        on_reply: &mut dyn FnMut(&RawMsg<'_>) -> Result<()>,
    ) -> Result<()> {
        match self.transact_all(buf, first, count, describe, on_reply)? {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// [`Socket::transact`] that tells the two kinds of failure apart: `Ok(Some(e))` when the
    /// kernel refused a request (the first one, after every ACK has been read, so the socket
    /// is ready for more), `Err` when the exchange itself failed (send, receive, a malformed
    /// reply or `on_reply`), which may leave ACKs unread.
    pub(crate) fn transact_all(
        &mut self,
        buf: &MsgBuf,
        first: u32,
        count: usize,
        describe: Describe<'_>,
        on_reply: &mut dyn FnMut(&RawMsg<'_>) -> Result<()>,
    ) -> Result<Option<Error>> {
        self.send(buf.as_bytes())?;
        let mut pending = count;
        let mut failure: Option<Error> = None;
        while pending > 0 {
            self.recv()?;
            let rx = std::mem::take(&mut self.rx);
            let r = Self::scan(
                &rx,
                first,
                count,
                &mut pending,
                &mut failure,
                describe,
                on_reply,
            );
            self.rx = rx;
            r?;
        }
        Ok(failure)
    }

    fn scan(
        rx: &[u8],
        first: u32,
        count: usize,
        pending: &mut usize,
        failure: &mut Option<Error>,
        describe: Describe<'_>,
        on_reply: &mut dyn FnMut(&RawMsg<'_>) -> Result<()>,
    ) -> Result<()> {
        for m in Messages::new(rx) {
            let m = m?;
            let index = m.seq.wrapping_sub(first) as usize;
            if index >= count {
                continue; // a stale answer to an earlier, abandoned request
            }
            if m.ty != nlmsg::NLMSG_ERROR {
                if failure.is_none() {
                    on_reply(&m)?;
                }
                continue;
            }
            let ack = Ack::parse(&m)?;
            *pending -= 1;
            if ack.errno != 0 && failure.is_none() {
                let (op, target) = describe(index);
                let err = Error::Kernel {
                    op,
                    target,
                    errno: Errno::from_raw(ack.errno),
                    extack: ack.msg.map(str::to_owned),
                };
                *failure = Some(if count > 1 {
                    Error::Batch {
                        index,
                        count,
                        source: Box::new(err),
                    }
                } else {
                    err
                });
            }
        }
        Ok(())
    }

    /// Sends an nfnetlink batch whose `count` messages (sequence numbers `first..`) each ask
    /// for an ACK, and returns the first failure. The kernel handles the whole batch inside
    /// `sendmsg`, so when it aborts it early every answer it will ever send is already
    /// queued: after the first failure the rest is drained without blocking. A refusal of
    /// the `BATCH_BEGIN` itself (sequence number `first - 1`: a batch built against an
    /// older ruleset generation gets `ERESTART`) is the only answer the batch gets.
    pub(crate) fn transact_batch(
        &mut self,
        buf: &MsgBuf,
        first: u32,
        count: usize,
        describe: Describe<'_>,
    ) -> Result<()> {
        self.send(buf.as_bytes())?;
        let mut pending = count;
        let mut failure: Option<Error> = None;
        while pending > 0 {
            let flags = if failure.is_some() {
                MsgFlags::MSG_DONTWAIT.bits()
            } else {
                0
            };
            match self.recv_flags(flags) {
                Ok(()) => {}
                Err(e) if failure.is_some() && e.errno() == Some(Errno::EAGAIN) => break,
                Err(e) => return Err(e),
            }
            if let Some(refused) = Self::batch_refused(&self.rx, first.wrapping_sub(1), describe)? {
                return Err(refused);
            }
            let rx = std::mem::take(&mut self.rx);
            let r = Self::scan(
                &rx,
                first,
                count,
                &mut pending,
                &mut failure,
                describe,
                &mut |_| Ok(()),
            );
            self.rx = rx;
            r?;
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The refusal of a batch whose `BATCH_BEGIN` had sequence number `begin`, if `rx`
    /// holds one.
    fn batch_refused(rx: &[u8], begin: u32, describe: Describe<'_>) -> Result<Option<Error>> {
        for m in Messages::new(rx) {
            let m = m?;
            if m.seq != begin || m.ty != nlmsg::NLMSG_ERROR {
                continue;
            }
            let ack = Ack::parse(&m)?;
            if ack.errno != 0 {
                return Ok(Some(Error::Kernel {
                    op: describe(0).0,
                    target: "nf_tables batch".into(),
                    errno: Errno::from_raw(ack.errno),
                    extack: ack.msg.map(str::to_owned),
                }));
            }
        }
        Ok(None)
    }

    /// Runs a dump: `encode` writes the request with the given sequence number, `on_msg` sees
    /// every message of the reply. A dump the kernel flags as interrupted (`NLM_F_DUMP_INTR`)
    /// is restarted, after `reset`, up to a bounded number of times.
    pub(crate) fn dump(
        &mut self,
        what: &'static str,
        op: Op,
        encode: &dyn Fn(&mut MsgBuf, u32),
        reset: &mut dyn FnMut(),
        on_msg: &mut dyn FnMut(&RawMsg<'_>) -> Result<()>,
    ) -> Result<()> {
        let mut buf = MsgBuf::with_capacity(64);
        for _ in 0..DUMP_RETRIES {
            buf.clear();
            let seq = self.next_seq(1);
            encode(&mut buf, seq);
            self.send(buf.as_bytes())?;
            if !self.dump_once(what, op, seq, on_msg)? {
                return Ok(());
            }
            reset();
        }
        Err(Error::DumpInterrupted(what))
    }

    /// Reads one dump's reply; returns whether it was interrupted.
    fn dump_once(
        &mut self,
        what: &'static str,
        op: Op,
        seq: u32,
        on_msg: &mut dyn FnMut(&RawMsg<'_>) -> Result<()>,
    ) -> Result<bool> {
        let mut interrupted = false;
        loop {
            self.recv()?;
            for m in Messages::new(&self.rx) {
                let m = m?;
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags.contains(nlmsg::NlmF::DUMP_INTR);
                match m.ty {
                    nlmsg::NLMSG_DONE => {
                        let code = m
                            .payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        if let Some(c @ i32::MIN..=-1) = code {
                            return Err(Error::Kernel {
                                op,
                                target: what.into(),
                                errno: Errno::from_raw(-c),
                                extack: None,
                            });
                        }
                        return Ok(interrupted);
                    }
                    nlmsg::NLMSG_ERROR => {
                        let ack = Ack::parse(&m)?;
                        if ack.errno == 0 {
                            return Ok(interrupted);
                        }
                        return Err(Error::Kernel {
                            op,
                            target: what.into(),
                            errno: Errno::from_raw(ack.errno),
                            extack: ack.msg.map(str::to_owned),
                        });
                    }
                    _ if !interrupted => on_msg(&m)?,
                    _ => {}
                }
            }
        }
    }
}
