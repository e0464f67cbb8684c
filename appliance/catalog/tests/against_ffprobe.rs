//! Media made by Debian's ffmpeg in each test, read by our parsers, and every field
//! compared with what ffprobe says of the same file. Cut and damaged copies of the same
//! files give an error, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use rushes_catalog::{probe, MediaInfo, ParseError, Source};
use serde_json::Value;

fn ffmpeg(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs (make deps installs Debian's ffmpeg)");
    assert!(status.success(), "ffmpeg {args:?} failed");
    out
}

fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (make deps installs Debian's ffmpeg)");
    assert!(out.status.success(), "ffprobe {}", path.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ours(path: &Path) -> Result<MediaInfo, ParseError> {
    let file = std::fs::File::open(path).unwrap();
    let src = Source::file(&file).unwrap();
    let info = probe(&src).map(|i| i.expect("a format we know"));
    // Headers only: a few KiB of a file of megabytes.
    assert!(
        src.spent() < 64 << 10,
        "read {} bytes of {}",
        src.spent(),
        src.len()
    );
    info
}

fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind || s["codec_tag_string"] == kind)
        .unwrap_or_else(|| panic!("ffprobe found no {kind} stream: {probe:#}"))
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .map(|s| s.parse().unwrap())
        .or_else(|| v.as_f64())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every video field against ffprobe's video stream.
fn same_video(info: &MediaInfo, p: &Value) {
    let v = info.video.as_ref().expect("a video track");
    let s = stream(p, "video");
    assert_eq!(v.fourcc, s["codec_tag_string"].as_str().unwrap());
    assert_eq!(u64::from(v.width), s["width"].as_u64().unwrap());
    assert_eq!(u64::from(v.height), s["height"].as_u64().unwrap());
    assert_eq!(
        v.frame_rate.unwrap().to_string(),
        s["r_frame_rate"].as_str().unwrap()
    );
    let sar = v
        .pixel_aspect
        .map_or("1:1".into(), |r| format!("{}:{}", r.num, r.den));
    assert_eq!(sar, s["sample_aspect_ratio"].as_str().unwrap_or("1:1"));
    assert_eq!(
        v.field_order.as_deref().unwrap_or("progressive"),
        s["field_order"].as_str().unwrap_or("progressive")
    );
    assert_eq!(
        v.frames,
        s["nb_frames"].as_str().map(|n| n.parse().unwrap())
    );
    let duration = num(&p["format"]["duration"]);
    assert!(
        (info.duration_s.unwrap() - duration).abs() < 0.002,
        "{:?} against {duration}",
        info.duration_s
    );
}

#[test]
fn prores_422_hq_in_mov_with_timecode_reel_camera_and_pcm_audio() {
    let dir = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let args = [
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=24000/1001",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000",
            "-t", "2", "-map", "0", "-map", "1", "-map", "2",
            "-c:v", "prores_ks", "-profile:v", "3", "-c:a", "pcm_s24le",
            "-timecode", "10:14:00:00", "-metadata:s:v:0", "reel_name=A003",
            "-metadata", "make=ARRI", "-metadata", "model=ALEXA 35",
            "-metadata", "title=A003C012",
    ];
    let file = ffmpeg(dir.path(), "A003C012.mov", &args);
    let info = ours(&file).unwrap();
    let p = ffprobe(&file);
    assert_eq!(info.format, "quicktime");
    same_video(&info, &p);
    let v = info.video.as_ref().unwrap();
    assert_eq!(
        (v.codec.as_str(), v.fourcc.as_str()),
        ("prores_422_hq", "apch")
    );
    assert_eq!(
        v.profile.as_deref(),
        stream(&p, "video")["profile"].as_str()
    );
    assert_eq!(v.profile.as_deref(), Some("HQ"));
    // Exact, not 23.976.
    assert_eq!(v.frame_rate.unwrap().to_string(), "24000/1001");

    let tc = info.timecode.as_ref().unwrap();
    let tmcd = stream(&p, "tmcd");
    assert_eq!(tc.start, tmcd["tags"]["timecode"].as_str().unwrap());
    assert_eq!(tc.start, "10:14:00:00");
    assert!(!tc.drop_frame);
    assert_eq!(info.reel.as_deref(), tmcd["tags"]["reel_name"].as_str());

    let audio: Vec<&Value> = p["streams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["codec_type"] == "audio")
        .collect();
    assert_eq!(info.audio.len(), audio.len());
    for (a, s) in info.audio.iter().zip(audio) {
        assert_eq!(a.codec, s["codec_name"].as_str().unwrap());
        assert_eq!(u64::from(a.sample_rate), num(&s["sample_rate"]) as u64);
        assert_eq!(u64::from(a.channels), s["channels"].as_u64().unwrap());
        assert_eq!(a.bits.map(u64::from), s["bits_per_sample"].as_u64());
    }
    let tags = &p["format"]["tags"];
    assert_eq!(info.camera.make.as_deref(), tags["make"].as_str());
    assert_eq!(info.camera.model.as_deref(), tags["model"].as_str());
    assert_eq!(info.camera.clip_name.as_deref(), tags["title"].as_str());
}

#[test]
fn prores_4444_interlaced_anamorphic_with_drop_frame_timecode() {
    let dir = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let args = [
            "-f", "lavfi", "-i", "testsrc2=size=720x480:rate=30000/1001",
            "-t", "1", "-vf", "setsar=10/11",
            "-c:v", "prores_ks", "-profile:v", "4",
            "-flags", "+ildct+ilme", "-field_order", "tt",
            "-timecode", "01:00:00;00",
    ];
    let file = ffmpeg(dir.path(), "interlaced.mov", &args);
    let info = ours(&file).unwrap();
    let p = ffprobe(&file);
    same_video(&info, &p);
    let v = info.video.as_ref().unwrap();
    assert_eq!(v.codec, "prores_4444");
    assert_eq!(v.field_order.as_deref(), Some("tt"));
    assert_eq!(v.pixel_aspect.unwrap().to_string(), "10/11");
    let tc = info.timecode.as_ref().unwrap();
    assert_eq!(
        tc.start,
        stream(&p, "tmcd")["tags"]["timecode"].as_str().unwrap()
    );
    assert_eq!(
        (tc.start.as_str(), tc.drop_frame, tc.fps),
        ("01:00:00;00", true, 30)
    );
}

#[test]
fn camera_fields_from_apple_metadata_keys() {
    let dir = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let args = [
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "0.2",
        "-c:v", "prores_ks", "-movflags", "use_metadata_tags",
        "-metadata", "com.apple.quicktime.make=Sony",
        "-metadata", "com.apple.quicktime.model=FX6",
        "-metadata", "com.apple.quicktime.camera.lens_model=FE 24-70mm F2.8 GM",
        "-metadata", "com.apple.quicktime.camera.identifier=5012345",
    ];
    let file = ffmpeg(dir.path(), "C0001.mov", &args);
    let info = ours(&file).unwrap();
    let tags = &ffprobe(&file)["format"]["tags"];
    let key = |k: &str| tags[format!("com.apple.quicktime.{k}")].as_str();
    assert_eq!(info.camera.make.as_deref(), key("make"));
    assert_eq!(info.camera.model.as_deref(), key("model"));
    assert_eq!(info.camera.lens.as_deref(), key("camera.lens_model"));
    assert_eq!(info.camera.serial.as_deref(), key("camera.identifier"));
    assert!(info.camera.lens.is_some());
}

#[test]
fn h264_in_mp4_with_its_header_first_and_aac() {
    let dir = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let args = [
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-f", "lavfi", "-i", "sine=sample_rate=44100",
            "-t", "2", "-c:v", "libx264", "-c:a", "aac", "-movflags", "+faststart",
    ];
    let file = ffmpeg(dir.path(), "proxy.mp4", &args);
    let info = ours(&file).unwrap();
    let p = ffprobe(&file);
    assert_eq!(info.format, "mp4");
    same_video(&info, &p);
    assert_eq!(info.video.as_ref().unwrap().codec, "h264");
    let a = &info.audio[0];
    let s = stream(&p, "audio");
    assert_eq!(a.codec, s["codec_name"].as_str().unwrap());
    assert_eq!(u64::from(a.sample_rate), num(&s["sample_rate"]) as u64);
    assert_eq!(u64::from(a.channels), s["channels"].as_u64().unwrap());
    assert_eq!(a.bits, None);
    assert!(info.timecode.is_none());
}

#[test]
fn dnxhr_in_mxf_op1a_with_timecode_and_pcm() {
    let dir = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let args = [
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=24000/1001",
        "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "1",
        "-c:v", "dnxhd", "-profile:v", "dnxhr_hq", "-pix_fmt", "yuv422p",
        "-c:a", "pcm_s24le", "-timecode", "10:14:00:00",
    ];
    let file = ffmpeg(dir.path(), "A003C012.mxf", &args);
    let info = ours(&file).unwrap();
    let p = ffprobe(&file);
    let tags = &p["format"]["tags"];
    assert_eq!(info.format, "mxf");
    assert_eq!(info.operational_pattern.as_deref(), Some("op1a"));
    assert_eq!(
        tags["operational_pattern_ul"],
        "060e2b34.04010101.0d010201.01010900"
    );
    let v = info.video.as_ref().unwrap();
    let s = stream(&p, "video");
    assert_eq!(v.codec, "dnxhr");
    assert_eq!(v.profile.as_deref(), s["profile"].as_str());
    assert_eq!(u64::from(v.width), s["width"].as_u64().unwrap());
    assert_eq!(u64::from(v.height), s["height"].as_u64().unwrap());
    assert_eq!(
        v.frame_rate.unwrap().to_string(),
        s["r_frame_rate"].as_str().unwrap()
    );
    let sar = v
        .pixel_aspect
        .map_or("1:1".into(), |r| format!("{}:{}", r.num, r.den));
    assert_eq!(sar, s["sample_aspect_ratio"].as_str().unwrap());
    assert_eq!(v.field_order.as_deref(), s["field_order"].as_str());
    assert_eq!(
        info.timecode.as_ref().unwrap().start,
        tags["timecode"].as_str().unwrap()
    );
    let umid = tags["material_package_umid"]
        .as_str()
        .unwrap()
        .trim_start_matches("0x");
    assert_eq!(info.package.as_deref(), Some(umid));
    let duration = num(&p["format"]["duration"]);
    assert!(
        (info.duration_s.unwrap() - duration).abs() < 0.002,
        "{:?}",
        info.duration_s
    );
    let a = &info.audio[0];
    let s = stream(&p, "audio");
    assert_eq!(a.codec, s["codec_name"].as_str().unwrap());
    assert_eq!(u64::from(a.sample_rate), num(&s["sample_rate"]) as u64);
    assert_eq!(u64::from(a.channels), s["channels"].as_u64().unwrap());
    assert_eq!(a.bits.map(u64::from), s["bits_per_sample"].as_u64());
}

#[test]
fn op_atom_files_of_one_clip_share_their_material_package() {
    let dir = tempfile::tempdir().unwrap();
    // bitexact: both files get the same material package, as an Avid clip's files do.
    #[rustfmt::skip]
    let picture = [
        "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", "0.5",
        "-c:v", "dnxhd", "-profile:v", "dnxhr_lb", "-pix_fmt", "yuv422p",
        "-fflags", "+bitexact", "-timecode", "01:00:00:00", "-f", "mxf_opatom",
    ];
    #[rustfmt::skip]
    let sound = [
        "-f", "lavfi", "-i", "sine=sample_rate=48000", "-t", "0.5", "-c:a", "pcm_s24le",
        "-fflags", "+bitexact", "-timecode", "01:00:00:00", "-f", "mxf_opatom",
    ];
    let v = ffmpeg(dir.path(), "A001C001_V01.mxf", &picture);
    let a = ffmpeg(dir.path(), "A001C001_A01.mxf", &sound);
    let (vi, ai) = (ours(&v).unwrap(), ours(&a).unwrap());
    for (info, file) in [(&vi, &v), (&ai, &a)] {
        let tags = &ffprobe(file)["format"]["tags"];
        assert_eq!(info.operational_pattern.as_deref(), Some("op-atom"));
        let umid = tags["material_package_umid"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x");
        assert_eq!(info.package.as_deref(), Some(umid));
        assert_eq!(
            info.timecode.as_ref().unwrap().start,
            tags["timecode"].as_str().unwrap()
        );
    }
    assert_eq!(vi.package, ai.package);
    let video = vi.video.as_ref().unwrap();
    assert_eq!(
        (video.codec.as_str(), video.profile.as_deref()),
        ("dnxhr", Some("DNXHR LB"))
    );
    assert!(vi.audio.is_empty() && ai.video.is_none());
    assert_eq!(ai.audio[0].codec, "pcm_s24le");
}

/// An iXML chunk as a recorder writes one.
fn ixml_chunk() -> Vec<u8> {
    let xml =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<BWFXML><IXML_VERSION>2.10</IXML_VERSION>\
        <PROJECT>Night &amp; Day</PROJECT><SCENE>12</SCENE><TAKE>3</TAKE><TAPE>A003</TAPE>\
        <CIRCLED>TRUE</CIRCLED><SPEED><TIMECODE_RATE>24000/1001</TIMECODE_RATE>\
        <TIMECODE_FLAG>NDF</TIMECODE_FLAG></SPEED><TRACK_LIST><TRACK_COUNT>2</TRACK_COUNT>\
        <TRACK><CHANNEL_INDEX>1</CHANNEL_INDEX><NAME>Boom</NAME></TRACK>\
        <TRACK><CHANNEL_INDEX>2</CHANNEL_INDEX><NAME><![CDATA[Lav <Anna>]]></NAME></TRACK>\
        </TRACK_LIST></BWFXML>";
    let mut chunk = b"iXML".to_vec();
    chunk.extend_from_slice(&(xml.len() as u32).to_le_bytes());
    chunk.extend_from_slice(xml.as_bytes());
    if xml.len() % 2 == 1 {
        chunk.push(0);
    }
    chunk
}

#[test]
fn broadcast_wav_with_bext_and_ixml() {
    let dir = tempfile::tempdir().unwrap();
    // 10:14:00:00 at 23.976 is frame 884,160; the recorder counts samples since
    // midnight at 48 kHz: frames * 1001/24000 * 48000.
    let samples = 884_160u64 * 1001 * 2;
    #[rustfmt::skip]
    let args = [
            "-f", "lavfi", "-i", "sine=sample_rate=48000",
            "-f", "lavfi", "-i", "sine=sample_rate=48000:frequency=600",
            "-t", "1", "-filter_complex", "[0][1]amerge=inputs=2",
            "-c:a", "pcm_s24le", "-write_bext", "1",
            "-metadata", "description=sc12 tk3",
            "-metadata", "originator=Sound Devices",
            "-metadata", "originator_reference=USSDVA003",
            "-metadata", "origination_date=2026-12-05",
            "-metadata", "origination_time=10:14:00",
            "-metadata", &format!("time_reference={samples}"),
    ];
    let file = ffmpeg(dir.path(), "sound.wav", &args);
    // ffmpeg writes no iXML: add the recorder's, as the RIFF size says.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(&ixml_chunk());
    let riff = (bytes.len() - 8) as u32;
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    std::fs::write(&file, &bytes).unwrap();

    let info = ours(&file).unwrap();
    let p = ffprobe(&file);
    assert_eq!(info.format, "wav");
    let a = &info.audio[0];
    let s = stream(&p, "audio");
    assert_eq!(a.codec, s["codec_name"].as_str().unwrap());
    assert_eq!(u64::from(a.channels), s["channels"].as_u64().unwrap());
    assert_eq!(a.bits.map(u64::from), s["bits_per_sample"].as_u64());
    assert!((info.duration_s.unwrap() - num(&p["format"]["duration"])).abs() < 0.001);
    let b = info.bext.as_ref().unwrap();
    let tags = &p["format"]["tags"];
    // ffprobe gives bext's fields under its generic tag names.
    assert_eq!(b.description, tags["comment"].as_str().unwrap());
    assert_eq!(b.originator, tags["encoded_by"].as_str().unwrap());
    assert_eq!(
        b.originator_reference,
        tags["originator_reference"].as_str().unwrap()
    );
    assert_eq!(b.origination_date, tags["date"].as_str().unwrap());
    assert_eq!(b.origination_time, tags["creation_time"].as_str().unwrap());
    assert_eq!(
        b.time_reference.to_string(),
        tags["time_reference"].as_str().unwrap()
    );
    let x = info.ixml.as_ref().unwrap();
    assert_eq!(x.project.as_deref(), Some("Night & Day"));
    assert_eq!(
        (x.scene.as_deref(), x.take.as_deref()),
        (Some("12"), Some("3"))
    );
    assert_eq!(x.circled, Some(true));
    assert_eq!(x.track_names, ["Boom", "Lav <Anna>"]);
    assert_eq!(info.reel.as_deref(), Some("A003"));
    // bext's sample count read at the iXML's rate.
    assert_eq!(info.timecode.as_ref().unwrap().start, "10:14:00:00");
}

#[test]
fn cut_and_damaged_files_give_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let args = [
            "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "1",
            "-c:v", "prores_ks", "-timecode", "00:00:10:00",
    ];
    let mov = ffmpeg(dir.path(), "clip.mov", &args);
    let bytes = std::fs::read(&mov).unwrap();
    // Cut before its moov (ffmpeg writes it last): said plainly.
    let cut = dir.path().join("cut.mov");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = ours(&cut).unwrap_err().to_string();
    assert!(
        e.contains("no moov box") || e.contains("past the end"),
        "{e}"
    );
    // A moov that claims 3 GiB.
    let at = bytes.windows(4).rposition(|w| w == b"moov").unwrap() - 4;
    let mut huge = bytes.clone();
    huge[at..at + 4].copy_from_slice(&0xC000_0000u32.to_be_bytes());
    let e = probe(&Source::memory(&huge)).unwrap_err().to_string();
    assert!(e.contains("claims") || e.contains("past the end"), "{e}");
    // Every single byte of the moov set to 0xFF in turn: no panic, bounded reads.
    for i in at..bytes.len() {
        let mut broken = bytes.clone();
        broken[i] = 0xFF;
        let src = Source::memory(&broken);
        let _ = probe(&src);
        assert!(src.spent() <= rushes_catalog::source::READ_BUDGET);
    }
}

#[test]
fn cut_and_damaged_frames_and_stills_give_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let lavfi = ["-f", "lavfi", "-i", "testsrc2=size=64x36", "-frames:v", "1"];
    let dpx = ffmpeg(
        dir.path(),
        "f.dpx",
        &[&lavfi[..], &["-pix_fmt", "gbrp10le"]].concat(),
    );
    let exr = ffmpeg(
        dir.path(),
        "f.exr",
        &[&lavfi[..], &["-c:v", "exr", "-pix_fmt", "gbrpf32le"]].concat(),
    );
    let jpg = ffmpeg(dir.path(), "f.jpg", &lavfi);
    for (file, header) in [(dpx, 1664), (exr, 300), (jpg, 700)] {
        let bytes = std::fs::read(&file).unwrap();
        // Cut inside its header: an error that says so.
        let cut = Source::memory(&bytes[..header / 3]);
        let e = probe(&cut).unwrap_err().to_string();
        assert!(
            e.contains("past the end") || e.contains("malformed") || e.contains("truncated"),
            "{}: {e}",
            file.display()
        );
        // Every byte of the header damaged in turn.
        for i in 0..header.min(bytes.len()) {
            for v in [0x00, 0xFF] {
                let mut broken = bytes.clone();
                broken[i] = v;
                let src = Source::memory(&broken);
                let _ = probe(&src);
                assert!(src.spent() <= 1 << 20);
            }
        }
    }
}

/// A frame's or a still's picture against ffprobe's video stream: codec, size, bits.
fn same_picture(v: &rushes_catalog::Video, s: &Value) {
    assert_eq!(v.codec, s["codec_name"].as_str().unwrap());
    assert_eq!(u64::from(v.width), s["width"].as_u64().unwrap());
    assert_eq!(u64::from(v.height), s["height"].as_u64().unwrap());
    assert_eq!(v.bits, Some(num(&s["bits_per_raw_sample"]) as u16));
}

/// ffprobe's tags of a file's first decoded frame (where it puts a still's EXIF and an
/// image's timecode).
fn ffprobe_frame_tags(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_frames", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {}", path.display());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["frames"][0]["tags"].clone()
}

/// ffmpeg writes DPX with only the file and image headers (1,664 bytes): give `path` the
/// film and television headers a camera or scanner writes, with `timecode` (BCD), a
/// frame rate of `fps` and the input device named.
fn full_dpx_header(path: &Path, timecode: u32, fps: f32, device: &str) {
    let mut b = std::fs::read(path).unwrap();
    let big = &b[0..4] == b"SDPX";
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let data_at = u32::from_le_bytes(b[4..8].try_into().unwrap());
    let data_at = if big { data_at.swap_bytes() } else { data_at } as usize;
    let pixels = b.split_off(data_at);
    b.resize(2048, 0xff);
    b.extend(pixels);
    let len = b.len() as u32;
    b[4..8].copy_from_slice(&u32b(2048));
    b[808..812].copy_from_slice(&u32b(2048));
    b[16..20].copy_from_slice(&u32b(len));
    let mut name = [0u8; 32];
    name[..device.len()].copy_from_slice(device.as_bytes());
    b[1556..1588].copy_from_slice(&name);
    b[1920..1924].copy_from_slice(&u32b(timecode));
    b[1940..1944].copy_from_slice(&u32b(fps.to_bits()));
    b[1724..1728].copy_from_slice(&u32b(fps.to_bits()));
    std::fs::write(path, b).unwrap();
}

#[test]
fn dpx_sequence_with_a_gap_grouped_into_one_clip_with_timecode() {
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("day1");
    std::fs::create_dir(&shot).unwrap();
    #[rustfmt::skip]
    let args = [
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24",
        "-frames:v", "8", "-pix_fmt", "gbrp10le", "-start_number", "86400",
    ];
    ffmpeg(&shot, "A003C012.%07d.dpx", &args);
    // Frames 86402 and 86403 lost, and 86406.
    for n in [86402, 86403, 86406] {
        std::fs::remove_file(shot.join(format!("A003C012.{n:07}.dpx"))).unwrap();
    }
    let first = shot.join("A003C012.0086400.dpx");
    full_dpx_header(&first, 0x1014_0000, 24.0, "ALEXA Mini LF");
    let info = ours(&first).unwrap();
    let p = ffprobe(&first);
    let s = stream(&p, "video");
    let tags = ffprobe_frame_tags(&first);
    let v = info.video.as_ref().unwrap();
    assert_eq!(info.format, "dpx");
    same_picture(v, s);
    let tc = info.timecode.as_ref().unwrap();
    assert_eq!(tc.start, tags["timecode"].as_str().unwrap());
    assert_eq!(tc.start, "10:14:00:00");
    assert_eq!(info.camera.model.as_deref(), tags["Input Device"].as_str());
    // ffprobe reads DPX as a still at 25 fps; the rate is the header's.
    assert_eq!(v.frame_rate.unwrap().to_string(), "24/1");

    // The frames as one clip.
    let key = rushes_catalog::extract::record_path("day1/A003C012.0086405.dpx");
    assert_eq!(key, "day1/A003C012.#######.dpx");
    let clip = rushes_catalog::extract::read(dir.path(), "rushes", &key).unwrap();
    let m = clip.media.as_ref().unwrap_or_else(|| panic!("{clip:?}"));
    let seq = m.sequence.as_ref().unwrap();
    assert_eq!((seq.first, seq.last, seq.frames), (86400, 86407, 5));
    assert_eq!(seq.gap_count, 2);
    assert_eq!(
        seq.gaps.iter().map(|g| (g.from, g.to)).collect::<Vec<_>>(),
        vec![(86402, 86403), (86406, 86406)]
    );
    assert_eq!(clip.display_name(), "A003C012.[0086400-0086407].dpx");
    assert_eq!(m.video.as_ref().unwrap().frames, Some(8));
    assert!((m.duration_s.unwrap() - 8.0 / 24.0).abs() < 1e-9);
    assert_eq!(m.timecode.as_ref().unwrap().start, "10:14:00:00");
    let bytes: u64 = std::fs::read_dir(&shot)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(clip.size, bytes);

    // Big-endian (SDPX) 16-bit frames read the same way.
    let be = ffmpeg(
        dir.path(),
        "be.dpx",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x36",
            "-frames:v",
            "1",
            "-pix_fmt",
            "rgb48be",
        ],
    );
    let s = stream(&ffprobe(&be), "video").clone();
    let v = ours(&be).unwrap().video.unwrap();
    assert_eq!((v.width, v.height), (64, 36));
    assert_eq!(v.bits, Some(num(&s["bits_per_raw_sample"]) as u16));
}

