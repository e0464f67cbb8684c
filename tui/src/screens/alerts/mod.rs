//! Every open alert, the most severe first, with what to do about it.

use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Paragraph, Wrap};
use tuirealm::ratatui::Frame;

use crate::screen::Screen;
use crate::snapshot::Snapshot;
use crate::widgets::severity_word;

#[derive(Default)]
pub struct Alerts;

impl Screen for Alerts {
    type Msg = ();

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
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
}
