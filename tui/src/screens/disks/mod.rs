//! The disks: pick some with Space and create a pool of them (C), with the usable
//! size and the fault tolerance shown before anything is written.

use rushes_api as api;
use rushes_api::RaidLevel;
use tuirealm::ratatui::layout::{Constraint, Layout, Rect};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::Paragraph;
use tuirealm::ratatui::Frame;

use crate::form::Field;
use crate::screen::{typed, Ctx, Go, Input, Screen};
use crate::snapshot::Snapshot;
use crate::widgets::{form_box, size, table};

/// The create-a-pool form.
struct PoolForm {
    name: Field,
    level: RaidLevel,
    erase: bool,
}

#[derive(Default)]
pub struct Disks {
    /// Disks picked, by kernel name, and the cursor.
    picked: Vec<String>,
    cursor: usize,
    form: Option<PoolForm>,
}

pub enum Msg {
    Up,
    Down,
    /// Pick or unpick the disk under the cursor.
    Pick,
    /// Open the create-a-pool form.
    Create,
    /// The form's level, the next (`true`) or the previous one.
    Level(bool),
    ToggleErase,
    Type(char),
    Confirm,
    Cancel,
    Nothing,
}

impl Screen for Disks {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        if self.form.is_some() {
            return Some(match key {
                Input::Esc => Msg::Cancel,
                Input::Enter => Msg::Confirm,
                Input::Left => Msg::Level(false),
                Input::Right => Msg::Level(true),
                Input::Tab => Msg::ToggleErase,
                k => typed(k).map_or(Msg::Nothing, Msg::Type),
            });
        }
        match key {
            Input::Up => Some(Msg::Up),
            Input::Down => Some(Msg::Down),
            Input::Char(' ') => Some(Msg::Pick),
            Input::Char('c' | 'C') => Some(Msg::Create),
            _ => None,
        }
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Up => self.cursor = self.cursor.saturating_sub(1),
            Msg::Down => {
                self.cursor = (self.cursor + 1).min(ctx.snap.disks.len().saturating_sub(1))
            }
            Msg::Pick => {
                if let Some(d) = ctx.snap.disks.get(self.cursor) {
                    let name = d.name.clone();
                    if let Some(i) = self.picked.iter().position(|p| *p == name) {
                        self.picked.remove(i);
                    } else {
                        self.picked.push(name);
                    }
                }
            }
            Msg::Create => {
                if self.picked.is_empty() {
                    ctx.tell("! Pick disks first: move with the arrows, Space to pick.");
                } else {
                    let level = match self.picked.len() {
                        1 => RaidLevel::Single,
                        2 => RaidLevel::Raid1,
                        3 => RaidLevel::Raid5,
                        _ => RaidLevel::Raid6,
                    };
                    *ctx.message = None;
                    self.form = Some(PoolForm {
                        name: Field::new("Pool name", "media"),
                        level,
                        erase: false,
                    });
                }
            }
            Msg::Cancel => self.form = None,
            Msg::Nothing => {}
            Msg::Level(next) => {
                if let Some(form) = &mut self.form {
                    let all = RaidLevel::ALL;
                    let i = all.iter().position(|l| *l == form.level).unwrap_or(0);
                    let step = if next { 1 } else { all.len() - 1 };
                    form.level = all[(i + step) % all.len()];
                }
            }
            Msg::ToggleErase => {
                if let Some(form) = &mut self.form {
                    form.erase = !form.erase;
                }
            }
            Msg::Type(c) => {
                if let Some(form) = &mut self.form {
                    form.name.edit(c);
                }
            }
            Msg::Confirm => {
                let form = self.form.as_ref()?;
                let wipe = if form.erase {
                    self.picked.clone()
                } else {
                    vec![]
                };
                let req = api::CreatePool {
                    name: form.name.value.trim().into(),
                    level: form.level,
                    disks: self.picked.clone(),
                    class: None,
                    wipe,
                };
                match ctx.client.post::<_, api::Job>("/v1/pools", &req) {
                    Ok(job) => {
                        ctx.tell(format!(
                            "Creating pool {} (job {}); the Pools screen shows its progress.",
                            req.name, job.id
                        ));
                        self.picked.clear();
                        self.form = None;
                        ctx.refresh = true;
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
        let rows = snap
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let state = if d.boot {
                    "boot stick".to_string()
                } else if d.in_use_by.as_deref().is_some_and(unreadable) {
                    "unknown: kept as in use".into()
                } else if let Some(u) = &d.in_use_by {
                    u.clone()
                } else if d.contents.is_empty() {
                    "free".into()
                } else {
                    let found: Vec<&str> = d.contents.iter().map(|c| c.as_str()).collect();
                    format!("has {}", found.join(","))
                };
                let mark = match (i == self.cursor, self.picked.contains(&d.name)) {
                    (true, true) => ">[x]",
                    (true, false) => ">[ ]",
                    (false, true) => " [x]",
                    (false, false) => " [ ]",
                };
                let health = d.health.as_ref().map_or("-", |h| h.verdict());
                vec![
                    format!("{mark} {}", d.name),
                    d.transport.as_str().into(),
                    size(d.size_bytes),
                    d.serial.clone(),
                    health.into(),
                    state,
                ]
            })
            .collect();
        let [list, help] =
            Layout::vertical([Constraint::Fill(1), Constraint::Length(1)]).areas(area);
        f.render_widget(
            table(
                &["    DISK", "BUS", "SIZE", "SERIAL", "HEALTH", "STATE"],
                rows,
                &[13, 8, 9, 14, 7, 24],
            ),
            list,
        );
        f.render_widget(
            Paragraph::new("Up/Down move  Space pick  C create a pool of the picked disks"),
            help,
        );
        if let Some(form) = &self.form {
            self.form_view(f, area, snap, form);
        }
    }
}

/// The inventory could not read what is on the disk (its probe failed or hung).
fn unreadable(user: &str) -> bool {
    user.starts_with("unknown contents")
}

impl Disks {
    fn form_view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot, form: &PoolForm) {
        let PoolForm { name, level, erase } = form;
        let mut lines: Vec<Line<'_>> = Vec::new();
        let picked: Vec<&api::Disk> = snap
            .disks
            .iter()
            .filter(|d| self.picked.contains(&d.name))
            .collect();
        let smallest = picked.iter().map(|d| d.size_bytes).min().unwrap_or(0);
        let n = picked.len();
        lines.push(Line::from(name.shown(true)));
        lines.push(Line::from(format!(
            "  Level  < {} >  (Left/Right)",
            level.as_str()
        )));
        lines.push(Line::from(format!("  Disks  {}", self.picked.join(" "))));
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
        form_box(f, area, "Create a pool", lines);
    }
}
