//! The first-boot wizard: host name, network (DHCP or a static address, each NIC's
//! link shown), admin password, time zone and NTP, then how to reach the box. Its
//! network step alone is how the Network screen changes the network.

use rushes_api as api;
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Paragraph, Wrap};
use tuirealm::ratatui::Frame;

use crate::form::Field;
use crate::screen::{typed, Ctx, Go, Input, Screen};
use crate::snapshot::Snapshot;
use crate::widgets::{mount_lines, nic_line};

/// Steps of the first-boot wizard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Welcome,
    Name,
    Network,
    Password,
    Time,
    Done,
}

pub struct Wizard {
    step: Step,
    fields: Vec<Field>,
    focus: usize,
    dhcp: bool,
    /// What the wizard has gathered so far.
    pending: api::Settings,
    pending_password: String,
    /// Opened from the Network screen: its network step alone, saved at once.
    editing_network: bool,
}

pub enum Msg {
    /// From the welcome to the first step.
    Begin,
    /// From the last page to the dashboard.
    Finish,
    Dhcp,
    Static,
    NextField,
    PrevField,
    Type(char),
    /// Check this step and go on.
    Next,
    /// Back to the Network screen without a change.
    Leave,
    Nothing,
}

fn wizard_fields(step: Step, dhcp: bool) -> Vec<Field> {
    match step {
        Step::Name => vec![Field::new("Host name", "rushes")],
        Step::Network if !dhcp => vec![
            Field::new("Interface (* = all)", "*"),
            Field::new("Address (CIDR)", ""),
            Field::new("Gateway", ""),
            Field::new("DNS server", ""),
            Field::new("MTU (9000 = jumbo)", "1500"),
        ],
        Step::Password => vec![Field::secret("Admin password"), Field::secret("Again")],
        Step::Time => vec![
            Field::new("Time zone", "UTC"),
            Field::new("NTP server", "pool.ntp.org"),
        ],
        _ => vec![],
    }
}

impl Wizard {
    /// The wizard from its welcome, as a blank box (or a reset one) starts.
    pub fn first_boot() -> Self {
        Self {
            step: Step::Welcome,
            fields: vec![],
            focus: 0,
            dhcp: true,
            pending: api::Settings::default(),
            pending_password: String::new(),
            editing_network: false,
        }
    }

    /// The last page, as it shows once everything is saved.
    #[cfg(test)]
    pub fn finished() -> Self {
        Self {
            step: Step::Done,
            ..Self::first_boot()
        }
    }

    /// The network step alone, for the Network screen.
    pub fn network_only() -> Self {
        Self {
            step: Step::Network,
            editing_network: true,
            ..Self::first_boot()
        }
    }

    fn goto(&mut self, ctx: &mut Ctx<'_>, step: Step, dhcp: bool) {
        *ctx.message = None;
        self.step = step;
        self.fields = wizard_fields(step, dhcp);
        self.focus = 0;
        self.dhcp = dhcp;
    }

    /// Check a step and move on; the last step saves everything through the API.
    fn next_step(&mut self, ctx: &mut Ctx<'_>) -> Result<Step, String> {
        let (step, dhcp) = (self.step, self.dhcp);
        let fields = &self.fields;
        let v = |i: usize| {
            fields
                .get(i)
                .map(|f| f.value.trim().to_string())
                .unwrap_or_default()
        };
        match step {
            Step::Name => {
                if v(0).is_empty() {
                    return Err("give the box a host name".into());
                }
                self.pending.hostname = Some(v(0));
                Ok(Step::Network)
            }
            Step::Network => {
                self.pending.network = if dhcp {
                    vec![]
                } else {
                    if v(1).is_empty() {
                        return Err(
                            "give an address such as 10.10.0.5/24, or press Esc for DHCP".into(),
                        );
                    }
                    vec![api::NetworkSetting {
                        interface: if v(0).is_empty() { "*".into() } else { v(0) },
                        address: Some(v(1)),
                        gateway: (!v(2).is_empty()).then(|| v(2)),
                        dns: if v(3).is_empty() { vec![] } else { vec![v(3)] },
                        mtu: v(4).parse().ok(),
                    }]
                };
                Ok(Step::Password)
            }
            Step::Password => {
                if v(0).chars().count() < 8 {
                    return Err("the admin password needs at least 8 characters".into());
                }
                if v(0) != v(1) {
                    return Err("the two passwords differ; type them again".into());
                }
                self.pending_password = v(0);
                Ok(Step::Time)
            }
            Step::Time => {
                self.pending.timezone = Some(v(0)).filter(|t| !t.is_empty());
                self.pending.ntp = if v(1).is_empty() { vec![] } else { vec![v(1)] };
                ctx.client
                    .put::<_, api::Settings>("/v1/settings", &self.pending)
                    .map_err(|e| e.to_string())?;
                let pw = api::SetPassword {
                    current: None,
                    new: self.pending_password.clone(),
                };
                ctx.client
                    .send("PUT", "/v1/admin/password", Some(&pw))
                    .map_err(|e| e.to_string())?;
                Ok(Step::Done)
            }
            Step::Welcome | Step::Done => Ok(step),
        }
    }
}

