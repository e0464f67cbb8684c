//! What a console screen is: its messages, its update and its view, the context the
//! router lends it, and the keys as the console knows them.

use rushes_api::{Client, ClientError};
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::Frame;

use crate::snapshot::{Fetch, Snapshot};

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

/// Where a screen sends the console next.
pub enum Go {
    /// The menu screen opened by this key (`d` the dashboard, `n` the network).
    Screen(char),
    /// The lock.
    Lock,
    /// A screen that takes the whole console until it sends it on: the first-boot
    /// wizard (after a reset), or its network step alone.
    Wizard(Box<dyn AnyScreen>),
}

/// What the router lends a screen while it updates.
pub struct Ctx<'a> {
    pub client: &'a Client,
    pub snap: &'a Snapshot,
    /// The message line under the screen.
    pub message: &'a mut Option<String>,
    /// Fetch the snapshot again once the update is done (something changed).
    pub refresh: bool,
}

impl Ctx<'_> {
    /// Tell the admin how a request went.
    pub fn say(&mut self, r: Result<String, ClientError>) {
        *self.message = Some(match r {
            Ok(m) => m,
            Err(e) => format!("! {e}"),
        });
    }

    pub fn tell(&mut self, text: impl Into<String>) {
        *self.message = Some(text.into());
    }
}

/// One screen: its messages, its update and its view.
pub trait Screen {
    /// What a key can mean on this screen.
    type Msg;
    /// What `key` means here now, or `None` for the router's keys (menu letters, Esc,
    /// X). With a form open, every key is the screen's. A screen that only shows takes
    /// none.
    fn message(&self, _key: Input) -> Option<Self::Msg> {
        None
    }
    fn update(&mut self, _msg: Self::Msg, _ctx: &mut Ctx<'_>) -> Option<Go> {
        None
    }
    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot);
    /// A form is open over the screen (the key bar shows the form's keys).
    fn form_open(&self) -> bool {
        false
    }
    fn fetch(&self) -> Fetch {
        Fetch::default()
    }
}

/// A screen whatever its messages, as the router holds it.
pub trait AnyScreen {
    /// `None` when the key is not the screen's; else where to go, if anywhere.
    fn key(&mut self, key: Input, ctx: &mut Ctx<'_>) -> Option<Option<Go>>;
    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot);
    fn form_open(&self) -> bool;
    fn fetch(&self) -> Fetch;
}

impl<S: Screen> AnyScreen for S {
    fn key(&mut self, key: Input, ctx: &mut Ctx<'_>) -> Option<Option<Go>> {
        let msg = self.message(key)?;
        Some(self.update(msg, ctx))
    }
    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        Screen::view(self, f, area, snap)
    }
    fn form_open(&self) -> bool {
        Screen::form_open(self)
    }
    fn fetch(&self) -> Fetch {
        Screen::fetch(self)
    }
}

/// Typing in a text field: a character, or Backspace.
pub fn typed(key: Input) -> Option<char> {
    match key {
        Input::Char(c) => Some(c),
        Input::Backspace => Some('\u{8}'),
        _ => None,
    }
}
