//! The index: what each kind of query finds, facets, paging, updates and removals, and
//! an index on disk read back after it was closed.

use rushes_catalog::record::{Camera, Ixml, MediaInfo, Rational, Timecode, Video};
use rushes_catalog::{Catalog, Clip};

fn clip(
    share: &str,
    path: &str,
    codec: &str,
    width: u32,
    fps: (u32, u32),
    tc: &str,
    frames: u64,
) -> Clip {
    let rate = Rational::new(fps.0, fps.1).unwrap();
    let tc_fps = rate.value().round() as u32;
    Clip {
        share: share.into(),
        path: path.into(),
        size: 1 << 30,
        modified: 1_764_000_000,
        media: Some(MediaInfo {
            format: "quicktime".into(),
            duration_s: Some(frames as f64 / rate.value()),
            video: Some(Video {
                codec: codec.into(),
                fourcc: "apch".into(),
                profile: None,
                width,
                height: width * 9 / 16,
                frame_rate: Some(rate),
                pixel_aspect: None,
                field_order: None,
                frames: Some(frames),
                ..Default::default()
            }),
            timecode: Some(Timecode {
                start: tc.into(),
                frame: 0,
                fps: tc_fps,
                drop_frame: false,
            }),
            reel: Some(path.split('/').next_back().unwrap()[..4].to_string()),
            camera: Camera {
                make: Some("ARRI".into()),
                model: Some(
                    if width >= 3840 {
                        "ALEXA 35"
                    } else {
                        "ALEXA Mini"
                    }
                    .into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }),
        error: None,
        members: Vec::new(),
    }
}

fn sound(share: &str, path: &str, scene: &str, take: &str) -> Clip {
    Clip {
        share: share.into(),
        path: path.into(),
        size: 1 << 20,
        modified: 1_764_000_000,
        media: Some(MediaInfo {
            format: "wav".into(),
            duration_s: Some(95.0),
            ixml: Some(Ixml {
                scene: Some(scene.into()),
                take: Some(take.into()),
                circled: Some(true),
                track_names: vec!["Boom".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        error: None,
        members: Vec::new(),
    }
}

fn corpus(c: &Catalog) {
    for clip in [
        clip(
            "rushes",
            "day1/A003C012_250101_R1AB.mov",
            "prores_4444",
            4096,
            (24000, 1001),
            "10:14:30:00",
            24 * 60,
        ),
        clip(
            "rushes",
            "day1/A003C013_250101_R1AB.mov",
            "prores_422_hq",
            1920,
            (24000, 1001),
            "10:25:00:00",
            24 * 20,
        ),
        clip(
            "rushes",
            "day2/B001C001_250102_R2CD.mov",
            "prores_4444",
            3840,
            (25, 1),
            "14:00:00:00",
            25 * 10,
        ),
        clip(
            "grade",
            "conform/A003C012_graded.mov",
            "prores_4444_xq",
            4096,
            (24000, 1001),
            "10:14:30:00",
            24 * 60,
        ),
        sound("rushes", "sound/sc12_tk3.wav", "12", "3"),
        Clip {
            share: "rushes".into(),
            path: "notes/readme.txt".into(),
            size: 12,
            modified: 1_764_000_000,
            media: None,
            error: None,
            members: Vec::new(),
        },
    ] {
        c.put(&clip).unwrap();
    }
    c.commit().unwrap();
}

fn paths(c: &Catalog, q: &str) -> Vec<String> {
    let mut found: Vec<String> = c
        .search(q, None, 0, 100)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .clips
        .into_iter()
        .map(|c| c.id())
        .collect();
    found.sort();
    found
}

#[test]
fn each_kind_of_query_finds_what_it_says() {
    let c = Catalog::in_memory().unwrap();
    corpus(&c);
    assert_eq!(c.len(), 6);
    assert_eq!(
        paths(&c, "codec:prores_4444 reel:A003"),
        ["rushes/day1/A003C012_250101_R1AB.mov"]
    );
    assert_eq!(paths(&c, "fps:23.976 width:>=3840").len(), 2);
    assert_eq!(
        paths(&c, "fps:25"),
        ["rushes/day2/B001C001_250102_R2CD.mov"]
    );
    assert_eq!(
        paths(&c, "camera:mini"),
        ["rushes/day1/A003C013_250101_R1AB.mov"]
    );
    assert_eq!(paths(&c, "camera:alexa").len(), 4);
    assert_eq!(paths(&c, "duration:>30s").len(), 3);
    assert_eq!(paths(&c, "scene:12 take:3"), ["rushes/sound/sc12_tk3.wav"]);
    assert_eq!(paths(&c, "circled:true"), ["rushes/sound/sc12_tk3.wav"]);
    // Spans that overlap 10:14:00:00-10:20:00:00: the two A003C012 (10:14:30 for a
    // minute), not C013 (10:25) nor B001 (14:00).
    assert_eq!(
        paths(&c, "tc:10:14:00:00-10:20:00:00"),
        [
            "grade/conform/A003C012_graded.mov",
            "rushes/day1/A003C012_250101_R1AB.mov"
        ]
    );
    assert_eq!(
        paths(&c, "tc:10:15:00:00"),
        paths(&c, "tc:10:14:00:00-10:20:00:00")
    );
    // Free words over names and paths; every file, media or not, is there by name.
    assert_eq!(paths(&c, "graded").len(), 1);
    assert_eq!(paths(&c, "readme"), ["rushes/notes/readme.txt"]);
    assert_eq!(paths(&c, "day2 ext:mov").len(), 1);
    assert_eq!(
        c.search("", Some(&["grade".to_string()]), 0, 10)
            .unwrap()
            .total,
        1
    );
    // A query that does not read says where.
    let e = c
        .search("width:>=wide", None, 0, 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains("at character 7"), "{e}");
}

#[test]
fn facets_count_every_match_and_pages_split_them() {
    let c = Catalog::in_memory().unwrap();
    corpus(&c);
    let found = c.search("camera:alexa", None, 0, 3).unwrap();
    assert_eq!((found.total, found.clips.len()), (4, 3));
    let facet = |name: &str| -> Vec<(String, u64)> {
        found
            .facets
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .values
            .iter()
            .map(|v| (v.value.clone(), v.count))
            .collect()
    };
    let codecs = facet("codec");
    assert_eq!(codecs[0], ("prores_4444".to_string(), 2));
    assert_eq!(codecs.iter().map(|(_, n)| n).sum::<u64>(), 4);
    let fps = facet("fps");
    assert!(fps.contains(&("23.976".to_string(), 3)), "{fps:?}");
    let rest = c.search("camera:alexa", None, 3, 3).unwrap();
    assert_eq!(rest.clips.len(), 1);
    assert!(!found.clips.iter().any(|x| x.id() == rest.clips[0].id()));
}

#[test]
fn a_changed_clip_replaces_its_record_and_a_removed_one_is_gone_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Catalog::open(dir.path()).unwrap();
        corpus(&c);
        let mut changed = clip(
            "rushes",
            "day2/B001C001_250102_R2CD.mov",
            "h264",
            1920,
            (25, 1),
            "14:00:00:00",
            250,
        );
        changed.size = 7;
        c.put(&changed).unwrap();
        c.remove("rushes", "notes/readme.txt");
        c.commit().unwrap();
    }
    let c = Catalog::open(dir.path()).unwrap();
    assert_eq!(c.len(), 5);
    let got = c
        .get("rushes", "day2/B001C001_250102_R2CD.mov")
        .unwrap()
        .unwrap();
    assert_eq!(got.size, 7);
    assert!(c.get("rushes", "notes/readme.txt").unwrap().is_none());
    assert_eq!(paths(&c, "codec:h264").len(), 1);
    assert_eq!(c.paths_under("rushes", "day1/").unwrap().len(), 2);
}

#[test]
fn the_files_of_one_op_atom_clip_are_one_result() {
    let c = Catalog::in_memory().unwrap();
    let atom = |path: &str, package: &str, picture: bool| {
        let mut clip = clip("rushes", path, "dnxhr", 1920, (25, 1), "01:00:00:00", 250);
        let m = clip.media.as_mut().unwrap();
        m.format = "mxf".into();
        m.operational_pattern = Some("op-atom".into());
        m.package = Some(package.into());
        if !picture {
            m.video = None;
        }
        clip
    };
    for clip in [
        atom("avid/A001C001_V01.mxf", "060A2B34AA", true),
        atom("avid/A001C001_A01.mxf", "060A2B34AA", false),
        atom("avid/A001C001_A02.mxf", "060A2B34AA", false),
        atom("avid/A001C002_V01.mxf", "060A2B34BB", true),
    ] {
        c.put(&clip).unwrap();
    }
    c.commit().unwrap();
    let found = c.search("format:mxf", None, 0, 10).unwrap();
    assert_eq!(found.total, 2);
    assert_eq!(found.clips.len(), 2);
    let first = found
        .clips
        .iter()
        .find(|x| x.media.as_ref().unwrap().package.as_deref() == Some("060A2B34AA"))
        .unwrap();
    assert_eq!(first.members.len(), 2, "{first:?}");
    assert_eq!(
        paths(&c, "package:060a2b34bb"),
        ["rushes/avid/A001C002_V01.mxf"]
    );
}

fn sorted(c: &Catalog, q: &str, sort: &str) -> Vec<String> {
    let req = rushes_catalog::index::Request {
        text: q,
        limit: 100,
        sort: sort.parse().unwrap(),
        ..Default::default()
    };
    rushes_catalog::index::search_all(&[c], &req)
        .unwrap()
        .clips
        .into_iter()
        .map(|c| c.path)
        .collect()
}

#[test]
fn results_sort_by_a_field_either_way_with_clips_lacking_it_last() {
    let c = Catalog::in_memory().unwrap();
    corpus(&c);
    // Durations: 60 s, 20 s, 10 s, 60 s (graded, another share's index below), the
    // sound 95 s; the text file has none.
    let by_duration = sorted(&c, "share:rushes", "duration");
    assert_eq!(
        by_duration,
        [
            "day2/B001C001_250102_R2CD.mov",
            "day1/A003C013_250101_R1AB.mov",
            "day1/A003C012_250101_R1AB.mov",
            "sound/sc12_tk3.wav",
            "notes/readme.txt",
        ]
    );
    let longest_first = sorted(&c, "share:rushes", "-duration");
    assert_eq!(longest_first[0], "sound/sc12_tk3.wav");
    assert_eq!(longest_first[4], "notes/readme.txt");
    let by_name = sorted(&c, "", "name");
    assert_eq!(by_name[0], "day1/A003C012_250101_R1AB.mov");
    assert_eq!(by_name[1], "conform/A003C012_graded.mov");
    assert_eq!(by_name.last().unwrap(), "sound/sc12_tk3.wav");
    let by_tc = sorted(&c, "share:rushes codec:prores_4444", "timecode");
    assert_eq!(
        by_tc,
        [
            "day1/A003C012_250101_R1AB.mov",
            "day2/B001C001_250102_R2CD.mov"
        ]
    );
    assert!("loudness".parse::<rushes_catalog::index::Sort>().is_err());
}

#[test]
fn an_index_with_another_schema_is_made_again_empty() {
    let dir = tempfile::tempdir().unwrap();
    // An index of other fields, as an older rushesd may have left.
    let mut b = tantivy::schema::Schema::builder();
    b.add_text_field("path", tantivy::schema::STRING);
    tantivy::Index::create_in_dir(dir.path(), b.build()).unwrap();
    let c = Catalog::open(dir.path()).unwrap();
    assert!(c.is_empty());
    corpus(&c);
    assert_eq!(c.len(), 6);
}
