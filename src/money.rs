//! Money as integer minor units plus an ISO 4217 currency, so that prices and totals are exact.
//! Floats never appear: amounts cross the API edge as decimal strings or `rust_decimal::Decimal`.

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest piece of caller input echoed back inside an error message.
const MAX_ECHOED_CHARS: usize = 64;

/// Serde error for an `amount` given as a JSON number instead of a string.
const AMOUNT_MUST_BE_STRING: &str = "amount must be a decimal string such as \"49.90\"";

/// An ISO 4217 currency with its minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    /// Upper-case ISO 4217 alphabetic code.
    code: &'static str,
    /// Decimals in the minor unit.
    exponent: u32,
}

/// Builds one table row.
const fn cur(code: &'static str, exponent: u32) -> Currency {
    Currency { code, exponent }
}

/// Every active ISO 4217 code that has a minor unit, sorted by code.
///
/// Left out on purpose: codes whose minor unit ISO gives as "N.A." (XAU, XAG, XPT, XPD, XDR,
/// XSU, XUA, XBA..XBD, XTS, XXX) and withdrawn codes (HRK, SLL, ZWL, ANG, ...).
const CURRENCY_TABLE: &[Currency] = &[
    cur("AED", 2),
    cur("AFN", 2),
    cur("ALL", 2),
    cur("AMD", 2),
    cur("AOA", 2),
    cur("ARS", 2),
    cur("AUD", 2),
    cur("AWG", 2),
    cur("AZN", 2),
    cur("BAM", 2),
    cur("BBD", 2),
    cur("BDT", 2),
    cur("BGN", 2),
    cur("BHD", 3),
    cur("BIF", 0),
    cur("BMD", 2),
    cur("BND", 2),
    cur("BOB", 2),
    cur("BOV", 2),
    cur("BRL", 2),
    cur("BSD", 2),
    cur("BTN", 2),
    cur("BWP", 2),
    cur("BYN", 2),
    cur("BZD", 2),
    cur("CAD", 2),
    cur("CDF", 2),
    cur("CHE", 2),
    cur("CHF", 2),
    cur("CHW", 2),
    cur("CLF", 4),
    cur("CLP", 0),
    cur("CNY", 2),
    cur("COP", 2),
    cur("COU", 2),
    cur("CRC", 2),
    cur("CUC", 2),
    cur("CUP", 2),
    cur("CVE", 2),
    cur("CZK", 2),
    cur("DJF", 0),
    cur("DKK", 2),
    cur("DOP", 2),
    cur("DZD", 2),
    cur("EGP", 2),
    cur("ERN", 2),
    cur("ETB", 2),
    cur("EUR", 2),
    cur("FJD", 2),
    cur("FKP", 2),
    cur("GBP", 2),
    cur("GEL", 2),
    cur("GHS", 2),
    cur("GIP", 2),
    cur("GMD", 2),
    cur("GNF", 0),
    cur("GTQ", 2),
    cur("GYD", 2),
    cur("HKD", 2),
    cur("HNL", 2),
    cur("HTG", 2),
    cur("HUF", 2),
    cur("IDR", 2),
    cur("ILS", 2),
    cur("INR", 2),
    cur("IQD", 3),
    cur("IRR", 2),
    cur("ISK", 0),
    cur("JMD", 2),
    cur("JOD", 3),
    cur("JPY", 0),
    cur("KES", 2),
    cur("KGS", 2),
    cur("KHR", 2),
    cur("KMF", 0),
    cur("KPW", 2),
    cur("KRW", 0),
    cur("KWD", 3),
    cur("KYD", 2),
    cur("KZT", 2),
    cur("LAK", 2),
    cur("LBP", 2),
    cur("LKR", 2),
    cur("LRD", 2),
    cur("LSL", 2),
    cur("LYD", 3),
    cur("MAD", 2),
    cur("MDL", 2),
    cur("MGA", 2),
    cur("MKD", 2),
    cur("MMK", 2),
    cur("MNT", 2),
    cur("MOP", 2),
    cur("MRU", 2),
    cur("MUR", 2),
    cur("MVR", 2),
    cur("MWK", 2),
    cur("MXN", 2),
    cur("MXV", 2),
    cur("MYR", 2),
    cur("MZN", 2),
    cur("NAD", 2),
    cur("NGN", 2),
    cur("NIO", 2),
    cur("NOK", 2),
    cur("NPR", 2),
    cur("NZD", 2),
    cur("OMR", 3),
    cur("PAB", 2),
    cur("PEN", 2),
    cur("PGK", 2),
    cur("PHP", 2),
    cur("PKR", 2),
    cur("PLN", 2),
    cur("PYG", 0),
    cur("QAR", 2),
    cur("RON", 2),
    cur("RSD", 2),
    cur("RUB", 2),
    cur("RWF", 0),
    cur("SAR", 2),
    cur("SBD", 2),
    cur("SCR", 2),
    cur("SDG", 2),
    cur("SEK", 2),
    cur("SGD", 2),
    cur("SHP", 2),
    cur("SLE", 2),
    cur("SOS", 2),
    cur("SRD", 2),
    cur("SSP", 2),
    cur("STN", 2),
    cur("SVC", 2),
    cur("SYP", 2),
    cur("SZL", 2),
    cur("THB", 2),
    cur("TJS", 2),
    cur("TMT", 2),
    cur("TND", 3),
    cur("TOP", 2),
    cur("TRY", 2),
    cur("TTD", 2),
    cur("TWD", 2),
    cur("TZS", 2),
    cur("UAH", 2),
    cur("UGX", 0),
    cur("USD", 2),
    cur("USN", 2),
    cur("UYI", 0),
    cur("UYU", 2),
    cur("UYW", 4),
    cur("UZS", 2),
    cur("VED", 2),
    cur("VES", 2),
    cur("VND", 0),
    cur("VUV", 0),
    cur("WST", 2),
    cur("XAF", 0),
    cur("XCD", 2),
    cur("XCG", 2),
    cur("XOF", 0),
    cur("XPF", 0),
    cur("YER", 2),
    cur("ZAR", 2),
    cur("ZMW", 2),
    cur("ZWG", 2),
];

