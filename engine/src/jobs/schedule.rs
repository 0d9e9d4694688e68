//! When jobs and monitors run: cron expressions (parsed by `croner`, a
//! maintained POSIX/Vixie cron parser) and fixed intervals.
//!
//! Cron times are evaluated in UTC. An interval schedule runs the job that
//! long after the previous run started; a scheduler that fell behind (a
//! stopped server) runs a job once when it comes back, never a burst of
//! missed runs.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};

use crate::error::{Error, Result};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A cron expression.
    Cron(Box<croner::Cron>),
    /// A fixed interval.
    Every(Duration),
}

const ALIASES: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

impl Schedule {
    /// `SCHEDULE 'cron'`: five fields (minute, hour, day of month, month,
    /// day of week) or an alias such as `@hourly`.
    pub fn cron(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let lower = trimmed.to_lowercase();
        let pattern = ALIASES
            .iter()
            .find(|(alias, _)| *alias == lower)
            .map_or(trimmed, |(_, p)| *p);
        if pattern.split_whitespace().count() != 5 {
            return Err(Error::invalid(format!(
                "invalid cron schedule '{text}': expected five fields (minute hour day-of-month month day-of-week), such as '*/5 * * * *', or an alias such as '@hourly'"
            )));
        }
        let cron = croner::Cron::from_str(pattern)
            .map_err(|e| Error::invalid(format!("invalid cron schedule '{text}': {e}")))?;
        Ok(Schedule::Cron(Box::new(cron)))
    }

    /// `EVERY 'interval'`.
    pub fn every(text: &str) -> Result<Self> {
        Ok(Schedule::Every(parse_interval(text)?))
    }

    /// A monitor's schedule: a cron expression, an alias, or an interval
    /// (`15 minutes`, `every 1 hour`).
    pub fn any(text: &str) -> Result<Self> {
        let lower = text.trim().to_lowercase();
        let interval = lower.strip_prefix("every ").unwrap_or(&lower);
        if let Ok(d) = parse_interval(interval) {
            return Ok(Schedule::Every(d));
        }
        Self::cron(text).map_err(|_| {
            Error::invalid(format!(
                "invalid schedule '{text}': expected a cron expression ('*/15 * * * *'), a cron alias ('@hourly', '@daily') or an interval ('15 minutes', '1 hour')"
            ))
        })
    }

    /// The first time after `after` the schedule fires.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every(d) => {
                after + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX)
            }
            // Cron times are whole seconds.
            Schedule::Cron(c) => c
                .find_next_occurrence(&after.with_nanosecond(0).unwrap_or(after), false)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// Parses an interval: a positive number and a unit (`500 milliseconds`,
/// `1 second`, `5 min`, `2 hours`, `1 day`, `1 week`), or a compact form
/// (`10s`, `5m`, `1h`).
pub fn parse_interval(text: &str) -> Result<Duration> {
    let bad = || {
        Error::invalid(format!(
            "invalid interval '{text}': expected a positive number and a unit, such as '1 second', '5 minutes', '2 hours' or '1 day'"
        ))
    };
    let t = text.trim().to_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let seconds = match unit {
        "ms" | "millisecond" | "milliseconds" => 0.001,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        _ => return Err(bad()),
    };
    let total = n * seconds;
    if !(total.is_finite() && total > 0.0 && total < 1e10) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1 second").unwrap(), Duration::from_secs(1));
        assert_eq!(
            parse_interval("5 minutes").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(parse_interval("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(
            parse_interval("500 ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_interval("1.5 hours").unwrap(),
            Duration::from_secs(5400)
        );
        for bad in ["", "soon", "0 seconds", "5", "1 fortnight", "-1 second"] {
            let e = parse_interval(bad).unwrap_err().to_string();
            assert!(e.contains("invalid interval"), "{bad}: {e}");
        }
    }

    #[test]
    fn cron_and_intervals_fire_when_expected() {
        let t = Utc.with_ymd_and_hms(2026, 11, 27, 10, 7, 30).unwrap()
            + chrono::Duration::milliseconds(250);
        let every = Schedule::cron("*/5 * * * *").unwrap();
        assert_eq!(
            every.next_after(t),
            Utc.with_ymd_and_hms(2026, 11, 27, 10, 10, 0).unwrap()
        );
        let hourly = Schedule::cron("@hourly").unwrap();
        assert_eq!(
            hourly.next_after(t),
            Utc.with_ymd_and_hms(2026, 11, 27, 11, 0, 0).unwrap()
        );
        let weekdays = Schedule::cron("0 6 * * 1-5").unwrap();
        // 2026-11-27 is a Friday: the next weekday 06:00 is Monday.
        assert_eq!(
            weekdays.next_after(t),
            Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap()
        );
        let interval = Schedule::every("90 seconds").unwrap();
        // Intervals keep the start's fraction; cron times do not.
        assert_eq!(interval.next_after(t), t + chrono::Duration::seconds(90));
        for bad in ["* * *", "61 * * * *", "soon", ""] {
            let e = Schedule::cron(bad).unwrap_err().to_string();
            assert!(e.contains("invalid cron schedule"), "{bad}: {e}");
        }
        for ok in ["@daily", "15 minutes", "every 1 hour", "0 6 * * 1-5"] {
            Schedule::any(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let e = Schedule::any("1 fortnight").unwrap_err().to_string();
        assert!(e.contains("invalid schedule"), "{e}");
    }
}
