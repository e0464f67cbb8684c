//! Helpers for the end-to-end tests and benchmarks: start and kill `rushesd host`, mount
//! it with a real NFSv3 client as a chosen user, and send hand-made RPC records.

pub mod bays;
pub mod bench;
pub mod bench_servers;
pub mod browser;
pub mod client;
pub mod guest;
pub mod ntp;
pub mod openapi;
pub mod rawrpc;
pub mod vm;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use nfs3_client;
use nfs3_client::net::Connector;
use nfs3_client::nfs3_types::nfs3::{self as t, nfs_fh3, Nfs3Result};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::TokioIo;

/// A TCP port of 127.0.0.1 that nothing listens on now (the kernel's pick).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback TCP port")
        .port()
}

/// A UDP port of 127.0.0.1 that nothing has bound now (the kernel's pick).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind a loopback UDP port")
        .port()
}

/// Path of the `rushesd` binary built by this workspace (`RUSHESD_BIN` overrides).
pub fn rushesd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RUSHESD_BIN") {
        return p.into();
    }
    workspace_bin("rushesd")
}

/// Path of a binary this workspace builds: of the build the caller is part of (a bench
/// in target/release runs release servers), else the debug build first.
pub fn workspace_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let released = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.file_name()? == "release"))
        .unwrap_or(false);
    let profiles = if released {
        ["release", "debug"]
    } else {
        ["debug", "release"]
    };
    for profile in profiles {
        let p = target.join(profile).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not built: run `cargo build --workspace --bins` (make test does this)");
}

/// A `rushesd host` child process.
pub struct ServerProcess {
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Run through this command (`ip netns exec NAME`).
    prefix: Vec<String>,
    pub addr: SocketAddr,
    /// The portmapper's own address, when it has one.
    pub portmap: Option<SocketAddr>,
    pub log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl ServerProcess {
    /// Start `rushesd host` with its management API on `STATE/api.sock`, its state in
    /// STATE and `STATE/demo` (writable by everyone) served as /demo; returns the API
    /// socket once it exists.
    pub fn start_with_api(state: &Path) -> (Self, PathBuf) {
        Self::start_with_api_and(state, &[])
    }

    /// [`Self::start_with_api`] with more arguments (`--catalog`).
    pub fn start_with_api_and(state: &Path, more: &[&str]) -> (Self, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let share = state.join("demo");
        std::fs::create_dir_all(&share).expect("share folder");
        std::fs::set_permissions(&share, std::fs::Permissions::from_mode(0o777))
            .expect("share folder mode");
        let sock = state.join("api.sock");
        let demo = format!("demo={}", share.display());
        let mut args = vec![
            "--state-dir",
            state.to_str().expect("utf-8 path"),
            "--api",
            sock.to_str().expect("utf-8 path"),
            demo.as_str(),
        ];
        args.extend_from_slice(more);
        let server = Self::start(&args);
        let deadline = Instant::now() + Duration::from_secs(20);
        // Until it answers, not until the file is there: the file appears when the
        // socket is bound, a moment before rushesd listens on it.
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                Instant::now() < deadline,
                "no API socket:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (server, sock)
    }

    /// Start `rushesd host --listen 127.0.0.1:0 ARGS…` and wait until it serves. Its
    /// portmapper gets a free port of its own unless ARGS place it.
    pub fn start(args: &[&str]) -> Self {
        Self::start_at("127.0.0.1:0".parse().expect("addr"), args, &[])
    }

    /// Start `rushesd host --listen ADDR ARGS…` with extra environment variables.
    pub fn start_at(addr: SocketAddr, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_with_prefix(&[], addr, args, env)
    }

    /// Start `PREFIX… rushesd host --listen ADDR ARGS…` (e.g. in a network namespace).
    pub fn start_with_prefix(
        prefix: &[String],
        addr: SocketAddr,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let logdir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if !args.iter().any(|a| a == "--portmap") {
            args.extend(["--portmap".to_string(), format!("{}:0", addr.ip())]);
        }
        let mut server = Self {
            child: None,
            args,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            prefix: prefix.to_vec(),
            addr,
            portmap: None,
            log: logdir.path().join("rushesd.log"),
            _logdir: logdir,
        };
        server.spawn();
        server
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut command = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(rushesd_bin());
                c
            }
            None => Command::new(rushesd_bin()),
        };
        let mut child = command
            .arg("host")
            .arg("--listen")
            .arg(self.addr.to_string())
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("RUSHES_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rushesd");
        // Copy stderr to the log file and learn the bound address from it.
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = log;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if let Some(addr) = line.split("portmap=").nth(1) {
                    let _ = tx.send((true, addr.trim().to_string()));
                }
                if let Some(addr) = line.split(" addr=").nth(1) {
                    let _ = tx.send((false, addr.trim().to_string()));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((true, addr)) => self.portmap = Some(addr.parse().expect("portmap address")),
                Ok((false, addr)) => {
                    self.addr = addr.parse().expect("server address");
                    break;
                }
                Err(_) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("rushesd exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "rushesd did not start:\n{}",
                self.log_text()
            );
        }
        self.child = Some(child);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("signal");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "rushesd ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start again on the same port with the same arguments.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Resident memory of the server process, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// A line of the server's /proc status in KiB (`VmRSS:`, `VmHWM:`, `RssAnon:`).
    pub fn status_kib(&self, key: &str) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An AUTH_SYS identity.
#[derive(Debug, Clone)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl User {
    pub fn new(uid: u32, gid: u32) -> Self {
        Self {
            uid,
            gid,
            gids: vec![],
        }
    }

