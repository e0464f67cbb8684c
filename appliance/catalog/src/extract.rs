//! A file of a share as a catalog record: its size and time, and what its header says
//! (or why it could not be read); and a walk over a share's files for the scans that
//! catch changes made behind the box's back.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use crate::record::Clip;
use crate::source::Source;

/// Where the catalog keeps the record of the file at `rel`: its own path, or for a frame
/// of an image sequence the sequence's (see [`crate::sequence::key`]).
pub fn record_path(rel: &str) -> String {
    let rel = rel.trim_start_matches('/');
    crate::sequence::key(rel).unwrap_or_else(|| rel.to_string())
}

/// The record at `path` (as [`record_path`] gives it) in the share whose folder is
/// `root`: a file's, or a sequence's from its frames; `None` when there is nothing there
/// to catalog any more.
pub fn read(root: &Path, share: &str, path: &str) -> Option<Clip> {
    let path = path.trim_start_matches('/');
    if crate::sequence::is_key(path) {
        if !inside(path) {
            return None;
        }
        return crate::sequence::extract(root, share, path);
    }
    extract(root, share, path)
}

/// Whether `rel` stays inside its share: paths come from the activity stream and our own
/// walks; still, nothing outside.
fn inside(rel: &str) -> bool {
    Path::new(rel)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
}

/// The record of the file `rel` (a path inside the share, `/`-separated) in the share
/// whose folder is `root`; `None` when it is not a regular file (gone, a folder, a link).
pub fn extract(root: &Path, share: &str, rel: &str) -> Option<Clip> {
    let rel = rel.trim_start_matches('/');
    if !inside(rel) {
        return None;
    }
    let path = root.join(rel);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut clip = Clip {
        share: share.into(),
        path: rel.into(),
        size: meta.len(),
        modified: u64::try_from(meta.mtime()).unwrap_or(0),
        ..Default::default()
    };
    match std::fs::File::open(&path) {
        Ok(file) => match Source::file(&file).and_then(|src| crate::probe(&src)) {
            Ok(media) => clip.media = media,
            Err(e) => clip.error = Some(e.to_string()),
        },
        Err(e) => clip.error = Some(format!("cannot open it: {e}")),
    }
    Some(clip)
}

/// Every regular file under `root`, as paths inside it, with size and time; folders
/// whose names start with a dot are the box's own and are skipped. At most `limit`
/// files and 64 levels deep.
pub fn walk(root: &Path, limit: usize) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            let path = entry.path();
            if meta.is_dir() {
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if depth < 64 && !hidden {
                    stack.push((path, depth + 1));
                }
            } else if meta.is_file() {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push((
                        rel.to_string_lossy().into_owned(),
                        meta.len(),
                        u64::try_from(meta.mtime()).unwrap_or(0),
                    ));
                    if out.len() >= limit {
                        return out;
                    }
                }
            }
        }
    }
    out
}

/// What [`walk`] finds as the catalog keeps it: each record's path (frames of a sequence
/// together, under the sequence's path) with its bytes and newest time, which is what
/// [`read`] records, so a scan can tell a record that is current from one that is not.
pub fn walk_records(root: &Path, limit: usize) -> Vec<(String, u64, u64)> {
    let mut sequences: std::collections::HashMap<String, (u64, u64)> = Default::default();
    let mut out = Vec::new();
    for (path, size, modified) in walk(root, limit) {
        match crate::sequence::key(&path) {
            Some(key) => {
                let s = sequences.entry(key).or_default();
                s.0 += size;
                s.1 = s.1.max(modified);
            }
            None => out.push((path, size, modified)),
        }
    }
    out.extend(sequences.into_iter().map(|(k, (size, m))| (k, size, m)));
    out
}
