//! CF time coordinates: `units = "<unit> since <date>"` and the `calendar`
//! attribute (CF Conventions §4.4).
//!
//! Dates in the model calendars (`noleap`, `all_leap`, `360_day`) are
//! labels, not instants: they are computed in their own calendar and kept
//! when the label is also a Gregorian date (Feb 30 of a `360_day` year is
//! not, and is refused). `julian` dates name real days and are converted to
//! the proleptic Gregorian calendar STAC uses. A value that cannot be
//! decoded exactly is an error with the reason, never an approximate date.
//!
//! Written here because no crate on crates.io decodes CF calendars without
//! a C library (`cftime` is Python, `udunits` is C).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// The calendars of CF §4.4.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Calendar {
    /// `standard` / `gregorian`: Julian before 1582-10-15, Gregorian after.
    Standard,
    /// `proleptic_gregorian`.
    ProlepticGregorian,
    /// `noleap` / `365_day`.
    NoLeap,
    /// `all_leap` / `366_day`.
    AllLeap,
    /// `360_day`: twelve months of 30 days.
    Day360,
    /// `julian`.
    Julian,
}

impl Calendar {
    fn parse(name: Option<&str>) -> Result<Self, String> {
        let Some(name) = name else {
            return Ok(Self::Standard);
        };
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "" | "standard" | "gregorian" => Self::Standard,
            "proleptic_gregorian" => Self::ProlepticGregorian,
            "noleap" | "365_day" => Self::NoLeap,
            "all_leap" | "366_day" => Self::AllLeap,
            "360_day" => Self::Day360,
            "julian" => Self::Julian,
            other => return Err(format!("calendar {other:?} is not one CF defines")),
        })
    }

    /// Days in each month of `year`, for the model calendars.
    fn month_lengths(self, year: i64) -> [i64; 12] {
        let feb = match self {
            Self::NoLeap => 28,
            Self::AllLeap => 29,
            Self::Day360 => return [30; 12],
            Self::Julian => {
                if year.rem_euclid(4) == 0 {
                    29
                } else {
                    28
                }
            }
            Self::Standard | Self::ProlepticGregorian => {
                if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                    29
                } else {
                    28
                }
            }
        };
        [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    }

    fn year_length(self) -> i64 {
        match self {
            Self::NoLeap => 365,
            Self::AllLeap => 366,
            _ => 360,
        }
    }
}

/// Seconds per unit, for the units that are exact in `calendar`.
fn unit_seconds(unit: &str, calendar: Calendar) -> Result<f64, String> {
    let day = 86_400.0;
    Ok(match unit.trim().to_ascii_lowercase().as_str() {
        "days" | "day" | "d" => day,
        "hours" | "hour" | "hr" | "h" => 3_600.0,
        "minutes" | "minute" | "min" | "mins" => 60.0,
        "seconds" | "second" | "sec" | "secs" | "s" => 1.0,
        "milliseconds" | "millisecond" | "ms" => 1e-3,
        "microseconds" | "microsecond" | "us" => 1e-6,
        "nanoseconds" | "nanosecond" | "ns" => 1e-9,
        u @ ("months" | "month") => match calendar {
            Calendar::Day360 => 30.0 * day,
            _ => {
                return Err(format!(
                    "`{u}` have no fixed length in the {calendar:?} calendar \
                     (UDUNITS counts 30.436875 days, not calendar months)"
                ));
            }
        },
        u @ ("years" | "year" | "yr" | "common_years" | "common_year") => match calendar {
            Calendar::Day360 | Calendar::NoLeap | Calendar::AllLeap => {
                calendar.year_length() as f64 * day
            }
            _ => {
                return Err(format!(
                    "`{u}` have no fixed length in the {calendar:?} calendar \
                     (UDUNITS counts 365.242198781 days, not calendar years)"
                ));
            }
        },
        other => return Err(format!("time unit {other:?} is not read")),
    })
}

