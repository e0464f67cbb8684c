//! The supervisor's log, newest at the bottom, with a filter on `/`.

use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::Paragraph;
use tuirealm::ratatui::Frame;

use crate::screen::{Ctx, Go, Input, Screen};
use crate::search::{self, Search};
use crate::snapshot::Fetch;
use crate::snapshot::Snapshot;

pub struct Logs {
    /// Lines shown hold its text.
    search: Search,
}

impl Default for Logs {
    fn default() -> Self {
        Self {
            search: Search::new("Show lines with"),
        }
    }
}

impl Screen for Logs {
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
            log_filter: Some(self.search.text.clone()),
            ..Default::default()
        }
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        let height = area.height as usize;
        let mut lines: Vec<Line<'_>> = Vec::new();
        if !self.search.text.is_empty() {
            lines.push(Line::from(format!(
                "lines with {:?} (Esc clears, / changes)",
                self.search.text
            )));
        } else {
            lines.push(Line::from("newest at the bottom; / filters"));
        }
        let logs: &[String] = if self.search.answered_by(snap.fetched.log_filter.as_deref()) {
            &snap.logs
        } else {
            lines.push(Line::from("searching…"));
            &[]
        };
        let skip = logs.len().saturating_sub(height.saturating_sub(1));
        for l in &logs[skip..] {
            let w = area.width as usize;
            lines.push(Line::from(l.chars().take(w).collect::<String>()));
        }
        f.render_widget(Paragraph::new(lines), area);
        self.search.view(f, area);
    }
}
