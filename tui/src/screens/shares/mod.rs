//! The shares, the accounts and the API tokens: create a share (C), change who may
//! mount one (E), add an account or set its SMB password (U), revoke a token (R).

use rushes_api as api;
use tuirealm::ratatui::layout::{Constraint, Layout, Rect};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::Paragraph;
use tuirealm::ratatui::Frame;

use crate::form::Field;
use crate::screen::{typed, Ctx, Go, Input, Screen};
use crate::snapshot::Snapshot;
use crate::widgets::{bold, form_box, table};

enum Form {
    /// Create a share on a pool (`pool` indexes the snapshot's pools); `devices`: NFS
    /// clients may make device nodes (root only).
    Share {
        name: Field,
        pool: usize,
        devices: bool,
    },
    /// The selected share's rule: client networks and read-only.
    Rule { clients: Field, read_only: bool },
    /// Add an account, or set the password of one that exists (`on_password`: which
    /// field has the focus).
    Account {
        name: Field,
        password: Field,
        on_password: bool,
    },
    /// Revoke an API token by its name.
    Revoke { name: Field },
}

#[derive(Default)]
pub struct Shares {
    row: usize,
    form: Option<Form>,
}

pub enum Msg {
    Up,
    Down,
    /// Open a form: a new share, the selected share's rule, an account.
    NewShare,
    EditRule,
    Account,
    Revoke,
    /// The pool of a new share, the next (`true`) or the previous one.
    Pool(bool),
    Toggle,
    Type(char),
    Confirm,
    Cancel,
    Nothing,
}

