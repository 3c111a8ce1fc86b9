//! `RTM_{NEW,GET}NSID` requests (`ip netns set NAME ID`, `ip netns list-id`).

use super::{MsgBuf, NlmF};

/// `RTM_NEWNSID`.
pub const RTM_NEWNSID: u16 = 88;
/// `RTM_GETNSID`.
pub const RTM_GETNSID: u16 = 90;
/// `NETNSA_NSID`.
pub const NETNSA_NSID: u16 = 1;
/// `NETNSA_PID`.
pub const NETNSA_PID: u16 = 2;
/// `NETNSA_FD`.
pub const NETNSA_FD: u16 = 3;
/// `NETNSA_NSID_NOT_ASSIGNED`.
pub const NETNSA_NSID_NOT_ASSIGNED: i32 = -1;

fn begin(buf: &mut MsgBuf, ty: u16, flags: NlmF, seq: u32) -> super::Msg {
    let m = buf.begin_msg(ty, flags.bits(), seq);
    // struct rtgenmsg { rtgen_family }, padded to 4.
    buf.put(&[0u8]);
    m
}

/// `RTM_NEWNSID`: give the namespace behind `fd` the id `nsid` in the socket's namespace.
pub fn set_nsid(buf: &mut MsgBuf, seq: u32, fd: i32, nsid: i32) {
    let m = begin(buf, RTM_NEWNSID, NlmF::CHANGE, seq);
    buf.attr_i32(NETNSA_FD, fd);
    buf.attr_i32(NETNSA_NSID, nsid);
    buf.end_msg(m);
}

/// `RTM_GETNSID`: ask for the id of the namespace behind `fd`.
pub fn get_nsid(buf: &mut MsgBuf, seq: u32, fd: i32) {
    let m = begin(buf, RTM_GETNSID, NlmF::CHANGE, seq);
    buf.attr_i32(NETNSA_FD, fd);
    buf.end_msg(m);
}

/// `RTM_GETNSID` dump: every id the socket's namespace has assigned.
pub fn dump_nsids(buf: &mut MsgBuf, seq: u32) {
    let m = begin(buf, RTM_GETNSID, NlmF::GET_DUMP, seq);
    buf.end_msg(m);
}
