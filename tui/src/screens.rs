//! What each screen shows, drawn from one snapshot of the API. Every state is spelled
//! out in words (`DEGRADED`, `!`), never by colour alone, and everything fits 80×25.

use rushes_api as api;
use rushes_api::{PoolState, Severity};
use tuirealm::ratatui::layout::{Constraint, Layout, Rect};
use tuirealm::ratatui::style::{Modifier, Style};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};
use tuirealm::ratatui::Frame;

use crate::app::{App, Form, Mode, Step};
use crate::form::Field;
use crate::snapshot::{Screen, Snapshot, MENU};

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

/// The title bar, the body for the current mode, the message line and the key bar.
pub fn draw(f: &mut Frame<'_>, area: Rect, app: &App) {
    let snap = &app.snap;
    let [top, body, msg, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(2),
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
    let (title, keys) = match &app.mode {
        Mode::Wizard { .. } => (
            "First-boot setup",
            "Tab next field  Enter continue".to_string(),
        ),
        Mode::Locked { .. } => ("Locked", "Enter unlock".to_string()),
        Mode::Menu { screen, form } => (
            screen.title(),
            match form {
                Some(_) => "Enter confirm  Esc cancel  Left/Right choose  Tab toggle".to_string(),
                None => {
                    // Short names, so every key fits an 80-column line.
                    let keys: Vec<String> = MENU
                        .iter()
                        .map(|(k, _, t)| {
                            let short = match *t {
                                "Dashboard" => "Dash",
                                "Network" => "Net",
                                other => other,
                            };
                            format!("{} {short}", k.to_ascii_uppercase())
                        })
                        .collect();
                    format!("{} X Lock", keys.join(" "))
                }
            },
        ),
    };
    f.render_widget(
        Paragraph::new(format!(" {host} · {title} · {alerts}"))
            .style(Style::default().add_modifier(Modifier::REVERSED)),
        top,
    );
    f.render_widget(
        Paragraph::new(format!(" {keys}")).style(Style::default().add_modifier(Modifier::REVERSED)),
        bottom,
    );
    if let Some(m) = &app.message {
        f.render_widget(Paragraph::new(m.as_str()).wrap(Wrap { trim: false }), msg);
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {title} "));
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
    match &app.mode {
        Mode::Wizard {
            step,
            fields,
            focus,
            dhcp,
        } => wizard(f, inner, app, *step, fields, *focus, *dhcp),
        Mode::Locked { password } => locked(f, inner, app, password.as_ref()),
        Mode::Menu { screen, form } => {
            match screen {
                Screen::Dashboard => dashboard(f, inner, snap),
                Screen::Disks => disks(f, inner, app),
                Screen::Pools => pools(f, inner, app),
                Screen::Shares => shares(f, inner, app),
                Screen::Network => network(f, inner, snap),
                Screen::Logs => logs(f, inner, app),
                Screen::Power => power(f, inner),
                Screen::Alerts => alerts_screen(f, inner, snap),
                Screen::Activity => activity(f, inner, app),
            }
            if let Some(form) = form {
                form_box(f, inner, app, form);
            }
        }
    }
}

fn mount_lines(addr: &str) -> Vec<Line<'static>> {
    vec![
        Line::from("Mount a share (here /projects) from the edit suites, locking on:"),
        Line::from(format!("  Linux:   mount -t nfs {addr}:/projects /mnt")),
        Line::from(format!(
            "  macOS:   Finder, Go > Connect to Server: nfs://{addr}/projects"
        )),
        Line::from(format!("  Windows: mount \\\\{addr}\\projects Z:")),
    ]
}

#[allow(clippy::too_many_arguments)]
fn wizard(
    f: &mut Frame<'_>,
    area: Rect,
    app: &App,
    step: Step,
    fields: &[Field],
    focus: usize,
    dhcp: bool,
) {
    let mut lines: Vec<Line<'_>> = Vec::new();
    let n = match step {
        Step::Welcome => 0,
        Step::Name => 1,
        Step::Network => 2,
        Step::Password => 3,
        Step::Time => 4,
        Step::Done => 5,
    };
    if step != Step::Welcome && step != Step::Done {
        lines.push(Line::from(format!("Step {n} of 4")));
        lines.push(Line::from(""));
    }
    match step {
        Step::Welcome => {
            lines.push(Line::from("Welcome to Rushes."));
            lines.push(Line::from(""));
            lines.push(Line::from(
                "This box has not been set up yet. Four short steps: its name, its",
            ));
            lines.push(Line::from(
                "network, an admin password, and the time. Press Enter to begin.",
            ));
        }
        Step::Name => lines.push(Line::from("What should this box be called on the network?")),
        Step::Network => {
            lines.push(Line::from("Network interfaces:"));
            for nic in &app.snap.nics {
                lines.push(Line::from(format!("  {}", nic_line(nic))));
            }
            lines.push(Line::from(""));
            if dhcp {
                lines.push(Line::from("Addresses come from DHCP (the default)."));
                lines.push(Line::from(
                    "Press S for a static address, or Enter to keep DHCP.",
                ));
            } else {
                lines.push(Line::from(
                    "Static address for one NIC, or * for every wired NIC (Esc: back to DHCP):",
                ));
            }
        }
        Step::Password => lines.push(Line::from(
            "The admin password locks this console (8 characters or more).",
        )),
        Step::Time => lines.push(Line::from(
            "Time zone (e.g. Europe/London) and an NTP server:",
        )),
        Step::Done => {
            let addr = app.address();
            lines.push(Line::from(
                "Setup is saved. The network settings apply at the next start.",
            ));
            lines.push(Line::from(""));
            lines.push(Line::from(format!("Reach this box at: {addr}")));
            lines.push(Line::from(""));
            lines.extend(mount_lines(&addr));
            lines.push(Line::from(""));
            lines.push(Line::from(
                "Next: create a pool on the Disks screen (K), then a share (S).",
            ));
            lines.push(Line::from("Press Enter for the dashboard."));
        }
    }
    if !fields.is_empty() {
        lines.push(Line::from(""));
        for (i, field) in fields.iter().enumerate() {
            lines.push(Line::from(field.shown(i == focus)));
        }
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn nic_line(n: &api::Nic) -> String {
    let link = if n.link_up {
        match n.speed_mbps {
            Some(s) if s >= 1000 => format!("link up {} Gb/s", s / 1000),
            Some(s) => format!("link up {s} Mb/s"),
            None => "link up".into(),
        }
    } else {
        "NO LINK".into()
    };
    let addrs: Vec<&str> = n
        .addresses
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("fe80"))
        .collect();
    let line = format!(
        "{:<10} {:<17} {:<16} mtu {:<5} {}",
        n.name,
        n.mac,
        link,
        n.mtu,
        addrs.join(" ")
    );
    // One line per NIC on an 80-column screen.
    line.chars().take(74).collect()
}

fn locked(f: &mut Frame<'_>, area: Rect, app: &App, password: Option<&Field>) {
    let snap = &app.snap;
    let mut lines = vec![
        Line::from(format!("Reach this box at: {}", app.address())),
        Line::from(""),
    ];
    if snap.pools.is_empty() {
        lines.push(Line::from("No pools yet."));
    }
    for p in &snap.pools {
        lines.push(Line::from(format!(
            "Pool {:<12} {:<9} {} used of {}",
            p.name,
            state_word(p.state),
            size(p.used_bytes),
            size(p.size_bytes)
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(match snap.alerts.len() {
        0 => "No alerts: everything is healthy.".to_string(),
        n => format!("! {n} alert(s): unlock to see them."),
    }));
    lines.push(Line::from(""));
    match password {
        None => lines.push(Line::from("This console is locked. Press Enter to unlock.")),
        Some(field) => lines.push(Line::from(field.shown(true))),
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn network(f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
    let mut lines =
        vec![Line::from("Interfaces").style(Style::default().add_modifier(Modifier::BOLD))];
    for nic in &snap.nics {
        lines.push(Line::from(format!("  {}", nic_line(nic))));
    }
    lines.push(Line::from(""));
    lines.push(
        Line::from("Settings (applied at boot; E to change)")
            .style(Style::default().add_modifier(Modifier::BOLD)),
    );
    if let Some(s) = &snap.settings {
        lines.push(Line::from(format!(
            "  host name  {}",
            s.hostname.as_deref().unwrap_or("(default)")
        )));
        if s.network.is_empty() {
            lines.push(Line::from("  addresses  DHCP on every wired NIC"));
        }
        for n in &s.network {
            lines.push(Line::from(format!(
                "  {:<9}  {} gateway {} dns {} mtu {}",
                n.interface,
                n.address.as_deref().unwrap_or("DHCP"),
                n.gateway.as_deref().unwrap_or("-"),
                if n.dns.is_empty() {
                    "-".to_string()
                } else {
                    n.dns.join(",")
                },
                n.mtu
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "default".into())
            )));
        }
        lines.push(Line::from(format!(
            "  time zone  {}   NTP {}",
            s.timezone.as_deref().unwrap_or("UTC"),
            if s.ntp.is_empty() {
                "-".to_string()
            } else {
                s.ntp.join(",")
            }
        )));
        if let Some(zone) = s.timezone.as_deref() {
            lines.push(Line::from(match jiff::tz::TimeZone::get(zone) {
                Ok(tz) => format!(
                    "  local time {}",
                    jiff::Timestamp::now()
                        .to_zoned(tz)
                        .strftime("%Y-%m-%d %H:%M %Z")
                ),
                Err(_) => format!("  local time ! {zone} is not in this console's zone data"),
            }));
        }
        if let Some(clock) = &snap.clock {
            lines.push(Line::from(match (&clock.synced, &clock.error) {
                (Some(sync), _) => format!(
                    "  clock      synced with {} (offset {:.1} ms{})",
                    sync.server,
                    sync.offset_ms,
                    if sync.stepped { ", stepped" } else { "" }
                ),
                (None, Some(e)) => format!("  clock      ! not synced: {e}"),
                (None, None) if clock.ntp.is_empty() => {
                    "  clock      no NTP server set".to_string()
                }
                (None, None) => "  clock      asking the NTP servers".to_string(),
            }));
        }
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

fn logs(f: &mut Frame<'_>, area: Rect, app: &App) {
    let height = area.height as usize;
    let mut lines: Vec<Line<'_>> = Vec::new();
    if !app.log_filter.is_empty() {
        lines.push(Line::from(format!(
            "lines with {:?} (Esc clears, / changes)",
            app.log_filter
        )));
    } else {
        lines.push(Line::from("newest at the bottom; / filters"));
    }
    let skip = app.snap.logs.len().saturating_sub(height.saturating_sub(1));
    for l in &app.snap.logs[skip..] {
        let w = area.width as usize;
        lines.push(Line::from(l.chars().take(w).collect::<String>()));
    }
    f.render_widget(Paragraph::new(lines), area);
}

fn power(f: &mut Frame<'_>, area: Rect) {
    let lines = vec![
        Line::from("R  restart the appliance"),
        Line::from("O  power it off"),
        Line::from("F  reset the settings to the defaults: host name, network, password,"),
        Line::from("   pools and shares are forgotten (the pools' data stays on their disks)"),
        Line::from(""),
        Line::from("Either asks again before it acts. Clients lose their mounts until the box"),
        Line::from("is back; data already written is safe on the pools."),
    ];
    f.render_widget(Paragraph::new(lines), area);
}

fn titled(pool: &str, what: &str) -> String {
    format!("{what} {pool}")
}

fn form_box(f: &mut Frame<'_>, area: Rect, app: &App, form: &Form) {
    let mut lines: Vec<Line<'_>> = Vec::new();
    let title = match form {
        Form::Pool { name, level, erase } => {
            let picked: Vec<&api::Disk> = app
                .snap
                .disks
                .iter()
                .filter(|d| app.picked.contains(&d.name))
                .collect();
            let smallest = picked.iter().map(|d| d.size_bytes).min().unwrap_or(0);
            let n = picked.len();
            lines.push(Line::from(name.shown(true)));
            lines.push(Line::from(format!(
                "  Level  < {} >  (Left/Right)",
                level.as_str()
            )));
            lines.push(Line::from(format!("  Disks  {}", app.picked.join(" "))));
            if n < level.min_disks() || n > level.max_disks() {
                lines.push(Line::from(format!(
                    "  ! {} needs {} to {} disks; {n} picked",
                    level.as_str(),
                    level.min_disks(),
                    level.max_disks()
                )));
            } else {
                lines.push(Line::from(format!(
                    "  Usable {}, survives {} disk failure(s)",
                    size(level.usable_bytes(n, smallest)),
                    level.fault_tolerance(n)
                )));
            }
            let with_data: Vec<&str> = picked
                .iter()
                .filter(|d| !d.contents.is_empty())
                .map(|d| d.name.as_str())
                .collect();
            if !with_data.is_empty() {
                lines.push(Line::from(format!(
                    "  {} hold data. Erase them: [{}] (Tab)",
                    with_data.join(" "),
                    if *erase { "YES" } else { "no" }
                )));
            }
            "Create a pool".to_string()
        }
        Form::Share {
            name,
            pool,
            devices,
        } => {
            lines.push(Line::from(name.shown(true)));
            let pool = app
                .snap
                .pools
                .get(*pool)
                .map(|p| p.name.as_str())
                .unwrap_or("(no pool yet)");
            lines.push(Line::from(format!("  Pool   < {pool} >  (Left/Right)")));
            lines.push(Line::from(format!(
                "  Device nodes  [{}]  (Tab)",
                if *devices {
                    "allowed, for an unsquashed root over NFS"
                } else {
                    "refused (FIFOs and sockets are fine)"
                }
            )));
            lines.push(Line::from(
                "  Every client may mount it read-write; root is squashed.",
            ));
            "Create a share".to_string()
        }
        Form::Filter(field) => {
            lines.push(Line::from(field.shown(true)));
            "Filter the log".to_string()
        }
        Form::PoolDisk {
            action,
            disk,
            erase,
        } => {
            let pool = app
                .snap
                .pools
                .get(app.row)
                .map(|p| p.name.as_str())
                .unwrap_or("?");
            let free = app.free_disks();
            match free.get(*disk) {
                Some(d) => {
                    lines.push(Line::from(format!(
                        "  Disk  < {} {} {} >  (Left/Right)",
                        d.name,
                        d.serial,
                        size(d.size_bytes)
                    )));
                    if !d.contents.is_empty() {
                        lines.push(Line::from(format!(
                            "  It holds data. Erase it: [{}] (Tab)",
                            if *erase { "YES" } else { "no" }
                        )));
                    }
                }
                None => lines.push(Line::from("  ! No free disk: connect one first.")),
            }
            lines.push(Line::from(if *action == "grow" {
                "  The pool reshapes onto it while serving; its size grows at the end."
            } else {
                "  md rebuilds onto it while the pool serves."
            }));
            if *action == "grow" {
                titled(pool, "Grow pool")
            } else {
                titled(pool, "Replace a disk in pool")
            }
        }
        Form::Account {
            name,
            password,
            on_password,
        } => {
            lines.push(Line::from(name.shown(!on_password)));
            lines.push(Line::from(password.shown(*on_password)));
            lines.push(Line::from(
                "  Tab: next field. A new name adds an account (next free uid);",
            ));
            lines.push(Line::from("  an existing one gets the new password."));
            "Account for SMB (the same uid over NFS)".to_string()
        }
        Form::Rule { clients, read_only } => {
            lines.push(Line::from(clients.shown(true)));
            lines.push(Line::from(format!(
                "  Access  [{}]  (Tab: read-write or read-only)",
                if *read_only {
                    "read-only"
                } else {
                    "read-write"
                }
            )));
            "Who may mount this share".to_string()
        }
        Form::Confirm(action) => {
            lines.push(Line::from(if *action == "reset" {
                "Really reset every setting to the defaults? Y yes, any other key no".to_string()
            } else {
                format!("Really {action} the appliance? Y yes, any other key no")
            }));
            "Confirm".to_string()
        }
    };
    let h = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + 2,
        y: area.y + area.height.saturating_sub(h),
        width: area.width.saturating_sub(4),
        height: h,
    };
    f.render_widget(tuirealm::ratatui::widgets::Clear, rect);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {title} ")),
        ),
        rect,
    );
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
    if let Some(act) = &snap.activity {
        lines.push(Line::from(""));
        lines.extend(traffic(act));
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
    let running: Vec<&api::Job> = snap.jobs.iter().filter(|j| j.state.is_active()).collect();
    if !running.is_empty() {
        lines.push(Line::from(""));
        lines.push(Line::from("Running jobs").style(Style::default().add_modifier(Modifier::BOLD)));
        for j in running {
            lines.push(Line::from(format!(
                "  {} {} {} {} {}",
                j.id,
                j.kind,
                j.target,
                bar(j.fraction.unwrap_or(0.0), 16),
                j.step
            )));
        }
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

/// Two seconds a character, so a minute fits an 80-column line.
fn halved(values: &[u64]) -> Vec<u64> {
    values.chunks(2).map(|c| c.iter().sum()).collect()
}

fn bold(text: String) -> Line<'static> {
    Line::from(text).style(Style::default().add_modifier(Modifier::BOLD))
}

/// Who is moving data now, the busiest files and accounts, latency per protocol, and
/// the audit log's newest matches.
fn activity(f: &mut Frame<'_>, area: Rect, app: &App) {
    let snap = &app.snap;
    let mut lines = vec![bold(
        "Clients, last minute (2 s a mark), now and peak".into(),
    )];
    if snap.series.is_empty() {
        lines.push(Line::from(
            "  nobody has read or written in the last minute",
        ));
    }
    for s in snap.series.iter().take(5) {
        let now = s.bytes_per_second.iter().rev().nth(1).copied().unwrap_or(0);
        let peak = s.bytes_per_second.iter().copied().max().unwrap_or(0);
        lines.push(Line::from(format!(
            "  {:<15} [{}] {:>9} (peak {:>9})",
            s.group.chars().take(15).collect::<String>(),
            sparkline(&halved(&s.bytes_per_second)),
            rate(now),
            rate(peak)
        )));
    }
    if let Some(p) = &snap.protocols {
        let parts: Vec<String> = p
            .rows
            .iter()
            .map(|r| {
                let ms =
                    |us: Option<u64>| us.map_or("-".into(), |u| format!("{:.2}", u as f64 / 1e3));
                format!(
                    "{} {:.1} ops/s {} p50 {} ms p99 {} ms{}",
                    r.group,
                    r.ops_per_s,
                    rate(r.bytes_per_s as u64),
                    ms(r.p50_us),
                    ms(r.p99_us),
                    if r.errors > 0 {
                        format!(" {} errors", r.errors)
                    } else {
                        String::new()
                    }
                )
            })
            .collect();
        lines.push(Line::from(""));
        lines.push(bold("Latency, last minute".into()));
        if parts.is_empty() {
            lines.push(Line::from("  no operations"));
        }
        for part in parts {
            lines.push(Line::from(format!("  {part}")));
        }
    }
    lines.push(Line::from(""));
    lines.push(bold(format!(
        "{:<44}{}",
        "Top files, last minute", "Top users"
    )));
    let files = snap
        .top_files
        .as_ref()
        .map(|t| t.rows.as_slice())
        .unwrap_or(&[]);
    let users = snap
        .top_users
        .as_ref()
        .map(|t| t.rows.as_slice())
        .unwrap_or(&[]);
    for i in 0..files.len().max(users.len()).max(1) {
        let cell = |rows: &[api::ActivityRow], width: usize| match rows.get(i) {
            Some(r) => {
                let name: String = r.group.chars().take(width - 12).collect();
                format!("{name:<w$} {:>10}", amount(r.bytes), w = width - 12)
            }
            None if i == 0 => "(none)".to_string(),
            None => String::new(),
        };
        lines.push(Line::from(format!(
            "  {:<42}{}",
            cell(files, 42),
            cell(users, 34)
        )));
    }
    lines.push(Line::from(""));
    lines.push(bold(if app.audit_filter.is_empty() {
        "Audit log, newest first (/ searches by path)".to_string()
    } else {
        format!(
            "Audit log: paths with {:?} (/ changes, Esc clears)",
            app.audit_filter
        )
    }));
    if snap.audit.is_empty() {
        lines.push(Line::from("  no records"));
    }
    for r in &snap.audit {
        let secs = r.time_ms / 1000 % 86_400;
        let what = match &r.to {
            Some(to) => format!("{} -> {to}", r.path),
            None => r.path.clone(),
        };
        lines.push(Line::from(format!(
            "  {:02}:{:02}:{:02} {:<15} {:<10} {:<4} {:<7} {}:{} {}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            r.client,
            r.user.chars().take(10).collect::<String>(),
            r.protocol,
            r.op,
            r.share,
            what,
            if r.result == "ok" {
                ""
            } else {
                r.result.as_str()
            }
        )));
    }
    f.render_widget(Paragraph::new(lines), area);
}

/// Bytes in the unit that reads best: kB, MB, GB or TB.
fn amount(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => size(b),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.0} kB", b as f64 / 1e3),
    }
}

fn rate(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB/s", bytes as f64 / 1e6)
    } else {
        format!("{:.0} kB/s", bytes as f64 / 1e3)
    }
}

/// One character per second, in plain ASCII so a VGA font or a serial terminal shows it.
pub fn sparkline(values: &[u64]) -> String {
    const LEVELS: &[u8] = b" .:-=+*#%@";
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if max == 0 || v == 0 {
                ' '
            } else {
                let i = 1 + (v * (LEVELS.len() as u64 - 2)).div_ceil(max) as usize;
                LEVELS[i.min(LEVELS.len() - 1)] as char
            }
        })
        .collect()
}

/// The dashboard's traffic lines: rates now, the last minute, and the clients.
fn traffic(act: &api::Activity) -> Vec<Line<'static>> {
    // The current second is still filling: show the one before it.
    let last = act
        .seconds
        .iter()
        .rev()
        .nth(1)
        .copied()
        .unwrap_or(api::Throughput {
            at: 0,
            read_bytes: 0,
            write_bytes: 0,
            ops: 0,
        });
    let per_second: Vec<u64> = act
        .seconds
        .iter()
        .map(|s| s.read_bytes + s.write_bytes)
        .collect();
    let peak = per_second.iter().copied().max().unwrap_or(0);
    let mut lines = vec![
        Line::from(format!(
            "Traffic  read {}  write {}  {} ops/s",
            rate(last.read_bytes),
            rate(last.write_bytes),
            last.ops
        ))
        .style(Style::default().add_modifier(Modifier::BOLD)),
        Line::from(format!(
            "  [{}] peak {}",
            sparkline(&per_second),
            rate(peak)
        )),
    ];
    if act.clients.is_empty() {
        lines.push(Line::from("  no clients in the last five minutes"));
    }
    for c in act.clients.iter().take(4) {
        lines.push(Line::from(format!(
            "  client {:<16} {:>9} ops  read {:>9}  written {:>9}",
            c.address,
            c.ops,
            amount(c.read_bytes),
            amount(c.write_bytes)
        )));
    }
    lines
}

fn table<'a>(header: &'a [&'a str], rows: Vec<Vec<String>>, widths: &'a [u16]) -> Table<'a> {
    Table::new(
        rows.into_iter().map(Row::new),
        widths.iter().map(|w| Constraint::Length(*w)),
    )
    .header(Row::new(header.to_vec()).style(Style::default().add_modifier(Modifier::BOLD)))
}

