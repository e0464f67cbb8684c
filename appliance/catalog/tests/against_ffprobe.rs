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
