//! Assembling the root file system: unpack packages, keep only the kernel modules and
//! firmware an appliance needs, trim documentation, add our binaries and overlay.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::manifest::Manifest;

/// Create the merged-/usr skeleton Debian bookworm expects (no maintainer script runs
/// to make it).
pub fn skeleton(root: &Path) -> Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    for d in [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "etc",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "cfg",
        "mnt",
        "root",
        "var/tmp",
        "var/lib",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(target, root.join(link))?;
    }
    Ok(())
}

/// Move the kernel image out of /boot; returns (path, version).
pub fn take_kernel(root: &Path, dest: &Path) -> Result<String> {
    let boot = root.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the kernel package has no /boot/vmlinuz-*")?;
    let version = vmlinuz
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_string()
        })
        .unwrap_or_default();
    std::fs::copy(&vmlinuz, dest)?;
    std::fs::remove_dir_all(&boot)?;
    Ok(version)
}

fn depmod(root: &Path, version: &str) -> Result<()> {
    let status = Command::new("depmod")
        .arg("-b")
        .arg(root)
        .arg(version)
        .status()
        .context("cannot run depmod (Debian package kmod)")?;
    if !status.success() {
        bail!("depmod failed");
    }
    Ok(())
}

/// `modules.dep` read: each module's path (under the modules folder) and the paths of
/// every module it needs.
pub fn modules_dep(text: &str) -> BTreeMap<&str, Vec<&str>> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(module, needs)| (module, needs.split_whitespace().collect()))
        .collect()
}

/// Keep the modules `keep` names and everything they depend on; returns (kept, dropped).
pub fn trim_modules(root: &Path, version: &str, keep: &[String]) -> Result<(usize, usize)> {
    depmod(root, version)?;
    let dir = root.join("usr/lib/modules").join(version);
    let deps_text = std::fs::read_to_string(dir.join("modules.dep"))?;
    let deps = modules_dep(&deps_text);
    let mut wanted: BTreeSet<&str> = BTreeSet::new();
    let mut queue: Vec<&str> = deps
        .keys()
        .copied()
        .filter(|m| {
            keep.iter().any(|k| {
                m.strip_prefix("kernel/")
                    .is_some_and(|p| p.starts_with(k.as_str()))
            })
        })
        .collect();
    while let Some(m) = queue.pop() {
        if wanted.insert(m) {
            queue.extend(deps.get(m).into_iter().flatten().copied());
        }
    }
    let mut dropped = 0;
    for module in deps.keys() {
        if !wanted.contains(module) {
            std::fs::remove_file(dir.join(module))?;
            dropped += 1;
        }
    }
    depmod(root, version)?;
    Ok((wanted.len(), dropped))
}

/// Keep only firmware files whose path (under /lib/firmware) starts with a kept prefix.
pub fn trim_firmware(root: &Path, keep: &[String]) -> Result<u64> {
    let fw = root.join("usr/lib/firmware");
    let mut removed = 0;
    if !fw.exists() {
        return Ok(0);
    }
    let mut stack = vec![fw.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let rel = path.strip_prefix(&fw)?.to_string_lossy().into_owned();
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(path);
            } else if !keep.iter().any(|k| rel.starts_with(k.as_str())) {
                removed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(&path)?;
            }
        }
    }
    remove_empty_dirs(&fw);
    Ok(removed)
}

/// Remove folders left empty under `dir` (not `dir` itself).
fn remove_empty_dirs(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.filter_map(|e| e.ok()) {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&path);
            let _ = std::fs::remove_dir(&path); // fails, harmlessly, unless empty
        }
    }
}