/// The currency table that lookups binary-search.
static CURRENCIES: &[Currency] = CURRENCY_TABLE;

/// Largest exponent in the table; keeps `10^exponent` and `Decimal` scales trivially in range.
const MAX_EXPONENT: u32 = 4;

/// Whether `a` sorts strictly before `b` byte by byte.
const fn sorts_before(a: &[u8], b: &[u8]) -> bool {
    let (mut a, mut b) = (a, b);
    while let ([x, a_rest @ ..], [y, b_rest @ ..]) = (a, b) {
        if *x != *y {
            return *x < *y;
        }
        a = a_rest;
        b = b_rest;
    }
    a.is_empty() && !b.is_empty()
}

/// Whether a code is exactly three ASCII capital letters.
const fn is_iso_code(code: &[u8]) -> bool {
    matches!(code, [a, b, c] if a.is_ascii_uppercase() && b.is_ascii_uppercase() && c.is_ascii_uppercase())
}

/// Whether the table is strictly sorted, well formed and within `MAX_EXPONENT`.
const fn table_is_valid(table: &[Currency]) -> bool {
    let mut rest = table;
    while let [first, tail @ ..] = rest {
        if !is_iso_code(first.code.as_bytes()) || first.exponent > MAX_EXPONENT {
            return false;
        }
        if let [second, ..] = tail
            && !sorts_before(first.code.as_bytes(), second.code.as_bytes())
        {
            return false;
        }
        rest = tail;
    }
    true
}

// Checked at compile time: binary search needs a sorted table, and the arithmetic below relies on
// exponents of at most `MAX_EXPONENT`.
const _: () = assert!(table_is_valid(CURRENCY_TABLE));

impl Currency {
    /// Looks up an ISO 4217 code, ignoring case and surrounding whitespace.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        let trimmed = code.trim();
        let unknown = || MoneyError::UnknownCurrency(echo(trimmed));
        let upper = match trimmed.as_bytes() {
            [a, b, c] => [
                a.to_ascii_uppercase(),
                b.to_ascii_uppercase(),
                c.to_ascii_uppercase(),
            ],
            _ => return Err(unknown()),
        };
        let index = CURRENCIES
            .binary_search_by(|entry| entry.code.as_bytes().cmp(upper.as_slice()))
            .map_err(|_| unknown())?;
        CURRENCIES.get(index).copied().ok_or_else(unknown)
    }

    /// The upper-case ISO 4217 code, e.g. `"EUR"`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Number of decimals in the minor unit: EUR 2, JPY 0, KWD 3, CLF 4.
    pub fn exponent(&self) -> u32 {
        self.exponent
    }

    /// Every supported currency, sorted by code.
    pub fn all() -> &'static [Currency] {
        CURRENCIES
    }

    /// The largest amount, in minor units, a price or a total may reach: the most Stripe charges in one
    /// payment (stripe.md §3), 8 digits of Stripe's units for most currencies (`99999999`, 999,999.99
    /// EUR), 9 for INR and 12 for IDR. Stripe counts ISK and UGX with two decimals ISO does not have
    /// (so two digits fewer here), and MGA without its two ISO decimals (two more here).
    pub fn max_minor(&self) -> i64 {
        let stripe_digits = match self.code {
            "IDR" => 12,
            "INR" => 9,
            _ => 8,
        };
        let stripe_max = 10_i64.pow(stripe_digits) - 1;
        match self.code {
            "ISK" | "UGX" => stripe_max / 100,
            "MGA" => stripe_max * 100,
            _ => stripe_max,
        }
    }

    /// [`Self::max_minor`] as money.
    pub fn max_amount(&self) -> Money {
        Money::from_minor(self.max_minor(), *self)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl std::str::FromStr for Currency {
    type Err = MoneyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::parse(&code).map_err(de::Error::custom)
    }
}

/// An amount of money: minor units and currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    /// Amount in minor units (cents for EUR).
    minor: i64,
    /// Currency of the amount.
    currency: Currency,
}

/// A syntactically valid decimal string split into its parts (digits only, no sign).
struct DecimalParts<'a> {
    /// Whether a leading `-` was present.
    negative: bool,
    /// Digits before the point (never empty).
    integer: &'a str,
    /// Digits after the point (empty when there is no point).
    fraction: &'a str,
}

/// Splits `-?DIGITS(.DIGITS)?` into parts; `None` for anything else.
fn split_decimal(s: &str) -> Option<DecimalParts<'_>> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let (integer, fraction) = match body.split_once('.') {
        Some((integer, fraction)) if all_digits(fraction) => (integer, fraction),
        Some(_) => return None,
        None => (body, ""),
    };
    all_digits(integer).then_some(DecimalParts {
        negative,
        integer,
        fraction,
    })
}

/// Caller input shortened for an error message.
fn echo(input: &str) -> String {
    if input.chars().count() <= MAX_ECHOED_CHARS {
        input.to_owned()
    } else {
        let mut short: String = input.chars().take(MAX_ECHOED_CHARS).collect();
        short.push('…');
        short
    }
}

