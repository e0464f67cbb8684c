//! The TCP connections being served: how many one client address and all clients may
//! have, how long a record may take to arrive and a connection may sit idle, how much
//! memory records still arriving may hold, and the watchdog that closes connections past
//! their time.
//!
//! A client that opens connections and sends half a record on each (slowloris) holds at
//! most [`ConnectionLimits::per_client`] connections, each for at most
//! [`ConnectionLimits::record_timeout`]; the bytes of records being read are bounded per
//! connection by [`crate::server::MAX_RECORD`] and in all by
//! [`ConnectionLimits::unfinished_bytes`]. Timeouts cost the read path nothing: the
//! connection notes when a record started, and the watchdog, once a second, shuts down
//! the sockets whose record or idleness has lasted too long.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a client may hold of the server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one client address may have open: Linux opens one per server (up to
    /// 16 with `nconnect`), plus short ones for MOUNT and NLM.
    pub per_client: usize,
    /// Connections open in all.
    pub total: usize,
    /// A record must arrive whole within this time of its first byte.
    pub record_timeout: Duration,
    /// A connection with no call for this long, and none being answered, is closed.
    /// Linux closes its own idle connections after 5 minutes, so this catches only
    /// clients that went away without saying so, and connections held open for nothing.
    pub idle_timeout: Duration,
    /// Bytes all connections together may hold of records still arriving, beyond the
    /// first [`SMALL_RECORD`] bytes of each (small calls never wait for this).
    pub unfinished_bytes: usize,
    /// Bytes of calls read and not yet answered, all connections together: past it, a
    /// connection reads no more until answers free room (each connection also holds
    /// at most [`crate::server::MAX_IN_FLIGHT`] calls).
    pub held_bytes: usize,
}

/// The part of a record every connection may hold without asking the shared budget.
pub const SMALL_RECORD: usize = 64 * 1024;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            per_client: 32,
            total: 2048,
            record_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(6 * 60),
            unfinished_bytes: 256 << 20,
            held_bytes: 1 << 30,
        }
    }
}

/// Why a connection was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the client already has {0} connections open")]
    PerClient(usize),
    #[error("the server already has {0} connections open")]
    Total(usize),
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A record was still arriving after the record timeout.
    HalfSentRecord,
    /// No call and nothing being answered for the idle timeout.
    Idle,
}

/// One open connection as the table sees it.
#[derive(Debug)]
pub struct Connection {
    peer: SocketAddr,
    /// A handle on the socket, to shut it down from the watchdog.
    socket: TcpStream,
    /// Milliseconds since the table's epoch at which the record being read started, 0
    /// when none is.
    record_started: AtomicU64,
    /// Milliseconds since the epoch of the last call read or reply sent.
    last_active: AtomicU64,
    /// Calls being answered now.
    answering: AtomicUsize,
    /// Why the watchdog shut it down, if it did (as an [`Expired`] + 1; 0 for none).
    expired: AtomicU64,
    epoch: Instant,
}