/// Remove files and folders; a trailing `*` matches every name with that prefix.
pub fn trim(root: &Path, paths: &[String]) -> Result<()> {
    for p in paths {
        let targets: Vec<PathBuf> = match p.strip_suffix('*') {
            Some(prefix) => {
                let full = root.join(prefix);
                let dir = full.parent().unwrap_or(root).to_path_buf();
                let start = full
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                std::fs::read_dir(&dir)
                    .map(|rd| {
                        rd.filter_map(|e| e.ok())
                            .filter(|e| e.file_name().to_string_lossy().starts_with(&start))
                            .map(|e| e.path())
                            .collect()
                    })
                    .unwrap_or_default()
            }
            None => vec![root.join(p)],
        };
        for path in targets {
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let removed = if md.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.with_context(|| format!("remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// Copy `overlay` into `root`, keeping modes.
pub fn copy_tree(overlay: &Path, root: &Path) -> Result<()> {
    for entry in std::fs::read_dir(overlay)? {
        let entry = entry?;
        let to = root.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&to)?;
            copy_tree(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

/// Our binaries, /init, busybox applets and run-time links.
pub fn finish(root: &Path, bins: &Path, manifest: &Manifest) -> Result<()> {
    for bin in [
        "rushes-init",
        "rushesd",
        "rushesctl",
        "rushes-console",
        "rushes-card",
    ] {
        let from = bins.join(bin);
        let to = root.join("usr/sbin").join(bin);
        std::fs::copy(&from, &to).with_context(|| {
            format!(
                "cannot copy {} (build it first: make image)",
                from.display()
            )
        })?;
        // The release builds keep line tables and symbols for backtraces and profiles on
        // the build machine; the image carries neither (a panic still logs its message).
        // The symbols alone were 8 MiB of rushesd.
        let _ = Command::new("strip").arg("--strip-all").arg(&to).status();
    }
    std::os::unix::fs::symlink("usr/sbin/rushes-init", root.join("init"))?;
    link_applets(root, manifest)?;
    let resolv = root.join("etc/resolv.conf");
    if resolv.exists() {
        std::fs::remove_file(&resolv)?;
    }
    std::os::unix::fs::symlink("/run/resolv.conf", resolv)?;
    ca_bundle(root)?;
    Ok(())
}

/// Replace ICU's data library with one that holds no data (see `icu_data_stub.c` for
/// why that is safe here), compiled with the C compiler for the packaged ICU's major
/// version. Returns the bytes saved; nothing to do when the image has no ICU.
pub fn stub_icu_data(root: &Path, work: &Path) -> Result<u64> {
    let Some((real, major)) = icu_data_library(&root.join("usr/lib/x86_64-linux-gnu"))? else {
        return Ok(0);
    };
    let source = work.join("icu_data_stub.c");
    std::fs::write(&source, include_str!("icu_data_stub.c"))?;
    let stub = work.join(real.file_name().unwrap_or_default());
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-nostdlib", "-s"])
        .arg(format!("-DICU_DATA_ENTRY=icudt{major}_dat"))
        .arg(format!("-Wl,-soname,libicudata.so.{major}"))
        .arg("-o")
        .arg(&stub)
        .arg(&source)
        .status()
        .context(
            "cannot run cc to build ICU's empty data library (Debian package build-essential)",
        )?;
    if !status.success() {
        bail!("cc failed to build ICU's empty data library ({status})");
    }
    let saved = std::fs::metadata(&real)?
        .len()
        .saturating_sub(std::fs::metadata(&stub)?.len());
    std::fs::copy(&stub, &real).with_context(|| format!("replace {}", real.display()))?;
    Ok(saved)
}

/// ICU's data library in `lib_dir` (`libicudata.so.72.1`) and its major version
/// (`72`: soname `libicudata.so.72`, entry point `icudt72_dat`), if there is one.
fn icu_data_library(lib_dir: &Path) -> Result<Option<(PathBuf, String)>> {
    let Some(real) = std::fs::read_dir(lib_dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("libicudata.so.") && name.matches('.').count() == 3
        })
    else {
        return Ok(None);
    };
    let name = real.file_name().unwrap_or_default().to_string_lossy();
    let major = name
        .trim_start_matches("libicudata.so.")
        .split('.')
        .next()
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        .with_context(|| format!("cannot tell ICU's major version from {name}"))?
        .to_string();
    Ok(Some((real, major)))
}

/// /etc/ssl/certs/ca-certificates.crt from the ca-certificates package's roots, as its
/// maintainer script (update-ca-certificates) would make it: HTTPS clients (rustls,
/// through the system's roots) read that file.
fn ca_bundle(root: &Path) -> Result<()> {
    let roots = root.join("usr/share/ca-certificates");
    if !roots.is_dir() {
        return Ok(());
    }
    let mut certs = Vec::new();
    let mut dirs = vec![roots];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "crt") {
                certs.push(path);
            }
        }
    }
    certs.sort();
    let mut bundle = String::new();
    for cert in &certs {
        let text = std::fs::read_to_string(cert)
            .with_context(|| format!("cannot read {}", cert.display()))?;
        bundle.push_str(text.trim_end());
        bundle.push('\n');
    }
    let dest = root.join("etc/ssl/certs");
    std::fs::create_dir_all(&dest)?;
    std::fs::write(dest.join("ca-certificates.crt"), bundle)?;
    Ok(())
}

/// Busybox applets for the commands no package provides.
pub fn link_applets(root: &Path, manifest: &Manifest) -> Result<()> {
    for applet in &manifest.busybox_applets {
        let link = root.join("usr/bin").join(applet);
        if !link.exists() && !root.join("usr/sbin").join(applet).exists() {
            std::os::unix::fs::symlink("busybox", &link)?;
        }
    }
    Ok(())
}

/// Sizes of the biggest folders, for the build report.
pub fn space_report(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for rel in [
        "usr/lib/modules",
        "usr/lib/firmware",
        "usr/lib/x86_64-linux-gnu",
        "usr/lib/systemd",
        "usr/lib/udev",
        "usr/sbin",
        "usr/bin",
        "usr/share",
    ] {
        out.push((PathBuf::from(rel), du(&root.join(rel))));
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.1));
    out
}

/// Bytes of the files under `path`.
pub fn du(path: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if md.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    } else {
        md.len()
    }
}

/// Where the box finds the public keys it takes update bundles from.
pub const UPDATE_KEYS: &str = "usr/share/rushes/update-keys";

/// Put each of `keys` (public halves from `rushes-bundle keygen`) into the image.
pub fn trust_keys(root: &Path, keys: &[PathBuf]) -> Result<()> {
    let dir = root.join(UPDATE_KEYS);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    for (i, path) in keys.iter().enumerate() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the update key {}", path.display()))?;
        let key = rushes_update::PublicKey::parse(&text).with_context(|| {
            format!(
                "{} is not a public key from `rushes-bundle keygen`",
                path.display()
            )
        })?;
        std::fs::write(dir.join(format!("key-{i}.pub")), key.to_line())?;
        eprintln!("      trusting update key {}", key.fingerprint());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The empty data library `stub_icu_data` builds stands in for the host's own
    /// (Debian's ICU, which Samba pulls in) under what Samba asks of ICU: the "any-nfd"
    /// transliterator, driven from Python's ctypes with the stub first on the library
    /// path, must still decompose é.
    #[test]
    fn icu_with_the_empty_data_library_still_decomposes() {
        let (host_lib, major) =
            super::icu_data_library(std::path::Path::new("/usr/lib/x86_64-linux-gnu"))
                .unwrap()
                .expect(
                    "Debian's libicu on this machine (make deps installs Samba, which needs it)",
                );
        let real = host_lib.file_name().unwrap().to_string_lossy().into_owned();
        let dir = std::env::temp_dir().join(format!("icu-stub-test-{}", std::process::id()));
        let root = dir.join("root");
        let libs = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&libs).unwrap();
        std::fs::write(libs.join(&real), vec![0u8; 1 << 20]).unwrap();

        let saved = super::stub_icu_data(&root, &dir).unwrap();
        let stub = std::fs::read(libs.join(&real)).unwrap();
        assert!(stub.starts_with(b"\x7fELF"), "not an ELF object");
        assert!(saved > 0 && stub.len() < 64 << 10, "{} bytes", stub.len());
        // The soname the loader looks for, next to the stub.
        std::fs::copy(
            libs.join(&real),
            libs.join(format!("libicudata.so.{major}")),
        )
        .unwrap();

        let script = format!(
            r#"
import ctypes
i18n = ctypes.CDLL("libicui18n.so.{major}")
data = ctypes.CDLL("libicudata.so.{major}")
assert data._name.endswith("libicudata.so.{major}")
open_ = getattr(i18n, "utrans_openU_{major}")
open_.restype = ctypes.c_void_p
ident = "any-nfd".encode("utf-16-le")
err = ctypes.c_int(0)
t = open_(ctypes.create_string_buffer(ident + b"\0\0"), 7, 0, None, 0, ctypes.create_string_buffer(64), ctypes.byref(err))
assert err.value <= 0 and t, ("utrans_openU", err.value)
text = "é".encode("utf-16-le")
buf = ctypes.create_string_buffer(text + bytes(60))
length, limit = ctypes.c_int(1), ctypes.c_int(1)
getattr(i18n, "utrans_transUChars_{major}")(ctypes.c_void_p(t), buf, ctypes.byref(length), 32, 0, ctypes.byref(limit), ctypes.byref(err))
print(" ".join(hex(ord(c)) for c in buf.raw[: length.value * 2].decode("utf-16-le")))
"#
        );
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(&script)
            .env("LD_LIBRARY_PATH", &libs)
            // Which data library the loader took, to be sure it was the stub.
            .env("LD_DEBUG", "libs")
            .output()
            .expect("python3");
        let said = String::from_utf8_lossy(&out.stdout);
        let loaded = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{said}{loaded}");
        assert_eq!(said.trim(), "0x65 0x301", "é decomposed into e and U+0301");
        assert!(
            loaded.contains(&format!("{}/libicudata.so.{major}", libs.display())),
            "the stub was not the data library loaded:\n{loaded}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
