//! The rules as an admin writes them: refusals with their lines, first match wins,
//! explain's words for every kind of condition, and simulate's plans (watermarks,
//! room, pins, files being written), over facts and over a real folder.

use rushes_placement::evaluate::Trigger;
use rushes_placement::*;

const DAY: i64 = 86_400;
const NOW: i64 = 1_800_000_000;

fn names() -> Names {
    Names {
        shares: vec!["media".into(), "vfx".into()],
        pools: vec!["fast".into(), "archive".into(), "spare".into()],
        users: vec![("alice".into(), 1001)],
        groups: vec![("editors".into(), 2000)],
        targets: vec!["wasabi".into(), "tape".into(), "site-b".into()],
    }
}

fn file(path: &str, size: u64, pool: &str) -> FileFacts {
    FileFacts {
        share: "media".into(),
        path: path.into(),
        size,
        uid: 1001,
        gid: 2000,
        modified: NOW - 40 * DAY,
        modified_nsec: 0,
        accessed: NOW - 10 * DAY,
        created: Some(NOW - 50 * DAY),
        pool: pool.into(),
        released: false,
        xattrs: Vec::new(),
        being_written: false,
    }
}

struct Calm;
impl Fill for Calm {
    fn over_high(&self, _: &str) -> bool {
        false
    }
    fn describe(&self, _: &str) -> String {
        "40 % full, under its high watermark 85 %".into()
    }
}

fn lines(errors: &[RuleError]) -> Vec<(usize, String)> {
    errors.iter().map(|e| (e.line, e.reason.clone())).collect()
}

#[test]
fn bad_rules_are_refused_with_their_line_and_reason_all_at_once() {
    let source = r#"every = "30s"

[[pool]]
name = "fast"
high = 70
low = 80

[[rule]]
name = "a"
action = "place"
pool = "nowhere"

[[rule]]
name = "b"
action = "place"
path = "/abs/**"
larger_than = "10G"
smaller_than = "1G"

[[rule]]
name = "c"
action = "pin"
pool = "fast"
on = ["create"]

[[rule]]
name = "d"
action = "place"
pool = "archive"
on = ["watermark"]

[[rule]]
name = "e"
action = "move"
share = "films"
owner = "bob"
xattr = "trusted.rushes.pool=fast"
modified_older_than = "soon"

[[pool]]
name = "archive"
high = 90
low = 80
alert_after = "20s"
"#;
    let errors = RuleSet::parse(source, &names()).unwrap_err();
    let got = lines(&errors);
    let expect_has = |line: usize, words: &str| {
        assert!(
            got.iter().any(|(l, r)| *l == line && r.contains(words)),
            "no refusal on line {line} saying {words:?}; got {got:#?}"
        )
    };
    expect_has(1, "under a minute");
    expect_has(3, "low 80 must be under high 70");
    expect_has(
        8,
        "there is no pool \"nowhere\": pools are fast, archive, spare",
    );
    expect_has(13, "must be inside the share");
    expect_has(13, "leave no size between them");
    expect_has(20, "pin takes no pool");
    expect_has(20, "holds at every trigger");
    expect_has(26, "on watermark needs `current_pool`");
    expect_has(32, "action \"move\" is not one of place, pin, exclude");
    expect_has(32, "there is no share \"films\"");
    expect_has(32, "owner \"bob\" is neither a known name nor a number");
    expect_has(32, "must be a user.* attribute");
    expect_has(32, "modified_older_than");
    expect_has(40, "alert_after \"20s\" is under a minute");
    // Every refusal says which rule it is about, in its text.
    let on_line_8 = errors.iter().find(|e| e.line == 8).unwrap();
    assert!(on_line_8.to_string().starts_with("line 8 (rule \"a\"): "));
}