impl Connection {
    fn now(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// The first bytes of a record have come.
    pub fn record_started(&self) {
        self.record_started.store(self.now(), Ordering::Relaxed);
    }

    /// The record is read whole (or the connection is done with).
    pub fn record_finished(&self) {
        self.record_started.store(0, Ordering::Relaxed);
        self.last_active.store(self.now(), Ordering::Relaxed);
    }

    /// A call is being answered (until [`Connection::answered`]): the connection is not
    /// idle meanwhile, however long it takes.
    pub fn answering(&self) {
        self.answering.fetch_add(1, Ordering::Relaxed);
    }

    pub fn answered(&self) {
        self.answering.fetch_sub(1, Ordering::Relaxed);
        self.last_active.store(self.now(), Ordering::Relaxed);
    }

    /// Why the watchdog closed it, if it did.
    pub fn expired(&self) -> Option<Expired> {
        match self.expired.load(Ordering::Relaxed) {
            1 => Some(Expired::HalfSentRecord),
            2 => Some(Expired::Idle),
            _ => None,
        }
    }

    fn check(&self, now: u64, limits: &ConnectionLimits) -> Option<Expired> {
        let started = self.record_started.load(Ordering::Relaxed);
        if started != 0 && now.saturating_sub(started) > limits.record_timeout.as_millis() as u64 {
            return Some(Expired::HalfSentRecord);
        }
        let idle = now.saturating_sub(self.last_active.load(Ordering::Relaxed));
        if started == 0
            && self.answering.load(Ordering::Relaxed) == 0
            && idle > limits.idle_timeout.as_millis() as u64
        {
            return Some(Expired::Idle);
        }
        None
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}

#[derive(Debug, Default)]
struct Table {
    by_client: HashMap<IpAddr, usize>,
    open: HashMap<u64, Arc<Connection>>,
    next_id: u64,
}

/// Every connection open now, with the limits they are held to.
#[derive(Debug)]
pub struct Connections {
    table: Mutex<Table>,
    limits: ConnectionLimits,
    epoch: Instant,
    /// Bytes of records being read beyond each one's first [`SMALL_RECORD`].
    unfinished: ByteBudget,
    /// Bytes of calls read and not yet answered.
    held: ByteBudget,
}

impl Connections {
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::new(Table::default()),
            limits,
            epoch: Instant::now(),
            unfinished: ByteBudget::new(limits.unfinished_bytes),
            held: ByteBudget::new(limits.held_bytes),
        })
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Take a connection into the table, or say why not. It leaves the table when the
    /// returned [`Admitted`] is dropped.
    pub fn admit(
        self: &Arc<Self>,
        peer: SocketAddr,
        socket: &TcpStream,
    ) -> Result<Admitted, Refused> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if table.open.len() >= self.limits.total {
            return Err(Refused::Total(table.open.len()));
        }
        let mine = table.by_client.get(&peer.ip()).copied().unwrap_or(0);
        if mine >= self.limits.per_client {
            return Err(Refused::PerClient(mine));
        }
        let socket = socket
            .try_clone()
            .map_err(|_| Refused::Total(table.open.len()))?;
        let connection = Arc::new(Connection {
            peer,
            socket,
            record_started: AtomicU64::new(0),
            last_active: AtomicU64::new((self.epoch.elapsed().as_millis() as u64).max(1)),
            answering: AtomicUsize::new(0),
            expired: AtomicU64::new(0),
            epoch: self.epoch,
        });
        table.next_id += 1;
        let id = table.next_id;
        table.open.insert(id, Arc::clone(&connection));
        *table.by_client.entry(peer.ip()).or_insert(0) += 1;
        Ok(Admitted {
            connections: Arc::clone(self),
            connection,
            id,
        })
    }

    /// Connections open now, in all and of `client`.
    pub fn open(&self, client: IpAddr) -> (usize, usize) {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        (
            table.open.len(),
            table.by_client.get(&client).copied().unwrap_or(0),
        )
    }

    /// Shut down the connections past their record or idle timeout; returns them with
    /// the reason. Their threads see the end of the stream and leave.
    pub fn expire(&self) -> Vec<(SocketAddr, Expired)> {
        let now = (self.epoch.elapsed().as_millis() as u64).max(1);
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let mut closed = Vec::new();
        for c in table.open.values() {
            if c.expired.load(Ordering::Relaxed) != 0 {
                continue;
            }
            if let Some(why) = c.check(now, &self.limits) {
                c.expired.store(why as u64 + 1, Ordering::Relaxed);
                let _ = c.socket.shutdown(std::net::Shutdown::Both);
                closed.push((c.peer, why));
            }
        }
        closed
    }

    /// Reserve `bytes` of a record about to be read beyond its first [`SMALL_RECORD`],
    /// waiting while the shared budget is spent; `None` when the connection's record
    /// timeout passes first (or the watchdog closed it).
    pub fn reserve(&self, connection: &Connection, bytes: usize) -> Option<BudgetShare> {
        loop {
            if let Some(share) = self.unfinished.try_take(bytes) {
                return Some(share);
            }
            if connection.expired().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Bytes of records being read, beyond each one's first [`SMALL_RECORD`].
    pub fn unfinished_bytes(&self) -> usize {
        self.unfinished.used()
    }

    /// Count a call of `bytes` read and not yet answered until the returned share is
    /// dropped, first waiting while all connections together hold
    /// [`ConnectionLimits::held_bytes`] (one call may always be held). The waiting
    /// connection reads nothing meanwhile, so its clients are slowed by TCP.
    pub fn hold(&self, bytes: usize) -> BudgetShare {
        loop {
            if let Some(share) = self.held.try_take(bytes) {
                return share;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Bytes of calls read and not yet answered.
    pub fn held_bytes(&self) -> usize {
        self.held.used()
    }
}

/// Bytes all connections share up to a limit; one taker may always have some, however
/// many it asks for, so a record larger than the whole budget is still read.
#[derive(Debug)]
struct ByteBudget {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl ByteBudget {
    fn new(limit: usize) -> Self {
        Self {
            used: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// Take `bytes` if there is room now.
    fn try_take(&self, bytes: usize) -> Option<BudgetShare> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                (used == 0 || used + bytes <= self.limit).then_some(used + bytes)
            })
            .ok()?;
        Some(BudgetShare {
            used: Arc::clone(&self.used),
            bytes,
        })
    }

    fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Bytes taken from a shared budget, given back when dropped.
#[derive(Debug)]
pub struct BudgetShare {
    used: Arc<AtomicUsize>,
    bytes: usize,
}

impl Drop for BudgetShare {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// A connection in the table, for as long as this lives.
#[derive(Debug)]
pub struct Admitted {
    connections: Arc<Connections>,
    connection: Arc<Connection>,
    id: u64,
}

impl std::ops::Deref for Admitted {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl Admitted {
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// The connection, for threads answering its calls.
    pub fn shared(&self) -> Arc<Connection> {
        Arc::clone(&self.connection)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self
            .connections
            .table
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        table.open.remove(&self.id);
        let ip = self.connection.peer.ip();
        if let Some(n) = table.by_client.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                table.by_client.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream, SocketAddr) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        (client, server, peer)
    }

    #[test]
    fn one_client_is_held_to_its_share_and_others_still_get_in() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let table = Connections::new(ConnectionLimits {
            per_client: 2,
            total: 3,
            ..Default::default()
        });
        let (_c1, s1, p1) = pair(&listener);
        let (_c2, s2, p2) = pair(&listener);
        let (_c3, s3, p3) = pair(&listener);
        let a = table.admit(p1, &s1).unwrap();
        let _b = table.admit(p2, &s2).unwrap();
        assert_eq!(table.admit(p3, &s3).unwrap_err(), Refused::PerClient(2));
        let other = SocketAddr::from(([127, 0, 0, 2], 999));
        let _c = table.admit(other, &s3).unwrap();
        assert_eq!(table.admit(other, &s3).unwrap_err(), Refused::Total(3));
        drop(a);
        assert_eq!(table.open(p1.ip()), (2, 1));
    }

    #[test]
    fn the_watchdog_closes_half_sent_records_and_idle_connections_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let table = Connections::new(ConnectionLimits {
            record_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_millis(400),
            ..Default::default()
        });
        let (mut c1, s1, p1) = pair(&listener);
        let (_c2, s2, p2) = pair(&listener);
        let (_c3, s3, p3) = pair(&listener);
        let half_sent = table.admit(p1, &s1).unwrap();
        let busy = table.admit(p2, &s2).unwrap();
        let idle = table.admit(p3, &s3).unwrap();
        half_sent.record_started();
        busy.answering();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(table.expire(), vec![(p1, Expired::HalfSentRecord)]);
        assert_eq!(half_sent.expired(), Some(Expired::HalfSentRecord));
        // The client sees its connection closed.
        let mut buf = [0u8; 1];
        assert_eq!(c1.read(&mut buf).unwrap_or(0), 0);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(table.expire(), vec![(p3, Expired::Idle)]);
        assert_eq!(busy.expired(), None);
        drop(idle);
    }

    #[test]
    fn calls_read_and_not_answered_share_one_budget() {
        let table = Connections::new(ConnectionLimits {
            held_bytes: 1000,
            ..Default::default()
        });
        let first = table.hold(600);
        // One call may always be held, however big.
        assert_eq!(table.held_bytes(), 600);
        let waiter = std::thread::scope(|s| {
            let w = s.spawn(|| {
                let started = Instant::now();
                let _second = table.hold(600);
                started.elapsed()
            });
            std::thread::sleep(Duration::from_millis(100));
            drop(first);
            w.join().unwrap()
        });
        assert!(waiter >= Duration::from_millis(90), "waited {waiter:?}");
        assert_eq!(table.held_bytes(), 0);
        let big = table.hold(5000);
        assert_eq!(table.held_bytes(), 5000);
        drop(big);
    }

    #[test]
    fn records_arriving_share_one_budget_and_wait_for_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let table = Connections::new(ConnectionLimits {
            unfinished_bytes: 1000,
            record_timeout: Duration::from_millis(100),
            ..Default::default()
        });
        let (_c1, s1, p1) = pair(&listener);
        let (_c2, s2, p2) = pair(&listener);
        let first = table.admit(p1, &s1).unwrap();
        let second = table.admit(p2, &s2).unwrap();
        let held = table.reserve(&first, 800).unwrap();
        assert_eq!(table.unfinished_bytes(), 800);
        // The second waits until its own record times out and is closed.
        second.record_started();
        let waiter = std::thread::scope(|s| {
            let w = s.spawn(|| table.reserve(&second, 800).is_some());
            std::thread::sleep(Duration::from_millis(250));
            table.expire();
            w.join().unwrap()
        });
        assert!(!waiter);
        drop(held);
        assert_eq!(table.unfinished_bytes(), 0);
        // One record larger than the whole budget is still read when nothing else is.
        let big = table.reserve(&first, 5000).unwrap();
        drop(big);
    }
}
