//! The NICs' live state, the saved network and time settings, the local time and the
//! clock's sync; E changes the network through the wizard's network step.

use rushes_api as api;
use tuirealm::ratatui::layout::Rect;
use tuirealm::ratatui::style::{Modifier, Style};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Paragraph, Wrap};
use tuirealm::ratatui::Frame;

use crate::screen::{Ctx, Go, Input, Screen};
use crate::screens::wizard::Wizard;
use crate::snapshot::Snapshot;
use crate::widgets::nic_line;

#[derive(Default)]
pub struct Network;

pub enum Msg {
    /// Change the network settings.
    Edit,
}

impl Screen for Network {
    type Msg = Msg;

    fn message(&self, key: Input) -> Option<Msg> {
        matches!(key, Input::Char('e' | 'E')).then_some(Msg::Edit)
    }

    fn update(&mut self, msg: Msg, ctx: &mut Ctx<'_>) -> Option<Go> {
        match msg {
            Msg::Edit => {
                *ctx.message = None;
                Some(Go::Wizard(Box::new(Wizard::network_only())))
            }
        }
    }

    fn view(&self, f: &mut Frame<'_>, area: Rect, snap: &Snapshot) {
        let mut lines =
            vec![Line::from("Interfaces").style(Style::default().add_modifier(Modifier::BOLD))];
        for nic in &snap.nics {
            lines.push(Line::from(format!("  {}", nic_line(nic))));
        }
        lines.push(Line::from(""));
        lines.push(
            Line::from("Settings (applied at boot; E to change)")
                .style(Style::default().add_modifier(Modifier::BOLD)),
        );
        if let Some(s) = &snap.settings {
            lines.push(Line::from(format!(
                "  host name  {}",
                s.hostname.as_deref().unwrap_or("(default)")
            )));
            if s.network.is_empty() {
                lines.push(Line::from("  addresses  DHCP on every wired NIC"));
            }
            for n in &s.network {
                lines.push(Line::from(format!(
                    "  {:<9}  {} gateway {} dns {} mtu {}",
                    n.interface,
                    n.address.as_deref().unwrap_or("DHCP"),
                    n.gateway.as_deref().unwrap_or("-"),
                    if n.dns.is_empty() {
                        "-".to_string()
                    } else {
                        n.dns.join(",")
                    },
                    n.mtu
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| "default".into())
                )));
            }
            lines.push(Line::from(format!(
                "  time zone  {}   NTP {}",
                s.timezone.as_deref().unwrap_or("UTC"),
                if s.ntp.is_empty() {
                    "-".to_string()
                } else {
                    s.ntp.join(",")
                }
            )));
            if let Some(zone) = s.timezone.as_deref() {
                lines.push(Line::from(match api::calendar::zone(zone) {
                    Ok(tz) => format!(
                        "  local time {}",
                        api::calendar::local_time(
                            snap.clock.as_ref().map_or_else(
                                || jiff::Timestamp::now().as_second().unsigned_abs(),
                                |c| c.now
                            ),
                            &tz
                        )
                    ),
                    Err(_) => format!("  local time ! {zone} is not in this console's zone data"),
                }));
            }
            if let Some(clock) = &snap.clock {
                lines.push(Line::from(match (&clock.synced, &clock.error) {
                    (Some(sync), _) => format!(
                        "  clock      synced with {} (offset {:.1} ms, stratum {}{})",
                        sync.server,
                        sync.offset_ms,
                        sync.stratum,
                        if clock.kernel_synchronised {
                            ", RTC kept"
                        } else {
                            ""
                        }
                    ),
                    (None, Some(e)) => format!("  clock      ! not synced: {e}"),
                    (None, None) if clock.ntp.is_empty() => {
                        "  clock      no NTP server set".to_string()
                    }
                    (None, None) => "  clock      asking the NTP servers".to_string(),
                }));
            }
        }
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
    }
}
