//! The published-port registry file (`ports/published`), which other processes write too:
//! any text is a registry or an error naming its line, and no port read back is port 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netplumb::fuzzing;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(ports) = fuzzing::port_registry(&text) {
        for p in ports {
            assert_ne!(p.host_port, 0, "{text:?}");
        }
    }
});
