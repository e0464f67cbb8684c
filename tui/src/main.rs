//! `rushes-console`: the appliance's own screens, on the VGA console and the serial line,
//! driven by keyboard alone. It is a client of the management API and of nothing else.

mod app;
mod form;
mod screen;
mod screens;
mod search;
mod snapshot;
mod widgets;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rushes_api::Client;
use tuirealm::application::{Application, PollStrategy};
use tuirealm::command::{Cmd, CmdResult};
use tuirealm::component::{AppComponent, Component};
use tuirealm::event::{Event, Key, KeyEvent, NoUserEvent};
use tuirealm::listener::EventListenerCfg;
use tuirealm::props::{AttrValue, Attribute, QueryResult};
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::Frame;
use tuirealm::state::State;
use tuirealm::terminal::{CrosstermTerminalAdapter, TerminalAdapter};

use app::App;
use screen::Input;

#[derive(Parser)]
#[command(
    name = "rushes-console",
    version,
    about = "The Rushes appliance console (keyboard only)"
)]
struct Cli {
    /// The management API socket.
    #[arg(long, env = "RUSHES_API", default_value = rushes_api::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Seconds between refreshes of what the screens show.
    #[arg(long, default_value_t = 2)]
    refresh: u64,
    /// Lock the console after this many seconds without a key.
    #[arg(long, default_value_t = app::DEFAULT_LOCK_AFTER.as_secs())]
    lock_after: u64,
    /// Running on a serial line: assume 80×25 when the line reports no size, and repaint
    /// the whole screen on every refresh (the kernel may write to the line too).
    #[arg(long)]
    serial: bool,
}

#[derive(Debug, PartialEq)]
enum Msg {
    Redraw,
    Refreshed,
}

#[derive(Debug, Eq, PartialEq, Clone, Hash)]
enum Id {
    Console,
}

/// The one component: tui-realm hands it events, it hands them to the [`App`].
struct Console {
    app: App,
}

impl Component for Console {
    fn view(&mut self, frame: &mut Frame<'_>, area: Rect) {
        self.app.draw(frame, area);
    }

    fn query<'a>(&'a self, _attr: Attribute) -> Option<QueryResult<'a>> {
        None
    }

    fn attr(&mut self, _attr: Attribute, _value: AttrValue) {}

    fn state(&self) -> State {
        State::None
    }

    fn perform(&mut self, cmd: Cmd) -> CmdResult {
        CmdResult::Invalid(cmd)
    }
}

impl AppComponent<Msg, NoUserEvent> for Console {
    fn on(&mut self, ev: &Event<NoUserEvent>) -> Option<Msg> {
        let input = match ev {
            Event::Tick => return self.app.tick().then_some(Msg::Refreshed),
            Event::WindowResize(..) => return Some(Msg::Redraw),
            Event::Keyboard(KeyEvent { code, .. }) => match code {
                Key::Char(c) => Input::Char(*c),
                Key::Enter => Input::Enter,
                Key::Esc => Input::Esc,
                Key::Tab => Input::Tab,
                Key::Backspace => Input::Backspace,
                Key::Up => Input::Up,
                Key::Down => Input::Down,
                Key::Left => Input::Left,
                Key::Right => Input::Right,
                _ => return None,
            },
            _ => return None,
        };
        self.app.key(input);
        Some(Msg::Redraw)
    }
}

/// A serial line starts with no size: give it the VT100's 80×25.
fn default_serial_size() {
    let stdin = std::io::stdin();
    match rustix::termios::tcgetwinsize(&stdin) {
        Ok(ws) if ws.ws_row > 0 && ws.ws_col > 0 => {}
        _ => {
            let ws = rustix::termios::Winsize {
                ws_row: 25,
                ws_col: 80,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            let _ = rustix::termios::tcsetwinsize(&stdin, ws);
        }
    }
}

/// Clear the screen and make the next draw paint every cell: log lines may have landed
/// on a serial screen. (ratatui's own `clear` asks the terminal for the cursor position,
/// which a plain serial line may never answer.)
fn repaint_all(terminal: &mut CrosstermTerminalAdapter) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(b"\x1b[2J");
    let _ = out.flush();
    drop(out);
    // Two swaps leave both buffers blank, so the next frame is drawn whole.
    terminal.raw_mut().swap_buffers();
    terminal.raw_mut().swap_buffers();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.serial {
        default_serial_size();
    }
    let client = Client::new(&cli.socket).with_timeout(Duration::from_secs(5));
    // Ticks are cheap (the snapshot is fetched on its own thread), so they come often
    // enough to show a new snapshot soon after it arrives; they never queue up ahead of
    // the keys behind a slow answer.
    let listener = EventListenerCfg::default()
        .crossterm_input_listener(Duration::from_millis(20), 8)
        .tick_interval(Duration::from_millis(100));
    let mut realm: Application<Id, Msg, NoUserEvent> = Application::init(listener);
    let console = Console {
        app: App::new(
            client,
            Duration::from_secs(cli.refresh.max(1)),
            Duration::from_secs(cli.lock_after),
        ),
    };
    realm
        .mount(Id::Console, Box::new(console), Vec::new())
        .context("cannot start the console")?;
    realm
        .active(&Id::Console)
        .context("cannot focus the console")?;

    let mut terminal = CrosstermTerminalAdapter::new().context("no terminal")?;
    terminal
        .enable_raw_mode()
        .context("cannot put the terminal in raw mode")?;
    terminal
        .enter_alternate_screen()
        .context("cannot switch screens")?;
    let mut redraw = true;
    loop {
        if redraw {
            terminal
                .draw(|f| realm.view(&Id::Console, f, f.area()))
                .context("cannot draw")?;
        }
        redraw = match realm.tick(PollStrategy::UpTo(8, Duration::from_millis(200))) {
            Ok(msgs) => {
                if cli.serial && msgs.contains(&Msg::Refreshed) {
                    repaint_all(&mut terminal);
                }
                !msgs.is_empty()
            }
            Err(e) => anyhow::bail!("console event loop failed: {e}"),
        };
    }
}
