//! The network status monitor (NSM, program 100024): the state number this server shows
//! its clients, the list of clients holding locks here (kept on disk so it survives a
//! restart or a reboot), the SM_NOTIFY that tells them this server restarted, and the
//! SM_NOTIFY by which a client says it rebooted (its locks are then dropped).
//!
//! Linux' and macOS' lock managers monitor a server through their own statd and reclaim
//! their locks when the server's SM_NOTIFY arrives; the server refuses new locks for a
//! grace period meanwhile ([`crate::locks::LockManager::in_grace`]). SM_MON and its
//! relatives are for a host's own lock manager; here that is in-process, so they are
//! refused over the network.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::callback;
use crate::rpc::AcceptError;
use crate::xdr::{put_opaque, put_u32, XdrReader};

pub use crate::programs::{NSM as PROGRAM, NSM_V1 as VERSION};
/// SM_NOTIFY calls in flight at once after a restart.
const NOTIFY_AT_ONCE: usize = 16;
/// SM_MAXSTRLEN.
const MAX_NAME: usize = 1024;
const STAT_FAIL: u32 = 1;

pub fn proc_name(procedure: u32) -> &'static str {
    [
        "NULL",
        "STAT",
        "MON",
        "UNMON",
        "UNMON_ALL",
        "SIMU_CRASH",
        "NOTIFY",
    ]
    .get(procedure as usize)
    .copied()
    .unwrap_or("UNKNOWN")
}

/// A client that holds (or held) locks here, and the address it reaches us at (the name
/// its statd monitors us by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub client: IpAddr,
    pub server: IpAddr,
    pub caller_name: String,
}

impl Peer {
    fn line(&self) -> String {
        // Caller names come from the wire: keep the file one peer per line.
        let name: String = self
            .caller_name
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        format!("{} {} {}\n", self.client, self.server, name)
    }

    fn parse(line: &str) -> Option<Self> {
        let mut f = line.split_whitespace();
        Some(Self {
            client: f.next()?.parse().ok()?,
            server: f.next()?.parse().ok()?,
            caller_name: f.next().unwrap_or_default().to_string(),
        })
    }
}

/// Our side of NSM.
#[derive(Debug)]
pub struct Monitor {
    dir: Option<PathBuf>,
    /// Odd while up; a restart moves it on by two.
    state: u32,
    peers: Mutex<Vec<Peer>>,
}

impl Monitor {
    /// A monitor that keeps nothing on disk (unit tests, a state folder that failed).
    pub fn in_memory() -> Self {
        Self {
            dir: None,
            state: 1,
            peers: Mutex::default(),
        }
    }

    /// Open the monitor's state in `dir`, moving the state number on, and return the
    /// clients that held locks before this start: they are to be notified.
    pub fn open(dir: &Path) -> std::io::Result<(Self, Vec<Peer>)> {
        std::fs::create_dir_all(dir)?;
        let state_file = dir.join("state");
        let old: u32 = std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let state = (old | 1).wrapping_add(2);
        write_atomically(&state_file, format!("{state}\n").as_bytes())?;
        let before: Vec<Peer> = std::fs::read_to_string(dir.join("peers"))
            .unwrap_or_default()
            .lines()
            .filter_map(Peer::parse)
            .collect();
        // Clients that reclaim are monitored again when they get their locks back.
        write_atomically(&dir.join("peers"), b"")?;
        Ok((
            Self {
                dir: Some(dir.to_path_buf()),
                state,
                peers: Mutex::default(),
            },
            before,
        ))
    }

    pub fn state(&self) -> u32 {
        self.state
    }

