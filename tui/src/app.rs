//! The console's state and keys: the first-boot wizard, the lock, and the menu screens
//! with their forms. Everything it changes goes through the management API.

use std::time::{Duration, Instant};

use rushes_api as api;
use rushes_api::{Client, RaidLevel};

use crate::form::Field;
use crate::snapshot::{Screen, Snapshot};

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

/// A form open on a screen.
#[derive(Debug, Clone)]
pub enum Form {
    /// Create a pool of the selected disks.
    Pool {
        name: Field,
        level: RaidLevel,
        erase: bool,
    },
    /// Create a share on a pool (`pool` indexes the snapshot's pools).
    /// `devices`: NFS clients may make device nodes (root only).
    Share {
        name: Field,
        pool: usize,
        devices: bool,
    },
    /// The Logs screen's filter.
    Filter(Field),
    /// Waiting for Y to reboot or power off.
    Confirm(&'static str),
    /// Grow (`grow`) or repair (`replace`) the selected pool onto a free disk
    /// (`disk` indexes the free disks).
    PoolDisk {
        action: &'static str,
        disk: usize,
        erase: bool,
    },
    /// Change the selected share's rule: client networks and read-only.
    Rule { clients: Field, read_only: bool },
    /// Add an account, or set the password of one that exists (`on_password`: which
    /// field has the focus).
    Account {
        name: Field,
        password: Field,
        on_password: bool,
    },
}

#[derive(Debug, Clone)]
pub enum Mode {
    Wizard {
        step: Step,
        fields: Vec<Field>,
        focus: usize,
        dhcp: bool,
    },
    Locked {
        password: Option<Field>,
    },
    Menu {
        screen: Screen,
        form: Option<Form>,
    },
}

pub struct App {
    pub client: Client,
    pub mode: Mode,
    pub snap: Snapshot,
    /// The last thing to tell the admin (an API error, a job started).
    pub message: Option<String>,
    /// Disks picked on the Disks screen, and the cursor there.
    pub picked: Vec<String>,
    pub cursor: usize,
    /// The selected row on the Pools and Shares screens.
    pub row: usize,
    pub log_filter: String,
    /// The Activity screen's audit search (a path fragment).
    pub audit_filter: String,
    /// What the wizard has gathered so far.
    pending: api::Settings,
    pending_password: String,
    /// The wizard's network step was opened from the Network screen.
    editing_network: bool,
    last_key: Instant,
    lock_after: Duration,
}

/// A key, as the console cares about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Char(char),
    Enter,
    Esc,
    Tab,
    Backspace,
    Up,
    Down,
    Left,
    Right,
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

impl App {
    pub fn new(client: Client, lock_after: Duration) -> Self {
        let mut app = Self {
            client,
            mode: Mode::Locked { password: None },
            snap: Snapshot::default(),
            message: None,
            picked: vec![],
            cursor: 0,
            row: 0,
            log_filter: String::new(),
            audit_filter: String::new(),
            pending: api::Settings::default(),
            pending_password: String::new(),
            editing_network: false,
            last_key: Instant::now(),
            lock_after,
        };
        app.refresh();
        if app.snap.setup.as_ref().is_some_and(|s| !s.configured) {
            app.mode = Mode::Wizard {
                step: Step::Welcome,
                fields: vec![],
                focus: 0,
                dhcp: true,
            };
        }
        app
    }

    pub fn refresh(&mut self) {
        let on_logs = matches!(
            self.mode,
            Mode::Menu {
                screen: Screen::Logs,
                ..
            }
        );
        let on_activity = matches!(
            self.mode,
            Mode::Menu {
                screen: Screen::Activity,
                ..
            }
        );
        let filter = on_logs.then_some(self.log_filter.as_str());
        let audit = on_activity.then_some(self.audit_filter.as_str());
        self.snap = Snapshot::fetch(&self.client, filter, audit);
    }

    /// Called on every tick: lock after the idle time.
    pub fn tick(&mut self) {
        self.refresh();
        if matches!(self.mode, Mode::Menu { .. }) && self.last_key.elapsed() > self.lock_after {
            self.mode = Mode::Locked { password: None };
            self.message = Some("Locked after a quiet spell.".into());
        }
    }

