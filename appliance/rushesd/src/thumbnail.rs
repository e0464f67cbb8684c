//! Thumbnails of catalogued clips: a poster frame, and a strip of five frames across the
//! clip, made by Debian's ffmpeg in a process of its own that can do no harm: never
//! root (it runs as the file's owner, or `nobody` for root's files, so it reads nothing
//! that owner could not), at the lowest CPU priority, under `prlimit` (1 GiB of address
//! space, 20 s of CPU, no file written, 64 open files) and killed after 5 minutes (at
//! the lowest priority on a busy box it gets little time). A hostile
//! file can crash or stall ffmpeg; rushesd only sees it fail. The pictures are JPEG,
//! read from ffmpeg's standard output (4 MiB at most) and kept beside the share's index.
//! One ffmpeg makes a picture however many ask for it ([`Maker`]): somebody who waits
//! gives up after a while and asks again, the ffmpeg goes on, and the picture is kept.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rushes_catalog::Clip;

/// The most ffmpeg may take, in wall-clock time: at the lowest CPU priority on a busy
/// box it gets little time, and its 20 s of CPU bound what it costs.
const WALL: Duration = Duration::from_secs(300);
/// ffmpegs at work at once, at most; past that, a picture nobody is making yet is
/// refused as busy.
const MAKING_AT_ONCE: usize = 4;
/// The most of ffmpeg's output read: a 320-pixel JPEG is tens of KiB.
const OUTPUT_LIMIT: u64 = 4 << 20;
/// The unprivileged account root's files are read as.
const NOBODY: u32 = 65534;

/// Which picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One frame, a tenth of the way in, 320 pixels wide.
    Poster,
    /// Five frames across the clip side by side, each 160 pixels wide.
    Strip,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Poster => "poster",
            Kind::Strip => "strip",
        }
    }
}

/// Why there is no thumbnail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ThumbError {
    #[error("{0} has no picture to make a thumbnail of")]
    NoPicture(String),
    #[error("ffmpeg is not installed here, so no thumbnails are made ({0})")]
    NoFfmpeg(String),
    #[error("ffmpeg could not make a thumbnail of {path}: {why}")]
    Failed { path: String, why: String },
    #[error("cannot keep the thumbnail in {path}: {why}")]
    Store { path: String, why: String },
    #[error("the thumbnail of {0} is still being made")]
    Pending(String),
    #[error("{0} thumbnails are being made already")]
    Busy(usize),
}

/// The ffmpeg thumbnails are made with: Debian's, where it is installed (`rushesd
/// host`), or the one the `ffmpeg` image extension carries (the appliance).
#[derive(Debug, Clone)]
pub struct Ffmpeg {
    pub path: PathBuf,
    /// `LD_LIBRARY_PATH` for it (an extension's libraries).
    pub library_path: Option<String>,
}

impl Ffmpeg {
    /// Debian's ffmpeg, installed the usual way.
    const INSTALLED: &'static str = "/usr/bin/ffmpeg";

    pub fn find() -> Option<Self> {
        if Path::new(Self::INSTALLED).exists() {
            return Some(Self {
                path: Self::INSTALLED.into(),
                library_path: None,
            });
        }
        crate::extensions::program("ffmpeg", "usr/bin/ffmpeg").map(|p| Self {
            path: p.path,
            library_path: Some(p.library_path),
        })
    }
}

/// Where `clip`'s thumbnail of `kind` is kept, under `dir` (beside the share's index).
pub fn cached_path(dir: &Path, clip: &Clip, kind: Kind) -> PathBuf {
    kept_at(dir, &clip.id(), kind)
}

/// Where the picture of `kind` of the clip with id `id` is kept in `dir`.
fn kept_at(dir: &Path, id: &str, kind: Kind) -> PathBuf {
    let hash = blake3::hash(id.as_bytes()).to_hex();
    dir.join(&hash[..2])
        .join(format!("{}-{}.jpg", &hash[..32], kind.name()))
}

/// The clip with id `from` is now `to`: its pictures in `dir` follow it.
pub fn renamed(dir: &Path, from: &str, to: &str) {
    for kind in [Kind::Poster, Kind::Strip] {
        let (old, new) = (kept_at(dir, from, kind), kept_at(dir, to, kind));
        if old.exists() {
            let moved = new
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::rename(&old, &new));
            if let Err(e) = moved {
                tracing::debug!(from, to, error = %e, "a thumbnail did not follow its clip");
                let _ = std::fs::remove_file(&old);
            }
        }
    }
}

