//! `struct nlmsghdr`, `NLM_F_*` flags, and the parsing of replies: message framing,
//! `NLMSG_ERROR` acknowledgements and their extended-ACK TLVs (netlink(7)).

use super::parse::Attrs;
use super::Error;

/// `NLMSG_NOOP`.
pub const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR`: an acknowledgement (error 0) or a failure.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`.
pub const NLMSG_OVERRUN: u16 = 4;

/// `NLMSGERR_ATTR_MSG`: the kernel's extended ACK message.
pub const NLMSGERR_ATTR_MSG: u16 = 1;
/// `NLMSGERR_ATTR_OFFS`: offset of the offending attribute in the request.
pub const NLMSGERR_ATTR_OFFS: u16 = 2;

bitflags::bitflags! {
    /// `NLM_F_*` flags of `nlmsghdr.nlmsg_flags`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct NlmF: u16 {
        /// `NLM_F_REQUEST`.
        const REQUEST = 0x01;
        /// `NLM_F_MULTI`: part of a multipart reply.
        const MULTI = 0x02;
        /// `NLM_F_ACK`: ask for an acknowledgement.
        const ACK = 0x04;
        /// `NLM_F_ECHO`.
        const ECHO = 0x08;
        /// `NLM_F_DUMP_INTR`: the dump was interrupted by a change.
        const DUMP_INTR = 0x10;
        /// `NLM_F_DUMP_FILTERED`.
        const DUMP_FILTERED = 0x20;
        /// `NLM_F_ROOT` (GET) / `NLM_F_REPLACE` (NEW).
        const ROOT = 0x100;
        /// `NLM_F_MATCH` (GET) / `NLM_F_EXCL` (NEW).
        const MATCH = 0x200;
        /// `NLM_F_ATOMIC` (GET) / `NLM_F_CREATE` (NEW).
        const ATOMIC = 0x400;
        /// `NLM_F_DUMP` = `ROOT | MATCH`.
        const DUMP = 0x300;
        /// `NLM_F_REPLACE`.
        const REPLACE = 0x100;
        /// `NLM_F_EXCL`.
        const EXCL = 0x200;
        /// `NLM_F_CREATE`.
        const CREATE = 0x400;
        /// `NLM_F_APPEND`.
        const APPEND = 0x800;
        /// `NLM_F_CAPPED` (on an ack: the request was not echoed in full).
        const CAPPED = 0x100;
        /// `NLM_F_ACK_TLVS` (on an ack: extended-ACK attributes follow).
        const ACK_TLVS = 0x200;
    }
}

impl NlmF {
    /// Flags of a request that creates an object and fails if it exists.
    pub const NEW_EXCL: NlmF = NlmF::REQUEST
        .union(NlmF::ACK)
        .union(NlmF::CREATE)
        .union(NlmF::EXCL);
    /// Flags of a request that creates or replaces an object.
    pub const NEW_REPLACE: NlmF = NlmF::REQUEST
        .union(NlmF::ACK)
        .union(NlmF::CREATE)
        .union(NlmF::REPLACE);
    /// Flags of a request that adds an object beside others of the same key.
    pub const NEW_APPEND: NlmF = NlmF::REQUEST
        .union(NlmF::ACK)
        .union(NlmF::CREATE)
        .union(NlmF::APPEND);
    /// Flags of a request that changes or deletes an object.
    pub const CHANGE: NlmF = NlmF::REQUEST.union(NlmF::ACK);
    /// Flags of a dump request.
    pub const GET_DUMP: NlmF = NlmF::REQUEST.union(NlmF::DUMP);
}

/// One message of a reply, borrowed from the receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct RawMsg<'a> {
    /// `nlmsg_type`.
    pub ty: u16,
    /// `nlmsg_flags`.
    pub flags: NlmF,
    /// `nlmsg_seq`.
    pub seq: u32,
    /// The whole message, header included.
    pub bytes: &'a [u8],
    /// The bytes after the header.
    pub payload: &'a [u8],
}

/// Iterates over the messages packed in one datagram.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    /// Frames the messages of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Messages { rest: buf }
    }
}

