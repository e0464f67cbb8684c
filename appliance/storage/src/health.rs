//! Drive health: NVMe's SMART / Health Information log page (log 0x02), read with an
//! admin passthrough command on the controller's character device, and SATA/SAS SMART
//! through smartmontools' `smartctl --json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use rushes_api::{DiskHealth, HealthSource};

/// Decode the 512-byte SMART / Health Information log (NVMe base spec, Get Log Page 02h).
pub fn parse_smart_log(log: &[u8; 512]) -> DiskHealth {
    let u128_at = |off: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&log[off..off + 16]);
        u128::from_le_bytes(b)
    };
    let kelvin = u16::from_le_bytes([log[1], log[2]]);
    DiskHealth {
        source: HealthSource::NvmeLog,
        critical_warning: Some(log[0]),
        temperature_c: (kelvin > 0).then(|| i32::from(kelvin) - 273),
        available_spare_pct: Some(log[3]),
        spare_threshold_pct: Some(log[4]),
        percent_used: Some(log[5]),
        media_errors: Some(u64::try_from(u128_at(160)).unwrap_or(u64::MAX)),
        power_on_hours: Some(u64::try_from(u128_at(128)).unwrap_or(u64::MAX)),
        smart_passed: None,
        reallocated_sectors: None,
        pending_sectors: None,
        uncorrectable_sectors: None,
    }
}

/// Read the health log of controller `ctrl` (`/dev/nvme0`). `None` when the device is
/// not NVMe, not local, or refuses the command.
pub fn nvme_health(ctrl: &Path) -> Option<DiskHealth> {
    let mut log = [0u8; 512];
    crate::nvme::get_log_page(ctrl, 0x02, 0xffff_ffff, 0, &mut log).ok()?;
    Some(parse_smart_log(&log))
}

/// How long one `smartctl` may take; a drive that does not answer is left without health.
const SMART_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a drive's SMART answer stands: smartd's default is 30 minutes, and the
/// inventory is scanned far more often than a drive's health changes.
const SMART_EVERY: Duration = Duration::from_secs(600);

/// SATA/SAS SMART of `dev` (`/dev/sda`, whose serial is `serial`), asked at most every
/// ten minutes; a new drive in the same slot is asked at once.
pub fn smart_health_cached(dev: &Path, serial: &str) -> Option<DiskHealth> {
    type Answers = HashMap<(PathBuf, String), (Instant, Option<DiskHealth>)>;
    static ANSWERS: OnceLock<Mutex<Answers>> = OnceLock::new();
    let answers = ANSWERS.get_or_init(Mutex::default);
    let key = (dev.to_path_buf(), serial.to_string());
    if let Some((at, health)) = answers.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        if at.elapsed() < SMART_EVERY {
            return health.clone();
        }
    }
    let health = smart_health(dev);
    answers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, (Instant::now(), health.clone()));
    health
}

/// SATA/SAS SMART of `dev` (`/dev/sda`) through `smartctl`. A drive in standby is not
/// woken (`-n standby`); it, and one smartctl cannot open, report nothing.
pub fn smart_health(dev: &Path) -> Option<DiskHealth> {
    let mut cmd = Command::new("smartctl");
    cmd.args(["--json", "--nocheck=standby", "--health", "--attributes"])
        .arg(dev);
    let (status, out, err) = crate::run_timed(&mut cmd, SMART_TIMEOUT)
        .inspect_err(|e| tracing::debug!(disk = %dev.display(), error = %e, "no SMART"))
        .ok()?;
    // smartctl's exit status is a bit mask: bits 0 and 1 mean it could not ask the drive
    // at all; the others report what the drive said, which the JSON holds too.
    let code = status.code().unwrap_or(1);
    if code & 0b11 != 0 {
        tracing::debug!(disk = %dev.display(), code, error = %err.trim(), "no SMART");
        return None;
    }
    parse_smartctl(&out)
}

/// Read smartctl's JSON: the overall verdict, temperature, power-on time, and the
/// sector counts that predict failure (ATA attributes 5, 197, 198; SCSI's grown defects).
pub fn parse_smartctl(json: &str) -> Option<DiskHealth> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let passed = v["smart_status"]["passed"].as_bool();
    let attributes = v["ata_smart_attributes"]["table"].as_array();
    let raw = |id: u64| {
        attributes?
            .iter()
            .find(|a| a["id"].as_u64() == Some(id))
            .and_then(|a| a["raw"]["value"].as_u64())
    };
    let health = DiskHealth {
        source: HealthSource::Smart,
        temperature_c: v["temperature"]["current"]
            .as_i64()
            .and_then(|t| i32::try_from(t).ok()),
        power_on_hours: v["power_on_time"]["hours"].as_u64(),
        smart_passed: passed,
        critical_warning: None,
        available_spare_pct: None,
        spare_threshold_pct: None,
        percent_used: None,
        media_errors: None,
        reallocated_sectors: raw(5).or_else(|| v["scsi_grown_defect_list"].as_u64()),
        pending_sectors: raw(197),
        uncorrectable_sectors: raw(198),
    };
    (passed.is_some() || attributes.is_some()).then_some(health)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smart_log_decodes() {
        let mut log = [0u8; 512];
        log[0] = 0x04; // reliability degraded
        log[1..3].copy_from_slice(&323u16.to_le_bytes());
        log[3] = 100;
        log[4] = 10;
        log[5] = 93;
        log[128..136].copy_from_slice(&4321u64.to_le_bytes());
        log[160..168].copy_from_slice(&7u64.to_le_bytes());
        let h = parse_smart_log(&log);
        assert_eq!(h.critical_warning, Some(4));
        assert_eq!(h.temperature_c, Some(50));
        assert_eq!(
            (h.percent_used, h.media_errors, h.power_on_hours),
            (Some(93), Some(7), Some(4321))
        );
        assert!(h.failing());
    }

    #[test]
    fn smartctl_reports_decode_and_a_failing_drive_is_failing() {
        let good = r#"{"smart_status":{"passed":true},"temperature":{"current":38},
            "power_on_time":{"hours":1200},
            "ata_smart_attributes":{"table":[{"id":5,"raw":{"value":0}},{"id":197,"raw":{"value":0}}]}}"#;
        let h = parse_smartctl(good).unwrap();
        assert_eq!(
            (h.source, h.smart_passed, h.temperature_c),
            (HealthSource::Smart, Some(true), Some(38))
        );
        assert_eq!(
            (h.power_on_hours, h.reallocated_sectors, h.pending_sectors),
            (Some(1200), Some(0), Some(0))
        );
        assert_eq!((h.problem(), h.verdict()), (None, "ok"));
        let failing = r#"{"smart_status":{"passed":false},
            "ata_smart_attributes":{"table":[{"id":197,"raw":{"value":12}},{"id":198,"raw":{"value":3}}]}}"#;
        let h = parse_smartctl(failing).unwrap();
        assert!(h.failing());
        assert_eq!(
            h.problem().as_deref(),
            Some("a failing SMART self-assessment, 12 sectors pending reallocation, 3 uncorrectable sectors")
        );
        let scsi = r#"{"smart_status":{"passed":true},"scsi_grown_defect_list":4}"#;
        assert_eq!(parse_smartctl(scsi).unwrap().reallocated_sectors, Some(4));
        assert!(
            parse_smartctl(r#"{"smartctl":{"exit_status":2}}"#).is_none(),
            "nothing reported"
        );
        assert!(parse_smartctl("not json").is_none());
    }
}
