//! A file of a share as a catalog record: its size and time, and what its header says
//! (or why it could not be read); and a walk over a share's files for the scans that
//! catch changes made behind the box's back.

use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};
use std::sync::Arc;

use rushes_placement::layout::read_data;
use rushes_placement::DataPlaces;

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
    read_in(root, share, path, None)
}

/// [`read`] in a share whose files' data placement may have moved to other pools
/// (`places`): headers are read where the data is.
pub fn read_placed(root: &Path, share: &str, path: &str, places: &Arc<DataPlaces>) -> Option<Clip> {
    read_in(root, share, path, Some(places))
}

fn read_in(root: &Path, share: &str, path: &str, places: Option<&Arc<DataPlaces>>) -> Option<Clip> {
    let path = path.trim_start_matches('/');
    if crate::sequence::is_key(path) {
        if !inside(path) {
            return None;
        }
        return crate::sequence::extract_in(root, share, path, places);
    }
    extract_in(root, share, path, places)
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
    extract_in(root, share, rel, None)
}

fn extract_in(
    root: &Path,
    share: &str,
    rel: &str,
    places: Option<&Arc<DataPlaces>>,
) -> Option<Clip> {
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
    // Its header is read where placement keeps its bytes.
    let data =
        std::fs::File::open(&path).and_then(|f| read_data(places, f).map_err(std::io::Error::from));
    match data {
        Ok(data) => match Source::file(&data.file).and_then(|src| crate::probe(&src)) {
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
    each_file(root, limit, |files| {
        out.append(files);
        ControlFlow::Continue(())
    });
    out
}

/// [`walk`] a folder at a time: `each` gets the regular files of one folder (and may
/// take them), so a walk over millions of files holds one folder's worth; it stops the
/// walk with `Break`.
fn each_file(
    root: &Path,
    limit: usize,
    mut each: impl FnMut(&mut Vec<(String, u64, u64)>) -> ControlFlow<()>,
) {
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    let mut files = Vec::new();
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
                    files.push((
                        rel.to_string_lossy().into_owned(),
                        meta.len(),
                        u64::try_from(meta.mtime()).unwrap_or(0),
                    ));
                    seen += 1;
                    if seen >= limit {
                        let _ = each(&mut files);
                        return;
                    }
                }
            }
        }
        if each(&mut files).is_break() {
            return;
        }
        files.clear();
    }
}

/// What [`walk`] finds as the catalog keeps it: each record's path (frames of a sequence
/// together, under the sequence's path) with its bytes and newest time, which is what
/// [`read`] records, so a scan can tell a record that is current from one that is not.
/// Given to `each` a folder at a time (a sequence's frames share their folder), which
/// stops the walk with `Break`.
pub fn each_record(
    root: &Path,
    limit: usize,
    mut each: impl FnMut(String, u64, u64) -> ControlFlow<()>,
) {
    let mut sequences: std::collections::HashMap<String, (u64, u64)> = Default::default();
    each_file(root, limit, |files| {
        for (path, size, modified) in files.drain(..) {
            match crate::sequence::key(&path) {
                Some(key) => {
                    let s = sequences.entry(key).or_default();
                    s.0 += size;
                    s.1 = s.1.max(modified);
                }
                None => each(path, size, modified)?,
            }
        }
        for (key, (size, modified)) in sequences.drain() {
            each(key, size, modified)?;
        }
        ControlFlow::Continue(())
    });
}
