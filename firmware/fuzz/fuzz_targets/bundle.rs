//! A firmware bundle an admin uploads: magic line, manifest, payload and its hash. A
//! bundle is accepted only when its hash matches, so random bytes never are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rushes_firmware::bundle;

fuzz_target!(|data: &[u8]| {
    if let Ok((manifest, payload)) = bundle::check(data, "K200-LP", "9.9.9") {
        assert_eq!(manifest.size, payload.len() as u64);
        assert_eq!(manifest.sha256, bundle::sha256(&payload));
    }
});
