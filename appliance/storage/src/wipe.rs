//! Erasing what is on a disk before a pool takes it.

use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::Path;

use crate::StorageError;

/// Zero the first and last 4 MiB of a disk (partition tables, md, XFS, LVM, LUKS and GPT
/// backup headers all live there), have libblkid erase any signature it still finds
/// elsewhere, and have the kernel forget the disk's partitions.
pub fn wipe(disk: &Path) -> Result<(), StorageError> {
    const SPAN: u64 = 4 << 20;
    let err = |e: std::io::Error| StorageError::io(format!("cannot wipe {}", disk.display()), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(err)?;
    let size = f.seek(SeekFrom::End(0)).map_err(err)?;
    let zeros = vec![0u8; SPAN as usize];
    for at in [0, size.saturating_sub(SPAN)] {
        f.seek(SeekFrom::Start(at)).map_err(err)?;
        let n = SPAN.min(size) as usize;
        f.write_all(&zeros[..n]).map_err(err)?;
    }
    f.sync_all().map_err(err)?;
    crate::run(std::process::Command::new("wipefs").arg("--all").arg(disk))?;
    reread_partitions(&f).map_err(err)
}

/// `BLKRRPART`: the kernel rereads the partition table (now gone).
fn reread_partitions(f: &std::fs::File) -> std::io::Result<()> {
    // BLKRRPART = _IO(0x12, 95): no argument.
    const BLKRRPART: rustix::ioctl::Opcode = rustix::ioctl::opcode::none(0x12, 95);
    // SAFETY: BLKRRPART takes no argument and writes no memory; `NoArg` passes none.
    let result =
        unsafe { rustix::ioctl::ioctl(f.as_fd(), rustix::ioctl::NoArg::<BLKRRPART>::new()) };
    match result {
        Ok(()) => Ok(()),
        // Not a partitionable device (a file in tests, a partition): nothing to reread.
        Err(rustix::io::Errno::NOTTY) | Err(rustix::io::Errno::INVAL) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wipe_clears_both_ends_and_keeps_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk");
        std::fs::write(&disk, vec![0xeeu8; 16 << 20]).unwrap();
        wipe(&disk).unwrap();
        let data = std::fs::read(&disk).unwrap();
        assert_eq!(data.len(), 16 << 20);
        assert!(data[..4 << 20].iter().all(|&b| b == 0));
        assert!(data[12 << 20..].iter().all(|&b| b == 0));
        assert!(data[4 << 20..12 << 20].iter().all(|&b| b == 0xee));
    }
}
