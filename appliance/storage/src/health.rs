//! NVMe health: the SMART / Health Information log page (log 0x02), read with an admin
//! passthrough command on the controller's character device.

use std::os::fd::AsFd;
use std::path::Path;

pub use rushes_api::DiskHealth;

/// `struct nvme_admin_cmd` of `<linux/nvme_ioctl.h>` (72 bytes).
#[repr(C)]
#[derive(Default)]
struct AdminCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

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
    let file = std::fs::File::open(ctrl).ok()?;
    let mut log = [0u8; 512];
    let mut cmd = AdminCmd {
        opcode: 0x02, // Get Log Page
        nsid: 0xffff_ffff,
        addr: log.as_mut_ptr() as u64,
        data_len: log.len() as u32,
        // Number of dwords minus one in bits 31:16, log identifier 02h in bits 7:0.
        cdw10: ((log.len() as u32 / 4 - 1) << 16) | 0x02,
        timeout_ms: 5000,
        ..Default::default()
    };
    // NVME_IOCTL_ADMIN_CMD = _IOWR('N', 0x41, struct nvme_admin_cmd).
    const NVME_IOCTL_ADMIN_CMD: rustix::ioctl::Opcode =
        rustix::ioctl::opcode::read_write::<AdminCmd>(b'N', 0x41);
    // SAFETY: `cmd` is a correctly laid out nvme_admin_cmd whose `addr`/`data_len`
    // describe `log`, a live 512-byte buffer the kernel writes at most `data_len` bytes
    // of; both outlive the call.
    let result = unsafe {
        rustix::ioctl::ioctl(
            file.as_fd(),
            rustix::ioctl::Updater::<NVME_IOCTL_ADMIN_CMD, AdminCmd>::new(&mut cmd),
        )
    };
    result.ok()?;
    Some(parse_smart_log(&log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_command_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<AdminCmd>(), 72);
    }

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