#[test]
fn a_pool_alerts_after_fifteen_minutes_past_its_high_watermark_unless_it_says_otherwise() {
    let source = "[[pool]]\nname = \"fast\"\nhigh = 80\nlow = 60\n\
                  [[pool]]\nname = \"archive\"\nhigh = 95\nlow = 90\nalert_after = \"2h\"\n";
    let set = RuleSet::parse(source, &names()).unwrap();
    assert_eq!(set.watermark("fast").unwrap().alert_after, 15 * 60);
    assert_eq!(set.watermark("archive").unwrap().alert_after, 2 * 3600);
}

#[test]
fn a_typo_in_the_file_is_refused_at_its_line() {
    let errors = RuleSet::parse(
        "[[rule]]\nname = \"x\"\naction = \"pin\"\nsahre = \"media\"\n",
        &names(),
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 4);
    assert!(errors[0].reason.contains("sahre"), "{}", errors[0].reason);
}

#[test]
fn a_rule_after_one_that_takes_everything_is_never_reached() {
    let source = "[[rule]]\nname = \"all\"\naction = \"place\"\npool = \"fast\"\n\n\
                  [[rule]]\nname = \"late\"\naction = \"place\"\npool = \"archive\"\nfile = \"*.mov\"\n";
    let errors = RuleSet::parse(source, &names()).unwrap_err();
    assert_eq!(errors[0].line, 6);
    assert!(errors[0]
        .reason
        .contains("never reached: rule \"all\" (line 1)"));
    // A watermark rule after a catch-all of create and schedule is still reached.
    let source = "[[pool]]\nname = \"fast\"\nhigh = 80\nlow = 60\n\
                  [[rule]]\nname = \"all\"\naction = \"place\"\npool = \"fast\"\n\
                  [[rule]]\nname = \"spill\"\naction = \"place\"\npool = \"archive\"\non = [\"watermark\"]\ncurrent_pool = \"fast\"\n";
    RuleSet::parse(source, &names()).unwrap();
}

const EVERY_KIND: &str = r#"
[[rule]]
name = "by-share"
share = "vfx"
action = "exclude"

[[rule]]
name = "by-path"
path = "grade/**"
action = "pin"

[[rule]]
name = "by-name"
file = "*_proxy.mov"
action = "place"
pool = "archive"

[[rule]]
name = "by-extension"
extension = ["mxf", ".WAV"]
action = "place"
pool = "archive"

[[rule]]
name = "by-size"
larger_than = "100G"
action = "place"
pool = "spare"

[[rule]]
name = "by-owner"
owner = "1002"
action = "place"
pool = "spare"

[[rule]]
name = "by-group"
group = "3000"
action = "place"
pool = "spare"

[[rule]]
name = "by-age"
accessed_older_than = "30d"
action = "place"
pool = "archive"

[[rule]]
name = "by-pool"
current_pool = "spare"
action = "place"
pool = "fast"

[[rule]]
name = "by-tag"
tag = "hero"
action = "pin"

[[rule]]
name = "by-xattr"
xattr = "user.project=alpha"
action = "place"
pool = "fast"
"#;

