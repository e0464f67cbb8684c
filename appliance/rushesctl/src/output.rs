//! How rushesctl prints: plain text, pretty JSON, and left-aligned tables.

use std::io::Write;
use std::process::ExitCode;

use rushes_api::ClientError;

/// What a command comes to: its exit code, or the API's refusal.
pub type Res = Result<ExitCode, ClientError>;

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
}

pub fn json<T: serde::Serialize>(v: &T) {
    out(&format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_default()
    ));
}

/// Left-aligned columns, as wide as their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        debug_assert_eq!(
            row.len(),
            header.len(),
            "a row of {header:?} has another width"
        );
        for (i, cell) in row.iter().enumerate() {
            if i >= width.len() {
                width.push(0);
            }
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut s = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        s.push_str(&line(row.clone()));
    }
    s
}
