//! Wall-clock time as the API and the state files report it: seconds since the epoch.

/// Seconds since the epoch, or 0 on a clock set before 1970.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYYMMDD-HHMMSS` (UTC) of `secs`, for the names of files the box hands out.
pub fn file_stamp(secs: u64) -> String {
    rushes_api::calendar::utc_time(secs)
        .trim_end_matches(" UTC")
        .replace(['-', ':'], "")
        .replace(' ', "-")
}
