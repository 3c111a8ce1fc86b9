//! [`Rtnl`]: a synchronous rtnetlink handle bound to one network namespace (rtnetlink(7)).
//!
//! The socket is created inside the namespace (on a helper thread, see
//! [`Netns::run`](crate::Netns::run)) and then serves that namespace from any thread.
//! Queries for links, addresses and routes live with their types in [`link`](crate::link),
//! [`addr`](crate::addr) and [`route`](crate::route).

use crate::error::{Error, Op, Result};
use crate::netns::{Netns, NetnsDir};
use crate::request::Request;
use crate::socket::{Socket, BATCH_BYTES, BATCH_MSGS};
use crate::wire::{self, MsgBuf, RawMsg};

/// A blocking rtnetlink handle for one namespace.
///
/// ```no_run
/// use netplumb::{link::Veth, Rtnl};
/// let mut rtnl = Rtnl::open()?;
/// rtnl.execute(&Veth::new("veth0").peer("veth1"))?;
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug)]
pub struct Rtnl {
    sock: Socket,
    buf: MsgBuf,
    netns: Netns,
}

impl Rtnl {
    /// A handle on the calling thread's namespace.
    pub fn open() -> Result<Rtnl> {
        Ok(Rtnl {
            sock: Socket::route()?,
            buf: MsgBuf::new(),
            netns: Netns::current()?,
        })
    }

    /// A handle on namespace `ns`; the caller's thread does not change namespace.
    pub fn open_in(ns: &Netns) -> Result<Rtnl> {
        let sock = ns.run(Socket::route)??;
        Ok(Rtnl {
            sock,
            buf: MsgBuf::new(),
            netns: ns.clone(),
        })
    }

    /// [`Rtnl::open_in`], with the socket made on `worker`'s thread instead of a new one.
    pub(crate) fn open_on(worker: &crate::netns::Worker, ns: &Netns) -> Result<Rtnl> {
        let sock = ns.run_on(worker, Socket::route)??;
        Ok(Rtnl {
            sock,
            buf: MsgBuf::new(),
            netns: ns.clone(),
        })
    }

    /// The namespace this handle serves.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Validates, sends and acknowledges one request.
    pub fn execute<R: Request + ?Sized>(&mut self, req: &R) -> Result<()> {
        req.validate()?;
        self.buf.clear();
        let seq = self.sock.next_seq(1);
        req.encode(&mut self.buf, seq);
        if log::log_enabled!(log::Level::Debug) {
            log::debug!("in {}: {req}", self.netns);
            log::trace!(
                "in {}: request seq {seq}, {} bytes",
                self.netns,
                self.buf.len()
            );
        }
        let describe = |_: usize| (req.op(), req.to_string());
        self.sock
            .transact(&self.buf, seq, 1, &describe, &mut |_| Ok(()))
    }

    /// Sends many requests with as few `sendmsg` calls as the socket buffers allow (up to
    /// 256 requests or 64 KiB each) and collects every ACK.
    ///
    /// All requests are validated before anything is sent. rtnetlink applies each request
    /// on its own, and every request is sent even after one fails (however the batch is
    /// split into `sendmsg` calls): on failure the other requests stay applied, and the
    /// error is [`Error::Batch`] naming the first failed request. Only a failure of the
    /// exchange itself (sending or receiving) stops the batch early.
    pub fn execute_batch<R: Request>(&mut self, reqs: &[R]) -> Result<()> {
        let batch_err = |index: usize, source: Error| Error::Batch {
            index,
            count: reqs.len(),
            source: Box::new(source),
        };
        for (i, r) in reqs.iter().enumerate() {
            r.validate().map_err(|e| batch_err(i, e))?;
        }
        if log::log_enabled!(log::Level::Debug) {
            for r in reqs {
                log::debug!("in {}: {r}", self.netns);
            }
        }
        let mut refused: Option<Error> = None;
        let mut start = 0;
        while start < reqs.len() {
            self.buf.clear();
            let first = self.sock.next_seq(0);
            let mut n = 0;
            while start + n < reqs.len() && n < BATCH_MSGS && self.buf.len() < BATCH_BYTES {
                reqs[start + n].encode(&mut self.buf, first.wrapping_add(n as u32));
                n += 1;
            }
            self.sock.next_seq(n as u32);
            let describe = |i: usize| (reqs[start + i].op(), reqs[start + i].to_string());
            let r = self
                .sock
                .transact_all(&self.buf, first, n, &describe, &mut |_| Ok(()));
            match r.map_err(|e| batch_err(start, e))? {
                // A chunk of several requests names the failed one by its index in the chunk.
                Some(Error::Batch { index, source, .. }) if refused.is_none() => {
                    refused = Some(batch_err(start + index, *source));
                }
                Some(e) if refused.is_none() => refused = Some(batch_err(start, e)),
                _ => {}
            }
            start += n;
        }
        refused.map_or(Ok(()), Err)
    }

