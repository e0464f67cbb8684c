//! Image sequences: the DPX or OpenEXR frames of one shot, one file a frame numbered in
//! its name (`A003C012.0086400.dpx`), catalogued as one clip. The clip's path names the
//! frames with the number's digits as `#` (`A003C012.#######.dpx`); its record is the
//! first frame's header with the frames present, the range and the gaps.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::record::{Clip, FrameRange, Sequence};
use crate::source::Source;

/// Frame files of image sequences, by extension (lower case).
const EXTENSIONS: [&str; 2] = ["dpx", "exr"];
/// Digits a frame number has at least (fewer is a name, `shot_v2.exr`) and at most.
const DIGITS: std::ops::RangeInclusive<usize> = 3..=9;
/// Entries of one folder looked at, at most.
const ENTRIES: usize = 10_000_000;

/// A frame's name taken apart: what comes before the number, the number, its digits,
/// and what comes after it (the extension with its dot).
struct Frame<'a> {
    prefix: &'a str,
    number: u64,
    digits: usize,
    suffix: &'a str,
}

fn frame(name: &str) -> Option<Frame<'_>> {
    let (stem, ext) = name.rsplit_once('.')?;
    if !EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
        return None;
    }
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if !DIGITS.contains(&digits) {
        return None;
    }
    let split = stem.len() - digits;
    Some(Frame {
        prefix: &stem[..split],
        number: stem[split..].parse().ok()?,
        digits,
        suffix: &name[stem.len()..],
    })
}

/// The path of the sequence the file at `path` is a frame of (`dir/A003C012.#######.dpx`
/// for `dir/A003C012.0086400.dpx`); `None` for a file that is not a frame.
pub fn key(path: &str) -> Option<String> {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (Some(d), n),
        None => (None, path),
    };
    let f = frame(name)?;
    let name = format!("{}{}{}", f.prefix, "#".repeat(f.digits), f.suffix);
    Some(match dir {
        Some(d) => format!("{d}/{name}"),
        None => name,
    })
}

/// Whether `path` names a sequence (as [`key`] makes them) rather than a file.
pub fn is_key(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    let hashes = stem.len() - stem.trim_end_matches('#').len();
    DIGITS.contains(&hashes) && EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext))
}

/// The sequence path for a label as search results show it
/// (`day1/A003C012.[0086400-0087839].dpx` is `day1/A003C012.#######.dpx`), so that what
/// people copy from a results table finds the clip.
pub fn key_of_label(path: &str) -> Option<String> {
    let open = path.rfind('[')?;
    let close = open + path[open..].find(']')?;
    let (from, to) = path[open + 1..close].split_once('-')?;
    if from.is_empty() || !from.bytes().all(|b| b.is_ascii_digit()) || to.parse::<u64>().is_err() {
        return None;
    }
    let key = format!(
        "{}{}{}",
        &path[..open],
        "#".repeat(from.len()),
        &path[close + 1..]
    );
    is_key(&key).then_some(key)
}

/// The frames present of the sequence `key` in the share whose folder is `root`, as
/// (number, name, size, modified), in order.
pub fn frames(root: &Path, key: &str) -> Vec<(u64, String, u64, u64)> {
    let (dir, pattern) = match key.rsplit_once('/') {
        Some((d, n)) => (root.join(d), n),
        None => (root.to_path_buf(), key),
    };
    let hashes_at = pattern.find('#').unwrap_or(0);
    let (prefix, rest) = pattern.split_at(hashes_at);
    let digits = rest.len() - rest.trim_start_matches('#').len();
    let suffix = &rest[digits..];
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for entry in entries.take(ENTRIES).flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(f) = frame(name) else { continue };
        if f.prefix != prefix || f.digits != digits || f.suffix != suffix {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            out.push((
                f.number,
                name.to_string(),
                meta.len(),
                u64::try_from(meta.mtime()).unwrap_or(0),
            ));
        }
    }
    out.sort_unstable_by_key(|f| f.0);
    out
}