#[test]
fn explain_says_why_each_rule_did_not_match_and_which_one_did() {
    let rules = RuleSet::parse(EVERY_KIND, &names()).unwrap();
    let mut f = file("day1/A001C003.mov", 3 << 30, "archive");
    f.xattrs.push(("user.project".into(), b"alpha".to_vec()));
    let verdicts = rules.explain(&f, NOW, Trigger::Schedule, &Calm);
    let why: Vec<(&str, bool, &str)> = verdicts
        .iter()
        .map(|v| (v.rule.as_str(), v.matched, v.why.as_str()))
        .collect();
    assert_eq!(
        why,
        vec![
            ("by-share", false, "it is in share media, not vfx"),
            (
                "by-path",
                false,
                "path day1/A001C003.mov does not match grade/**"
            ),
            (
                "by-name",
                false,
                "name A001C003.mov does not match *_proxy.mov"
            ),
            (
                "by-extension",
                false,
                "extension .mov is not one of .mxf, .wav"
            ),
            ("by-size", false, "size 3.0 GiB is not above 100 GiB"),
            ("by-owner", false, "owner is uid 1001, not 1002"),
            ("by-group", false, "group is gid 2000, not 3000"),
            ("by-age", false, "accessed 10d 0h ago, not more than 30d"),
            ("by-pool", false, "its data is on archive, not spare"),
            ("by-tag", false, "it is not tagged hero"),
            ("by-xattr", true, "user.project set"),
        ]
    );
    let d = rules.decide(&f, NOW, Trigger::Schedule, &Calm);
    assert_eq!(d.rule, Some(10));
    assert_eq!(d.action, Some(Action::Place("fast".into())));
    // Each kind matches a file made for it, and explain stops at the first match.
    let mut hero = file("day1/x.mov", 1, "fast");
    hero.xattrs
        .push((TAGS_XATTR.into(), b"select, hero".to_vec()));
    let v = rules.explain(&hero, NOW, Trigger::Schedule, &Calm);
    assert_eq!(v.last().unwrap().rule, "by-tag");
    assert!(v.last().unwrap().matched);
    let old = file("day1/x.mov", 1, "fast");
    let mut old = old;
    old.accessed = NOW - 90 * DAY;
    let v = rules.explain(&old, NOW, Trigger::Schedule, &Calm);
    assert_eq!(
        (
            v.last().unwrap().rule.as_str(),
            v.last().unwrap().why.as_str()
        ),
        ("by-age", "accessed 90d 0h ago (more than 30d)")
    );
    let wav = file("sound/mix.wav", 1, "fast");
    assert_eq!(
        rules.decide(&wav, NOW, Trigger::Schedule, &Calm).rule,
        Some(3)
    );
    let nothing = file("day1/x.mov", 1, "fast");
    assert_eq!(
        rules.decide(&nothing, NOW, Trigger::Schedule, &Calm),
        Decision {
            rule: None,
            action: None
        }
    );
}

#[test]
fn triggers_decide_which_rules_are_in_play() {
    let source = r#"
[[pool]]
name = "fast"
high = 85
low = 70

[[rule]]
name = "land-fast"
on = ["create"]
action = "place"
pool = "fast"

[[rule]]
name = "spill"
on = ["watermark"]
current_pool = "fast"
action = "place"
pool = "archive"
"#;
    let rules = RuleSet::parse(source, &names()).unwrap();
    let f = file("a.mov", 1, "fast");
    assert_eq!(rules.decide(&f, NOW, Trigger::Create, &Calm).rule, Some(0));
    let v = rules.explain(&f, NOW, Trigger::Schedule, &Calm);
    assert_eq!(v[0].why, "it acts only on new files");
    assert_eq!(
        v[1].why,
        "pool fast is 40 % full, under its high watermark 85 %"
    );
    // Only the watermark rule's pool is emptied by watermark runs.
    assert!(rules.empties("fast"));
    assert!(!rules.empties("archive"));
}

fn pools(fast_used: u64) -> Vec<PoolState> {
    vec![
        PoolState {
            name: "fast".into(),
            size: 1000,
            used: fast_used,
            refuses: None,
        },
        PoolState {
            name: "archive".into(),
            size: 10_000,
            used: 0,
            refuses: None,
        },
        PoolState {
            name: "spare".into(),
            size: 100,
            used: 0,
            refuses: Some("degraded".into()),
        },
    ]
}

