//! Activity and audit as the API shows them: live traffic, rollups by client, user,
//! share, operation and protocol, the busiest files and folders, and where the audit log
//! is kept (the first mounted pool).

use std::sync::Arc;

use rushes_api as api;
use rushes_nas::activity::{LiveCounters, Recorder};
use rushes_nas::rollup::Rollups;
use rushes_storage::xfs;

use crate::audit::AuditLog;
use crate::core::Core;
use crate::epoch::now;
use crate::error::{ApiErr, ApiResult};

/// Where the activity stream goes, made before the NFS service so it can feed them.
pub struct Streams {
    /// Queues records for the others: settled before they are read.
    pub recorder: Arc<Recorder>,
    pub live: Arc<LiveCounters>,
    pub rollups: Arc<Rollups>,
    pub audit: Arc<AuditLog>,
}

pub struct Activity {
    core: Arc<Core>,
    streams: Streams,
}

/// `client`, `user`, `share`, `op` or `protocol`, as the activity reports take it.
fn group_by(by: &str) -> ApiResult<rushes_nas::rollup::GroupBy> {
    use rushes_nas::rollup::GroupBy;
    Ok(match by {
        "client" => GroupBy::Client,
        "user" => GroupBy::User,
        "share" => GroupBy::Share,
        "op" => GroupBy::Op,
        "protocol" => GroupBy::Protocol,
        other => {
            return Err(
                ApiErr::bad_request(format!("grouping {other:?} is not known"))
                    .hint("use client, user, share, op or protocol"),
            )
        }
    })
}

fn window_of(window: &str) -> ApiResult<rushes_nas::rollup::Window> {
    use rushes_nas::rollup::Window;
    Ok(match window {
        "second" => Window::Second,
        "minute" => Window::Minute,
        "hour" => Window::Hour,
        other => {
            return Err(
                ApiErr::bad_request(format!("window {other:?} is not known"))
                    .hint("use second, minute or hour"),
            )
        }
    })
}

impl Activity {
    pub fn new(core: Arc<Core>, streams: Streams) -> Arc<Self> {
        Arc::new(Self { core, streams })
    }

    /// The live counters, with every record answered so far counted.
    fn live(&self) -> &LiveCounters {
        self.streams.recorder.settle();
        &self.streams.live
    }

    /// The rollups, with every record answered so far counted.
    pub fn rollups(&self) -> &Rollups {
        self.streams.recorder.settle();
        &self.streams.rollups
    }

    /// Who opened, changed, renamed or deleted what.
    pub fn audit(&self) -> &AuditLog {
        &self.streams.audit
    }

    /// From the monitor: the audit log goes on the first pool of the config that is
    /// mounted.
    pub fn tick(&self) {
        let pools = self.core.with_config(|c| c.pools.clone());
        let place = pools.iter().find_map(|p| {
            let dir = self.core.paths.mountpoint(&p.name);
            xfs::is_mounted(&dir).then(|| (p.name.clone(), dir.join(".rushes-audit")))
        });
        self.streams.audit.set_place(place);
    }

    /// The last minute of NFS traffic and the clients seen in the last five minutes.
    pub fn activity(&self) -> api::Activity {
        api::Activity {
            seconds: self
                .live()
                .seconds(60)
                .into_iter()
                .map(|s| api::Throughput {
                    at: s.at,
                    read_bytes: s.read_bytes,
                    write_bytes: s.write_bytes,
                    ops: s.ops,
                })
                .collect(),
            clients: self
                .live()
                .clients(300)
                .into_iter()
                .map(|(ip, c)| api::ClientActivity {
                    address: ip.to_canonical().to_string(),
                    last_seen: c.last_seen,
                    ops: c.ops,
                    read_bytes: c.read_bytes,
                    write_bytes: c.write_bytes,
                })
                .collect(),
        }
    }

