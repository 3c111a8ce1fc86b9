//! [`MsgBuf`]: the reusable, aligned writer every netlink request is encoded into.

/// Netlink aligns every header and attribute to 4 bytes (`NLMSG_ALIGNTO`, `NLA_ALIGNTO`).
pub const ALIGNTO: usize = 4;

/// Rounds `len` up to the netlink alignment.
#[inline]
pub const fn align(len: usize) -> usize {
    (len + ALIGNTO - 1) & !(ALIGNTO - 1)
}

/// Size of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// Size of `struct nlattr`.
pub const NLA_HDRLEN: usize = 4;
/// `NLA_F_NESTED`: set on the type of an attribute that holds attributes.
pub const NLA_F_NESTED: u16 = 1 << 15;

/// A message started by [`MsgBuf::begin_msg`], closed by [`MsgBuf::end_msg`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a message must be closed with MsgBuf::end_msg"]
pub struct Msg(usize);

impl Msg {
    /// Offset of the message's `nlmsghdr` inside the buffer.
    pub fn offset(self) -> usize {
        self.0
    }
}

/// A nested attribute started by [`MsgBuf::begin_nest`], closed by [`MsgBuf::end_nest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a nest must be closed with MsgBuf::end_nest"]
pub struct Nest(usize);

/// A growable byte buffer that holds one or more netlink messages.
///
/// Every write is appended at the end, padded to 4 bytes. Lengths of messages and nested
/// attributes are back-patched when they are closed, so encoding is a single pass. Once the
/// buffer has grown to the largest message it has held ("warm"), [`MsgBuf::clear`] keeps the
/// capacity and later encodes allocate nothing.
#[derive(Debug, Clone, Default)]
pub struct MsgBuf {
    bytes: Vec<u8>,
}

