//! rushes.toml as PID 1 reads it at boot (a card pulled mid-write, a hand edit gone
//! wrong, a file from a newer rushesd): settings or an error, never a panic; and what
//! init goes on to hand `ip`, sethostname and /etc/localtime is always checked.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/settings.rs"]
mod settings;

use libfuzzer_sys::fuzz_target;
use settings::{Addressing, Settings, MAX_DNS, MTU_RANGE};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = Settings::parse(text) else {
        return;
    };
    if let Some(Ok(name)) = parsed.checked_hostname() {
        assert!(name.len() <= 63 && !name.starts_with('-'), "{name:?}");
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
    }
    if let Some(Ok(zone)) = parsed.checked_timezone() {
        assert!(!zone.starts_with('/') && !zone.split('/').any(|p| p == ".."), "{zone:?}");
    }
    for nic in &parsed.networks {
        let (plan, _problems) = nic.plan();
        if let Some(mtu) = plan.mtu {
            assert!(MTU_RANGE.contains(&mtu));
        }
        if let Addressing::Static { address, prefix, gateway, ref dns } = plan.addressing {
            // What `ip addr replace` gets reads back as the same address.
            let cidr = plan.addressing.cidr().unwrap();
            let (ip, len) = cidr.split_once('/').unwrap();
            assert_eq!(ip.parse::<std::net::IpAddr>().unwrap(), address);
            assert_eq!(len.parse::<u8>().unwrap(), prefix);
            assert!(prefix <= if address.is_ipv4() { 32 } else { 128 });
            if let Some(gw) = gateway {
                assert_eq!(gw.is_ipv4(), address.is_ipv4());
            }
            assert!(dns.len() <= MAX_DNS);
        }
    }
});