/// The clip with id `id` is gone: so are its pictures in `dir`.
pub fn removed(dir: &Path, id: &str) {
    for kind in [Kind::Poster, Kind::Strip] {
        let _ = std::fs::remove_file(kept_at(dir, id, kind));
    }
}

/// A picture being made, and its outcome once made.
#[derive(Default)]
struct Making {
    outcome: Mutex<Option<Result<Vec<u8>, ThumbError>>>,
    made: Condvar,
}

/// Makes thumbnails, one ffmpeg a picture however many ask for it.
pub struct Maker {
    ffmpeg: Ffmpeg,
    /// By the path the picture is kept at.
    making: Mutex<HashMap<PathBuf, Arc<Making>>>,
}

impl Maker {
    pub fn new(ffmpeg: Ffmpeg) -> Self {
        Self {
            ffmpeg,
            making: Mutex::new(HashMap::new()),
        }
    }

    /// `clip`'s thumbnail of `kind`: the one kept in `dir` when it is newer than the
    /// clip, else made (or joined while another asker's is made) and kept. `root` is
    /// the share's folder. Waits `wait` at most: then [`ThumbError::Pending`], and the
    /// picture goes on being made for the next ask.
    pub fn get(
        self: &Arc<Self>,
        dir: &Path,
        root: &Path,
        clip: &Clip,
        kind: Kind,
        wait: Duration,
    ) -> Result<Vec<u8>, ThumbError> {
        let path = cached_path(dir, clip, kind);
        if let Some(kept) = kept(&path, clip) {
            return Ok(kept);
        }
        let making = {
            let mut all = self.making.lock().unwrap_or_else(|e| e.into_inner());
            match all.get(&path) {
                Some(making) => Arc::clone(making),
                None if all.len() >= MAKING_AT_ONCE => return Err(ThumbError::Busy(all.len())),
                None => {
                    let making = Arc::new(Making::default());
                    all.insert(path.clone(), Arc::clone(&making));
                    let me = Arc::clone(self);
                    let (root, owned, kept_at) = (root.to_path_buf(), clip.clone(), path.clone());
                    let spawned = std::thread::Builder::new()
                        .name("thumbnail".into())
                        .spawn(move || me.make_and_keep(&kept_at, &root, &owned, kind));
                    if let Err(e) = spawned {
                        all.remove(&path);
                        return Err(ThumbError::Failed {
                            path: clip.label(),
                            why: format!("cannot start a thread: {e}"),
                        });
                    }
                    making
                }
            }
        };
        let outcome = making.outcome.lock().unwrap_or_else(|e| e.into_inner());
        let (outcome, _) = making
            .made
            .wait_timeout_while(outcome, wait, |o| o.is_none())
            .unwrap_or_else(|e| e.into_inner());
        outcome
            .clone()
            .unwrap_or_else(|| Err(ThumbError::Pending(clip.label())))
    }

    /// Make the picture kept at `path`, keep it, and tell whoever waits. The clip's
    /// file may have been renamed or removed while ffmpeg read it, and the catalog
    /// have dropped its pictures before this one was kept: then it is not kept (the
    /// file is looked for after keeping, as the catalog drops pictures after the file
    /// is gone).
    fn make_and_keep(&self, path: &Path, root: &Path, clip: &Clip, kind: Kind) {
        let outcome = make(&self.ffmpeg, root, clip, kind).and_then(|jpeg| {
            let jpeg = keep(path, jpeg)?;
            if root.join(&clip.path).symlink_metadata().is_err() {
                let _ = std::fs::remove_file(path);
            }
            Ok(jpeg)
        });
        let making = self
            .making
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
        if let Some(making) = making {
            *making.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
            making.made.notify_all();
        }
    }
}

/// The picture kept at `path`, when it is newer than the clip.
fn kept(path: &Path, clip: &Clip) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if u64::try_from(meta.mtime()).unwrap_or(0) < clip.modified {
        return None;
    }
    std::fs::read(path).ok()
}

