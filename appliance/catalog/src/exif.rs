//! Stills: JPEG (the frame header's size and precision, and the EXIF in its APP1
//! segment) and TIFF-based files (TIFF, DNG and the camera raws built on it), whose first
//! directory is EXIF's. What is read: the camera's make, model, serial and lens, when the
//! picture was taken, and where (GPS). JPEG segments are walked a header at a time up to
//! the picture data; EXIF is at most one segment (64 KiB), a TIFF's directories are read
//! from its first MiB, and sub-directories are followed one level, so nothing loops.

use crate::record::{Camera, Exif, MediaInfo, Video};
use crate::source::{be_u16, ParseError, Source};

/// JPEG segments looked at before the picture data.
const SEGMENTS: usize = 256;
/// What of a TIFF file its directories are read from.
const TIFF_WINDOW: usize = 1 << 20;
/// Entries of one directory read at most.
const ENTRIES: usize = 1024;

pub fn looks_like_jpeg(head: &[u8]) -> bool {
    head.len() >= 3 && head[0..3] == [0xff, 0xd8, 0xff]
}

pub fn looks_like_tiff(head: &[u8]) -> bool {
    head.len() >= 4 && matches!(&head[0..4], b"II*\0" | b"MM\0*")
}

fn malformed(what: &str, at: u64, why: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        what: what.into(),
        at,
        why: why.into(),
    }
}

/// Read a JPEG's frame header and EXIF.
pub fn parse_jpeg(src: &Source<'_>) -> Result<MediaInfo, ParseError> {
    let mut at = 2u64;
    let mut video: Option<Video> = None;
    let mut tags = Tags::default();
    for _ in 0..SEGMENTS {
        let head = src.exact_at(at, 4, "a JPEG segment")?;
        if head[0] != 0xff {
            return Err(malformed(
                "a JPEG segment",
                at,
                "no marker where one should be",
            ));
        }
        let marker = head[1];
        if marker == 0xff {
            // Fill bytes before a marker.
            at += 1;
            continue;
        }
        if marker == 0xda || marker == 0xd9 {
            break; // the picture data, or its end
        }
        let len = u64::from(be_u16(&head, 2).unwrap_or(0));
        if len < 2 {
            return Err(malformed(
                "a JPEG segment",
                at,
                format!("a length of {len}"),
            ));
        }
        let body_at = at + 4;
        match marker {
            0xe1 if tags.make.is_none() && tags.model.is_none() => {
                let body = src.exact_at(body_at, (len - 2) as usize, "the EXIF segment")?;
                if let Some(tiff) = body.strip_prefix(b"Exif\0\0") {
                    tags = read_tiff(tiff, body_at + 6)?;
                }
            }
            // Start of frame: baseline, extended, progressive, lossless (not DHT, JPG, DAC).
            0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) && video.is_none() => {
                let sof = src.exact_at(body_at, 5, "the JPEG frame header")?;
                video = Some(Video {
                    codec: "mjpeg".into(),
                    width: u32::from(be_u16(&sof, 3).unwrap_or(0)),
                    height: u32::from(be_u16(&sof, 1).unwrap_or(0)),
                    bits: Some(u16::from(sof[0])),
                    frames: Some(1),
                    ..Default::default()
                });
            }
            _ => {}
        }
        at = body_at + len - 2;
    }
    let video = video.ok_or_else(|| {
        malformed(
            "the JPEG file",
            at,
            "no frame header before the picture data",
        )
    })?;
    Ok(tags.into_info("jpeg", video))
}

/// Read a TIFF-based file's first directory and its EXIF.
pub fn parse_tiff(src: &Source<'_>) -> Result<MediaInfo, ParseError> {
    let bytes = src.read_at(0, TIFF_WINDOW)?;
    let tags = read_tiff(&bytes, 0)?;
    let video = Video {
        codec: "tiff".into(),
        width: tags.width.unwrap_or(0),
        height: tags.height.unwrap_or(0),
        bits: tags.bits,
        frames: Some(1),
        ..Default::default()
    };
    Ok(tags.into_info("tiff", video))
}

/// What the directories say.
#[derive(Default)]
struct Tags {
    make: Option<String>,
    model: Option<String>,
    serial: Option<String>,
    lens: Option<String>,
    taken: Option<String>,
    changed: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    bits: Option<u16>,
    lat: Option<(String, Vec<f64>)>,
    lon: Option<(String, Vec<f64>)>,
}

impl Tags {
    fn into_info(self, format: &str, video: Video) -> MediaInfo {
        let degrees = |p: Option<(String, Vec<f64>)>, negative: &str| {
            let (reference, dms) = p?;
            let [d, m, s] = dms.as_slice() else {
                return None;
            };
            let v = d + m / 60.0 + s / 3600.0;
            Some(if reference.eq_ignore_ascii_case(negative) {
                -v
            } else {
                v
            })
        };
        let exif = Exif {
            taken: self.taken.or(self.changed),
            latitude: degrees(self.lat, "S"),
            longitude: degrees(self.lon, "W"),
        };
        MediaInfo {
            format: format.into(),
            video: Some(video),
            camera: Camera {
                make: self.make,
                model: self.model,
                serial: self.serial,
                lens: self.lens,
                clip_name: None,
            },
            exif: (exif != Exif::default()).then_some(exif),
            ..Default::default()
        }
    }
}

