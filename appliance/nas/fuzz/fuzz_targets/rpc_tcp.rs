//! A TCP client's bytes: record marks, then each record as an RPC call to whichever
//! program it names. Whatever comes, an answer or nothing, and no panic.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let replies = common::harness().tcp_stream(data);
    for r in replies {
        // A reply starts with its record mark's room and the xid.
        assert!(r.len() >= 8);
    }
});
