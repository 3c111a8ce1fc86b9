//! `-p` specs (`PortMapping` from a string), `-P` exposed ports, port ranges and protocols.
//! A spec that parses prints (`Display`) as a spec that parses back to the same mapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netplumb::ports::{publish_all, PortMapping, PortRange, Proto};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for spec in text.split(',').chain([&*text]) {
        if let Ok(m) = spec.parse::<PortMapping>() {
            let shown = m.to_string();
            assert_eq!(shown.parse::<PortMapping>(), Ok(m), "{spec:?} -> {shown:?}");
            assert_eq!(m.validate(), Ok(()));
        }
        if let Ok(r) = spec.parse::<PortRange>() {
            assert!(r.start() >= 1 && r.start() <= r.end() && r.count() >= 1);
            assert_eq!(r.to_string().parse::<PortRange>(), Ok(r));
        }
        if let Ok(p) = spec.parse::<Proto>() {
            assert_eq!(p.to_string().parse::<Proto>(), Ok(p));
        }
    }
    if let Ok(ms) = publish_all(text.split(',')) {
        for m in ms {
            assert_eq!(m.to_string().parse::<PortMapping>(), Ok(m));
        }
    }
});
