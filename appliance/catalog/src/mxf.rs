//! MXF (SMPTE 377) OP1a and OP-Atom headers: the header partition's metadata is read
//! (at most [`HEADER_LIMIT`]) and its local sets taken apart in memory: the picture and
//! sound descriptors, each track's edit rate and length, the material package's start
//! timecode, and the packages' UMIDs, so that the files of one OP-Atom clip (a picture
//! file and its sound files, sharing a material package) can be put together.

use std::collections::HashMap;

use crate::record::{Audio, MediaInfo, Rational, Video};
use crate::source::{be_u16, be_u32, be_u64, ParseError, Source};

/// The most header metadata read: a long clip's is a few hundred KiB.
pub const HEADER_LIMIT: u64 = 16 << 20;
/// How far into the file the header partition may start (SMPTE 377's run-in).
const RUN_IN: u64 = 65_536;
/// Local sets taken apart at most.
const SETS: usize = 100_000;

/// The first 11 bytes of every SMPTE universal label.
const UL_PREFIX: [u8; 4] = [0x06, 0x0E, 0x2B, 0x34];
/// A partition pack: `06 0E 2B 34 02 05 01 01 0D 01 02 01 01 KK SS 00`.
const PARTITION: [u8; 13] = [
    0x06, 0x0E, 0x2B, 0x34, 0x02, 0x05, 0x01, 0x01, 0x0D, 0x01, 0x02, 0x01, 0x01,
];
/// A local set of the header metadata: `06 0E 2B 34 02 53 01 01 0D 01 01 01 01 01 TT TT`.
const LOCAL_SET: [u8; 14] = [
    0x06, 0x0E, 0x2B, 0x34, 0x02, 0x53, 0x01, 0x01, 0x0D, 0x01, 0x01, 0x01, 0x01, 0x01,
];

pub fn looks_like(head: &[u8]) -> bool {
    head.len() >= 13 && head[..13] == PARTITION
}

fn malformed(what: &str, at: u64, why: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        what: what.into(),
        at,
        why: why.into(),
    }
}

/// A BER length at `at` of `b`: the length and the bytes it took.
fn ber(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *b.get(at)?;
    if first < 0x80 {
        return Some((u64::from(first), 1));
    }
    let n = usize::from(first & 0x7F);
    if n == 0 || n > 8 {
        return None;
    }
    let mut len = 0u64;
    for i in 0..n {
        len = len << 8 | u64::from(*b.get(at + 1 + i)?);
    }
    Some((len, 1 + n))
}

/// How many 16-byte references of a batch item `b` claiming `count` are read: the count
/// is the file's word, so only as many as the item holds (a claim of four billion once
/// kept a parser busy for minutes on an 8 KiB file).
fn batch_len(b: &[u8], count: u32) -> usize {
    (count as usize).min(b.len().saturating_sub(8) / 16)
}

/// One local set: its type (the key's last two bytes) and its items by local tag.
#[derive(Debug, Default)]
struct Set {
    kind: u16,
    items: HashMap<u16, Vec<u8>>,
}

impl Set {
    fn get(&self, tag: u16) -> Option<&[u8]> {
        self.items.get(&tag).map(Vec::as_slice)
    }

    fn u32(&self, tag: u16) -> Option<u32> {
        be_u32(self.get(tag)?, 0)
    }

    fn u64(&self, tag: u16) -> Option<u64> {
        be_u64(self.get(tag)?, 0)
    }

    fn rational(&self, tag: u16) -> Option<Rational> {
        let b = self.get(tag)?;
        Rational::new(be_u32(b, 0)?, be_u32(b, 4)?)
    }

    /// The 16-byte ids a batch item holds (strong references, UIDs).
    fn refs(&self, tag: u16) -> Vec<[u8; 16]> {
        let Some(b) = self.get(tag) else {
            return Vec::new();
        };
        let (Some(count), Some(size)) = (be_u32(b, 0), be_u32(b, 4)) else {
            return Vec::new();
        };
        if size != 16 {
            return Vec::new();
        }
        (0..batch_len(b, count))
            .filter_map(|i| b.get(8 + 16 * i..24 + 16 * i)?.try_into().ok())
            .collect()
    }

    fn uid(&self) -> Option<[u8; 16]> {
        self.get(0x3C0A)?.try_into().ok()
    }
}

/// Set types (the last two bytes of their keys).
const MATERIAL_PACKAGE: u16 = 0x0136;
const SEQUENCE: u16 = 0x010F;
const TIMECODE: u16 = 0x0114;
const CDCI: u16 = 0x0128;
const RGBA: u16 = 0x0129;
const SOUND: u16 = 0x0142;
const WAVE: u16 = 0x0148;
const AES3: u16 = 0x0147;

