//! Sizes and shares of a pool as admins write and read them.

/// A size an admin types: `500M`, `10G`, `1.5TiB`, `4096`; K/M/G/T/P are powers of
/// 1024 with or without `i`/`B` (`10G` = `10GiB` = `10GB`), as `ls -h` and `df -h` mean.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size: use e.g. 500M, 10G or 2T"))?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit.trim_end_matches('B').trim_end_matches('I');
    let scale: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        "P" => 1 << 50,
        _ => return Err(format!("{text:?} has an unknown unit: use K, M, G, T or P")),
    };
    let bytes = value * scale as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// `1.5 GiB`, `730 MiB`, `12 KiB`, `512 B`.
pub fn show_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `3d 4h`, `2h 5m`, `40s`: how long something took or will take.
pub fn show_span(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_df_writes_them() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("10G"), parse_size("10GiB"));
        assert_eq!(parse_size("10gb"), Ok(10 << 30));
        assert_eq!(parse_size("1.5T"), Ok(3 << 39));
        for bad in ["", "ten", "10X", "1e400G", "G"] {
            assert!(parse_size(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn sizes_and_spans_show_as_an_admin_reads_them() {
        assert_eq!(show_size(512), "512 B");
        assert_eq!(show_size(3 << 29), "1.5 GiB");
        assert_eq!(show_size(730 << 20), "730 MiB");
        assert_eq!(show_span(40), "40s");
        assert_eq!(show_span(7_500), "2h 5m");
        assert_eq!(show_span(3 * 86_400 + 4 * 3600 + 9), "3d 4h");
    }
}
