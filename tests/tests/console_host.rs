//! The console (`rushes-console`) against a real rushesd in host mode, in a
//! pseudo-terminal of 80×25 read through a VT100 screen parser: what an admin at the
//! appliance's screen would see after each key.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rushes_tests::guest::write_share_file_blocking;
use rushes_tests::{workspace_bin, ServerProcess};

/// The console running in a pty, and the screen it has drawn so far.
struct Console {
    child: std::process::Child,
    master: std::fs::File,
    screen: Arc<Mutex<vt100::Parser>>,
}

impl Console {
    fn start(socket: &std::path::Path) -> Self {
        Self::start_with(socket, &[])
    }

    /// The console with `args` besides its refresh of 1 s.
    fn start_with(socket: &std::path::Path, args: &[&str]) -> Self {
        let size = nix::pty::Winsize {
            ws_row: 25,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        let stdio = |fd: &OwnedFd| Stdio::from(fd.as_fd().try_clone_to_owned().expect("dup"));
        let child = Command::new(workspace_bin("rushes-console"))
            .args(["--refresh", "1"])
            .args(args)
            .env("RUSHES_API", socket)
            .env("TERM", "linux")
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave))
            .spawn()
            .expect("start rushes-console");
        drop(slave);
        let master = std::fs::File::from(pty.master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(25, 80, 0)));
        let (mut reader, parser) = (master.try_clone().unwrap(), Arc::clone(&screen));
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                parser.lock().unwrap().process(&buf[..n]);
            }
        });
        Self {
            child,
            master,
            screen,
        }
    }

    fn text(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Wait until every one of `needles` is on the screen at once.
    fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text();
            if needles.iter().all(|n| text.contains(n)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{needles:?} not on the screen; it shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn key(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ENTER: &str = "\r";
const TAB: &str = "\t";
const ESC: &str = "\x1b";
const RIGHT: &str = "\x1b[C";
const LEFT: &str = "\x1b[D";
const BACKSPACE: &str = "\x7f";

#[test]
fn first_boot_wizard_screens_lock_and_a_lost_rushesd() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("log.txt"),
        "1 init: started udevd\n2 init: rushesd is ready\n",
    )
    .unwrap();
    // Boot slots in a folder, and a bundle signed with the key they trust, for the
    // Power screen's update.
    let esp = dir.path().join("esp");
    rushes_update::slots::Esp::create(&esp, "0.1.0", [b"kernel", b"initrd", b"root"]).unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = rushes_update::SecretKey::generate().unwrap();
    std::fs::write(keys.join("maker.pub"), key.public().to_line()).unwrap();
    std::fs::write(dir.path().join("k"), b"a kernel of the next version").unwrap();
    std::fs::write(dir.path().join("i"), b"an initramfs of the next version").unwrap();
    std::fs::write(dir.path().join("r"), b"a root image of the next version").unwrap();
    let bundle = dir.path().join("rushes-0.2.0.bundle");
    rushes_update::make(
        &mut std::fs::File::create(&bundle).unwrap(),
        &key,
        "0.2.0",
        "0.1.0",
        "",
        &[
            &dir.path().join("k"),
            &dir.path().join("i"),
            &dir.path().join("r"),
        ],
    )
    .unwrap();
    let (mut server, sock) = ServerProcess::start_with_api_and(
        dir.path(),
        &[
            "--catalog",
            "--web",
            "127.0.0.1:0",
            "--esp",
            esp.to_str().unwrap(),
            "--update-keys",
            keys.to_str().unwrap(),
        ],
    );
    let mut console = Console::start(&sock);

    // The wizard, from a blank config.
    console.wait_for(&[
        "First-boot setup",
        "Welcome to Rushes",
        "Press Enter to begin",
    ]);
    console.key(ENTER);
    console.wait_for(&["Step 1 of 4", "> Host name", "[rushes_]"]);
    console.key(&BACKSPACE.repeat(6));
    console.key("edit-bay-nas");
    console.wait_for(&["[edit-bay-nas_]"]);
    console.key(ENTER);
    console.wait_for(&["Step 2 of 4", "Network interfaces", "DHCP (the default)"]);
    console.key("s");
    console.wait_for(&["Static address", "Address (CIDR)", "MTU (9000 = jumbo)"]);
    console.key("\x1b");
    console.wait_for(&["DHCP (the default)"]);
    console.key(ENTER);
    console.wait_for(&["Step 3 of 4", "> Admin password"]);
    console.key("short");
    console.key(TAB);
    console.key("short");
    console.key(ENTER);
    console.wait_for(&["at least 8 characters"]);
    console.key(&BACKSPACE.repeat(5));
    console.key("correct horsE");
    console.key(TAB);
    console.key(&BACKSPACE.repeat(5));
    console.key("correct horse");
    console.key(ENTER);
    console.wait_for(&["the two passwords differ"]);
    console.key(TAB);
    console.key(BACKSPACE);
    console.key("e");
    console.key(ENTER);
    console.wait_for(&["Step 4 of 4", "[UTC", "pool.ntp.org"]);
    console.key(&BACKSPACE.repeat(3));
    console.key("Mars/Olympus");
    console.key(ENTER);
    console.wait_for(&["is not a known time zone"]);
    console.key(&BACKSPACE.repeat(12));
    console.key("Asia/Tokyo");
    console.key(ENTER);
    let done = console.wait_for(&[
        "Setup is saved",
        "Reach this box at:",
        "Linux:",
        "macOS:",
        "Windows:",
    ]);
    assert!(done.contains("mount -t nfs"), "{done}");
    let stored = std::fs::read_to_string(dir.path().join("rushes.toml")).unwrap();
    assert!(
        stored.contains("hostname = \"edit-bay-nas\"")
            && stored.contains("$argon2id$")
            && !stored.contains("correct horse"),
        "{stored}"
    );
    console.key(ENTER);

    // The menu screens. An NFS client writing shows up on the dashboard.
    let port = server.port();
    write_share_file_blocking(port, "/demo", "reel.mov", &vec![7u8; 4 << 20]);
    let dash = console.wait_for(&[
        "Dashboard",
        "no pools yet",
        "everything is healthy",
        "client 127.0.0.1",
        "written    4.2 MB",
        "] peak ",
        "Web console  https://",
    ]);
    // The certificate's fingerprint, to compare with what a browser shows on first use.
    let web: rushes_api::WebInfo = rushes_api::Client::new(&sock).get("/v1/web").unwrap();
    let fingerprint = web.certificate.unwrap().fingerprint;
    assert!(
        dash.contains(&format!("certificate SHA-256 {}", &fingerprint[..47])),
        "{dash}"
    );
    for key in [
        "D Dash", "K Disk", "P Pool", "S Share", "M Place", "N Net", "L Log", "O Power", "A Alert",
        "T Activ", "X Lock",
    ] {
        assert!(dash.contains(key), "the menu lacks {key:?}:\n{dash}");
    }
    assert!(dash.lines().count() <= 25 && dash.lines().all(|l| l.chars().count() <= 80));
    // The Activity screen: the client's minute as a sparkline, the film at the top of
    // the files, and the audit log's record of it, searched by path.
    console.key("t");
    let act = console.wait_for(&[
        "Clients, last minute",
        "127.0.0.1",
        "Top files, last minute",
        "demo/reel.mov",
        "uid 1000",
        "nfs3",
        "CREATE  demo:/reel.mov",
    ]);
    assert!(act.lines().all(|l| l.chars().count() <= 80), "{act}");
    console.key("/");
    console.key("nothing-like-this");
    console.key(ENTER);
    console.wait_for(&["paths with \"nothing-like-this\"", "no records"]);
    console.key("/");
    console.key("reel");
    console.key(ENTER);
    console.wait_for(&["paths with \"reel\"", "WRITE   demo:/reel.mov"]);
    // A rate rule set meanwhile shows with what its clients move now (the one that
    // wrote the film, over the last minute); with no pool measured, nothing can be
    // reserved.
    rushes_api::Client::new(&sock)
        .send(
            "PUT",
            "/v1/rates/render-nodes",
            Some(&rushes_api::SetRate {
                clients: vec!["10.10.20.0/24".into(), "127.0.0.0/8".into()],
                shares: vec![],
                cap_mb_s: Some(1000),
                reserve_mb_s: None,
                before: None,
            }),
        )
        .unwrap();
    console.wait_for(&[
        "Rate rules, first match wins (no pool measured: nothing can be reserved)",
        "render-nodes   10.10.20.0/24 +1     cap 1000",
        "getting MB/s: 127.0.0.1 0.1",
    ]);
    // The Search screen: the catalog has the film by name (it is no media file), and a
    // query that does not read is refused where it goes wrong.
    console.key("f");
    console.wait_for(&[
        "Every file in the catalog",
        "demo/reel.mov",
        "1 of 1",
        "share: demo 1",
    ]);
    console.key("/");
    console.key("width:>=wide");
    console.key(ENTER);
    console.wait_for(&["Clips matching \"width:>=wide\"", "at character 7"]);
    console.key("/");
    console.key(ESC);
    console.wait_for(&["Every file in the catalog", "demo/reel.mov"]);
    // More files than a page holds (put there behind the box's back, found by a scan):
    // → and ← turn the pages.
    for i in 1..=14 {
        std::fs::write(dir.path().join(format!("demo/shot{i:02}.txt")), b"notes").unwrap();
    }
    let scan: rushes_api::Job = rushes_api::Client::new(&sock)
        .post("/v1/catalog/scan", &serde_json::json!({}))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rushes_api::Client::new(&sock)
        .get::<rushes_api::media::Found>("/v1/search?q=")
        .unwrap()
        .total
        < 15
    {
        assert!(std::time::Instant::now() < deadline, "scan {}", scan.id);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    console.key("/");
    console.key(ESC);
    console.wait_for(&["1-12 of 15 (→ next page, ← the one before)"]);
    console.key(RIGHT);
    console.wait_for(&["13-15 of 15"]);
    console.key(RIGHT);
    console.wait_for(&["13-15 of 15"]);
    console.key(LEFT);
    console.wait_for(&[
        "1-12 of 15",
        "R brings the clips shown back from their copies",
    ]);
    // A recall of the clips shown: one job for the share (none is released here, so
    // it finds them all on the box).
    console.key("r");
    console.wait_for(&["Recalling the 12 clips shown from their copies (job"]);
    console.key("k");
    console.wait_for(&["Disks", "DISK", "BUS", "SIZE", "SERIAL", "Space pick"]);
    console.key("c");
    console.wait_for(&["Pick disks first"]);
    console.key("p");
    console.wait_for(&["Pools", "POOL", "LEVEL"]);
    // Placement: the rules (none yet), the pools, the runs; a simulate on W, an explain
    // form on E.
    console.key("m");
    console.wait_for(&[
        "Placement",
        "Rules, in order",
        "No rules: every file stays",
        "Pools (L low and H high watermark)",
        "none running",
        "Copy targets",
        "none: rushesctl target set NAME",
        "W what would move  E explain  R run now  C copies now",
    ]);
    // No rule keeps copies: a reconcile is refused, and the console says why.
    console.key("c");
    console.wait_for(&["! no rule keeps copies"]);
    console.key("w");
    console.wait_for(&["files looked at", "Simulated: nothing was moved"]);
    console.key("e");
    console.wait_for(&["Explain where a file's data belongs", "File (SHARE/PATH)"]);
    console.key("demo/reel.mov");
    console.key(ENTER);
    // Host mode serves a folder, not a share on a pool: the API's refusal is shown.
    console.wait_for(&["! there is no share \"demo\"", "rushesctl shares"]);
    // The form stays open for another path; Esc closes it.
    console.key(ESC);
    console.wait_for(&["W what would move  E explain  R run now  C copies now"]);
    console.key("s");
    console.wait_for(&["Shares", "SHARE", "C create a share"]);
    console.key("c");
    console.wait_for(&["Create a share", "(no pool yet)", "Device nodes  [refused"]);
    console.key("projects");
    console.key(TAB);
    console.wait_for(&["Device nodes  [allowed, for an unsquashed root"]);
    console.key(ENTER);
    console.wait_for(&["There is no pool yet"]);
    // Accounts: the form takes a name and a masked password; a host-mode rushesd runs
    // no Samba, so the account is made for NFS names and web logins only, and the
    // console says so.
    console.wait_for(&["Accounts (NFS uid = SMB login)", "none yet: U adds one"]);
    console.key("u");
    console.wait_for(&["Account for SMB", "> Account name"]);
    console.key("editor");
    console.key(TAB);
    console.key("secret1");
    console.wait_for(&["[editor]", "[*******_]"]);
    console.key(ENTER);
    console.wait_for(&[
        "Account editor added: uid 1000, gid 100 over NFS (this rushesd serves no SMB)",
    ]);
    console.wait_for(&["editor           uid 1000   gid 100    no SMB password"]);
    // API tokens are listed here (never their secrets) and revoked by name.
    let api = rushes_api::Client::new(&sock);
    let made: rushes_api::CreatedToken = api
        .post(
            "/v1/tokens",
            &serde_json::json!({ "name": "night-render", "role": "operator" }),
        )
        .unwrap();
    let listed = console.wait_for(&["API tokens (1;", "night-render", "operator", "expires in"]);
    assert!(!listed.contains(&made.secret));
    console.key("r");
    console.wait_for(&["Revoke an API token", "Token name"]);
    console.key("night-render");
    console.key(ENTER);
    console.wait_for(&["Token night-render revoked"]);
    let left: Vec<rushes_api::Token> = api.get("/v1/tokens").unwrap();
    assert!(left.is_empty(), "{left:?}");
    console.key("\x1b");
    // A lone Esc, not the start of Alt+N.
    std::thread::sleep(Duration::from_millis(300));
    console.key("n");
    console.wait_for(&[
        "Interfaces",
        "host name  edit-bay-nas",
        "DHCP on every wired NIC",
        "time zone  Asia/Tokyo",
        "local time ",
        " JST",
        "clock      ",
    ]);
    console.key("l");
    console.wait_for(&["rushesd is ready", "started udevd"]);
    console.key("/");
    console.key("udevd");
    console.key(ENTER);
    // The filtered lines come from the next fetch, which runs in the background.
    let filtered = console.wait_for(&["lines with \"udevd\"", "started udevd"]);
    assert!(!filtered.contains("rushesd is ready"), "{filtered}");
    console.key("\x1b");
    console.key("o");
    console.wait_for(&["R  restart the appliance", "O  power it off"]);
    // The software and its slots; a file that is not a bundle refused with the reason,
    // then a signed bundle written into slot B, which then boots next.
    console.wait_for(&[
        "Software 0.1.0",
        "running from slot A",
        "U  apply a signed update",
    ]);
    // The settings backed up into a share, from where a client takes the file off the
    // box: a short passphrase is refused, and nothing is saved.
    console.key("e");
    console.wait_for(&["Back up the settings", "Into share", "Passphrase (12+)"]);
    console.key("demo");
    console.key(TAB);
    console.key("eight-ch");
    console.key(ENTER);
    console.wait_for(&["needs a passphrase of 12 characters"]);
    // Every file the backups left in the share (a .part one too).
    let backups = || {
        std::fs::read_dir(dir.path().join("demo"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                let name = p.to_string_lossy();
                name.contains(".backup") || name.ends_with(".part")
            })
            .collect::<Vec<_>>()
    };
    assert!(backups().is_empty());
    console.key("e");
    console.wait_for(&["Into share"]);
    console.key("demo");
    console.key(TAB);
    console.key("keep-it-apart-7");
    console.key(ENTER);
    let saved = console.wait_for(&["Saved in share demo as", "rushes-config-"]);
    assert!(!saved.contains("keep-it-apart-7"), "{saved}");
    let [file] = backups()
        .try_into()
        .unwrap_or_else(|v| panic!("one backup: {v:?}"));
    assert!(std::fs::read(&file)
        .unwrap()
        .starts_with(b"rushes-config-backup\n"));
    // Restored from the console: the box reads the backup itself, from a URL (a wrong
    // passphrase: refused after the Y, nothing changed) and from its path on the box.
    // A restore puts each file in place by rename: a new inode says it was written.
    use std::os::unix::fs::MetadataExt;
    let toml = dir.path().join("rushes.toml");
    let inode = || std::fs::metadata(&toml).unwrap().ino();
    let before = inode();
    let web = rushes_tests::HttpFolder::serve(file.parent().unwrap());
    let name = file.file_name().unwrap().to_str().unwrap();
    console.key("i");
    console.wait_for(&["Restore the settings", "Backup (path or URL)"]);
    console.key(&web.url("127.0.0.1", name));
    console.key(TAB);
    console.key("not-the-passphrase");
    console.key(ENTER);
    console.wait_for(&["Replace every setting with the backup's?"]);
    console.key("y");
    console.wait_for(&["passphrase is wrong"]);
    assert_eq!(inode(), before, "a refused restore wrote rushes.toml");
    console.key("i");
    console.wait_for(&["Backup (path or URL)"]);
    console.key(file.to_str().unwrap());
    console.key(TAB);
    console.key("keep-it-apart-7");
    console.key(ENTER);
    console.wait_for(&["Replace every setting with the backup's?"]);
    console.key("y");
    let restored = console.wait_for(&[
        "Restored the settings of ",
        "(version 0.1.0, backed up ",
        "restart rushesd to take them",
    ]);
    assert!(!restored.contains("keep-it-apart-7"), "{restored}");
    assert_ne!(inode(), before, "the restore did not write rushes.toml");
    drop(web);

    console.key("u");
    console.wait_for(&["Bundle (path or URL)"]);
    console.key(dir.path().join("log.txt").to_str().unwrap());
    console.key(ENTER);
    console.wait_for(&["not a Rushes update bundle"]);
    console.key("u");
    console.key(bundle.to_str().unwrap());
    console.key(ENTER);
    console.wait_for(&["Checked and accepted: job"]);
    console.wait_for(&["slot B  trying (3 left)  0.2.0", "boots next"]);
    console.key("r");
    console.wait_for(&["Really reboot the appliance?"]);
    console.key("y");
    console.wait_for(&["host mode"]);

    // The network, changed later from the Network screen.
    console.key("n");
    console.wait_for(&["E to change"]);
    console.key("e");
    console.wait_for(&["DHCP (the default)"]);
    console.key("s");
    console.wait_for(&["Interface (* = all)", "Address (CIDR)"]);
    console.key(TAB);
    console.key("10.9.0.5/24");
    console.key(TAB);
    console.key("10.9.0.1");
    console.key(TAB);
    console.key(TAB);
    console.key(&BACKSPACE.repeat(4));
    console.key("9000");
    console.key(ENTER);
    console.wait_for(&[
        "Network settings saved",
        "10.9.0.5/24 gateway 10.9.0.1",
        "mtu 9000",
    ]);

    // The lock: a wrong password is refused, the right one opens the menu again.
    console.key("x");
    console.wait_for(&["Locked", "This console is locked", "Reach this box at"]);
    console.key(ENTER);
    console.key("guess");
    console.key(ENTER);
    console.wait_for(&["Wrong password."]);
    console.key("correct horse");
    console.key(ENTER);
    console.wait_for(&["Dashboard", "no pools yet"]);

    // A console started on a set-up box starts locked.
    drop(console);
    let mut console = Console::start(&sock);
    let locked = console.wait_for(&["This console is locked"]);
    assert!(!locked.contains("$argon2"), "{locked}");

    // Reset to the defaults from the Power screen: back to the wizard, nothing kept.
    console.key(ENTER);
    console.key("correct horse");
    console.key(ENTER);
    console.wait_for(&["Dashboard"]);
    console.key("o");
    console.wait_for(&["F  reset the settings"]);
    console.key("f");
    console.wait_for(&["Really reset every setting to the defaults?"]);
    console.key("y");
    console.wait_for(&["Welcome to Rushes"]);
    let stored = std::fs::read_to_string(dir.path().join("rushes.toml")).unwrap();
    assert!(
        !stored.contains("argon2") && !stored.contains("edit-bay-nas"),
        "{stored}"
    );

    // rushesd gone: the console says so, in words, and keeps running.
    server.kill9();
    console.wait_for(&["does not answer", "cannot reach rushesd"]);
}

#[test]
fn the_alerts_screen_says_what_is_wrong_and_a_quiet_console_locks_itself() {
    let dir = tempfile::tempdir().unwrap();
    // A jobs file the daemon cannot read: it starts clean and raises an alert.
    std::fs::write(dir.path().join("jobs.json"), "{ half a file").unwrap();
    let (_server, sock) = ServerProcess::start_with_api(dir.path());
    let api = rushes_api::Client::new(&sock);
    api.raw(
        "PUT",
        "/v1/admin/password",
        Some(br#"{"new": "correct horse"}"#),
    )
    .unwrap();
    let mut console = Console::start_with(&sock, &["--lock-after", "3"]);
    console.wait_for(&["This console is locked"]);
    console.key(ENTER);
    console.key("correct horse");
    console.key(ENTER);
    console.wait_for(&["Dashboard", "1 alert(s)"]);
    console.key("a");
    console.wait_for(&[
        "Alerts",
        "jobs.json was damaged",
        "next: the daemon started without what that file held",
    ]);
    // No key for three seconds: the console locks itself and says why.
    console.wait_for(&["This console is locked", "Locked after a quiet spell."]);
}
