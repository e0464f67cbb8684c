//! OpenEXR frames: the first part's header attributes (the display window's size, the
//! channels' pixel types as a bit depth, compression, pixel aspect, `framesPerSecond`,
//! `timeCode`, and the camera and reel attributes OpenEXR names). Attributes are walked
//! one at a time; only those read are fetched, each within a limit, so a large preview
//! image or a lying size costs nothing.

use crate::record::{Camera, MediaInfo, Rational, Video};
use crate::source::{le_u32, text, ParseError, Source};

const MAGIC: [u8; 4] = [0x76, 0x2f, 0x31, 0x01];
/// Attributes looked at before giving up.
const ATTRIBUTES: usize = 1024;
/// The most of one attribute's value that is read (a channel list of 64 channels is
/// about 1.5 KiB).
const VALUE_LIMIT: u64 = 64 << 10;

pub fn looks_like(head: &[u8]) -> bool {
    head.len() >= 4 && head[0..4] == MAGIC
}

fn malformed(what: &str, at: u64, why: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        what: what.into(),
        at,
        why: why.into(),
    }
}

/// A NUL-terminated name at `at` of at most `max` bytes, and where it ends.
fn name_at(src: &Source<'_>, at: u64, max: usize, what: &str) -> Result<(String, u64), ParseError> {
    let bytes = src.read_at(at, max + 1)?;
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| match bytes.len() <= max {
            true => ParseError::Truncated {
                what: what.into(),
                at,
                len: src.len(),
            },
            false => malformed(what, at, format!("longer than {max} bytes")),
        })?;
    Ok((
        String::from_utf8_lossy(&bytes[..end]).into_owned(),
        at + end as u64 + 1,
    ))
}

fn compression_name(c: u8) -> Option<&'static str> {
    Some(match c {
        0 => "none",
        1 => "rle",
        2 => "zips",
        3 => "zip",
        4 => "piz",
        5 => "pxr24",
        6 => "b44",
        7 => "b44a",
        8 => "dwaa",
        9 => "dwab",
        _ => return None,
    })
}

