use super::*;
use crate::slots::{Esp, SlotState};

struct Fixture {
    dir: tempfile::TempDir,
    key: SecretKey,
    kernel: Vec<u8>,
    initrd: Vec<u8>,
    root: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kernel: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let initrd: Vec<u8> = (0..2_500_000u32).map(|i| (i * 13 % 241) as u8).collect();
        std::fs::write(dir.path().join("vmlinuz"), &kernel).unwrap();
        std::fs::write(dir.path().join("initrd.zst"), &initrd).unwrap();
        let root: Vec<u8> = (0..1_200_000u32).map(|i| (i * 5 % 239) as u8).collect();
        std::fs::write(dir.path().join("root.sqfs"), &root).unwrap();
        Self {
            dir,
            key: SecretKey::generate().unwrap(),
            kernel,
            initrd,
            root,
        }
    }

    fn bundle(&self, version: &str, min: &str) -> Vec<u8> {
        let mut out = Vec::new();
        make(
            &mut out,
            &self.key,
            version,
            min,
            "2026-12-06T00:00:00Z",
            &[
                &self.dir.path().join("vmlinuz"),
                &self.dir.path().join("initrd.zst"),
                &self.dir.path().join("root.sqfs"),
            ],
        )
        .unwrap();
        out
    }

    fn trusted(&self) -> Vec<PublicKey> {
        vec![self.key.public()]
    }

    fn esp(&self) -> (tempfile::TempDir, Esp) {
        let d = tempfile::tempdir().unwrap();
        let esp = Esp::create(
            d.path(),
            "1.0.0",
            [b"old kernel", b"old initrd", b"old root"],
        )
        .unwrap();
        (d, esp)
    }
}

fn check(bundle: &[u8], trusted: &[PublicKey], running: &str) -> Result<Checked, Refused> {
    read_header(&mut &bundle[..])?.check(trusted, running)
}

/// Everything on the ESP: each file's path and bytes.
fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn apply(esp: &Esp, bundle: &[u8], trusted: &[PublicKey], running: &str) -> Result<(), Refused> {
    let mut r = bundle;
    let checked = read_header(&mut r)?.check(trusted, running)?;
    esp.install('b', &checked, &mut r, |_, _| {})
}

#[test]
fn a_bundle_round_trips_into_the_idle_slot_which_then_boots_first() {
    let fx = Fixture::new();
    let bundle = fx.bundle("1.1.0", "1.0.0");
    let (d, esp) = fx.esp();
    let mut seen = Vec::new();
    let mut r = &bundle[..];
    let checked = read_header(&mut r)
        .unwrap()
        .check(&fx.trusted(), "1.0.0")
        .unwrap();
    assert_eq!(checked.manifest.version, "1.1.0");
    assert_eq!(checked.signer, fx.key.public().fingerprint());
    esp.install('b', &checked, &mut r, |done, total| {
        seen.push((done, total))
    })
    .unwrap();
    assert_eq!(
        std::fs::read(d.path().join("rushes/b/vmlinuz")).unwrap(),
        fx.kernel
    );
    assert_eq!(
        std::fs::read(d.path().join("rushes/b/initrd.zst")).unwrap(),
        fx.initrd
    );
    assert_eq!(
        std::fs::read(d.path().join("rushes/b/root.sqfs")).unwrap(),
        fx.root
    );
    assert_eq!(
        std::fs::read(d.path().join("rushes/a/vmlinuz")).unwrap(),
        b"old kernel"
    );
    let total = (fx.kernel.len() + fx.initrd.len() + fx.root.len()) as u64;
    assert_eq!(
        seen.last(),
        Some(&(total, total)),
        "progress reaches the whole payload"
    );
    let slots = esp.slots().unwrap();
    assert_eq!(slots[0].name, 'b');
    assert_eq!(slots[0].state, SlotState::Trying(3));
    assert_eq!(slots[0].version.as_deref(), Some("1.1.0"));
    let entry = std::fs::read_to_string(d.path().join("loader/entries/rushes-b+3.conf")).unwrap();
    assert!(
        entry.contains("rushes.slot=b rushes.version=1.1.0"),
        "{entry}"
    );
}

