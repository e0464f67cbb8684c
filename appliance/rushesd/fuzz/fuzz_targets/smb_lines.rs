//! A datagram on rushesd's /dev/log, from smbd or anything else on the box: the syslog
//! frame, then a full_audit record or a failed login, or nothing.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/smb_lines.rs"]
mod smb_lines;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Some(line) = smb_lines::split_syslog(&text) else {
        return;
    };
    if let Some(audit) = smb_lines::parse_audit(line.text) {
        assert!(audit.path.as_deref().is_none_or(|p| p.starts_with('/')));
    }
    let _ = smb_lines::parse_failed_login(line.text);
});
