//! QuickTime (`.mov`) and ISO base media (`.mp4`) headers: the top-level boxes are
//! walked by their headers alone (the media data is skipped, never read), the `moov` box
//! is read whole (at most [`MOOV_LIMIT`]) and taken apart in memory: each track's
//! handler, sample description, timing and, for a timecode track, its first sample.

use crate::record::{Audio, Camera, MediaInfo, Rational, Video};
use crate::source::{be_u16, be_u32, be_u64, ParseError, Source};

/// The most a `moov` box may take: an hour-long clip's tables take a few MiB.
pub const MOOV_LIMIT: u64 = 32 << 20;
/// Top-level boxes looked at before giving up on finding `moov`.
const TOP_LEVEL_BOXES: usize = 10_000;
/// How deep boxes may nest.
const DEPTH: usize = 12;
/// Sample descriptions looked at in one track.
const ENTRIES: usize = 16;

/// Whether a file's first bytes are a QuickTime or MP4 box.
pub fn looks_like(head: &[u8]) -> bool {
    head.len() >= 8
        && matches!(
            &head[4..8],
            b"ftyp" | b"moov" | b"mdat" | b"wide" | b"free" | b"skip" | b"pnot"
        )
}

fn malformed(what: &str, at: u64, why: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        what: what.into(),
        at,
        why: why.into(),
    }
}

/// A box type as text; 0xA9 is Mac Roman's ©, which QuickTime's text items start with.
fn fourcc(kind: &[u8]) -> String {
    kind.iter()
        .map(|&b| match b {
            0xA9 => '©',
            b if b.is_ascii_graphic() || b == b' ' => b as char,
            _ => '?',
        })
        .collect()
}

/// One box inside a buffer: its type and its payload's range in the buffer.
struct Child {
    kind: [u8; 4],
    at: usize,
    payload: std::ops::Range<usize>,
}

/// The boxes one after another in `buf` (whose first byte is at file offset `base`).
fn children(buf: &[u8], base: u64) -> Result<Vec<Child>, ParseError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= buf.len() {
        let size32 = be_u32(buf, at).unwrap_or(0);
        let kind: [u8; 4] = buf[at + 4..at + 8].try_into().unwrap_or_default();
        let (size, header) = match size32 {
            0 => ((buf.len() - at) as u64, 8),
            1 => {
                let large = be_u64(buf, at + 8).ok_or_else(|| {
                    malformed(
                        &format!("box {}", fourcc(&kind)),
                        base + at as u64,
                        "its 64-bit size is cut off",
                    )
                })?;
                (large, 16)
            }
            s => (u64::from(s), 8),
        };
        if size < header as u64 || size > (buf.len() - at) as u64 {
            return Err(malformed(
                &format!("box {}", fourcc(&kind)),
                base + at as u64,
                format!(
                    "it claims {size} bytes where its parent has {} left",
                    buf.len() - at
                ),
            ));
        }
        let end = at + size as usize;
        out.push(Child {
            kind,
            at,
            payload: at + header..end,
        });
        at = end;
    }
    Ok(out)
}

/// Where `moov` is and what the file calls itself.
struct TopLevel {
    moov: Vec<u8>,
    moov_at: u64,
    brand: Option<[u8; 4]>,
}

fn top_level(src: &Source<'_>) -> Result<TopLevel, ParseError> {
    let len = src.len();
    let mut at = 0u64;
    let mut brand = None;
    for _ in 0..TOP_LEVEL_BOXES {
        if at.saturating_add(8) > len {
            break;
        }
        let head = src.exact_at(at, 8, "a box header")?;
        let kind: [u8; 4] = head[4..8].try_into().unwrap_or_default();
        let (size, header) = match be_u32(&head, 0).unwrap_or(0) {
            0 => (len - at, 8),
            1 => (
                be_u64(&src.exact_at(at + 8, 8, "a box's 64-bit size")?, 0).unwrap_or(0),
                16,
            ),
            s => (u64::from(s), 8),
        };
        if size < header {
            return Err(malformed(
                &format!("box {}", fourcc(&kind)),
                at,
                format!("its size {size} is smaller than its own header"),
            ));
        }
        match &kind {
            b"ftyp" => {
                let b = src.read_at(at + header, 4)?;
                brand = b.try_into().ok();
            }
            b"moov" => {
                let body = size - header;
                if body > MOOV_LIMIT {
                    return Err(ParseError::TooBig {
                        what: "the moov box".into(),
                        claimed: body,
                        limit: MOOV_LIMIT,
                    });
                }
                if at.saturating_add(size) > len {
                    return Err(ParseError::Truncated {
                        what: "the moov box".into(),
                        at,
                        len,
                    });
                }
                return Ok(TopLevel {
                    moov: src.exact_at(at + header, body as usize, "the moov box")?,
                    moov_at: at + header,
                    brand,
                });
            }
            _ => {}
        }
        at = at.checked_add(size).ok_or_else(|| {
            malformed(&format!("box {}", fourcc(&kind)), at, "its size overflows")
        })?;
    }
    Err(malformed(
        "the file",
        0,
        "it has no moov box (a recording still being written, or a file cut short, keeps it at the end)",
    ))
}

