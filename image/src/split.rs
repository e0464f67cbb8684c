//! Splitting the root file system in two: `/usr`, packed as the read-only squashfs root
//! image a slot carries beside its kernel, and the small initramfs that mounts it,
//! holding everything outside `/usr` plus what init needs before the image is there
//! (init itself, the libraries it links and the drivers that reach the stick).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Where the initramfs lists the drivers init loads (as `rushes-init` reads it).
const BOOT_MODULES: &str = "etc/rushes/boot-modules";
/// init, as the initramfs starts it.
const INIT: &str = "usr/sbin/rushes-init";

/// Pack `root/usr` into `out` with mksquashfs: zstd at `level`, 1 MiB blocks, every
/// file owned by root (as the initramfs's cpio has them).
pub fn root_image(root: &Path, out: &Path, level: i32) -> Result<()> {
    if out.exists() {
        std::fs::remove_file(out)?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let status = Command::new("mksquashfs")
        .arg(root.join("usr"))
        .arg(out)
        .args([
            "-noappend",
            "-quiet",
            "-no-progress",
            "-all-root",
            "-no-xattrs",
        ])
        .args(["-comp", "zstd", "-Xcompression-level", &level.to_string()])
        // 1 MiB blocks: 8% smaller than the default 128 KiB, and a page the kernel
        // reads brings the rest of its block into the cache with it.
        .args(["-b", "1M", "-processors", &cores.to_string()])
        // The same bytes from the same tree: no build time inside.
        .args(["-mkfs-time", "0", "-all-time", "0"])
        .status()
        .context("cannot run mksquashfs (Debian package squashfs-tools; make deps installs it)")?;
    if !status.success() {
        bail!("mksquashfs failed on {}", root.join("usr").display());
    }
    Ok(())
}

/// What the initramfs holds, in a tree of its own at `dest`: every part of `root` but
/// `usr`, and of `usr` init, the libraries it loads and the modules `boot_modules` names
/// with their dependencies, listed in load order in [`BOOT_MODULES`]. Returns how many
/// modules it holds.
pub fn initramfs_tree(
    root: &Path,
    kversion: &str,
    boot_modules: &[String],
    dest: &Path,
) -> Result<usize> {
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::create_dir_all(dest.join("usr"))?;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_name() != "usr" {
            link_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
    }
    for lib in linked_libraries(root, INIT)? {
        take(root, dest, &lib)?;
    }
    take(root, dest, Path::new(INIT))?;

    let modules = module_order(root, kversion, boot_modules)?;
    let mut list = String::new();
    for m in &modules {
        take(root, dest, m)?;
        list.push_str(&format!("/{}\n", m.display()));
    }
    let list_path = dest.join(BOOT_MODULES);
    std::fs::create_dir_all(list_path.parent().context("list path")?)?;
    std::fs::write(&list_path, list)?;
    Ok(modules.len())
}

/// The modules (paths under `root`) that `names` need, each after its dependencies, as
/// `modules.dep` says; a name with no file is built into the kernel and needs no line,
/// and a name that is neither is an error (the manifest's `modules_keep` dropped it).
fn module_order(root: &Path, kversion: &str, names: &[String]) -> Result<Vec<PathBuf>> {
    let dir = Path::new("usr/lib/modules").join(kversion);
    let dep_text = std::fs::read_to_string(root.join(&dir).join("modules.dep"))?;
    let builtin =
        std::fs::read_to_string(root.join(&dir).join("modules.builtin")).unwrap_or_default();
    let name_of = |path: &str| -> String {
        let file = path.rsplit('/').next().unwrap_or(path);
        file.split(".ko").next().unwrap_or(file).replace('-', "_")
    };
    let deps = crate::rootfs::modules_dep(&dep_text);
    let by_name: BTreeMap<String, &str> = deps.keys().map(|p| (name_of(p), *p)).collect();
    let builtin: BTreeSet<String> = builtin.lines().map(name_of).collect();
    // Depth first, dependencies before the module that needs them.
    fn visit<'a>(
        path: &'a str,
        deps: &BTreeMap<&'a str, Vec<&'a str>>,
        seen: &mut BTreeSet<&'a str>,
        order: &mut Vec<&'a str>,
    ) {
        if seen.insert(path) {
            for need in deps.get(path).into_iter().flatten() {
                visit(need, deps, seen, order);
            }
            order.push(path);
        }
    }
    let (mut seen, mut order) = (BTreeSet::new(), Vec::new());
    for name in names {
        let name = name.replace('-', "_");
        match by_name.get(&name) {
            Some(path) => visit(path, &deps, &mut seen, &mut order),
            None if builtin.contains(&name) => {}
            None => bail!(
                "boot module {name} is neither among the kept modules nor built into kernel {kversion}: keep it in the manifest's modules_keep"
            ),
        }
    }
    Ok(order.into_iter().map(|p| dir.join(p)).collect())
}

