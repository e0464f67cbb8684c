//! NVMe health: the SMART / Health Information log page (log 0x02), read with an admin
//! passthrough command on the controller's character device.

use std::path::Path;

pub use rushes_api::DiskHealth;

/// Decode the 512-byte SMART / Health Information log (NVMe base spec, Get Log Page 02h).
pub fn parse_smart_log(log: &[u8; 512]) -> DiskHealth {
    let u128_at = |off: usize| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&log[off..off + 16]);
        u128::from_le_bytes(b)
    };
    let kelvin = u16::from_le_bytes([log[1], log[2]]);
    DiskHealth {
        critical_warning: log[0],
        temperature_c: (kelvin > 0).then(|| i32::from(kelvin) - 273),
        available_spare_pct: log[3],
        spare_threshold_pct: log[4],
        percent_used: log[5],
        media_errors: u64::try_from(u128_at(160)).unwrap_or(u64::MAX),
        power_on_hours: u64::try_from(u128_at(128)).unwrap_or(u64::MAX),
    }
}

/// Read the health log of controller `ctrl` (`/dev/nvme0`). `None` when the device is
/// not NVMe, not local, or refuses the command.
pub fn nvme_health(ctrl: &Path) -> Option<DiskHealth> {
    let mut log = [0u8; 512];
    crate::nvme::get_log_page(ctrl, 0x02, 0xffff_ffff, 0, &mut log).ok()?;
    Some(parse_smart_log(&log))
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
        assert_eq!(h.critical_warning, 4);
        assert_eq!(h.temperature_c, Some(50));
        assert_eq!(
            (h.percent_used, h.media_errors, h.power_on_hours),
            (93, 7, 4321)
        );
    }
}
