//! Who is moving data now, the busiest files and accounts, latency per protocol, the
//! rate rules with what their clients get, and the audit log's newest matches, searched
//! by path on `/`.

use rushes_api as api;
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::Paragraph;
use tuirealm::ratatui::Frame;

use crate::screen::{Ctx, Go, Input, Screen};
use crate::search::{self, Search};
use crate::snapshot::Fetch;
use crate::snapshot::Snapshot;
use crate::widgets::{amount, bold, halved, rate, sparkline};

pub struct Activity {
    /// Audit records shown have its text in their path.
    search: Search,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            search: Search::new("Audit records whose path has"),
        }
    }
}

impl Screen for Activity {
    type Msg = search::Msg;

    fn message(&self, key: Input) -> Option<search::Msg> {
        self.search.message(key)
    }

    fn update(&mut self, msg: search::Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        self.search.update(msg, ctx);
        None
    }

    fn form_open(&self) -> bool {
        self.search.is_open()
    }

    fn fetch(&self) -> Fetch {
        Fetch {
            audit_filter: Some(self.search.text.clone()),
            ..Default::default()
        }
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
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
                    let ms = |us: Option<u64>| {
                        us.map_or("-".into(), |u| format!("{:.2}", u as f64 / 1e3))
                    };
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
        if let Some(r) = snap.rates.as_ref() {
            rate_rules(&mut lines, r);
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
        lines.push(bold(if self.search.text.is_empty() {
            "Audit log, newest first (/ searches by path)".to_string()
        } else {
            format!(
                "Audit log: paths with {:?} (/ changes, Esc clears)",
                self.search.text
            )
        }));
        let answered = self
            .search
            .answered_by(snap.fetched.audit_filter.as_deref());
        let audit: &[api::AuditRecord] = if answered { &snap.audit } else { &[] };
        if !answered {
            lines.push(Line::from("  searching…"));
        } else if audit.is_empty() {
            lines.push(Line::from("  no records"));
        }
        let zone = snap.zone();
        for r in audit {
            let at = api::calendar::clock_time(r.time_ms, &zone);
            let what = match &r.to {
                Some(to) => format!("{} -> {to}", r.path),
                None => r.path.clone(),
            };
            lines.push(Line::from(format!(
                "  {at} {:<15} {:<10} {:<4} {:<7} {}:{} {}",
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
        self.search.view(f, area);
    }
}

/// The rate rules, when there are any (or they are not in force): each with what it
/// caps or reserves and what its clients move now, and what the reservations stand on.
fn rate_rules(lines: &mut Vec<Line<'static>>, r: &api::Rates) {
    if r.rules.is_empty() && r.problem.is_none() {
        return;
    }
    lines.push(Line::from(""));
    let standing = match r.measured_mb_s {
        Some(total) => format!(
            "reserved {} of {total:.0} MB/s the pools read at",
            r.reserved_mb_s
        ),
        None => "no pool measured: nothing can be reserved".into(),
    };
    lines.push(bold(format!("Rate rules, first match wins ({standing})")));
    if let Some(problem) = &r.problem {
        let problem: String = problem.chars().take(70).collect();
        lines.push(Line::from(format!("  not in force: {problem}")));
    }
    for rule in r.rules.iter().take(4) {
        let mut what = Vec::new();
        if let Some(cap) = rule.cap_mb_s {
            what.push(format!("cap {cap}"));
        }
        if let Some(reserve) = rule.reserve_mb_s {
            what.push(format!("reserve {reserve}"));
        }
        let covers = match (rule.clients.as_slice(), rule.shares.as_slice()) {
            ([], [one]) => format!("share {one}"),
            ([], [first, rest @ ..]) => format!("share {first} +{}", rest.len()),
            ([one], _) => one.clone(),
            ([first, rest @ ..], _) => format!("{first} +{}", rest.len()),
            ([], []) => String::new(),
        };
        lines.push(Line::from(format!(
            "  {:<14} {:<20} {:<20} now {:>7.1} MB/s",
            rule.name.chars().take(14).collect::<String>(),
            covers.chars().take(20).collect::<String>(),
            what.join(", "),
            rule.now_mb_s
        )));
        // What each of its busiest clients (or shares) gets now.
        let getting: Vec<String> = rule
            .getting
            .iter()
            .take(3)
            .map(|c| format!("{} {:.1}", c.address, c.mb_s))
            .collect();
        if !getting.is_empty() {
            let mut line = format!("    getting MB/s: {}", getting.join(", "));
            if rule.getting.len() > 3 {
                line.push_str(&format!(" +{} more", rule.getting.len() - 3));
            }
            lines.push(Line::from(line.chars().take(78).collect::<String>()));
        }
    }
    if r.rules.len() > 4 {
        lines.push(Line::from(format!(
            "  and {} more (rushesctl rate list)",
            r.rules.len() - 4
        )));
    }
}