impl Screen for Shares {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        if let Some(form) = &self.form {
            return Some(match key {
                Input::Esc => Msg::Cancel,
                Input::Enter => Msg::Confirm,
                Input::Tab => Msg::Toggle,
                Input::Left if matches!(form, Form::Share { .. }) => Msg::Pool(false),
                Input::Right if matches!(form, Form::Share { .. }) => Msg::Pool(true),
                k => typed(k).map_or(Msg::Nothing, Msg::Type),
            });
        }
        match key {
            Input::Up => Some(Msg::Up),
            Input::Down => Some(Msg::Down),
            Input::Char('c' | 'C') => Some(Msg::NewShare),
            Input::Char('e' | 'E') => Some(Msg::EditRule),
            Input::Char('u' | 'U') => Some(Msg::Account),
            Input::Char('r' | 'R') => Some(Msg::Revoke),
            _ => None,
        }
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Up => self.row = self.row.saturating_sub(1),
            Msg::Down => self.row = (self.row + 1).min(ctx.snap.shares.len().saturating_sub(1)),
            Msg::NewShare => self.open(
                ctx,
                Form::Share {
                    name: Field::new("Share name", ""),
                    pool: 0,
                    devices: false,
                },
            ),
            Msg::EditRule => {
                if let Some(share) = ctx.snap.shares.get(self.row) {
                    let rule = share.rules.first().cloned().unwrap_or_default();
                    let nets: Vec<String> = rule.clients.iter().map(|c| c.to_string()).collect();
                    let form = Form::Rule {
                        clients: Field::new("Clients (CIDR, comma)", &nets.join(",")),
                        read_only: rule.read_only(),
                    };
                    self.open(ctx, form);
                } else {
                    ctx.tell("! No share yet: press C to create one.");
                }
            }
            Msg::Account => self.open(
                ctx,
                Form::Account {
                    name: Field::new("Account name", ""),
                    password: Field::secret("SMB password"),
                    on_password: false,
                },
            ),
            Msg::Revoke => {
                if ctx.snap.tokens.is_empty() {
                    ctx.tell("! No API tokens: `rushesctl token create` or the web console's Settings make them.");
                } else {
                    self.open(
                        ctx,
                        Form::Revoke {
                            name: Field::new("Token name", ""),
                        },
                    );
                }
            }
            Msg::Pool(next) => {
                let n = ctx.snap.pools.len().max(1);
                if let Some(Form::Share { pool, .. }) = &mut self.form {
                    *pool = (*pool + if next { 1 } else { n - 1 }) % n;
                }
            }
            Msg::Toggle => match &mut self.form {
                Some(Form::Share { devices, .. }) => *devices = !*devices,
                Some(Form::Rule { read_only, .. }) => *read_only = !*read_only,
                Some(Form::Account { on_password, .. }) => *on_password = !*on_password,
                Some(Form::Revoke { .. }) | None => {}
            },
            Msg::Type(c) => match &mut self.form {
                Some(Form::Share { name, .. }) => {
                    name.edit(c);
                }
                Some(Form::Rule { clients, .. }) => {
                    clients.edit(c);
                }
                Some(Form::Account {
                    name,
                    password,
                    on_password,
                }) => {
                    if *on_password {
                        password.edit(c);
                    } else {
                        name.edit(c);
                    }
                }
                Some(Form::Revoke { name }) => {
                    name.edit(c);
                }
                None => {}
            },
            Msg::Cancel => self.form = None,
            Msg::Nothing => {}
            Msg::Confirm => {
                let done = match self.form.as_ref()? {
                    Form::Share {
                        name,
                        pool,
                        devices,
                    } => create_share(ctx, name, *pool, *devices),
                    Form::Rule { clients, read_only } => change_rule(
                        ctx,
                        ctx.snap.shares.get(self.row).cloned(),
                        clients,
                        *read_only,
                    ),
                    Form::Account { name, password, .. } => account(ctx, name, password),
                    Form::Revoke { name } => revoke(ctx, name),
                };
                if done {
                    self.form = None;
                }
            }
        }
        None
    }

    fn form_open(&self) -> bool {
        self.form.is_some()
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        let whole = area;
        let accounts_height = (snap.users.len().min(5) + 2) as u16;
        let tokens_height = if snap.tokens.is_empty() {
            0
        } else {
            (snap.tokens.len().min(3) + 1) as u16
        };
        let [area, accounts, tokens, help] = Layout::vertical([
            Constraint::Fill(1),
            Constraint::Length(accounts_height),
            Constraint::Length(tokens_height),
            Constraint::Length(1),
        ])
        .areas(area);
        f.render_widget(
            Paragraph::new(
                "Up/Down choose  C create a share  E edit its clients  U account  R revoke token",
            ),
            help,
        );
        if !snap.tokens.is_empty() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let mut lines = vec![bold(format!(
                "API tokens ({}; the web console's Settings has them all)",
                snap.tokens.len()
            ))];
            for t in snap.tokens.iter().take(3) {
                lines.push(Line::from(format!(
                    "  {:<24} {:<9} {}",
                    t.name,
                    t.role.to_string(),
                    if t.expires <= now {
                        "expired".to_string()
                    } else {
                        format!("expires in {}", api::units::show_span(t.expires - now))
                    }
                )));
            }
            f.render_widget(Paragraph::new(lines), tokens);
        }
        let mut lines = vec![bold("Accounts (NFS uid = SMB login)".into())];
        if snap.users.is_empty() {
            lines.push(Line::from("  none yet: U adds one for SMB logins"));
        }
        for u in snap.users.iter().take(5) {
            lines.push(Line::from(format!(
                "  {:<16} uid {:<6} gid {:<6} {}{}",
                u.name,
                u.uid,
                u.gid,
                if u.smb_password {
                    "SMB password set"
                } else {
                    "no SMB password"
                },
                u.role.map(|r| format!(", web {r}")).unwrap_or_default()
            )));
        }
        f.render_widget(Paragraph::new(lines), accounts);
        let rows = snap
            .shares
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let clients: Vec<String> = s
                    .rules
                    .iter()
                    .map(|r| {
                        let nets: Vec<String> = r.clients.iter().map(|c| c.to_string()).collect();
                        format!(
                            "{} {}",
                            nets.join(","),
                            if r.read_only() { "ro" } else { "rw" }
                        )
                    })
                    .collect();
                vec![
                    format!("{}{}", if i == self.row { ">" } else { " " }, s.name),
                    s.pool.clone(),
                    if s.online { "serving" } else { "OFFLINE" }.into(),
                    clients.join("; "),
                ]
            })
            .collect();
        f.render_widget(
            table(
                &[" SHARE", "POOL", "STATE", "CLIENTS"],
                rows,
                &[17, 12, 9, 38],
            ),
            area,
        );
        if let Some(form) = &self.form {
            form_view(f, whole, snap, form);
        }
    }
}

impl Shares {
    fn open(&mut self, ctx: &mut Ctx<'_>, form: Form) {
        *ctx.message = None;
        self.form = Some(form);
    }
}

/// Create the share; answers whether the form is done.
fn create_share(ctx: &mut Ctx<'_>, name: &Field, pool: usize, devices: bool) -> bool {
    let Some(p) = ctx.snap.pools.get(pool) else {
        ctx.tell("! There is no pool yet: create one on the Disks screen.");
        return true;
    };
    let req = api::CreateShare {
        name: name.value.trim().into(),
        pool: p.name.clone(),
        rules: None,
        smb: None,
        time_machine: false,
        users: vec![],
        allow_devices: devices,
    };
    match ctx.client.post::<_, api::Share>("/v1/shares", &req) {
        Ok(s) => {
            let addr = ctx.snap.address();
            ctx.tell(format!(
                "Share {0} is served. Mac: smb://{addr}/{0}  Linux: mount -t nfs {addr}:/{0} /mnt",
                s.name
            ));
            ctx.refresh = true;
            true
        }
        Err(e) => {
            ctx.tell(format!("! {e}"));
            false
        }
    }
}