#[derive(Debug, Default)]
struct Track {
    handler: [u8; 4],
    timescale: u32,
    duration: u64,
    entries: Vec<Entry>,
    /// Sample counts and durations (stts).
    times: Vec<(u32, u32)>,
    first_chunk: Option<u64>,
}

#[derive(Debug)]
enum Entry {
    Video {
        fourcc: [u8; 4],
        width: u16,
        height: u16,
        aspect: Option<Rational>,
        fields: Option<(u8, u8)>,
    },
    Sound {
        fourcc: [u8; 4],
        channels: u32,
        bits: u32,
        rate: u32,
        /// Little-endian, from the `enda` box or the LPCM flags.
        little_endian: bool,
        float: bool,
    },
    Timecode {
        drop_frame: bool,
        frames_per_second: u8,
        reel: Option<String>,
    },
    Other,
}

/// What a walk over `moov` gathers.
#[derive(Default)]
struct Movie {
    timescale: u32,
    duration: u64,
    tracks: Vec<Track>,
    camera: Camera,
}

/// Read the header of a QuickTime or MP4 file.
pub fn parse(src: &Source<'_>) -> Result<MediaInfo, ParseError> {
    let top = top_level(src)?;
    let mut movie = Movie::default();
    walk_moov(&top.moov, top.moov_at, &mut movie)?;
    let mut info = MediaInfo {
        format: match top.brand.as_ref() {
            Some(b"qt  ") | None => "quicktime".into(),
            Some(_) => "mp4".into(),
        },
        camera: movie.camera.clone(),
        ..Default::default()
    };
    if movie.timescale > 0 && movie.duration > 0 {
        info.duration_s = Some(movie.duration as f64 / f64::from(movie.timescale));
    }
    for track in &movie.tracks {
        for entry in &track.entries {
            match entry {
                Entry::Video {
                    fourcc: cc,
                    width,
                    height,
                    aspect,
                    fields,
                } if info.video.is_none() => {
                    let frames: u64 = track.times.iter().map(|&(n, _)| u64::from(n)).sum();
                    // The sample duration most of the samples have.
                    let delta = track.times.iter().max_by_key(|&&(n, _)| n).map(|&(_, d)| d);
                    info.video = Some(Video {
                        codec: video_codec(cc),
                        profile: prores_profile(cc),
                        fourcc: fourcc(cc),
                        width: u32::from(*width),
                        height: u32::from(*height),
                        frame_rate: delta.and_then(|d| Rational::new(track.timescale, d)),
                        pixel_aspect: *aspect,
                        field_order: fields.map(field_order),
                        frames: (frames > 0).then_some(frames),
                        ..Default::default()
                    });
                    if track.timescale > 0 && track.duration > 0 {
                        info.duration_s = Some(track.duration as f64 / f64::from(track.timescale));
                    }
                }
                Entry::Sound {
                    fourcc: cc,
                    channels,
                    bits,
                    rate,
                    little_endian,
                    float,
                } => {
                    let (codec, bits) = sound_codec(cc, *bits, *little_endian, *float);
                    info.audio.push(Audio {
                        codec,
                        sample_rate: *rate,
                        channels: u16::try_from(*channels).unwrap_or(u16::MAX),
                        bits,
                    });
                }
                Entry::Timecode {
                    drop_frame,
                    frames_per_second,
                    reel,
                } if info.timecode.is_none() => {
                    if let Some(at) = track.first_chunk {
                        let sample = src.exact_at(at, 4, "the timecode track's first sample")?;
                        let frame = be_u32(&sample, 0).unwrap_or(0);
                        info.timecode = Some(crate::timecode::from_frame(
                            u64::from(frame),
                            u32::from(*frames_per_second),
                            *drop_frame,
                        ));
                    }
                    info.reel = reel.clone();
                }
                _ => {}
            }
        }
    }
    Ok(info)
}

