//! One snapshot of the API that every screen is drawn from.

use rushes_api as api;
use rushes_api::Client;

/// Everything the screens show, fetched together.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub status: Option<api::Status>,
    pub pools: Vec<api::Pool>,
    pub disks: Vec<api::Disk>,
    pub shares: Vec<api::Share>,
    pub users: Vec<api::User>,
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
    /// Why the API could not be read, in words.
    pub error: Option<String>,
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
    pub fn fetch(c: &Client, log_filter: Option<&str>, audit_filter: Option<&str>) -> Snapshot {
        let mut s = Snapshot::default();
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
                let path: String = filter
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-_./".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                s.audit = c.get(&format!("/v1/audit?limit=8&path={path}"))?;
            }
            s.pools = c.get("/v1/pools")?;
            s.disks = c.get("/v1/disks")?;
            s.shares = c.get("/v1/shares")?;
            s.users = c.get("/v1/users")?;
            s.alerts = c.get("/v1/alerts")?;
            s.jobs = c.get("/v1/jobs")?;
            Ok(())
        })();
        if let Err(e) = result {
            s.error = Some(e.to_string());
        }
        s
    }
}
