//! Restart, power off, or reset the settings to the defaults, each asked again; the
//! software running and its two boot slots, an update bundle applied (a path on the box
//! or a URL), and going back to the other slot; the settings backed up into a share, and
//! restored from a backup the box reads (a path on it, or a URL), asked again first.

use rushes_api as api;
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::Paragraph;
use tuirealm::ratatui::Frame;

use crate::form::Field;
use crate::screen::{Ctx, Go, Input, Screen};
use crate::screens::wizard::Wizard;
use crate::snapshot::{Fetch, Snapshot};
use crate::widgets::form_box;

/// `reboot`, `poweroff`, `reset`, `rollback` or `restore`, waiting for Y; or the update
/// form; or the backup or restore form.
#[derive(Default)]
pub struct Power {
    confirm: Option<&'static str>,
    bundle: Option<Field>,
    backup: Option<BackupForm>,
    /// The restore asked for, waiting for its Y.
    restoring: Option<api::ConfigRestore>,
}

/// A backup form: `place` is the share the sealed backup goes into or, restoring, where
/// the box reads one (a path on it or a URL); and the passphrase (`on_passphrase`: which
/// field has the focus).
struct BackupForm {
    restore: bool,
    place: Field,
    passphrase: Field,
    on_passphrase: bool,
}

pub enum Msg {
    Ask(&'static str),
    Yes,
    No,
    /// Open the update form.
    Update,
    /// Open the backup form.
    Backup,
    /// Open the restore form.
    Restore,
    /// The backup form's other field.
    Toggle,
    Type(char),
    Apply,
    Close,
}

impl Screen for Power {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        if self.bundle.is_some() || self.backup.is_some() {
            return match key {
                Input::Tab => Some(Msg::Toggle),
                Input::Char(c) => Some(Msg::Type(c)),
                Input::Backspace => Some(Msg::Type('\u{8}')),
                Input::Enter => Some(Msg::Apply),
                Input::Esc => Some(Msg::Close),
                _ => None,
            };
        }
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
            Input::Char('u' | 'U') => Some(Msg::Update),
            Input::Char('b' | 'B') => Some(Msg::Ask("rollback")),
            Input::Char('e' | 'E') => Some(Msg::Backup),
            Input::Char('i' | 'I') => Some(Msg::Restore),
            _ => None,
        }
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Ask(action) => {
                *ctx.message = None;
                self.confirm = Some(action);
            }
            Msg::No => {
                self.confirm = None;
                self.restoring = None;
            }
            Msg::Update => {
                *ctx.message = None;
                self.bundle = Some(Field::new("Bundle (path or URL)", ""));
            }
            Msg::Backup => {
                *ctx.message = None;
                // No share chosen for the admin: whoever may read it can copy the file.
                self.backup = Some(BackupForm {
                    restore: false,
                    place: Field::new("Into share", ""),
                    passphrase: Field::secret("Passphrase (12+)"),
                    on_passphrase: false,
                });
            }
            Msg::Restore => {
                *ctx.message = None;
                self.backup = Some(BackupForm {
                    restore: true,
                    place: Field::new("Backup (path or URL)", ""),
                    passphrase: Field::secret("Passphrase"),
                    on_passphrase: false,
                });
            }
            Msg::Toggle => {
                if let Some(form) = &mut self.backup {
                    form.on_passphrase = !form.on_passphrase;
                }
            }
            Msg::Type(c) => {
                if let Some(field) = &mut self.bundle {
                    field.edit(c);
                }
                if let Some(form) = &mut self.backup {
                    if form.on_passphrase {
                        form.passphrase.edit(c);
                    } else {
                        form.place.edit(c);
                    }
                }
            }
            Msg::Close => {
                self.bundle = None;
                self.backup = None;
            }
            Msg::Apply if self.backup.as_ref().is_some_and(|f| f.restore) => {
                let form = self.backup.take()?;
                // Asked again first: a restore replaces every setting.
                self.restoring = Some(api::ConfigRestore {
                    content: String::new(),
                    source: Some(form.place.value.trim().to_string()),
                    passphrase: form.passphrase.value,
                });
                self.confirm = Some("restore");
            }
            Msg::Apply if self.backup.is_some() => {
                let form = self.backup.take()?;
                let share = form.place.value.trim().to_string();
                let req = api::ConfigBackup {
                    passphrase: form.passphrase.value,
                    share: Some(share.clone()),
                };
                ctx.say(
                    ctx.client
                        .post::<_, api::ConfigBackupFile>("/v1/config/backup", &req)
                        .map(|b| format!("Saved in share {share} as {} ({} bytes): copy it off the box; keep the passphrase apart.", b.saved_as.unwrap_or(b.name), b.bytes)),
                );
            }
            Msg::Apply => {
                let source = self.bundle.take()?.value.trim().to_string();
                let req = api::UpdateApply {
                    source,
                    reboot: false,
                };
                ctx.refresh = true;
                ctx.say(
                    ctx.client
                        .post::<_, api::Job>("/v1/update/apply", &req)
                        .map(|job| format!("Checked and accepted: job {} writes {}. R restarts into it once the job is done (Jobs on the dashboard).", job.id, job.target.name)),
                );
            }
            Msg::Yes => {
                let action = self.confirm.take()?;
                if action == "restore" {
                    let req = self.restoring.take()?;
                    let zone = ctx.snap.zone();
                    ctx.refresh = true;
                    ctx.say(
                        ctx.client
                            .post::<_, api::ConfigRestored>("/v1/config/restore", &req)
                            .map(|r| {
                                format!(
                                    "Restored the settings of {} (version {}, backed up {}): {}",
                                    r.from_host,
                                    r.from_version,
                                    api::calendar::local_time(r.created, &zone),
                                    if r.restarting {
                                        "rushesd starts again on them and finds their pools."
                                    } else {
                                        "restart rushesd to take them."
                                    }
                                )
                            }),
                    );
                    return None;
                }
                if action == "rollback" {
                    let req = api::UpdateRollback {
                        confirm: true,
                        reboot: false,
                    };
                    ctx.refresh = true;
                    ctx.say(
                        ctx.client
                            .post::<_, api::UpdateStatus>("/v1/update/rollback", &req)
                            .map(|s| {
                                let next = s
                                    .slots
                                    .iter()
                                    .find(|x| x.boots_next)
                                    .map(|x| x.slot.to_uppercase());
                                format!(
                                    "Slot {} boots next; R restarts into it.",
                                    next.unwrap_or_else(|| "?".into())
                                )
                            }),
                    );
                    return None;
                }
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
        self.confirm.is_some() || self.bundle.is_some() || self.backup.is_some()
    }

