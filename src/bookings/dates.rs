//! Dates as shoppers type them in a thread, in English or French: `2026-12-24`, `24/12`, `24/12/2026`,
//! `24 Dec`, `Dec 24`, `24 décembre`, `le 24 décembre`, `tomorrow`, `demain`, `today`, `aujourd'hui`.
//!
//! Pure: "today" is given (the property's local date), so the same text always means the same date.

use chrono::{Datelike, Days, NaiveDate};

/// How many years ahead a day and month without a year may land (29 February needs up to 8).
const YEARS_AHEAD: i32 = 8;

/// Month names and abbreviations, English and French, accents folded.
const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("jan", 1),
    ("janvier", 1),
    ("janv", 1),
    ("february", 2),
    ("feb", 2),
    ("fevrier", 2),
    ("fevr", 2),
    ("fev", 2),
    ("march", 3),
    ("mar", 3),
    ("mars", 3),
    ("april", 4),
    ("apr", 4),
    ("avril", 4),
    ("avr", 4),
    ("may", 5),
    ("mai", 5),
    ("june", 6),
    ("jun", 6),
    ("juin", 6),
    ("july", 7),
    ("jul", 7),
    ("juillet", 7),
    ("juil", 7),
    ("august", 8),
    ("aug", 8),
    ("aout", 8),
    ("september", 9),
    ("sep", 9),
    ("sept", 9),
    ("septembre", 9),
    ("october", 10),
    ("oct", 10),
    ("octobre", 10),
    ("november", 11),
    ("nov", 11),
    ("novembre", 11),
    ("december", 12),
    ("dec", 12),
    ("decembre", 12),
];

/// The date a shopper means by `text`, or `None` when it is not a date we read.
///
/// A day and month without a year is the next such date on or after `today`.
pub fn parse_date(text: &str, today: NaiveDate) -> Option<NaiveDate> {
    let text = normalize(text);
    let text = strip_article(&text);
    relative(text, today)
        .or_else(|| iso(text))
        .or_else(|| numeric(text, today))
        .or_else(|| named_month(text, today))
}

/// Lower case, accents folded, typographic apostrophes made plain, trailing punctuation dropped.
fn normalize(text: &str) -> String {
    let folded: String = text
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'à' | 'â' => 'a',
            'û' | 'ù' => 'u',
            'ô' => 'o',
            'î' | 'ï' => 'i',
            'ç' => 'c',
            '’' | '`' => '\'',
            other => other,
        })
        .collect();
    folded.trim_end_matches(['.', '!', '?', ' ']).replace(',', " ")
}

fn strip_article(text: &str) -> &str {
    ["le ", "the ", "on "]
        .iter()
        .find_map(|a| text.strip_prefix(a))
        .unwrap_or(text)
        .trim()
}

fn relative(text: &str, today: NaiveDate) -> Option<NaiveDate> {
    match text {
        "today" | "aujourd'hui" | "aujourdhui" => Some(today),
        "tomorrow" | "demain" => today.checked_add_days(Days::new(1)),
        "after tomorrow" | "the day after tomorrow" | "apres-demain" | "apres demain" => {
            today.checked_add_days(Days::new(2))
        }
        _ => None,
    }
}