/// The reference date of the units, as calendar fields (year, month, day,
/// seconds into the day). Fields are checked against `calendar`.
fn parse_since(since: &str, calendar: Calendar) -> Result<(i64, u32, u32, f64), String> {
    let s = since
        .trim()
        .trim_end_matches('Z')
        .trim_end_matches("UTC")
        .trim();
    let bad = || format!("reference date {since:?} is not read");
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, t.trim()),
        None => (s, ""),
    };
    let (neg, date) = match date.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, date),
    };
    let mut parts = date.split('-');
    let year: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let year = if neg { -year } else { year };
    let month: u32 = parts
        .next()
        .map_or(Some(1), |p| p.parse().ok())
        .ok_or_else(bad)?;
    let day: u32 = parts
        .next()
        .map_or(Some(1), |p| p.parse().ok())
        .ok_or_else(bad)?;
    if !(1..=12).contains(&month)
        || day < 1
        || i64::from(day) > calendar.month_lengths(year)[month as usize - 1]
    {
        return Err(format!(
            "reference date {since:?} is not a date of the {calendar:?} calendar"
        ));
    }
    // A time zone offset after the time is not read: refuse rather than guess.
    let time = time.split_whitespace().next().unwrap_or("");
    if time.contains(['+']) || time.rfind('-').is_some_and(|i| i > 0) {
        return Err(format!("reference date {since:?} has a time zone offset"));
    }
    let secs = if time.is_empty() {
        0.0
    } else {
        let mut f = time.split(':');
        let h: f64 = f.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let m: f64 = f
            .next()
            .map_or(Some(0.0), |p| p.parse().ok())
            .ok_or_else(bad)?;
        let sec: f64 = f
            .next()
            .map_or(Some(0.0), |p| p.parse().ok())
            .ok_or_else(bad)?;
        if !(0.0..24.0).contains(&h) || !(0.0..60.0).contains(&m) || !(0.0..61.0).contains(&sec) {
            return Err(bad());
        }
        h * 3_600.0 + m * 60.0 + sec
    };
    Ok((year, month, day, secs))
}

/// Day number of a date in a model calendar (fixed year length).
fn model_day(calendar: Calendar, y: i64, m: u32, d: u32) -> i64 {
    let before: i64 = calendar.month_lengths(y)[..m as usize - 1].iter().sum();
    y * calendar.year_length() + before + i64::from(d) - 1
}

/// The date of a day number in a model calendar.
fn model_date(calendar: Calendar, n: i64) -> (i64, u32, u32) {
    let len = calendar.year_length();
    let (y, mut rest) = (n.div_euclid(len), n.rem_euclid(len));
    let mut month = 1;
    for l in calendar.month_lengths(y) {
        if rest < l {
            break;
        }
        rest -= l;
        month += 1;
    }
    (y, month, u32::try_from(rest + 1).unwrap_or(1))
}

/// Julian Day Number of a Julian-calendar date.
fn julian_jdn(y: i64, m: u32, d: u32) -> i64 {
    let a = (14 - i64::from(m)) / 12;
    let y2 = y + 4800 - a;
    let m2 = i64::from(m) + 12 * a - 3;
    i64::from(d) + (153 * m2 + 2) / 5 + 365 * y2 + y2.div_euclid(4) - 32_083
}

/// Days from 0001-01-01 (CE day 1) to a Julian Day Number.
const JDN_OF_CE_DAY_0: i64 = 1_721_425;

fn gregorian(y: i64, m: u32, d: u32, calendar: Calendar) -> Result<NaiveDate, String> {
    i32::try_from(y)
        .ok()
        .and_then(|y| NaiveDate::from_ymd_opt(y, m, d))
        .ok_or_else(|| {
            format!("{y:04}-{m:02}-{d:02} of the {calendar:?} calendar is not a Gregorian date")
        })
}