fn ne_u16(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn ne_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<RawMsg<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        if b.len() < super::NLMSG_HDRLEN {
            self.rest = &[];
            return Some(Err(Error::Truncated("nlmsghdr")));
        }
        let len = ne_u32(b, 0) as usize;
        if len < super::NLMSG_HDRLEN || len > b.len() {
            self.rest = &[];
            return Some(Err(Error::BadLength("nlmsghdr")));
        }
        let msg = RawMsg {
            ty: ne_u16(b, 4),
            flags: NlmF::from_bits_retain(ne_u16(b, 6)),
            seq: ne_u32(b, 8),
            bytes: &b[..len],
            payload: &b[super::NLMSG_HDRLEN..len],
        };
        self.rest = &b[super::align(len).min(b.len())..];
        Some(Ok(msg))
    }
}

/// The content of an `NLMSG_ERROR` message: an ACK (`errno == 0`) or a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    /// The error as a positive errno; 0 for success.
    pub errno: i32,
    /// Sequence number of the request this answers.
    pub seq: u32,
    /// The kernel's extended ACK message, if any.
    pub msg: Option<&'a str>,
    /// Offset of the offending attribute in the request, if the kernel said.
    pub offset: Option<u32>,
}

impl<'a> Ack<'a> {
    /// Parses the payload of an `NLMSG_ERROR` message.
    pub fn parse(m: &RawMsg<'a>) -> Result<Ack<'a>, Error> {
        let p = m.payload;
        if p.len() < 4 + super::NLMSG_HDRLEN {
            return Err(Error::Truncated("nlmsgerr"));
        }
        let code = ne_u32(p, 0) as i32;
        let orig_len = ne_u32(p, 4) as usize;
        let seq = ne_u32(p, 12);
        let mut ack = Ack {
            // The kernel sends `-errno`; a positive code (which no kernel sends) is read
            // as that errno, never as a negative one.
            errno: code.checked_abs().unwrap_or(i32::MAX),
            seq,
            msg: None,
            offset: None,
        };
        if !m.flags.contains(NlmF::ACK_TLVS) {
            return Ok(ack);
        }
        // The request is echoed in full unless the ack is capped (or it is a success).
        let echoed = if m.flags.contains(NlmF::CAPPED) || code == 0 {
            super::NLMSG_HDRLEN
        } else {
            super::align(orig_len)
        };
        let tlv_at = 4 + echoed;
        if tlv_at > p.len() {
            return Err(Error::BadLength("nlmsgerr"));
        }
        for attr in Attrs::new(&p[tlv_at..]) {
            let (ty, val) = attr?;
            match ty {
                NLMSGERR_ATTR_MSG => {
                    let s = val.split(|&c| c == 0).next().unwrap_or(&[]);
                    ack.msg = std::str::from_utf8(s).ok();
                }
                NLMSGERR_ATTR_OFFS if val.len() >= 4 => ack.offset = Some(ne_u32(val, 0)),
                _ => {}
            }
        }
        Ok(ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::MsgBuf;

    #[test]
    fn parses_ack_with_extack_message() {
        // An NLMSG_ERROR (-EINVAL, capped, with TLVs) answering seq 9 with message "bad".
        let mut b = MsgBuf::new();
        let m = b.begin_msg(NLMSG_ERROR, (NlmF::CAPPED | NlmF::ACK_TLVS).bits(), 9);
        b.put(&(-22i32).to_ne_bytes());
        let inner = b.begin_msg(16, 5, 9);
        b.end_msg(inner);
        b.attr_str(NLMSGERR_ATTR_MSG, b"bad");
        b.attr_u32(NLMSGERR_ATTR_OFFS, 20);
        b.end_msg(m);
        let raw = Messages::new(b.as_bytes()).next().unwrap().unwrap();
        let ack = Ack::parse(&raw).unwrap();
        assert_eq!(ack.errno, 22);
        assert_eq!(ack.seq, 9);
        assert_eq!(ack.msg, Some("bad"));
        assert_eq!(ack.offset, Some(20));
    }

    #[test]
    fn a_positive_or_extreme_code_is_never_a_negative_errno() {
        for (code, errno) in [(17i32, 17), (-17, 17), (0, 0), (i32::MIN, i32::MAX)] {
            let mut b = MsgBuf::new();
            let m = b.begin_msg(NLMSG_ERROR, 0, 3);
            b.put(&code.to_ne_bytes());
            let inner = b.begin_msg(16, 5, 3);
            b.end_msg(inner);
            b.end_msg(m);
            let raw = Messages::new(b.as_bytes()).next().unwrap().unwrap();
            assert_eq!(Ack::parse(&raw).unwrap().errno, errno, "code {code}");
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        let bytes = [0xffu8; 20];
        assert!(Messages::new(&bytes).next().unwrap().is_err());
        assert!(Messages::new(&bytes[..3]).next().unwrap().is_err());
    }
}
