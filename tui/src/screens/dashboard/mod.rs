//! The dashboard: pools with capacity bars and md's work, live traffic and clients,
//! alerts, and running jobs with progress bars. It takes no keys of its own.

use rushes_api as api;
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::style::{Modifier, Style};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Paragraph, Wrap};
use tuirealm::ratatui::Frame;

use crate::screen::Screen;

/// Where the web console is, and the certificate's fingerprint to compare on first use
/// (a browser's warning, `rushesctl --host`), in two halves that fit 80 columns.
fn web_console<'a>(web: &api::WebInfo, snap: &Snapshot) -> Vec<Line<'a>> {
    let port = web
        .listen
        .as_deref()
        .and_then(|l| l.rsplit_once(':'))
        .map(|(_, p)| p)
        .filter(|p| *p != "443")
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let address = snap
        .setup
        .as_ref()
        .and_then(|s| s.addresses.first())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .unwrap_or_else(|| "this box".into());
    let mut lines = vec![
        Line::from(""),
        Line::from(format!("Web console  https://{address}{port}/"))
            .style(Style::default().add_modifier(Modifier::BOLD)),
    ];
    if let Some(cert) = &web.certificate {
        let half = cert.fingerprint.len() / 2 + 1;
        let (first, second) = cert.fingerprint.split_at(half.min(cert.fingerprint.len()));
        lines.push(Line::from(format!("  certificate SHA-256 {first}")));
        lines.push(Line::from(format!("                      {second}")));
    }
    lines
}
use crate::snapshot::Snapshot;
use crate::widgets::{bar, severity_word, size, state_word, traffic};

#[derive(Default)]
pub struct Dashboard;

impl Screen for Dashboard {
    type Msg = ();

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        let mut lines =
            vec![Line::from("Pools").style(Style::default().add_modifier(Modifier::BOLD))];
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
        if let Some(web) = snap.web.as_ref().filter(|w| w.listen.is_some()) {
            lines.extend(web_console(web, snap));
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
            lines.push(
                Line::from("Running jobs").style(Style::default().add_modifier(Modifier::BOLD)),
            );
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
}
