//! rushes.toml as rushesd reads it at start (a card pulled mid-write, a hand edit gone
//! wrong): a configuration or an error that says what is wrong, never a panic; and what
//! parses is written back in a form that parses to the same configuration.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/config.rs"]
mod config;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = config::ApplianceConfig::parse(text) {
        let Ok(written) = parsed.to_toml() else {
            return;
        };
        let again = config::ApplianceConfig::parse(&written)
            .unwrap_or_else(|e| panic!("what was written does not read back: {e}\n{written}"));
        assert_eq!(again.to_toml().as_deref(), Ok(written.as_str()));
    }
});
