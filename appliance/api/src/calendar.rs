//! Dates, durations and time zones, all through jiff and the system's tzdata.
//!
//! The rule for what a person reads: the console shows every time in the appliance's
//! time zone (the settings' `timezone`, UTC when unset), marked with the zone's
//! abbreviation; `rushesctl`, which may run anywhere, prints UTC marked `UTC`; the API,
//! its JSON and the logs carry seconds (or milliseconds) since the epoch.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp, Unit};

fn timestamp(secs: u64) -> Timestamp {
    i64::try_from(secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::MAX)
}

/// The UTC day holding `secs` seconds since the epoch.
pub fn utc_day(secs: u64) -> Date {
    timestamp(secs).to_zoned(TimeZone::UTC).date()
}

/// The first second (since the epoch) of a UTC day, if it is not before 1970.
pub fn day_start(day: Date) -> Option<u64> {
    let ts = day.to_zoned(TimeZone::UTC).ok()?.timestamp();
    u64::try_from(ts.as_second()).ok()
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_time(secs: u64) -> String {
    timestamp(secs)
        .to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// A zone from the system's tzdata (`Europe/London`), or why it is not one. Only real
/// TZif zones are: `zone.tab`, `../../etc/passwd` and made-up names are refused.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name.contains("..") || name.starts_with('/') {
        return Err(format!("{name:?} is not a time zone name"));
    }
    jiff::tz::db()
        .get(name)
        .map_err(|e| format!("{name:?} is not a known time zone ({e})"))
}

/// Every zone name the system's tzdata has, sorted.
pub fn zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .collect();
    names.sort();
    names
}

/// The appliance's zone from its settings: UTC when unset or unknown here.
pub fn appliance_zone(setting: Option<&str>) -> TimeZone {
    setting
        .and_then(|name| zone(name).ok())
        .unwrap_or(TimeZone::UTC)
}

/// `HH:MM:SS ZONE` of `millis` since the epoch in `tz`, for a list of recent events.
pub fn clock_time(millis: u64, tz: &TimeZone) -> String {
    let ts = i64::try_from(millis)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX);
    ts.to_zoned(tz.clone()).strftime("%H:%M:%S %Z").to_string()
}

/// `YYYY-MM-DD HH:MM ZONE` of `secs` since the epoch in `tz`.
pub fn local_time(secs: u64, tz: &TimeZone) -> String {
    timestamp(secs)
        .to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// A span an admin types (`90s`, `30m`, `2h`, `7d`, `1h30m`, `2 days`, `6mo`, `1y`), in
/// seconds; a day is 24 hours here, and months and years count from now (UTC).
pub fn parse_span(text: &str) -> Result<u64, String> {
    let span: Span = text.parse().map_err(|e| {
        format!("{text:?} is not a span of time ({e}): use e.g. 30m, 2h, 7d, 1h30m or 1y")
    })?;
    let secs = if span.get_years() != 0 || span.get_months() != 0 {
        let now = Timestamp::now().to_zoned(TimeZone::UTC);
        span.total((Unit::Second, &now))
    } else {
        span.total((Unit::Second, SpanRelativeTo::days_are_24_hours()))
    }
    .map_err(|e| format!("{text:?}: {e}"))?;
    if secs < 0.0 {
        return Err(format!("{text:?} is negative"));
    }
    Ok(SignedDuration::from_secs_f64(secs).as_secs() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_read_as_utc_dates() {
        assert_eq!(utc_day(0), jiff::civil::date(1970, 1, 1));
        assert_eq!(utc_day(951_782_400), jiff::civil::date(2000, 2, 29));
        assert_eq!(utc_time(1_795_700_000), "2026-11-26 13:33:20 UTC");
        assert_eq!(
            day_start(jiff::civil::date(2026, 11, 26)),
            Some(1_795_651_200)
        );
        assert_eq!(day_start(jiff::civil::date(1969, 12, 31)), None);
    }

    #[test]
    fn zones_come_from_tzdata_and_only_real_ones_pass() {
        let london = zone("Europe/London").unwrap();
        // 26 November is winter time in London, and 13:33 UTC is 13:33 GMT.
        assert_eq!(local_time(1_795_700_000, &london), "2026-11-26 13:33 GMT");
        let la = zone("America/Los_Angeles").unwrap();
        assert_eq!(clock_time(1_795_700_000_000, &la), "05:33:20 PST");
        for bad in [
            "zone.tab",
            "Mars/Olympus",
            "../../etc/passwd",
            "/etc/localtime",
            "",
        ] {
            assert!(zone(bad).is_err(), "{bad:?} passed");
        }
        let names = zone_names();
        assert!(
            names.iter().any(|n| n == "Europe/London"),
            "{}",
            names.len()
        );
        assert!(!names.iter().any(|n| n.ends_with(".tab")));
        assert_eq!(appliance_zone(Some("Nowhere/Else")), TimeZone::UTC);
    }

    #[test]
    fn spans_read_as_people_type_them() {
        assert_eq!(parse_span("90s"), Ok(90));
        assert_eq!(parse_span("30m"), Ok(1800));
        assert_eq!(parse_span("7d"), Ok(7 * 86_400));
        assert_eq!(parse_span("1h30m"), Ok(5400));
        assert!(parse_span("soon").is_err());
        // Years and months, which `--expires 1y` in rushesctl's help offers.
        let year = parse_span("1y").unwrap();
        assert!((365 * 86_400..=366 * 86_400).contains(&year), "{year}");
        let half = parse_span("6mo").unwrap();
        assert!((181 * 86_400..=184 * 86_400).contains(&half), "{half}");
        assert!(parse_span("-2h").is_err());
    }
}
