//! The router: which screen is showing (the wizard, the lock, or a menu screen), the
//! keys no screen takes (menu letters, Esc for the dashboard, X to lock), the idle
//! lock, and the API snapshot every screen is drawn from. Adding a screen touches the
//! menu below and a new folder under `screens/`, nothing else.

use std::time::{Duration, Instant};

use rushes_api::{Client, Severity};
use tuirealm::ratatui::layout::{Constraint, Layout, Rect};
use tuirealm::ratatui::style::{Modifier, Style};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use tuirealm::ratatui::Frame;

use crate::screen::{AnyScreen, Ctx, Go, Input};
use crate::screens::{self, locked::Locked, wizard::Wizard};
use crate::snapshot::{Fetch, Refresher, Snapshot};

/// A menu screen: the key that opens it, its title, its name in the key bar.
struct Entry {
    key: char,
    title: &'static str,
    short: &'static str,
    screen: Box<dyn AnyScreen>,
}

/// The menu, in the key bar's order.
fn menu() -> Vec<Entry> {
    fn entry(
        key: char,
        title: &'static str,
        short: &'static str,
        screen: impl AnyScreen + 'static,
    ) -> Entry {
        Entry {
            key,
            title,
            short,
            screen: Box::new(screen),
        }
    }
    vec![
        entry('d', "Dashboard", "Dash", screens::dashboard::Dashboard),
        entry('k', "Disks", "Disk", screens::disks::Disks::default()),
        entry('p', "Pools", "Pool", screens::pools::Pools::default()),
        entry('s', "Shares", "Share", screens::shares::Shares::default()),
        entry(
            'm',
            "Placement",
            "Place",
            screens::placement::Placement::default(),
        ),
        entry('n', "Network", "Net", screens::network::Network),
        entry('l', "Logs", "Log", screens::logs::Logs::default()),
        entry('o', "Power", "Power", screens::power::Power::default()),
        entry('a', "Alerts", "Alert", screens::alerts::Alerts),
        entry(
            't',
            "Activity",
            "Activ",
            screens::activity::Activity::default(),
        ),
        entry('f', "Search", "Find", screens::find::Find::default()),
    ]
}

/// The console locks after this long without a key, unless told otherwise.
pub const DEFAULT_LOCK_AFTER: Duration = Duration::from_secs(600);

enum Mode {
    /// The first-boot wizard, or its network step alone.
    Wizard(Box<dyn AnyScreen>),
    Locked(Locked),
    /// The menu screen at this index.
    Menu(usize),
}

pub struct App {
    client: Client,
    mode: Mode,
    menu: Vec<Entry>,
    snap: Snapshot,
    refresher: Refresher,
    /// The last thing to tell the admin (an API error, a job started).
    message: Option<String>,
    last_key: Instant,
    lock_after: Duration,
}

impl App {
    /// A console on `client`, fetching what it shows every `refresh`.
    pub fn new(client: Client, refresh: Duration, lock_after: Duration) -> Self {
        let mut app = Self {
            refresher: Refresher::start(client.clone(), refresh),
            mode: Mode::Locked(Locked::default()),
            menu: menu(),
            // The first snapshot is waited for: it says whether to start the wizard.
            snap: Snapshot::fetch(&client, &Fetch::default()),
            client,
            message: None,
            last_key: Instant::now(),
            lock_after,
        };
        app.wizard_if_unconfigured();
        app
    }

    /// A box without an admin password gets the first-boot wizard, whenever the console
    /// learns that: the first snapshot may come before the service answers, and a lock
    /// with no password to open it would be a dead end.
    fn wizard_if_unconfigured(&mut self) {
        let unconfigured = self.snap.setup.as_ref().is_some_and(|s| !s.configured);
        if unconfigured && matches!(self.mode, Mode::Locked(_)) {
            self.mode = Mode::Wizard(Box::new(Wizard::first_boot()));
        }
    }

    /// Fetch the snapshot again, with what the open screen also wants, as soon as the
    /// fetch in flight is done. The keys go on meanwhile.
    fn refresh(&mut self) {
        self.refresher.soon();
    }

    /// Called on every tick, often and cheaply: takes up a snapshot that arrived, asks
    /// for the next when due, and locks after the idle time. True when there is
    /// something new to draw.
    pub fn tick(&mut self) -> bool {
        self.tick_at(Instant::now())
    }