/// Keep `jpeg` at `path`, whole or not at all.
fn keep(path: &Path, jpeg: Vec<u8>) -> Result<Vec<u8>, ThumbError> {
    let store = |e: std::io::Error| ThumbError::Store {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(store)?;
    }
    let partial = path.with_extension("part");
    std::fs::write(&partial, &jpeg).map_err(store)?;
    std::fs::rename(&partial, path).map_err(store)?;
    Ok(jpeg)
}

/// The inputs ffmpeg reads for `clip`, each with where to start in it: the clip's file
/// at even spaces through it, or for an image sequence, frames at even spaces through
/// it.
fn inputs(root: &Path, clip: &Clip, kind: Kind) -> Result<Vec<(PathBuf, f64)>, ThumbError> {
    let media = clip.media.as_ref().filter(|m| m.video.is_some());
    let Some(media) = media else {
        return Err(ThumbError::NoPicture(clip.label()));
    };
    let points: &[f64] = match kind {
        Kind::Poster => &[0.1],
        Kind::Strip => &[0.05, 0.25, 0.45, 0.65, 0.85],
    };
    if media.sequence.is_some() {
        let frames = rushes_catalog::sequence::frames(root, &clip.path);
        if frames.is_empty() {
            return Err(ThumbError::NoPicture(clip.label()));
        }
        let dir = clip.path.rsplit_once('/').map(|(d, _)| root.join(d));
        return Ok(points
            .iter()
            .map(|at| {
                let i = ((frames.len() - 1) as f64 * at).round() as usize;
                let name = &frames[i.min(frames.len() - 1)].1;
                (
                    dir.clone().unwrap_or_else(|| root.to_path_buf()).join(name),
                    0.0,
                )
            })
            .collect());
    }
    let duration = media.duration_s.unwrap_or(0.0);
    Ok(points
        .iter()
        .map(|at| (root.join(&clip.path), (duration * at).max(0.0)))
        .collect())
}