    /// Activity over `window` (`second`, `minute`, `hour`) grouped `by` `client`,
    /// `user`, `share` or `op`.
    pub fn activity_report(&self, window: &str, by: &str) -> ApiResult<api::ActivityReport> {
        use rushes_nas::rollup::GroupBy;
        let g = group_by(by)?;
        let w = window_of(window)?;
        let mut rows = self.rollups().report(w, g, now());
        if g == GroupBy::User {
            self.name_users(rows.iter_mut().map(|r| &mut r.group));
        }
        Ok(api::ActivityReport {
            window: window.into(),
            by: by.into(),
            sampled: false,
            rows,
        })
    }

    /// Bytes a second and median latency over the last minute (or hour) per client
    /// (or user, share, operation, protocol), busiest first: the consoles' charts.
    pub fn activity_series(&self, window: &str, by: &str) -> ApiResult<Vec<api::ActivitySeries>> {
        let g = group_by(by)?;
        let w = window_of(window)?;
        let mut series: Vec<api::ActivitySeries> = self
            .rollups()
            .series(g, w, now())
            .into_iter()
            .map(|s| api::ActivitySeries {
                group: s.label,
                bytes_per_second: s.bytes_per_second,
                p50_us: s.p50_us,
            })
            .collect();
        if g == rushes_nas::rollup::GroupBy::User {
            self.name_users(series.iter_mut().map(|s| &mut s.group));
        }
        Ok(series)
    }

    /// `uid 1000` becomes `editor (uid 1000)` for accounts the box knows.
    fn name_users<'a>(&self, labels: impl Iterator<Item = &'a mut String>) {
        let users = self.core.with_config(|c| c.users.clone());
        for label in labels {
            let uid = label
                .strip_prefix("uid ")
                .and_then(|u| u.parse::<u32>().ok());
            if let Some(u) = uid.and_then(|uid| users.iter().find(|u| u.uid == uid)) {
                *label = format!("{} (uid {})", u.name, u.uid);
            }
        }
    }

    /// The busiest files, folders, clients or users over the last minute or hour, by
    /// bytes or by operations.
    pub fn activity_top(
        &self,
        window: &str,
        by: &str,
        sort: &str,
        limit: usize,
    ) -> ApiResult<api::ActivityTop> {
        use rushes_nas::rollup::{TopBy, Window};
        let (w, span) = match window {
            "minute" => (Window::Minute, 60.0),
            "hour" => (Window::Hour, 3600.0),
            other => {
                return Err(
                    ApiErr::bad_request(format!("window {other:?} is not known"))
                        .hint("top lists cover a minute or an hour"),
                )
            }
        };
        let by_ops = match sort {
            "bytes" => false,
            "ops" => true,
            other => {
                return Err(ApiErr::bad_request(format!("sort {other:?} is not known"))
                    .hint("use bytes or ops"))
            }
        };
        let limit = limit.clamp(1, 1000);
        let (mut rows, untracked) = match by {
            "file" | "dir" => {
                let t = self.rollups().top(
                    w,
                    if by == "file" {
                        TopBy::File
                    } else {
                        TopBy::Dir
                    },
                    by_ops,
                    limit,
                    now(),
                );
                let rows = t
                    .rows
                    .into_iter()
                    .map(|(group, c)| api::ActivityRow {
                        group,
                        ops: c.ops,
                        bytes: c.bytes,
                        errors: 0,
                        ops_per_s: c.ops as f64 / span,
                        bytes_per_s: c.bytes as f64 / span,
                        p50_us: None,
                        p99_us: None,
                    })
                    .collect();
                (rows, t.untracked)
            }
            "client" | "user" => {
                let mut rows = self.rollups().report(w, group_by(by)?, now());
                if by_ops {
                    rows.sort_by(|a, b| b.ops.cmp(&a.ops).then(b.bytes.cmp(&a.bytes)));
                }
                rows.truncate(limit);
                (rows, Default::default())
            }
            other => {
                return Err(ApiErr::bad_request(format!("top {other:?} is not known"))
                    .hint("use file, dir, client or user"))
            }
        };
        if by == "user" {
            self.name_users(rows.iter_mut().map(|r| &mut r.group));
        }
        Ok(api::ActivityTop {
            window: window.into(),
            by: by.into(),
            sort: sort.into(),
            rows,
            untracked_ops: untracked.ops,
            untracked_bytes: untracked.bytes,
        })
    }
}
