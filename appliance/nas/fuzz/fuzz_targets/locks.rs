//! NLM (versions 4 and 1) and NSM calls alone, well formed around fuzzed arguments: the
//! lock manager's and the status monitor's decoders, which `calls` reaches a third of the
//! time, get all of this target's.
#![no_main]

mod common;
mod well_formed;

use libfuzzer_sys::fuzz_target;

/// NLM 4, NLM 1 (what NFSv2-era clients speak) and NSM 1.
const PROGRAMS: [(u32, u32); 3] = [(100021, 4), (100021, 1), (100024, 1)];

fuzz_target!(|data: &[u8]| well_formed::send(&PROGRAMS, data));