    /// Remember `peer` as a lock holder (on disk before its first lock is granted).
    pub fn monitor(&self, peer: Peer) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers
            .iter()
            .any(|p| p.client == peer.client && p.server == peer.server)
        {
            return;
        }
        tracing::info!(client = %peer.client, name = %peer.caller_name, "monitoring a new NLM client");
        peers.push(peer);
        if let Some(dir) = &self.dir {
            let text: String = peers.iter().map(Peer::line).collect();
            if let Err(e) = write_atomically(&dir.join("peers"), text.as_bytes()) {
                tracing::warn!(error = %e, "cannot save the list of NLM clients; they will not be told to reclaim their locks after a restart");
            }
        }
    }

    /// Forget a client (it rebooted and holds nothing).
    pub fn forget(&self, client: IpAddr) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.retain(|p| p.client != client);
        if let Some(dir) = &self.dir {
            let text: String = peers.iter().map(Peer::line).collect();
            let _ = write_atomically(&dir.join("peers"), text.as_bytes());
        }
    }

    pub fn peers(&self) -> Vec<Peer> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Tell every client in `peers` that we restarted, on a thread of its own, trying
    /// for a few minutes each as sm-notify does.
    pub fn notify_all(&self, peers: Vec<Peer>) {
        if peers.is_empty() {
            return;
        }
        let state = self.state;
        let _ = std::thread::Builder::new().name("sm-notify".into()).spawn(move || {
            let mut left = peers;
            for round in 0..10u32 {
                // Clients are told in parallel, a batch at a time, so one that went away
                // (each try waits out its timeouts) delays nobody else's reclaim.
                let answered: Vec<bool> = left
                    .chunks(NOTIFY_AT_ONCE)
                    .flat_map(|batch| notify_batch(batch, state, round))
                    .collect();
                let mut answered = answered.into_iter();
                left.retain(|_| !answered.next().unwrap_or(false));
                if left.is_empty() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(5 << round.min(4)));
            }
            for peer in left {
                tracing::warn!(client = %peer.client, "an NLM client never answered SM_NOTIFY; it may hold locks it no longer has");
            }
        });
    }
}

/// SM_NOTIFY to every peer of `batch` at once (try `round`); whether each answered.
fn notify_batch(batch: &[Peer], state: u32, round: u32) -> Vec<bool> {
    std::thread::scope(|scope| {
        let calls: Vec<_> = batch
            .iter()
            .map(|peer| {
                scope.spawn(move || match notify(peer, state) {
                    Ok(()) => {
                        tracing::info!(client = %peer.client, state, "told an NLM client to reclaim its locks (SM_NOTIFY)");
                        true
                    }
                    Err(e) => {
                        tracing::debug!(client = %peer.client, error = %e, round, "SM_NOTIFY not answered yet");
                        false
                    }
                })
            })
            .collect();
        calls
            .into_iter()
            .map(|c| c.join().unwrap_or(false))
            .collect()
    })
}

/// SM_NOTIFY to `peer`'s statd: we (by the address it knows us by) are at `state`.
pub fn notify(peer: &Peer, state: u32) -> std::io::Result<()> {
    let mut args = Vec::new();
    put_opaque(&mut args, peer.server.to_string().as_bytes());
    put_u32(&mut args, state);
    callback::call_client(peer.client, PROGRAM, VERSION, 6, &args).map(|_| ())
}

fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A client's SM_NOTIFY: who rebooted.
#[derive(Debug, PartialEq, Eq)]
pub struct Rebooted {
    pub name: String,
    pub state: u32,
}

