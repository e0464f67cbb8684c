//! An update bundle from outside: its header (bounded lengths), its manifest (TOML, read
//! even when unsigned, so the fuzzer reaches the parser), the signature check (with the
//! key the bundle names), and the payload copy a checked bundle would get.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let Ok(raw) = rushes_update::read_header(&mut rest) else {
        return;
    };
    if let Ok(manifest) = rushes_update::Manifest::parse(&raw.manifest) {
        assert!(manifest.files.len() == rushes_update::PAYLOAD.len());
        for file in &manifest.files {
            let mut from = rest;
            let _ = rushes_update::copy_payload_file(&mut from, file, &mut std::io::sink(), |_| {});
        }
    }
    // Trusting the key the bundle names reaches the signature check with every input.
    if let Some(key) = rushes_update::PublicKey::from_bytes(&raw.key) {
        let _ = raw.check(&[key], "0.1.0");
    }
});