/// Read the header of an MXF file.
pub fn parse(src: &Source<'_>) -> Result<MediaInfo, ParseError> {
    // The header partition pack: at the start, or after a run-in.
    let first = src.read_at(0, 13)?;
    let start = if looks_like(&first) {
        0
    } else {
        let head = src.read_at(0, RUN_IN.min(src.len()) as usize)?;
        head.windows(13)
            .position(|w| w == PARTITION)
            .ok_or_else(|| malformed("the file", 0, "it has no header partition pack"))?
    };
    let pack = src.exact_at(start as u64, 16 + 9, "the header partition pack")?;
    let (len, ber_len) = ber(&pack, 16).ok_or_else(|| {
        malformed(
            "the header partition pack",
            start as u64,
            "its length is not BER",
        )
    })?;
    let value_at = start as u64 + 16 + ber_len as u64;
    if !(64..=1 << 20).contains(&len) {
        return Err(malformed(
            "the header partition pack",
            start as u64,
            format!("its length {len} is not a partition pack's"),
        ));
    }
    let value = src.exact_at(value_at, len as usize, "the header partition pack")?;
    // HeaderByteCount: the header metadata (primer and local sets) that follows.
    let header_bytes = be_u64(&value, 32).unwrap_or(0);
    let operational_pattern: Option<[u8; 16]> = value.get(64..80).and_then(|b| b.try_into().ok());
    if header_bytes > HEADER_LIMIT {
        return Err(ParseError::TooBig {
            what: "the header metadata".into(),
            claimed: header_bytes,
            limit: HEADER_LIMIT,
        });
    }
    // HeaderByteCount starts after the fill that pads the partition pack to the KAG.
    let mut meta_at = value_at + len;
    let fill = src.read_at(meta_at, 25)?;
    if fill.len() >= 17
        && fill[..4] == UL_PREFIX
        && fill[4] == 0x01
        && fill[8..13] == [0x03, 0x01, 0x02, 0x10, 0x01]
    {
        let (fill_len, n) = ber(&fill, 16)
            .ok_or_else(|| malformed("a fill item", meta_at, "its length is not BER"))?;
        meta_at = meta_at
            .checked_add(16 + n as u64 + fill_len)
            .ok_or_else(|| malformed("a fill item", meta_at, "its length overflows"))?;
    }
    let meta = src.exact_at(meta_at, header_bytes as usize, "the header metadata")?;
    let sets = local_sets(&meta, meta_at)?;
    let mut info = describe(&sets, operational_pattern);
    // VC-3 says DNxHD or DNxHR only in its frames: the first frame's header names it.
    if let Some(v) = info.video.as_mut().filter(|v| v.codec == "dnxhd") {
        if let Some(cid) = first_vc3_cid(src, meta_at + header_bytes)? {
            if let Some(profile) = dnxhr_profile(cid) {
                v.codec = "dnxhr".into();
                v.profile = Some(profile.into());
            } else {
                v.profile = Some("DNXHD".into());
            }
        }
    }
    Ok(info)
}

/// The compression id of the first picture frame after `from`, if one starts within
/// the next 64 KiB (index tables and fill may come first). Only KLV headers are read on
/// the way.
fn first_vc3_cid(src: &Source<'_>, from: u64) -> Result<Option<u32>, ParseError> {
    let mut at = from;
    while at < from + RUN_IN {
        let head = src.read_at(at, 25)?;
        if head.len() < 17 || head[..4] != UL_PREFIX {
            return Ok(None);
        }
        let Some((len, n)) = ber(&head, 16) else {
            return Ok(None);
        };
        let value = at + 16 + n as u64;
        // A generic-container picture element: `06 0E 2B 34 01 02 01 01 0D 01 03 01 15 …`.
        if head[4] == 0x01 && head[12] == 0x15 {
            let frame = src.read_at(value, 0x2C)?;
            return Ok(be_u32(&frame, 0x28));
        }
        at = match value.checked_add(len) {
            Some(next) => next,
            None => return Ok(None),
        };
    }
    Ok(None)
}

/// DNxHR's compression ids, with the profile names ffprobe gives them.
fn dnxhr_profile(cid: u32) -> Option<&'static str> {
    Some(match cid {
        1270 => "DNXHR 444",
        1271 => "DNXHR HQX",
        1272 => "DNXHR HQ",
        1273 => "DNXHR SQ",
        1274 => "DNXHR LB",
        _ => return None,
    })
}

