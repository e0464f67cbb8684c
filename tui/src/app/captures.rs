//! The screen captures in `tui/docs/screens/` are what the console draws: each is drawn
//! here from the snapshot recorded beside them (`snapshot.json`, the API's answers from
//! a host-mode rushesd with an NFS write behind it) and compared with its file, so a
//! change to a screen fails this test until the captures are drawn again with
//! `RUSHES_UPDATE_CAPTURES=1 cargo test -p rushes-console captures`.

use std::path::PathBuf;

use tuirealm::ratatui::backend::TestBackend;
use tuirealm::ratatui::Terminal;

use super::*;
use crate::screens::wizard::Wizard;

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screens")
}

fn recorded() -> Snapshot {
    let text = std::fs::read_to_string(folder().join("snapshot.json")).expect("snapshot.json");
    serde_json::from_str(&text).expect("snapshot.json is a snapshot of this API")
}

/// An app with no service behind it, showing `snap` in `mode`.
fn showing(snap: Snapshot, mode: Mode) -> App {
    let mut app = App::new(
        Client::new("/nonexistent/rushes-api.sock"),
        Duration::from_secs(3600),
        DEFAULT_LOCK_AFTER,
    );
    app.snap = snap;
    app.mode = mode;
    if let Mode::Menu(i) = &app.mode {
        app.snap.fetched = app.menu[*i].screen.fetch();
    }
    app
}

fn screen(key: char) -> Mode {
    Mode::Menu(
        super::menu()
            .iter()
            .position(|e| e.key == key)
            .expect("a menu key"),
    )
}

