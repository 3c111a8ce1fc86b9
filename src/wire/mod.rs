//! The bytes of every netlink request, and the framing of every reply.
//!
//! This layer is pure: it does no I/O, imports nothing else from the crate, and allocates
//! nothing when it encodes (it appends to a caller-owned [`MsgBuf`] that keeps its capacity
//! between messages).
//!
//! # Contract
//! - Emit functions take already-validated values and cannot fail; they append whole
//!   messages, so a buffer may hold a batch of many.
//! - Parse functions take untrusted bytes, never panic, skip attributes they do not know,
//!   and report malformed input as [`Error`].
//! - Constants keep their kernel names (`IFLA_INFO_DATA`, `VETH_INFO_PEER`) so they can be
//!   checked against `<linux/if_link.h>` and `<linux/rtnetlink.h>`.
//!
//! The replies' payloads (link, address and route dumps) are decoded with
//! netlink-packet-route one layer up; this layer frames them and decodes
//! acknowledgements and extended ACKs itself.
//!
//! # Who this is for
//!
//! Most users never name this module: the typed requests ([`crate::link`],
//! [`crate::addr`], [`crate::route`], …) and [`crate::Rtnl`] cover what they send. It is
//! public as the crate's message hot path for users who build requests of their own (an
//! attribute netplumb does not set, a message type it does not send): implement
//! [`crate::Request`] with these encoders and send it through [`crate::Rtnl::execute`].
//! Its constants are the kernel's ABI under the kernel's names, so they change only when
//! a constant is added; the encoders' signatures follow the crate's semver like any other
//! public item.
//!
//! ```no_run
//! use std::fmt;
//! use netplumb::error::Op;
//! use netplumb::wire::{link, MsgBuf, NlmF};
//! use netplumb::{Request, Rtnl};
//!
//! /// `ip link set dev IFINDEX txqueuelen N`, which the typed requests do not offer.
//! struct TxQueueLen { index: i32, len: u32 }
//!
//! impl fmt::Display for TxQueueLen {
//!     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!         write!(f, "ip link set dev if{} txqueuelen {}", self.index, self.len)
//!     }
//! }
//!
//! impl Request for TxQueueLen {
//!     fn op(&self) -> Op { Op::SetLink }
//!     fn validate(&self) -> netplumb::Result<()> { Ok(()) }
//!     fn encode(&self, buf: &mut MsgBuf, seq: u32) {
//!         let info = link::IfInfo { index: self.index, ..Default::default() };
//!         let m = link::begin_link(buf, link::RTM_NEWLINK, NlmF::REQUEST | NlmF::ACK, seq, &info);
//!         buf.attr_u32(link::IFLA_TXQLEN, self.len);
//!         buf.end_msg(m);
//!     }
//! }
//!
//! let mut rtnl = Rtnl::open()?;
//! let lo = rtnl.link("lo")?;
//! rtnl.execute(&TxQueueLen { index: lo.index as i32, len: 1000 })?;
//! # Ok::<(), netplumb::Error>(())
//! ```

pub mod addr;
mod buf;
pub mod link;
pub mod neigh;
pub mod nft;
pub mod nlmsg;
pub mod nsid;
pub mod parse;
pub mod route;

pub use buf::{align, Msg, MsgBuf, Nest, ALIGNTO, NLA_F_NESTED, NLA_HDRLEN, NLMSG_HDRLEN};
pub use nlmsg::{Ack, Messages, NlmF, RawMsg};

/// A malformed reply. `Copy`, allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The bytes end before a structure does.
    Truncated(&'static str),
    /// A length field points outside the buffer or below the header size.
    BadLength(&'static str),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Truncated(what) => write!(f, "truncated {what}"),
            Error::BadLength(what) => write!(f, "bad length in {what}"),
        }
    }
}

impl std::error::Error for Error {}
