//! Business hours: when the merchant's people are at work, in the merchant's timezone. Outside them a
//! shopper's first message of the day gets the away text, and shopping goes on.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDateTime, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

use crate::kernel::FieldError;

/// Opening ranges per weekday (`mon` .. `sun`), each `"HH:MM-HH:MM"` in local time; a day absent or
/// empty is closed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BusinessHours(BTreeMap<String, Vec<String>>);

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_key(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Minutes since midnight of `HH:MM` (`24:00` allowed, as an end).
fn minutes(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
}

fn range(text: &str) -> Option<(u32, u32)> {
    let (start, end) = text.split_once('-')?;
    let (start, end) = (minutes(start.trim())?, minutes(end.trim())?);
    (start < end).then_some((start, end))
}

impl BusinessHours {
    /// Validates the ranges of every day.
    pub fn parse(days: BTreeMap<String, Vec<String>>) -> Result<BusinessHours, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (day, ranges) in &days {
            if !DAYS.contains(&day.as_str()) {
                errors.push(FieldError::new(
                    format!("business_hours.{day}"),
                    "invalid_day",
                    "days are mon, tue, wed, thu, fri, sat, sun",
                ));
            }
            for (i, r) in ranges.iter().enumerate() {
                if range(r).is_none() {
                    errors.push(FieldError::new(
                        format!("business_hours.{day}[{i}]"),
                        "invalid_range",
                        "a range is HH:MM-HH:MM with the start before the end, such as 09:00-18:30",
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(BusinessHours(days))
        } else {
            Err(errors)
        }
    }

    /// Whether `at` (UTC) falls inside the hours, in `tz`.
    pub fn is_open(&self, tz: chrono_tz::Tz, at: NaiveDateTime) -> bool {
        let local = at.and_utc().with_timezone(&tz);
        let minute = local.time().signed_duration_since(NaiveTime::MIN).num_minutes();
        let minute = u32::try_from(minute).unwrap_or(0);
        self.0
            .get(day_key(local.weekday()))
            .into_iter()
            .flatten()
            .filter_map(|r| range(r))
            .any(|(start, end)| (start..end).contains(&minute))
    }

    /// The local date of `at` in `tz` (the day an away text counts for).
    pub fn local_date(tz: chrono_tz::Tz, at: NaiveDateTime) -> String {
        at.and_utc().with_timezone(&tz).date_naive().to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hours(pairs: &[(&str, &[&str])]) -> BusinessHours {
        BusinessHours::parse(
            pairs
                .iter()
                .map(|(d, r)| (d.to_string(), r.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
        .unwrap()
    }

    fn utc(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    #[test]
    fn hours_are_read_in_the_merchants_timezone_across_daylight_saving() {
        let h = hours(&[("mon", &["09:00-18:00"]), ("sun", &["10:00-12:00"])]);
        let paris = chrono_tz::Europe::Paris;
        // Winter (UTC+1): Monday 2026-12-07 08:30 UTC is 09:30 in Paris.
        assert!(h.is_open(paris, utc("2026-12-07 08:30")));
        assert!(!h.is_open(paris, utc("2026-12-07 07:30")));
        // Summer (UTC+2): Monday 2026-07-06 07:30 UTC is 09:30 in Paris.
        assert!(h.is_open(paris, utc("2026-07-06 07:30")));
        assert!(!h.is_open(paris, utc("2026-07-06 16:30")));
        // The day DST ends (Sunday 2026-10-25): 09:30 UTC is 10:30 in Paris.
        assert!(h.is_open(paris, utc("2026-10-25 09:30")));
        // The Monday after (UTC+1 again): 08:30 UTC is 09:30 in Paris.
        assert!(h.is_open(paris, utc("2026-10-26 08:30")));
    }

    #[test]
    fn a_closed_day_and_the_end_of_a_range_are_closed() {
        let h = hours(&[("tue", &["09:00-12:00", "14:00-24:00"])]);
        let utc_tz = chrono_tz::UTC;
        assert!(!h.is_open(utc_tz, utc("2026-12-08 12:00")));
        assert!(h.is_open(utc_tz, utc("2026-12-08 23:59")));
        assert!(!h.is_open(utc_tz, utc("2026-12-09 10:00")), "wednesday is closed");
    }

    #[test]
    fn bad_days_and_ranges_are_refused_with_their_field() {
        let errors = BusinessHours::parse(
            [
                ("monday".to_string(), vec!["09:00-18:00".to_string()]),
                (
                    "tue".to_string(),
                    vec!["18:00-09:00".to_string(), "9-5".to_string()],
                ),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "business_hours.monday",
                "business_hours.tue[0]",
                "business_hours.tue[1]"
            ]
        );
    }
}