    fn say(&mut self, r: Result<String, api::ClientError>) {
        self.message = Some(match r {
            Ok(m) => m,
            Err(e) => format!("! {e}"),
        });
    }

    pub fn key(&mut self, k: Input) {
        self.last_key = Instant::now();
        match self.mode.clone() {
            Mode::Wizard {
                step,
                fields,
                focus,
                dhcp,
            } => self.wizard_key(step, fields, focus, dhcp, k),
            Mode::Locked { password } => self.locked_key(password, k),
            Mode::Menu { screen, form } => self.menu_key(screen, form, k),
        }
    }

    fn wizard_key(
        &mut self,
        step: Step,
        mut fields: Vec<Field>,
        mut focus: usize,
        mut dhcp: bool,
        k: Input,
    ) {
        let goto = |app: &mut App, step: Step, dhcp: bool| {
            app.message = None;
            app.mode = Mode::Wizard {
                step,
                fields: wizard_fields(step, dhcp),
                focus: 0,
                dhcp,
            };
        };
        match (step, k) {
            (Step::Welcome, Input::Enter) => return goto(self, Step::Name, dhcp),
            (Step::Done, Input::Enter) => {
                self.message = None;
                self.mode = Mode::Menu {
                    screen: Screen::Dashboard,
                    form: None,
                };
                return;
            }
            (Step::Network, Input::Char('d' | 'D')) if fields.is_empty() || dhcp => {
                return goto(self, Step::Network, true)
            }
            (Step::Network, Input::Char('s' | 'S')) if dhcp => {
                return goto(self, Step::Network, false)
            }
            (Step::Network, Input::Esc) if !dhcp => return goto(self, Step::Network, true),
            (_, Input::Tab | Input::Down) if !fields.is_empty() => {
                focus = (focus + 1) % fields.len()
            }
            (_, Input::Up) if !fields.is_empty() => {
                focus = (focus + fields.len() - 1) % fields.len()
            }
            (_, Input::Char(c)) if !fields.is_empty() => {
                fields[focus].edit(c);
            }
            (_, Input::Backspace) if !fields.is_empty() => {
                fields[focus].edit('\u{8}');
            }
            (_, Input::Enter) => match self.wizard_next(step, &fields, dhcp) {
                Ok(_) if self.editing_network => {
                    // Changed from the Network screen: save just that, and go back there.
                    let mut settings = self.snap.settings.clone().unwrap_or_default();
                    settings.network = self.pending.network.clone();
                    match self
                        .client
                        .put::<_, api::Settings>("/v1/settings", &settings)
                    {
                        Ok(_) => {
                            self.editing_network = false;
                            self.message = Some(
                                "Network settings saved; they apply at the next start (Power, R)."
                                    .into(),
                            );
                            self.refresh();
                            self.mode = Mode::Menu {
                                screen: Screen::Network,
                                form: None,
                            };
                            return;
                        }
                        Err(e) => self.message = Some(format!("! {e}")),
                    }
                }
                Ok(next) => {
                    if step == Step::Time {
                        self.refresh();
                    }
                    return goto(self, next, dhcp);
                }
                Err(why) => self.message = Some(format!("! {why}")),
            },
            (Step::Network, Input::Esc) if self.editing_network && dhcp => {
                self.editing_network = false;
                self.mode = Mode::Menu {
                    screen: Screen::Network,
                    form: None,
                };
                return;
            }
            _ => {}
        }
        if step == Step::Network && fields.is_empty() && !dhcp {
            dhcp = true;
        }
        self.mode = Mode::Wizard {
            step,
            fields,
            focus,
            dhcp,
        };
    }