/// Read the header of an OpenEXR frame (the first part's, for a multi-part file).
pub fn parse(src: &Source<'_>) -> Result<MediaInfo, ParseError> {
    let head = src.exact_at(0, 8, "the OpenEXR header")?;
    if head[0..4] != MAGIC {
        return Err(malformed(
            "the OpenEXR header",
            0,
            "no OpenEXR magic number",
        ));
    }
    let flags = le_u32(&head, 4).unwrap_or(0);
    if flags & 0xff != 2 {
        return Err(malformed(
            "the OpenEXR header",
            4,
            format!("version {} (only 2 exists)", flags & 0xff),
        ));
    }
    let long_names = flags & 0x400 != 0;
    let max_name = if long_names { 255 } else { 31 };
    let mut video = Video {
        codec: "exr".into(),
        frames: Some(1),
        ..Default::default()
    };
    let mut info = MediaInfo {
        format: "exr".into(),
        ..Default::default()
    };
    let mut camera = Camera::default();
    let mut data_window = None;
    let mut timecode = None;
    let mut at = 8u64;
    for _ in 0..ATTRIBUTES {
        let first = src.exact_at(at, 1, "the OpenEXR header")?;
        if first[0] == 0 {
            // The end of the (first part's) header.
            // The display window is the picture; the data window only where it is not
            // given.
            if video.width == 0 || video.height == 0 {
                (video.width, video.height) = data_window.unwrap_or((0, 0));
            }
            if video.width == 0 || video.height == 0 {
                return Err(malformed(
                    "the OpenEXR header",
                    at,
                    "it gives no display or data window",
                ));
            }
            if let Some(tc) = timecode {
                info.timecode = crate::dpx::timecode_of(tc, video.frame_rate);
            }
            info.video = Some(video);
            info.camera = camera;
            return Ok(info);
        }
        let (name, after_name) = name_at(src, at, max_name, "an OpenEXR attribute's name")?;
        let (kind, after_kind) = name_at(src, after_name, max_name, "an OpenEXR attribute's type")?;
        let size_bytes = src.exact_at(after_kind, 4, "an OpenEXR attribute's size")?;
        let size = i32::from_le_bytes(size_bytes[..4].try_into().unwrap_or_default());
        let size = u64::try_from(size).map_err(|_| {
            malformed(
                &format!("the OpenEXR attribute {name}"),
                after_kind,
                format!("a size of {size}"),
            )
        })?;
        let value_at = after_kind + 4;
        let wanted = matches!(
            name.as_str(),
            "displayWindow"
                | "dataWindow"
                | "channels"
                | "compression"
                | "pixelAspectRatio"
                | "framesPerSecond"
                | "timeCode"
                | "cameraMake"
                | "cameraModel"
                | "cameraSerialNumber"
                | "lensModel"
                | "reelName"
        );
        if wanted {
            let what = format!("the OpenEXR attribute {name}");
            if size > VALUE_LIMIT {
                return Err(ParseError::TooBig {
                    what,
                    claimed: size,
                    limit: VALUE_LIMIT,
                });
            }
            let v = src.exact_at(value_at, size as usize, &what)?;
            let i32_at = |i: usize| -> Option<i64> {
                Some(i64::from(i32::from_le_bytes(
                    v.get(i..i + 4)?.try_into().ok()?,
                )))
            };
            match (name.as_str(), kind.as_str()) {
                ("displayWindow" | "dataWindow", "box2i") => {
                    let (Some(x0), Some(y0), Some(x1), Some(y1)) =
                        (i32_at(0), i32_at(4), i32_at(8), i32_at(12))
                    else {
                        return Err(malformed(&what, value_at, "shorter than a box"));
                    };
                    let w = u32::try_from(x1 - x0 + 1).unwrap_or(0);
                    let h = u32::try_from(y1 - y0 + 1).unwrap_or(0);
                    if name == "displayWindow" {
                        (video.width, video.height) = (w, h);
                    } else {
                        data_window = Some((w, h));
                    }
                }
                ("channels", "chlist") => {
                    // name\0, pixel type (i32), pLinear, 3 reserved, x and y sampling.
                    let mut i = 0;
                    let mut bits = 0u16;
                    while i < v.len() && v[i] != 0 {
                        let end = v[i..].iter().position(|&b| b == 0).map(|n| i + n);
                        let Some(end) = end else {
                            return Err(malformed(
                                &what,
                                value_at + i as u64,
                                "a channel name without its end",
                            ));
                        };
                        let pixel = i32_at(end + 1)
                            .ok_or_else(|| malformed(&what, value_at + end as u64, "cut short"))?;
                        bits = bits.max(match pixel {
                            1 => 16,
                            0 | 2 => 32,
                            _ => 0,
                        });
                        i = end + 1 + 16;
                    }
                    video.bits = (bits > 0).then_some(bits);
                }
                ("compression", "compression") => {
                    video.profile = v.first().and_then(|&c| compression_name(c)).map(Into::into);
                }
                ("pixelAspectRatio", "float") => {
                    let pa = v
                        .get(0..4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap_or_default()))
                        .filter(|p| p.is_finite() && *p > 0.0 && *p < 100.0);
                    video.pixel_aspect = pa.and_then(|p| {
                        let g = (f64::from(p) * 1000.0).round() as u32;
                        Rational::new(g, 1000)
                    });
                }
                ("framesPerSecond", "rational") => {
                    let num = i32_at(0).and_then(|n| u32::try_from(n).ok());
                    let den = le_u32(&v, 4);
                    if let (Some(num), Some(den)) = (num, den) {
                        video.frame_rate = Rational::new(num, den).filter(|r| r.num > 0);
                    }
                }
                ("timeCode", "timecode") => timecode = le_u32(&v, 0),
                (_, "string") => {
                    let t = text(&v);
                    let t = (!t.is_empty()).then_some(t);
                    match name.as_str() {
                        "cameraMake" => camera.make = t,
                        "cameraModel" => camera.model = t,
                        "cameraSerialNumber" => camera.serial = t,
                        "lensModel" => camera.lens = t,
                        "reelName" => info.reel = t,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        at = value_at
            .checked_add(size)
            .filter(|&end| end <= src.len())
            .ok_or_else(|| ParseError::Truncated {
                what: format!("the OpenEXR attribute {name}"),
                at: value_at,
                len: src.len(),
            })?;
    }
    Err(malformed(
        "the OpenEXR header",
        at,
        format!("more than {ATTRIBUTES} attributes"),
    ))
}
