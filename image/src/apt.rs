//! Package resolution and download with apt, using a private sources list and state
//! under the cache folder, so the host's apt setup is neither needed nor changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::manifest::Manifest;

/// apt configured to use only files under `root`.
pub struct Apt {
    root: PathBuf,
}

/// A resolved package: name, version and the downloaded file.
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub deb: PathBuf,
}

impl Apt {
    pub fn new(cache: &Path, manifest: &Manifest) -> Result<Self> {
        let root = cache.join("apt");
        for d in [
            "etc/apt/preferences.d",
            "etc/apt/trusted.gpg.d",
            "lists/partial",
            "archives/partial",
        ] {
            std::fs::create_dir_all(root.join(d))?;
        }
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        if !Path::new(keyring).exists() {
            bail!("{keyring} is missing: install the debian-archive-keyring package");
        }
        let components = manifest.components.join(" ");
        let s = &manifest.suite;
        let sources = format!(
            "deb [signed-by={keyring}] {m} {s} {components}\n\
             deb [signed-by={keyring}] {m} {s}-updates {components}\n\
             deb [signed-by={keyring}] {sec} {s}-security {components}\n",
            m = manifest.mirror,
            sec = manifest.security_mirror,
        );
        std::fs::write(root.join("etc/apt/sources.list"), sources)?;
        // An empty dpkg status: nothing counts as installed, so apt resolves the whole closure.
        std::fs::write(root.join("status"), "")?;
        Ok(Self { root })
    }

    fn command(&self) -> Command {
        let mut c = Command::new("apt-get");
        let r = self.root.display();
        for opt in [
            format!("Dir::Etc={r}/etc/apt"),
            format!("Dir::Etc::SourceList={r}/etc/apt/sources.list"),
            "Dir::Etc::SourceParts=/nonexistent".to_string(),
            format!("Dir::State::Lists={r}/lists"),
            format!("Dir::State::status={r}/status"),
            format!("Dir::Cache={r}"),
            format!("Dir::Cache::archives={r}/archives"),
            "APT::Architecture=amd64".to_string(),
            "APT::Install-Recommends=false".to_string(),
            "Debug::NoLocking=true".to_string(),
            "Acquire::Retries=3".to_string(),
        ] {
            c.arg("-o").arg(opt);
        }
        c
    }

    /// Refresh the package lists (at most once an hour).
    pub fn update(&self) -> Result<()> {
        let stamp = self.root.join("lists/.updated");
        let fresh = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().map(|e| e.as_secs() < 3600).unwrap_or(false))
            .unwrap_or(false);
        if fresh {
            return Ok(());
        }
        let status = self
            .command()
            .args(["-q", "update"])
            .status()
            .context("cannot run apt-get")?;
        if !status.success() {
            bail!("apt-get update failed: is the Debian mirror reachable?");
        }
        std::fs::write(stamp, "")?;
        Ok(())
    }

    /// The newest package whose name matches a shell-style `pattern` (`*` only).
    pub fn newest_matching(&self, pattern: &str) -> Result<String> {
        let out = self
            .command()
            .args(["-q", "-s", "install", pattern])
            .output()?;
        // apt expands the glob and, among kernels, the simulation shows the ones it would
        // install; pick the highest version-sorted name.
        let text = String::from_utf8_lossy(&out.stdout);
        let (prefix, suffix) = pattern.split_once('*').unwrap_or((pattern, ""));
        let mut names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("Inst "))
            .filter_map(|l| l.split_whitespace().next())
            // `*` stands for a version: no flavour like `-rt` or `-cloud` inside it.
            .filter(|n| {
                n.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(suffix))
                    .is_some_and(|middle| !middle.contains('-'))
            })
            .collect();
        names.sort_by(|a, b| version_cmp(a, b));
        names.last().map(|n| n.to_string()).with_context(|| {
            format!(
                "no package matches {pattern}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// Resolve `packages` with their dependencies and download them all.
    pub fn fetch(&self, packages: &[String]) -> Result<Vec<Package>> {
        let out = self
            .command()
            .args(["-q", "-s", "install"])
            .args(packages)
            .output()?;
        if !out.status.success() {
            bail!(
                "cannot resolve {packages:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut resolved = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "Inst libc6 (2.36-9+deb12u9 Debian:12.9/stable [amd64])"
            if let Some(rest) = line.strip_prefix("Inst ") {
                let mut parts = rest.split_whitespace();
                let name = parts.next().unwrap_or_default().to_string();
                let version = parts
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches('(')
                    .to_string();
                resolved.insert(name, version);
            }
        }
        let status = self
            .command()
            .args(["-q", "-y", "--download-only", "install"])
            .args(packages)
            .status()?;
        if !status.success() {
            bail!("downloading {packages:?} failed");
        }
        let archives = self.root.join("archives");
        let mut found = Vec::new();
        for (name, version) in resolved {
            let file_version = version.replace(':', "%3a");
            let deb = std::fs::read_dir(&archives)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    let f = p
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    f.starts_with(&format!("{name}_{file_version}_"))
                })
                .with_context(|| format!("{name} {version} was not downloaded"))?;
            found.push(Package { name, version, deb });
        }
        Ok(found)
    }
}

/// Order package names so that embedded version numbers compare numerically.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let key = |s: &str| -> Vec<(u64, String)> {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .map(|p| (p.parse::<u64>().unwrap_or(0), p.to_string()))
            .collect()
    };
    key(a).cmp(&key(b))
}

/// Unpack a package's files into `dest` (no maintainer scripts run), keeping the
/// merged-/usr symlinks already in `dest`.
pub fn unpack(deb: &Path, dest: &Path) -> Result<()> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run dpkg-deb")?;
    let tar_in = dpkg.stdout.take().context("dpkg-deb stdout")?;
    let status = Command::new("tar")
        .args(["-x", "--keep-directory-symlink", "--no-same-owner", "-C"])
        .arg(dest)
        .stdin(tar_in)
        .status()?;
    let dpkg_status = dpkg.wait()?;
    if !status.success() || !dpkg_status.success() {
        bail!("cannot unpack {}", deb.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::version_cmp;

    #[test]
    fn kernel_versions_sort_numerically() {
        let mut v = [
            "linux-image-6.12.9+deb12-amd64-unsigned",
            "linux-image-6.12.107+deb12-amd64-unsigned",
            "linux-image-6.12.38+deb12-amd64-unsigned",
        ];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            v.last().unwrap(),
            &"linux-image-6.12.107+deb12-amd64-unsigned"
        );
    }
}