/// The libraries (paths under `root`) that the program at `program` loads, with the
/// dynamic loader, found by reading each one's NEEDED entries with readelf.
fn linked_libraries(root: &Path, program: &str) -> Result<Vec<PathBuf>> {
    let lib_dirs = ["usr/lib/x86_64-linux-gnu", "usr/lib", "usr/lib64"];
    let mut found: Vec<PathBuf> = vec![PathBuf::from("usr/lib64/ld-linux-x86-64.so.2")];
    let mut queue = vec![PathBuf::from(program)];
    let mut seen = BTreeSet::new();
    while let Some(file) = queue.pop() {
        let out = Command::new("readelf")
            .args(["-d", "--wide"])
            .arg(root.join(&file))
            .output()
            .context("cannot run readelf (Debian package binutils)")?;
        if !out.status.success() {
            bail!("readelf cannot read {}", file.display());
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line
                .split_once("(NEEDED)")
                .and_then(|(_, r)| r.split_once('[')?.1.split_once(']'))
                .map(|(n, _)| n.to_string())
            else {
                continue;
            };
            if !seen.insert(name.clone()) {
                continue;
            }
            let lib = lib_dirs
                .iter()
                .map(|d| Path::new(d).join(&name))
                .find(|p| root.join(p).exists())
                .with_context(|| {
                    format!("{} needs {name}, which the image lacks", file.display())
                })?;
            found.push(lib.clone());
            queue.push(lib);
        }
    }
    Ok(found)
}

/// Put `root/rel` into `dest/rel`: a symbolic link as a link (and what it points to, when
/// that is inside the tree), a file as a hard link to the original.
fn take(root: &Path, dest: &Path, rel: &Path) -> Result<()> {
    let rel = &real_parent(root, rel)?;
    let from = root.join(rel);
    let to = dest.join(rel);
    if to.symlink_metadata().is_ok() {
        return Ok(());
    }
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let meta = from
        .symlink_metadata()
        .with_context(|| format!("{} is not in the root file system", rel.display()))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(&from)?;
        std::os::unix::fs::symlink(&target, &to)?;
        let resolved = if target.is_absolute() {
            target.strip_prefix("/")?.to_path_buf()
        } else {
            rel.parent().unwrap_or(Path::new("")).join(&target)
        };
        take(root, dest, &normalize(&resolved))?;
    } else {
        std::fs::hard_link(&from, &to)
            .with_context(|| format!("cannot link {} into the initramfs tree", rel.display()))?;
    }
    Ok(())
}