#[test]
fn bad_bundles_are_refused_with_their_reason_and_change_nothing() {
    let fx = Fixture::new();
    let good = fx.bundle("1.1.0", "1.0.0");
    let (d, esp) = fx.esp();
    let before = snapshot(d.path());
    let refuse = |bundle: &[u8], trusted: &[PublicKey], running: &str| -> String {
        let e = apply(&esp, bundle, trusted, running).expect_err("must be refused");
        assert_eq!(
            snapshot(d.path()),
            before,
            "a refused bundle changed the ESP: {e}"
        );
        e.to_string()
    };

    // Signed by a key the box does not trust.
    let stranger = SecretKey::generate().unwrap().public();
    assert!(refuse(&good, &[stranger], "1.0.0").contains("does not trust"));
    // A manifest changed after signing (the version bumped by hand).
    let mut forged = good.clone();
    let at = forged.windows(5).position(|w| w == b"1.1.0").unwrap();
    forged[at + 2] = b'9';
    assert!(refuse(&forged, &fx.trusted(), "1.0.0").contains("signature does not match"));
    // A box older than the bundle's base.
    let needs_new = fx.bundle("2.0.0", "1.5.0");
    let e = refuse(&needs_new, &fx.trusted(), "1.0.0");
    assert!(
        e.contains("from version 1.5.0 on") && e.contains("runs 1.0.0"),
        "{e}"
    );
    // Not a bundle, a future format, an absurd manifest length.
    assert!(
        refuse(b"hello, world, this is text", &fx.trusted(), "1.0.0")
            .contains("not a Rushes update bundle")
    );
    let mut future = good.clone();
    future[10..12].copy_from_slice(&9u16.to_be_bytes());
    assert!(refuse(&future, &fx.trusted(), "1.0.0").contains("format 9, newer"));
    let mut huge = good.clone();
    huge[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(refuse(&huge, &fx.trusted(), "1.0.0").contains("more than the 65536"));
    // Cut inside the header: refused before anything is written.
    for cut in [
        5,
        14,
        100,
        good.len() - fx.kernel.len() - fx.initrd.len() - fx.root.len() - 10,
    ] {
        let e = refuse(&good[..cut], &fx.trusted(), "1.0.0");
        assert!(
            e.contains("not a Rushes") || e.contains("ends early"),
            "cut at {cut}: {e}"
        );
    }
}

#[test]
fn a_wrong_model_is_refused() {
    let fx = Fixture::new();
    // Sign a manifest for another model by hand, as a bundle for other hardware would be.
    let good = fx.bundle("1.1.0", "1.0.0");
    let raw = read_header(&mut &good[..]).unwrap();
    let text = String::from_utf8(raw.manifest)
        .unwrap()
        .replace(MODEL, "rushes-arm64");
    let mut other = MAGIC.to_vec();
    other.extend_from_slice(&FORMAT.to_be_bytes());
    other.extend_from_slice(&(text.len() as u32).to_be_bytes());
    other.extend_from_slice(text.as_bytes());
    other.extend_from_slice(&fx.key.public().bytes());
    other.extend_from_slice(&fx.key.sign(&signed_message(text.as_bytes())));
    let e = check(&other, &fx.trusted(), "1.0.0")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model \"rushes-arm64\"") && e.contains(MODEL),
        "{e}"
    );
}

#[test]
fn a_truncated_or_damaged_payload_never_boots_and_leaves_the_running_slot_alone() {
    let fx = Fixture::new();
    let good = fx.bundle("1.1.0", "1.0.0");
    for damage in ["truncated", "flipped", "trailing"] {
        let (d, esp) = fx.esp();
        let mut bundle = good.clone();
        match damage {
            "truncated" => bundle.truncate(bundle.len() - 1000),
            "flipped" => {
                let n = bundle.len();
                bundle[n - 5000] ^= 0x40;
            }
            _ => bundle.extend_from_slice(b"extra"),
        }
        let e = apply(&esp, &bundle, &fx.trusted(), "1.0.0")
            .unwrap_err()
            .to_string();
        let slots = esp.slots().unwrap();
        assert_eq!(
            slots[0].name, 'a',
            "{damage}: slot A must still boot first ({e})"
        );
        assert_eq!(slots[0].state, SlotState::Trying(3));
        assert_ne!(
            slots[1].state,
            SlotState::Trying(3),
            "{damage}: B must not be bootable"
        );
        assert_eq!(
            std::fs::read(d.path().join("rushes/a/initrd.zst")).unwrap(),
            b"old initrd"
        );
        match damage {
            "truncated" => assert!(e.contains("1000 bytes short"), "{e}"),
            "flipped" => assert!(e.contains("damaged"), "{e}"),
            _ => assert!(e.contains("bytes after its payload"), "{e}"),
        }
    }
}

#[test]
fn versions_compare_by_number_not_by_text() {
    assert_eq!(compare_versions("1.10.0", "1.9.0"), Ordering::Greater);
    assert_eq!(compare_versions("1.2.3-rc1", "1.2.3"), Ordering::Equal);
    assert_eq!(compare_versions("0.1.0", "0.1.1"), Ordering::Less);
    assert!(parse_version("1.2").is_err());
    assert!(parse_version("one.two.three").is_err());
}

#[test]
fn key_files_round_trip_and_junk_is_not_a_key() {
    let key = SecretKey::generate().unwrap();
    let again = SecretKey::parse(&key.to_line()).unwrap();
    assert_eq!(again.public().bytes(), key.public().bytes());
    let public = PublicKey::parse(&key.public().to_line()).unwrap();
    assert_eq!(public.fingerprint(), key.public().fingerprint());
    assert!(PublicKey::parse("rushes-update-key 1234").is_none());
    assert!(
        PublicKey::parse(&key.to_line()).is_none(),
        "a secret is not a public key"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.pub"), key.public().to_line()).unwrap();
    std::fs::write(dir.path().join("bad.pub"), "nonsense").unwrap();
    let (keys, problems) = PublicKey::load_dir(dir.path());
    assert_eq!(keys.len(), 1);
    assert!(problems[0].contains("bad.pub"), "{problems:?}");
}
