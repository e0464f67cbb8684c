//! WAV and Broadcast WAV (RIFF and RF64): the format, the `bext` chunk (EBU Tech 3285)
//! and a recorder's `iXML` (project, scene, take, tape, circled, track names, and the
//! timecode rate that turns `bext`'s sample count into a start timecode). Chunk headers
//! are walked; only `fmt `, `bext`, `ds64` and `iXML` are read, each within a limit.

use crate::record::{Audio, Bext, Ixml, MediaInfo, Rational};
use crate::source::{le_u16, le_u32, text, ParseError, Source};

/// Chunks looked at before giving up.
const CHUNKS: usize = 4096;
/// The most of a chunk read: `fmt ` is 40 bytes, `bext` 602 plus its coding history,
/// iXML a few KiB.
const FMT_LIMIT: u64 = 1024;
const BEXT_LIMIT: u64 = 256 << 10;
const IXML_LIMIT: u64 = 1 << 20;

pub fn looks_like(head: &[u8]) -> bool {
    head.len() >= 12 && matches!(&head[0..4], b"RIFF" | b"RF64") && &head[8..12] == b"WAVE"
}

fn malformed(what: &str, at: u64, why: impl Into<String>) -> ParseError {
    ParseError::Malformed {
        what: what.into(),
        at,
        why: why.into(),
    }
}

