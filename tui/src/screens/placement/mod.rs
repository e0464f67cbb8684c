//! Placement and copies: the rules in force in order, each pool's fill against its
//! watermarks, the runs moving data with their progress, the copy targets (reachable or
//! not, what they hold) with the copy jobs running and the files short of their copies;
//! on keys what would move (W, a simulate), an explain of one file (E), a run now (R)
//! and a copies reconcile now (C). Menu letters stay the router's.

use rushes_api as api;
use tuirealm::ratatui::layout::{Constraint, Layout, Rect};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Paragraph, Wrap};
use tuirealm::ratatui::Frame;

use crate::form::Field;
use crate::screen::{typed, Ctx, Go, Input, Screen};
use crate::snapshot::Snapshot;
use crate::widgets::{amount, bar, bold, form_box};

#[derive(Default)]
pub struct Placement {
    /// The explain form's path (`SHARE/PATH`) while it is open.
    explain: Option<Field>,
    /// What the last simulate or explain said, shown under the pools until Esc.
    answer: Vec<String>,
}

pub enum Msg {
    Simulate,
    OpenExplain,
    Type(char),
    Explain,
    Run,
    Reconcile,
    /// Close the form, or the answer.
    Close,
    Nothing,
}

/// Width of a pool's fill gauge, in characters.
const GAUGE: usize = 30;

/// A pool's fill as a gauge with its watermarks drawn on it: `L` low, `H` high.
fn gauge(used: f64, high: Option<u8>, low: Option<u8>) -> String {
    let filled = (used.clamp(0.0, 1.0) * GAUGE as f64).round() as usize;
    let mut cells: Vec<char> = (0..GAUGE)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    for (pct, c) in [(low, 'L'), (high, 'H')] {
        if let Some(p) = pct {
            let i = ((f64::from(p) / 100.0) * GAUGE as f64).round() as usize;
            cells[i.min(GAUGE - 1)] = c;
        }
    }
    format!("[{}]", cells.into_iter().collect::<String>())
}

impl Screen for Placement {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        if self.explain.is_some() {
            return Some(match key {
                Input::Esc => Msg::Close,
                Input::Enter => Msg::Explain,
                k => typed(k).map_or(Msg::Nothing, Msg::Type),
            });
        }
        match key {
            Input::Char('w' | 'W') => Some(Msg::Simulate),
            Input::Char('e' | 'E') => Some(Msg::OpenExplain),
            Input::Char('r' | 'R') => Some(Msg::Run),
            Input::Char('c' | 'C') => Some(Msg::Reconcile),
            Input::Esc if !self.answer.is_empty() => Some(Msg::Close),
            _ => None,
        }
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Simulate => {
                let req = api::SimulateRequest {
                    text: None,
                    list: Some(8),
                };
                match ctx
                    .client
                    .post::<_, api::PlacementPlan>("/v1/placement/simulate", &req)
                {
                    Ok(plan) => {
                        self.answer = plan.report.lines().map(String::from).collect();
                        ctx.tell("Simulated: nothing was moved. Esc closes it.");
                    }
                    Err(e) => ctx.tell(format!("! {e}")),
                }
            }
            Msg::OpenExplain => {
                *ctx.message = None;
                self.explain = Some(Field::new("File (SHARE/PATH)", ""));
            }
            Msg::Type(c) => {
                if let Some(field) = &mut self.explain {
                    field.edit(c);
                }
            }
            Msg::Explain => {
                let path = self.explain.as_ref()?.value.trim().to_string();
                let query = crate::snapshot::query_value(&path);
                match ctx
                    .client
                    .get::<api::PlacementExplain>(&format!("/v1/placement/explain?path={query}"))
                {
                    Ok(x) => {
                        self.explain = None;
                        self.answer = explain_lines(&x);
                        *ctx.message = None;
                    }
                    Err(e) => ctx.tell(format!("! {e}")),
                }
            }
            Msg::Run => {
                let r = ctx
                    .client
                    .post::<_, api::Job>("/v1/placement/run", &api::PlacementRun::default());
                ctx.say(r.map(|j| format!("Placement run started (job {}).", j.id)));
                ctx.refresh = true;
            }
            Msg::Reconcile => {
                let r = ctx.client.post::<_, api::Job>("/v1/copies/reconcile", &());
                ctx.say(r.map(|j| format!("Copies reconcile started (job {}).", j.id)));
                ctx.refresh = true;
            }
            Msg::Close => {
                if self.explain.take().is_none() {
                    self.answer.clear();
                }
            }
            Msg::Nothing => {}
        }
        None
    }

    fn form_open(&self) -> bool {
        self.explain.is_some()
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        let [top, help] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(area);
        let mut lines: Vec<Line<'_>> = Vec::new();
        let placement = snap.placement.clone().unwrap_or_default();
        lines.push(bold(
            "Rules, in order (the first that matches decides)".into(),
        ));
        if !placement.problems.is_empty() {
            lines.push(Line::from(
                "  ! The rules in rushes.toml are refused; nothing moves until they are fixed:",
            ));
            for p in &placement.problems {
                lines.push(Line::from(format!("    line {}: {}", p.line, p.reason)));
            }
        }
        if placement.rules.is_empty() && placement.problems.is_empty() {
            lines.push(Line::from(
                "  No rules: every file stays on its share's pool (rushesctl placement set FILE).",
            ));
        }
        for (i, r) in placement.rules.iter().enumerate() {
            let what = match (&*r.action, &r.pool) {
                ("place", Some(pool)) => format!("place on {pool}"),
                (action, _) => action.to_string(),
            };
            let when = if r.on.is_empty() {
                String::new()
            } else {
                format!("  [{}]", r.on.join(", "))
            };
            lines.push(Line::from(format!(
                "  {}. {:<14} {:<18}{}",
                i + 1,
                r.name,
                what,
                when
            )));
            if !r.conditions.is_empty() {
                lines.push(Line::from(format!("       if {}", r.conditions.join(", "))));
            }
        }
        if let Some(every) = placement.every_secs {
            lines.push(Line::from(format!(
                "  Runs by themselves every {}.",
                every_words(every)
            )));
        }
        lines.push(bold("Pools (L low and H high watermark)".into()));
        for p in &snap.pools {
            let mark = placement.watermarks.iter().find(|w| w.pool == p.name);
            let used = if p.size_bytes > 0 {
                p.used_bytes as f64 / p.size_bytes as f64
            } else {
                0.0
            };
            let over = mark.is_some_and(|m| used * 100.0 > f64::from(m.high));
            lines.push(Line::from(format!(
                "  {:<12} {} {:>3.0} % of {}{}",
                p.name,
                gauge(used, mark.map(|m| m.high), mark.map(|m| m.low)),
                used * 100.0,
                amount(p.size_bytes),
                if over { "  ABOVE HIGH" } else { "" }
            )));
        }
        let runs: Vec<&api::Job> = snap
            .jobs
            .iter()
            .filter(|j| j.kind == "placement-run")
            .collect();
        lines.push(bold("Moves".into()));
        match runs.iter().find(|j| j.state.is_active()) {
            Some(j) => lines.push(Line::from(format!(
                "  job {} {} {}",
                j.id,
                bar(j.fraction.unwrap_or(0.0), 12),
                j.step.split(" (").next().unwrap_or(&j.step)
            ))),
            None => lines.push(Line::from(match runs.last() {
                Some(j) => format!("  none running; the last (job {}): {}", j.id, j.step),
                None => "  none running".into(),
            })),
        }
        lines.extend(copies_lines(snap));
        if !self.answer.is_empty() {
            lines.push(Line::from(""));
            lines.extend(self.answer.iter().map(|l| Line::from(format!("  {l}"))));
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), top);
        f.render_widget(
            Paragraph::new("W what would move  E explain  R run now  C copies now  Esc closes"),
            help,
        );
        if let Some(field) = &self.explain {
            form_box(
                f,
                area,
                "Explain where a file's data belongs",
                vec![
                    Line::from(field.shown(true)),
                    Line::from("  Enter asks, Esc closes."),
                ],
            );
        }
    }

    fn fetch(&self) -> crate::snapshot::Fetch {
        crate::snapshot::Fetch {
            placement: true,
            ..Default::default()
        }
    }
}