    pub fn root() -> Self {
        Self::new(0, 0)
    }

    pub fn credential(&self) -> opaque_auth<'static> {
        opaque_auth::auth_unix(&auth_unix {
            stamp: 1,
            machinename: Opaque::owned(b"edit-bay".to_vec()),
            uid: self.uid,
            gid: self.gid,
            gids: self.gids.clone(),
        })
    }
}

/// Connects from a chosen local address (127.0.0.2 …) to exercise client rules.
pub struct FromAddr(pub IpAddr);

impl Connector for FromAddr {
    type Connection = TokioIo<tokio::net::TcpStream>;

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Self::Connection> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(self.0, 0))?;
        Ok(TokioIo::new(socket.connect(addr).await?))
    }

    async fn connect_with_port(
        &self,
        addr: SocketAddr,
        _local_port: u16,
    ) -> std::io::Result<Self::Connection> {
        self.connect(addr).await
    }
}

pub type NfsStatus = t::nfsstat3;
type Conn = nfs3_client::Nfs3Connection<TokioIo<tokio::net::TcpStream>>;

/// A mounted share, as one user, with shorthand for the calls tests make.
pub struct Nfs {
    pub conn: Conn,
    pub root: nfs_fh3,
}

fn ok<T, E: std::fmt::Debug>(
    r: Result<Nfs3Result<T, E>, nfs3_client::RpcError>,
) -> Result<T, NfsStatus> {
    match r.expect("RPC transport failed") {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((status, _)) => Err(status),
    }
}

pub fn name(s: &str) -> t::filename3<'static> {
    t::filename3::from(s.as_bytes().to_vec())
}

pub fn dirop(dir: &nfs_fh3, n: &str) -> t::diropargs3<'static> {
    t::diropargs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

impl Nfs {
    pub async fn mount(
        port: u16,
        export: &str,
        user: &User,
    ) -> Result<Self, nfs3_client::ConnectError> {
        Self::mount_from("127.0.0.1".parse().expect("ip"), port, export, user).await
    }

    pub async fn mount_from(
        source: IpAddr,
        port: u16,
        export: &str,
        user: &User,
    ) -> Result<Self, nfs3_client::ConnectError> {
        let conn = nfs3_client::Nfs3ConnectionBuilder::new(FromAddr(source), "127.0.0.1", export)
            .mount_port(port)
            .nfs3_port(port)
            .connect_from_privileged_port(false)
            .credential(user.credential())
            .mount()
            .await?;
        let root = conn.root_nfs_fh3();
        Ok(Self { conn, root })
    }

