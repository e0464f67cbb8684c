//! The lock: a read-only glance (address, pools, how many alerts), and the admin
//! password to get past it.

use rushes_api as api;
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Paragraph, Wrap};
use tuirealm::ratatui::Frame;

use crate::form::Field;
use crate::screen::{typed, Ctx, Go, Input, Screen};
use crate::snapshot::Snapshot;
use crate::widgets::{size, state_word};

#[derive(Default)]
pub struct Locked {
    /// The password being typed, once Enter asked for it.
    password: Option<Field>,
}

pub enum Msg {
    /// Ask for the password.
    Ask,
    Type(char),
    Unlock,
    /// Back to the glance.
    Back,
}

impl Screen for Locked {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        match (&self.password, key) {
            (None, Input::Enter) => Some(Msg::Ask),
            (None, _) => None,
            (Some(_), Input::Enter) => Some(Msg::Unlock),
            (Some(_), Input::Esc) => Some(Msg::Back),
            (Some(_), k) => typed(k).map(Msg::Type),
        }
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Ask => {
                *ctx.message = None;
                self.password = Some(Field::secret("Admin password"));
            }
            Msg::Back => self.password = None,
            Msg::Type(c) => {
                if let Some(f) = &mut self.password {
                    f.edit(c);
                }
            }
            Msg::Unlock => {
                let field = self.password.as_mut()?;
                let login = api::Login {
                    password: field.value.clone(),
                };
                match ctx.client.send("POST", "/v1/admin/login", Some(&login)) {
                    Ok(()) => {
                        *ctx.message = None;
                        self.password = None;
                        return Some(Go::Screen('d'));
                    }
                    Err(api::ClientError::Api { status: 403, .. }) => ctx.tell("! Wrong password."),
                    Err(e) => ctx.tell(format!("! {e}")),
                }
                field.value.clear();
            }
        }
        None
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        let mut lines = vec![
            Line::from(format!("Reach this box at: {}", snap.address())),
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
        match &self.password {
            None => lines.push(Line::from("This console is locked. Press Enter to unlock.")),
            Some(field) => lines.push(Line::from(field.shown(true))),
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
    }
}