impl Money {
    /// Money from minor units (cents for EUR, yen for JPY).
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money::from_minor(0, currency)
    }

    /// The amount in minor units.
    pub fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency of the amount.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Parses a decimal string in major units ("49.90") exactly.
    ///
    /// Accepts an optional leading `-`, digits, and optionally `.` followed by digits; nothing
    /// else (no whitespace, `+`, exponent, grouping or bare `.`). Decimals beyond the currency's
    /// exponent are allowed only when they are zeros ("49.900" EUR is 4990 cents).
    pub fn parse_amount(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let parts = split_decimal(amount).ok_or_else(|| MoneyError::InvalidAmount(echo(amount)))?;
        let exponent = currency.exponent as usize;
        if parts.fraction.bytes().skip(exponent).any(|b| b != b'0') {
            return Err(MoneyError::TooManyDecimals {
                amount: echo(amount),
                currency: currency.code,
                exponent: currency.exponent,
            });
        }
        let padding = exponent.saturating_sub(parts.fraction.len());
        let digits = parts
            .integer
            .bytes()
            .chain(parts.fraction.bytes().take(exponent))
            .chain(std::iter::repeat_n(b'0', padding));
        // Magnitude of i64::MIN; anything larger cannot be represented with either sign.
        let limit = i128::from(i64::MAX) + 1;
        let mut magnitude: i128 = 0;
        for digit in digits {
            magnitude = magnitude * 10 + i128::from(digit - b'0');
            if magnitude > limit {
                return Err(MoneyError::OutOfRange);
            }
        }
        let signed = if parts.negative { -magnitude } else { magnitude };
        let minor = i64::try_from(signed).map_err(|_| MoneyError::OutOfRange)?;
        Ok(Money::from_minor(minor, currency))
    }

    /// Like `parse_amount`, but rejects any leading `-` (even "-0.00") with `Negative`, and more than
    /// the currency's [`Currency::max_minor`] with `TooLarge`; for prices and every amount a merchant
    /// gives (a price larger than Stripe can charge could never be paid).
    pub fn parse_price(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let money = Money::parse_amount(amount, currency)?;
        if amount.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        money.within_max()
    }

    /// This amount, unless it is more than its currency's [`Currency::max_minor`] (`TooLarge`).
    pub fn within_max(self) -> Result<Money, MoneyError> {
        if self.minor > self.currency.max_minor() {
            return Err(MoneyError::TooLarge(self.currency.max_amount().to_string()));
        }
        Ok(self)
    }

    /// Parses a Meta catalog feed price "49.90 EUR": amount, one or more spaces, currency code.
    pub fn parse_feed_price(s: &str) -> Result<Money, MoneyError> {
        let invalid = || MoneyError::InvalidFeedPrice(echo(s));
        let (amount, code) = s.trim().split_once(' ').ok_or_else(invalid)?;
        let code = code.trim_start_matches(' ');
        if code.is_empty() || code.contains(char::is_whitespace) || split_decimal(amount).is_none() {
            return Err(invalid());
        }
        let currency = Currency::parse(code)?;
        Money::parse_price(amount, currency)
    }

    /// Major-unit decimal string with exactly `exponent` decimals: "59.90", "5990", "1.250", "-3.00".
    pub fn amount_string(&self) -> String {
        let exponent = self.currency.exponent;
        let sign = if self.minor < 0 { "-" } else { "" };
        let magnitude = self.minor.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{magnitude}");
        }
        let unit = 10_u64.pow(exponent);
        format!(
            "{sign}{}.{:0width$}",
            magnitude / unit,
            magnitude % unit,
            width = exponent as usize
        )
    }

    /// The amount as a `Decimal` in major units, with scale equal to the currency exponent.
    pub fn to_decimal(&self) -> Decimal {
        // Cannot panic: the compile-time table check keeps every exponent <= 4, far below the
        // maximum Decimal scale of 28.
        Decimal::new(self.minor, self.currency.exponent)
    }

    /// Fails with `CurrencyMismatch` unless both amounts share a currency.
    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(
                self.currency.code,
                other.currency.code,
            ))
        }
    }

    /// Sum of two amounts in the same currency; `CurrencyMismatch` or `OutOfRange` otherwise.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::OutOfRange)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// Difference of two amounts in the same currency; `CurrencyMismatch` or `OutOfRange` otherwise.
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::OutOfRange)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// This amount times `quantity`; `OutOfRange` on overflow.
    pub fn checked_mul(self, quantity: i64) -> Result<Money, MoneyError> {
        let minor = self.minor.checked_mul(quantity).ok_or(MoneyError::OutOfRange)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// `percent` % of this amount (20 means 20 %), rounded half away from zero to the minor unit.
    ///
    /// Exact for every `Decimal` percent in 0..=100; anything else is `InvalidPercent`.
    pub fn percent_of(self, percent: Decimal) -> Result<Money, MoneyError> {
        if percent < Decimal::ZERO || percent > Decimal::ONE_HUNDRED {
            return Err(MoneyError::InvalidPercent);
        }
        // percent / 100 == numerator / denominator, with numerator <= denominator < 2^100.
        let numerator = percent.mantissa().unsigned_abs();
        let denominator = 10_u128
            .checked_pow(percent.scale())
            .and_then(|power| power.checked_mul(100))
            .ok_or(MoneyError::InvalidPercent)?;
        let magnitude = mul_div_round_half_up(self.minor.unsigned_abs(), numerator, denominator)
            .ok_or(MoneyError::OutOfRange)?;
        let magnitude = i128::try_from(magnitude).map_err(|_| MoneyError::OutOfRange)?;
        let signed = if self.minor < 0 { -magnitude } else { magnitude };
        let minor = i64::try_from(signed).map_err(|_| MoneyError::OutOfRange)?;
        Ok(Money::from_minor(minor, self.currency))
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.minor < 0
    }
}

/// Exact `round(a * m / d)` with halves rounded up, via a 256-bit product and long division.
///
/// Returns `None` when `d` is zero or not below 2^127 (the remainder must be able to double).
fn mul_div_round_half_up(a: u64, m: u128, d: u128) -> Option<u128> {
    if d == 0 || d >= 1 << 127 {
        return None;
    }
    let a = u128::from(a);
    let m_low = m & u128::from(u64::MAX);
    let m_high = m >> 64;
    // Both partial products fit in u128 because each factor is below 2^64.
    let low_product = a * m_low;
    let high_product = a * m_high;
    let (low, carry) = low_product.overflowing_add(high_product << 64);
    let high = (high_product >> 64) + u128::from(carry);

    let mut quotient: u128 = 0;
    let mut remainder: u128 = 0;
    for bit in (0..256_u32).rev() {
        let next = if bit >= 128 {
            (high >> (bit - 128)) & 1
        } else {
            (low >> bit) & 1
        };
        remainder = (remainder << 1) | next;
        quotient = quotient.checked_mul(2)?;
        if remainder >= d {
            remainder -= d;
            quotient |= 1;
        }
    }
    if remainder >= d - remainder {
        quotient = quotient.checked_add(1)?;
    }
    Some(quotient)
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount_string(), self.currency.code)
    }
}

/// Money as it travels in JSON: {"amount": "59.90", "currency": "EUR"}.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MoneyDto {
    /// Major-unit decimal string such as "59.90"; JSON numbers are rejected.
    #[serde(deserialize_with = "deserialize_amount_string")]
    pub amount: String,
    /// ISO 4217 code such as "EUR".
    pub currency: String,
}

