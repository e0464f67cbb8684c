//! The pools with their members, and their running jobs with progress bars: grow onto
//! a free disk (G), replace a failed one (R), scrub now (U).

use rushes_api as api;
use tuirealm::ratatui::layout::{Constraint, Layout, Rect};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::Paragraph;
use tuirealm::ratatui::Frame;

use crate::screen::{Ctx, Go, Input, Screen};
use crate::snapshot::Snapshot;
use crate::widgets::{bar, form_box, serde_word, size, state_word, table};

/// Grow the selected pool onto a free disk, or repair it with one (`disk` indexes
/// the free disks).
struct DiskForm {
    action: &'static str,
    disk: usize,
    erase: bool,
}

#[derive(Default)]
pub struct Pools {
    row: usize,
    form: Option<DiskForm>,
}

pub enum Msg {
    Up,
    Down,
    Scrub,
    /// Open the form to grow (`grow`) or repair (`replace`) the pool.
    Open(&'static str),
    /// The form's disk, the next (`true`) or the previous one.
    Disk(bool),
    ToggleErase,
    Confirm,
    Cancel,
    Nothing,
}

impl Screen for Pools {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        if self.form.is_some() {
            return Some(match key {
                Input::Esc => Msg::Cancel,
                Input::Enter => Msg::Confirm,
                Input::Left => Msg::Disk(false),
                Input::Right => Msg::Disk(true),
                Input::Tab => Msg::ToggleErase,
                _ => Msg::Nothing,
            });
        }
        match key {
            Input::Up => Some(Msg::Up),
            Input::Down => Some(Msg::Down),
            Input::Char('u' | 'U') => Some(Msg::Scrub),
            Input::Char('g' | 'G') => Some(Msg::Open("grow")),
            Input::Char('r' | 'R') => Some(Msg::Open("replace")),
            _ => None,
        }
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Up => self.row = self.row.saturating_sub(1),
            Msg::Down => self.row = (self.row + 1).min(ctx.snap.pools.len().saturating_sub(1)),
            Msg::Scrub => {
                if let Some(pool) = ctx.snap.pools.get(self.row).cloned() {
                    let r = ctx.client.post::<_, api::Job>(
                        &format!("/v1/pools/{}/scrub", pool.name),
                        &serde_json::json!({}),
                    );
                    ctx.say(
                        r.map(|j| format!("Scrub of pool {} started (job {}).", pool.name, j.id)),
                    );
                    ctx.refresh = true;
                }
            }
            Msg::Open(action) => {
                if ctx.snap.pools.get(self.row).is_none() {
                    ctx.tell("! No pool yet: create one on the Disks screen.");
                } else {
                    *ctx.message = None;
                    self.form = Some(DiskForm {
                        action,
                        disk: 0,
                        erase: false,
                    });
                }
            }
            Msg::Disk(next) => {
                let n = ctx.snap.free_disks().len().max(1);
                if let Some(form) = &mut self.form {
                    form.disk = (form.disk + if next { 1 } else { n - 1 }) % n;
                }
            }
            Msg::ToggleErase => {
                if let Some(form) = &mut self.form {
                    form.erase = !form.erase;
                }
            }
            Msg::Cancel => self.form = None,
            Msg::Nothing => {}
            Msg::Confirm => {
                let form = self.form.as_ref()?;
                let (Some(pool), Some(d)) = (
                    ctx.snap.pools.get(self.row).cloned(),
                    ctx.snap.free_disks().get(form.disk).cloned(),
                ) else {
                    ctx.tell("! No free disk: connect one, it appears on the Disks screen.");
                    self.form = None;
                    return None;
                };
                let action = form.action;
                let r = if action == "grow" {
                    let req = api::GrowPool {
                        disks: vec![d.name.clone()],
                        wipe: if form.erase {
                            vec![d.name.clone()]
                        } else {
                            vec![]
                        },
                    };
                    ctx.client
                        .post::<_, api::Job>(&format!("/v1/pools/{}/grow", pool.name), &req)
                } else {
                    let req = api::ReplaceDisk {
                        disk: d.name.clone(),
                        old: None,
                        wipe: form.erase,
                    };
                    ctx.client
                        .post::<_, api::Job>(&format!("/v1/pools/{}/replace", pool.name), &req)
                };
                match r {
                    Ok(job) => {
                        ctx.tell(format!(
                            "{action} of pool {} started (job {}).",
                            pool.name, job.id
                        ));
                        ctx.refresh = true;
                        self.form = None;
                    }
                    Err(e) => ctx.tell(format!("! {e}")),
                }
            }
        }
        None
    }

    fn form_open(&self) -> bool {
        self.form.is_some()
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
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
                format!("{}{}", if i == self.row { ">" } else { " " }, p.name),
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
        if let Some(form) = &self.form {
            self.form_view(f, area, snap, form);
        }
    }
}

impl Pools {
    fn form_view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot, form: &DiskForm) {
        let DiskForm {
            action,
            disk,
            erase,
        } = form;
        let mut lines: Vec<Line<'_>> = Vec::new();
        let pool = snap
            .pools
            .get(self.row)
            .map(|p| p.name.as_str())
            .unwrap_or("?");
        let free = snap.free_disks();
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
        let title = if *action == "grow" {
            format!("Grow pool {pool}")
        } else {
            format!("Replace a disk in pool {pool}")
        };
        form_box(f, area, &title, lines);
    }
}