fn chunk(
    src: &Source<'_>,
    at: u64,
    size: u64,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, ParseError> {
    if size > limit {
        return Err(ParseError::TooBig {
            what: what.into(),
            claimed: size,
            limit,
        });
    }
    src.exact_at(at, size as usize, what)
}

/// Read the header of a WAV or Broadcast WAV file.
pub fn parse(src: &Source<'_>) -> Result<MediaInfo, ParseError> {
    let head = src.exact_at(0, 12, "the RIFF header")?;
    let rf64 = &head[0..4] == b"RF64";
    let mut info = MediaInfo {
        format: "wav".into(),
        ..Default::default()
    };
    let mut format: Option<(Audio, u32)> = None;
    let mut data_size: Option<u64> = None;
    let mut ds64_data: Option<u64> = None;
    let mut ixml_rate: Option<(Rational, bool)> = None;
    let mut at = 12u64;
    for _ in 0..CHUNKS {
        if at.saturating_add(8) > src.len() {
            break;
        }
        let h = src.exact_at(at, 8, "a chunk header")?;
        let id: [u8; 4] = h[0..4].try_into().unwrap_or_default();
        let size = u64::from(le_u32(&h, 4).unwrap_or(0));
        let body = at + 8;
        match &id {
            b"fmt " => {
                let b = chunk(src, body, size, FMT_LIMIT, "the fmt chunk")?;
                format = Some(fmt(&b, body)?);
            }
            b"ds64" => {
                let b = chunk(src, body, size, FMT_LIMIT, "the ds64 chunk")?;
                ds64_data = b
                    .get(8..16)
                    .map(|d| u64::from_le_bytes(d.try_into().unwrap_or_default()));
            }
            b"bext" => {
                let b = chunk(src, body, size, BEXT_LIMIT, "the bext chunk")?;
                info.bext = Some(bext(&b, body)?);
            }
            b"iXML" => {
                let b = chunk(src, body, size, IXML_LIMIT, "the iXML chunk")?;
                let (ixml, rate) = ixml(&b, body)?;
                info.ixml = Some(ixml);
                ixml_rate = rate;
            }
            b"data" => {
                // RF64 puts 0xFFFFFFFF here and the real size in ds64.
                data_size = Some(match (rf64, size) {
                    (true, 0xFFFF_FFFF) => ds64_data.unwrap_or(0),
                    _ => size,
                });
                let real = data_size.unwrap_or(size);
                at = body.saturating_add(real).saturating_add(real & 1);
                continue;
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        at = body.saturating_add(size + (size & 1));
    }
    let Some((audio, byte_rate)) = format else {
        return Err(malformed(
            "the file",
            0,
            "it has no fmt chunk before its end",
        ));
    };
    if let (Some(size), true) = (data_size, byte_rate > 0) {
        info.duration_s = Some(size as f64 / f64::from(byte_rate));
    }
    // bext counts samples since midnight; iXML says at what frame rate to read them.
    if let (Some(b), Some((rate, drop))) = (&info.bext, ixml_rate) {
        if audio.sample_rate > 0 && rate.num > 0 {
            let frames = (u128::from(b.time_reference) * u128::from(rate.num)
                / (u128::from(audio.sample_rate) * u128::from(rate.den)))
                as u64;
            let fps = (rate.value().round() as u32).max(1);
            info.timecode = Some(crate::timecode::from_frame(frames, fps, drop));
        }
    }
    info.reel = info.ixml.as_ref().and_then(|x| x.tape.clone());
    info.audio.push(audio);
    Ok(info)
}

/// The audio format and the bytes a second.
fn fmt(b: &[u8], at: u64) -> Result<(Audio, u32), ParseError> {
    let short = || malformed("the fmt chunk", at, "it is shorter than 16 bytes");
    let mut tag = le_u16(b, 0).ok_or_else(short)?;
    let channels = le_u16(b, 2).ok_or_else(short)?;
    let sample_rate = le_u32(b, 4).ok_or_else(short)?;
    let byte_rate = le_u32(b, 8).ok_or_else(short)?;
    let bits = le_u16(b, 14).ok_or_else(short)?;
    if tag == 0xFFFE {
        // WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID.
        tag = le_u16(b, 24).unwrap_or(tag);
    }
    let (codec, pcm) = match (tag, bits) {
        (1, 8) => ("pcm_u8".to_string(), true),
        (1, _) => (format!("pcm_s{bits}le"), true),
        (3, _) => (format!("pcm_f{bits}le"), true),
        (6, _) => ("pcm_alaw".into(), false),
        (7, _) => ("pcm_mulaw".into(), false),
        (0x55, _) => ("mp3".into(), false),
        (t, _) => (format!("wav_0x{t:04x}"), false),
    };
    Ok((
        Audio {
            codec,
            sample_rate,
            channels,
            bits: pcm.then_some(bits),
        },
        byte_rate,
    ))
}

fn bext(b: &[u8], at: u64) -> Result<Bext, ParseError> {
    if b.len() < 346 {
        return Err(malformed(
            "the bext chunk",
            at,
            format!("it has {} bytes; its fixed part takes 346", b.len()),
        ));
    }
    let low = u64::from(le_u32(b, 338).unwrap_or(0));
    let high = u64::from(le_u32(b, 342).unwrap_or(0));
    Ok(Bext {
        description: text(&b[0..256]),
        originator: text(&b[256..288]),
        originator_reference: text(&b[288..320]),
        origination_date: text(&b[320..330]),
        origination_time: text(&b[330..338]),
        time_reference: high << 32 | low,
    })
}

/// The iXML fields, and the timecode rate and drop-frame flag it gives.
fn ixml(b: &[u8], at: u64) -> Result<(Ixml, Option<(Rational, bool)>), ParseError> {
    use quick_xml::events::Event;
    let text_of = String::from_utf8_lossy(b);
    let mut reader = quick_xml::Reader::from_str(text_of.trim_end_matches('\0'));
    let mut path: Vec<String> = Vec::new();
    let mut out = Ixml::default();
    let (mut rate, mut flag) = (None, None);
    loop {
        let event = reader.read_event().map_err(|e| {
            malformed(
                "the iXML chunk",
                at + reader.buffer_position(),
                format!("it is not well-formed XML: {e}"),
            )
        })?;
        match event {
            Event::Start(e) => {
                if path.len() > 64 {
                    return Err(malformed(
                        "the iXML chunk",
                        at,
                        "its elements nest too deep",
                    ));
                }
                path.push(String::from_utf8_lossy(e.name().as_ref()).to_uppercase());
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let value = t
                    .unescape()
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default();
                if !value.is_empty() {
                    put(&path, value, &mut out, &mut rate, &mut flag);
                }
            }
            Event::CData(c) => {
                let value = String::from_utf8_lossy(&c.into_inner()).trim().to_string();
                if !value.is_empty() {
                    put(&path, value, &mut out, &mut rate, &mut flag);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let rate = rate.map(|r| (r, flag.unwrap_or(false)));
    Ok((out, rate))
}

fn put(
    path: &[String],
    value: String,
    out: &mut Ixml,
    rate: &mut Option<Rational>,
    flag: &mut Option<bool>,
) {
    let at: Vec<&str> = path.iter().map(String::as_str).collect();
    match at.as_slice() {
        [.., "BWFXML", "PROJECT"] => out.project = Some(value),
        [.., "BWFXML", "SCENE"] => out.scene = Some(value),
        [.., "BWFXML", "TAKE"] => out.take = Some(value),
        [.., "BWFXML", "TAPE"] => out.tape = Some(value),
        [.., "BWFXML", "CIRCLED"] => out.circled = Some(value.eq_ignore_ascii_case("true")),
        [.., "TRACK_LIST", "TRACK", "NAME"] if out.track_names.len() < 256 => {
            out.track_names.push(value)
        }
        [.., "SPEED", "TIMECODE_RATE"] => {
            let mut parts = value.split('/');
            let num = parts.next().and_then(|n| n.trim().parse().ok());
            let den = parts.next().map_or(Some(1), |d| d.trim().parse().ok());
            if let (Some(n), Some(d)) = (num, den) {
                *rate = Rational::new(n, d);
            }
        }
        [.., "SPEED", "TIMECODE_FLAG"] => *flag = Some(value.eq_ignore_ascii_case("DF")),
        _ => {}
    }
}