    pub async fn getattr(&mut self, fh: &nfs_fh3) -> Result<t::fattr3, NfsStatus> {
        ok(self
            .conn
            .getattr(&t::GETATTR3args { object: fh.clone() })
            .await)
        .map(|r| r.obj_attributes)
    }

    pub async fn lookup(&mut self, dir: &nfs_fh3, n: &str) -> Result<nfs_fh3, NfsStatus> {
        ok(self
            .conn
            .lookup(&t::LOOKUP3args {
                what: dirop(dir, n),
            })
            .await)
        .map(|r| r.object)
    }

    pub async fn create(
        &mut self,
        dir: &nfs_fh3,
        n: &str,
        mode: u32,
    ) -> Result<nfs_fh3, NfsStatus> {
        let how = t::createhow3::GUARDED(t::sattr3 {
            mode: t::set_mode3::Some(mode),
            ..Default::default()
        });
        let r = ok(self
            .conn
            .create(&t::CREATE3args {
                where_: dirop(dir, n),
                how,
            })
            .await)?;
        Ok(r.obj.unwrap())
    }

    pub async fn mkdir(&mut self, dir: &nfs_fh3, n: &str, mode: u32) -> Result<nfs_fh3, NfsStatus> {
        let attributes = t::sattr3 {
            mode: t::set_mode3::Some(mode),
            ..Default::default()
        };
        let r = ok(self
            .conn
            .mkdir(&t::MKDIR3args {
                where_: dirop(dir, n),
                attributes,
            })
            .await)?;
        Ok(r.obj.unwrap())
    }

    pub async fn write(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        data: &[u8],
        stable: t::stable_how,
    ) -> Result<t::WRITE3resok, NfsStatus> {
        let args = t::WRITE3args {
            file: fh.clone(),
            offset,
            count: data.len() as u32,
            stable,
            data: Opaque::borrowed(data),
        };
        ok(self.conn.write(&args).await)
    }

    pub async fn read(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        count: u32,
    ) -> Result<(Vec<u8>, bool), NfsStatus> {
        let r = ok(self
            .conn
            .read(&t::READ3args {
                file: fh.clone(),
                offset,
                count,
            })
            .await)?;
        Ok((r.data.to_vec(), r.eof))
    }

    /// Read a whole file in 1 MiB requests.
    pub async fn read_all(&mut self, fh: &nfs_fh3) -> Result<Vec<u8>, NfsStatus> {
        let mut data = Vec::new();
        loop {
            let (chunk, eof) = self.read(fh, data.len() as u64, 1 << 20).await?;
            data.extend_from_slice(&chunk);
            if eof || chunk.is_empty() {
                return Ok(data);
            }
        }
    }

    /// Create (or reuse) `n` in the export's root and write `data` to it with FILE_SYNC
    /// writes of 1 MiB; returns its handle.
    pub async fn put_file(&mut self, n: &str, data: &[u8]) -> Result<nfs_fh3, NfsStatus> {
        let root = self.root.clone();
        let fh = match self.create(&root, n, 0o644).await {
            Err(t::nfsstat3::NFS3ERR_EXIST) => self.lookup(&root, n).await?,
            other => other?,
        };
        for (i, chunk) in data.chunks(1 << 20).enumerate() {
            self.write(&fh, (i as u64) << 20, chunk, t::stable_how::FILE_SYNC)
                .await?;
        }
        Ok(fh)
    }

    pub async fn commit(&mut self, fh: &nfs_fh3) -> Result<[u8; 8], NfsStatus> {
        ok(self
            .conn
            .commit(&t::COMMIT3args {
                file: fh.clone(),
                offset: 0,
                count: 0,
            })
            .await)
        .map(|r| r.verf.0)
    }

    pub async fn remove(&mut self, dir: &nfs_fh3, n: &str) -> Result<(), NfsStatus> {
        ok(self
            .conn
            .remove(&t::REMOVE3args {
                object: dirop(dir, n),
            })
            .await)
        .map(|_| ())
    }

    pub async fn setattr(&mut self, fh: &nfs_fh3, attrs: t::sattr3) -> Result<(), NfsStatus> {
        let args = t::SETATTR3args {
            object: fh.clone(),
            new_attributes: attrs,
            guard: t::sattrguard3::None,
        };
        ok(self.conn.setattr(&args).await).map(|_| ())
    }