    /// Sends one request that the kernel answers with messages (and an ACK); `on_reply` sees
    /// each message.
    pub(crate) fn query(
        &mut self,
        op: Op,
        target: &dyn Fn() -> String,
        encode: &dyn Fn(&mut MsgBuf, u32),
        on_reply: &mut dyn FnMut(&RawMsg<'_>) -> Result<()>,
    ) -> Result<()> {
        self.buf.clear();
        let seq = self.sock.next_seq(1);
        encode(&mut self.buf, seq);
        let describe = |_: usize| (op, target());
        self.sock.transact(&self.buf, seq, 1, &describe, on_reply)
    }

    /// Runs a dump and collects what `parse` makes of each message (`None` skips one).
    /// Retries when the kernel flags the dump as interrupted.
    pub(crate) fn dump<T>(
        &mut self,
        what: &'static str,
        op: Op,
        encode: &dyn Fn(&mut MsgBuf, u32),
        parse: &mut dyn FnMut(&RawMsg<'_>) -> Result<Option<T>>,
    ) -> Result<Vec<T>> {
        let out = std::cell::RefCell::new(Vec::new());
        self.sock.dump(
            what,
            op,
            encode,
            &mut || out.borrow_mut().clear(),
            &mut |m| {
                if let Some(v) = parse(m)? {
                    out.borrow_mut().push(v);
                }
                Ok(())
            },
        )?;
        Ok(out.into_inner())
    }

    /// Gives namespace `ns` the id `nsid` as seen from this handle's namespace
    /// (`ip netns set NAME NSID`).
    pub fn set_nsid(&mut self, ns: &Netns, nsid: i32) -> Result<()> {
        use std::os::fd::{AsFd, AsRawFd};
        if nsid < 0 {
            return Err(Error::invalid("netnsid", nsid, "must be 0 or more"));
        }
        let fd = ns.as_fd().as_raw_fd();
        let target = || format!("ip netns set {ns} {nsid}");
        self.query(
            Op::SetNsid,
            &target,
            &|b, s| wire::nsid::set_nsid(b, s, fd, nsid),
            &mut |_| Ok(()),
        )
    }

    /// The id this handle's namespace has given namespace `ns`, if any
    /// (what `ip link` shows as `link-netnsid`).
    pub fn nsid_of(&mut self, ns: &Netns) -> Result<Option<i32>> {
        use std::os::fd::{AsFd, AsRawFd};
        let fd = ns.as_fd().as_raw_fd();
        let mut id = None;
        let target = || format!("ip netns list-id target {ns}");
        self.query(
            Op::GetNsid,
            &target,
            &|b, s| wire::nsid::get_nsid(b, s, fd),
            &mut |m| {
                id = parse_nsid(m)?;
                Ok(())
            },
        )?;
        Ok(id.filter(|&v| v >= 0))
    }

    /// Every namespace id assigned in this handle's namespace (`ip netns list-id`).
    pub fn nsids(&mut self) -> Result<Vec<i32>> {
        let mut ids = self.dump(
            "netnsids",
            Op::GetNsid,
            &wire::nsid::dump_nsids,
            &mut parse_nsid,
        )?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// The ids of the named namespaces of `dir`, as `ip netns list-id` pairs them.
    pub fn nsids_named(&mut self, dir: &NetnsDir) -> Result<Vec<(String, i32)>> {
        let mut out = Vec::new();
        for name in dir.list()? {
            if let Ok(ns) = dir.open(&name) {
                if let Some(id) = self.nsid_of(&ns)? {
                    out.push((name, id));
                }
            }
        }
        Ok(out)
    }
}

/// Decodes an `RTM_NEWNSID` reply: the namespace id, if the kernel gave one.
pub(crate) fn parse_nsid(m: &RawMsg<'_>) -> Result<Option<i32>> {
    use netlink_packet_core::Parseable;
    use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
    if m.ty != wire::nsid::RTM_NEWNSID {
        return Ok(None);
    }
    let msg = NsidMessage::parse(m.payload)
        .map_err(|_| Error::Protocol(wire::Error::BadLength("nsid message")))?;
    Ok(msg.attributes.iter().find_map(|a| match a {
        NsidAttribute::Id(id) => Some(*id),
        _ => None,
    }))
}
