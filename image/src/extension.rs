//! Optional image extensions: packages kept out of the image (ffmpeg, which the catalog's
//! thumbnails run, would add several times the image's size to every boot's memory)
//! and shipped as an ext4 file system labelled `RUSHES-X-NAME`, on the boot stick as a
//! partition of its own (`mkimage --with-extension NAME`) or on any disk. rushesd mounts
//! it read-only at `/run/rushes/extensions/NAME` and runs its programs with the library
//! folders its `rushes-extension.toml` lists (no maintainer script ran, so nothing is
//! installed into the image's own folders).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::apt::{self, Apt, Package};
use crate::manifest::{Extension, Manifest};
use crate::rootfs;

/// Where an extension's description is, at the top of its file system.
pub const DESCRIPTION: &str = "rushes-extension.toml";

/// An extension built: its file system image and what went in.
pub struct Built {
    pub name: String,
    pub label: String,
    pub image: PathBuf,
    /// Its packages, beyond the image's.
    pub packages: Vec<Package>,
    /// Its files' bytes.
    pub bytes: u64,
}

/// The file system label of extension `name` (ext4 labels hold 16 bytes).
pub fn label(name: &str) -> Result<String> {
    let label = format!("RUSHES-X-{}", name.to_ascii_uppercase());
    if label.len() > 16 || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("extension name {name:?}: use at most 7 letters and digits (its label is RUSHES-X-NAME)");
    }
    Ok(label)
}

/// Build extension `name` into `OUT/extensions/NAME.img`: the packages it names with
/// their dependencies, less every package the image already has (`image_packages`),
/// unpacked under `work` and trimmed as the image is.
/// The source of the code that makes an extension: a change to it makes every cached
/// extension stale. (Its text, not the program's bytes, which differ with the folder a
/// checkout was built in.)
const MAKERS: [&str; 6] = [
    include_str!("main.rs"),
    include_str!("extension.rs"),
    include_str!("rootfs.rs"),
    include_str!("apt.rs"),
    include_str!("disk.rs"),
    include_str!("manifest.rs"),
];

/// What an extension is built from, in words: the code that makes it, the extension's
/// and the image's manifests and every package version. An extension built before from
/// the same is taken from the cache: a minute of building under CI.
fn recipe(
    name: &str,
    ext: &Extension,
    manifest: &Manifest,
    image_packages: &[Package],
    packages: &[Package],
) -> String {
    use std::hash::Hasher;
    let mut own = std::hash::DefaultHasher::new();
    for text in MAKERS {
        own.write(text.as_bytes());
    }
    let versions = |list: &[Package]| {
        list.iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect::<Vec<_>>()
    };
    format!(
        "mkimage {:016x}\nextension {name} {ext:?}\nimage trim {:?}\nimage packages {:?}\npackages {:?}\n",
        own.finish(),
        manifest.trim,
        versions(image_packages),
        versions(packages)
    )
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    apt: &Apt,
    name: &str,
    ext: &Extension,
    image_packages: &[Package],
    manifest: &Manifest,
    work: &Path,
    out: &Path,
    cache: &Path,
) -> Result<Built> {
    let label = label(name)?;
    let in_image: HashSet<&str> = image_packages.iter().map(|p| p.name.as_str()).collect();
    let packages: Vec<Package> = apt
        .fetch(&ext.packages)?
        .into_iter()
        .filter(|p| !in_image.contains(p.name.as_str()))
        .collect();
    let dir = out.join("extensions");
    std::fs::create_dir_all(&dir)?;
    let image = dir.join(format!("{name}.img"));
    let recipe = recipe(name, ext, manifest, image_packages, &packages);
    let cached = cache.join("extensions").join(format!("{name}.img"));
    let cached_recipe = cache.join("extensions").join(format!("{name}.recipe"));
    if let Ok(said) = std::fs::read_to_string(&cached_recipe) {
        // The recipe, then the files' bytes on the last line.
        if let Some((was, bytes)) = said.rsplit_once("bytes ") {
            if was == recipe && cached.exists() {
                std::fs::copy(&cached, &image)
                    .with_context(|| format!("copying {}", cached.display()))?;
                return Ok(Built {
                    name: name.to_string(),
                    label,
                    image,
                    packages,
                    bytes: bytes.trim().parse().unwrap_or(0),
                });
            }
        }
    }
    let root = work.join(format!("ext-{name}"));
    rootfs::skeleton(&root)?;
    for pkg in &packages {
        apt::unpack(&pkg.deb, &root)?;
    }
    rootfs::trim(&root, &manifest.trim)?;
    rootfs::trim(&root, &ext.trim)?;
    let mut libraries = Vec::new();
    library_folders(&root, &root, &mut libraries);
    libraries.sort();
    // A library the image's trim took out (it had no use for it) but the extension's
    // programs load comes back from its package, into the extension.
    let image_root = work.join("rootfs");
    for _ in 0..8 {
        let missing = missing_libraries(&root, &libraries, &image_root)?;
        if missing.is_empty() {
            break;
        }
        restore(&missing, image_packages, &root, work)
            .with_context(|| format!("extension {name} needs {missing:?}"))?;
        // What came back may sit in a folder of its own (Samba's private libraries).
        libraries.clear();
        library_folders(&root, &root, &mut libraries);
        libraries.sort();
    }
    let missing = missing_libraries(&root, &libraries, &image_root)?;
    if !missing.is_empty() {
        bail!("extension {name}'s programs need {missing:?}, which neither it nor the image has");
    }
    let description = format!(
        "# What this Rushes extension is; rushesd reads it when it mounts it.\n\
         name = {name:?}\nabout = {about:?}\n\
         # Folders its programs load their libraries from, below where it is mounted.\n\
         library_path = {libraries:?}\npackages = {packages:?}\n",
        about = ext.about,
        packages = packages
            .iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect::<Vec<_>>(),
    );
    std::fs::write(root.join(DESCRIPTION), description)?;
    let bytes = rootfs::du(&root);
    // Read-only where it is used: no journal, no reserved blocks; room for its metadata.
    let mib = (bytes + bytes / 8) / (1 << 20) + 32;
    crate::disk::ext4(
        &image,
        &label,
        &root,
        mib,
        &["-O", "^has_journal", "-m", "0"],
    )?;
    // Kept for the next build from the same recipe; a cache that cannot be written
    // costs only that minute next time.
    let keep = || -> std::io::Result<()> {
        std::fs::create_dir_all(cache.join("extensions"))?;
        let _ = std::fs::remove_file(&cached_recipe);
        std::fs::copy(&image, &cached)?;
        std::fs::write(&cached_recipe, format!("{recipe}bytes {bytes}\n"))
    };
    if let Err(e) = keep() {
        eprintln!("      (extension {name} not cached: {e})");
    }
    Ok(Built {
        name: name.to_string(),
        label,
        image,
        packages,
        bytes,
    })
}