/// `rel` with every folder on the way to it that is a symbolic link (`lib` -> `usr/lib`)
/// replaced by where it points, inside `root`.
fn real_parent(root: &Path, rel: &Path) -> Result<PathBuf> {
    let Some(name) = rel.file_name() else {
        return Ok(rel.to_path_buf());
    };
    let mut out = PathBuf::new();
    for part in rel.parent().unwrap_or(Path::new("")).components() {
        out.push(part);
        for _ in 0..16 {
            let Ok(target) = std::fs::read_link(root.join(&out)) else {
                break;
            };
            out = if target.is_absolute() {
                target.strip_prefix("/")?.to_path_buf()
            } else {
                normalize(&out.parent().unwrap_or(Path::new("")).join(target))
            };
        }
    }
    Ok(out.join(name))
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Recreate the tree at `from` at `to`: folders made, links copied, files hard-linked.
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = from.symlink_metadata()?;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else if meta.is_dir() {
        std::fs::create_dir_all(to)?;
        std::fs::set_permissions(to, meta.permissions())?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            link_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else {
        std::fs::hard_link(from, to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_come_after_what_they_need_and_builtins_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("usr/lib/modules/6.12.0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("modules.dep"),
            "kernel/drivers/usb/storage/usb-storage.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/usb/core/usbcore.ko.xz kernel/drivers/usb/common/usb-common.ko.xz\n\
             kernel/drivers/usb/core/usbcore.ko.xz: kernel/drivers/usb/common/usb-common.ko.xz\n\
             kernel/drivers/usb/common/usb-common.ko.xz:\n\
             kernel/drivers/scsi/scsi_mod.ko.xz: kernel/drivers/scsi/scsi_common.ko.xz\n\
             kernel/drivers/scsi/scsi_common.ko.xz:\n\
             kernel/drivers/scsi/sd_mod.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/scsi/scsi_common.ko.xz\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("modules.builtin"),
            "kernel/drivers/virtio/virtio_pci.ko\n",
        )
        .unwrap();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let order = module_order(
            root.path(),
            "6.12.0",
            &names(&["usb_storage", "virtio-pci", "sd_mod"]),
        )
        .unwrap();
        let short: Vec<String> = order
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let pos = |n: &str| short.iter().position(|s| s == n).unwrap();
        assert_eq!(short.len(), 6, "{short:?}");
        assert!(pos("scsi_common.ko.xz") < pos("scsi_mod.ko.xz"));
        assert!(pos("scsi_mod.ko.xz") < pos("usb-storage.ko.xz"));
        assert!(pos("usb-common.ko.xz") < pos("usbcore.ko.xz"));
        assert!(pos("usbcore.ko.xz") < pos("usb-storage.ko.xz"));
        assert!(pos("scsi_mod.ko.xz") < pos("sd_mod.ko.xz"));
        assert!(order[0].starts_with("usr/lib/modules/6.12.0/kernel"));
        let err = module_order(root.path(), "6.12.0", &names(&["squashfs"])).unwrap_err();
        assert!(err.to_string().contains("modules_keep"), "{err}");
    }

    #[test]
    fn a_linked_file_brings_what_it_points_to() {
        let root = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib64")).unwrap();
        std::fs::write(
            root.path()
                .join("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            b"ld",
        )
        .unwrap();
        std::os::unix::fs::symlink(
            "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            root.path().join("usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        take(
            root.path(),
            dest.path(),
            Path::new("usr/lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        // Through a linked folder, as Debian's absolute link to the loader goes.
        std::os::unix::fs::symlink("usr/lib", root.path().join("lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", dest.path().join("lib")).unwrap();
        std::fs::write(root.path().join("usr/lib/x86_64-linux-gnu/libc.so.6"), b"c").unwrap();
        std::os::unix::fs::symlink(
            "/lib/x86_64-linux-gnu/libc.so.6",
            root.path().join("usr/lib64/libc.so.6"),
        )
        .unwrap();
        take(root.path(), dest.path(), Path::new("usr/lib64/libc.so.6")).unwrap();
        assert_eq!(
            std::fs::read(dest.path().join("usr/lib/x86_64-linux-gnu/libc.so.6")).unwrap(),
            b"c"
        );
        assert_eq!(
            std::fs::read(dest.path().join("usr/lib64/ld-linux-x86-64.so.2")).unwrap(),
            b"ld"
        );
        assert!(dest
            .path()
            .join("usr/lib64/ld-linux-x86-64.so.2")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