    /// Check a step and move on; the last step saves everything through the API.
    fn wizard_next(&mut self, step: Step, fields: &[Field], dhcp: bool) -> Result<Step, String> {
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
                self.client
                    .put::<_, api::Settings>("/v1/settings", &self.pending)
                    .map_err(|e| e.to_string())?;
                let pw = api::SetPassword {
                    current: None,
                    new: self.pending_password.clone(),
                };
                self.client
                    .send("PUT", "/v1/admin/password", Some(&pw))
                    .map_err(|e| e.to_string())?;
                Ok(Step::Done)
            }
            Step::Welcome | Step::Done => Ok(step),
        }
    }

    fn locked_key(&mut self, password: Option<Field>, k: Input) {
        let Some(mut field) = password else {
            if k == Input::Enter {
                self.message = None;
                self.mode = Mode::Locked {
                    password: Some(Field::secret("Admin password")),
                };
            }
            return;
        };
        match k {
            Input::Esc => {
                self.mode = Mode::Locked { password: None };
                return;
            }
            Input::Enter => {
                let login = api::Login {
                    password: field.value.clone(),
                };
                match self.client.send("POST", "/v1/admin/login", Some(&login)) {
                    Ok(()) => {
                        self.message = None;
                        self.mode = Mode::Menu {
                            screen: Screen::Dashboard,
                            form: None,
                        };
                        return;
                    }
                    Err(api::ClientError::Api { status: 403, .. }) => {
                        self.message = Some("! Wrong password.".into())
                    }
                    Err(e) => self.message = Some(format!("! {e}")),
                }
                field.value.clear();
            }
            Input::Char(c) => {
                field.edit(c);
            }
            Input::Backspace => {
                field.edit('\u{8}');
            }
            _ => {}
        }
        self.mode = Mode::Locked {
            password: Some(field),
        };
    }

    fn menu_key(&mut self, screen: Screen, form: Option<Form>, k: Input) {
        let Some(form) = form else {
            return self.screen_key(screen, k);
        };
        let mut form = form;
        let close = |app: &mut App| {
            app.mode = Mode::Menu { screen, form: None };
        };
        match (&mut form, k) {
            (_, Input::Esc) => {
                if matches!(form, Form::Filter(_)) {
                    if screen == Screen::Activity {
                        self.audit_filter.clear();
                    } else {
                        self.log_filter.clear();
                    }
                    self.refresh();
                }
                return close(self);
            }
            (Form::Confirm("reset"), Input::Char('y' | 'Y')) => {
                match self
                    .client
                    .send("POST", "/v1/reset", Some(&api::Reset { confirm: true }))
                {
                    Ok(()) => {
                        self.refresh();
                        self.message = Some("Settings are back to the defaults.".into());
                        self.mode = Mode::Wizard {
                            step: Step::Welcome,
                            fields: vec![],
                            focus: 0,
                            dhcp: true,
                        };
                        return;
                    }
                    Err(e) => self.message = Some(format!("! {e}")),
                }
                return close(self);
            }
            (Form::Confirm(action), Input::Char('y' | 'Y')) => {
                let action = *action;
                let power = api::Power {
                    action: action.into(),
                    confirm: true,
                };
                self.message = Some(match self.client.send("POST", "/v1/power", Some(&power)) {
                    Ok(()) => format!("The appliance is going to {action} now."),
                    Err(e) => format!("! {e}"),
                });
                return close(self);
            }
            (Form::Confirm(_), _) => return close(self),
            (Form::Pool { level, .. }, Input::Left | Input::Right) => {
                let all = RaidLevel::ALL;
                let i = all.iter().position(|l| l == level).unwrap_or(0);
                let step = if k == Input::Right { 1 } else { all.len() - 1 };
                *level = all[(i + step) % all.len()];
            }
            (Form::Pool { erase, .. } | Form::PoolDisk { erase, .. }, Input::Tab) => {
                *erase = !*erase
            }
            (Form::Rule { read_only, .. }, Input::Tab) => *read_only = !*read_only,
            (Form::Share { devices, .. }, Input::Tab) => *devices = !*devices,
            (Form::Account { on_password, .. }, Input::Tab) => *on_password = !*on_password,
            (
                Form::Account {
                    name,
                    password,
                    on_password,
                },
                Input::Char(c),
            ) => {
                if *on_password {
                    password.edit(c);
                } else {
                    name.edit(c);
                }
            }
            (
                Form::Account {
                    name,
                    password,
                    on_password,
                },
                Input::Backspace,
            ) => {
                if *on_password {
                    password.edit('\u{8}');
                } else {
                    name.edit('\u{8}');
                }
            }
            (Form::Account { name, password, .. }, Input::Enter) => {
                let name = name.value.trim().to_string();
                let exists = self.snap.users.iter().any(|u| u.name == name);
                let result = if exists {
                    self.client
                        .send(
                            "PUT",
                            &format!("/v1/users/{name}/password"),
                            Some(&api::UserPassword {
                                password: password.value.clone(),
                            }),
                        )
                        .map(|()| format!("The SMB password of {name} is changed."))
                } else {
                    self.client
                        .post::<_, api::User>(
                            "/v1/users",
                            &api::CreateUser {
                                name: name.clone(),
                                password: password.value.clone(),
                                uid: None,
                                gid: None,
                            },
                        )
                        .map(|u| {
                            format!(
                                "Account {} added: uid {}, gid {}, the same over NFS and SMB.",
                                u.name, u.uid, u.gid
                            )
                        })
                };
                match result {
                    Ok(m) => {
                        self.say(Ok(m));
                        self.refresh();
                        return close(self);
                    }
                    Err(e) => self.message = Some(format!("! {e}")),
                }
            }
            (Form::PoolDisk { disk, .. }, Input::Left | Input::Right) => {
                let n = self.free_disks().len().max(1);
                *disk = (*disk + if k == Input::Right { 1 } else { n - 1 }) % n;
            }
            (Form::Rule { clients, .. }, Input::Char(c)) => {
                clients.edit(c);
            }
            (Form::Rule { clients, .. }, Input::Backspace) => {
                clients.edit('\u{8}');
            }
            (Form::Rule { clients, read_only }, Input::Enter) => {
                let Some(share) = self.snap.shares.get(self.row).cloned() else {
                    return close(self);
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
                        rule.access = if *read_only {
                            api::Access::Ro
                        } else {
                            api::Access::Rw
                        };
                        let req = api::UpdateShare {
                            rules: Some(vec![rule]),
                            ..Default::default()
                        };
                        match self
                            .client
                            .put::<_, api::Share>(&format!("/v1/shares/{}", share.name), &req)
                        {
                            Ok(s) => {
                                self.message =
                                    Some(format!("Share {} now follows the new rule.", s.name));
                                self.refresh();
                                return close(self);
                            }
                            Err(e) => self.message = Some(format!("! {e}")),
                        }
                    }
                    _ => {
                        self.message = Some(
                            "! Give client networks as CIDR, e.g. 10.10.0.0/16, 192.168.1.20/32"
                                .into(),
                        )
                    }
                }
            }
            (
                Form::PoolDisk {
                    action,
                    disk,
                    erase,
                },
                Input::Enter,
            ) => {
                let (Some(pool), Some(d)) = (
                    self.snap.pools.get(self.row).cloned(),
                    self.free_disks().get(*disk).cloned(),
                ) else {
                    self.message =
                        Some("! No free disk: connect one, it appears on the Disks screen.".into());
                    return close(self);
                };
                let action = *action;
                let r = if action == "grow" {
                    let req = api::GrowPool {
                        disks: vec![d.name.clone()],
                        wipe: if *erase { vec![d.name.clone()] } else { vec![] },
                    };
                    self.client
                        .post::<_, api::Job>(&format!("/v1/pools/{}/grow", pool.name), &req)
                } else {
                    let req = api::ReplaceDisk {
                        disk: d.name.clone(),
                        old: None,
                        wipe: *erase,
                    };
                    self.client
                        .post::<_, api::Job>(&format!("/v1/pools/{}/replace", pool.name), &req)
                };
                match r {
                    Ok(job) => {
                        self.message = Some(format!(
                            "{action} of pool {} started (job {}).",
                            pool.name, job.id
                        ));
                        self.refresh();
                        return close(self);
                    }
                    Err(e) => self.message = Some(format!("! {e}")),
                }
            }
            (Form::Share { pool, .. }, Input::Left | Input::Right) => {
                let n = self.snap.pools.len().max(1);
                *pool = (*pool + if k == Input::Right { 1 } else { n - 1 }) % n;
            }
            (
                Form::Pool { name, .. } | Form::Share { name, .. } | Form::Filter(name),
                Input::Char(c),
            ) => {
                name.edit(c);
            }
            (
                Form::Pool { name, .. } | Form::Share { name, .. } | Form::Filter(name),
                Input::Backspace,
            ) => {
                name.edit('\u{8}');
            }
            (Form::Filter(f), Input::Enter) => {
                if screen == Screen::Activity {
                    self.audit_filter = f.value.clone();
                } else {
                    self.log_filter = f.value.clone();
                }
                self.refresh();
                return close(self);
            }
            (Form::Pool { name, level, erase }, Input::Enter) => {
                let wipe = if *erase { self.picked.clone() } else { vec![] };
                let req = api::CreatePool {
                    name: name.value.trim().into(),
                    level: *level,
                    disks: self.picked.clone(),
                    class: None,
                    wipe,
                };
                match self.client.post::<_, api::Job>("/v1/pools", &req) {
                    Ok(job) => {
                        self.message = Some(format!(
                            "Creating pool {} (job {}); the Pools screen shows its progress.",
                            req.name, job.id
                        ));
                        self.picked.clear();
                        self.refresh();
                        return close(self);
                    }
                    Err(e) => self.message = Some(format!("! {e}")),
                }
            }
            (
                Form::Share {
                    name,
                    pool,
                    devices,
                },
                Input::Enter,
            ) => {
                let Some(p) = self.snap.pools.get(*pool) else {
                    self.message =
                        Some("! There is no pool yet: create one on the Disks screen.".into());
                    return close(self);
                };
                let req = api::CreateShare {
                    name: name.value.trim().into(),
                    pool: p.name.clone(),
                    rules: None,
                    smb: None,
                    time_machine: false,
                    users: vec![],
                    allow_devices: *devices,
                };
                match self.client.post::<_, api::Share>("/v1/shares", &req) {
                    Ok(s) => {
                        let addr = self.address();
                        self.say(Ok(format!(
                            "Share {0} is served. Mac: smb://{addr}/{0}  Linux: mount -t nfs {addr}:/{0} /mnt",
                            s.name
                        )));
                        self.refresh();
                        return close(self);
                    }
                    Err(e) => self.message = Some(format!("! {e}")),
                }
            }
            _ => {}
        }
        self.mode = Mode::Menu {
            screen,
            form: Some(form),
        };
    }

    fn screen_key(&mut self, screen: Screen, k: Input) {
        let open = |app: &mut App, form: Form| {
            app.message = None;
            app.mode = Mode::Menu {
                screen,
                form: Some(form),
            };
        };
        match (screen, k) {
            (_, Input::Esc) => {
                self.message = None;
                self.mode = Mode::Menu {
                    screen: Screen::Dashboard,
                    form: None,
                };
            }
            (_, Input::Char('x' | 'X')) => {
                self.message = None;
                self.mode = Mode::Locked { password: None };
            }
            (Screen::Disks, Input::Up) => self.cursor = self.cursor.saturating_sub(1),
            (Screen::Disks, Input::Down) => {
                self.cursor = (self.cursor + 1).min(self.snap.disks.len().saturating_sub(1))
            }
            (Screen::Disks, Input::Char(' ')) => {
                if let Some(d) = self.snap.disks.get(self.cursor) {
                    let name = d.name.clone();
                    if let Some(i) = self.picked.iter().position(|p| *p == name) {
                        self.picked.remove(i);
                    } else {
                        self.picked.push(name);
                    }
                }
            }
            (Screen::Disks, Input::Char('c' | 'C')) => {
                if self.picked.is_empty() {
                    self.message =
                        Some("! Pick disks first: move with the arrows, Space to pick.".into());
                } else {
                    let level = match self.picked.len() {
                        1 => RaidLevel::Single,
                        2 => RaidLevel::Raid1,
                        3 => RaidLevel::Raid5,
                        _ => RaidLevel::Raid6,
                    };
                    open(
                        self,
                        Form::Pool {
                            name: Field::new("Pool name", "media"),
                            level,
                            erase: false,
                        },
                    );
                }
            }
            (Screen::Pools | Screen::Shares, Input::Up) => self.row = self.row.saturating_sub(1),
            (Screen::Pools, Input::Down) => {
                self.row = (self.row + 1).min(self.snap.pools.len().saturating_sub(1))
            }
            (Screen::Shares, Input::Down) => {
                self.row = (self.row + 1).min(self.snap.shares.len().saturating_sub(1))
            }
            (Screen::Pools, Input::Char('u' | 'U')) => {
                if let Some(pool) = self.snap.pools.get(self.row).cloned() {
                    let r = self.client.post::<_, api::Job>(
                        &format!("/v1/pools/{}/scrub", pool.name),
                        &serde_json::json!({}),
                    );
                    self.say(
                        r.map(|j| format!("Scrub of pool {} started (job {}).", pool.name, j.id)),
                    );
                    self.refresh();
                }
            }
            (Screen::Pools, Input::Char(c @ ('g' | 'G' | 'r' | 'R'))) => {
                if self.snap.pools.get(self.row).is_none() {
                    self.message = Some("! No pool yet: create one on the Disks screen.".into());
                } else {
                    let action = if c.eq_ignore_ascii_case(&'g') {
                        "grow"
                    } else {
                        "replace"
                    };
                    open(
                        self,
                        Form::PoolDisk {
                            action,
                            disk: 0,
                            erase: false,
                        },
                    );
                }
            }
            (Screen::Shares, Input::Char('e' | 'E')) => {
                if let Some(share) = self.snap.shares.get(self.row) {
                    let rule = share.rules.first().cloned().unwrap_or_default();
                    let nets: Vec<String> = rule.clients.iter().map(|c| c.to_string()).collect();
                    open(
                        self,
                        Form::Rule {
                            clients: Field::new("Clients (CIDR, comma)", &nets.join(",")),
                            read_only: rule.read_only(),
                        },
                    );
                } else {
                    self.message = Some("! No share yet: press C to create one.".into());
                }
            }
            (Screen::Shares, Input::Char('u' | 'U')) => open(
                self,
                Form::Account {
                    name: Field::new("Account name", ""),
                    password: Field::secret("SMB password"),
                    on_password: false,
                },
            ),
            (Screen::Shares, Input::Char('c' | 'C')) => open(
                self,
                Form::Share {
                    name: Field::new("Share name", ""),
                    pool: 0,
                    devices: false,
                },
            ),
            (Screen::Network, Input::Char('e' | 'E')) => {
                self.editing_network = true;
                self.message = None;
                self.mode = Mode::Wizard {
                    step: Step::Network,
                    fields: vec![],
                    focus: 0,
                    dhcp: true,
                };
            }
            (Screen::Power, Input::Char('f' | 'F')) => open(self, Form::Confirm("reset")),
            (Screen::Logs, Input::Char('/')) => {
                open(self, Form::Filter(Field::new("Show lines with", "")))
            }
            (Screen::Activity, Input::Char('/')) => open(
                self,
                Form::Filter(Field::new("Audit records whose path has", "")),
            ),
            (Screen::Power, Input::Char('r' | 'R')) => open(self, Form::Confirm("reboot")),
            (Screen::Power, Input::Char('o' | 'O')) => open(self, Form::Confirm("poweroff")),
            (_, Input::Char(c)) => {
                if let Some(next) = Screen::for_key(c) {
                    self.message = None;
                    self.mode = Mode::Menu {
                        screen: next,
                        form: None,
                    };
                    self.refresh();
                }
            }
            _ => {}
        }
    }

    /// Disks a pool could take now: not the stick, not in use.
    pub fn free_disks(&self) -> Vec<api::Disk> {
        self.snap
            .disks
            .iter()
            .filter(|d| !d.boot && d.in_use_by.is_none())
            .cloned()
            .collect()
    }

    /// The first address clients can use.
    pub fn address(&self) -> String {
        self.snap
            .setup
            .as_ref()
            .and_then(|s| s.addresses.first())
            .map(|a| a.split('/').next().unwrap_or(a).to_string())
            .unwrap_or_else(|| "ADDRESS".into())
    }
}