/// The local sets of the header metadata, by instance UID; KLV fill and the primer
/// pack are skipped (only the static local tags are read).
fn local_sets(meta: &[u8], base: u64) -> Result<HashMap<[u8; 16], Set>, ParseError> {
    let mut sets = HashMap::new();
    let mut at = 0usize;
    let mut seen = 0;
    while at + 17 <= meta.len() && seen < SETS {
        seen += 1;
        let key = &meta[at..at + 16];
        if key[..4] != UL_PREFIX {
            return Err(malformed(
                "the header metadata",
                base + at as u64,
                "a key there is not a SMPTE label",
            ));
        }
        let (len, n) = ber(meta, at + 16).ok_or_else(|| {
            malformed(
                "the header metadata",
                base + at as u64,
                "a length is not BER",
            )
        })?;
        let value_at = at + 16 + n;
        let end = value_at
            .checked_add(usize::try_from(len).unwrap_or(usize::MAX))
            .filter(|&e| e <= meta.len())
            .ok_or_else(|| ParseError::Truncated {
                what: "a header metadata set".into(),
                at: base + at as u64,
                len: base + meta.len() as u64,
            })?;
        if key[..14] == LOCAL_SET {
            let mut set = Set {
                kind: u16::from_be_bytes([key[13], key[14]]),
                ..Default::default()
            };
            let value = &meta[value_at..end];
            let mut i = 0;
            while i + 4 <= value.len() {
                let tag = be_u16(value, i).unwrap_or(0);
                let size = usize::from(be_u16(value, i + 2).unwrap_or(0));
                let Some(item) = value.get(i + 4..i + 4 + size) else {
                    break;
                };
                set.items.insert(tag, item.to_vec());
                i += 4 + size;
            }
            if let Some(uid) = set.uid() {
                sets.insert(uid, set);
            }
        }
        at = end;
    }
    Ok(sets)
}

