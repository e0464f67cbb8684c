//! One UDP datagram as an RPC call: the portmapper, MOUNT, NLM and NSM answer there.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = common::harness().udp_datagram(data);
});
