//! A stay: an arrival date and a number of nights, counted by calendar date in the property's timezone.
//!
//! Nights are dates, not durations: a stay across a change to or from summer time still has as many
//! nights as dates between arrival and departure, though the hours between check-in and check-out differ.

use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};

/// The longest stay anyone can ask for, whatever the bookable allows.
pub const MAX_STAY_NIGHTS: u32 = 365;

/// Why dates do not make a stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StayError {
    /// Zero nights.
    #[error("a stay has at least one night")]
    NoNights,
    /// More than [`MAX_STAY_NIGHTS`].
    #[error("a stay has at most {MAX_STAY_NIGHTS} nights")]
    TooLong,
    /// The departure would fall outside the calendar.
    #[error("the dates are out of range")]
    OutOfRange,
}

/// An arrival date and at least one night.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StayDates {
    arrival: NaiveDate,
    nights: u32,
}

impl StayDates {
    /// A stay of `nights` nights from `arrival`.
    pub fn new(arrival: NaiveDate, nights: u32) -> Result<StayDates, StayError> {
        if nights == 0 {
            return Err(StayError::NoNights);
        }
        if nights > MAX_STAY_NIGHTS {
            return Err(StayError::TooLong);
        }
        arrival
            .checked_add_days(Days::new(u64::from(nights)))
            .ok_or(StayError::OutOfRange)?;
        Ok(StayDates { arrival, nights })
    }

    /// The stay from `arrival` to `departure` (the morning the guest leaves).
    pub fn between(arrival: NaiveDate, departure: NaiveDate) -> Result<StayDates, StayError> {
        let nights = (departure - arrival).num_days();
        if nights <= 0 {
            return Err(StayError::NoNights);
        }
        StayDates::new(arrival, u32::try_from(nights).map_err(|_| StayError::TooLong)?)
    }

    /// The date of the first night.
    pub fn arrival(&self) -> NaiveDate {
        self.arrival
    }

    /// How many nights.
    pub fn nights(&self) -> u32 {
        self.nights
    }

    /// The date the guest leaves (the day after the last night).
    pub fn departure(&self) -> NaiveDate {
        self.arrival + Days::new(u64::from(self.nights))
    }

    /// Every night of the stay, by the date of its evening.
    pub fn each_night(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        self.arrival.iter_days().take(self.nights as usize)
    }

    /// When the guest may arrive: `check_in` local time on the arrival date in `tz`.
    pub fn check_in_at(&self, tz: chrono_tz::Tz, check_in: NaiveTime) -> DateTime<Utc> {
        local_instant(tz, self.arrival, check_in)
    }

    /// When the guest must leave: `check_out` local time on the departure date in `tz`.
    pub fn check_out_at(&self, tz: chrono_tz::Tz, check_out: NaiveTime) -> DateTime<Utc> {
        local_instant(tz, self.departure(), check_out)
    }
}

/// `time` on `date` in `tz`, as UTC. A time skipped by a spring-forward change is read one hour later
/// (02:30 becomes 03:30); a time that happens twice in autumn is its first occurrence.
pub fn local_instant(tz: chrono_tz::Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    let resolved = tz.from_local_datetime(&local).earliest().or_else(|| {
        tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
    });
    match resolved {
        Some(at) => at.with_timezone(&Utc),
        // No timezone skips two hours; reading the time as UTC is the least wrong fallback.
        None => local.and_utc(),
    }
}

/// Today's date in `tz` at the UTC instant `at`.
pub fn local_today(tz: chrono_tz::Tz, at: chrono::NaiveDateTime) -> NaiveDate {
    at.and_utc().with_timezone(&tz).date_naive()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn time(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_stay_across_the_spring_change_counts_nights_by_date() {
        // Paris moves to summer time in the night of Saturday 28 to Sunday 29 March 2026.
        let stay = StayDates::new(date("2026-03-28"), 2).unwrap();
        let paris = chrono_tz::Europe::Paris;

        let check_in = stay.check_in_at(paris, time("15:00"));
        let check_out = stay.check_out_at(paris, time("11:00"));

        assert_eq!(stay.departure(), date("2026-03-30"));
        assert_eq!(
            stay.each_night().collect::<Vec<_>>(),
            vec![date("2026-03-28"), date("2026-03-29")]
        );
        assert_eq!(check_in, utc("2026-03-28T14:00:00Z"), "15:00 CET");
        assert_eq!(check_out, utc("2026-03-30T09:00:00Z"), "11:00 CEST");
        assert_eq!(
            (check_out - check_in).num_hours(),
            43,
            "an hour shorter, still two nights"
        );
    }

    #[test]
    fn a_stay_across_the_autumn_change_counts_nights_by_date() {
        // Paris goes back to winter time in the night of Saturday 24 to Sunday 25 October 2026.
        let stay = StayDates::between(date("2026-10-24"), date("2026-10-26")).unwrap();
        let paris = chrono_tz::Europe::Paris;

        let check_in = stay.check_in_at(paris, time("15:00"));
        let check_out = stay.check_out_at(paris, time("11:00"));

        assert_eq!(stay.nights(), 2);
        assert_eq!(check_in, utc("2026-10-24T13:00:00Z"), "15:00 CEST");
        assert_eq!(check_out, utc("2026-10-26T10:00:00Z"), "11:00 CET");
        assert_eq!(
            (check_out - check_in).num_hours(),
            45,
            "an hour longer, still two nights"
        );
    }

    #[test]
    fn a_time_skipped_by_the_spring_change_is_read_an_hour_later() {
        let at = local_instant(chrono_tz::Europe::Paris, date("2026-03-29"), time("02:30"));

        assert_eq!(at, utc("2026-03-29T01:30:00Z"), "03:30 CEST");
    }

    #[test]
    fn the_local_date_follows_the_property_timezone() {
        let late_evening_utc = date("2026-12-31").and_time(time("23:30"));

        assert_eq!(
            local_today(chrono_tz::Europe::Paris, late_evening_utc),
            date("2027-01-01")
        );
        assert_eq!(
            local_today(chrono_tz::America::New_York, late_evening_utc),
            date("2026-12-31")
        );
    }

    #[test]
    fn a_stay_has_between_one_and_the_maximum_nights() {
        assert_eq!(StayDates::new(date("2026-12-24"), 0), Err(StayError::NoNights));
        assert_eq!(
            StayDates::new(date("2026-12-24"), MAX_STAY_NIGHTS + 1),
            Err(StayError::TooLong)
        );
        assert_eq!(
            StayDates::between(date("2026-12-24"), date("2026-12-24")),
            Err(StayError::NoNights)
        );
        assert_eq!(StayDates::new(NaiveDate::MAX, 1), Err(StayError::OutOfRange));
    }
}