fn describe(sets: &HashMap<[u8; 16], Set>, op: Option<[u8; 16]>) -> MediaInfo {
    let mut info = MediaInfo {
        format: "mxf".into(),
        ..Default::default()
    };
    let of_kind = |kind: u16| sets.values().filter(move |s| s.kind == kind);
    let material = of_kind(MATERIAL_PACKAGE).next();
    info.package = material
        .and_then(|m| m.get(0x4401))
        .map(|umid| umid.iter().map(|b| format!("{b:02X}")).collect());
    info.operational_pattern = op.map(|ul| match (ul[12], ul[13]) {
        (0x10, _) => "op-atom".to_string(),
        (1..=3, 1..=3) => format!("op{}{}", ul[12], (b'a' + ul[13] - 1) as char),
        _ => "other".into(),
    });
    // The material package's tracks: the picture track's edit rate and length, and
    // the timecode track's start.
    let tracks: Vec<&Set> = material
        .map(|m| m.refs(0x4403))
        .unwrap_or_default()
        .iter()
        .filter_map(|r| sets.get(r))
        .collect();
    let mut picture_rate = None;
    let mut picture_length = None;
    for track in &tracks {
        let rate = track.rational(0x4B01);
        let Some(sequence) = track
            .get(0x4803)
            .and_then(|r| <[u8; 16]>::try_from(r).ok())
            .and_then(|r| sets.get(&r))
            .filter(|s| s.kind == SEQUENCE)
        else {
            continue;
        };
        let length = sequence.u64(0x0202);
        for component in sequence.refs(0x1001).iter().filter_map(|r| sets.get(r)) {
            if component.kind == TIMECODE && info.timecode.is_none() {
                let base = be_u16(component.get(0x1502).unwrap_or_default(), 0).unwrap_or(0);
                let start = component.u64(0x1501).unwrap_or(0);
                let drop = component.get(0x1503).is_some_and(|b| b.first() == Some(&1));
                if base > 0 {
                    info.timecode = Some(crate::timecode::from_frame(start, u32::from(base), drop));
                }
            }
        }
        // The data definition says picture (`…01 03 02 02 01 …`).
        let picture = sequence
            .get(0x0201)
            .is_some_and(|dd| dd.get(8..13) == Some(&[0x01, 0x03, 0x02, 0x02, 0x01][..]));
        if picture && picture_rate.is_none() {
            picture_rate = rate;
            picture_length = length;
        }
    }
    if let (Some(rate), Some(length)) = (picture_rate, picture_length) {
        if rate.num > 0 {
            info.duration_s = Some(length as f64 * f64::from(rate.den) / f64::from(rate.num));
        }
    }
    // Essence descriptors: directly on the file package, or under a MultipleDescriptor.
    for set in sets.values() {
        match set.kind {
            CDCI | RGBA if info.video.is_none() => {
                let coding = set.get(0x3201).unwrap_or_default();
                let layout = set.get(0x320C).and_then(|b| b.first().copied());
                let (mut width, mut height) =
                    (set.u32(0x3203).unwrap_or(0), set.u32(0x3202).unwrap_or(0));
                // Separated fields store a field's height: the frame has twice as many lines.
                if layout == Some(1) {
                    height *= 2;
                }
                if width == 0 {
                    width = set.u32(0x3209).unwrap_or(0);
                }
                let rate = set.rational(0x3001).or(picture_rate);
                let aspect = set.rational(0x320E).and_then(|display| {
                    // Pixel aspect from the display aspect and the stored picture.
                    let (w, h) = (u64::from(width), u64::from(height));
                    if w == 0 || h == 0 {
                        return None;
                    }
                    let num = u64::from(display.num) * h;
                    let den = u64::from(display.den) * w;
                    let g = gcd(num, den).max(1);
                    Rational::new(u32::try_from(num / g).ok()?, u32::try_from(den / g).ok()?)
                });
                info.video = Some(Video {
                    codec: picture_codec(coding),
                    profile: None,
                    fourcc: ul_text(coding),
                    width,
                    height,
                    frame_rate: rate,
                    pixel_aspect: aspect,
                    field_order: layout
                        .map(|l| if l == 0 { "progressive" } else { "interlaced" }.into()),
                    frames: set.u64(0x3002).or(picture_length),
                    ..Default::default()
                });
                if info.duration_s.is_none() {
                    if let (Some(r), Some(n)) = (rate, set.u64(0x3002)) {
                        info.duration_s =
                            Some(n as f64 * f64::from(r.den) / f64::from(r.num.max(1)));
                    }
                }
            }
            SOUND | WAVE | AES3 => {
                let bits = set.u32(0x3D01).unwrap_or(0);
                let coding = set.get(0x3D06).unwrap_or_default();
                info.audio.push(Audio {
                    codec: sound_codec(set.kind, coding, bits),
                    sample_rate: set
                        .rational(0x3D03)
                        .map(|r| (r.value()).round() as u32)
                        .unwrap_or(0),
                    channels: set
                        .u32(0x3D07)
                        .and_then(|c| u16::try_from(c).ok())
                        .unwrap_or(0),
                    bits: (bits > 0).then(|| u16::try_from(bits).unwrap_or(0)),
                });
            }
            _ => {}
        }
    }
    info
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A label as dotted hex, as ffprobe prints them.
fn ul_text(ul: &[u8]) -> String {
    ul.chunks(4)
        .map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(".")
}

/// Our name of a picture essence coding label (SMPTE RP 224 and the registered
/// compression labels).
fn picture_codec(ul: &[u8]) -> String {
    if ul.len() != 16 || ul[..4] != UL_PREFIX {
        return "unknown".into();
    }
    match (ul[11], ul[12], ul[13], ul[14]) {
        // 04.01.02.02.71.xx: VC-3 (Avid DNxHD and DNxHR).
        (0x02, 0x71, _, _) => "dnxhd".into(),
        // 04.01.02.02.03.06.xx: Apple ProRes, by profile.
        (0x02, 0x03, 0x06, p) => match p {
            1 => "prores_422_proxy",
            2 => "prores_422_lt",
            3 => "prores_422",
            4 => "prores_422_hq",
            5 => "prores_4444",
            6 => "prores_4444_xq",
            _ => "prores",
        }
        .into(),
        (0x02, 0x01, 0x02, _) | (0x02, 0x01, 0x04, _) => "mpeg2video".into(),
        (0x02, 0x01, 0x32, _) => "h264".into(),
        (0x02, 0x03, 0x01, _) => "jpeg2000".into(),
        (0x01, 0x02, _, _) => "rawvideo".into(),
        _ => "unknown".into(),
    }
}

fn sound_codec(kind: u16, ul: &[u8], bits: u32) -> String {
    match kind {
        WAVE | AES3 => format!("pcm_s{bits}le"),
        _ if ul.len() == 16 && ul[11..13] == [0x02, 0x02] && ul[13] == 0x01 => {
            format!("pcm_s{bits}le")
        }
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_read_only_as_far_as_it_holds_references() {
        let mut item = u32::MAX.to_be_bytes().to_vec();
        item.extend_from_slice(&16u32.to_be_bytes());
        item.extend_from_slice(&[7; 16]);
        assert_eq!(batch_len(&item, u32::MAX), 1);
        let set = Set {
            kind: MATERIAL_PACKAGE,
            items: [(0x4403, item)].into_iter().collect(),
        };
        assert_eq!(set.refs(0x4403), vec![[7; 16]]);
    }
}
