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

    #[inline]
    fn pad(&mut self) {
        let pad = align(self.bytes.len()) - self.bytes.len();
        if pad != 0 {
            self.bytes.extend_from_slice(&[0u8; ALIGNTO][..pad]);
        }
    }

    /// Starts a message: writes an `nlmsghdr` whose length is patched by [`MsgBuf::end_msg`].
    #[inline]
    pub fn begin_msg(&mut self, ty: u16, flags: u16, seq: u32) -> Msg {
        let at = self.bytes.len();
        let mut hdr = [0u8; NLMSG_HDRLEN];
        hdr[4..6].copy_from_slice(&ty.to_ne_bytes());
        hdr[6..8].copy_from_slice(&flags.to_ne_bytes());
        hdr[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.bytes.extend_from_slice(&hdr);
        Msg(at)
    }

    /// Closes a message: patches `nlmsg_len`.
    #[inline]
    pub fn end_msg(&mut self, msg: Msg) {
        let len = (self.bytes.len() - msg.0) as u32;
        self.bytes[msg.0..msg.0 + 4].copy_from_slice(&len.to_ne_bytes());
    }

    #[inline]
    fn attr_hdr(&mut self, ty: u16, payload: usize) {
        let len = (NLA_HDRLEN + payload) as u16;
        let mut h = [0u8; NLA_HDRLEN];
        h[..2].copy_from_slice(&len.to_ne_bytes());
        h[2..].copy_from_slice(&ty.to_ne_bytes());
        self.bytes.extend_from_slice(&h);
    }

    /// Appends an attribute with a raw payload.
    #[inline]
    pub fn attr(&mut self, ty: u16, payload: &[u8]) {
        self.attr_hdr(ty, payload.len());
        self.put(payload);
    }

    /// Appends an attribute without payload (a flag).
    #[inline]
    pub fn attr_flag(&mut self, ty: u16) {
        self.attr_hdr(ty, 0);
    }

    /// Appends a `u8` attribute.
    #[inline]
    pub fn attr_u8(&mut self, ty: u16, v: u8) {
        self.attr(ty, &[v]);
    }

    /// Appends a `u16` attribute in host byte order.
    #[inline]
    pub fn attr_u16(&mut self, ty: u16, v: u16) {
        self.attr(ty, &v.to_ne_bytes());
    }

    /// Appends a `u16` attribute in network byte order (ports).
    #[inline]
    pub fn attr_be16(&mut self, ty: u16, v: u16) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// Appends a `u32` attribute in host byte order.
    #[inline]
    pub fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    /// Appends an `i32` attribute in host byte order.
    #[inline]
    pub fn attr_i32(&mut self, ty: u16, v: i32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    /// Appends a NUL-terminated string attribute.
    #[inline]
    pub fn attr_str(&mut self, ty: u16, s: &[u8]) {
        self.attr_hdr(ty, s.len() + 1);
        self.bytes.extend_from_slice(s);
        self.bytes.push(0);
        self.pad();
    }

    /// Starts a nested attribute (`NLA_F_NESTED` is not set: rtnetlink does not use it).
    #[inline]
    pub fn begin_nest(&mut self, ty: u16) -> Nest {
        let at = self.bytes.len();
        self.attr_hdr(ty, 0);
        Nest(at)
    }

    /// Closes a nested attribute: patches its length.
    #[inline]
    pub fn end_nest(&mut self, nest: Nest) {
        let len = (self.bytes.len() - nest.0) as u16;
        self.bytes[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
    }
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
    fn clear_keeps_capacity() {
        let mut b = MsgBuf::with_capacity(64);
        b.attr_u32(1, 5);
        let cap = b.capacity();
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.capacity(), cap);
    }
}
