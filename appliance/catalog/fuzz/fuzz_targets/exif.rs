//! JPEG and TIFF stills (their EXIF) from arbitrary bytes: an error or a record, within
//! budget.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rushes_catalog::{exif, source::READ_BUDGET, Source};

fuzz_target!(|data: &[u8]| {
    let src = Source::memory(data);
    let _ = exif::parse_jpeg(&src);
    let _ = exif::parse_tiff(&src);
    assert!(src.spent() <= READ_BUDGET);
});