fn walk_moov(buf: &[u8], base: u64, movie: &mut Movie) -> Result<(), ParseError> {
    for c in children(buf, base)? {
        let body = &buf[c.payload.clone()];
        let at = base + c.payload.start as u64;
        match &c.kind {
            b"mvhd" => {
                let (timescale, duration) = match body.first() {
                    Some(1) => (be_u32(body, 20), be_u64(body, 24)),
                    _ => (be_u32(body, 12), be_u32(body, 16).map(u64::from)),
                };
                movie.timescale = timescale.unwrap_or(0);
                movie.duration = duration.unwrap_or(0);
            }
            b"trak" => {
                let mut track = Track::default();
                walk_track(body, at, &mut track, 0)?;
                movie.tracks.push(track);
            }
            b"udta" => user_data(body, at, &mut movie.camera, 0)?,
            b"meta" => metadata(body, at, &mut movie.camera)?,
            _ => {}
        }
        let _ = c.at;
    }
    Ok(())
}

fn walk_track(buf: &[u8], base: u64, track: &mut Track, depth: usize) -> Result<(), ParseError> {
    if depth > DEPTH {
        return Err(malformed("a track", base, "its boxes nest too deep"));
    }
    for c in children(buf, base)? {
        let body = &buf[c.payload.clone()];
        let at = base + c.payload.start as u64;
        match &c.kind {
            b"mdia" | b"minf" | b"stbl" => walk_track(body, at, track, depth + 1)?,
            b"mdhd" => {
                let (timescale, duration) = match body.first() {
                    Some(1) => (be_u32(body, 20), be_u64(body, 24)),
                    _ => (be_u32(body, 12), be_u32(body, 16).map(u64::from)),
                };
                track.timescale = timescale.unwrap_or(0);
                track.duration = duration.unwrap_or(0);
            }
            // The media handler (in mdia), not minf's data handler.
            b"hdlr" if track.handler == [0; 4] => {
                if let Some(kind) = body.get(8..12) {
                    track.handler = kind.try_into().unwrap_or_default();
                }
            }
            b"stsd" => sample_descriptions(body, at, track)?,
            b"stts" => {
                let count = be_u32(body, 4).unwrap_or(0) as usize;
                if count > (body.len().saturating_sub(8)) / 8 {
                    return Err(malformed(
                        "the stts box",
                        at,
                        format!("it claims {count} entries in {} bytes", body.len()),
                    ));
                }
                track.times = (0..count)
                    .filter_map(|i| Some((be_u32(body, 8 + 8 * i)?, be_u32(body, 12 + 8 * i)?)))
                    .collect();
            }
            b"stco" if be_u32(body, 4).unwrap_or(0) > 0 => {
                track.first_chunk = be_u32(body, 8).map(u64::from);
            }
            b"co64" if be_u32(body, 4).unwrap_or(0) > 0 => {
                track.first_chunk = be_u64(body, 8);
            }
            _ => {}
        }
    }
    Ok(())
}

fn sample_descriptions(body: &[u8], at: u64, track: &mut Track) -> Result<(), ParseError> {
    // Version and flags, then the count; the entries are boxes themselves.
    let entries = children(body.get(8..).unwrap_or_default(), at + 8)?;
    for e in entries.iter().take(ENTRIES) {
        let entry = &body[8 + e.at..8 + e.payload.end];
        let entry_at = at + 8 + e.at as u64;
        track.entries.push(match &track.handler {
            b"vide" => video_entry(e.kind, entry, entry_at)?,
            b"soun" => sound_entry(e.kind, entry, entry_at)?,
            b"tmcd" => timecode_entry(entry, entry_at)?,
            _ => Entry::Other,
        });
    }
    Ok(())
}

