//! The civil (proleptic Gregorian, UTC) date and time of a count of seconds since 1970, for the
//! tests and benches that print dates (Howard Hinnant's days-to-civil algorithm). Shared by
//! `tests/common` and, by path, `benches/tls.rs`.

/// `(year, month 1..=12, day 1..=31, seconds into the day)` of `secs` seconds since
/// 1970-01-01 00:00 UTC, and the weekday (0 = Thursday, 1970-01-01's).
pub fn civil(secs: u64) -> (i64, i64, i64, u64, usize) {
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs % 86_400, days.rem_euclid(7) as usize)
}