fn disks(f: &mut Frame<'_>, area: Rect, app: &App) {
    let rows = app
        .snap
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let state = if d.boot {
                "boot stick".to_string()
            } else if let Some(u) = &d.in_use_by {
                u.clone()
            } else if d.contents.is_empty() {
                "free".into()
            } else {
                "has data".into()
            };
            let mark = match (i == app.cursor, app.picked.contains(&d.name)) {
                (true, true) => ">[x]",
                (true, false) => ">[ ]",
                (false, true) => " [x]",
                (false, false) => " [ ]",
            };
            vec![
                format!("{mark} {}", d.name),
                d.transport.as_str().into(),
                size(d.size_bytes),
                d.serial.clone(),
                state,
            ]
        })
        .collect();
    let [list, help] = Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(area);
    f.render_widget(
        table(
            &["    DISK", "BUS", "SIZE", "SERIAL", "STATE"],
            rows,
            &[14, 9, 9, 18, 24],
        ),
        list,
    );
    f.render_widget(
        Paragraph::new("Up/Down move  Space pick  C create a pool of the picked disks"),
        help,
    );
}

fn pools(f: &mut Frame<'_>, area: Rect, app: &App) {
    let snap = &app.snap;
    let running: Vec<&api::Job> = snap.jobs.iter().filter(|j| j.state.is_active()).collect();
    let [list, jobs, help] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(running.len().min(4) as u16),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut rows = Vec::new();
    for (i, p) in snap.pools.iter().enumerate() {
        rows.push(vec![
            format!("{}{}", if i == app.row { ">" } else { " " }, p.name),
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
            &[" POOL", "LEVEL", "STATE", "SIZE", "USED", "NOTE"],
            rows,
            &[13, 9, 10, 12, 9, 24],
        ),
        list,
    );
    let job_lines: Vec<Line<'_>> = running
        .iter()
        .take(4)
        .map(|j| {
            Line::from(format!(
                "job {} {} {}: {} {}",
                j.id,
                j.kind,
                j.target,
                bar(j.fraction.unwrap_or(0.0), 16),
                j.step.split(" (").next().unwrap_or(&j.step)
            ))
        })
        .collect();
    f.render_widget(Paragraph::new(job_lines), jobs);
    f.render_widget(
        Paragraph::new("Up/Down choose  G grow  R replace a failed disk  U scrub now"),
        help,
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

fn shares(f: &mut Frame<'_>, area: Rect, app: &App) {
    let accounts_height = (app.snap.users.len().min(5) + 2) as u16;
    let [area, accounts, help] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(accounts_height),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new("Up/Down choose  C create a share  E edit its clients  U account"),
        help,
    );
    let mut lines = vec![bold("Accounts (NFS uid = SMB login)".into())];
    if app.snap.users.is_empty() {
        lines.push(Line::from("  none yet: U adds one for SMB logins"));
    }
    for u in app.snap.users.iter().take(5) {
        lines.push(Line::from(format!(
            "  {:<16} uid {:<6} gid {:<6} {}",
            u.name,
            u.uid,
            u.gid,
            if u.smb_password {
                "SMB password set"
            } else {
                "no SMB password"
            }
        )));
    }
    f.render_widget(Paragraph::new(lines), accounts);
    let rows = app
        .snap
        .shares
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let clients: Vec<String> = s
                .rules
                .iter()
                .map(|r| {
                    let nets: Vec<String> = r.clients.iter().map(|c| c.to_string()).collect();
                    format!(
                        "{} {}",
                        nets.join(","),
                        if r.read_only() { "ro" } else { "rw" }
                    )
                })
                .collect();
            vec![
                format!("{}{}", if i == app.row { ">" } else { " " }, s.name),
                s.pool.clone(),
                if s.online { "serving" } else { "OFFLINE" }.into(),
                clients.join("; "),
            ]
        })
        .collect();
    f.render_widget(
        table(
            &[" SHARE", "POOL", "STATE", "CLIENTS"],
            rows,
            &[17, 12, 9, 38],
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
        assert_eq!(sparkline(&[0, 1, 8, 4]), " :@+");
        assert_eq!(Screen::for_key('K'), Some(Screen::Disks));
        assert_eq!(Screen::for_key('z'), None);
    }
}