fn iso(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// `24/12`, `24/12/2026`, `24/12/26` (also with `.` or `-` between the parts): day first, as written in
/// France and most of Europe.
fn numeric(text: &str, today: NaiveDate) -> Option<NaiveDate> {
    let parts: Vec<&str> = text.split(['/', '.', '-']).collect();
    let number = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match parts.as_slice() {
        [d, m] => next_on_or_after(number(d)?, number(m)?, today),
        [d, m, y] => NaiveDate::from_ymd_opt(full_year(number(y)?)?, number(m)?, number(d)?),
        _ => None,
    }
}

/// `2026`, or `26` for 2026.
fn full_year(y: u32) -> Option<i32> {
    let y = i32::try_from(y).ok()?;
    match y {
        0..=99 => Some(2000 + y),
        1000..=9999 => Some(y),
        _ => None,
    }
}

/// `24 Dec`, `24th December 2026`, `1er janvier`, `Dec 24`, `December 24, 2026`.
fn named_month(text: &str, today: NaiveDate) -> Option<NaiveDate> {
    let words: Vec<&str> = text.split_whitespace().filter(|w| *w != "of").collect();
    let (day, month, year) = match words.as_slice() {
        [a, b] => day_month(a, b)
            .or_else(|| day_month(b, a))
            .map(|(d, m)| (d, m, None))?,
        [a, b, y] => {
            let (d, m) = day_month(a, b).or_else(|| day_month(b, a))?;
            (d, m, Some(full_year(y.parse().ok()?)?))
        }
        _ => return None,
    };
    match year {
        Some(y) => NaiveDate::from_ymd_opt(y, month, day),
        None => next_on_or_after(day, month, today),
    }
}

/// The day number of `day` (`24`, `24th`, `1st`, `1er`) and the month named by `month`.
fn day_month(day: &str, month: &str) -> Option<(u32, u32)> {
    let digits = day.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &day[digits.len()..];
    if digits.is_empty() || !["", "st", "nd", "rd", "th", "er"].contains(&suffix) {
        return None;
    }
    let day: u32 = digits.parse().ok()?;
    let month = month_number(month)?;
    Some((day, month))
}

fn month_number(word: &str) -> Option<u32> {
    MONTHS.iter().find(|(name, _)| *name == word).map(|(_, m)| *m)
}

/// The first `day`/`month` on or after `today` (29 February waits for a leap year).
fn next_on_or_after(day: u32, month: u32, today: NaiveDate) -> Option<NaiveDate> {
    (today.year()..=today.year() + YEARS_AHEAD)
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .find(|d| *d >= today)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// A Wednesday in late November.
    fn today() -> NaiveDate {
        date("2026-11-25")
    }

    fn parses(text: &str, expected: &str) {
        assert_eq!(parse_date(text, today()), Some(date(expected)), "{text}");
    }

    #[test]
    fn an_iso_date_is_read_as_written() {
        parses("2026-12-24", "2026-12-24");
        parses("2027-01-05", "2027-01-05");
    }

    #[test]
    fn day_slash_month_is_the_next_such_date() {
        parses("24/12", "2026-12-24");
        parses("3/1", "2027-01-03");
        parses("25/11", "2026-11-25");
        parses("24.12", "2026-12-24");
    }

    #[test]
    fn day_slash_month_slash_year_is_read_day_first() {
        parses("24/12/2026", "2026-12-24");
        parses("05/01/27", "2027-01-05");
    }

    #[test]
    fn english_month_names_are_read_before_or_after_the_day() {
        parses("24 Dec", "2026-12-24");
        parses("Dec 24", "2026-12-24");
        parses("24 December", "2026-12-24");
        parses("December 24, 2027", "2027-12-24");
        parses("the 1st of January", "2027-01-01");
    }

    #[test]
    fn french_month_names_are_read_with_or_without_accents_and_article() {
        parses("24 décembre", "2026-12-24");
        parses("24 decembre", "2026-12-24");
        parses("le 24 décembre", "2026-12-24");
        parses("Le 1er janvier", "2027-01-01");
        parses("14 février 2027", "2027-02-14");
        parses("15 août", "2027-08-15");
        parses("2 mai", "2027-05-02");
    }

    #[test]
    fn tomorrow_and_today_are_read_in_both_languages() {
        parses("tomorrow", "2026-11-26");
        parses("Demain", "2026-11-26");
        parses("today", "2026-11-25");
        parses("aujourd'hui", "2026-11-25");
        parses("Aujourd’hui !", "2026-11-25");
    }

    #[test]
    fn a_date_earlier_this_year_means_next_year() {
        parses("1 March", "2027-03-01");
        parses("24 nov", "2027-11-24");
    }

    #[test]
    fn the_twenty_ninth_of_february_waits_for_a_leap_year() {
        parses("29/02", "2028-02-29");
    }

    #[test]
    fn impossible_or_unknown_text_is_not_a_date() {
        for text in [
            "",
            "hello",
            "31/02/2027",
            "32/12",
            "24/13",
            "24 Decembrish",
            "next week",
            "2026-13-01",
            "24",
            "Dec",
            "24 12 2026 extra",
        ] {
            assert_eq!(parse_date(text, today()), None, "{text}");
        }
    }
}
