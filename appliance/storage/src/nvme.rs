//! NVMe controllers as the kernel shows them: admin passthrough commands on a
//! controller's character device, and which controller a namespace's block device
//! belongs to (native multipath names namespaces after the subsystem, not a controller).

use std::os::fd::AsFd;
use std::path::Path;

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

/// NVME_IOCTL_ADMIN_CMD = _IOWR('N', 0x41, struct nvme_admin_cmd). Unlike rustix's
/// `Updater`, it keeps the ioctl's return value: the NVMe status when the controller
/// refuses the command.
struct AdminIoctl<'a>(&'a mut AdminCmd);

// SAFETY: the opcode is the kernel's for this struct, the pointer is to a live
// `AdminCmd`, and the output is the ioctl's plain return value.
unsafe impl rustix::ioctl::Ioctl for AdminIoctl<'_> {
    type Output = i32;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> rustix::ioctl::Opcode {
        rustix::ioctl::opcode::read_write::<AdminCmd>(b'N', 0x41)
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        (self.0 as *mut AdminCmd).cast()
    }

    unsafe fn output_from_ptr(
        out: rustix::ioctl::IoctlOutput,
        _: *mut core::ffi::c_void,
    ) -> rustix::io::Result<i32> {
        Ok(out)
    }
}

/// Get Log Page (admin opcode 02h) of log `lid` for namespace `nsid`, `buf.len()` bytes
/// (a multiple of 4) from byte `offset` of the log, into `buf`.
pub fn get_log_page(
    ctrl: &Path,
    lid: u8,
    nsid: u32,
    offset: u64,
    buf: &mut [u8],
) -> std::io::Result<()> {
    let file = std::fs::File::open(ctrl)?;
    let dwords = (buf.len() / 4) as u32;
    if dwords == 0 || !buf.len().is_multiple_of(4) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a log page read is a whole number of dwords",
        ));
    }
    let numd = dwords - 1;
    let mut cmd = AdminCmd {
        opcode: 0x02,
        nsid,
        addr: buf.as_mut_ptr() as u64,
        data_len: buf.len() as u32,
        // NUMDL in bits 31:16 and the log identifier in bits 7:0; NUMDU in CDW11;
        // the offset in CDW12 (low) and CDW13 (high).
        cdw10: ((numd & 0xffff) << 16) | u32::from(lid),
        cdw11: numd >> 16,
        cdw12: offset as u32,
        cdw13: (offset >> 32) as u32,
        timeout_ms: 10_000,
        ..Default::default()
    };
    // SAFETY: `cmd` is a correctly laid out nvme_admin_cmd whose `addr`/`data_len`
    // describe `buf`, a live buffer the kernel writes at most `data_len` bytes of; both
    // outlive the call.
    let status = unsafe { rustix::ioctl::ioctl(file.as_fd(), AdminIoctl(&mut cmd)) }?;
    // A positive return is the NVMe status of a command the controller refused.
    if status != 0 {
        return Err(std::io::Error::other(format!(
            "the controller refused Get Log Page {lid:#x} with status {status:#x}"
        )));
    }
    Ok(())
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether `name` is a hidden per-path device of a multipath namespace (`nvme4c5n1`):
/// the kernel lists it in `/sys/block`, but I/O goes through the head (`nvme4n1`).
pub fn is_path_device(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("nvme") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match rest.split_once('c') {
        Some((subsys, tail)) => match tail.split_once('n') {
            Some((ctrl, ns)) => digits(subsys) && digits(ctrl) && digits(ns),
            None => false,
        },
        None => false,
    }
}

/// The controllers (`nvme4`, …) behind namespace `name` (`nvme4n1`). A multipath head
/// lists its paths in `multipath/` (`nvme4c5n1` is controller `nvme5`); a plain
/// namespace belongs to the controller it is named after.
pub fn controllers_of(sys_block: &Path, name: &str) -> Vec<String> {
    let mut ctrls: Vec<String> = std::fs::read_dir(sys_block.join(name).join("multipath"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let path = e.file_name().to_string_lossy().into_owned();
                    let (_, tail) = path.strip_prefix("nvme")?.split_once('c')?;
                    let (ctrl, _) = tail.split_once('n')?;
                    Some(format!("nvme{ctrl}"))
                })
                .collect()
        })
        .unwrap_or_default();
    ctrls.sort();
    if ctrls.is_empty() {
        if let Some(rest) = name.strip_prefix("nvme") {
            let ctrl: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if !ctrl.is_empty() {
                ctrls.push(format!("nvme{ctrl}"));
            }
        }
    }
    ctrls
}

/// The transport of controller `ctrl` (`pcie`, `tcp`, `rdma`, `loop`).
pub fn transport(sys: &Path, ctrl: &str) -> Option<String> {
    read(&sys.join("class/nvme").join(ctrl).join("transport"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::write;

    #[test]
    fn the_admin_command_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<AdminCmd>(), 72);
    }

    #[test]
    fn path_devices_are_told_from_heads() {
        assert!(is_path_device("nvme4c5n1"));
        assert!(!is_path_device("nvme4n1"));
        assert!(!is_path_device("nvme0n1p1"));
        assert!(!is_path_device("sda"));
    }

    #[test]
    fn a_multipath_head_names_its_controllers() {
        let dir = tempfile::tempdir().unwrap();
        let block = dir.path();
        write(&block.join("nvme4n1/multipath/nvme4c4n1/x"), "");
        write(&block.join("nvme4n1/multipath/nvme4c6n1/x"), "");
        assert_eq!(controllers_of(block, "nvme4n1"), ["nvme4", "nvme6"]);
        assert_eq!(controllers_of(block, "nvme0n1"), ["nvme0"]);
        assert_eq!(controllers_of(block, "sda"), Vec::<String>::new());
    }
}