fn video_entry(kind: [u8; 4], e: &[u8], at: u64) -> Result<Entry, ParseError> {
    let (Some(width), Some(height)) = (be_u16(e, 32), be_u16(e, 34)) else {
        return Err(malformed(
            "a video sample description",
            at,
            "it is too short",
        ));
    };
    let mut aspect = None;
    let mut fields = None;
    if e.len() > 86 {
        for c in children(&e[86..], at + 86)? {
            let body = &e[86 + c.payload.start..86 + c.payload.end];
            match &c.kind {
                b"pasp" => {
                    if let (Some(h), Some(v)) = (be_u32(body, 0), be_u32(body, 4)) {
                        aspect = Rational::new(h, v);
                    }
                }
                b"fiel" if body.len() >= 2 => fields = Some((body[0], body[1])),
                _ => {}
            }
        }
    }
    Ok(Entry::Video {
        fourcc: kind,
        width,
        height,
        aspect,
        fields,
    })
}

fn sound_entry(kind: [u8; 4], e: &[u8], at: u64) -> Result<Entry, ParseError> {
    let short = || malformed("a sound sample description", at, "it is too short");
    let version = be_u16(e, 16).ok_or_else(short)?;
    let (channels, bits, rate, mut flags, extensions) = match version {
        2 => {
            let rate = e
                .get(40..48)
                .map(|b| f64::from_bits(u64::from_be_bytes(b.try_into().unwrap_or_default())))
                .ok_or_else(short)?;
            (
                be_u32(e, 48).ok_or_else(short)?,
                be_u32(e, 56).ok_or_else(short)?,
                if rate.is_finite() && rate > 0.0 && rate < 1e7 {
                    rate.round() as u32
                } else {
                    0
                },
                be_u32(e, 60),
                72,
            )
        }
        _ => (
            u32::from(be_u16(e, 24).ok_or_else(short)?),
            u32::from(be_u16(e, 26).ok_or_else(short)?),
            be_u32(e, 32).ok_or_else(short)? >> 16,
            None,
            if version == 1 { 52 } else { 36 },
        ),
    };
    let mut little_endian = false;
    let mut channels = channels;
    if e.len() > extensions {
        // QuickTime keeps the byte order in `wave/enda`; AAC's channel layout is in
        // `esds` (in `wave` in QuickTime, beside the entry in ISO files), where the
        // entry's own count says 2 whatever the stream has.
        let mut look = |kind: &[u8; 4], body: &[u8]| match kind {
            b"enda" => little_endian = be_u16(body, 0) == Some(1),
            b"esds" => {
                if let Some(n) = aac_channels(body) {
                    channels = n;
                }
            }
            _ => {}
        };
        for c in children(&e[extensions..], at + extensions as u64).unwrap_or_default() {
            let body = &e[extensions + c.payload.start..extensions + c.payload.end];
            if &c.kind == b"wave" {
                for w in children(body, at).unwrap_or_default() {
                    look(&w.kind, &body[w.payload.clone()]);
                }
            } else {
                look(&c.kind, body);
            }
        }
    }
    // LPCM (version 2) says it in its flags: 1 float, 2 big-endian.
    let mut float = false;
    if &kind == b"lpcm" {
        let f = flags.take().unwrap_or(0);
        float = f & 1 != 0;
        little_endian = f & 2 == 0;
    }
    Ok(Entry::Sound {
        fourcc: kind,
        channels,
        bits,
        rate,
        little_endian,
        float,
    })
}

