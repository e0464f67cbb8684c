//! Drawing pieces the screens share: sizes and rates in words, capacity bars, states
//! spelled out, sparklines, tables, and the box a form opens in.

use rushes_api as api;
use rushes_api::{PoolState, Severity};
use tuirealm::ratatui::layout::{Constraint, Rect};
use tuirealm::ratatui::style::{Modifier, Style};
use tuirealm::ratatui::text::Line;
use tuirealm::ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use tuirealm::ratatui::Frame;

pub fn size(bytes: u64) -> String {
    if bytes >= 1_000_000_000_000 {
        format!("{:.1} TB", bytes as f64 / 1e12)
    } else {
        format!("{:.1} GB", bytes as f64 / 1e9)
    }
}

/// `[#####.....]  52%`: a capacity bar in plain characters.
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
    format!(
        "[{}{}] {:>3.0}%",
        "#".repeat(filled),
        ".".repeat(width - filled),
        fraction * 100.0
    )
}

pub fn state_word(state: PoolState) -> &'static str {
    match state {
        PoolState::Online => "online",
        PoolState::Degraded => "DEGRADED",
        PoolState::Failed => "FAILED",
        PoolState::Missing => "MISSING",
    }
}

pub fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "! CRITICAL",
        Severity::Warning => "! warning",
        Severity::Info => "  info",
    }
}

pub fn mount_lines(addr: &str) -> Vec<Line<'static>> {
    vec![
        Line::from("Mount a share (here /projects) from the edit suites, locking on:"),
        Line::from(format!("  Linux:   mount -t nfs {addr}:/projects /mnt")),
        Line::from(format!(
            "  macOS:   Finder, Go > Connect to Server: nfs://{addr}/projects"
        )),
        Line::from(format!("  Windows: mount \\\\{addr}\\projects Z:")),
    ]
}

pub fn nic_line(n: &api::Nic) -> String {
    let link = if n.link_up {
        match n.speed_mbps {
            Some(s) if s >= 1000 => format!("link up {} Gb/s", s / 1000),
            Some(s) => format!("link up {s} Mb/s"),
            None => "link up".into(),
        }
    } else {
        "NO LINK".into()
    };
    let addrs: Vec<&str> = n
        .addresses
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("fe80"))
        .collect();
    let line = format!(
        "{:<10} {:<17} {:<16} mtu {:<5} {}",
        n.name,
        n.mac,
        link,
        n.mtu,
        addrs.join(" ")
    );
    // One line per NIC on an 80-column screen.
    line.chars().take(74).collect()
}

/// Two seconds a character, so a minute fits an 80-column line.
pub fn halved(values: &[u64]) -> Vec<u64> {
    values.chunks(2).map(|c| c.iter().sum()).collect()
}

pub fn bold(text: String) -> Line<'static> {
    Line::from(text).style(Style::default().add_modifier(Modifier::BOLD))
}

/// Bytes in the unit that reads best: kB, MB, GB or TB.
pub fn amount(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => size(b),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.0} kB", b as f64 / 1e3),
    }
}

pub fn rate(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB/s", bytes as f64 / 1e6)
    } else {
        format!("{:.0} kB/s", bytes as f64 / 1e3)
    }
}

/// One character per second, in plain ASCII so a VGA font or a serial terminal shows it.
pub fn sparkline(values: &[u64]) -> String {
    const LEVELS: &[u8] = b" .:-=+*#%@";
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if max == 0 || v == 0 {
                ' '
            } else {
                let i = 1 + (v * (LEVELS.len() as u64 - 2)).div_ceil(max) as usize;
                LEVELS[i.min(LEVELS.len() - 1)] as char
            }
        })
        .collect()
}

/// The dashboard's traffic lines: rates now, the last minute, and the clients.
pub fn traffic(act: &api::Activity) -> Vec<Line<'static>> {
    // The current second is still filling: show the one before it.
    let last = act
        .seconds
        .iter()
        .rev()
        .nth(1)
        .copied()
        .unwrap_or(api::Throughput {
            at: 0,
            read_bytes: 0,
            write_bytes: 0,
            ops: 0,
        });
    let per_second: Vec<u64> = act
        .seconds
        .iter()
        .map(|s| s.read_bytes + s.write_bytes)
        .collect();
    let peak = per_second.iter().copied().max().unwrap_or(0);
    let mut lines = vec![
        Line::from(format!(
            "Traffic  read {}  write {}  {} ops/s",
            rate(last.read_bytes),
            rate(last.write_bytes),
            last.ops
        ))
        .style(Style::default().add_modifier(Modifier::BOLD)),
        Line::from(format!(
            "  [{}] peak {}",
            sparkline(&per_second),
            rate(peak)
        )),
    ];
    if act.clients.is_empty() {
        lines.push(Line::from("  no clients in the last five minutes"));
    }
    for c in act.clients.iter().take(4) {
        lines.push(Line::from(format!(
            "  client {:<16} {:>9} ops  read {:>9}  written {:>9}",
            c.address,
            c.ops,
            amount(c.read_bytes),
            amount(c.write_bytes)
        )));
    }
    lines
}

pub fn table<'a>(header: &'a [&'a str], rows: Vec<Vec<String>>, widths: &'a [u16]) -> Table<'a> {
    Table::new(
        rows.into_iter().map(Row::new),
        widths.iter().map(|w| Constraint::Length(*w)),
    )
    .header(Row::new(header.to_vec()).style(Style::default().add_modifier(Modifier::BOLD)))
}

pub fn serde_word(state: &api::MemberState) -> String {
    match state {
        api::MemberState::InSync => "in sync",
        api::MemberState::Rebuilding => "REBUILDING",
        api::MemberState::Spare => "spare",
        api::MemberState::Faulty => "FAULTY",
        api::MemberState::Missing => "MISSING",
    }
    .into()
}

/// A form's box at the bottom of the screen's area, over what the screen drew.
pub fn form_box(f: &mut Frame<'_>, area: Rect, title: &str, lines: Vec<Line<'_>>) {
    let h = (lines.len() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + 2,
        y: area.y + area.height.saturating_sub(h),
        width: area.width.saturating_sub(4),
        height: h,
    };
    f.render_widget(tuirealm::ratatui::widgets::Clear, rect);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {title} ")),
        ),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_sparklines() {
        assert_eq!(bar(0.5, 10), "[#####.....]  50%");
        assert_eq!(sparkline(&[0, 1, 8, 4]), " :@+");
    }
}