/// A TIFF structure in `b` (which starts at byte `base` of the file, for errors).
fn read_tiff(b: &[u8], base: u64) -> Result<Tags, ParseError> {
    let little = match b.get(0..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return Err(malformed("the EXIF data", base, "no TIFF byte order mark")),
    };
    let t = Tiff { b, little, base };
    if t.u16(2) != Some(42) {
        return Err(malformed("the EXIF data", base + 2, "not TIFF (no 42)"));
    }
    let mut tags = Tags::default();
    let ifd0 = t.u32(4).unwrap_or(0) as usize;
    let mut subs = Vec::new();
    t.directory(ifd0, &mut |tag, v| match tag {
        0x0100 => tags.width = v.number(),
        0x0101 => tags.height = v.number(),
        0x0102 => tags.bits = v.number().and_then(|n| u16::try_from(n).ok()),
        0x010f => tags.make = v.text(),
        0x0110 => tags.model = v.text(),
        0x0132 => tags.changed = v.text(),
        0x8769 | 0x8825 => subs.extend(v.number().map(|at| (tag, at as usize))),
        _ => {}
    })?;
    // The EXIF and GPS directories; not followed further.
    for (kind, at) in subs {
        t.directory(at, &mut |tag, v| match (kind, tag) {
            (0x8769, 0x9003) => tags.taken = v.text(),
            (0x8769, 0xa431) => tags.serial = v.text(),
            (0x8769, 0xa434) => tags.lens = v.text(),
            (0x8825, 1) => tags.lat = v.text().map(|r| (r, Vec::new())),
            (0x8825, 2) => {
                if let Some(l) = &mut tags.lat {
                    l.1 = v.rationals();
                } else {
                    tags.lat = Some(("N".into(), v.rationals()));
                }
            }
            (0x8825, 3) => tags.lon = v.text().map(|r| (r, Vec::new())),
            (0x8825, 4) => {
                if let Some(l) = &mut tags.lon {
                    l.1 = v.rationals();
                } else {
                    tags.lon = Some(("E".into(), v.rationals()));
                }
            }
            _ => {}
        })?;
    }
    Ok(tags)
}

struct Tiff<'a> {
    b: &'a [u8],
    little: bool,
    base: u64,
}

/// One entry's value: its type, count and bytes (within the TIFF data).
struct Value<'a> {
    kind: u16,
    count: usize,
    bytes: &'a [u8],
    little: bool,
}

impl Value<'_> {
    fn text(&self) -> Option<String> {
        if self.kind != 2 {
            return None;
        }
        let t = crate::source::text(self.bytes);
        (!t.is_empty()).then_some(t)
    }

    fn word(&self, at: usize, n: usize) -> Option<u32> {
        let s = self.bytes.get(at..at + n)?;
        Some(match (n, self.little) {
            (2, true) => u32::from(u16::from_le_bytes(s.try_into().ok()?)),
            (2, false) => u32::from(u16::from_be_bytes(s.try_into().ok()?)),
            (_, true) => u32::from_le_bytes(s.try_into().ok()?),
            (_, false) => u32::from_be_bytes(s.try_into().ok()?),
        })
    }

    fn number(&self) -> Option<u32> {
        match self.kind {
            1 => self.bytes.first().map(|&b| u32::from(b)),
            3 => self.word(0, 2),
            4 | 13 => self.word(0, 4),
            _ => None,
        }
    }

    fn rationals(&self) -> Vec<f64> {
        if self.kind != 5 {
            return Vec::new();
        }
        (0..self.count.min(8))
            .filter_map(|i| {
                let (n, d) = (self.word(i * 8, 4)?, self.word(i * 8 + 4, 4)?);
                (d != 0).then(|| f64::from(n) / f64::from(d))
            })
            .collect()
    }
}

impl Tiff<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let s: [u8; 2] = self.b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let s: [u8; 4] = self.b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }

    /// Call `each` with every entry of the directory at `at` whose value is inside the
    /// data; entries past it are skipped, not trusted.
    fn directory(&self, at: usize, each: &mut dyn FnMut(u16, Value<'_>)) -> Result<(), ParseError> {
        let count = self.u16(at).ok_or_else(|| ParseError::Truncated {
            what: "an EXIF directory".into(),
            at: self.base + at as u64,
            len: self.base + self.b.len() as u64,
        })?;
        for i in 0..usize::from(count).min(ENTRIES) {
            let e = at + 2 + i * 12;
            let (Some(tag), Some(kind), Some(n)) = (self.u16(e), self.u16(e + 2), self.u32(e + 4))
            else {
                break;
            };
            let size = match kind {
                1 | 2 | 6 | 7 => 1usize,
                3 | 8 => 2,
                4 | 9 | 11 | 13 => 4,
                5 | 10 | 12 => 8,
                _ => continue,
            };
            let Some(len) = (n as usize).checked_mul(size) else {
                continue;
            };
            let start = if len <= 4 {
                e + 8
            } else {
                match self.u32(e + 8) {
                    Some(off) => off as usize,
                    None => continue,
                }
            };
            let Some(bytes) = start
                .checked_add(len)
                .and_then(|end| self.b.get(start..end))
            else {
                continue;
            };
            each(
                tag,
                Value {
                    kind,
                    count: n as usize,
                    bytes,
                    little: self.little,
                },
            );
        }
        Ok(())
    }
}
