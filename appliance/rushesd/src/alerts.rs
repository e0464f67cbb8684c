//! The alerts service: any subsystem raises and clears its own alerts, each with a
//! stable id, a severity and a text that says what to do. Open alerts and the history
//! of raised and cleared ones are kept in `STATE_DIR/alerts.json`, so an alert outlives
//! a restart of rushesd until its condition is gone.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rushes_api::{self as api, Severity};
use serde::{Deserialize, Serialize};

use crate::epoch::now;
use crate::error::{ApiErr, ApiResult};
use crate::state_file::{read_state, write_state};

/// Raised and cleared alerts kept in the history.
pub const HISTORY: usize = 1000;

/// The state files' layout; a file of another version is set aside, not misread.
const VERSION: u32 = 1;

/// An alert as a subsystem raises it.
#[derive(Debug, Clone, PartialEq)]
pub struct Raise {
    /// Stable while the condition lasts: `pool-degraded:media`.
    pub id: String,
    pub severity: Severity,
    pub message: String,
    /// What the admin should do.
    pub action: String,
}

impl Raise {
    pub fn new(
        id: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            severity,
            message: message.into(),
            action: action.into(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    open: Vec<api::Alert>,
    history: VecDeque<api::AlertRecord>,
}

pub struct Alerts {
    file: Option<PathBuf>,
    inner: Mutex<Saved>,
}

/// The alert raised for a state file that was set aside.
pub fn damaged_file(path: &Path, problem: String) -> Raise {
    let id = format!(
        "state-file-damaged:{}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let action = format!("the daemon started without what that file held; dismiss this alert once seen: rushesctl alerts dismiss {id}");
    Raise::new(id, Severity::Warning, problem, action)
}

impl Alerts {
    /// The alerts kept in `file` (none without one, for tests and `rushesd host`
    /// without a state folder).
    pub fn open(file: Option<PathBuf>) -> Arc<Self> {
        let (saved, problem) = match file.as_deref().map(read_state::<Saved>) {
            Some(Ok(Some(s))) if s.version == VERSION => (s, None),
            Some(Ok(Some(s))) => (
                Saved::default(),
                Some(format!(
                    "the alerts file has layout version {}, this rushesd reads {VERSION}: the open alerts were not read",
                    s.version
                )),
            ),
            Some(Ok(None)) | None => (Saved::default(), None),
            Some(Err(problem)) => (Saved::default(), Some(problem)),
        };
        let alerts = Arc::new(Self {
            file,
            inner: Mutex::new(Saved {
                version: VERSION,
                ..saved
            }),
        });
        if let (Some(problem), Some(file)) = (problem, &alerts.file) {
            alerts.raise_event("alerts", damaged_file(file, problem));
        }
        alerts
    }

    fn lock(&self) -> MutexGuard<'_, Saved> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, saved: &Saved) {
        if let Some(file) = &self.file {
            if let Err(e) = write_state(file, saved) {
                tracing::warn!(file = %file.display(), error = %e, "cannot keep the alerts");
            }
        }
    }

    /// `source`'s alerts as they stand now: new ones are raised, ones it no longer
    /// reports are cleared, and the rest keep the time they were first raised.
    pub fn publish(&self, source: &str, current: Vec<Raise>) {
        let mut st = self.lock();
        let mut changed = false;
        let t = now();
        for r in &current {
            changed |= raise(&mut st, source, r, false, t);
        }
        let gone: Vec<String> = st
            .open
            .iter()
            .filter(|a| a.source == source && !a.dismissable)
            .filter(|a| !current.iter().any(|r| r.id == a.id))
            .map(|a| a.id.clone())
            .collect();
        for id in &gone {
            clear(&mut st, id, t);
            changed = true;
        }
        if changed {
            self.save(&st);
        }
    }

    /// Raise an event that is not a condition (a damaged file set aside, a job that
    /// stopped on an error): it stays until the admin dismisses it.
    pub fn raise_event(&self, source: &str, r: Raise) {
        let mut st = self.lock();
        if raise(&mut st, source, &r, true, now()) {
            self.save(&st);
        }
    }

    /// The admin has seen an event alert.
    pub fn dismiss(&self, id: &str) -> ApiResult<()> {
        let mut st = self.lock();
        let Some(alert) = st.open.iter().find(|a| a.id == id) else {
            return Err(ApiErr::not_found(format!("there is no open alert {id:?}"))
                .hint("`rushesctl alerts` lists them"));
        };
        if !alert.dismissable {
            return Err(ApiErr::new(
                409,
                "alert-is-a-condition",
                format!("alert {id} reports a condition that still holds"),
            )
            .hint(format!("it clears by itself once fixed: {}", alert.action)));
        }
        clear(&mut st, id, now());
        self.save(&st);
        Ok(())
    }

    /// The open alerts, the most severe first.
    pub fn list(&self) -> Vec<api::Alert> {
        let mut open = self.lock().open.clone();
        open.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
        open
    }

    /// Raised and cleared alerts, newest first.
    pub fn history(&self) -> Vec<api::AlertRecord> {
        self.lock().history.iter().rev().cloned().collect()
    }
}

/// Raise or refresh `r`; answers whether what is kept on disk changed.
fn raise(st: &mut Saved, source: &str, r: &Raise, dismissable: bool, t: u64) -> bool {
    if let Some(open) = st.open.iter_mut().find(|a| a.id == r.id) {
        // Messages change as conditions progress ("rebuilding (40%)"): kept in memory,
        // written when the severity changes.
        let worse = open.severity != r.severity;
        if worse {
            tracing::warn!(alert = %r.id, severity = ?r.severity, message = %r.message, "alert changed");
        }
        open.severity = r.severity;
        open.message.clone_from(&r.message);
        open.action.clone_from(&r.action);
        return worse;
    }
    tracing::warn!(alert = %r.id, %source, severity = ?r.severity, message = %r.message, "alert raised");
    st.open.push(api::Alert {
        id: r.id.clone(),
        severity: r.severity,
        message: r.message.clone(),
        action: r.action.clone(),
        since: t,
        source: source.into(),
        dismissable,
    });
    st.history.push_back(api::AlertRecord {
        id: r.id.clone(),
        severity: r.severity,
        message: r.message.clone(),
        source: source.into(),
        raised: t,
        cleared: None,
    });
    let excess = st.history.len().saturating_sub(HISTORY);
    st.history.drain(..excess);
    true
}

fn clear(st: &mut Saved, id: &str, t: u64) {
    st.open.retain(|a| a.id != id);
    if let Some(rec) = st
        .history
        .iter_mut()
        .rev()
        .find(|r| r.id == id && r.cleared.is_none())
    {
        rec.cleared = Some(t);
    }
    tracing::info!(alert = %id, "alert cleared");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degraded(pct: u32) -> Raise {
        Raise::new(
            "pool-degraded:media",
            Severity::Critical,
            format!("pool media is rebuilding ({pct}%)"),
            "wait",
        )
    }

    #[test]
    fn a_source_raises_and_clears_its_own_alerts_and_the_history_keeps_both_times() {
        let alerts = Alerts::open(None);
        alerts.publish("pools", vec![degraded(10)]);
        alerts.publish(
            "fabrics",
            vec![Raise::new(
                "fabric-path:x",
                Severity::Warning,
                "down",
                "check",
            )],
        );
        alerts.publish("pools", vec![degraded(40)]);
        let open = alerts.list();
        assert_eq!(open.len(), 2);
        assert_eq!(open[0].id, "pool-degraded:media", "the critical one first");
        assert_eq!(open[0].message, "pool media is rebuilding (40%)");
        assert_eq!(open[0].source, "pools");
        // The pools' publishing clears only the pools' alerts.
        alerts.publish("pools", vec![]);
        let open = alerts.list();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].id, "fabric-path:x");
        let history = alerts.history();
        assert_eq!(history.len(), 2, "{history:?}");
        let pool = history.iter().find(|r| r.source == "pools").unwrap();
        assert!(pool.cleared.is_some_and(|c| c >= pool.raised));
        assert!(history
            .iter()
            .any(|r| r.source == "fabrics" && r.cleared.is_none()));
    }

