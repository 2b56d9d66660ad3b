//! UTC timestamps as RFC 3339 text and back, for `%t`, `--json` and `time:` positions (a date
//! library would be one more dependency for two small functions).

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `2026-12-01T23:33:52.123Z` for milliseconds since the Unix epoch.
pub fn rfc3339(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Milliseconds since the Unix epoch for `YYYY-MM-DD[THH:MM[:SS[.fff]]][Z|±HH:MM]` (UTC when no
/// zone is given) or for a plain number of milliseconds.
pub fn parse(text: &str) -> Option<i64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let (y, m, d) = (
        num(parts.next()?)?,
        num(parts.next()?)?,
        num(parts.next()?)?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if let Some(t) = time {
        let (clock, zone) = match t.find(['Z', 'z', '+', '-']) {
            Some(i) => t.split_at(i),
            None => (t, ""),
        };
        let (hms, frac) = match clock.split_once('.') {
            Some((a, f)) => (a, Some(f)),
            None => (clock, None),
        };
        let mut hms = hms.split(':');
        let h = num(hms.next()?)?;
        let min = num(hms.next()?)?;
        let s = hms.next().map(num).unwrap_or(Some(0))?;
        if hms.next().is_some() || h > 23 || min > 59 || s > 60 {
            return None;
        }
        ms += (h * 3600 + min * 60 + s) * 1000;
        if let Some(f) = frac {
            if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits: String = f.chars().chain("000".chars()).take(3).collect();
            ms += digits.parse::<i64>().ok()?;
        }
        match zone {
            "" | "Z" | "z" => {}
            z => {
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let (zh, zm) = z[1..].split_once(':').unwrap_or((&z[1..], "00"));
                let (zh, zm) = (num(zh)?, num(zm)?);
                if zh > 23 || zm > 59 {
                    return None;
                }
                ms -= sign * (zh * 3600 + zm * 60) * 1000;
            }
        }
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_zones() {
        for ms in [0, 1, 951_782_400_000, 1_796_151_003_585, -86_400_001] {
            assert_eq!(parse(&rfc3339(ms)), Some(ms), "{}", rfc3339(ms));
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse("2000-02-29"), Some(951_782_400_000));
        assert_eq!(parse("2000-02-29T01:00+01:00"), Some(951_782_400_000));
        assert_eq!(parse("1796151003585"), Some(1_796_151_003_585));
        for bad in [
            "",
            "2000-13-01",
            "2000-01-01T25:00",
            "yesterday",
            "2000-01-01T00:00:00.x",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