#[test]
fn a_full_pool_sheds_its_oldest_files_until_it_is_under_its_low_watermark() {
    let source = r#"
[[pool]]
name = "fast"
high = 85
low = 60

[[rule]]
name = "keep-grade"
path = "grade/**"
action = "pin"

[[rule]]
name = "spill"
on = ["watermark"]
current_pool = "fast"
action = "place"
pool = "archive"
"#;
    let rules = RuleSet::parse(source, &names()).unwrap();
    // 900 of 1000 bytes: ten files of 90, accessed 1..10 days ago; the oldest is a pin.
    let files: Vec<FileFacts> = (1..=10)
        .map(|i| {
            let path = if i == 10 {
                "grade/oldest.mov".to_string()
            } else {
                format!("day/{i}.mov")
            };
            let mut f = file(&path, 90, "fast");
            f.accessed = NOW - i * DAY;
            f
        })
        .collect();
    let plan = simulate(&rules, &pools(900), files.clone(), NOW, Some(100));
    let moved: Vec<&str> = plan.moves.iter().map(|m| m.path.as_str()).collect();
    // 900 -> 810 -> 720 -> 630 -> 540 (<= 600): four moves, oldest first, the pin stays.
    assert_eq!(moved, ["day/9.mov", "day/8.mov", "day/7.mov", "day/6.mov"]);
    assert!(plan.moves.iter().all(|m| m.because == Because::Watermark));
    assert_eq!(plan.bytes, 360);
    assert_eq!(plan.seconds, Some(4));
    let fast = &plan.pools[0];
    assert_eq!(
        (fast.used_now, fast.used_after, fast.above_high_after),
        (900, 540, false)
    );
    // Under the high watermark nothing moves.
    let calm = simulate(&rules, &pools(800), files, NOW, None);
    assert!(calm.moves.is_empty());
    assert!(calm.report(5).contains("no move rate measured"));
}

#[test]
fn moves_a_target_cannot_take_are_held_with_the_reason_and_pins_never_move() {
    let source = r#"
[[rule]]
name = "pinned"
tag = "hold"
action = "pin"

[[rule]]
name = "skip"
path = "cache/**"
action = "exclude"

[[rule]]
name = "to-spare"
file = "*.wav"
action = "place"
pool = "spare"

[[rule]]
name = "to-archive"
action = "place"
pool = "archive"
"#;
    let rules = RuleSet::parse(source, &names()).unwrap();
    let mut pinned = file("a.mov", 10, "fast");
    pinned.xattrs.push((TAGS_XATTR.into(), b"hold".to_vec()));
    let mut writing = file("b.mov", 10, "fast");
    writing.being_written = true;
    let files = vec![
        pinned,
        file("cache/c.mov", 10, "fast"),
        file("mix.wav", 10, "fast"),
        writing,
        file("big.mov", 9_000, "fast"),
        file("bigger.mov", 2_000, "fast"),
    ];
    let plan = simulate(&rules, &pools(900), files, NOW, None);
    let moved: Vec<&str> = plan.moves.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(moved, ["big.mov"]);
    let held: Vec<(&str, &str)> = plan
        .held
        .iter()
        .map(|h| (h.wanted.path.as_str(), h.reason.as_str()))
        .collect();
    assert_eq!(
        held,
        [
            (
                "b.mov",
                "it is open for writing: it moves once its writers close"
            ),
            ("mix.wav", "pool spare receives nothing while degraded"),
            (
                "bigger.mov",
                "pool archive cannot hold it: 1000 B free, 2.0 KiB needed"
            ),
        ]
    );
    let report = plan.report(10);
    assert!(
        report.contains("6 files looked at; 1 would move"),
        "{report}"
    );
    assert!(report.contains("fast -> archive: 1 files"), "{report}");
}

#[test]
fn a_scan_of_a_real_folder_gives_each_file_its_facts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("day1/cam-a")).unwrap();
    std::fs::create_dir_all(root.join(".rushes/data")).unwrap();
    std::fs::write(root.join("day1/cam-a/A001.mov"), vec![7u8; 4096]).unwrap();
    std::fs::write(root.join("notes.txt"), b"hello").unwrap();
    std::fs::write(root.join(".rushes/data/42"), b"the box's own").unwrap();
    std::os::unix::fs::symlink("notes.txt", root.join("link")).unwrap();
    let tagged = rustix::fs::setxattr(
        root.join("notes.txt").as_path(),
        TAGS_XATTR,
        b"hero",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    let mut seen = Vec::new();
    scan_share("media", root, "fast", &[TAGS_XATTR.to_string()], |f| {
        seen.push(f)
    })
    .unwrap();
    seen.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = seen.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["day1/cam-a/A001.mov", "notes.txt"]);
    assert_eq!(seen[0].size, 4096);
    assert_eq!(seen[0].pool, "fast");
    assert_eq!(seen[0].name(), "A001.mov");
    if tagged {
        assert_eq!(seen[1].xattr(TAGS_XATTR), Some(&b"hero"[..]));
    }
    let err = scan_share("media", &root.join("gone"), "fast", &[], |_| {}).unwrap_err();
    assert!(err.to_string().contains("gone"), "{err}");
}

