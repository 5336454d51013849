//! SigV4 timestamps: `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`, ISO 8601 basic format, UTC) and the
//! credential scope's date (`YYYYMMDD`), to and from milliseconds since the Unix epoch.
//!
//! Hand-written (days from civil date and back, after Howard Hinnant's algorithms) because the
//! crate needs nothing else of a date library. Leap seconds do not exist here, as in Unix time.

/// Parses `YYYYMMDDTHHMMSSZ` into milliseconds since the Unix epoch.
///
/// Returns `None` unless the value is exactly 16 ASCII bytes of that shape with a real date and
/// time of day, in the years 1970..=9999.
pub fn parse_amz_date(value: &[u8]) -> Option<u64> {
    let [
        y0,
        y1,
        y2,
        y3,
        mo0,
        mo1,
        d0,
        d1,
        b'T',
        h0,
        h1,
        mi0,
        mi1,
        s0,
        s1,
        b'Z',
    ] = *value
    else {
        return None;
    };
    let year = digits(&[y0, y1, y2, y3])?;
    let month = digits(&[mo0, mo1])?;
    let day = digits(&[d0, d1])?;
    let hour = digits(&[h0, h1])?;
    let minute = digits(&[mi0, mi1])?;
    let second = digits(&[s0, s1])?;
    if year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(seconds * 1_000)
}

/// Formats milliseconds since the Unix epoch as `YYYYMMDDTHHMMSSZ` (the milliseconds are
/// dropped). Years past 9999 are clamped to 9999-12-31T23:59:59Z.
pub fn format_amz_date(ms: u64) -> String {
    let max = 253_402_300_799_u64; // 9999-12-31T23:59:59Z
    let secs = (ms / 1_000).min(max);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// Formats milliseconds since the Unix epoch as ISO 8601 with milliseconds,
/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (SNS's `Timestamp`), clamped as [`format_amz_date`].
pub fn format_iso8601_ms(ms: u64) -> String {
    let max = 253_402_300_799_999_u64;
    let ms = ms.min(max);
    let secs = ms / 1_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        ms % 1_000
    )
}

fn digits(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0_u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date in 1970..=9999 (proleptic Gregorian).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day counted from 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(parse_amz_date(b"19700101T000000Z"), Some(0));
        // The C producer captures' date; 1795320641.601 s is the first Cluster's timecode.
        assert_eq!(parse_amz_date(b"20261122T041041Z"), Some(1_795_320_641_000));
        assert_eq!(parse_amz_date(b"20000229T120000Z"), Some(951_825_600_000));
        assert_eq!(format_amz_date(1_795_320_641_601), "20261122T041041Z");
        assert_eq!(format_amz_date(951_825_600_000), "20000229T120000Z");
        assert_eq!(format_amz_date(u64::MAX), "99991231T235959Z");
        assert_eq!(
            format_iso8601_ms(1_795_320_641_601),
            "2026-11-22T04:10:41.601Z"
        );
        assert_eq!(
            format_iso8601_ms(951_825_600_007),
            "2000-02-29T12:00:00.007Z"
        );
        assert_eq!(format_iso8601_ms(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"20261122T041041",
            b"20261122T041041z",
            b"20261122 041041Z",
            b"2026-11-22T04:10:41Z",
            b"20261322T041041Z",
            b"20260230T041041Z",
            b"20250229T000000Z",
            b"20261100T041041Z",
            b"20261122T241041Z",
            b"20261122T046041Z",
            b"20261122T041060Z",
            b"19691231T235959Z",
            b"2026112+T041041Z",
            b"20261122T041041Z ",
        ] {
            assert_eq!(
                parse_amz_date(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn round_trips_every_day() {
        // Every day from 1970 to 2200, at a time that exercises all fields.
        let mut ms = 45_296_000; // 12:34:56
        while ms < 7_258_118_400_000 {
            let s = format_amz_date(ms);
            assert_eq!(parse_amz_date(s.as_bytes()), Some(ms), "{s}");
            ms += 86_400_000;
        }
    }
}