    pub async fn access(&mut self, fh: &nfs_fh3, mask: u32) -> Result<u32, NfsStatus> {
        ok(self
            .conn
            .access(&t::ACCESS3args {
                object: fh.clone(),
                access: mask,
            })
            .await)
        .map(|r| r.access)
    }

    /// List a directory completely with READDIRPLUS, `count` bytes a reply, following
    /// cookies: every entry as the replies gave it.
    pub async fn list_plus(
        &mut self,
        dir: &nfs_fh3,
        count: u32,
    ) -> Result<Vec<PlusEntry>, NfsStatus> {
        let mut out = Vec::new();
        let (mut cookie, mut verf) = (0, t::cookieverf3::default());
        loop {
            let args = t::READDIRPLUS3args {
                dir: dir.clone(),
                cookie,
                cookieverf: verf,
                dircount: count,
                maxcount: count,
            };
            let r = ok(self.conn.readdirplus(&args).await)?;
            verf = r.cookieverf;
            for e in r.reply.entries.0 {
                out.push(PlusEntry {
                    name: String::from_utf8_lossy(&e.name.0.to_vec()).into_owned(),
                    fileid: e.fileid,
                    attr: match e.name_attributes {
                        t::Nfs3Option::Some(a) => Some(a),
                        t::Nfs3Option::None => None,
                    },
                    has_handle: e.name_handle.is_some(),
                });
                cookie = e.cookie;
            }
            if r.reply.eof {
                return Ok(out);
            }
        }
    }

    /// List a directory completely with READDIR (or READDIRPLUS), `count` bytes a reply,
    /// following cookies. Returns (name, fileid) in order.
    pub async fn list(
        &mut self,
        dir: &nfs_fh3,
        count: u32,
        plus: bool,
    ) -> Result<Vec<(String, u64)>, NfsStatus> {
        if plus {
            let entries = self.list_plus(dir, count).await?;
            return Ok(entries
                .into_iter()
                .map(|e| {
                    assert!(e.has_handle, "READDIRPLUS entry without handle");
                    (e.name, e.fileid)
                })
                .collect());
        }
        let mut out = Vec::new();
        let (mut cookie, mut verf) = (0, t::cookieverf3::default());
        loop {
            let args = t::READDIR3args {
                dir: dir.clone(),
                cookie,
                cookieverf: verf,
                count,
            };
            let r = ok(self.conn.readdir(&args).await)?;
            verf = r.cookieverf;
            for e in r.reply.entries.0 {
                out.push((
                    String::from_utf8_lossy(&e.name.0.to_vec()).into_owned(),
                    e.fileid,
                ));
                cookie = e.cookie;
            }
            if r.reply.eof {
                return Ok(out);
            }
        }
    }
}

/// One READDIRPLUS entry.
pub struct PlusEntry {
    pub name: String,
    pub fileid: u64,
    pub attr: Option<t::fattr3>,
    pub has_handle: bool,
}

/// Build an RPC call record (with record mark) by hand.
pub fn rpc_record(
    xid: u32,
    program: u32,
    version: u32,
    procedure: u32,
    user: Option<&User>,
    args: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    let mut put = |v: u32| body.extend_from_slice(&v.to_be_bytes());
    for v in [xid, 0, 2, program, version, procedure] {
        put(v);
    }
    match user {
        Some(u) => {
            let mut cred = Vec::new();
            for v in [1u32, 4] {
                cred.extend_from_slice(&v.to_be_bytes());
            }
            cred.extend_from_slice(b"host");
            for v in [u.uid, u.gid, 0] {
                cred.extend_from_slice(&v.to_be_bytes());
            }
            body.extend_from_slice(&1u32.to_be_bytes());
            body.extend_from_slice(&(cred.len() as u32).to_be_bytes());
            body.extend_from_slice(&cred);
        }
        None => body.extend_from_slice(&[0; 8]),
    }
    body.extend_from_slice(&[0; 8]); // verifier AUTH_NONE
    body.extend_from_slice(args);
    let mut record = ((body.len() as u32) | 0x8000_0000).to_be_bytes().to_vec();
    record.extend_from_slice(&body);
    record
}

