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
