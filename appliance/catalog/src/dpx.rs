//! DPX (SMPTE 268M) frames: the picture's size, bit depth and pixel aspect from the image
//! and orientation headers, the frame rate from the film or television header, the start
//! timecode from the television header, and the input device (the camera or scanner).
//! Only the fixed 2,048-byte header is read; both byte orders (`SDPX` and `XPDS`).

use crate::record::{Camera, MediaInfo, Rational, Timecode, Video};
use crate::source::{text, ParseError, Source};

/// The generic, image, orientation, film and television headers.
const HEADER: usize = 2048;
/// What every DPX has: the generic and image headers up to the first element's data
/// offset.
const MINIMUM: usize = 812;

pub fn looks_like(head: &[u8]) -> bool {
    head.len() >= 4 && matches!(&head[0..4], b"SDPX" | b"XPDS")
}

struct Header {
    bytes: Vec<u8>,
    big: bool,
    /// Where the picture starts: the fields before it are the header's.
    data_at: u64,
}

impl Header {
    fn u32(&self, at: usize) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(at..at + 4)?.try_into().ok()?;
        let v = if self.big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        // All ones is "not given".
        (v != u32::MAX).then_some(v)
    }

    fn u16(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(at..at + 2)?.try_into().ok()?;
        let v = if self.big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        };
        (v != u16::MAX).then_some(v)
    }

    /// A field the file has: inside what was read and before the picture.
    fn has(&self, at: usize, len: usize) -> bool {
        (at + len) as u64 <= self.data_at && at + len <= self.bytes.len()
    }

    fn f32(&self, at: usize) -> Option<f32> {
        if !self.has(at, 4) {
            return None;
        }
        let v = f32::from_bits(self.u32(at)?);
        (v.is_finite() && v > 0.0).then_some(v)
    }

    fn text(&self, at: usize, len: usize) -> Option<String> {
        if !self.has(at, len) {
            return None;
        }
        let t = text(&self.bytes[at..at + len]);
        (!t.is_empty() && !t.bytes().all(|b| b == 0xff)).then_some(t)
    }
}

/// Read the header of a DPX frame.
pub fn parse(src: &Source<'_>) -> Result<MediaInfo, ParseError> {
    let bytes = src.read_at(0, HEADER)?;
    if bytes.len() < MINIMUM {
        return Err(ParseError::Truncated {
            what: "the DPX header".into(),
            at: 0,
            len: src.len(),
        });
    }
    let big = &bytes[0..4] == b"SDPX";
    let mut h = Header {
        bytes,
        big,
        data_at: u64::MAX,
    };
    h.data_at = u64::from(h.u32(4).unwrap_or(0));
    if h.data_at < MINIMUM as u64 {
        return Err(ParseError::Malformed {
            what: "the DPX header".into(),
            at: 4,
            why: format!(
                "its image data starts at byte {}, inside the header",
                h.data_at
            ),
        });
    }
    let width = h.u32(772).unwrap_or(0);
    let height = h.u32(776).unwrap_or(0);
    let elements = h.u16(770).unwrap_or(0);
    if width == 0 || height == 0 || elements == 0 || elements > 8 {
        return Err(ParseError::Malformed {
            what: "the DPX image header".into(),
            at: 768,
            why: format!("{width}x{height} with {elements} image elements"),
        });
    }
    let bits = h.bytes[803];
    // The pixel aspect (orientation header), then the rate: the television header's
    // (what a telecine or camera records), else the film header's.
    let aspect = match (h.has(1628, 8), h.u32(1628), h.u32(1632)) {
        (true, Some(x), Some(y)) if x > 0 && y > 0 => Rational::new(x, y),
        _ => None,
    };
    let rate = h.f32(1940).or_else(|| h.f32(1724)).and_then(rate_of);
    let timecode = match (h.has(1920, 4), h.u32(1920)) {
        (true, Some(tc)) => timecode_of(tc, rate),
        _ => None,
    };
    // The television header's interlace byte: 0 progressive, 1 interlaced.
    let field_order = match (h.has(1928, 1), h.bytes.get(1928)) {
        (true, Some(0)) => Some("progressive".to_string()),
        (true, Some(1)) => Some("interlaced".to_string()),
        _ => None,
    };
    Ok(MediaInfo {
        format: "dpx".into(),
        video: Some(Video {
            codec: "dpx".into(),
            width,
            height,
            frame_rate: rate,
            pixel_aspect: aspect,
            field_order,
            frames: Some(1),
            bits: (bits > 0).then_some(u16::from(bits)),
            ..Default::default()
        }),
        timecode,
        camera: Camera {
            model: h.text(1556, 32),
            serial: h.text(1588, 32),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// A frame rate stored as a float as the exact ratio it stands for: 23.976 is 24000/1001.
pub(crate) fn rate_of(fps: f32) -> Option<Rational> {
    let fps = f64::from(fps);
    if !(0.5..=1000.0).contains(&fps) {
        return None;
    }
    let whole = fps.round();
    if (fps - whole).abs() < 0.001 {
        return Rational::new(whole as u32, 1);
    }
    let ntsc = (fps * 1.001).round();
    if (fps - ntsc / 1.001).abs() < 0.001 {
        return Rational::new(ntsc as u32 * 1000, 1001);
    }
    Rational::new((fps * 1000.0).round() as u32, 1000)
}

/// SMPTE 12M timecode packed in binary-coded decimal, as DPX and OpenEXR store it: hours
/// in the high byte, frames in the low one, bit 6 the drop-frame flag.
pub(crate) fn timecode_of(tc: u32, rate: Option<Rational>) -> Option<Timecode> {
    // A nibble past 9 is no digit: not a timecode.
    if (0..8).any(|i| (tc >> (i * 4)) & 0xf > 9 && !matches!(i, 1 | 7)) {
        return None;
    }
    let bcd = |b: u32| (b >> 4) * 10 + (b & 0xf);
    let (h, m, s, f) = (
        bcd((tc >> 24) & 0x3f),
        bcd((tc >> 16) & 0x7f),
        bcd((tc >> 8) & 0x7f),
        bcd(tc & 0x3f),
    );
    let drop_frame = tc & 0x40 != 0;
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let fps = rate.map(|r| r.value().round() as u32).unwrap_or(24);
    Some(crate::timecode::from_parts(
        [h, m, s, f].map(u64::from),
        fps,
        drop_frame,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_stored_as_floats_read_as_the_ratios_they_stand_for() {
        assert_eq!(rate_of(23.976), Rational::new(24000, 1001));
        assert_eq!(rate_of(29.97), Rational::new(30000, 1001));
        assert_eq!(rate_of(25.0), Rational::new(25, 1));
        assert_eq!(rate_of(0.0), None);
    }

    #[test]
    fn timecode_is_binary_coded_decimal() {
        let tc = timecode_of(0x1020_3012, Rational::new(24, 1)).unwrap();
        assert_eq!(tc.start, "10:20:30:12");
        assert_eq!(tc.frame, ((10 * 60 + 20) * 60 + 30) * 24 + 12);
        let df = timecode_of(0x0001_0042, Rational::new(30000, 1001)).unwrap();
        assert_eq!(df.start, "00:01:00;02");
        assert_eq!(df.frame, 1800);
        assert!(timecode_of(0x2500_0000, None).is_none());
        assert!(timecode_of(0x000a_0000, None).is_none());
    }
}
