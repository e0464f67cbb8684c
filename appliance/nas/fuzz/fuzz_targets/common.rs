//! The service every target feeds: one share on a folder of its own holding a file and
//! a subfolder, so that calls find something to act on.

use std::sync::OnceLock;

use rushes_nas::server::fuzzing::Harness;
use rushes_nas::{Service, ShareConfig};

pub fn harness() -> &'static Harness {
    // The folder is kept beside the harness for the process's life: it serves from it.
    static HARNESS: OnceLock<(tempfile::TempDir, Harness)> = OnceLock::new();
    &HARNESS
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let share = dir.path().join("share");
            std::fs::create_dir_all(share.join("reel1")).expect("the share's folder");
            std::fs::write(share.join("reel1/a001.mov"), vec![7u8; 70_000]).expect("a file");
            // Open to the squashed and the unsquashed caller alike, so that writes get in.
            use std::os::unix::fs::PermissionsExt;
            for dir in [share.clone(), share.join("reel1")] {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                    .expect("the share's mode");
            }
            let state = dir.path().join("state");
            std::fs::create_dir_all(&state).expect("the state folder");
            let config = ShareConfig {
                name: "share".into(),
                path: share,
                rules: vec![Default::default()],
                allow_devices: false,
            };
            let service = Service::new(&[config], &state).expect("the service starts");
            (dir, Harness::new(service).expect("the harness starts"))
        })
        .1
}
