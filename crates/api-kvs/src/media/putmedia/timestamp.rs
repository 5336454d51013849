//! The producer start timestamp (`x-amzn-producer-start-timestamp`): see [`parse_timestamp`].

use vigil_api_kvs_common::model::seconds_to_ms;

/// The latest timestamp accepted: 9999-12-31T23:59:59.999Z, in ms.
const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;

/// Parses a producer start timestamp into epoch ms: decimal epoch seconds (`1732012345.678`;
/// `1700000000.5` is 500 ms, as KVS reads the C producer's unpadded milliseconds; more than
/// three decimals round to the nearest ms), any other number form (`1.7e9`), or ISO-8601
/// (`2024-11-19T10:32:25.678Z`, with `Z` or an offset; none means UTC).
pub(crate) fn parse_timestamp(s: &str) -> Option<u64> {
    let s = s.trim();
    parse_decimal_seconds(s)
        .or_else(|| s.parse::<f64>().ok().and_then(seconds_to_ms))
        .or_else(|| parse_iso8601(s))
        .filter(|ms| *ms <= MAX_TIMESTAMP_MS)
}

fn parse_decimal_seconds(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return None;
    }
    let secs: u64 = int.parse().ok()?;
    let d = |i: usize| frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
    let ms = d(0) * 100 + d(1) * 10 + d(2) + u64::from(d(3) >= 5);
    secs.checked_mul(1000)?.checked_add(ms)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…][Z|±HH:MM|±HHMM]` (a space may replace the `T`).
fn parse_iso8601(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut ms = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = frac.get(..n)?;
        let d = |i: usize| digits.as_bytes().get(i).map_or(0, |c| i64::from(c - b'0'));
        ms = d(0) * 100 + d(1) * 10 + d(2) + i64::from(d(3) >= 5);
        rest = frac.get(n..)?;
    }
    let offset_secs = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let tz = rest.get(1..)?.replace(':', "");
            if tz.len() != 4 || !tz.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let h: i64 = tz.get(..2)?.parse().ok()?;
            let m: i64 = tz.get(2..)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    u64::try_from(secs.checked_mul(1000)?.checked_add(ms)?).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_producer_timestamps() {
        assert_eq!(parse_timestamp("1795320641.601"), Some(1_795_320_641_601));
        // The C producer's unpadded milliseconds read as a decimal, as KVS reads them.
        assert_eq!(parse_timestamp("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_timestamp("1700000000.05"), Some(1_700_000_000_050));
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_timestamp("1700000000."), Some(1_700_000_000_000));
        assert_eq!(parse_timestamp("1700000000.0015"), Some(1_700_000_000_002));
        assert_eq!(parse_timestamp("1.7e9"), Some(1_700_000_000_000));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-14T23:13:20.250+01:00"),
            Some(1_700_000_000_250)
        );
        assert_eq!(parse_timestamp("1970-01-01 00:00:00.5"), Some(500));
        for bad in [
            "",
            "abc",
            "-5",
            "1e30",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20X",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