    #[test]
    fn open_alerts_survive_a_restart_and_keep_their_time() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alerts.json");
        let first = Alerts::open(Some(file.clone()));
        first.publish("pools", vec![degraded(10)]);
        let since = first.list()[0].since;
        drop(first);
        let second = Alerts::open(Some(file.clone()));
        let open = second.list();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].since, since);
        // The condition still holds after the restart: the same alert, not a new one.
        second.publish("pools", vec![degraded(20)]);
        assert_eq!(second.history().len(), 1);
        second.publish("pools", vec![]);
        assert!(Alerts::open(Some(file)).list().is_empty());
    }

    #[test]
    fn a_damaged_file_is_set_aside_with_an_alert_that_can_be_dismissed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alerts.json");
        std::fs::write(&file, b"{\"version\": 1, \"open\": [tru").unwrap();
        let alerts = Alerts::open(Some(file.clone()));
        let open = alerts.list();
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0].id, "state-file-damaged:alerts.json");
        assert!(open[0].message.contains("set aside"), "{}", open[0].message);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("alerts.json.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "the damaged bytes are kept for a look");
        // A source's publishing does not clear an event; the admin does.
        alerts.publish("alerts", vec![]);
        assert_eq!(alerts.list().len(), 1);
        alerts.dismiss("state-file-damaged:alerts.json").unwrap();
        assert!(alerts.list().is_empty());
        // Conditions cannot be dismissed away.
        alerts.publish("pools", vec![degraded(1)]);
        let e = alerts.dismiss("pool-degraded:media").unwrap_err();
        assert_eq!(e.code, "alert-is-a-condition");
        assert_eq!(alerts.dismiss("nothing").unwrap_err().status, 404);
    }
}