impl From<Money> for MoneyDto {
    fn from(money: Money) -> Self {
        MoneyDto {
            amount: money.amount_string(),
            currency: money.currency.code.to_owned(),
        }
    }
}

impl MoneyDto {
    /// Parses into `Money`, rejecting negative amounts (for prices).
    pub fn parse_price(&self) -> Result<Money, MoneyError> {
        Money::parse_price(&self.amount, Currency::parse(&self.currency)?)
    }

    /// Parses into `Money`, allowing negative amounts.
    pub fn parse_amount(&self) -> Result<Money, MoneyError> {
        Money::parse_amount(&self.amount, Currency::parse(&self.currency)?)
    }
}

/// Accepts only a string for `MoneyDto::amount`; a number would have passed through a float.
fn deserialize_amount_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(AmountStringVisitor)
}

/// Serde visitor behind `deserialize_amount_string`.
struct AmountStringVisitor;

impl Visitor<'_> for AmountStringVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal string such as \"49.90\"")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
        Ok(value.to_owned())
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<String, E> {
        Ok(value)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(E::custom(AMOUNT_MUST_BE_STRING))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(E::custom(AMOUNT_MUST_BE_STRING))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(E::custom(AMOUNT_MUST_BE_STRING))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<String, E> {
        Err(E::custom(AMOUNT_MUST_BE_STRING))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<String, E> {
        Err(E::custom(AMOUNT_MUST_BE_STRING))
    }
}

/// Why an amount, price or currency was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// The currency code is not in the ISO 4217 table.
    #[error("unknown currency `{0}`: expected an ISO 4217 code such as EUR")]
    UnknownCurrency(String),
    /// The amount has non-zero digits beyond the currency's minor unit.
    #[error("`{amount}` has more decimals than {currency} allows ({exponent})")]
    TooManyDecimals {
        /// The amount as given.
        amount: String,
        /// The currency code.
        currency: &'static str,
        /// Decimals the currency allows.
        exponent: u32,
    },
    /// The amount is not a plain decimal string.
    #[error("`{0}` is not a decimal amount such as \"49.90\"")]
    InvalidAmount(String),
    /// A price was negative.
    #[error("amount must not be negative")]
    Negative,
    /// The amount does not fit in i64 minor units.
    #[error("amount is out of range")]
    OutOfRange,
    /// More than Stripe charges in one payment in the currency (the maximum, written out).
    #[error("amount must be at most {0}, the most Stripe charges in one payment")]
    TooLarge(String),
    /// Two amounts in different currencies were combined.
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(&'static str, &'static str),
    /// A percent outside 0..=100.
    #[error("percent must be between 0 and 100")]
    InvalidPercent,
    /// A feed price not shaped like "49.90 EUR".
    #[error("`{0}` is not a price such as \"49.90 EUR\"")]
    InvalidFeedPrice(String),
}