/// Read one reply record (without its mark) from a blocking stream.
pub fn read_reply(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    loop {
        let mut mark = [0u8; 4];
        stream.read_exact(&mut mark)?;
        let mark = u32::from_be_bytes(mark);
        let at = reply.len();
        reply.resize(at + (mark & 0x7fff_ffff) as usize, 0);
        stream.read_exact(&mut reply[at..])?;
        if mark & 0x8000_0000 != 0 {
            return Ok(reply);
        }
    }
}

/// The big-endian word at `index` of a reply.
pub fn word(reply: &[u8], index: usize) -> u32 {
    u32::from_be_bytes(reply[index * 4..index * 4 + 4].try_into().expect("4 bytes"))
}

/// A write lock on the whole of `path`, taken as a local program (or Samba) takes it:
/// an open file description lock, held while the file returned is open. None when
/// someone else (an NFS client through the server, say) holds a conflicting one.
pub fn local_lock(path: &Path) -> Option<std::fs::File> {
    use std::os::fd::AsFd;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open the locked file");
    // SAFETY: `flock` is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    nix::fcntl::fcntl(f.as_fd(), nix::fcntl::FcntlArg::F_OFD_SETLK(&fl))
        .is_ok()
        .then_some(f)
}

/// Whether a local program can lock the whole of `path` now: false while an NFS client
/// holds a lock on it through the server.
pub fn local_lock_free(path: &Path) -> bool {
    local_lock(path).is_some()
}

/// Move `name`'s data (share `media` at `root/fast/media`, home pool `fast`) to pool
/// `to` at `root/to`, as the host tests over folders standing for pools do.
pub fn move_media(
    places: &rushes_placement::DataPlaces,
    root: &std::path::Path,
    name: &str,
    to: &str,
) -> Result<(), rushes_placement::MoveError> {
    struct Quiet;
    impl rushes_placement::MoveWatch for Quiet {}
    let spec = rushes_placement::MoveSpec {
        share: "media".into(),
        share_root: root.join("fast/media"),
        path: format!("/{name}"),
        home: "fast".into(),
        home_root: root.join("fast"),
        to: to.into(),
    };
    rushes_placement::move_file(places, &spec, &root.join(to), &mut Quiet).map(|_| ())
}

/// An `s3-target` child process: an S3 server over a folder (ROOT/BUCKET/KEY) on a
/// loopback port, with access key `AK` and secret `secret`, made hostile by `how`
/// (`--delay-ms N`, `--throttle-every N`, `--lie`).
pub struct S3Target {
    child: Child,
    pub port: u16,
}

impl S3Target {
    pub fn start(root: &Path, buckets: &[&str], how: &[&str]) -> Self {
        let mut cmd = Command::new(workspace_bin("s3-target"));
        cmd.arg("--root").arg(root);
        for bucket in buckets {
            cmd.args(["--bucket", bucket]);
        }
        let mut child = cmd
            .args(how)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3-target");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("s3-target's first line");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("s3-target said {line:?}"));
        Self { child, port }
    }
}

impl Drop for S3Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `cmd` with `input` on its standard input: (stdout then stderr, exit code; -1 when
/// a signal ended it).
pub fn output_with_input(mut cmd: std::process::Command, input: &str) -> (String, i32) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the program starts");
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading its input is not a failure here.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().expect("the program ends");
    (
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        out.status.code().unwrap_or(-1),
    )
}

/// `python3 -m http.server` serving a folder on loopback (a QEMU guest reaches it at
/// 10.0.2.2), as a web server publishing update bundles would.
pub struct HttpFolder {
    child: std::process::Child,
    port: u16,
}

impl HttpFolder {
    pub fn serve(dir: &std::path::Path) -> Self {
        let port = free_tcp_port();
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "python3 -m http.server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }

    /// The URL of `file` as seen from `host` (127.0.0.1 here, 10.0.2.2 in a guest).
    pub fn url(&self, host: &str, file: &str) -> String {
        format!("http://{host}:{}/{file}", self.port)
    }
}

impl Drop for HttpFolder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
