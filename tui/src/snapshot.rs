//! One snapshot of the API that every screen is drawn from, and the thread that
//! fetches the next one while the console goes on taking keys.

use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use rushes_api as api;
use rushes_api::Client;

/// Clips the Search screen shows at once.
pub const SEARCH_PAGE: usize = 12;

/// What the snapshot should carry besides the basics while a screen is open.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Fetch {
    /// The log, with the lines that hold this text (the Logs screen).
    pub log_filter: Option<String>,
    /// The activity figures and the audit records whose path holds this text.
    pub audit_filter: Option<String>,
    /// The placement rules and watermarks (the Placement screen).
    pub placement: bool,
    /// The catalog's clips matching this query (the Search screen).
    pub catalog: Option<String>,
    /// The first of them shown (the Search screen's page).
    pub catalog_offset: usize,
    /// The software's version and boot slots (the Power screen).
    pub update: bool,
}

/// Everything the screens show, fetched together (kept as JSON for the screen
/// captures: each field is its API answer).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Snapshot {
    pub status: Option<api::Status>,
    pub pools: Vec<api::Pool>,
    pub disks: Vec<api::Disk>,
    pub shares: Vec<api::Share>,
    pub users: Vec<api::User>,
    /// The admin plane's HTTPS and its certificate.
    pub web: Option<api::WebInfo>,
    /// API tokens (never their secrets).
    pub tokens: Vec<api::Token>,
    pub alerts: Vec<api::Alert>,
    pub jobs: Vec<api::Job>,
    pub setup: Option<api::Setup>,
    pub nics: Vec<api::Nic>,
    pub settings: Option<api::Settings>,
    pub logs: Vec<String>,
    pub activity: Option<api::Activity>,
    pub clock: Option<api::Clock>,
    /// The Activity screen's: bytes per second per client, top files and users,
    /// latency per protocol, and the newest audit records matching its search.
    pub series: Vec<api::ActivitySeries>,
    pub top_files: Option<api::ActivityTop>,
    pub top_users: Option<api::ActivityTop>,
    pub protocols: Option<api::ActivityReport>,
    pub audit: Vec<api::AuditRecord>,
    /// The NFS rate rules with what their clients get now.
    pub rates: Option<api::Rates>,
    /// The Placement screen's: the rules in force and the pools' watermarks, and the
    /// copy targets with their health and what they hold.
    pub placement: Option<api::Placement>,
    pub targets: Vec<api::TargetView>,
    /// The Search screen's: the clips found, or why the search could not be made (no
    /// catalog, a query that does not read).
    pub found: Option<api::media::Found>,
    pub found_error: Option<String>,
    /// The Power screen's: the version running and the two boot slots.
    pub update: Option<api::UpdateStatus>,
    /// Why the API could not be read, in words.
    pub error: Option<String>,
    /// What this snapshot was fetched with: until it matches a screen's search, that
    /// screen's lines are not yet the ones searched for.
    pub fetched: Fetch,
}

impl Snapshot {
    /// Disks a pool could take now: not the stick, not in use.
    pub fn free_disks(&self) -> Vec<api::Disk> {
        self.disks
            .iter()
            .filter(|d| !d.boot && d.in_use_by.is_none())
            .cloned()
            .collect()
    }

    /// The appliance's time zone: every time the console shows is in it (UTC when unset).
    pub fn zone(&self) -> jiff::tz::TimeZone {
        api::calendar::appliance_zone(self.settings.as_ref().and_then(|s| s.timezone.as_deref()))
    }

    /// The first address clients can use.
    pub fn address(&self) -> String {
        self.setup
            .as_ref()
            .and_then(|s| s.addresses.first())
            .map(|a| a.split('/').next().unwrap_or(a).to_string())
            .unwrap_or_else(|| "ADDRESS".into())
    }

