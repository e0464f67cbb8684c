//! Optional image extensions (`image/src/extension.rs` builds them): file systems
//! labelled `RUSHES-X-NAME`, on the boot stick as partitions of their own or on any disk,
//! mounted read-only at `/run/rushes/extensions/NAME` when first wanted. Their programs
//! run with the library folders the extension's `rushes-extension.toml` lists.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;

/// Where extensions are mounted.
pub const MOUNTED: &str = "/run/rushes/extensions";
/// Where udev names file systems by label.
const LABELS: &str = "/dev/disk/by-label";
/// An extension's description, at the top of its file system.
const DESCRIPTION: &str = "rushes-extension.toml";

/// A program an extension carries, and how it finds its libraries.
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    /// `LD_LIBRARY_PATH` for it.
    pub library_path: String,
}

#[derive(Deserialize)]
struct Description {
    #[serde(default)]
    library_path: Vec<String>,
}

/// One mount at a time.
static MOUNTING: Mutex<()> = Mutex::new(());

/// Program `rel` (`usr/bin/ffmpeg`) of extension `name`, mounting the extension first
/// when the machine carries it; `None` when it does not (or it is unusable, logged).
pub fn program(name: &str, rel: &str) -> Option<Program> {
    program_in(Path::new(MOUNTED), Path::new(LABELS), name, rel)
}

fn program_in(mounted: &Path, labels: &Path, name: &str, rel: &str) -> Option<Program> {
    let dir = mounted.join(name);
    let _one = MOUNTING.lock().unwrap_or_else(|p| p.into_inner());
    if !dir.join(DESCRIPTION).exists() {
        let device = labels.join(format!("RUSHES-X-{}", name.to_ascii_uppercase()));
        if !device.exists() {
            return None;
        }
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(extension = name, error = %e, "cannot make the extension's mount point");
            return None;
        }
        use rustix::mount::MountFlags;
        let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
        match rustix::mount::mount(&device, &dir, "ext4", flags, c"") {
            Ok(()) => {
                tracing::info!(extension = name, device = %device.display(), at = %dir.display(), "extension mounted")
            }
            Err(e) => {
                tracing::warn!(extension = name, device = %device.display(), error = %e, "cannot mount the extension; its programs are not used");
                return None;
            }
        }
    }
    let description = std::fs::read_to_string(dir.join(DESCRIPTION))
        .map_err(|e| e.to_string())
        .and_then(|t| toml::from_str::<Description>(&t).map_err(|e| e.to_string()));
    let description = match description {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(extension = name, error = %e, "the extension's {DESCRIPTION} is not readable; its programs are not used");
            return None;
        }
    };
    let path = dir.join(rel);
    if !path.exists() {
        tracing::warn!(
            extension = name,
            program = rel,
            "the extension has no such program"
        );
        return None;
    }
    let library_path = description
        .library_path
        .iter()
        .filter(|l| !l.starts_with('/') && !l.split('/').any(|c| c == ".."))
        .map(|l| dir.join(l).display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    Some(Program { path, library_path })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An extension already mounted (here, a folder standing for it) gives its program
    /// with its own library folders, and never one outside it.
    #[test]
    fn a_mounted_extension_gives_its_program_and_library_folders() {
        let dir = tempfile::tempdir().unwrap();
        let ext = dir.path().join("ffmpeg");
        std::fs::create_dir_all(ext.join("usr/bin")).unwrap();
        std::fs::write(ext.join("usr/bin/ffmpeg"), "").unwrap();
        std::fs::write(
            ext.join(DESCRIPTION),
            "name = \"ffmpeg\"\nlibrary_path = [\"usr/lib/x86_64-linux-gnu\", \"usr/lib/x86_64-linux-gnu/blas\", \"/etc\", \"../x\"]\n",
        )
        .unwrap();
        let p = program_in(
            dir.path(),
            &dir.path().join("labels"),
            "ffmpeg",
            "usr/bin/ffmpeg",
        )
        .unwrap();
        assert_eq!(p.path, ext.join("usr/bin/ffmpeg"));
        assert_eq!(
            p.library_path,
            format!(
                "{0}/usr/lib/x86_64-linux-gnu:{0}/usr/lib/x86_64-linux-gnu/blas",
                ext.display()
            )
        );
        // Not carried: no device with its label, nothing mounted.
        assert!(program_in(dir.path(), &dir.path().join("labels"), "other", "usr/bin/x").is_none());
    }
}