impl Screen for Wizard {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        let fields = !self.fields.is_empty();
        Some(match (self.step, key) {
            (Step::Welcome, Input::Enter) => Msg::Begin,
            (Step::Done, Input::Enter) => Msg::Finish,
            (Step::Network, Input::Char('d' | 'D')) if !fields || self.dhcp => Msg::Dhcp,
            (Step::Network, Input::Char('s' | 'S')) if self.dhcp => Msg::Static,
            (Step::Network, Input::Esc) if !self.dhcp => Msg::Dhcp,
            (_, Input::Tab | Input::Down) if fields => Msg::NextField,
            (_, Input::Up) if fields => Msg::PrevField,
            (_, k) if fields && typed(k).is_some() => Msg::Type(typed(k).unwrap_or_default()),
            (_, Input::Enter) => Msg::Next,
            (Step::Network, Input::Esc) if self.editing_network && self.dhcp => Msg::Leave,
            _ => Msg::Nothing,
        })
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Begin => self.goto(ctx, Step::Name, self.dhcp),
            Msg::Finish => {
                *ctx.message = None;
                return Some(Go::Screen('d'));
            }
            Msg::Dhcp => self.goto(ctx, Step::Network, true),
            Msg::Static => self.goto(ctx, Step::Network, false),
            Msg::NextField => self.focus = (self.focus + 1) % self.fields.len(),
            Msg::PrevField => self.focus = (self.focus + self.fields.len() - 1) % self.fields.len(),
            Msg::Type(c) => {
                self.fields[self.focus].edit(c);
            }
            Msg::Next => match self.next_step(ctx) {
                Ok(_) if self.editing_network => {
                    // Changed from the Network screen: save just that, and go back there.
                    let mut settings = ctx.snap.settings.clone().unwrap_or_default();
                    settings.network = self.pending.network.clone();
                    match ctx
                        .client
                        .put::<_, api::Settings>("/v1/settings", &settings)
                    {
                        Ok(_) => {
                            self.editing_network = false;
                            ctx.tell(
                                "Network settings saved; they apply at the next start (Power, R).",
                            );
                            ctx.refresh = true;
                            return Some(Go::Screen('n'));
                        }
                        Err(e) => ctx.tell(format!("! {e}")),
                    }
                }
                Ok(next) => {
                    if self.step == Step::Time {
                        ctx.refresh = true;
                    }
                    self.goto(ctx, next, self.dhcp);
                }
                Err(why) => ctx.tell(format!("! {why}")),
            },
            Msg::Leave => {
                self.editing_network = false;
                return Some(Go::Screen('n'));
            }
            Msg::Nothing => {}
        }
        if self.step == Step::Network && self.fields.is_empty() && !self.dhcp {
            self.dhcp = true;
        }
        None
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        let mut lines: Vec<Line<'_>> = Vec::new();
        let n = match self.step {
            Step::Welcome => 0,
            Step::Name => 1,
            Step::Network => 2,
            Step::Password => 3,
            Step::Time => 4,
            Step::Done => 5,
        };
        if self.step != Step::Welcome && self.step != Step::Done {
            lines.push(Line::from(format!("Step {n} of 4")));
            lines.push(Line::from(""));
        }
        match self.step {
            Step::Welcome => {
                lines.push(Line::from("Welcome to Rushes."));
                lines.push(Line::from(""));
                lines.push(Line::from(
                    "This box has not been set up yet. Four short steps: its name, its",
                ));
                lines.push(Line::from(
                    "network, an admin password, and the time. Press Enter to begin.",
                ));
            }
            Step::Name => lines.push(Line::from("What should this box be called on the network?")),
            Step::Network => {
                lines.push(Line::from("Network interfaces:"));
                for nic in &snap.nics {
                    lines.push(Line::from(format!("  {}", nic_line(nic))));
                }
                lines.push(Line::from(""));
                if self.dhcp {
                    lines.push(Line::from("Addresses come from DHCP (the default)."));
                    lines.push(Line::from(
                        "Press S for a static address, or Enter to keep DHCP.",
                    ));
                } else {
                    lines.push(Line::from(
                        "Static address for one NIC, or * for every wired NIC (Esc: back to DHCP):",
                    ));
                }
            }
            Step::Password => lines.push(Line::from(
                "The admin password locks this console (8 characters or more).",
            )),
            Step::Time => lines.push(Line::from(
                "Time zone (e.g. Europe/London) and an NTP server:",
            )),
            Step::Done => {
                let addr = snap.address();
                lines.push(Line::from(
                    "Setup is saved. The network settings apply at the next start.",
                ));
                lines.push(Line::from(""));
                lines.push(Line::from(format!("Reach this box at: {addr}")));
                lines.push(Line::from(""));
                lines.extend(mount_lines(&addr));
                lines.push(Line::from(""));
                lines.push(Line::from(
                    "Next: create a pool on the Disks screen (K), then a share (S).",
                ));
                lines.push(Line::from("Press Enter for the dashboard."));
            }
        }
        if !self.fields.is_empty() {
            lines.push(Line::from(""));
            for (i, field) in self.fields.iter().enumerate() {
                lines.push(Line::from(field.shown(i == self.focus)));
            }
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
    }
}