/// The 80×25 screen as text, each line without its trailing blanks.
fn drawn(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 25)).unwrap();
    terminal.draw(|f| app.draw(f, f.area())).unwrap();
    let buf = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The recorded snapshot with two pools, placement rules and a run under way (a
/// host-mode rushesd has no pools to record).
fn placing() -> Snapshot {
    let mut snap = recorded();
    let pool = |name: &str, level: &str, size: u64, used: u64| {
        serde_json::from_value::<rushes_api::Pool>(serde_json::json!({
            "name": name, "level": level, "class": "fast", "state": "online",
            "problem": null, "mountpoint": format!("/pools/{name}"), "device": null,
            "size_bytes": size, "used_bytes": used, "members": [], "sync": null,
            "last_scrub": null, "scrub_mismatches": null
        }))
        .expect("a pool")
    };
    snap.pools = vec![
        pool("media", "raid5", 3_000_000_000_000, 2_820_000_000_000),
        pool("archive", "raid6", 48_000_000_000_000, 19_200_000_000_000),
    ];
    snap.placement = Some(
        serde_json::from_value(serde_json::json!({
            "rules": [
                {"name": "keep-grade", "action": "pin", "pool": null, "on": [],
                 "conditions": ["path = \"grade/**\""]},
                {"name": "finished", "action": "place", "pool": "archive",
                 "on": ["schedule"], "conditions": ["share = \"projects\"", "accessed_before = \"30d\""]},
                {"name": "rushes", "action": "place", "pool": "media", "on": ["create"],
                 "conditions": ["extension = [\"mov\", \"mxf\"]"]}
            ],
            "watermarks": [{"pool": "media", "high": 90, "low": 75, "weight": "oldest-access"}],
            "every_secs": 3600,
            "problems": []
        }))
        .expect("placement"),
    );
    snap.jobs = vec![serde_json::from_value(serde_json::json!({
        "id": 12, "kind": "placement-run", "target": {"kind": "paths", "name": ""},
        "state": "running", "step": "moving projects/reel-3.mov to archive (412 MB/s)",
        "fraction": 0.42, "error": null, "started": 0, "finished": null
    }))
    .expect("a job")];
    snap.targets = serde_json::from_value(serde_json::json!([
        {"name": "wasabi", "kind": "s3", "bucket": "rushes", "region": "eu-central-1",
         "access_key": "AK", "has_secret": true,
         "health": {"ok": true, "checked_at": 0, "took_ms": 84},
         "stored": {"files": 1840, "bytes": 2_310_000_000_000u64, "counted_at": 0}},
        {"name": "tape", "kind": "folder", "path": "/mnt/ltfs", "has_secret": false,
         "retention": "90d",
         "health": {"ok": false, "checked_at": 0, "took_ms": 3,
                    "error": "target tape is not usable: /mnt/ltfs is not a folder here (is it mounted?)"}}
    ]))
    .expect("targets");
    snap
}

/// The recorded snapshot with what a search of the catalog found (a host-mode
/// rushesd recorded without `--catalog`).
fn searching() -> Snapshot {
    let mut snap = recorded();
    let clip = |path: &str, codec: &str, w: u32, h: u32, fps: (u32, u32), tc: &str, secs: f64| {
        serde_json::json!({
            "share": "rushes", "path": path, "size": 1_000_000_000u64, "modified": 0,
            "error": null,
            "media": {
                "format": "quicktime", "duration_s": secs, "audio": [], "reel": &path[5..9],
                "camera": {}, "bext": null, "ixml": null,
                "video": {"codec": codec, "fourcc": "apch", "width": w, "height": h,
                          "frame_rate": {"num": fps.0, "den": fps.1}, "pixel_aspect": null,
                          "field_order": "progressive", "frames": null},
                "timecode": {"start": tc, "frame": 0, "fps": 24, "drop_frame": false}
            }
        })
    };
    snap.found = Some(
        serde_json::from_value(serde_json::json!({
            "total": 3,
            "clips": [
                clip("day1/A003C012_250101_R1AB.mov", "prores_4444", 4096, 2160, (24000, 1001), "10:14:30:00", 62.5),
                clip("day1/A003C013_250101_R1AB.mov", "prores_4444", 4096, 2160, (24000, 1001), "10:25:00:00", 20.0),
                clip("day2/B001C001_250102_R2CD.mov", "prores_422_hq", 3840, 2160, (25, 1), "14:00:00:00", 10.0),
            ],
            "facets": [
                {"name": "codec", "values": [{"value": "prores_4444", "count": 2}, {"value": "prores_422_hq", "count": 1}]},
                {"name": "resolution", "values": [{"value": "4096x2160", "count": 2}, {"value": "3840x2160", "count": 1}]},
                {"name": "fps", "values": [{"value": "23.976", "count": 2}, {"value": "25", "count": 1}]},
                {"name": "camera", "values": [{"value": "ARRI ALEXA 35", "count": 3}]},
                {"name": "share", "values": [{"value": "rushes", "count": 3}]}
            ]
        }))
        .expect("search results"),
    );
    snap
}

#[test]
fn the_screen_captures_are_what_the_console_draws() {
    let mut wizard_network = showing(recorded(), Mode::Wizard(Box::new(Wizard::first_boot())));
    wizard_network.key(Input::Enter);
    for _ in 0..6 {
        wizard_network.key(Input::Backspace);
    }
    "edit-bay-nas"
        .chars()
        .for_each(|c| wizard_network.key(Input::Char(c)));
    wizard_network.key(Input::Enter);
    let gone = Snapshot::fetch(
        &Client::new("/nonexistent/rushes-api.sock"),
        &crate::snapshot::Fetch::default(),
    );
    let screens: Vec<(&str, App)> = vec![
        (
            "wizard-welcome",
            showing(recorded(), Mode::Wizard(Box::new(Wizard::first_boot()))),
        ),
        ("wizard-network", wizard_network),
        (
            "wizard-done",
            showing(recorded(), Mode::Wizard(Box::new(Wizard::finished()))),
        ),
        ("dashboard", showing(recorded(), screen('d'))),
        ("activity", showing(recorded(), screen('t'))),
        ("disks", showing(recorded(), screen('k'))),
        ("network", showing(recorded(), screen('n'))),
        (
            "locked",
            showing(recorded(), Mode::Locked(Locked::default())),
        ),
        ("rushesd-gone", showing(gone, screen('d'))),
        ("placement", showing(placing(), screen('m'))),
        ("search", showing(searching(), screen('f'))),
    ];
    let update = std::env::var_os("RUSHES_UPDATE_CAPTURES").is_some();
    let mut stale = Vec::new();
    for (name, app) in &screens {
        let file = folder().join(format!("{name}.txt"));
        let now = drawn(app);
        if update {
            std::fs::write(&file, &now).unwrap();
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(now.as_str()) {
            stale.push(format!("{name}:\n{now}"));
        }
    }
    assert!(
        stale.is_empty(),
        "captures that are not what the console draws (RUSHES_UPDATE_CAPTURES=1 draws them again):\n{}",
        stale.join("\n")
    );
    // Every capture in the folder is one of these.
    let kept = std::fs::read_dir(folder())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".txt"))
        .count();
    assert_eq!(
        kept,
        screens.len(),
        "a capture in the folder is drawn by no test"
    );
}