/// Jobs of copies: made by hand or by rules, audits, releases and recalls.
const COPY_JOBS: [&str; 5] = [
    "copy-files",
    "reconcile-copies",
    "audit-copies",
    "release-files",
    "recall-files",
];

/// The copy targets, the copy jobs running and the files short of their copies.
fn copies_lines(snap: &Snapshot) -> Vec<Line<'static>> {
    let mut lines = vec![bold("Copy targets".into())];
    if snap.targets.is_empty() {
        lines.push(Line::from(
            "  none: rushesctl target set NAME --s3 BUCKET ... (or --folder PATH)",
        ));
    }
    for t in &snap.targets {
        let kind = t.place.kind();
        let health = match &t.health {
            None => "not checked yet".to_string(),
            Some(h) if h.ok => format!("reachable, {} ms", h.took_ms),
            Some(h) => format!("UNREACHABLE: {}", h.error.as_deref().unwrap_or("no answer")),
        };
        let held = t.stored.as_ref().map_or(String::new(), |c| {
            format!("  {} copies, {}", c.files, amount(c.bytes))
        });
        lines.push(Line::from(format!(
            "  {:<12} {:<6} {health}{held}",
            t.name, kind
        )));
    }
    let copying: Vec<&api::Job> = snap
        .jobs
        .iter()
        .filter(|j| COPY_JOBS.contains(&j.kind.as_str()))
        .collect();
    match copying.iter().find(|j| j.state.is_active()) {
        Some(j) => lines.push(Line::from(format!(
            "  job {} {} {}",
            j.id,
            bar(j.fraction.unwrap_or(0.0), 12),
            j.step.split(" (").next().unwrap_or(&j.step)
        ))),
        None => {
            if let Some(j) = copying.last() {
                lines.push(Line::from(format!(
                    "  no copies running; the last ({} {}): {}",
                    j.kind,
                    j.id,
                    j.error.as_deref().unwrap_or(&j.step)
                )));
            }
        }
    }
    if let Some(short) = snap.alerts.iter().find(|a| a.id == "copies-short") {
        lines.push(Line::from(format!("  ! {}", short.message)));
    }
    lines
}

fn every_words(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// An explain answer as the screen shows it.
fn explain_lines(x: &api::PlacementExplain) -> Vec<String> {
    let mut out = vec![format!(
        "{}/{} ({}), data on pool {}",
        x.share,
        x.path.trim_start_matches('/'),
        amount(x.size_bytes),
        x.pool
    )];
    for v in &x.verdicts {
        out.push(format!(
            "{} {}: {}",
            if v.matched { "MATCH" } else { "no   " },
            v.rule,
            v.why
        ));
    }
    out.push(x.outcome.clone());
    if let Some(rule) = &x.at_create {
        out.push(format!("new files like it are placed by rule {rule}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauge_draws_the_fill_and_both_watermarks() {
        let g = gauge(0.5, Some(90), Some(75));
        assert_eq!(g.chars().count(), GAUGE + 2);
        assert_eq!(g.find('H'), Some(1 + 27));
        assert_eq!(g.find('L'), Some(1 + 23));
        assert!(gauge(0.0, None, None).chars().all(|c| c != 'H' && c != 'L'));
    }
}
