//! Dates for the simulated workflow, without a date crate: cycle points like
//! `20260101T0600Z` and ISO 8601 times like `2026-01-01T06:12:30Z`.

/// 2026-01-01T00:00:00Z, where simulated workflows begin.
pub const START: i64 = 1_767_225_600;

/// (year, month, day) of a day number counted from 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn parts(unix_s: i64) -> (i64, u32, u32, i64, i64, i64) {
    let (y, m, d) = civil_from_days(unix_s.div_euclid(86_400));
    let secs = unix_s.rem_euclid(86_400);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

/// ISO 8601 UTC time, e.g. `2026-01-01T06:12:30Z`.
pub fn iso_time(unix_s: i64) -> String {
    let (y, m, d, hh, mm, ss) = parts(unix_s);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// A cycle point as Cylc writes it by default in UTC mode (`CCYYMMDDThhmmZ`), e.g.
/// `20260101T0600Z`.
pub fn cycle_point(unix_s: i64) -> String {
    let (y, m, d, hh, mm, _) = parts(unix_s);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(iso_time(START), "2026-01-01T00:00:00Z");
        assert_eq!(cycle_point(START + 6 * 3600), "20260101T0600Z");
        assert_eq!(iso_time(START + 59 * 86_400 + 3661), "2026-03-01T01:01:01Z");
        assert_eq!(iso_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_time(0), "1970-01-01T00:00:00Z");
    }
}
