//! The media catalog searched from the console: a query typed on `/` (the same language
//! as `rushesctl search`), the clips it finds with codec, picture, rate, duration and
//! timecode a page at a time (→ and ← turn the pages), and the facet counts over all of
//! them. R brings the clips shown back from their copies (a recall job a share).

use rushes_api as api;
use rushes_api::media::Found;
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::Paragraph;
use tuirealm::ratatui::Frame;

use crate::screen::{Ctx, Go, Input, Screen};
use crate::search::{self, Search};
use crate::snapshot::{Fetch, Snapshot, SEARCH_PAGE as PAGE};
use crate::widgets::bold;

pub struct Find {
    search: Search,
    /// The first clip of the page shown.
    offset: usize,
}

impl Default for Find {
    fn default() -> Self {
        Self {
            search: Search::new("Clips matching (e.g. codec:prores_4444 reel:A003 fps:23.976)"),
            offset: 0,
        }
    }
}

pub enum Msg {
    Search(search::Msg),
    /// The next page, or the one before.
    Page(bool),
    /// Recall the clips shown.
    Recall,
}

impl Screen for Find {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        match key {
            Input::Right if !self.search.is_open() => Some(Msg::Page(true)),
            Input::Left if !self.search.is_open() => Some(Msg::Page(false)),
            Input::Char('r' | 'R') if !self.search.is_open() => Some(Msg::Recall),
            k => self.search.message(k).map(Msg::Search),
        }
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Search(m) => {
                let (before, applied) = (
                    self.search.text.clone(),
                    matches!(m, search::Msg::Apply | search::Msg::Clear),
                );
                self.search.update(m, ctx);
                // A new query starts at its first page.
                if applied || self.search.text != before {
                    self.offset = 0;
                }
            }
            Msg::Recall => {
                let Some(found) = ctx.snap.found.as_ref().filter(|f| !f.clips.is_empty()) else {
                    ctx.tell("No clip shown to recall.");
                    return None;
                };
                // One job a share, with every file of each clip shown.
                let mut by_share: std::collections::BTreeMap<String, Vec<String>> =
                    Default::default();
                let mut clips = 0;
                for clip in found.clips.iter().take(PAGE) {
                    clips += 1;
                    let paths = by_share.entry(clip.share.clone()).or_default();
                    paths.push(clip.path.clone());
                    paths.extend(clip.members.iter().cloned());
                }
                let mut jobs = Vec::new();
                for (share, paths) in by_share {
                    let req = api::RecallFiles { share, paths };
                    match ctx.client.post::<_, api::Job>("/v1/copies/recall", &req) {
                        Ok(job) => jobs.push(job.id.to_string()),
                        Err(e) => {
                            ctx.tell(format!("! {e}"));
                            return None;
                        }
                    }
                }
                ctx.tell(format!(
                    "Recalling the {clips} clips shown from their copies (job {}).",
                    jobs.join(", ")
                ));
                ctx.refresh = true;
            }
            Msg::Page(next) => {
                let total = ctx.snap.found.as_ref().map_or(0, |f| f.total);
                let offset = if next {
                    self.offset + PAGE
                } else {
                    self.offset.saturating_sub(PAGE)
                };
                if offset != self.offset && offset < total.max(1) {
                    self.offset = offset;
                    ctx.refresh = true;
                }
            }
        }
        None
    }

    fn form_open(&self) -> bool {
        self.search.is_open()
    }

    fn fetch(&self) -> Fetch {
        Fetch {
            catalog: Some(self.search.text.clone()),
            catalog_offset: self.offset,
            ..Default::default()
        }
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        let width = usize::from(area.width.saturating_sub(2)).max(40);
        let mut lines = vec![bold(if self.search.text.is_empty() {
            "Every file in the catalog (/ searches: codec:, reel:, fps:, tc:, camera: …)".into()
        } else {
            format!(
                "Clips matching {:?} (/ changes, Esc clears)",
                self.search.text
            )
        })];
        let answered = self.search.answered_by(snap.fetched.catalog.as_deref())
            && snap.fetched.catalog_offset == self.offset;
        match (&snap.found, &snap.found_error) {
            _ if !answered => lines.push(Line::from("  searching…")),
            (_, Some(error)) => {
                for part in wrap(&format!("! {error}"), width - 2) {
                    lines.push(Line::from(format!("  {part}")));
                }
            }
            (Some(found), None) => results(&mut lines, found, self.offset, width),
            (None, None) => lines.push(Line::from("  searching…")),
        }
        f.render_widget(Paragraph::new(lines), area);
        self.search.view(f, area);
    }
}

fn results(lines: &mut Vec<Line<'static>>, found: &Found, offset: usize, width: usize) {
    if found.total == 0 {
        lines.push(Line::from("  no clip matches"));
        return;
    }
    let path_width = width.saturating_sub(52).max(16);
    lines.push(Line::from(format!(
        "  {:<path_width$} {:<13} {:>9} {:>6} {:>6} {:<11}",
        "CLIP", "CODEC", "PICTURE", "FPS", "DUR", "TIMECODE"
    )));
    for clip in found.clips.iter().take(PAGE) {
        let c = clip.summary();
        let mut id = clip.label();
        if id.chars().count() > path_width {
            // The end of a path says most: keep it.
            let keep: String = id.chars().rev().take(path_width - 1).collect();
            id = format!("…{}", keep.chars().rev().collect::<String>());
        }
        lines.push(Line::from(format!(
            "  {:<path_width$} {:<13} {:>9} {:>6} {:>6} {:<11}",
            id,
            c.codec.chars().take(13).collect::<String>(),
            c.picture,
            c.fps,
            c.duration,
            c.timecode,
        )));
    }
    let shown = found.clips.len().min(PAGE);
    lines.push(Line::from(if found.total > shown {
        format!(
            "  {}-{} of {} (→ next page, ← the one before)",
            offset + 1,
            offset + shown,
            found.total
        )
    } else {
        format!("  {shown} of {}", found.total)
    }));
    lines.push(Line::from(
        "  R brings the clips shown back from their copies",
    ));
    lines.push(Line::from(""));
    for line in found.facets.iter().filter_map(|f| f.line()) {
        let line = format!("  {line}");
        lines.push(Line::from(line.chars().take(width).collect::<String>()));
    }
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = vec![String::new()];
    for word in text.split(' ') {
        let last = out.last_mut().expect("one line at least");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            out.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    out
}