fn timecode_entry(e: &[u8], at: u64) -> Result<Entry, ParseError> {
    let short = || malformed("a timecode sample description", at, "it is too short");
    let flags = be_u32(e, 20).ok_or_else(short)?;
    let frames_per_second = *e.get(32).ok_or_else(short)?;
    let mut reel = None;
    // The reel: a `name` item after the fields (as ffmpeg writes it), or in a `udta`.
    if e.len() > 34 {
        for c in children(&e[34..], at + 34).unwrap_or_default() {
            let body = &e[34 + c.payload.start..34 + c.payload.end];
            match &c.kind {
                b"name" => reel = quicktime_text(body),
                b"udta" => {
                    for u in children(body, at).unwrap_or_default() {
                        if &u.kind == b"name" {
                            reel = quicktime_text(&body[u.payload.clone()]);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Entry::Timecode {
        drop_frame: flags & 1 != 0,
        frames_per_second,
        reel,
    })
}

/// The channel count an `esds` box's AudioSpecificConfig gives (ISO 14496-1 and -3),
/// when it gives one (configuration 1 to 7).
fn aac_channels(esds: &[u8]) -> Option<u32> {
    // A descriptor: a tag, a size in up to four 7-bit groups, then its body.
    fn descriptor(b: &[u8], at: usize) -> Option<(u8, usize, usize)> {
        let tag = *b.get(at)?;
        let mut size = 0usize;
        let mut i = at + 1;
        for _ in 0..4 {
            let byte = *b.get(i)?;
            i += 1;
            size = size << 7 | usize::from(byte & 0x7F);
            if byte & 0x80 == 0 {
                break;
            }
        }
        Some((tag, i, size))
    }
    // Version and flags, then ES_Descriptor (3).
    let (tag, mut at, _) = descriptor(esds, 4)?;
    if tag != 3 {
        return None;
    }
    let flags = *esds.get(at + 2)?;
    at += 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*esds.get(at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    // DecoderConfigDescriptor (4): 13 bytes, then DecoderSpecificInfo (5).
    let (tag, body, _) = descriptor(esds, at)?;
    if tag != 4 {
        return None;
    }
    let (tag, config, size) = descriptor(esds, body + 13)?;
    if tag != 5 || size < 2 {
        return None;
    }
    // 5 bits of object type, 4 of rate index (and 24 of rate when it is 15), 4 of
    // channel configuration.
    let bits = u32::from(be_u16(esds, config)?);
    let rate_index = (bits >> 7) & 0xF;
    let channels = if rate_index == 15 {
        // The channels then sit in bits 33..37 of the first five bytes.
        let wide = u64::from(be_u32(esds, config)?) << 8 | u64::from(*esds.get(config + 4)?);
        ((wide >> 3) & 0xF) as u32
    } else {
        (bits >> 3) & 0xF
    };
    (1..=7)
        .contains(&channels)
        .then_some(if channels == 7 { 8 } else { channels })
}

/// A QuickTime user-data text: a 16-bit length, a language code, then the text.
fn quicktime_text(body: &[u8]) -> Option<String> {
    let n = usize::from(be_u16(body, 0)?);
    let text = body.get(4..4 + n).or_else(|| body.get(4..))?;
    let text = String::from_utf8_lossy(text)
        .trim_end_matches('\0')
        .trim()
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// `moov/udta`: QuickTime's `©mak`-style text items, and an ISO `meta` inside.
fn user_data(buf: &[u8], base: u64, camera: &mut Camera, depth: usize) -> Result<(), ParseError> {
    if depth > DEPTH {
        return Ok(());
    }
    for c in children(buf, base).unwrap_or_default() {
        let body = &buf[c.payload.clone()];
        match &c.kind {
            b"meta" => metadata(body, base + c.payload.start as u64, camera)?,
            kind => {
                if let Some(text) = quicktime_text(body) {
                    set_item(camera, &fourcc(kind), text);
                }
            }
        }
    }
    Ok(())
}

/// `meta`: Apple's `mdta` keys with their values in `ilst`, or iTunes-style `ilst`
/// items named by FourCC. ISO writes `meta` as a full box (4 bytes of version and
/// flags first), QuickTime does not: the `hdlr` that comes first tells which.
fn metadata(buf: &[u8], base: u64, camera: &mut Camera) -> Result<(), ParseError> {
    let skip = if buf.get(4..8) == Some(b"hdlr") { 0 } else { 4 };
    let Some(inner) = buf.get(skip..) else {
        return Ok(());
    };
    let items = children(inner, base + skip as u64).unwrap_or_default();
    let mut keys: Vec<String> = Vec::new();
    for c in &items {
        if &c.kind == b"keys" {
            let body = &inner[c.payload.clone()];
            let mut at = 8;
            let count = be_u32(body, 4).unwrap_or(0);
            for _ in 0..count.min(1024) {
                let Some(size) = be_u32(body, at).map(|s| s as usize) else {
                    break;
                };
                if size < 8 || at + size > body.len() {
                    break;
                }
                keys.push(String::from_utf8_lossy(&body[at + 8..at + size]).into_owned());
                at += size;
            }
        }
    }
    for c in &items {
        if &c.kind != b"ilst" {
            continue;
        }
        let ilst = &inner[c.payload.clone()];
        for item in children(ilst, base).unwrap_or_default() {
            let name = match u32::from_be_bytes(item.kind) {
                i @ 1..=1024 => keys.get(i as usize - 1).cloned().unwrap_or_default(),
                _ => fourcc(&item.kind),
            };
            let body = &ilst[item.payload.clone()];
            for d in children(body, base).unwrap_or_default() {
                if &d.kind == b"data" {
                    // Type and locale, then the value.
                    if let Some(value) = body.get(d.payload.start + 8..d.payload.end) {
                        let text = String::from_utf8_lossy(value).trim().to_string();
                        if !text.is_empty() {
                            set_item(camera, &name, text);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn set_item(camera: &mut Camera, name: &str, text: String) {
    let slot = match name {
        "©mak" | "com.apple.quicktime.make" | "make" => &mut camera.make,
        "©mod" | "com.apple.quicktime.model" | "model" => &mut camera.model,
        "com.apple.quicktime.camera.identifier" | "com.apple.proapps.serialno" | "serial" => {
            &mut camera.serial
        }
        "com.apple.quicktime.camera.lens_model" | "com.apple.proapps.lens" | "lens" => {
            &mut camera.lens
        }
        "©nam" | "com.apple.quicktime.title" | "com.apple.proapps.clipname" => {
            &mut camera.clip_name
        }
        _ => return,
    };
    if slot.is_none() {
        *slot = Some(text);
    }
}

/// ProRes profiles as ffprobe names them.
fn prores_profile(cc: &[u8; 4]) -> Option<String> {
    Some(
        match cc {
            b"apco" => "Proxy",
            b"apcs" => "LT",
            b"apcn" => "Standard",
            b"apch" => "HQ",
            b"ap4h" => "4444",
            b"ap4x" => "4444XQ",
            _ => return None,
        }
        .into(),
    )
}

fn video_codec(cc: &[u8; 4]) -> String {
    match cc {
        b"apco" => "prores_422_proxy",
        b"apcs" => "prores_422_lt",
        b"apcn" => "prores_422",
        b"apch" => "prores_422_hq",
        b"ap4h" => "prores_4444",
        b"ap4x" => "prores_4444_xq",
        b"AVdn" => "dnxhd",
        b"AVdh" => "dnxhr",
        b"avc1" | b"avc3" => "h264",
        b"hvc1" | b"hev1" => "hevc",
        b"mp4v" => "mpeg4",
        b"jpeg" | b"mjpa" => "mjpeg",
        _ => return fourcc(cc).trim().to_lowercase(),
    }
    .into()
}

/// The codec's name as ffprobe gives it, and for PCM its bits a sample (which the
/// FourCC fixes where it names the size: a version 0 entry says 16 for `in24`).
fn sound_codec(cc: &[u8; 4], bits: u32, little_endian: bool, float: bool) -> (String, Option<u16>) {
    let end = if little_endian { "le" } else { "be" };
    let pcm = |kind: &str, bits: u16| (format!("pcm_{kind}{bits}{end}"), Some(bits));
    let stated = u16::try_from(bits).unwrap_or(0);
    match cc {
        b"twos" if bits == 8 => ("pcm_s8".into(), Some(8)),
        b"twos" => pcm("s", 16),
        b"sowt" => ("pcm_s16le".into(), Some(16)),
        b"in24" => pcm("s", 24),
        b"in32" => pcm("s", 32),
        b"fl32" => pcm("f", 32),
        b"fl64" => pcm("f", 64),
        b"raw " => ("pcm_u8".into(), Some(8)),
        b"lpcm" if float => pcm("f", stated),
        b"lpcm" => pcm("s", stated),
        b"mp4a" => ("aac".into(), None),
        b"ac-3" => ("ac3".into(), None),
        b"ec-3" => ("eac3".into(), None),
        b"alac" => ("alac".into(), None),
        b"Opus" => ("opus".into(), None),
        _ => (fourcc(cc).trim().to_lowercase(), None),
    }
}

fn field_order((fields, detail): (u8, u8)) -> String {
    match (fields, detail) {
        // As ffmpeg reads `fiel` (QuickTime's own table names the fields differently).
        (2, 1) => "tt",
        (2, 6) => "tb",
        (2, 9) => "bt",
        (2, 14) => "bb",
        (2, _) => "interlaced",
        _ => "progressive",
    }
    .into()
}
