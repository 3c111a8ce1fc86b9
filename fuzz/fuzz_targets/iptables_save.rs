//! `iptables-save` output as the iptables backend reads it back: any text gives a state
//! (one rule count per network), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netplumb::fuzzing;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let st = fuzzing::iptables_save(&text);
    assert_eq!(st.networks.len(), st.rules.len());
});