/// Run ffmpeg, confined, on `clip`'s picture.
fn make(ffmpeg: &Ffmpeg, root: &Path, clip: &Clip, kind: Kind) -> Result<Vec<u8>, ThumbError> {
    let inputs = inputs(root, clip, kind)?;
    let failed = |why: String| ThumbError::Failed {
        path: clip.label(),
        why,
    };
    let first = &inputs[0].0;
    let meta = std::fs::metadata(first).map_err(|e| failed(e.to_string()))?;
    // The file's owner can read it; root's files are read as nobody, who may not.
    let (uid, gid) = match meta.uid() {
        0 => (NOBODY, NOBODY),
        uid => (uid, meta.gid()),
    };
    let mut cmd = Command::new("nice");
    cmd.args([
        "-n",
        "19",
        "prlimit",
        "--as=1073741824",
        "--cpu=20",
        "--fsize=0",
    ])
    .args(["--nofile=64", "--core=0", "--"])
    .arg(&ffmpeg.path)
    .args(["-nostdin", "-hide_banner", "-v", "error"])
    .args(["-filter_threads", "1", "-filter_complex_threads", "1"]);
    for (path, at) in &inputs {
        // One decoding thread an input (an input's options are its own): five decoders
        // with a thread a core each would not fit the memory limit.
        cmd.args(["-threads", "1"]);
        if *at > 0.0 {
            cmd.args(["-ss", &format!("{at:.3}")]);
        }
        cmd.arg("-i").arg(path);
    }
    let filter = match kind {
        Kind::Poster => "[0:v]scale=320:-2".to_string(),
        Kind::Strip => {
            let scaled: String = (0..inputs.len())
                .map(|i| format!("[{i}:v]scale=160:90:force_original_aspect_ratio=decrease,pad=160:90:-1:-1[s{i}];"))
                .collect();
            let names: String = (0..inputs.len()).map(|i| format!("[s{i}]")).collect();
            format!("{scaled}{names}hstack=inputs={}", inputs.len())
        }
    };
    cmd.args(["-filter_complex", &filter])
        .args(["-frames:v", "1", "-threads", "1", "-f", "image2pipe"])
        .args(["-c:v", "mjpeg", "-q:v", "5"])
        .arg("pipe:1")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(ffmpeg.library_path.iter().map(|l| ("LD_LIBRARY_PATH", l)))
        .current_dir("/")
        // std drops root's supplementary groups when it sets the uid.
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ThumbError::NoFfmpeg(e.to_string()),
        _ => failed(format!("cannot start ffmpeg: {e}")),
    })?;
    // Read its output on threads of their own, so a stalled ffmpeg is killed on time.
    let mut stdout = child.stdout.take().map(|s| s.take(OUTPUT_LIMIT));
    let mut stderr = child.stderr.take().map(|s| s.take(64 << 10));
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut b);
        }
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = String::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut b);
        }
        b
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() > WALL => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(failed(e.to_string())),
        }
    };
    let jpeg = out.join().unwrap_or_default();
    let message = err.join().unwrap_or_default();
    let last = message.lines().last().unwrap_or("").trim().to_string();
    match status {
        None => Err(failed(format!("it was stopped after {} s", WALL.as_secs()))),
        Some(s) if !s.success() => Err(failed(match (s.code(), last.is_empty()) {
            (Some(code), false) => format!("{last} (exit {code})"),
            (Some(code), true) => format!("exit {code}"),
            (None, _) => "it crashed (killed by a signal)".into(),
        })),
        Some(_) if !jpeg.starts_with(&[0xff, 0xd8]) => Err(failed("it wrote no JPEG".into())),
        Some(_) => Ok(jpeg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for ffmpeg that counts its runs (as folders: it may write no file),
    /// takes a second, and prints the start of a JPEG.
    fn counting_ffmpeg(dir: &Path) -> (Ffmpeg, PathBuf) {
        let runs = dir.join("runs");
        std::fs::create_dir(&runs).unwrap();
        std::fs::set_permissions(&runs, std::fs::Permissions::from_mode(0o777)).unwrap();
        let script = dir.join("ffmpeg");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nmkdir {}/$$\nsleep 1\nprintf '\\377\\330\\377\\340picture'\n",
                runs.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let ffmpeg = Ffmpeg {
            path: script,
            library_path: None,
        };
        (ffmpeg, runs)
    }

    fn clip(root: &Path, name: &str) -> Clip {
        std::fs::write(root.join(name), b"frames").unwrap();
        Clip {
            share: "rushes".into(),
            path: name.into(),
            media: Some(rushes_catalog::MediaInfo {
                video: Some(rushes_catalog::Video::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn one_ffmpeg_makes_a_picture_however_many_ask_and_a_short_wait_is_told_to_ask_again() {
        let dir = tempfile::tempdir().unwrap();
        // The stand-in runs as nobody, who must reach it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let (ffmpeg, runs) = counting_ffmpeg(dir.path());
        let thumbs = dir.path().join("thumbs");
        let maker = Arc::new(Maker::new(ffmpeg));
        let a = clip(dir.path(), "a.mov");
        let count = || std::fs::read_dir(&runs).unwrap().count();

        let asks: Vec<_> = (0..3)
            .map(|_| {
                let (maker, thumbs, root, a) = (
                    maker.clone(),
                    thumbs.clone(),
                    dir.path().to_path_buf(),
                    a.clone(),
                );
                std::thread::spawn(move || {
                    maker.get(&thumbs, &root, &a, Kind::Poster, Duration::from_secs(60))
                })
            })
            .collect();
        for ask in asks {
            let jpeg = ask.join().unwrap().unwrap();
            assert!(jpeg.starts_with(&[0xff, 0xd8]), "{jpeg:?}");
        }
        assert_eq!(count(), 1, "three asks at once, one ffmpeg");
        let long = Duration::from_secs(60);
        maker
            .get(&thumbs, dir.path(), &a, Kind::Poster, long)
            .unwrap();
        assert_eq!(count(), 1, "asked again: the kept picture");

        let b = clip(dir.path(), "b.mov");
        let short = Duration::from_millis(50);
        let e = maker
            .get(&thumbs, dir.path(), &b, Kind::Poster, short)
            .unwrap_err();
        assert!(matches!(e, ThumbError::Pending(_)), "{e}");
        maker
            .get(&thumbs, dir.path(), &b, Kind::Poster, long)
            .unwrap();
        assert_eq!(count(), 2, "the second ask joined the first one's ffmpeg");
    }
}
