//! Zero-copy iteration over netlink attributes of untrusted replies.

use super::Error;

/// Iterates over `(type, payload)` of the attributes packed in `buf`.
///
/// The type is returned without the `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER` bits. A malformed
/// attribute ends the iteration with an error; it never panics.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Iterates over the attributes of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.rest;
        if b.len() < super::NLA_HDRLEN {
            self.rest = &[];
            // Trailing padding shorter than a header is not an error.
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < super::NLA_HDRLEN || len > b.len() {
            self.rest = &[];
            return Some(Err(Error::BadLength("nlattr")));
        }
        self.rest = &b[super::align(len).min(b.len())..];
        Some(Ok((ty, &b[super::NLA_HDRLEN..len])))
    }
}

/// Reads a native-endian `u32` payload.
pub fn u32_of(p: &[u8]) -> Result<u32, Error> {
    p.get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(Error::Truncated("u32 attribute"))
}

/// Reads a native-endian `i32` payload.
pub fn i32_of(p: &[u8]) -> Result<i32, Error> {
    u32_of(p).map(|v| v as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterates_and_stops_on_garbage() {
        let mut b = crate::wire::MsgBuf::new();
        b.attr_u32(1, 7);
        b.attr_str(3, b"eth0");
        let got: Vec<_> = Attrs::new(b.as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(got[0].0, 1);
        assert_eq!(u32_of(got[0].1).unwrap(), 7);
        assert_eq!(got[1].1, b"eth0\0");
        let bad = [200u8, 0, 1, 0, 0, 0];
        assert!(Attrs::new(&bad).next().unwrap().is_err());
        assert!(u32_of(&[1, 2]).is_err());
    }
}
