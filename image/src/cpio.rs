//! A newc-format cpio writer: the initramfs the kernel unpacks into its root file system.
//! Every file is owned by root; symlinks are stored as links.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Append the newc header and name of one entry.
fn header(
    out: &mut impl Write,
    ino: u32,
    mode: u32,
    size: u32,
    name: &str,
    written: &mut u64,
) -> Result<()> {
    let name_len = name.len() + 1;
    let h = format!(
        "070701{ino:08X}{mode:08X}{:08X}{:08X}{:08X}{:08X}{size:08X}{:08X}{:08X}{:08X}{:08X}{name_len:08X}{:08X}",
        0, 0, 1, 0, 0, 0, 0, 0, 0
    );
    out.write_all(h.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    *written += (h.len() + name_len) as u64;
    pad4(out, written)
}

fn pad4(out: &mut impl Write, written: &mut u64) -> Result<()> {
    let pad = ((4 - *written % 4) % 4) as usize;
    out.write_all(&[0u8; 3][..pad])?;
    *written += pad as u64;
    Ok(())
}

/// Write every file under `root` (sorted, so builds are reproducible) as a cpio archive.
pub fn write_tree(root: &Path, out: &mut impl Write) -> Result<u64> {
    let mut paths = Vec::new();
    collect(root, root, &mut paths)?;
    paths.sort();
    let mut written = 0u64;
    for (ino, rel) in paths.iter().enumerate() {
        let path = root.join(rel);
        let md =
            std::fs::symlink_metadata(&path).with_context(|| format!("stat {}", path.display()))?;
        let name = rel.to_string_lossy();
        let ft = md.file_type();
        let ino = ino as u32 + 1;
        if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            let t = target.as_os_str().as_encoded_bytes();
            header(out, ino, 0o120777, t.len() as u32, &name, &mut written)?;
            out.write_all(t)?;
            written += t.len() as u64;
        } else if ft.is_dir() {
            header(
                out,
                ino,
                0o040000 | (md.mode() & 0o7777),
                0,
                &name,
                &mut written,
            )?;
        } else if ft.is_file() {
            let data = std::fs::read(&path)?;
            header(
                out,
                ino,
                0o100000 | (md.permissions().mode() & 0o7777),
                data.len() as u32,
                &name,
                &mut written,
            )?;
            out.write_all(&data)?;
            written += data.len() as u64;
        } else {
            continue; // devices, sockets, fifos: devtmpfs provides /dev
        }
        pad4(out, &mut written)?;
    }
    header(out, 0, 0, 0, "TRAILER!!!", &mut written)?;
    Ok(written)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        out.push(path.strip_prefix(root)?.to_path_buf());
        if entry.file_type()?.is_dir() {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn newc_layout() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("init"), b"#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("init", dir.join("link")).unwrap();
        let mut out = Vec::new();
        let n = super::write_tree(&dir, &mut out).unwrap();
        assert_eq!(n as usize, out.len());
        assert_eq!(out.len() % 4, 0);
        assert!(out.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("init\0") && text.contains("link\0") && text.contains("TRAILER!!!\0")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cpio-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
