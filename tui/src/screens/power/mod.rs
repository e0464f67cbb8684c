//! Restart, power off, or reset the settings to the defaults, each asked again.

use rushes_api as api;
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::Paragraph;
use tuirealm::ratatui::Frame;

use crate::screen::{Ctx, Go, Input, Screen};
use crate::screens::wizard::Wizard;
use crate::snapshot::Snapshot;
use crate::widgets::form_box;

/// `reboot`, `poweroff` or `reset`, waiting for Y.
#[derive(Default)]
pub struct Power {
    confirm: Option<&'static str>,
}

pub enum Msg {
    Ask(&'static str),
    Yes,
    No,
}

impl Screen for Power {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        if self.confirm.is_some() {
            return Some(match key {
                Input::Char('y' | 'Y') => Msg::Yes,
                _ => Msg::No,
            });
        }
        match key {
            Input::Char('r' | 'R') => Some(Msg::Ask("reboot")),
            Input::Char('o' | 'O') => Some(Msg::Ask("poweroff")),
            Input::Char('f' | 'F') => Some(Msg::Ask("reset")),
            _ => None,
        }
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Ask(action) => {
                *ctx.message = None;
                self.confirm = Some(action);
            }
            Msg::No => self.confirm = None,
            Msg::Yes => {
                let action = self.confirm.take()?;
                if action == "reset" {
                    match ctx
                        .client
                        .send("POST", "/v1/reset", Some(&api::Reset { confirm: true }))
                    {
                        Ok(()) => {
                            ctx.refresh = true;
                            ctx.tell("Settings are back to the defaults.");
                            return Some(Go::Wizard(Box::new(Wizard::first_boot())));
                        }
                        Err(e) => ctx.tell(format!("! {e}")),
                    }
                    return None;
                }
                let power = api::Power {
                    action: action.into(),
                    confirm: true,
                };
                ctx.say(
                    ctx.client
                        .send("POST", "/v1/power", Some(&power))
                        .map(|()| format!("The appliance is going to {action} now.")),
                );
            }
        }
        None
    }

    fn form_open(&self) -> bool {
        self.confirm.is_some()
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, _snap: &Snapshot) {
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
        if let Some(action) = self.confirm {
            let question = if action == "reset" {
                "Really reset every setting to the defaults? Y yes, any other key no".to_string()
            } else {
                format!("Really {action} the appliance? Y yes, any other key no")
            };
            form_box(f, area, "Confirm", vec![Line::from(question)]);
        }
    }
}