    fn fetch(&self) -> Fetch {
        Fetch {
            update: true,
            ..Fetch::default()
        }
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        let mut lines = vec![
            Line::from("R  restart the appliance"),
            Line::from("O  power it off"),
            Line::from("F  reset the settings to the defaults: host name, network, password,"),
            Line::from("   pools and shares are forgotten (the pools' data stays on their disks)"),
            Line::from(""),
            Line::from("Either asks again before it acts. Clients lose their mounts until the box"),
            Line::from("is back; data already written is safe on the pools."),
            Line::from(""),
        ];
        match &snap.update {
            Some(u) => {
                lines.push(Line::from(format!(
                    "Software {} ({}), running from slot {}",
                    u.version,
                    u.model,
                    u.running_slot.as_deref().unwrap_or("-").to_uppercase()
                )));
                for slot in &u.slots {
                    lines.push(Line::from(format!(
                        "  slot {}  {:<16} {:<10} {}",
                        slot.slot.to_uppercase(),
                        match slot.tries_left {
                            Some(n) => format!("trying ({n} left)"),
                            None => slot.state.clone(),
                        },
                        slot.version.as_deref().unwrap_or("-"),
                        if slot.boots_next { "boots next" } else { "" }
                    )));
                }
                for problem in &u.problems {
                    lines.push(Line::from(format!("  ! {problem}")));
                }
            }
            None => lines.push(Line::from("Software: reading the boot slots...")),
        }
        lines.push(Line::from(
            "U  apply a signed update bundle into the other slot",
        ));
        lines.push(Line::from("B  go back to the other slot"));
        lines.push(Line::from(
            "E  export the settings: one sealed backup file into a share",
        ));
        lines.push(Line::from(
            "I  import the settings from a backup (a path on the box or a URL)",
        ));
        f.render_widget(Paragraph::new(lines), area);
        if let Some(field) = &self.bundle {
            form_box(
                f,
                area,
                "Update",
                vec![
                    Line::from(
                        "A path on the box (on a share: /pools/POOL/...) or an http(s) URL.",
                    ),
                    Line::from(
                        "It is checked (signature, model, version) before anything is written.",
                    ),
                    Line::from(field.shown(true)),
                    Line::from("Enter apply  Esc cancel"),
                ],
            );
        }
        if let Some(form) = self.backup.as_ref().filter(|f| !f.restore) {
            form_box(
                f,
                area,
                "Back up the settings",
                vec![
                    Line::from(
                        "Settings, pools, shares, accounts, rules, targets and certificates,",
                    ),
                    Line::from("sealed under the passphrase, saved at the top of the share:"),
                    Line::from("its clients can copy it, so choose one only admins read."),
                    Line::from(form.place.shown(!form.on_passphrase)),
                    Line::from(form.passphrase.shown(form.on_passphrase)),
                    Line::from("Tab next field  Enter save  Esc cancel"),
                ],
            );
        }
        if let Some(form) = self.backup.as_ref().filter(|f| f.restore) {
            form_box(
                f,
                area,
                "Restore the settings",
                vec![
                    Line::from("A backup on the box (one saved into a share: /pools/POOL/SHARE/"),
                    Line::from(
                        "rushes-config-...backup) or an http(s) URL the box fetches it from.",
                    ),
                    Line::from("It is checked whole first; then it replaces every setting."),
                    Line::from(form.place.shown(!form.on_passphrase)),
                    Line::from(form.passphrase.shown(form.on_passphrase)),
                    Line::from("Tab next field  Enter restore  Esc cancel"),
                ],
            );
        }
        if let Some(action) = self.confirm {
            let question = if action == "reset" {
                "Really reset every setting to the defaults? Y yes, any other key no".to_string()
            } else if action == "restore" {
                "Replace every setting with the backup's? Y yes, any other key no".to_string()
            } else if action == "rollback" {
                "Make the other slot boot next? Y yes, any other key no".to_string()
            } else {
                format!("Really {action} the appliance? Y yes, any other key no")
            };
            form_box(f, area, "Confirm", vec![Line::from(question)]);
        }
    }
}