/// Give the share one rule: these client networks, read-only or not.
fn change_rule(
    ctx: &mut Ctx<'_>,
    share: Option<api::Share>,
    clients: &Field,
    read_only: bool,
) -> bool {
    let Some(share) = share else {
        return true;
    };
    let nets: Result<Vec<_>, _> = clients
        .value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| c.parse::<ipnet::IpNet>())
        .collect();
    match nets {
        Ok(nets) if !nets.is_empty() => {
            let mut rule = share.rules.first().cloned().unwrap_or_default();
            rule.clients = nets;
            rule.access = if read_only {
                api::Access::Ro
            } else {
                api::Access::Rw
            };
            let req = api::UpdateShare {
                rules: Some(vec![rule]),
                ..Default::default()
            };
            match ctx
                .client
                .put::<_, api::Share>(&format!("/v1/shares/{}", share.name), &req)
            {
                Ok(s) => {
                    ctx.tell(format!("Share {} now follows the new rule.", s.name));
                    ctx.refresh = true;
                    true
                }
                Err(e) => {
                    ctx.tell(format!("! {e}"));
                    false
                }
            }
        }
        _ => {
            ctx.tell("! Give client networks as CIDR, e.g. 10.10.0.0/16, 192.168.1.20/32");
            false
        }
    }
}

/// Add the account, or set the password of the one that exists.
fn account(ctx: &mut Ctx<'_>, name: &Field, password: &Field) -> bool {
    let name = name.value.trim().to_string();
    let exists = ctx.snap.users.iter().any(|u| u.name == name);
    let result = if exists {
        ctx.client
            .send(
                "PUT",
                &format!("/v1/users/{name}/password"),
                Some(&api::UserPassword {
                    password: password.value.clone(),
                }),
            )
            .map(|()| format!("The SMB password of {name} is changed."))
    } else {
        ctx.client
            .post::<_, api::User>(
                "/v1/users",
                &api::CreateUser {
                    name: name.clone(),
                    password: password.value.clone(),
                    uid: None,
                    gid: None,
                    role: None,
                },
            )
            .map(|u| match u.smb_password {
                true => format!(
                    "Account {} added: uid {}, gid {}, the same over NFS and SMB.",
                    u.name, u.uid, u.gid
                ),
                false => format!(
                    "Account {} added: uid {}, gid {} over NFS (this rushesd serves no SMB).",
                    u.name, u.uid, u.gid
                ),
            })
    };
    match result {
        Ok(m) => {
            ctx.tell(m);
            ctx.refresh = true;
            true
        }
        Err(e) => {
            ctx.tell(format!("! {e}"));
            false
        }
    }
}

/// Revoke the token named in the form.
fn revoke(ctx: &mut Ctx<'_>, name: &Field) -> bool {
    let name = name.value.trim().to_string();
    if !ctx.snap.tokens.iter().any(|t| t.name == name) {
        ctx.tell(format!("! There is no token called {name:?}."));
        return false;
    }
    match ctx
        .client
        .send::<()>("DELETE", &format!("/v1/tokens/{name}"), None)
    {
        Ok(()) => {
            ctx.tell(format!(
                "Token {name} revoked: requests with it are refused from now on."
            ));
            ctx.refresh = true;
            true
        }
        Err(e) => {
            ctx.tell(format!("! {e}"));
            false
        }
    }
}

fn form_view(f: &mut Frame<'_>, area: Rect, snap: &Snapshot, form: &Form) {
    let mut lines: Vec<Line<'_>> = Vec::new();
    let title = match form {
        Form::Share {
            name,
            pool,
            devices,
        } => {
            lines.push(Line::from(name.shown(true)));
            let pool = snap
                .pools
                .get(*pool)
                .map(|p| p.name.as_str())
                .unwrap_or("(no pool yet)");
            lines.push(Line::from(format!("  Pool   < {pool} >  (Left/Right)")));
            lines.push(Line::from(format!(
                "  Device nodes  [{}]  (Tab)",
                if *devices {
                    "allowed, for an unsquashed root over NFS"
                } else {
                    "refused (FIFOs and sockets are fine)"
                }
            )));
            lines.push(Line::from(
                "  Every client may mount it read-write; root is squashed.",
            ));
            "Create a share"
        }
        Form::Account {
            name,
            password,
            on_password,
        } => {
            lines.push(Line::from(name.shown(!on_password)));
            lines.push(Line::from(password.shown(*on_password)));
            lines.push(Line::from(
                "  Tab: next field. A new name adds an account (next free uid);",
            ));
            lines.push(Line::from("  an existing one gets the new password."));
            "Account for SMB (the same uid over NFS)"
        }
        Form::Rule { clients, read_only } => {
            lines.push(Line::from(clients.shown(true)));
            lines.push(Line::from(format!(
                "  Access  [{}]  (Tab: read-write or read-only)",
                if *read_only {
                    "read-only"
                } else {
                    "read-write"
                }
            )));
            "Who may mount this share"
        }
        Form::Revoke { name } => {
            lines.push(Line::from(name.shown(true)));
            lines.push(Line::from(
                "  Requests with it are refused at once; it cannot be brought back.",
            ));
            "Revoke an API token"
        }
    };
    form_box(f, area, title, lines);
}