/// exrheader's lines of an OpenEXR file (Debian's openexr: OpenEXR's own reader).
fn exrheader(path: &Path) -> String {
    let out = Command::new("exrheader")
        .arg(path)
        .output()
        .expect("exrheader runs (make deps installs Debian's openexr)");
    assert!(out.status.success(), "exrheader {}", path.display());
    String::from_utf8(out.stdout).unwrap()
}

/// Add attributes (name, type, value) to an OpenEXR file's header, moving its line
/// offsets along (a scan-line file with one line a chunk, as ffmpeg writes without
/// compression).
fn add_exr_attributes(path: &Path, attributes: &[(&str, &str, Vec<u8>)]) {
    let b = std::fs::read(path).unwrap();
    let mut at = 8;
    let mut height = 0;
    while b[at] != 0 {
        let name_end = at + b[at..].iter().position(|&c| c == 0).unwrap();
        let kind_end = name_end + 1 + b[name_end + 1..].iter().position(|&c| c == 0).unwrap();
        let size = u32::from_le_bytes(b[kind_end + 1..kind_end + 5].try_into().unwrap()) as usize;
        if &b[at..name_end] == b"dataWindow" {
            let v = &b[kind_end + 5..];
            let y0 = i32::from_le_bytes(v[4..8].try_into().unwrap());
            let y1 = i32::from_le_bytes(v[12..16].try_into().unwrap());
            height = (y1 - y0 + 1) as usize;
        }
        at = kind_end + 5 + size;
    }
    let mut added = Vec::new();
    for (name, kind, value) in attributes {
        added.extend_from_slice(name.as_bytes());
        added.push(0);
        added.extend_from_slice(kind.as_bytes());
        added.push(0);
        added.extend_from_slice(&(value.len() as u32).to_le_bytes());
        added.extend_from_slice(value);
    }
    let mut out = b[..at].to_vec();
    out.extend_from_slice(&added);
    out.push(0);
    for i in 0..height {
        let o = at + 1 + i * 8;
        let offset = u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        out.extend_from_slice(&(offset + added.len() as u64).to_le_bytes());
    }
    out.extend_from_slice(&b[at + 1 + height * 8..]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn exr_frames_against_openexrs_own_reader() {
    let dir = tempfile::tempdir().unwrap();
    #[rustfmt::skip]
    let args = [
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24",
        "-frames:v", "3", "-c:v", "exr", "-format", "half", "-pix_fmt", "gbrpf32le",
        "-start_number", "1001",
    ];
    ffmpeg(dir.path(), "shot010.%04d.exr", &args);
    let first = dir.path().join("shot010.1001.exr");
    add_exr_attributes(
        &first,
        &[
            // 10:20:30;12, drop-frame.
            (
                "timeCode",
                "timecode",
                [0x1020_3052u32.to_le_bytes(), [0; 4]].concat(),
            ),
            ("reelName", "string", b"A003".to_vec()),
            ("cameraMake", "string", b"ARRI".to_vec()),
        ],
    );
    let header = exrheader(&first);
    let info = ours(&first).unwrap();
    let v = info.video.as_ref().unwrap();
    let p = ffprobe(&first);
    let s = stream(&p, "video");
    assert_eq!(info.format, "exr");
    assert_eq!(u64::from(v.width), s["width"].as_u64().unwrap());
    assert_eq!(u64::from(v.height), s["height"].as_u64().unwrap());
    assert!(
        header.contains(&format!(
            "displayWindow (type box2i): (0 0) - ({} {})",
            v.width - 1,
            v.height - 1
        )),
        "{header}"
    );
    assert!(header.contains("16-bit floating-point"), "{header}");
    assert_eq!(v.bits, Some(16));
    assert!(
        header.contains(&format!(
            "compression (type compression): {}",
            v.profile.as_deref().unwrap()
        )),
        "{header}"
    );
    let rate = v.frame_rate.unwrap();
    assert!(
        header.contains(&format!(
            "framesPerSecond (type rational): {}/{}",
            rate.num, rate.den
        )),
        "{header}"
    );
    let tc = info.timecode.as_ref().unwrap();
    assert_eq!(tc.start, "10:20:30;12");
    assert!(header.contains("time 10:20:30:12"), "{header}");
    assert!(header.contains("drop frame 1"), "{header}");
    assert!(
        header.contains("reelName (type string): \"A003\""),
        "{header}"
    );
    assert_eq!(info.reel.as_deref(), Some("A003"));
    assert!(
        header.contains("cameraMake (type string): \"ARRI\""),
        "{header}"
    );
    assert_eq!(info.camera.make.as_deref(), Some("ARRI"));

    let clip = rushes_catalog::extract::read(dir.path(), "vfx", "shot010.####.exr").unwrap();
    let seq = clip.media.as_ref().unwrap().sequence.clone().unwrap();
    assert_eq!(
        (seq.first, seq.last, seq.frames, seq.gap_count),
        (1001, 1003, 3, 0)
    );
    assert_eq!(clip.display_name(), "shot010.[1001-1003].exr");
}

/// An EXIF APP1 segment (little-endian TIFF) with a camera, a date, a lens, a serial and
/// a GPS position, as a camera writes one.
fn exif_segment() -> Vec<u8> {
    /// An entry's type, count and value bytes.
    type Value = (u16, u32, Vec<u8>);
    fn ascii(s: &str) -> Value {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        (2, v.len() as u32, v)
    }
    fn rationals(v: &[(u32, u32)]) -> Value {
        let bytes = v
            .iter()
            .flat_map(|(n, d)| [n.to_le_bytes(), d.to_le_bytes()].concat())
            .collect();
        (5, v.len() as u32, bytes)
    }
    fn long(v: u32) -> Value {
        (4, 1, v.to_le_bytes().to_vec())
    }
    // A directory at `at`: its entries, then the values that do not fit in them.
    fn directory(at: u32, entries: &[(u16, Value)]) -> Vec<u8> {
        let mut out = (entries.len() as u16).to_le_bytes().to_vec();
        let mut data = Vec::new();
        let data_at = at + 2 + 12 * entries.len() as u32 + 4;
        for (tag, (kind, count, value)) in entries {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            if value.len() <= 4 {
                let mut v = value.clone();
                v.resize(4, 0);
                out.extend_from_slice(&v);
            } else {
                out.extend_from_slice(&(data_at + data.len() as u32).to_le_bytes());
                data.extend_from_slice(value);
                if data.len() % 2 == 1 {
                    data.push(0);
                }
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend(data);
        out
    }
    let ifd0 = |exif: u32, gps: u32| {
        directory(
            8,
            &[
                (0x010f, ascii("Canon")),
                (0x0110, ascii("Canon EOS R5")),
                (0x0132, ascii("2026:12:05 10:11:13")),
                (0x8769, long(exif)),
                (0x8825, long(gps)),
            ],
        )
    };
    let exif_at = 8 + ifd0(0, 0).len() as u32;
    let exif = directory(
        exif_at,
        &[
            (0x9003, ascii("2026:12:05 10:11:12")),
            (0xa431, ascii("SN012345")),
            (0xa434, ascii("RF24-70mm F2.8 L IS USM")),
        ],
    );
    let gps_at = exif_at + exif.len() as u32;
    let gps = directory(
        gps_at,
        &[
            (1, ascii("N")),
            (2, rationals(&[(51, 1), (30, 1), (1234, 100)])),
            (3, ascii("W")),
            (4, rationals(&[(0, 1), (7, 1), (3000, 100)])),
        ],
    );
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend(ifd0(exif_at, gps_at));
    tiff.extend(exif);
    tiff.extend(gps);
    let mut app1 = vec![0xff, 0xe1];
    app1.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend(tiff);
    app1
}

/// `51:1, 30:1, 1234:100` (ffprobe's GPS rationals) as degrees.
fn degrees(text: &str) -> f64 {
    let parts: Vec<f64> = text
        .split(',')
        .map(|p| {
            let (n, d) = p.trim().split_once(':').unwrap();
            n.trim().parse::<f64>().unwrap() / d.trim().parse::<f64>().unwrap()
        })
        .collect();
    parts[0] + parts[1] / 60.0 + parts[2] / 3600.0
}

#[test]
fn jpeg_with_exif_camera_lens_date_and_gps() {
    let dir = tempfile::tempdir().unwrap();
    let plain = ffmpeg(
        dir.path(),
        "plain.jpg",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x480",
            "-frames:v",
            "1",
        ],
    );
    let bytes = std::fs::read(&plain).unwrap();
    let still = dir.path().join("IMG_0001.JPG");
    std::fs::write(&still, [&bytes[..2], &exif_segment(), &bytes[2..]].concat()).unwrap();
    let info = ours(&still).unwrap();
    let p = ffprobe(&still);
    let s = stream(&p, "video");
    let tags = ffprobe_frame_tags(&still);
    let v = info.video.as_ref().unwrap();
    assert_eq!(info.format, "jpeg");
    same_picture(v, s);
    let c = &info.camera;
    assert_eq!(c.make.as_deref(), tags["Make"].as_str());
    assert_eq!(c.model.as_deref(), tags["Model"].as_str());
    assert_eq!(c.serial.as_deref(), tags["0xA431"].as_str());
    assert_eq!(c.lens.as_deref(), tags["0xA434"].as_str());
    let e = info.exif.as_ref().unwrap();
    assert_eq!(e.taken.as_deref(), tags["DateTimeOriginal"].as_str());
    let lat = degrees(tags["GPSLatitude"].as_str().unwrap());
    let lon = -degrees(tags["GPSLongitude"].as_str().unwrap());
    assert_eq!(tags["GPSLongitudeRef"], "W");
    assert!((e.latitude.unwrap() - lat).abs() < 1e-9, "{e:?} {lat}");
    assert!((e.longitude.unwrap() - lon).abs() < 1e-9, "{e:?} {lon}");
    // A JPEG without EXIF is still a picture.
    let bare = ours(&plain).unwrap();
    assert_eq!(bare.video.unwrap().width, 640);
    assert!(bare.exif.is_none());
}