/// The frames' numbers as the sequence they make: range, count and gaps.
pub fn describe(numbers: &[u64], padding: u8) -> Option<Sequence> {
    let (&first, &last) = (numbers.first()?, numbers.last()?);
    let mut gaps = Vec::new();
    let mut gap_count = 0u64;
    for pair in numbers.windows(2) {
        if pair[1] > pair[0] + 1 {
            gap_count += 1;
            if gaps.len() < Sequence::GAPS_LISTED {
                gaps.push(FrameRange {
                    from: pair[0] + 1,
                    to: pair[1] - 1,
                });
            }
        }
    }
    Some(Sequence {
        first,
        last,
        frames: numbers.len() as u64,
        padding,
        gaps,
        gap_count,
    })
}

/// The record of the sequence `key` in share `share` (folder `root`): the first frame's
/// header, the frames, their bytes together and the newest frame's time; `None` when no
/// frame of it is left.
pub fn extract(root: &Path, share: &str, key: &str) -> Option<Clip> {
    extract_in(root, share, key, None)
}

/// [`extract`], reading the first frame where placement keeps its data.
pub(crate) fn extract_in(
    root: &Path,
    share: &str,
    key: &str,
    places: Option<&std::sync::Arc<rushes_placement::DataPlaces>>,
) -> Option<Clip> {
    let frames = frames(root, key);
    let (_, first_name, _, _) = frames.first()?;
    let dir = key.rsplit_once('/').map(|(d, _)| d);
    let first_path = match dir {
        Some(d) => root.join(d).join(first_name),
        None => root.join(first_name),
    };
    let numbers: Vec<u64> = frames.iter().map(|f| f.0).collect();
    let padding = key.chars().filter(|&c| c == '#').count() as u8;
    let sequence = describe(&numbers, padding)?;
    let mut clip = Clip {
        share: share.into(),
        path: key.into(),
        size: frames.iter().map(|f| f.2).sum(),
        modified: frames.iter().map(|f| f.3).max().unwrap_or(0),
        ..Default::default()
    };
    let span = sequence.last - sequence.first + 1;
    let header = std::fs::File::open(&first_path)
        .and_then(|f| rushes_placement::layout::read_data(places, f).map_err(std::io::Error::from))
        .map_err(|e| format!("cannot open its first frame {first_name}: {e}"))
        .and_then(|data| {
            Source::file(&data.file)
                .and_then(|src| crate::probe(&src))
                .map_err(|e| format!("its first frame {first_name}: {e}"))
        });
    match header {
        Ok(Some(mut media)) => {
            if let Some(v) = &mut media.video {
                v.frames = Some(span);
                if let Some(r) = v.frame_rate {
                    media.duration_s = Some(span as f64 / r.value());
                }
            }
            media.sequence = Some(sequence);
            clip.media = Some(media);
        }
        Ok(None) => {
            clip.error = Some(format!(
                "its first frame {first_name} is not DPX or OpenEXR"
            ))
        }
        Err(e) => clip.error = Some(e),
    }
    Some(clip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_named_by_their_sequence() {
        assert_eq!(
            key("day1/A003C012.0086400.dpx").as_deref(),
            Some("day1/A003C012.#######.dpx")
        );
        assert_eq!(key("shot_1001.EXR").as_deref(), Some("shot_####.EXR"));
        assert_eq!(key("shot_v2.exr"), None);
        assert_eq!(key("A003C012.mov"), None);
        assert!(is_key("day1/A003C012.#######.dpx"));
        assert_eq!(
            key_of_label("day1/A003C012.[0086400-0087839].dpx").as_deref(),
            Some("day1/A003C012.#######.dpx")
        );
        assert_eq!(key_of_label("day1/notes [1-2].txt"), None);
        assert!(!is_key("day1/A003C012.0086400.dpx"));
    }

    #[test]
    fn gaps_are_the_runs_missing_between_first_and_last() {
        let s = describe(&[10, 11, 14, 15, 17], 4).unwrap();
        assert_eq!((s.first, s.last, s.frames, s.gap_count), (10, 17, 5, 2));
        assert_eq!(
            s.gaps,
            vec![
                FrameRange { from: 12, to: 13 },
                FrameRange { from: 16, to: 16 }
            ]
        );
        assert_eq!(s.label("A.####.dpx"), "A.[0010-0017].dpx");
        assert_eq!(s.describe(), "5 frames, 10-17, 2 gaps (12-13, 16)");
    }
}
