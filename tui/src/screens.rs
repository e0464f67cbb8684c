//! What each screen shows, drawn from one snapshot of the API. Every state is spelled
//! out in words (`DEGRADED`, `!`), never by colour alone, and everything fits 80×25.

use rushes_api as api;
use rushes_api::{Client, PoolState, Severity};
use tuirealm::ratatui::layout::{Constraint, Layout, Rect};
use tuirealm::ratatui::style::{Modifier, Style};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};
use tuirealm::ratatui::Frame;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Dashboard,
    Disks,
    Pools,
    Shares,
    Alerts,
}

/// The menu: a key, and the screen it opens.
pub const MENU: [(char, Screen, &str); 5] = [
    ('d', Screen::Dashboard, "Dashboard"),
    ('k', Screen::Disks, "Disks"),
    ('p', Screen::Pools, "Pools"),
    ('s', Screen::Shares, "Shares"),
    ('a', Screen::Alerts, "Alerts"),
];

impl Screen {
    pub fn for_key(c: char) -> Option<Screen> {
        MENU.iter()
            .find(|(k, ..)| *k == c.to_ascii_lowercase())
            .map(|(_, s, _)| *s)
    }

    fn title(self) -> &'static str {
        MENU.iter()
            .find(|(_, s, _)| *s == self)
            .map(|(.., t)| *t)
            .unwrap_or("")
    }
}

/// Everything the screens show, fetched together.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub status: Option<api::Status>,
    pub pools: Vec<api::Pool>,
    pub disks: Vec<api::Disk>,
    pub shares: Vec<api::Share>,
    pub alerts: Vec<api::Alert>,
    pub jobs: Vec<api::Job>,
    /// Why the API could not be read, in words.
    pub error: Option<String>,
}

