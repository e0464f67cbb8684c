//! Thumbnails of catalogued clips: a poster frame, and a strip of five frames across the
//! clip, made by Debian's ffmpeg in a process of its own that can do no harm: never
//! root (it runs as the file's owner, or `nobody` for root's files, so it reads nothing
//! that owner could not), at the lowest CPU priority, under `prlimit` (1 GiB of address
//! space, 20 s of CPU, no file written, 64 open files) and killed after 30 s. A hostile
//! file can crash or stall ffmpeg; rushesd only sees it fail. The pictures are JPEG,
//! read from ffmpeg's standard output (4 MiB at most) and kept beside the share's index.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rushes_catalog::Clip;

/// The most ffmpeg may take, in wall-clock time.
const WALL: Duration = Duration::from_secs(30);
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
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    #[error("{0} has no picture to make a thumbnail of")]
    NoPicture(String),
    #[error("ffmpeg is not installed here, so no thumbnails are made ({0})")]
    NoFfmpeg(String),
    #[error("ffmpeg could not make a thumbnail of {path}: {why}")]
    Failed { path: String, why: String },
    #[error("cannot keep the thumbnail in {path}: {why}")]
    Store { path: String, why: String },
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
    let hash = blake3::hash(clip.id().as_bytes()).to_hex();
    dir.join(&hash[..2])
        .join(format!("{}-{}.jpg", &hash[..32], kind.name()))
}

/// `clip`'s thumbnail of `kind`: the one kept in `dir` when it is newer than the clip,
/// else made now and kept. `root` is the share's folder.
pub fn get(
    ffmpeg: &Ffmpeg,
    dir: &Path,
    root: &Path,
    clip: &Clip,
    kind: Kind,
) -> Result<Vec<u8>, ThumbError> {
    let path = cached_path(dir, clip, kind);
    if let Ok(meta) = std::fs::metadata(&path) {
        if u64::try_from(meta.mtime()).unwrap_or(0) >= clip.modified {
            if let Ok(bytes) = std::fs::read(&path) {
                return Ok(bytes);
            }
        }
    }
    let jpeg = make(ffmpeg, root, clip, kind)?;
    let store = |e: std::io::Error| ThumbError::Store {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(store)?;
    }
    let partial = path.with_extension("part");
    std::fs::write(&partial, &jpeg).map_err(store)?;
    std::fs::rename(&partial, &path).map_err(store)?;
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