/// Answer one NSM call from `from`. A client's reboot notice is returned for the lock
/// manager to act on.
pub fn dispatch(
    monitor: &Monitor,
    from: SocketAddr,
    procedure: u32,
    args: &[u8],
    out: &mut Vec<u8>,
) -> Result<Option<Rebooted>, AcceptError> {
    let mut r = XdrReader::new(args);
    match procedure {
        0 => {}
        // STAT: whether we would monitor a host; never for a remote caller.
        1 => {
            r.opaque(MAX_NAME)?;
            put_u32(out, STAT_FAIL);
            put_u32(out, monitor.state);
        }
        // MON: mon_id (mon_name, my_id (my_name, prog, vers, proc)) and 16 private bytes.
        2 => {
            r.opaque(MAX_NAME)?;
            r.opaque(MAX_NAME)?;
            for _ in 0..3 {
                r.u32()?;
            }
            r.fixed::<16>()?;
            tracing::debug!(%from, "SM_MON from the network refused");
            put_u32(out, STAT_FAIL);
            put_u32(out, monitor.state);
        }
        3 => {
            r.opaque(MAX_NAME)?;
            r.opaque(MAX_NAME)?;
            for _ in 0..3 {
                r.u32()?;
            }
            put_u32(out, monitor.state);
        }
        4 => {
            r.opaque(MAX_NAME)?;
            for _ in 0..3 {
                r.u32()?;
            }
            put_u32(out, monitor.state);
        }
        5 => {}
        6 => {
            let name = String::from_utf8_lossy(r.opaque(MAX_NAME)?).into_owned();
            let state = r.u32()?;
            tracing::info!(%from, name, state, "an NLM client rebooted (SM_NOTIFY): its locks are released");
            return Ok(Some(Rebooted { name, state }));
        }
        _ => return Err(AcceptError::ProcUnavail),
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_moves_on_and_peers_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (m, before) = Monitor::open(dir.path()).unwrap();
        assert!(before.is_empty());
        assert_eq!(m.state() % 2, 1);
        let peer = Peer {
            client: "10.0.0.7".parse().unwrap(),
            server: "10.0.0.1".parse().unwrap(),
            caller_name: "suite 3\n".into(),
        };
        m.monitor(peer.clone());
        m.monitor(peer.clone());
        let first = m.state();
        drop(m);
        let (m, before) = Monitor::open(dir.path()).unwrap();
        assert_eq!(m.state(), first + 2);
        assert_eq!(before.len(), 1);
        assert_eq!(
            (before[0].client, before[0].server),
            (peer.client, peer.server)
        );
        assert_eq!(before[0].caller_name, "suite_3_");
        // Told once: not again at the next start unless it locks again.
        let (_, before) = Monitor::open(dir.path()).unwrap();
        assert!(before.is_empty());
    }

    fn call(procedure: u32, args: &[u8]) -> Result<(Vec<u8>, Option<Rebooted>), AcceptError> {
        let m = Monitor::in_memory();
        let mut out = Vec::new();
        let r = dispatch(
            &m,
            "10.0.0.7:600".parse().unwrap(),
            procedure,
            args,
            &mut out,
        )?;
        Ok((out, r))
    }

    #[test]
    fn notify_is_decoded_and_monitoring_refused() {
        let mut a = Vec::new();
        put_opaque(&mut a, b"suite-3");
        put_u32(&mut a, 5);
        let (out, r) = call(6, &a).unwrap();
        assert!(out.is_empty());
        assert_eq!(
            r,
            Some(Rebooted {
                name: "suite-3".into(),
                state: 5
            })
        );
        let mut mon = Vec::new();
        put_opaque(&mut mon, b"x");
        put_opaque(&mut mon, b"y");
        mon.extend_from_slice(&[0; 12 + 16]);
        let (out, _) = call(2, &mon).unwrap();
        assert_eq!(&out[..4], &STAT_FAIL.to_be_bytes());
    }

    #[test]
    fn malformed_calls_are_garbage() {
        assert_eq!(
            call(6, &[0, 0, 0, 9, 1]).unwrap_err(),
            AcceptError::GarbageArgs
        );
        assert_eq!(call(2, &[0; 8]).unwrap_err(), AcceptError::GarbageArgs);
        assert_eq!(call(1, &[0xff; 8]).unwrap_err(), AcceptError::GarbageArgs);
        assert_eq!(call(9, &[]).unwrap_err(), AcceptError::ProcUnavail);
    }
}
