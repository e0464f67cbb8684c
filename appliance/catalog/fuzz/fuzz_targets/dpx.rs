//! DPX headers from arbitrary bytes: an error or a record, within budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rushes_catalog::{dpx, source::READ_BUDGET, Source};

fuzz_target!(|data: &[u8]| {
    let src = Source::memory(data);
    let _ = dpx::parse(&src);
    assert!(src.spent() <= READ_BUDGET);
});
