//! The network layer's one source of randomness: network ids, and the interface groups
//! that processes deleting links at the same time must not share.

use std::hash::{Hash, Hasher};
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

/// Fills `buf` from `/dev/urandom`; without it, from the time, the process and the thread
/// (enough to tell concurrent callers apart, which is all these values are for).
fn fill(buf: &mut [u8]) {
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
    if read.is_ok() {
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (nanos, std::process::id(), std::thread::current().id(), i).hash(&mut h);
        chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
    }
}

/// A random number.
pub(crate) fn number() -> u32 {
    let mut b = [0u8; 4];
    fill(&mut b);
    u32::from_le_bytes(b)
}

/// A random MAC address, unicast and locally administered (`x2:…`), for an interface
/// that has no address to derive one from.
pub(crate) fn mac() -> crate::link::MacAddr {
    let mut b = [0u8; 6];
    fill(&mut b);
    b[0] = (b[0] & 0xfc) | 0x02;
    crate::link::MacAddr(b)
}

/// 64 random hex digits: a network id, as Docker's.
pub(crate) fn hex_id() -> String {
    let mut b = [0u8; 32];
    fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_hex_and_differ() {
        let (a, b) = (super::hex_id(), super::hex_id());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