    /// Read everything the screens show; the log only when `log_filter` is given (the
    /// Logs screen is open), since it is the one large answer.
    /// The activity figures only when `audit_filter` is given (the Activity screen is
    /// open): a path fragment the audit search keeps, empty for every record.
    pub fn fetch(c: &Client, want: &Fetch) -> Snapshot {
        let (log_filter, audit_filter) = (want.log_filter.as_deref(), want.audit_filter.as_deref());
        let mut s = Snapshot {
            fetched: want.clone(),
            ..Snapshot::default()
        };
        let result = (|| -> Result<(), api::ClientError> {
            s.status = Some(c.get("/v1/status")?);
            s.setup = Some(c.get("/v1/setup")?);
            s.activity = Some(c.get("/v1/activity")?);
            s.clock = Some(c.get("/v1/time")?);
            s.nics = c.get("/v1/network")?;
            s.settings = Some(c.get("/v1/settings")?);
            if let Some(filter) = log_filter {
                let query: String = filter
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "-_.:".contains(*c))
                    .collect();
                let logs: api::Logs = c.get(&format!("/v1/logs?lines=200&contains={query}"))?;
                s.logs = logs.lines;
            }
            if let Some(filter) = audit_filter {
                s.series = c.get("/v1/activity/series?by=client")?;
                s.top_files = Some(c.get("/v1/activity/top?window=minute&by=file&limit=5")?);
                s.top_users = Some(c.get("/v1/activity/top?window=minute&by=user&limit=5")?);
                s.protocols = Some(c.get("/v1/activity/report?window=minute&by=protocol")?);
                s.rates = Some(c.get("/v1/rates")?);
                let path = query_value(filter);
                s.audit = c.get(&format!("/v1/audit?limit=8&path={path}"))?;
            }
            s.pools = c.get("/v1/pools")?;
            s.disks = c.get("/v1/disks")?;
            s.shares = c.get("/v1/shares")?;
            s.users = c.get("/v1/users")?;
            s.web = Some(c.get("/v1/web")?);
            s.tokens = c.get("/v1/tokens")?;
            s.alerts = c.get("/v1/alerts")?;
            s.jobs = c.get("/v1/jobs")?;
            if want.placement {
                s.placement = Some(c.get("/v1/placement")?);
                s.targets = c.get("/v1/targets")?;
            }
            if want.update {
                s.update = Some(c.get("/v1/update")?);
            }
            if let Some(query) = &want.catalog {
                let path = format!(
                    "/v1/search?limit={}&offset={}&q={}",
                    SEARCH_PAGE,
                    want.catalog_offset,
                    query_value(query)
                );
                // Refused is an answer here (a query that does not read), not a fault.
                match c.get::<api::media::Found>(&path) {
                    Ok(found) => s.found = Some(found),
                    Err(e) => s.found_error = Some(e.to_string()),
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            s.error = Some(e.to_string());
        }
        s
    }
}

/// `text` as a value in a URL's query: path characters as they are, the rest escaped.
pub fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_./".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Fetches snapshots on its own thread, so a slow answer from the service never holds
/// up a key: the console asks for one, goes on, and takes it up when it is there.
pub struct Refresher {
    ask: Sender<Fetch>,
    answers: Receiver<Snapshot>,
    every: Duration,
    /// When the newest request went out, and whether its answer is still awaited.
    asked: Option<Instant>,
    in_flight: bool,
    /// Something changed since that request: ask again once it is answered.
    stale: bool,
}

impl Refresher {
    pub fn start(client: Client, every: Duration) -> Self {
        let (ask, requests) = mpsc::channel::<Fetch>();
        let (answer, answers) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(mut fetch) = requests.recv() {
                // Requests that queued up while one was fetched: the newest says it all.
                while let Ok(newer) = requests.try_recv() {
                    fetch = newer;
                }
                let snap = Snapshot::fetch(&client, &fetch);
                if answer.send(snap).is_err() {
                    break;
                }
            }
        });
        Self {
            ask,
            answers,
            every,
            asked: None,
            in_flight: false,
            stale: false,
        }
    }

    /// Fetch again as soon as the request in flight, if any, is answered.
    pub fn soon(&mut self) {
        self.stale = true;
    }

    /// The newest snapshot if one arrived since the last call; sends the next request
    /// when one is due and none is in flight (`want` says what the open screen needs).
    pub fn poll(&mut self, want: impl FnOnce() -> Fetch) -> Option<Snapshot> {
        let fresh = self.answers.try_iter().last();
        if fresh.is_some() {
            self.in_flight = false;
        }
        let due = self.stale || self.asked.is_none_or(|t| t.elapsed() >= self.every);
        if !self.in_flight && due && self.ask.send(want()).is_ok() {
            self.asked = Some(Instant::now());
            self.in_flight = true;
            self.stale = false;
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    /// A service that holds each request until the test lets it answer.
    fn held_service() -> (Client, Sender<()>, Receiver<()>) {
        let path = std::env::temp_dir().join(format!("rushes-console-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let (release, released) = mpsc::channel::<()>();
        let (seen, requests) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                let mut head = [0u8; 512];
                let _ = conn.read(&mut head);
                let _ = seen.send(());
                if released.recv().is_err() {
                    return;
                }
                let _ = conn.write_all(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
            }
        });
        (Client::new(&path), release, requests)
    }

    #[test]
    fn a_slow_service_never_holds_up_the_console_and_a_change_is_fetched_after_it() {
        let (client, release, requests) = held_service();
        let mut r = Refresher::start(client, Duration::from_secs(3600));
        assert!(r.poll(Fetch::default).is_none());
        requests.recv_timeout(Duration::from_secs(10)).unwrap();
        // The service has the request and does not answer: polling goes on returning,
        // and asks nothing more while one request is out.
        for _ in 0..5 {
            assert!(r.poll(Fetch::default).is_none());
        }
        r.soon();
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let snap = loop {
            if let Some(s) = r.poll(Fetch::default) {
                break s;
            }
            assert!(Instant::now() < deadline, "the answer never came");
            std::thread::sleep(Duration::from_millis(10));
        };
        let error = snap.error.expect("a 503 is shown as the service's error");
        assert!(error.contains("503"), "{error}");
        // The change asked for while the first was out is fetched now, not in an hour.
        requests.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(requests.try_recv().is_err(), "one request at a time");
    }
}