/// Folders under `dir` holding shared libraries, relative to `root`.
fn library_folders(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut here = false;
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_dir() {
            library_folders(root, &entry.path(), out);
        } else if name.ends_with(".so") || name.contains(".so.") {
            here = true;
        }
    }
    if here {
        if let Ok(rel) = dir.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

/// The folders the loader searches by default, for libraries the image provides.
const SYSTEM_LIBRARIES: [&str; 3] = ["usr/lib/x86_64-linux-gnu", "usr/lib", "usr/lib64"];

/// Sonames the extension's programs (`usr/bin`), and the libraries they load in turn,
/// need and find neither in the extension's `libraries` folders nor in the image.
fn missing_libraries(root: &Path, libraries: &[String], image: &Path) -> Result<Vec<String>> {
    let mut dirs: Vec<PathBuf> = libraries.iter().map(|l| root.join(l)).collect();
    dirs.extend(SYSTEM_LIBRARIES.iter().map(|l| root.join(l)));
    dirs.extend(SYSTEM_LIBRARIES.iter().map(|l| image.join(l)));
    let mut queue: Vec<PathBuf> = std::fs::read_dir(root.join("usr/bin"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_elf(p))
        .collect();
    let mut seen = HashSet::new();
    let mut missing = Vec::new();
    while let Some(file) = queue.pop() {
        for soname in needed(&file)? {
            if !seen.insert(soname.clone()) {
                continue;
            }
            match dirs.iter().map(|d| d.join(&soname)).find(|p| p.exists()) {
                Some(found) => queue.push(found),
                None => missing.push(soname),
            }
        }
    }
    missing.sort();
    Ok(missing)
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The sonames an ELF file names as NEEDED (binutils' readelf).
fn needed(path: &Path) -> Result<Vec<String>> {
    let out = Command::new("readelf")
        .args(["-d", "-W"])
        .arg(path)
        .output()
        .context("cannot run readelf (Debian package binutils)")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .collect())
}

/// Put each of `sonames` into the extension from the image package that has it. Each
/// package is listed once and unpacked at most once, whatever number of libraries it
/// gives back (Samba's client takes back some sixty of samba-libs').
fn restore(sonames: &[String], image_packages: &[Package], root: &Path, work: &Path) -> Result<()> {
    let mut wanted: HashSet<&str> = sonames.iter().map(String::as_str).collect();
    for pkg in image_packages {
        if wanted.is_empty() {
            break;
        }
        let out = Command::new("dpkg-deb")
            .arg("-c")
            .arg(&pkg.deb)
            .output()
            .context("cannot run dpkg-deb")?;
        let listed = String::from_utf8_lossy(&out.stdout);
        let here: Vec<(String, String)> = listed
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .filter_map(|p| {
                let soname = p.rsplit('/').next()?;
                wanted
                    .contains(soname)
                    .then(|| (soname.to_string(), p.trim_start_matches("./").to_string()))
            })
            .collect();
        if here.is_empty() {
            continue;
        }
        let scratch = work.join("ext-restore");
        rootfs::skeleton(&scratch)?;
        apt::unpack(&pkg.deb, &scratch)?;
        let scratch_root = std::fs::canonicalize(&scratch)?;
        for (soname, rel) in here {
            if !wanted.remove(soname.as_str()) {
                continue;
            }
            // The soname is usually a link to the versioned file: both come.
            let target = std::fs::canonicalize(scratch.join(&rel))?;
            let dest = root.join(&rel);
            let versioned_dest = root.join(target.strip_prefix(&scratch_root)?);
            for dir in [dest.parent(), versioned_dest.parent()]
                .into_iter()
                .flatten()
            {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::copy(&target, &versioned_dest)?;
            if versioned_dest != dest && !dest.exists() {
                std::os::unix::fs::symlink(
                    versioned_dest.file_name().context("a library's name")?,
                    &dest,
                )?;
            }
            eprintln!(
                "      {soname}: taken back from {} (the image trims it)",
                pkg.name
            );
        }
        std::fs::remove_dir_all(&scratch)?;
    }
    if let Some(soname) = wanted.into_iter().next() {
        bail!("no package of the image has {soname}");
    }
    Ok(())
}