    /// [`Self::tick`] as if it were `now` (the tests move the clock).
    fn tick_at(&mut self, now: Instant) -> bool {
        let (mode, menu) = (&self.mode, &self.menu);
        let fresh = self.refresher.poll(|| match mode {
            Mode::Menu(i) => menu[*i].screen.fetch(),
            _ => Fetch::default(),
        });
        let mut changed = false;
        if let Some(snap) = fresh {
            self.snap = snap;
            self.wizard_if_unconfigured();
            changed = true;
        }
        let idle = now.saturating_duration_since(self.last_key);
        if matches!(self.mode, Mode::Menu(_)) && idle > self.lock_after {
            self.mode = Mode::Locked(Locked::default());
            self.message = Some("Locked after a quiet spell.".into());
            changed = true;
        }
        changed
    }

    fn open(&mut self, key: char) {
        if let Some(i) = self.menu.iter().position(|e| e.key == key) {
            self.mode = Mode::Menu(i);
        }
    }

    pub fn key(&mut self, k: Input) {
        self.last_key = Instant::now();
        let mut ctx = Ctx {
            client: &self.client,
            snap: &self.snap,
            message: &mut self.message,
            refresh: false,
        };
        let taken = match &mut self.mode {
            // The wizard and the lock take every key.
            Mode::Wizard(w) => Some(w.key(k, &mut ctx).flatten()),
            Mode::Locked(l) => Some(AnyScreen::key(l, k, &mut ctx).flatten()),
            Mode::Menu(i) => {
                let screen = &mut self.menu[*i].screen;
                if screen.form_open() {
                    Some(screen.key(k, &mut ctx).flatten())
                } else if matches!(k, Input::Esc | Input::Char('x' | 'X')) {
                    None
                } else {
                    screen.key(k, &mut ctx)
                }
            }
        };
        let refresh = ctx.refresh;
        match taken {
            Some(go) => {
                if let Some(go) = go {
                    self.go(go);
                }
                if refresh {
                    self.refresh();
                }
            }
            None => self.router_key(k),
        }
    }

    fn go(&mut self, go: Go) {
        match go {
            Go::Screen(key) => self.open(key),
            Go::Lock => self.mode = Mode::Locked(Locked::default()),
            Go::Wizard(w) => self.mode = Mode::Wizard(w),
        }
    }

    /// The keys of a menu screen that the screen does not take.
    fn router_key(&mut self, k: Input) {
        match k {
            Input::Esc => {
                self.message = None;
                self.open('d');
            }
            Input::Char('x' | 'X') => {
                self.message = None;
                self.go(Go::Lock);
            }
            Input::Char(c) if self.menu.iter().any(|e| e.key == c.to_ascii_lowercase()) => {
                self.message = None;
                self.open(c.to_ascii_lowercase());
                self.refresh();
            }
            _ => {}
        }
    }

