//! The etcd client's HTTP response framing: the status line and headers, then a chunked
//! body, decoded as `Conn` does from its receive buffer. The chunks a body yields do not
//! depend on how its bytes arrive: fed one byte at a time, the decoder yields what it
//! yields on the whole buffer (up to where either stops).
#![no_main]

use libfuzzer_sys::fuzz_target;
use netplumb::fuzzing::{http_chunk, http_head};

/// Chunks (`None` for the last) until the decoder needs more bytes, fails or ends.
fn decode_whole(bytes: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut buf = bytes.to_vec();
    let mut out = Vec::new();
    while let Ok(Some(c)) = http_chunk(&mut buf) {
        let last = c.is_none();
        out.push(c);
        if last {
            break;
        }
    }
    out
}

fn decode_bytewise(bytes: &[u8]) -> Vec<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for &b in bytes {
        buf.push(b);
        loop {
            match http_chunk(&mut buf) {
                Ok(Some(c)) => {
                    let last = c.is_none();
                    out.push(c);
                    if last {
                        return out;
                    }
                }
                Ok(None) => break,
                Err(_) => return out,
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => (data, &[][..]),
    };
    let _ = http_head(&String::from_utf8_lossy(head));
    let whole = decode_whole(body);
    if body.len() <= 1024 {
        let bytewise = decode_bytewise(body);
        let n = whole.len().min(bytewise.len());
        assert_eq!(
            whole[..n],
            bytewise[..n],
            "chunks depend on how bytes arrive"
        );
    }
});