impl MsgBuf {
    /// An empty buffer with room for `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        MsgBuf {
            bytes: Vec::with_capacity(cap),
        }
    }

    /// An empty buffer with room for a typical batch (4 KiB).
    pub fn new() -> Self {
        Self::with_capacity(4096)
    }

    /// Forgets the content, keeps the capacity.
    #[inline]
    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    /// Drops everything written after `len` (used to undo a half-written message).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        self.bytes.truncate(len);
    }

    /// The encoded bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of bytes written.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when nothing is written.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes the buffer can hold before it must grow.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Appends raw bytes and pads them to 4 bytes.
    #[inline]
    pub fn put(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    /// Appends a fixed-size block in one copy; `N` must be a multiple of 4 (checked at
    /// compile time), so no padding follows.
    #[inline(always)]
    pub fn put_array<const N: usize>(&mut self, data: &[u8; N]) {
        const { assert!(N % ALIGNTO == 0, "put_array needs a 4-byte multiple") };
        self.bytes.extend_from_slice(data);
    }

    #[inline(always)]
    fn pad(&mut self) {
        let len = self.bytes.len();
        let pad = align(len) - len;
        if pad != 0 {
            // Append a whole word of zeros and cut it back: no variable-length copy.
            self.bytes.extend_from_slice(&[0u8; ALIGNTO]);
            self.bytes.truncate(len + pad);
        }
    }

    /// Starts a message: writes an `nlmsghdr` whose length is patched by [`MsgBuf::end_msg`].
    #[inline(always)]
    pub fn begin_msg(&mut self, ty: u16, flags: u16, seq: u32) -> Msg {
        let at = self.bytes.len();
        self.put_array(&nlmsghdr(ty, flags, seq));
        Msg(at)
    }

    /// Starts a message and writes its fixed family header (`ifinfomsg`, `ifaddrmsg`,
    /// `rtmsg`...) right after the `nlmsghdr`, both in one copy. `N` must be a multiple
    /// of 4, at most 16.
    #[inline(always)]
    pub fn begin_msg_with<const N: usize>(
        &mut self,
        ty: u16,
        flags: u16,
        seq: u32,
        family_hdr: &[u8; N],
    ) -> Msg {
        const {
            assert!(
                N % ALIGNTO == 0 && N <= 16,
                "family header: 4-byte multiple, at most 16"
            )
        };
        let at = self.bytes.len();
        // One append of known size: the heap writes cannot be seen as clobbering the
        // vector's own length between two appends.
        let mut b = [0u8; NLMSG_HDRLEN + 16];
        b[..NLMSG_HDRLEN].copy_from_slice(&nlmsghdr(ty, flags, seq));
        b[NLMSG_HDRLEN..NLMSG_HDRLEN + N].copy_from_slice(family_hdr);
        self.bytes.extend_from_slice(&b[..NLMSG_HDRLEN + N]);
        Msg(at)
    }

    /// Closes a message: patches `nlmsg_len`.
    #[inline(always)]
    pub fn end_msg(&mut self, msg: Msg) {
        let len = (self.bytes.len() - msg.0) as u32;
        self.bytes[msg.0..msg.0 + 4].copy_from_slice(&len.to_ne_bytes());
    }

    #[inline(always)]
    fn attr_hdr(&mut self, ty: u16, payload: usize) {
        self.put_array(&nla_hdr(ty, NLA_HDRLEN + payload));
    }

    /// Appends an attribute with a 4-byte payload (an IPv4 address), header and payload in
    /// one copy.
    #[inline(always)]
    pub fn attr_word(&mut self, ty: u16, payload: [u8; 4]) {
        self.put_array(&nla8(ty, 4, payload));
    }

    /// Appends an attribute with a 1- to 4-byte payload, zero-padded, in one copy.
    #[inline(always)]
    fn attr_small(&mut self, ty: u16, payload_len: usize, word: [u8; 4]) {
        self.put_array(&nla8(ty, payload_len, word));
    }

    /// Appends an attribute with a raw payload.
    #[inline]
    pub fn attr(&mut self, ty: u16, payload: &[u8]) {
        self.attr_hdr(ty, payload.len());
        self.put(payload);
    }

    /// Appends an attribute with a fixed-size payload (an address): the header, the payload
    /// and the padding are copies of known size.
    #[inline(always)]
    pub fn attr_array<const N: usize>(&mut self, ty: u16, payload: &[u8; N]) {
        self.attr_hdr(ty, N);
        self.bytes.extend_from_slice(payload);
        let pad = align(N) - N;
        if pad != 0 {
            self.bytes.extend_from_slice(&[0u8; ALIGNTO][..pad]);
        }
    }

    /// Appends an attribute without payload (a flag).
    #[inline(always)]
    pub fn attr_flag(&mut self, ty: u16) {
        self.attr_hdr(ty, 0);
    }

    /// Appends a `u8` attribute.
    #[inline(always)]
    pub fn attr_u8(&mut self, ty: u16, v: u8) {
        self.attr_small(ty, 1, [v, 0, 0, 0]);
    }

    /// Appends a `u16` attribute in host byte order.
    #[inline(always)]
    pub fn attr_u16(&mut self, ty: u16, v: u16) {
        let b = v.to_ne_bytes();
        self.attr_small(ty, 2, [b[0], b[1], 0, 0]);
    }

    /// Appends a `u16` attribute in network byte order (ports).
    #[inline(always)]
    pub fn attr_be16(&mut self, ty: u16, v: u16) {
        let b = v.to_be_bytes();
        self.attr_small(ty, 2, [b[0], b[1], 0, 0]);
    }

    /// Appends a `u32` attribute in host byte order.
    #[inline(always)]
    pub fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr_word(ty, v.to_ne_bytes());
    }

    /// Appends an `i32` attribute in host byte order.
    #[inline(always)]
    pub fn attr_i32(&mut self, ty: u16, v: i32) {
        self.attr_word(ty, v.to_ne_bytes());
    }

    /// Appends a NUL-terminated string attribute.
    #[inline]
    pub fn attr_str(&mut self, ty: u16, s: &[u8]) {
        let at = self.bytes.len();
        let total = align(NLA_HDRLEN + s.len() + 1);
        self.attr_hdr(ty, s.len() + 1);
        self.bytes.extend_from_slice(s);
        // The NUL and the padding (1 to 4 bytes): a whole word of zeros, cut back.
        self.bytes.extend_from_slice(&[0u8; ALIGNTO]);
        self.bytes.truncate(at + total);
    }

    /// Starts a nested attribute (`NLA_F_NESTED` is not set: rtnetlink does not use it).
    #[inline(always)]
    pub fn begin_nest(&mut self, ty: u16) -> Nest {
        let at = self.bytes.len();
        self.attr_hdr(ty, 0);
        Nest(at)
    }

    /// Closes a nested attribute: patches its length.
    ///
    /// An attribute's length is 16 bits: callers keep nests under 64 KiB (the nf_tables
    /// emitters split element lists to stay far below it); debug builds check it.
    #[inline(always)]
    pub fn end_nest(&mut self, nest: Nest) {
        debug_assert!(
            self.bytes.len() - nest.0 <= u16::MAX as usize,
            "nested attribute over 64 KiB"
        );
        let len = (self.bytes.len() - nest.0) as u16;
        self.bytes[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// A `struct nlmsghdr` with a zero length (patched later) and port id.
#[inline(always)]
fn nlmsghdr(ty: u16, flags: u16, seq: u32) -> [u8; NLMSG_HDRLEN] {
    // Whole-field copies (not byte by byte) so that each field stays one store.
    let mut h = [0u8; NLMSG_HDRLEN];
    h[4..6].copy_from_slice(&ty.to_ne_bytes());
    h[6..8].copy_from_slice(&flags.to_ne_bytes());
    h[8..12].copy_from_slice(&seq.to_ne_bytes());
    h
}

/// A `struct nlattr` of total length `len` (header included, padding excluded).
#[inline(always)]
fn nla_hdr(ty: u16, len: usize) -> [u8; NLA_HDRLEN] {
    let mut h = [0u8; NLA_HDRLEN];
    h[..2].copy_from_slice(&(len as u16).to_ne_bytes());
    h[2..].copy_from_slice(&ty.to_ne_bytes());
    h
}

/// An attribute of 8 bytes: header and a zero-padded 4-byte word.
#[inline(always)]
fn nla8(ty: u16, payload_len: usize, word: [u8; 4]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a[..4].copy_from_slice(&nla_hdr(ty, NLA_HDRLEN + payload_len));
    a[4..].copy_from_slice(&word);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nest_and_msg_lengths_are_patched() {
        let mut b = MsgBuf::new();
        let m = b.begin_msg(16, 5, 7);
        let n = b.begin_nest(18);
        b.attr_str(1, b"veth");
        b.end_nest(n);
        b.end_msg(m);
        let bytes = b.as_bytes();
        assert_eq!(bytes.len(), 16 + 4 + 12);
        assert_eq!(u32::from_ne_bytes(bytes[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(bytes[16..18].try_into().unwrap()), 16);
        assert_eq!(&bytes[24..29], b"veth\0");
        assert_eq!(u32::from_ne_bytes(bytes[8..12].try_into().unwrap()), 7);
    }

    #[test]
    fn strings_are_nul_terminated_and_zero_padded() {
        // Lengths 0 to 8 cover every padding (1 to 4 bytes after the string); the buffer is
        // dirtied first so that stale bytes would show.
        let mut b = MsgBuf::new();
        for n in 0..=8usize {
            b.clear();
            b.put(&[0xff; 64]);
            b.clear();
            let s = &b"abcdefgh"[..n];
            b.attr_str(3, s);
            let total = align(NLA_HDRLEN + n + 1);
            assert_eq!(b.len(), total, "length {n}");
            let bytes = b.as_bytes();
            assert_eq!(
                u16::from_ne_bytes([bytes[0], bytes[1]]) as usize,
                NLA_HDRLEN + n + 1
            );
            assert_eq!(&bytes[NLA_HDRLEN..NLA_HDRLEN + n], s);
            assert!(
                bytes[NLA_HDRLEN + n..].iter().all(|&c| c == 0),
                "length {n}"
            );
        }
    }

    #[test]
    fn fixed_size_writers_match_the_generic_ones() {
        let mut fast = MsgBuf::new();
        let mut slow = MsgBuf::new();
        let m = fast.begin_msg_with(16, 0x605, 9, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let n = slow.begin_msg(16, 0x605, 9);
        slow.put(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(m.offset(), n.offset());
        fast.attr_u8(1, 7);
        slow.attr(1, &[7]);
        fast.attr_u16(2, 0x1234);
        slow.attr(2, &0x1234u16.to_ne_bytes());
        fast.attr_be16(3, 4789);
        slow.attr(3, &4789u16.to_be_bytes());
        fast.attr_u32(4, 0xdead_beef);
        slow.attr(4, &0xdead_beefu32.to_ne_bytes());
        fast.attr_i32(5, -1);
        slow.attr(5, &(-1i32).to_ne_bytes());
        fast.attr_word(6, [10, 0, 0, 1]);
        slow.attr(6, &[10, 0, 0, 1]);
        fast.attr_array(7, &[2, 0x42, 0xac, 0x11, 0, 2]);
        slow.attr(7, &[2, 0x42, 0xac, 0x11, 0, 2]);
        fast.attr_array(8, &[0xfe; 16]);
        slow.attr(8, &[0xfe; 16]);
        fast.attr_flag(9);
        slow.attr(9, &[]);
        fast.end_msg(m);
        slow.end_msg(n);
        assert_eq!(fast.as_bytes(), slow.as_bytes());
        assert_eq!(fast.len() % ALIGNTO, 0);
    }

    #[test]
    fn clear_keeps_capacity() {
        let mut b = MsgBuf::with_capacity(64);
        b.attr_u32(1, 5);
        let cap = b.capacity();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.capacity(), cap);
    }
}