impl MoneyError {
    /// Stable snake_case identifier for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::UnknownCurrency(_) => "unknown_currency",
            MoneyError::TooManyDecimals { .. } => "too_many_decimals",
            MoneyError::InvalidAmount(_) => "invalid_amount",
            MoneyError::Negative => "negative_amount",
            MoneyError::OutOfRange => "amount_out_of_range",
            MoneyError::TooLarge(_) => "amount_too_large",
            MoneyError::CurrencyMismatch(_, _) => "currency_mismatch",
            MoneyError::InvalidPercent => "invalid_percent",
            MoneyError::InvalidFeedPrice(_) => "invalid_feed_price",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn currency(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, currency("EUR"))
    }

    fn amount(s: &str, code: &str) -> Result<Money, MoneyError> {
        Money::parse_amount(s, currency(code))
    }

    fn pct(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    // ---- Currency -------------------------------------------------------------------------

    #[test]
    fn currency_parse_accepts_lower_case_and_surrounding_whitespace() {
        let euro = currency("EUR");
        assert_eq!(Currency::parse("eur"), Ok(euro));
        assert_eq!(Currency::parse("  Eur\n"), Ok(euro));
        assert_eq!("usd".parse::<Currency>().unwrap().code(), "USD");
        assert_eq!(euro.code(), "EUR");
        assert_eq!(euro.exponent(), 2);
    }

    #[test]
    fn currency_parse_rejects_unknown_codes_as_unknown_currency() {
        for code in ["", "EU", "EURO", "ABC", "E UR", "€", "ÉUR", "12 3"] {
            assert_eq!(
                Currency::parse(code),
                Err(MoneyError::UnknownCurrency(code.trim().to_owned())),
                "{code:?}"
            );
        }
        let error = Currency::parse(" abc ").unwrap_err();
        assert_eq!(error.code(), "unknown_currency");
        assert_eq!(
            error.to_string(),
            "unknown currency `abc`: expected an ISO 4217 code such as EUR"
        );
    }

    #[test]
    fn currency_table_leaves_out_codes_without_a_minor_unit_and_withdrawn_codes() {
        for code in [
            "XAU", "XAG", "XPT", "XPD", "XTS", "XXX", "XDR", "XSU", "XUA", "XBA", "XBB", "XBC", "XBD", "HRK",
            "SLL", "ZWL", "ANG", "VEF", "MRO", "STD",
        ] {
            assert!(Currency::parse(code).is_err(), "{code} should be unknown");
        }
    }

    #[test]
    fn currency_table_is_sorted_unique_upper_case_and_complete() {
        let all = Currency::all();
        assert!(all.windows(2).all(|pair| pair[0].code < pair[1].code));
        assert!(all.iter().all(|c| c.code.len() == 3
            && c.code.bytes().all(|b| b.is_ascii_uppercase())
            && c.exponent <= MAX_EXPONENT));
        assert_eq!(all.len(), 166);
        for code in [
            "CLF", "UYI", "UYW", "BOV", "COU", "MXV", "USN", "CHE", "CHW", "XAF", "XOF", "XPF", "XCD", "XCG",
            "SLE", "VED", "ZWG",
        ] {
            assert!(Currency::parse(code).is_ok(), "{code} should be known");
        }
    }

    #[test]
    fn currency_exponents_follow_iso_4217() {
        let zero = [
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
            "XAF", "XOF", "XPF",
        ];
        let three = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
        let four = ["CLF", "UYW"];
        for c in Currency::all() {
            let expected = if zero.contains(&c.code) {
                0
            } else if three.contains(&c.code) {
                3
            } else if four.contains(&c.code) {
                4
            } else {
                2
            };
            assert_eq!(c.exponent(), expected, "{}", c.code);
        }
        for code in zero.iter().chain(&three).chain(&four) {
            assert!(Currency::parse(code).is_ok(), "{code} missing from the table");
        }
    }

    #[test]
    fn currency_displays_and_serializes_as_its_code() {
        let yen = currency("jpy");
        assert_eq!(yen.to_string(), "JPY");
        assert_eq!(serde_json::to_string(&yen).unwrap(), "\"JPY\"");
    }

    #[test]
    fn currency_deserializes_case_insensitively_and_explains_unknown_codes() {
        let euro: Currency = serde_json::from_str("\"eur\"").unwrap();
        assert_eq!(euro, currency("EUR"));
        let error = serde_json::from_str::<Currency>("\"XAU\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown currency `XAU`"), "{error}");
        assert!(serde_json::from_str::<Currency>("978").is_err());
    }

    // ---- parse_amount ---------------------------------------------------------------------

    #[test]
    fn parse_amount_reads_major_units_into_minor_units() {
        assert_eq!(amount("49.90", "EUR"), Ok(eur(4990)));
        assert_eq!(amount("49.9", "EUR"), Ok(eur(4990)));
        assert_eq!(amount("49", "EUR"), Ok(eur(4900)));
        assert_eq!(amount("0.05", "EUR"), Ok(eur(5)));
        assert_eq!(amount("007.50", "EUR"), Ok(eur(750)));
        assert_eq!(amount("-3", "EUR"), Ok(eur(-300)));
        assert_eq!(amount("-0.00", "EUR"), Ok(eur(0)));
    }

    #[test]
    fn parse_amount_accepts_extra_decimals_when_they_are_zeros() {
        assert_eq!(amount("49.900", "EUR"), Ok(eur(4990)));
        assert_eq!(amount("49.90000000000000000000", "EUR"), Ok(eur(4990)));
        assert_eq!(
            amount("5990.00", "JPY"),
            Ok(Money::from_minor(5990, currency("JPY")))
        );
    }

    #[test]
    fn parse_amount_rejects_more_decimals_than_the_currency_allows() {
        let error = amount("49.999", "EUR").unwrap_err();
        assert_eq!(
            error,
            MoneyError::TooManyDecimals {
                amount: "49.999".to_owned(),
                currency: "EUR",
                exponent: 2
            }
        );
        assert_eq!(error.code(), "too_many_decimals");
        assert_eq!(
            error.to_string(),
            "`49.999` has more decimals than EUR allows (2)"
        );
        assert!(matches!(
            amount("49.9001", "EUR"),
            Err(MoneyError::TooManyDecimals { .. })
        ));
    }

    #[test]
    fn parse_amount_reads_yen_as_whole_units_and_rejects_yen_decimals() {
        let yen = currency("JPY");
        assert_eq!(amount("5990", "JPY"), Ok(Money::from_minor(5990, yen)));
        assert_eq!(
            amount("59.5", "JPY"),
            Err(MoneyError::TooManyDecimals {
                amount: "59.5".to_owned(),
                currency: "JPY",
                exponent: 0
            })
        );
    }

    #[test]
    fn parse_amount_reads_kuwaiti_dinar_with_three_decimals() {
        let dinar = currency("KWD");
        assert_eq!(amount("1.250", "KWD"), Ok(Money::from_minor(1250, dinar)));
        assert_eq!(amount("1.25", "KWD"), Ok(Money::from_minor(1250, dinar)));
        assert!(amount("1.2501", "KWD").is_err());
    }

    #[test]
    fn parse_amount_reads_unidad_de_fomento_with_four_decimals() {
        assert_eq!(
            amount("1.0001", "CLF"),
            Ok(Money::from_minor(10_001, currency("CLF")))
        );
    }

    #[test]
    fn parse_amount_rejects_anything_but_a_plain_decimal_as_invalid_amount() {
        for input in [
            "", " ", "49.90 ", " 49.90", "4 9.90", "49.\t90", "+1", "1e3", "1E3", "1,50", "1,000.00", "1.",
            ".5", "-", "-.5", "--1", "- 1", "1.2.3", "abc", "0x10", "1_000", "NaN", "inf", "١٢", "49.90EUR",
            "½",
        ] {
            assert_eq!(
                amount(input, "EUR"),
                Err(MoneyError::InvalidAmount(input.to_owned())),
                "{input:?}"
            );
        }
        let error = amount("1e3", "EUR").unwrap_err();
        assert_eq!(error.code(), "invalid_amount");
        assert_eq!(
            error.to_string(),
            "`1e3` is not a decimal amount such as \"49.90\""
        );
    }

    #[test]
    fn parse_amount_accepts_the_extreme_i64_minor_units() {
        assert_eq!(amount("92233720368547758.07", "EUR"), Ok(eur(i64::MAX)));
        assert_eq!(amount("-92233720368547758.08", "EUR"), Ok(eur(i64::MIN)));
        assert_eq!(
            amount("-9223372036854775808", "JPY"),
            Ok(Money::from_minor(i64::MIN, currency("JPY")))
        );
    }

    #[test]
    fn parse_amount_reports_overflowing_minor_units_as_out_of_range() {
        for input in [
            "92233720368547758.08",
            "-92233720368547758.09",
            "9223372036854775808000",
            &"9".repeat(200),
        ] {
            assert_eq!(amount(input, "EUR"), Err(MoneyError::OutOfRange), "{input}");
        }
        assert_eq!(amount("9223372036854775808", "JPY"), Err(MoneyError::OutOfRange));
        let leading_zeros = format!("{}1.00", "0".repeat(500));
        assert_eq!(amount(&leading_zeros, "EUR"), Ok(eur(100)));
        assert_eq!(MoneyError::OutOfRange.code(), "amount_out_of_range");
        assert_eq!(MoneyError::OutOfRange.to_string(), "amount is out of range");
    }

    #[test]
    fn errors_shorten_very_long_input() {
        let long = "x".repeat(1000);
        let MoneyError::InvalidAmount(echoed) = amount(&long, "EUR").unwrap_err() else {
            panic!("expected InvalidAmount");
        };
        assert_eq!(echoed.chars().count(), MAX_ECHOED_CHARS + 1);
        assert!(echoed.ends_with('…'));
    }

    // ---- parse_price / parse_feed_price ---------------------------------------------------

    #[test]
    fn parse_price_accepts_zero_and_positive_amounts() {
        let euro = currency("EUR");
        assert_eq!(Money::parse_price("49.90", euro), Ok(eur(4990)));
        assert_eq!(Money::parse_price("0", euro), Ok(eur(0)));
    }

    #[test]
    fn parse_price_refuses_more_than_stripe_charges_in_one_payment() {
        let euro = currency("EUR");
        assert_eq!(Money::parse_price("999999.99", euro), Ok(eur(99_999_999)));
        let error = Money::parse_price("1000000.00", euro).unwrap_err();
        assert_eq!(error.code(), "amount_too_large");
        assert_eq!(
            error.to_string(),
            "amount must be at most 999999.99 EUR, the most Stripe charges in one payment"
        );
        assert_eq!(currency("JPY").max_minor(), 99_999_999);
        assert_eq!(currency("INR").max_minor(), 999_999_999);
        assert_eq!(currency("IDR").max_minor(), 999_999_999_999);
        assert_eq!(currency("ISK").max_amount().to_string(), "999999 ISK");
        assert_eq!(currency("MGA").max_amount().to_string(), "99999999.00 MGA");
    }

    #[test]
    fn parse_price_rejects_any_leading_minus_as_negative() {
        let euro = currency("EUR");
        for input in ["-49.90", "-0.01", "-0.00", "-0"] {
            assert_eq!(Money::parse_price(input, euro), Err(MoneyError::Negative));
        }
        assert_eq!(MoneyError::Negative.code(), "negative_amount");
        assert_eq!(MoneyError::Negative.to_string(), "amount must not be negative");
    }

    #[test]
    fn parse_price_reports_malformed_input_before_the_sign() {
        let euro = currency("EUR");
        assert_eq!(
            Money::parse_price("-abc", euro),
            Err(MoneyError::InvalidAmount("-abc".to_owned()))
        );
    }

    #[test]
    fn parse_feed_price_reads_amount_then_currency_code() {
        assert_eq!(Money::parse_feed_price("49.90 EUR"), Ok(eur(4990)));
        assert_eq!(Money::parse_feed_price("  49.90   eur "), Ok(eur(4990)));
        assert_eq!(
            Money::parse_feed_price("5990 JPY"),
            Ok(Money::from_minor(5990, currency("JPY")))
        );
        assert_eq!(
            Money::parse_feed_price("1.250 KWD"),
            Ok(Money::from_minor(1250, currency("KWD")))
        );
    }

    #[test]
    fn parse_feed_price_rejects_other_layouts_as_invalid_feed_price() {
        for input in [
            "",
            "49.90",
            "EUR",
            "EUR 49.90",
            "49.90EUR",
            "49.90\tEUR",
            "49.90 EUR extra",
            "49,90 EUR",
            "€49.90 EUR",
        ] {
            assert_eq!(
                Money::parse_feed_price(input),
                Err(MoneyError::InvalidFeedPrice(input.to_owned())),
                "{input:?}"
            );
        }
        let error = Money::parse_feed_price("EUR 49.90").unwrap_err();
        assert_eq!(error.code(), "invalid_feed_price");
        assert_eq!(
            error.to_string(),
            "`EUR 49.90` is not a price such as \"49.90 EUR\""
        );
    }

    #[test]
    fn parse_feed_price_passes_on_specific_errors() {
        assert_eq!(
            Money::parse_feed_price("49.90 ABC"),
            Err(MoneyError::UnknownCurrency("ABC".to_owned()))
        );
        assert!(matches!(
            Money::parse_feed_price("49.999 EUR"),
            Err(MoneyError::TooManyDecimals { .. })
        ));
        assert_eq!(Money::parse_feed_price("-1.00 EUR"), Err(MoneyError::Negative));
        assert_eq!(
            Money::parse_feed_price("99999999999999999999 EUR"),
            Err(MoneyError::OutOfRange)
        );
    }

    // ---- formatting -----------------------------------------------------------------------

    #[test]
    fn amount_string_has_exactly_the_currency_decimals() {
        assert_eq!(eur(5990).amount_string(), "59.90");
        assert_eq!(eur(-300).amount_string(), "-3.00");
        assert_eq!(eur(-5).amount_string(), "-0.05");
        assert_eq!(eur(0).amount_string(), "0.00");
        assert_eq!(eur(i64::MIN).amount_string(), "-92233720368547758.08");
        assert_eq!(Money::from_minor(5990, currency("JPY")).amount_string(), "5990");
        assert_eq!(Money::from_minor(1250, currency("KWD")).amount_string(), "1.250");
        assert_eq!(Money::from_minor(1, currency("CLF")).amount_string(), "0.0001");
    }

    #[test]
    fn money_displays_amount_then_code() {
        assert_eq!(eur(5990).to_string(), "59.90 EUR");
        assert_eq!(Money::from_minor(5990, currency("JPY")).to_string(), "5990 JPY");
        assert_eq!(eur(-300).to_string(), "-3.00 EUR");
    }

    #[test]
    fn to_decimal_uses_the_currency_exponent_as_scale() {
        let price = eur(5990).to_decimal();
        assert_eq!(price, pct("59.9"));
        assert_eq!(price.scale(), 2);
        assert_eq!(price.to_string(), "59.90");
        let yen = Money::from_minor(5990, currency("JPY")).to_decimal();
        assert_eq!(yen.scale(), 0);
        assert_eq!(yen.to_string(), "5990");
        assert_eq!(eur(i64::MIN).to_decimal().to_string(), "-92233720368547758.08");
    }

    #[test]
    fn accessors_and_zero_report_their_parts() {
        let money = eur(-1);
        assert_eq!(money.minor(), -1);
        assert_eq!(money.currency(), currency("EUR"));
        assert!(money.is_negative());
        assert!(!Money::zero(currency("EUR")).is_negative());
        assert_eq!(Money::zero(currency("JPY")).minor(), 0);
    }

    // ---- arithmetic -----------------------------------------------------------------------

    #[test]
    fn checked_add_sub_and_mul_compute_in_minor_units() {
        assert_eq!(eur(4990).checked_add(eur(1000)), Ok(eur(5990)));
        assert_eq!(eur(4990).checked_sub(eur(5000)), Ok(eur(-10)));
        assert_eq!(eur(4990).checked_mul(3), Ok(eur(14_970)));
        assert_eq!(eur(4990).checked_mul(-1), Ok(eur(-4990)));
        assert_eq!(eur(4990).checked_mul(0), Ok(eur(0)));
    }

    #[test]
    fn checked_arithmetic_rejects_mixed_currencies() {
        let dollars = Money::from_minor(100, currency("USD"));
        let error = eur(100).checked_add(dollars).unwrap_err();
        assert_eq!(error, MoneyError::CurrencyMismatch("EUR", "USD"));
        assert_eq!(error.code(), "currency_mismatch");
        assert_eq!(error.to_string(), "cannot combine EUR with USD");
        assert_eq!(
            dollars.checked_sub(eur(1)),
            Err(MoneyError::CurrencyMismatch("USD", "EUR"))
        );
    }

    #[test]
    fn checked_arithmetic_reports_overflow_as_out_of_range() {
        assert_eq!(eur(i64::MAX).checked_add(eur(1)), Err(MoneyError::OutOfRange));
        assert_eq!(eur(i64::MIN).checked_sub(eur(1)), Err(MoneyError::OutOfRange));
        assert_eq!(eur(i64::MAX).checked_mul(2), Err(MoneyError::OutOfRange));
        assert_eq!(eur(i64::MIN).checked_mul(-1), Err(MoneyError::OutOfRange));
    }

    #[test]
    fn percent_of_rounds_half_away_from_zero() {
        assert_eq!(eur(999).percent_of(pct("20")), Ok(eur(200)));
        assert_eq!(eur(1).percent_of(pct("50")), Ok(eur(1)));
        assert_eq!(eur(-1).percent_of(pct("50")), Ok(eur(-1)));
        assert_eq!(eur(1).percent_of(pct("49.99")), Ok(eur(0)));
        assert_eq!(eur(1999).percent_of(pct("7.5")), Ok(eur(150)));
        assert_eq!(eur(1000).percent_of(pct("33.333")), Ok(eur(333)));
        assert_eq!(eur(4990).percent_of(pct("0")), Ok(eur(0)));
        assert_eq!(eur(4990).percent_of(pct("100.000")), Ok(eur(4990)));
    }

    #[test]
    fn percent_of_is_exact_at_the_extremes() {
        assert_eq!(eur(i64::MAX).percent_of(pct("100")), Ok(eur(i64::MAX)));
        assert_eq!(eur(i64::MIN).percent_of(pct("100")), Ok(eur(i64::MIN)));
        // 28 decimals of percent times the largest amount needs more than 128 bits.
        let half = pct("50.00000000000000000000000000");
        assert_eq!(half.scale(), 26);
        assert_eq!(eur(i64::MAX).percent_of(half), Ok(eur(i64::MAX / 2 + 1)));
        assert_eq!(eur(i64::MIN).percent_of(half), Ok(eur(i64::MIN / 2)));
        let tiny = pct("0.0000000000000000000000000001");
        assert_eq!(eur(i64::MAX).percent_of(tiny), Ok(eur(0)));
        // 1/3 % of 3 * 10^18 minor units is 10^16 minus 10^-12, which rounds to 10^16.
        let third = pct("0.3333333333333333333333333333");
        assert_eq!(
            eur(3_000_000_000_000_000_000).percent_of(third),
            Ok(eur(10_000_000_000_000_000))
        );
    }

    #[test]
    fn percent_of_rejects_percents_outside_zero_to_one_hundred() {
        for percent in ["-1", "-0.0001", "100.01", "1000"] {
            assert_eq!(
                eur(100).percent_of(pct(percent)),
                Err(MoneyError::InvalidPercent),
                "{percent}"
            );
        }
        assert_eq!(MoneyError::InvalidPercent.code(), "invalid_percent");
        assert_eq!(
            MoneyError::InvalidPercent.to_string(),
            "percent must be between 0 and 100"
        );
    }

    // ---- MoneyDto -------------------------------------------------------------------------

    #[test]
    fn money_dto_serializes_amount_and_currency_as_strings() {
        let dto = MoneyDto::from(eur(5990));
        assert_eq!(
            dto,
            MoneyDto {
                amount: "59.90".to_owned(),
                currency: "EUR".to_owned()
            }
        );
        assert_eq!(
            serde_json::to_string(&dto).unwrap(),
            r#"{"amount":"59.90","currency":"EUR"}"#
        );
    }

    #[test]
    fn money_dto_accepts_a_json_string_amount() {
        let dto: MoneyDto = serde_json::from_str(r#"{"amount": "49.90", "currency": "eur"}"#).unwrap();
        assert_eq!(dto.amount, "49.90");
        assert_eq!(dto.parse_price(), Ok(eur(4990)));
        assert_eq!(dto.parse_amount(), Ok(eur(4990)));
    }

    #[test]
    fn money_dto_rejects_a_json_number_amount_with_a_clear_message() {
        for json in [
            r#"{"amount": 49.9, "currency": "EUR"}"#,
            r#"{"amount": 49, "currency": "EUR"}"#,
            r#"{"amount": -5, "currency": "EUR"}"#,
            r#"{"amount": 1e3, "currency": "EUR"}"#,
        ] {
            let error = serde_json::from_str::<MoneyDto>(json).unwrap_err().to_string();
            assert!(
                error.starts_with("amount must be a decimal string such as \"49.90\""),
                "{error}"
            );
        }
    }

    #[test]
    fn money_dto_rejects_other_non_string_amounts() {
        for json in [
            r#"{"amount": null, "currency": "EUR"}"#,
            r#"{"amount": true, "currency": "EUR"}"#,
            r#"{"amount": ["49.90"], "currency": "EUR"}"#,
            r#"{"currency": "EUR"}"#,
        ] {
            let error = serde_json::from_str::<MoneyDto>(json).unwrap_err().to_string();
            assert!(
                error.contains("decimal string such as") || error.contains("missing field"),
                "{error}"
            );
        }
    }

    #[test]
    fn money_dto_parsing_reports_currency_and_sign_problems() {
        let dto = |amount: &str, currency: &str| MoneyDto {
            amount: amount.to_owned(),
            currency: currency.to_owned(),
        };
        assert_eq!(
            dto("1.00", "XYZ").parse_price(),
            Err(MoneyError::UnknownCurrency("XYZ".to_owned()))
        );
        assert_eq!(dto("-1.00", "EUR").parse_price(), Err(MoneyError::Negative));
        assert_eq!(dto("-1.00", "EUR").parse_amount(), Ok(eur(-100)));
        assert!(matches!(
            dto("1.001", "EUR").parse_amount(),
            Err(MoneyError::TooManyDecimals { .. })
        ));
    }

    // ---- properties -----------------------------------------------------------------------

    fn any_currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::all())
    }

    /// Reference rounding for `minor * numerator / denominator`, valid while the product fits i128.
    fn reference_round(minor: i64, numerator: i128, denominator: i128) -> i64 {
        let product = i128::from(minor) * numerator;
        let mut quotient = product / denominator;
        let remainder = product % denominator;
        if remainder.abs() * 2 >= denominator {
            quotient += product.signum();
        }
        i64::try_from(quotient).unwrap()
    }

    proptest! {
        #[test]
        fn amount_string_round_trips_through_parse_amount(minor in any::<i64>(), c in any_currency()) {
            let money = Money::from_minor(minor, c);
            prop_assert_eq!(Money::parse_amount(&money.amount_string(), c), Ok(money));
        }

        #[test]
        fn amount_string_has_exactly_exponent_decimals(minor in any::<i64>(), c in any_currency()) {
            let text = Money::from_minor(minor, c).amount_string();
            match text.split_once('.') {
                Some((_, decimals)) => prop_assert_eq!(decimals.len(), c.exponent() as usize),
                None => prop_assert_eq!(c.exponent(), 0),
            }
        }

        #[test]
        fn to_decimal_matches_amount_string(minor in any::<i64>(), c in any_currency()) {
            prop_assert_eq!(Money::from_minor(minor, c).to_decimal().to_string(), Money::from_minor(minor, c).amount_string());
        }

        #[test]
        fn parse_price_never_accepts_a_leading_minus(
            text in "-[0-9]{1,22}(\\.[0-9]{1,6})?",
            c in any_currency(),
        ) {
            prop_assert!(Money::parse_price(&text, c).is_err());
        }

        #[test]
        fn parse_price_round_trips_non_negative_amounts_up_to_the_maximum(minor in 0..=i64::MAX, c in any_currency()) {
            let money = Money::from_minor(minor % (c.max_minor() + 1), c);
            prop_assert_eq!(Money::parse_price(&money.amount_string(), c), Ok(money));
        }

        #[test]
        fn parse_price_refuses_amounts_above_the_maximum(minor in 0..=i64::MAX, c in any_currency()) {
            let money = Money::from_minor(minor.max(c.max_minor() + 1), c);
            prop_assert_eq!(
                Money::parse_price(&money.amount_string(), c).map_err(|e| e.code()),
                Err("amount_too_large")
            );
        }

        #[test]
        fn parse_amount_never_panics_on_arbitrary_text(text in "\\PC{0,40}", c in any_currency()) {
            let _ = Money::parse_amount(&text, c);
            let _ = Money::parse_feed_price(&text);
        }

        #[test]
        fn currency_parse_finds_every_code_in_any_case(c in any_currency(), lower in any::<bool>()) {
            let code = if lower { c.code().to_lowercase() } else { c.code().to_owned() };
            prop_assert_eq!(Currency::parse(&code), Ok(c));
        }

        #[test]
        fn checked_add_is_commutative_and_matches_i64_checked_add(
            a in any::<i64>(),
            b in any::<i64>(),
            c in any_currency(),
        ) {
            let (x, y) = (Money::from_minor(a, c), Money::from_minor(b, c));
            prop_assert_eq!(x.checked_add(y), y.checked_add(x));
            let expected = a.checked_add(b).map(|sum| Money::from_minor(sum, c)).ok_or(MoneyError::OutOfRange);
            prop_assert_eq!(x.checked_add(y), expected);
        }

        #[test]
        fn checked_add_near_the_limits_matches_i64_checked_add(
            a in prop_oneof![i64::MAX - 1000..=i64::MAX, i64::MIN..=i64::MIN + 1000],
            b in -2000_i64..=2000,
        ) {
            let (x, y) = (eur(a), eur(b));
            prop_assert_eq!(x.checked_add(y), y.checked_add(x));
            prop_assert_eq!(x.checked_add(y).ok().map(|m| m.minor()), a.checked_add(b));
        }

        #[test]
        fn checked_sub_and_mul_match_i64_checked_arithmetic(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(eur(a).checked_sub(eur(b)).ok().map(|m| m.minor()), a.checked_sub(b));
            prop_assert_eq!(eur(a).checked_mul(b).ok().map(|m| m.minor()), a.checked_mul(b));
        }

        #[test]
        fn percent_of_matches_exact_integer_rounding(
            minor in any::<i64>(),
            (scale, mantissa) in (0_u32..=4).prop_flat_map(|scale| (Just(scale), 0..=100 * 10_i64.pow(scale))),
        ) {
            let denominator = 100 * 10_i128.pow(scale);
            let percent = Decimal::new(mantissa, scale);
            let expected = reference_round(minor, i128::from(mantissa), denominator);
            prop_assert_eq!(eur(minor).percent_of(percent), Ok(eur(expected)));
        }

        #[test]
        fn percent_of_whole_percents_matches_exact_integer_rounding(minor in any::<i64>(), percent in 0_i64..=100) {
            let expected = reference_round(minor, i128::from(percent), 100);
            prop_assert_eq!(eur(minor).percent_of(Decimal::from(percent)), Ok(eur(expected)));
        }
    }
}