    /// The title bar, the body for the current screen, the message line and the key bar.
    pub fn draw(&self, f: &mut Frame<'_>, area: Rect) {
        let snap = &self.snap;
        let [top, body, msg, bottom] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(2),
            Constraint::Length(1),
        ])
        .areas(area);
        let host = snap
            .status
            .as_ref()
            .map(|s| format!("{} · Rushes {}", s.hostname, s.version))
            .unwrap_or_else(|| "Rushes".into());
        let critical = snap
            .alerts
            .iter()
            .filter(|a| a.severity == Severity::Critical)
            .count();
        let alerts = match (snap.alerts.len(), critical) {
            (0, _) => "healthy".to_string(),
            (n, 0) => format!("{n} alert(s)"),
            (n, c) => format!("{n} alert(s), {c} CRITICAL"),
        };
        let (title, keys) = match &self.mode {
            Mode::Wizard(_) => (
                "First-boot setup",
                "Tab next field  Enter continue".to_string(),
            ),
            Mode::Locked(_) => ("Locked", "Enter unlock".to_string()),
            Mode::Menu(i) => (
                self.menu[*i].title,
                if self.menu[*i].screen.form_open() {
                    "Enter confirm  Esc cancel  Left/Right choose  Tab toggle".to_string()
                } else {
                    // Short names, so every key fits an 80-column line (X, the lock,
                    // is on the top line).
                    let keys: Vec<String> = self
                        .menu
                        .iter()
                        .map(|e| format!("{} {}", e.key.to_ascii_uppercase(), e.short))
                        .collect();
                    keys.join(" ")
                },
            ),
        };
        f.render_widget(
            Paragraph::new(format!(
                " {host} · {title} · {alerts}{}",
                if matches!(self.mode, Mode::Menu(_)) {
                    " · X Lock"
                } else {
                    ""
                }
            ))
            .style(Style::default().add_modifier(Modifier::REVERSED)),
            top,
        );
        f.render_widget(
            Paragraph::new(format!(" {keys}"))
                .style(Style::default().add_modifier(Modifier::REVERSED)),
            bottom,
        );
        if let Some(m) = &self.message {
            f.render_widget(Paragraph::new(m.as_str()).wrap(Wrap { trim: false }), msg);
        }
        let block = Block::default()
            .borders(Borders::ALL)
            .title(format!(" {title} "));
        let inner = block.inner(body);
        f.render_widget(block, body);
        if let Some(err) = &snap.error {
            f.render_widget(
                Paragraph::new(vec![
                    Line::from("! The appliance's service does not answer."),
                    Line::from(""),
                    Line::from(err.as_str()),
                    Line::from(""),
                    Line::from(
                        "The console tries again every few seconds. If this stays, reboot from",
                    ),
                    Line::from("the power button; the pools' data is safe on their disks."),
                ])
                .wrap(Wrap { trim: false }),
                inner,
            );
            return;
        }
        match &self.mode {
            Mode::Wizard(w) => w.view(f, inner, snap),
            Mode::Locked(l) => AnyScreen::view(l, f, inner, snap),
            Mode::Menu(i) => self.menu[*i].screen.view(f, inner, snap),
        }
    }
}

#[cfg(test)]
mod captures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_menu_key_opens_one_screen_and_none_is_taken_by_the_router() {
        let menu = menu();
        let mut keys: Vec<char> = menu.iter().map(|e| e.key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), menu.len(), "two screens share a key");
        assert!(!keys.contains(&'x'), "X locks the console");
    }

    #[test]
    fn a_console_that_started_before_the_service_still_offers_the_wizard() {
        // No service yet: nothing says whether the box is set up, so it stays locked.
        let mut app = App::new(
            Client::new("/nonexistent/rushes-api.sock"),
            Duration::from_secs(2),
            DEFAULT_LOCK_AFTER,
        );
        assert!(matches!(app.mode, Mode::Locked(_)));
        // The service answers: no admin password yet, so the wizard, not the lock.
        app.snap.setup = Some(rushes_api::Setup {
            configured: false,
            hostname: "rushes".into(),
            addresses: vec![],
        });
        app.wizard_if_unconfigured();
        assert!(matches!(app.mode, Mode::Wizard(_)));
        // A set-up box keeps its lock.
        app.mode = Mode::Locked(Locked::default());
        app.snap.setup.as_mut().unwrap().configured = true;
        app.wizard_if_unconfigured();
        assert!(matches!(app.mode, Mode::Locked(_)));
    }

    #[test]
    fn ten_quiet_minutes_lock_the_console_and_a_key_starts_them_again() {
        // No service: the console shows that, and its clock is the test's.
        let mut app = App::new(
            Client::new("/nonexistent/rushes-api.sock"),
            Duration::from_secs(2),
            DEFAULT_LOCK_AFTER,
        );
        assert_eq!(DEFAULT_LOCK_AFTER, Duration::from_secs(600));
        app.mode = Mode::Menu(0);
        let start = app.last_key;
        app.tick_at(start + Duration::from_secs(599));
        assert!(
            matches!(app.mode, Mode::Menu(0)),
            "locked before ten minutes"
        );
        app.key(Input::Char('k'));
        let typed = app.last_key;
        assert!(typed >= start);
        app.tick_at(typed + Duration::from_secs(599));
        assert!(
            matches!(app.mode, Mode::Menu(1)),
            "the key on the Disks screen counts"
        );
        assert!(
            app.tick_at(typed + Duration::from_secs(601)),
            "a lock is drawn"
        );
        assert!(matches!(app.mode, Mode::Locked(_)));
        assert_eq!(app.message.as_deref(), Some("Locked after a quiet spell."));
    }
}
