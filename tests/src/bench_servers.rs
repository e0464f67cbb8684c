//! The servers the benchmarks compare, started on one backing folder: NFS-Ganesha 4.3
//! (VFS FSAL, NFSv3, with NLM, and the rpcbind and rpc.statd it needs) and `rushesd
//! host` with any extra flags.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{Nfs, User};

/// A server being benchmarked, stopped (with the daemons started for it) when dropped.
pub struct Server {
    pub name: &'static str,
    pub child: Child,
    pub nfs: SocketAddr,
    /// The lock manager (NLM v4 over TCP).
    pub nlm: SocketAddr,
    pub mount: SocketAddr,
    pub export: String,
    /// Daemons started for this server (rpcbind, rpc.statd), stopped with it: left
    /// running, rpcbind would hold port 111 that rushesd's portmapper wants.
    pub started: Vec<&'static str>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for daemon in &self.started {
            let _ = Command::new("pkill").arg("-x").arg(daemon).status();
        }
    }
}

pub async fn wait_mount(server: &Server) -> Result<Nfs> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = crate::nfs3_client::Nfs3ConnectionBuilder::new(
            crate::FromAddr("127.0.0.1".parse()?),
            "127.0.0.1",
            &server.export,
        )
        .mount_port(server.mount.port())
        .nfs3_port(server.nfs.port())
        .connect_from_privileged_port(false)
        .credential(User::root().credential())
        .mount()
        .await;
        match attempt {
            Ok(conn) => {
                let root = conn.root_nfs_fh3();
                return Ok(Nfs { conn, root });
            }
            Err(e) if Instant::now() > deadline => bail!("{} did not come up: {e:?}", server.name),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Start `daemon ARGS` unless one runs already; true if this started it.
fn ensure_running(daemon: &str, args: &[&str], why: &str) -> Result<bool> {
    // Not counting zombies: a daemon killed by the last run may linger as one.
    let running = Command::new("pgrep")
        .args(["-x", "--runstates", "R,S,D"])
        .arg(daemon)
        .stdout(Stdio::null())
        .status()?
        .success();
    if !running {
        let status = Command::new(daemon)
            .args(args)
            .status()
            .context(why.to_string())?;
        anyhow::ensure!(status.success(), "{daemon} did not start");
    }
    Ok(!running)
}

pub fn start_ganesha(dir: &Path, export: &Path) -> Result<Server> {
    let mut started = Vec::new();
    if ensure_running(
        "rpcbind",
        &[],
        "Ganesha needs rpcbind (Debian package rpcbind)",
    )? {
        started.push("rpcbind");
    }
    // A Ganesha killed earlier may have left its programs registered, and Ganesha does
    // not start when it cannot register them ("Cannot register NFS V3 on UDP").
    for (program, version) in [
        ("100003", "3"),
        ("100005", "1"),
        ("100005", "3"),
        ("100021", "4"),
    ] {
        let _ = Command::new("rpcinfo")
            .args(["-d", program, version])
            .stderr(Stdio::null())
            .status();
    }
    // Ganesha's lock manager asks the local rpc.statd to monitor each client.
    if ensure_running(
        "rpc.statd",
        &["--no-notify"],
        "Ganesha's NLM needs rpc.statd (Debian package nfs-common)",
    )? {
        started.push("rpc.statd");
    }
    let conf = dir.join("ganesha.conf");
    std::fs::write(
        &conf,
        format!(
            "NFS_CORE_PARAM {{ Protocols = 3; NFS_Port = 22049; MNT_Port = 22048; NLM_Port = 22047; Enable_NLM = true; \
             Enable_RQUOTA = false; Bind_addr = 127.0.0.1; }}\n\
             NFSV4 {{ Graceless = true; }}\n\
             EXPORT {{ Export_Id = 1; Path = {0}; Pseudo = /bench; Access_Type = RW; Squash = No_Root_Squash; \
             Protocols = 3; Transports = TCP; SecType = sys; FSAL {{ Name = VFS; }} }}\n\
             LOG {{ Default_Log_Level = WARN; }}\n",
            export.display()
        ),
    )?;
    let child = Command::new("ganesha.nfsd")
        .args(["-F", "-N", "NIV_WARN", "-f"])
        .arg(&conf)
        .arg("-L")
        .arg(dir.join("ganesha.log"))
        .arg("-p")
        .arg(dir.join("ganesha.pid"))
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start ganesha.nfsd (Debian packages nfs-ganesha, nfs-ganesha-vfs)")?;
    Ok(Server {
        name: "NFS-Ganesha",
        child,
        nfs: "127.0.0.1:22049".parse()?,
        nlm: "127.0.0.1:22047".parse()?,
        mount: "127.0.0.1:22048".parse()?,
        started,
        export: export.display().to_string(),
    })
}

/// `rushesd host` serving `export` as /bench on `port`, with `more_config` (`[[rate]]`
/// rules, say) after the share in its config file.
pub fn start_rushesd(
    bin: &Path,
    dir: &Path,
    export: &Path,
    port: u16,
    extra: &[&str],
    name: &'static str,
    more_config: &str,
) -> Result<Server> {
    let conf = dir.join(format!("rushesd-{port}.toml"));
    std::fs::write(
        &conf,
        format!(
            "[[share]]\nname = \"bench\"\npath = \"{}\"\n[[share.rule]]\nroot_squash = false\n{more_config}",
            export.display()
        ),
    )?;
    let child = Command::new(bin)
        .args(["host", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(&conf)
        .args(extra)
        .arg("--state-dir")
        .arg(dir.join(format!("state-{port}")))
        // Port 111 belongs to the rpcbind Ganesha registers with.
        .args(["--portmap", "127.0.0.1:0"])
        // On the bench's disk, as the appliance keeps it on the pool it serves.
        .arg("--audit-dir")
        .arg(dir.join(format!("audit-{port}")))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {} (make bench builds it)", bin.display()))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    Ok(Server {
        name,
        child,
        nfs: addr,
        nlm: addr,
        mount: addr,
        started: Vec::new(),
        export: "/bench".into(),
    })
}