#[test]
fn copy_rules_are_checked_and_say_what_copies_a_file_keeps_apart_from_where_it_is() {
    let bad = r#"
[[rule]]
name = "too-many"
action = "copy"
copies = 3
targets = ["wasabi", "tape"]

[[rule]]
name = "nowhere"
action = "copy"
copies = 1

[[rule]]
name = "unknown"
action = "place"
pool = "archive"
copies = 1
targets = ["glacier"]

[[rule]]
name = "copy-on-a-pool"
action = "copy"
pool = "fast"
copies = 1
targets = ["tape"]
"#;
    let errors = lines(&RuleSet::parse(bad, &names()).unwrap_err());
    assert!(errors.contains(&(
        2,
        "copies = 3 on 2 target(s): from 1 to as many as the targets".into()
    )));
    assert!(errors.contains(&(8, "`copies` needs `targets`: where the copies go".into())));
    assert!(errors
        .iter()
        .any(|(l, r)| *l == 13 && r.contains("there is no target \"glacier\"")));
    assert!(errors.contains(&(
        20,
        "copy takes no pool: it keeps copies and moves nothing".into()
    )));
    let good = r#"
[[rule]]
name = "grades-twice"
action = "copy"
path = "grade/**"
copies = 2
targets = ["wasabi", "tape", "site-b"]

[[rule]]
name = "everything-once"
action = "copy"
copies = 1
targets = ["tape"]

[[rule]]
name = "mov-to-archive"
action = "place"
pool = "archive"
extension = ["mov"]
"#;
    // A catch-all copy rule leaves placement rules after it in play.
    let rules = RuleSet::parse(good, &names()).unwrap();
    let grade = file("grade/hero.mov", 1 << 30, "fast");
    let (i, rule) = rules.copies_for(&grade, NOW).unwrap();
    assert_eq!((i, rule.name.as_str()), (0, "grades-twice"));
    assert_eq!(rule.copies.as_ref().unwrap().copies, 2);
    let d = rules.decide(&grade, NOW, Trigger::Schedule, &Calm);
    assert_eq!(
        d.action,
        Some(Action::Place("archive".into())),
        "copy rules place nothing"
    );
    assert_eq!(d.rule, Some(2));
    let notes = file("notes.txt", 10, "fast");
    assert_eq!(
        rules.copies_for(&notes, NOW).unwrap().1.name,
        "everything-once"
    );
    assert_eq!(
        rules.decide(&notes, NOW, Trigger::Schedule, &Calm).action,
        None
    );
    // How stale a proof may get before a run reads the copy back.
    assert_eq!(
        RuleSet::parse("audit = \"30d\"\n", &names()).unwrap().audit,
        Some(30 * DAY as u64)
    );
    let errors = RuleSet::parse("audit = \"10s\"\n", &names()).unwrap_err();
    assert!(
        errors[0].reason.contains("`audit` is under a minute"),
        "{errors:?}"
    );
    // But not another copy rule.
    let dead = format!("{good}\n[[rule]]\nname = \"late\"\naction = \"copy\"\ncopies = 1\ntargets = [\"wasabi\"]\n");
    let errors = RuleSet::parse(&dead, &names()).unwrap_err();
    assert!(
        errors[0]
            .reason
            .contains("never reached: rule \"everything-once\""),
        "{errors:?}"
    );
}
