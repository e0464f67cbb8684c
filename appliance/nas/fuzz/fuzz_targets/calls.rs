//! Well-formed RPC calls with fuzzed arguments, so the fuzzer spends its time in the
//! programs' argument decoders rather than in the header: the first byte picks the
//! program and version, the second the procedure, the third the credential and whether
//! the share's root handle (from a real MNT) comes first in the arguments.
#![no_main]

mod common;
mod well_formed;

use libfuzzer_sys::fuzz_target;

/// (program, version) pairs the server answers.
const PROGRAMS: [(u32, u32); 9] = [
    (100003, 3),
    (100005, 3),
    (100005, 1),
    (100000, 2),
    (100000, 3),
    (100000, 4),
    (100021, 4),
    (100021, 1),
    (100024, 1),
];

fuzz_target!(|data: &[u8]| well_formed::send(&PROGRAMS, data));