/// A CF time value as an instant, or why it cannot be decoded exactly.
pub(crate) fn decode(
    value: f64,
    units: &str,
    calendar: Option<&str>,
) -> Result<DateTime<Utc>, String> {
    let calendar = Calendar::parse(calendar)?;
    let (unit, since) = units
        .split_once(" since ")
        .ok_or_else(|| format!("time units {units:?} are not `<unit> since <date>`"))?;
    let offset = value * unit_seconds(unit, calendar)?;
    if !offset.is_finite() || offset.abs() > 1.0e13 {
        return Err(format!("time value {value} is out of range"));
    }
    let (y, m, d, secs) = parse_since(since, calendar)?;
    // Milliseconds from the reference date's midnight.
    #[expect(clippy::cast_possible_truncation, reason = "bounded above")]
    let ms = ((secs + offset) * 1_000.0).round() as i64;
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let date = match calendar {
        Calendar::ProlepticGregorian | Calendar::Standard => {
            let base = gregorian(y, m, d, calendar)?;
            let cutover = NaiveDate::from_ymd_opt(1582, 10, 15).unwrap_or(NaiveDate::MIN);
            if calendar == Calendar::Standard && base < cutover {
                return Err(format!(
                    "reference date {since:?} lies before 1582-10-15, where the standard \
                     calendar is Julian: not read"
                ));
            }
            base.checked_add_signed(chrono::Duration::days(days))
                .ok_or_else(|| format!("time value {value} is out of range"))?
        }
        Calendar::Julian => {
            let ce = julian_jdn(y, m, d) + days - JDN_OF_CE_DAY_0;
            i32::try_from(ce)
                .ok()
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(|| format!("time value {value} is out of range"))?
        }
        Calendar::NoLeap | Calendar::AllLeap | Calendar::Day360 => {
            let (y, m, d) = model_date(calendar, model_day(calendar, y, m, d) + days);
            gregorian(y, m, d, calendar)?
        }
    };
    let time = NaiveTime::from_num_seconds_from_midnight_opt(
        u32::try_from(ms_of_day / 1_000).unwrap_or(0),
        u32::try_from(ms_of_day % 1_000).unwrap_or(0) * 1_000_000,
    )
    .unwrap_or(NaiveTime::MIN);
    Ok(Utc.from_utc_datetime(&NaiveDateTime::new(date, time)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(value: f64, units: &str, calendar: Option<&str>) -> String {
        decode(value, units, calendar).unwrap().to_rfc3339()
    }

    #[test]
    fn standard_units() {
        assert_eq!(
            at(1.5, "days since 2020-01-01", None),
            "2020-01-02T12:00:00+00:00"
        );
        assert_eq!(
            at(
                3600.0,
                "seconds since 2020-01-01 00:00:00",
                Some("gregorian")
            ),
            "2020-01-01T01:00:00+00:00"
        );
        assert_eq!(
            at(
                6.0,
                "hours since 1900-01-01T00:00:00Z",
                Some("proleptic_gregorian")
            ),
            "1900-01-01T06:00:00+00:00"
        );
        assert!(decode(1.0, "fortnights since 2020-01-01", None).is_err());
    }

    #[test]
    fn noleap_years_have_no_february_29() {
        // 2020 is a leap year in Gregorian, not in noleap: day 59 is 1 March.
        assert_eq!(
            at(59.0, "days since 2020-01-01", Some("noleap")),
            "2020-03-01T00:00:00+00:00"
        );
        assert_eq!(
            at(59.0, "days since 2020-01-01", None),
            "2020-02-29T00:00:00+00:00"
        );
        assert_eq!(
            at(365.0, "days since 2020-01-01", Some("365_day")),
            "2021-01-01T00:00:00+00:00"
        );
        assert_eq!(
            at(2.0, "years since 2000-01-01", Some("noleap")),
            "2002-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn all_leap_and_360_day() {
        assert_eq!(
            at(365.0, "days since 2021-01-01", Some("all_leap")),
            "2021-12-31T00:00:00+00:00"
        );
        // Feb 29 of 2021 exists in all_leap only: refused, not shifted.
        let e = decode(59.0, "days since 2021-01-01", Some("366_day")).unwrap_err();
        assert!(e.contains("not a Gregorian date"), "{e}");
        assert_eq!(
            at(30.0, "days since 2000-01-01", Some("360_day")),
            "2000-02-01T00:00:00+00:00"
        );
        assert_eq!(
            at(360.0, "days since 2000-01-01", Some("360_day")),
            "2001-01-01T00:00:00+00:00"
        );
        assert_eq!(
            at(14.0, "months since 2000-01-01", Some("360_day")),
            "2001-03-01T00:00:00+00:00"
        );
        let e = decode(59.0, "days since 2000-01-01", Some("360_day")).unwrap_err();
        assert!(e.contains("2000-02-30"), "{e}");
    }

    #[test]
    fn julian_dates_are_converted_to_gregorian() {
        // Julian 2000-01-01 is Gregorian 2000-01-14.
        assert_eq!(
            at(0.0, "days since 2000-01-01", Some("julian")),
            "2000-01-14T00:00:00+00:00"
        );
        assert_eq!(
            at(1.25, "days since 1900-02-28", Some("julian")),
            "1900-03-13T06:00:00+00:00"
        );
    }

    #[test]
    fn months_and_years_without_a_fixed_length_are_refused() {
        for cal in [None, Some("standard"), Some("noleap"), Some("julian")] {
            let e = decode(3.0, "months since 2000-01-01", cal).unwrap_err();
            assert!(e.contains("no fixed length"), "{e}");
        }
        assert!(decode(1.0, "years since 2000-01-01", Some("gregorian")).is_err());
        assert!(decode(1.0, "days since 2000-01-01", Some("martian")).is_err());
        assert!(decode(1.0, "days since 1500-01-01", Some("standard")).is_err());
    }
}
