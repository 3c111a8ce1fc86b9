//! Raw Ethernet frames for traffic tests: an `AF_PACKET` socket bound to one link.
#![allow(unsafe_code)]

use std::time::Duration;

use nix::libc;

/// A raw socket on interface `ifindex` of the calling thread's namespace, receiving frames
/// of ethertype `protocol` (`0x0003`: all), with a receive timeout.
pub fn packet_socket(ifindex: u32, protocol: u16, timeout: Duration) -> libc::c_int {
    // SAFETY: plain syscalls on a socket we own; sockaddr_ll is fully initialised.
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (protocol.to_be()) as libc::c_int,
        );
        assert!(fd >= 0, "AF_PACKET socket");
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol.to_be();
        sll.sll_ifindex = ifindex as i32;
        let r = libc::bind(
            fd,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&sll) as u32,
        );
        assert_eq!(r, 0, "bind AF_PACKET");
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of_val(&tv) as u32,
        );
        fd
    }
}