impl Snapshot {
    pub fn fetch(c: &Client) -> Snapshot {
        let mut s = Snapshot::default();
        let result = (|| -> Result<(), api::ClientError> {
            s.status = Some(c.get("/v1/status")?);
            s.pools = c.get("/v1/pools")?;
            s.disks = c.get("/v1/disks")?;
            s.shares = c.get("/v1/shares")?;
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

fn size(bytes: u64) -> String {
    if bytes >= 1_000_000_000_000 {
        format!("{:.1} TB", bytes as f64 / 1e12)
    } else {
        format!("{:.1} GB", bytes as f64 / 1e9)
    }
}

/// `[#####.....]  52%`: a capacity bar in plain characters.
fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!(
        "[{}{}] {:>3.0}%",
        "#".repeat(filled),
        ".".repeat(width - filled),
        fraction * 100.0
    )
}

fn state_word(state: PoolState) -> &'static str {
    match state {
        PoolState::Online => "online",
        PoolState::Degraded => "DEGRADED",
        PoolState::Failed => "FAILED",
        PoolState::Missing => "MISSING",
    }
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "! CRITICAL",
        Severity::Warning => "! warning",
        Severity::Info => "  info",
    }
}

pub fn draw(f: &mut Frame<'_>, area: Rect, screen: Screen, snap: &Snapshot) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let host = snap
        .status
        .as_ref()
        .map(|s| format!("{} · Rushes {}", s.hostname, s.version))
        .unwrap_or_else(|| "Rushes".into());
    let critical = snap
        .alerts
        .iter()
        .filter(|a| a.severity == Severity::Critical)
        .count();
    let alerts = match (snap.alerts.len(), critical) {
        (0, _) => "healthy".to_string(),
        (n, 0) => format!("{n} alert(s)"),
        (n, c) => format!("{n} alert(s), {c} CRITICAL"),
    };
    f.render_widget(
        Paragraph::new(format!(" {host} · {} · {alerts}", screen.title()))
            .style(Style::default().add_modifier(Modifier::REVERSED)),
        top,
    );
    let keys: Vec<String> = MENU
        .iter()
        .map(|(k, _, t)| format!("{} {t}", k.to_ascii_uppercase()))
        .collect();
    f.render_widget(
        Paragraph::new(format!(" {}  Esc back", keys.join("  ")))
            .style(Style::default().add_modifier(Modifier::REVERSED)),
        bottom,
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} ", screen.title()));
    let inner = block.inner(body);
    f.render_widget(block, body);
    if let Some(err) = &snap.error {
        f.render_widget(
            Paragraph::new(vec![
                Line::from("! The appliance's service does not answer."),
                Line::from(""),
                Line::from(err.as_str()),
                Line::from(""),
                Line::from("The console tries again every few seconds. If this stays, reboot from"),
                Line::from("the power button; the pools' data is safe on their disks."),
            ])
            .wrap(Wrap { trim: false }),
            inner,
        );
        return;
    }
    match screen {
        Screen::Dashboard => dashboard(f, inner, snap),
        Screen::Disks => disks(f, inner, snap),
        Screen::Pools => pools(f, inner, snap),
        Screen::Shares => shares(f, inner, snap),
        Screen::Alerts => alerts_screen(f, inner, snap),
    }
}

fn dashboard(f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
    let mut lines = vec![Line::from("Pools").style(Style::default().add_modifier(Modifier::BOLD))];
    if snap.pools.is_empty() {
        lines.push(Line::from(
            "  no pools yet: press K to see the disks and create one",
        ));
    }
    for p in &snap.pools {
        let used = if p.size_bytes > 0 {
            p.used_bytes as f64 / p.size_bytes as f64
        } else {
            0.0
        };
        lines.push(Line::from(format!(
            "  {:<12} {:<7} {:<9} {} of {}",
            p.name,
            p.level.as_str(),
            state_word(p.state),
            bar(used, 20),
            size(p.size_bytes)
        )));
        if let Some(sync) = &p.sync {
            lines.push(Line::from(format!(
                "  {:<12} md {:<8} {}",
                "",
                sync.action,
                bar(sync.fraction, 20)
            )));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from("Alerts").style(Style::default().add_modifier(Modifier::BOLD)));
    if snap.alerts.is_empty() {
        lines.push(Line::from("  none: everything is healthy"));
    }
    for a in snap.alerts.iter().take(6) {
        lines.push(Line::from(format!(
            "  {} {}",
            severity_word(a.severity),
            a.message
        )));
    }
    let running: Vec<&api::Job> = snap
        .jobs
        .iter()
        .filter(|j| j.state == api::JobState::Running)
        .collect();
    if !running.is_empty() {
        lines.push(Line::from(""));
        lines.push(Line::from("Running jobs").style(Style::default().add_modifier(Modifier::BOLD)));
        for j in running {
            lines.push(Line::from(format!(
                "  {} {} {}: {}",
                j.id, j.kind, j.pool, j.step
            )));
        }
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn table<'a>(header: &'a [&'a str], rows: Vec<Vec<String>>, widths: &'a [u16]) -> Table<'a> {
    Table::new(
        rows.into_iter().map(Row::new),
        widths.iter().map(|w| Constraint::Length(*w)),
    )
    .header(Row::new(header.to_vec()).style(Style::default().add_modifier(Modifier::BOLD)))
}

fn disks(f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
    let rows = snap
        .disks
        .iter()
        .map(|d| {
            let state = if d.boot {
                "boot stick".to_string()
            } else if let Some(u) = &d.in_use_by {
                u.clone()
            } else if d.contents.is_empty() {
                "free".into()
            } else {
                "has data".into()
            };
            vec![
                d.name.clone(),
                d.transport.as_str().into(),
                size(d.size_bytes),
                d.serial.clone(),
                state,
            ]
        })
        .collect();
    f.render_widget(
        table(
            &["DISK", "BUS", "SIZE", "SERIAL", "STATE"],
            rows,
            &[9, 9, 9, 20, 28],
        ),
        area,
    );
}

fn pools(f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
    let mut rows = Vec::new();
    for p in &snap.pools {
        rows.push(vec![
            p.name.clone(),
            p.level.as_str().into(),
            state_word(p.state).into(),
            size(p.size_bytes),
            size(p.used_bytes),
            p.problem.clone().unwrap_or_default(),
        ]);
        for m in &p.members {
            let state = serde_word(&m.state);
            rows.push(vec![
                String::new(),
                m.disk.clone().unwrap_or_else(|| "-".into()),
                state,
                m.serial.clone(),
                String::new(),
                String::new(),
            ]);
        }
    }
    f.render_widget(
        table(
            &["POOL", "LEVEL", "STATE", "SIZE", "USED", "NOTE"],
            rows,
            &[12, 9, 10, 12, 9, 24],
        ),
        area,
    );
}

fn serde_word(state: &api::MemberState) -> String {
    match state {
        api::MemberState::InSync => "in sync",
        api::MemberState::Rebuilding => "REBUILDING",
        api::MemberState::Spare => "spare",
        api::MemberState::Faulty => "FAULTY",
        api::MemberState::Missing => "MISSING",
    }
    .into()
}

fn shares(f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
    let rows = snap
        .shares
        .iter()
        .map(|s| {
            let clients: Vec<String> = s
                .rules
                .iter()
                .flat_map(|r| r.clients.iter().map(|c| c.to_string()))
                .collect();
            vec![
                s.name.clone(),
                s.pool.clone(),
                if s.online { "serving" } else { "OFFLINE" }.into(),
                clients.join(","),
            ]
        })
        .collect();
    f.render_widget(
        table(
            &["SHARE", "POOL", "STATE", "CLIENTS"],
            rows,
            &[16, 12, 9, 38],
        ),
        area,
    );
}

fn alerts_screen(f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
    let mut lines = Vec::new();
    if snap.alerts.is_empty() {
        lines.push(Line::from("No alerts: everything is healthy."));
    }
    for a in &snap.alerts {
        lines.push(Line::from(format!(
            "{} {}",
            severity_word(a.severity),
            a.message
        )));
        lines.push(Line::from(format!("    next: {}", a.action)));
        lines.push(Line::from(""));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_keys() {
        assert_eq!(bar(0.5, 10), "[#####.....]  50%");
        assert_eq!(Screen::for_key('K'), Some(Screen::Disks));
        assert_eq!(Screen::for_key('z'), None);
    }
}
