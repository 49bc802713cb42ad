//! Stripe: the calls threadcart makes to Stripe's API (Checkout Sessions, refunds) through async-stripe.
//! Its webhooks are checked and parsed in [`super::webhook`].
//!
//! Amounts cross to Stripe as integers in Stripe's minor units, which are ours except for a few currencies
//! (ISK and UGX are sent with two extra zeros, MGA without its two ISO decimals, three-decimal currencies in
//! steps of ten; stripe.md §3). Checkout takes a discount only as a Stripe coupon or promotion code, so an
//! order's discount reaches Stripe inside the line prices: [`NewCheckout::discount`] is spread over the lines
//! in proportion to their totals, a line splitting in two where cents do not divide evenly, and the session's
//! `amount_total` is exactly the order's total.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use ::stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest};
use secrecy::{ExposeSecret, SecretString};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ExpireCheckoutSession, ProductData, RetrieveCheckoutSession,
};
use stripe_checkout::{
    CheckoutSessionLocale, CheckoutSessionMode, CheckoutSessionPaymentStatus, CheckoutSessionStatus,
};
use stripe_core::refund::{CreateRefund, CreateRefundReason, ListRefund};

use crate::kernel::OrderId;
use crate::money::{Currency, Money};

/// Per attempt; async-stripe has no timeout of its own.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Stripe's limit on line items in payment mode.
const MAX_LINE_ITEMS: usize = 100;

/// What async-stripe says when an error answer has no Stripe error body (its status is then lost).
const UNREADABLE_ERROR_BODY: &str = "error deserializing Stripe error";

/// The `locale` values Checkout accepts (stripe.md §1.2), besides `auto`.
const CHECKOUT_LOCALES: &[&str] = &[
    "bg", "cs", "da", "de", "el", "en", "en-GB", "es", "es-419", "et", "fi", "fil", "fr", "fr-CA", "hr",
    "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt", "pt-BR", "ro", "ru", "sk",
    "sl", "sv", "th", "tr", "vi", "zh", "zh-HK", "zh-TW",
];

/// Stripe's published minimum charges in minor units (stripe.md §3), sorted by code.
const MINIMUM_CHARGES: &[(&str, i64)] = &[
    ("AED", 200),
    ("AUD", 50),
    ("BGN", 100),
    ("BRL", 50),
    ("CAD", 50),
    ("CHF", 50),
    ("CZK", 1500),
    ("DKK", 250),
    ("EUR", 50),
    ("GBP", 30),
    ("HKD", 400),
    ("HUF", 17500),
    ("INR", 50),
    ("JPY", 50),
    ("MXN", 1000),
    ("MYR", 200),
    ("NOK", 300),
    ("NZD", 50),
    ("PLN", 200),
    ("RON", 200),
    ("SEK", 300),
    ("SGD", 50),
    ("THB", 1000),
    ("USD", 50),
];

/// Stripe's minimum charge for a currency in minor units (stripe.md §3): EUR 50, USD 50, GBP 30, JPY 50 ...
///
/// `None` when Stripe publishes no fixed minimum for the currency: it then settles in another currency and
/// refuses amounts below that currency's minimum after conversion, so only Stripe can tell.
pub fn minimum_charge(currency: Currency) -> Option<i64> {
    MINIMUM_CHARGES
        .binary_search_by(|(code, _)| code.cmp(&currency.code()))
        .ok()
        .and_then(|i| MINIMUM_CHARGES.get(i))
        .map(|(_, minimum)| *minimum)
}

/// How a currency's amounts are written for Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WireUnit {
    /// Our minor units.
    Same,
    /// Zero-decimal for ISO, yet sent as two-decimal with `00` (ISK, UGX).
    TimesHundred,
    /// Two decimals for ISO, zero-decimal for Stripe (MGA).
    DividedByHundred,
    /// Three decimals whose last digit must be 0 (BHD, JOD, KWD, OMR, TND).
    StepsOfTen,
}

fn wire_unit(currency: Currency) -> WireUnit {
    match currency.code() {
        "ISK" | "UGX" => WireUnit::TimesHundred,
        "MGA" => WireUnit::DividedByHundred,
        "BHD" | "JOD" | "KWD" | "OMR" | "TND" => WireUnit::StepsOfTen,
        _ => WireUnit::Same,
    }
}

/// The smallest step between two amounts Stripe accepts, in Stripe's units.
fn wire_step(currency: Currency) -> i64 {
    match wire_unit(currency) {
        WireUnit::TimesHundred => 100,
        WireUnit::StepsOfTen => 10,
        WireUnit::Same | WireUnit::DividedByHundred => 1,
    }
}

/// `money` in Stripe's minor units; `Invalid` when Stripe cannot represent it.
fn to_stripe_amount(money: Money) -> Result<i64, StripeError> {
    let minor = money.minor();
    let unrepresentable = || {
        StripeError::Invalid(format!(
            "{} {} cannot be charged through Stripe in this currency's steps",
            money.amount_string(),
            money.currency()
        ))
    };
    match wire_unit(money.currency()) {
        WireUnit::Same => Ok(minor),
        WireUnit::TimesHundred => minor.checked_mul(100).ok_or_else(unrepresentable),
        WireUnit::DividedByHundred if minor % 100 == 0 => Ok(minor / 100),
        WireUnit::StepsOfTen if minor % 10 == 0 => Ok(minor),
        WireUnit::DividedByHundred | WireUnit::StepsOfTen => Err(unrepresentable()),
    }
}

/// An amount Stripe sent, back in our minor units; `None` when it does not fit.
pub fn from_stripe_amount(amount: i64, currency: Currency) -> Option<Money> {
    let minor = match wire_unit(currency) {
        WireUnit::Same | WireUnit::StepsOfTen => Some(amount),
        WireUnit::TimesHundred => (amount % 100 == 0).then_some(amount / 100),
        WireUnit::DividedByHundred => amount.checked_mul(100),
    }?;
    Some(Money::from_minor(minor, currency))
}

/// A failed Stripe call, or a request refused before it was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with its error body.
    #[error("Stripe API error {status} {kind}/{}: {message}", .code.as_deref().unwrap_or("-"))]
    Api {
        /// HTTP status.
        status: u16,
        /// `error.type`: `card_error`, `invalid_request_error`, `idempotency_error`, `api_error` ...
        kind: String,
        /// `error.code`, such as `resource_missing` or `idempotency_key_in_use`.
        code: Option<String>,
        /// `error.message`, with anything shaped like a key redacted.
        message: String,
        /// `error.param`: the request parameter the error is about.
        param: Option<String>,
    },
    /// No usable answer: connection refused or reset, timeout, an error answer without Stripe's error body.
    #[error("Stripe unreachable: {0}")]
    Transport(String),
    /// A success answer whose body is not the object asked for.
    #[error("unreadable answer from Stripe: {0}")]
    Decode(String),
    /// The request cannot be sent as given (amounts, currencies, ids, idempotency key).
    #[error("Stripe request refused before sending: {0}")]
    Invalid(String),
    /// The client cannot be built (secret key, base URL).
    #[error("Stripe client misconfigured: {0}")]
    Config(String),
}

impl StripeError {
    /// Whether the same call, with the same idempotency key, may succeed later: 429, 409 (a request with the
    /// same key still running), 5xx and transport failures. Not an `idempotency_error` (the key was used with
    /// other parameters), a card or invalid-request error, an unreadable answer or a refused request.
    ///
    /// Stripe replays a cached 5xx for the same key for 24 h, so a create that keeps answering 5xx ends
    /// after a few tries rather than retrying forever.
    pub fn is_retryable(&self) -> bool {
        match self {
            StripeError::Transport(_) => true,
            StripeError::Api { kind, .. } if kind == "idempotency_error" => false,
            StripeError::Api { status, .. } => *status == 409 || *status == 429 || *status >= 500,
            StripeError::Decode(_) | StripeError::Invalid(_) | StripeError::Config(_) => false,
        }
    }

    fn from_client(err: ::stripe::StripeError) -> StripeError {
        match err {
            ::stripe::StripeError::Stripe(body, status) => StripeError::Api {
                status,
                kind: body.type_.as_str().to_owned(),
                code: body.code.as_ref().map(|c| c.as_str().to_owned()),
                message: redact_keys(body.message.as_deref().unwrap_or_default()),
                param: body.param.clone(),
            },
            ::stripe::StripeError::JSONDeserialize(msg) if msg == UNREADABLE_ERROR_BODY => {
                StripeError::Transport("an error answer without Stripe's error body".into())
            }
            ::stripe::StripeError::JSONDeserialize(msg) => StripeError::Decode(msg),
            ::stripe::StripeError::ClientError(msg) => StripeError::Transport(msg),
            ::stripe::StripeError::Timeout => StripeError::Transport("no answer in time".into()),
            ::stripe::StripeError::ConfigError(msg) => StripeError::Config(msg),
        }
    }
}

/// `message` with every word that looks like a Stripe key replaced, in case Stripe ever echoes one.
fn redact_keys(message: &str) -> String {
    const KEY_PREFIXES: &[&str] = &["sk_", "rk_", "whsec_"];
    message
        .split(' ')
        .map(|word| {
            let bare = word.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
            if KEY_PREFIXES.iter().any(|p| bare.starts_with(p)) {
                "[redacted]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line of an order, at its undiscounted price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLine {
    /// What the shopper sees on Stripe's page.
    pub name: String,
    /// A picture of it, when there is one.
    pub image_url: Option<String>,
    /// Price of one unit.
    pub unit_amount: Money,
    /// Units, at least 1.
    pub quantity: u32,
}

/// An order to be paid on Stripe Checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckout {
    /// The order: `client_reference_id`, `metadata[order_id]` and the PaymentIntent's `metadata[order_id]`.
    pub order_id: OrderId,
    /// The lines at their undiscounted prices (at most 100 once a discount has split some).
    pub lines: Vec<CheckoutLine>,
    /// Taken off the lines' total (never more than it), spread over the line prices.
    pub discount: Option<Money>,
    /// The order's currency; every line and the discount are in it.
    pub currency: Currency,
    /// When the session expires (unix seconds, 30 min to 24 h from now, or Stripe refuses it).
    pub expires_at: i64,
    /// Where Stripe sends the shopper after paying; may hold the literal `{CHECKOUT_SESSION_ID}`.
    pub success_url: String,
    /// Where Stripe's back button goes.
    pub cancel_url: String,
    /// The shopper's locale (`fr_FR`, `en-GB`, `pt`); mapped to one Checkout knows, `auto` otherwise.
    pub locale: Option<String>,
}

/// A line as sent to Stripe: price in Stripe's minor units, discount included.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StripeLine<'a> {
    name: &'a str,
    image_url: Option<&'a str>,
    unit_amount: i64,
    quantity: u64,
}

impl NewCheckout {
    /// The lines Stripe gets: checked, converted to Stripe's units, the discount spread over them.
    fn stripe_lines(&self) -> Result<Vec<StripeLine<'_>>, StripeError> {
        let invalid = |why: &str| Err(StripeError::Invalid(why.to_owned()));
        if self.lines.is_empty() {
            return invalid("an order without lines");
        }
        let step = wire_step(self.currency);
        let mut lines = Vec::with_capacity(self.lines.len());
        for line in &self.lines {
            if line.unit_amount.currency() != self.currency {
                return invalid("a line in another currency than the order");
            }
            if line.unit_amount.is_negative() || line.quantity == 0 || line.name.trim().is_empty() {
                return invalid(
                    "a line needs a name, a price of at least zero and a quantity of at least one",
                );
            }
            lines.push(StripeLine {
                name: &line.name,
                image_url: line.image_url.as_deref(),
                unit_amount: to_stripe_amount(line.unit_amount)? / step,
                quantity: u64::from(line.quantity),
            });
        }
        let discount = match self.discount {
            None => 0,
            Some(d) if d.currency() != self.currency => return invalid("a discount in another currency"),
            Some(d) if d.is_negative() => return invalid("a negative discount"),
            Some(d) => to_stripe_amount(d)? / step,
        };
        let mut lines = spread_discount(&lines, discount)?;
        if lines.len() > MAX_LINE_ITEMS {
            return invalid("more than 100 Stripe line items");
        }
        for line in &mut lines {
            line.unit_amount *= step;
        }
        Ok(lines)
    }
}

/// Takes `discount` off `lines` (amounts in any common unit): each line's share is proportional to its
/// total (largest remainders get the leftover units, earlier lines first on ties), and a line whose share
/// does not divide by its quantity splits in two with unit prices one apart, so the new total is exactly
/// the old one minus `discount`.
fn spread_discount<'a>(lines: &[StripeLine<'a>], discount: i64) -> Result<Vec<StripeLine<'a>>, StripeError> {
    let totals: Vec<i128> = lines
        .iter()
        .map(|l| i128::from(l.unit_amount) * i128::from(l.quantity))
        .collect();
    let subtotal: i128 = totals.iter().sum();
    let discount = i128::from(discount);
    if discount > subtotal {
        return Err(StripeError::Invalid(
            "a discount above the order's subtotal".into(),
        ));
    }
    if discount == 0 {
        return Ok(lines.to_vec());
    }
    let mut shares: Vec<i128> = totals.iter().map(|t| discount * t / subtotal).collect();
    let mut by_remainder: Vec<(i128, usize)> = totals
        .iter()
        .enumerate()
        .map(|(i, t)| (discount * t % subtotal, i))
        .collect();
    by_remainder.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let leftover = discount - shares.iter().sum::<i128>();
    for (_, i) in by_remainder.iter().take(usize::try_from(leftover).unwrap_or(0)) {
        if let Some(share) = shares.get_mut(*i) {
            *share += 1;
        }
    }
    let out_of_range = || StripeError::Invalid("an amount out of range".into());
    let mut out = Vec::with_capacity(lines.len() + 1);
    for (line, share) in lines.iter().zip(shares) {
        let quantity = i128::from(line.quantity);
        let per_unit = i64::try_from(share / quantity).map_err(|_| out_of_range())?;
        let cheaper_units = u64::try_from(share % quantity).map_err(|_| out_of_range())?;
        let unit_amount = line.unit_amount - per_unit;
        if cheaper_units < line.quantity {
            out.push(StripeLine {
                unit_amount,
                quantity: line.quantity - cheaper_units,
                ..line.clone()
            });
        }
        if cheaper_units > 0 {
            out.push(StripeLine {
                unit_amount: unit_amount - 1,
                quantity: cheaper_units,
                ..line.clone()
            });
        }
    }
    Ok(out)
}

/// The Checkout `locale` for a shopper's locale: exact (`en_GB` → `en-GB`), else the language (`fr_FR` →
/// `fr`), else `auto`.
fn checkout_locale(given: &str) -> &'static str {
    let wanted = given.trim().replace('_', "-");
    let language = wanted.split('-').next().unwrap_or_default();
    let find = |code: &str| {
        CHECKOUT_LOCALES
            .iter()
            .find(|known| known.eq_ignore_ascii_case(code))
            .copied()
    };
    find(&wanted).or_else(|| find(language)).unwrap_or("auto")
}

/// The request body of `POST /v1/checkout/sessions` for an order.
fn checkout_params(req: &NewCheckout) -> Result<CreateCheckoutSession, StripeError> {
    let Ok(currency) = req
        .currency
        .code()
        .to_ascii_lowercase()
        .parse::<stripe_types::Currency>();
    let line_items: Vec<CreateCheckoutSessionLineItems> = req
        .stripe_lines()?
        .into_iter()
        .map(|line| {
            let mut product = ProductData::new(line.name);
            product.images = line.image_url.map(|url| vec![url.to_owned()]);
            let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency.clone());
            price.unit_amount = Some(line.unit_amount);
            price.product_data = Some(product);
            let mut item = CreateCheckoutSessionLineItems::new();
            item.price_data = Some(price);
            item.quantity = Some(line.quantity);
            item
        })
        .collect();
    let order_id = req.order_id.to_string();
    let metadata = HashMap::from([("order_id".to_owned(), order_id.clone())]);
    let mut payment_intent = CreateCheckoutSessionPaymentIntentData::new();
    payment_intent.metadata = Some(metadata.clone());
    let mut params = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .line_items(line_items)
        .client_reference_id(order_id)
        .metadata(metadata)
        .payment_intent_data(payment_intent)
        .expires_at(req.expires_at)
        .success_url(req.success_url.as_str())
        .cancel_url(req.cancel_url.as_str());
    if let Some(locale) = &req.locale {
        let Ok(locale) = checkout_locale(locale).parse::<CheckoutSessionLocale>();
        params = params.locale(locale);
    }
    Ok(params)
}

/// A Checkout Session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Waiting for the shopper.
    Open,
    /// Paid, or awaiting a delayed payment method (see [`PaymentStatus`]).
    Complete,
    /// Expired or expired by us; its URL no longer works.
    Expired,
    /// A value this code does not know.
    Unknown,
}

/// Whether a Checkout Session's money has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// The funds are available: fulfil.
    Paid,
    /// Not yet (or never, for an expired session).
    Unpaid,
    /// Nothing to pay.
    NoPaymentRequired,
    /// A value this code does not know.
    Unknown,
}

/// The fields of a Checkout Session threadcart uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_...`.
    pub id: String,
    /// The hosted page, only while the session is open.
    pub url: Option<String>,
    /// `status`.
    pub status: SessionStatus,
    /// `payment_status`.
    pub payment_status: PaymentStatus,
    /// `pi_...`, once the shopper has confirmed.
    pub payment_intent: Option<String>,
    /// Total in Stripe's minor units (see [`CheckoutSession::total`]).
    pub amount_total: Option<i64>,
    /// Lower-case ISO code, such as `eur`.
    pub currency: Option<String>,
    /// Our order id, as sent.
    pub client_reference_id: Option<String>,
    /// `metadata[order_id]`, as sent.
    pub metadata_order_id: Option<String>,
    /// Unix seconds (Stripe always sends it).
    pub expires_at: Option<i64>,
}

impl CheckoutSession {
    /// `amount_total` in `currency` as our money, to compare with the order's total.
    pub fn total(&self) -> Option<Money> {
        let currency = Currency::parse(self.currency.as_deref()?).ok()?;
        from_stripe_amount(self.amount_total?, currency)
    }
}

impl CheckoutSession {
    fn from_stripe(s: stripe_checkout::CheckoutSession) -> CheckoutSession {
        CheckoutSession {
            id: s.id.as_str().to_owned(),
            url: s.url,
            status: match s.status {
                Some(CheckoutSessionStatus::Open) => SessionStatus::Open,
                Some(CheckoutSessionStatus::Complete) => SessionStatus::Complete,
                Some(CheckoutSessionStatus::Expired) => SessionStatus::Expired,
                _ => SessionStatus::Unknown,
            },
            payment_status: match s.payment_status {
                CheckoutSessionPaymentStatus::Paid => PaymentStatus::Paid,
                CheckoutSessionPaymentStatus::Unpaid => PaymentStatus::Unpaid,
                CheckoutSessionPaymentStatus::NoPaymentRequired => PaymentStatus::NoPaymentRequired,
                _ => PaymentStatus::Unknown,
            },
            payment_intent: s.payment_intent.map(|pi| pi.id().as_str().to_owned()),
            amount_total: s.amount_total,
            currency: s.currency.map(|c| c.to_string()),
            client_reference_id: s.client_reference_id,
            metadata_order_id: s.metadata.and_then(|mut m| m.remove("order_id")),
            expires_at: Some(s.expires_at),
        }
    }
}

/// Why Stripe refunds (Stripe's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundReason {
    /// A duplicate charge.
    Duplicate,
    /// Fraud: Stripe also adds the card and email to the Radar block lists.
    Fraudulent,
    /// The shopper asked.
    RequestedByCustomer,
}

/// A refund as Stripe created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// `re_...`.
    pub id: String,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled` (`pending` if Stripe sent none:
    /// its schema allows that, and such a refund is not final).
    pub status: String,
    /// In Stripe's minor units of `currency`.
    pub amount: i64,
    /// The charge's currency, lower-case: the refund is always in it.
    pub currency: String,
}

/// The Stripe API client: Checkout Sessions and refunds, one attempt per call (the caller retries on
/// [`StripeError::is_retryable`] with the same idempotency key).
#[derive(Clone)]
pub struct StripeClient {
    inner: Client,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient").finish_non_exhaustive()
    }
}

/// A validated `Idempotency-Key`.
fn idempotency_key(key: &str) -> Result<RequestStrategy, StripeError> {
    IdempotencyKey::new(key)
        .map(RequestStrategy::Idempotent)
        .map_err(|_| StripeError::Invalid("an idempotency key must have 1 to 255 characters".into()))
}

/// `id` when it is a Stripe id with `prefix` (it may end up in a URL path).
fn stripe_id<'a>(id: &'a str, prefix: &str) -> Result<&'a str, StripeError> {
    let well_formed = id.len() <= 255
        && id.len() > prefix.len()
        && id.starts_with(prefix)
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if well_formed {
        Ok(id)
    } else {
        Err(StripeError::Invalid(format!("not a Stripe `{prefix}...` id")))
    }
}

impl StripeClient {
    /// A client for `base_url` (`STRIPE_API_BASE`, with or without a trailing slash; a path prefix is kept)
    /// with the secret key (`STRIPE_SECRET_KEY`) and a 20 s timeout per request.
    pub fn new(secret_key: &SecretString, base_url: &str) -> Result<StripeClient, StripeError> {
        StripeClient::with_timeout(secret_key, base_url, REQUEST_TIMEOUT)
    }

    /// Like [`StripeClient::new`], waiting at most `timeout` for each answer (`STRIPE_TIMEOUT_SECS`).
    pub fn with_timeout(
        secret_key: &SecretString,
        base_url: &str,
        timeout: Duration,
    ) -> Result<StripeClient, StripeError> {
        let key = secret_key.expose_secret();
        if key.trim().is_empty() {
            return Err(StripeError::Config("the Stripe secret key is empty".into()));
        }
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(StripeError::Config(
                "the Stripe API base must be an http:// or https:// URL".into(),
            ));
        }
        let inner = ClientBuilder::new(key)
            .url(format!("{}/", base_url.trim_end_matches('/')))
            .timeout(timeout)
            .app_info("threadcart", Some(env!("CARGO_PKG_VERSION").to_owned()), None)
            .build()
            .map_err(|e| match e {
                ::stripe::StripeError::ConfigError(msg) | ::stripe::StripeError::ClientError(msg) => {
                    StripeError::Config(msg)
                }
                other => StripeError::Config(other.to_string()),
            })?;
        Ok(StripeClient { inner })
    }

    /// Creates a Checkout Session for the order (mode `payment`, one Stripe line per order line, the
    /// discount inside the prices), sent with `idempotency_key` (derive it from the order id and attempt:
    /// Stripe answers a repeated key with the first session, and refuses it with other parameters).
    #[tracing::instrument(skip_all, fields(order.id = %req.order_id))]
    pub async fn create_checkout_session(
        &self,
        req: &NewCheckout,
        idempotency_key: &str,
    ) -> Result<CheckoutSession, StripeError> {
        let strategy = self::idempotency_key(idempotency_key)?;
        let session = checkout_params(req)?
            .customize()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(StripeError::from_client)?;
        Ok(CheckoutSession::from_stripe(session))
    }

    /// The session as Stripe has it now.
    #[tracing::instrument(skip_all, fields(stripe.session = %id))]
    pub async fn retrieve_checkout_session(&self, id: &str) -> Result<CheckoutSession, StripeError> {
        let id = stripe_id(id, "cs_")?;
        let session = RetrieveCheckoutSession::new(id)
            .send(&self.inner)
            .await
            .map_err(StripeError::from_client)?;
        Ok(CheckoutSession::from_stripe(session))
    }

    /// Expires an open session so that it can no longer be paid; Stripe refuses (400) once it is complete.
    #[tracing::instrument(skip_all, fields(stripe.session = %id))]
    pub async fn expire_checkout_session(&self, id: &str) -> Result<CheckoutSession, StripeError> {
        let id = stripe_id(id, "cs_")?;
        let session = ExpireCheckoutSession::new(id)
            .send(&self.inner)
            .await
            .map_err(StripeError::from_client)?;
        Ok(CheckoutSession::from_stripe(session))
    }

    /// Refunds `amount` (in the charge's currency, more than zero, up to what is left) of a PaymentIntent,
    /// sent with `idempotency_key`.
    #[tracing::instrument(skip_all, fields(stripe.payment_intent = %payment_intent))]
    pub async fn create_refund(
        &self,
        payment_intent: &str,
        amount: Money,
        idempotency_key: &str,
        reason: Option<RefundReason>,
    ) -> Result<Refund, StripeError> {
        let strategy = self::idempotency_key(idempotency_key)?;
        let payment_intent = stripe_id(payment_intent, "pi_")?;
        if amount.minor() <= 0 {
            return Err(StripeError::Invalid("a refund of zero or less".into()));
        }
        let mut params = CreateRefund::new()
            .payment_intent(payment_intent)
            .amount(to_stripe_amount(amount)?);
        if let Some(reason) = reason {
            params = params.reason(match reason {
                RefundReason::Duplicate => CreateRefundReason::Duplicate,
                RefundReason::Fraudulent => CreateRefundReason::Fraudulent,
                RefundReason::RequestedByCustomer => CreateRefundReason::RequestedByCustomer,
            });
        }
        let refund = params
            .customize()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(StripeError::from_client)?;
        Ok(Refund::from_stripe(refund))
    }

    /// The refunds of a PaymentIntent as Stripe has them now, newest first (up to 100: Stripe refuses
    /// refunds beyond the amount paid, so a payment rarely has more than a few).
    #[tracing::instrument(skip_all, fields(stripe.payment_intent = %payment_intent))]
    pub async fn list_refunds(&self, payment_intent: &str) -> Result<Vec<Refund>, StripeError> {
        let payment_intent = stripe_id(payment_intent, "pi_")?;
        let list = ListRefund::new()
            .payment_intent(payment_intent)
            .limit(100)
            .send(&self.inner)
            .await
            .map_err(StripeError::from_client)?;
        Ok(list.data.into_iter().map(Refund::from_stripe).collect())
    }
}

impl Refund {
    fn from_stripe(refund: stripe_core::Refund) -> Refund {
        Refund {
            id: refund.id.as_str().to_owned(),
            status: refund.status.unwrap_or_else(|| "pending".to_owned()),
            amount: refund.amount,
            currency: refund.currency.to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000;

    fn currency(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn the_largest_price_of_every_currency_is_within_what_stripe_charges() {
        for c in Currency::all() {
            let limit = match c.code() {
                "IDR" => 999_999_999_999,
                "INR" => 999_999_999,
                _ => 99_999_999,
            };
            if let Ok(amount) = to_stripe_amount(c.max_amount()) {
                assert!(amount <= limit, "{c}: {amount}");
            }
        }
    }

    #[test]
    fn minimum_charges_are_stripes() {
        assert_eq!(minimum_charge(currency("EUR")), Some(50));
        assert_eq!(minimum_charge(currency("USD")), Some(50));
        assert_eq!(minimum_charge(currency("JPY")), Some(50));
        assert_eq!(minimum_charge(currency("GBP")), Some(30));
        assert_eq!(minimum_charge(currency("HUF")), Some(17500));
        assert_eq!(minimum_charge(currency("XOF")), None);
    }

    #[test]
    fn the_minimum_table_is_sorted_for_binary_search() {
        assert!(MINIMUM_CHARGES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(
            MINIMUM_CHARGES
                .iter()
                .all(|(code, _)| Currency::parse(code).is_ok())
        );
    }

    fn api(status: u16, kind: &str, code: Option<&str>) -> StripeError {
        StripeError::Api {
            status,
            kind: kind.into(),
            code: code.map(Into::into),
            message: String::new(),
            param: None,
        }
    }

    #[test]
    fn errors_are_sorted_into_retryable_or_not() {
        assert!(api(429, "invalid_request_error", Some("rate_limit")).is_retryable());
        assert!(api(500, "api_error", None).is_retryable());
        assert!(api(503, "api_error", None).is_retryable());
        assert!(api(409, "invalid_request_error", Some("idempotency_key_in_use")).is_retryable());
        assert!(StripeError::Transport("connection refused".into()).is_retryable());
        assert!(!api(400, "idempotency_error", None).is_retryable());
        assert!(!api(409, "idempotency_error", None).is_retryable());
        assert!(!api(402, "card_error", Some("card_declined")).is_retryable());
        assert!(!api(400, "invalid_request_error", Some("parameter_missing")).is_retryable());
        assert!(!api(401, "invalid_request_error", None).is_retryable());
        assert!(!api(404, "invalid_request_error", Some("resource_missing")).is_retryable());
        assert!(!StripeError::Decode("?".into()).is_retryable());
        assert!(!StripeError::Invalid("?".into()).is_retryable());
        assert!(!StripeError::Config("?".into()).is_retryable());
    }

    #[test]
    fn key_shaped_words_in_stripe_messages_are_redacted() {
        assert_eq!(
            redact_keys("Invalid API Key provided: sk_test_abc123 (or 'rk_live_x', whsec_y)."),
            "Invalid API Key provided: [redacted] (or [redacted] [redacted]"
        );
        assert_eq!(
            redact_keys("No such checkout.session: 'cs_1'"),
            "No such checkout.session: 'cs_1'"
        );
    }

    #[test]
    fn the_client_refuses_an_empty_key_or_a_base_that_is_not_http() {
        let key = SecretString::from("sk_test_123");
        assert!(StripeClient::new(&key, "http://127.0.0.1:1").is_ok());
        assert!(StripeClient::new(&key, "https://api.stripe.com/").is_ok());
        let err = StripeClient::new(&SecretString::from(""), "https://api.stripe.com").unwrap_err();
        assert!(matches!(err, StripeError::Config(_)));
        let err = StripeClient::new(&key, "api.stripe.com").unwrap_err();
        assert!(matches!(err, StripeError::Config(_)));
        let err =
            StripeClient::new(&SecretString::from("sk_test_\n1"), "https://api.stripe.com").unwrap_err();
        assert!(matches!(err, StripeError::Config(_)));
        assert!(!err.to_string().contains("sk_test"), "{err}");
    }

    fn line(name: &str, minor: i64, code: &str, quantity: u32) -> CheckoutLine {
        CheckoutLine {
            name: name.into(),
            image_url: None,
            unit_amount: Money::from_minor(minor, currency(code)),
            quantity,
        }
    }

    fn checkout(code: &str, lines: Vec<CheckoutLine>, discount: Option<i64>) -> NewCheckout {
        NewCheckout {
            order_id: crate::kernel::OrderId(uuid::Uuid::nil()),
            lines,
            discount: discount.map(|d| Money::from_minor(d, currency(code))),
            currency: currency(code),
            expires_at: NOW + 3600,
            success_url: "https://shop.example/paid".into(),
            cancel_url: "https://shop.example/cart".into(),
            locale: None,
        }
    }

    /// (unit amount, quantity) of each Stripe line.
    fn sent(req: &NewCheckout) -> Result<Vec<(i64, u64)>, StripeError> {
        Ok(req
            .stripe_lines()?
            .iter()
            .map(|l| (l.unit_amount, l.quantity))
            .collect())
    }

    #[test]
    fn without_a_discount_lines_go_as_they_are() {
        let req = checkout(
            "EUR",
            vec![line("Slippers", 4990, "EUR", 1), line("Socks", 900, "EUR", 2)],
            None,
        );
        assert_eq!(sent(&req).unwrap(), vec![(4990, 1), (900, 2)]);
    }

    #[test]
    fn a_discount_is_spread_over_the_lines_in_proportion() {
        // 20 % of 67.90: 13.58 off, 9.98 from the slippers and 3.60 from the socks.
        let req = checkout(
            "EUR",
            vec![line("Slippers", 4990, "EUR", 1), line("Socks", 900, "EUR", 2)],
            Some(1358),
        );
        assert_eq!(sent(&req).unwrap(), vec![(3992, 1), (720, 2)]);
    }

    #[test]
    fn a_line_whose_share_does_not_divide_splits_so_the_total_is_exact() {
        let req = checkout("EUR", vec![line("Socks", 1000, "EUR", 3)], Some(100));
        assert_eq!(sent(&req).unwrap(), vec![(967, 2), (966, 1)]);
    }

    #[test]
    fn a_discount_of_the_whole_subtotal_makes_every_line_free() {
        let req = checkout(
            "EUR",
            vec![line("A", 1000, "EUR", 3), line("B", 1, "EUR", 1)],
            Some(3001),
        );
        assert_eq!(sent(&req).unwrap(), vec![(0, 3), (0, 1)]);
    }

    #[test]
    fn discounts_that_cannot_reach_stripe_are_refused() {
        let over = checkout("EUR", vec![line("A", 1000, "EUR", 1)], Some(1001));
        assert!(matches!(sent(&over), Err(StripeError::Invalid(_))));
        let negative = checkout("EUR", vec![line("A", 1000, "EUR", 1)], Some(-1));
        assert!(matches!(sent(&negative), Err(StripeError::Invalid(_))));
        let mut other = checkout("EUR", vec![line("A", 1000, "EUR", 1)], None);
        other.discount = Some(Money::from_minor(100, currency("USD")));
        assert!(matches!(sent(&other), Err(StripeError::Invalid(_))));
    }

    #[test]
    fn lines_that_cannot_reach_stripe_are_refused() {
        let cases = [
            checkout("EUR", vec![], None),
            checkout("EUR", vec![line("A", 1000, "USD", 1)], None),
            checkout("EUR", vec![line("A", -1, "EUR", 1)], None),
            checkout("EUR", vec![line("A", 1000, "EUR", 0)], None),
            checkout("EUR", vec![line(" ", 1000, "EUR", 1)], None),
            checkout("EUR", (0..101).map(|_| line("A", 100, "EUR", 1)).collect(), None),
        ];
        for req in cases {
            assert!(matches!(sent(&req), Err(StripeError::Invalid(_))), "{req:?}");
        }
    }

    #[test]
    fn splitting_lines_past_stripes_limit_is_refused() {
        let lines = (0..60).map(|_| line("A", 1000, "EUR", 3)).collect();
        assert!(matches!(
            sent(&checkout("EUR", lines, Some(6000))),
            Err(StripeError::Invalid(_))
        ));
    }

    #[test]
    fn amounts_follow_stripes_units_for_special_currencies() {
        assert_eq!(
            sent(&checkout("JPY", vec![line("A", 5000, "JPY", 1)], None)).unwrap(),
            vec![(5000, 1)]
        );
        // ISK is zero-decimal, sent with two zeros; a discount moves it in whole krónur.
        let isk = checkout("ISK", vec![line("A", 1001, "ISK", 2)], Some(3));
        assert_eq!(sent(&isk).unwrap(), vec![(100_000, 1), (99_900, 1)]);
        // MGA is two-decimal for ISO, zero-decimal for Stripe.
        assert_eq!(
            sent(&checkout("MGA", vec![line("A", 500_000, "MGA", 1)], None)).unwrap(),
            vec![(5000, 1)]
        );
        assert!(sent(&checkout("MGA", vec![line("A", 500_050, "MGA", 1)], None)).is_err());
        // Three-decimal currencies move in steps of ten.
        let kwd = checkout("KWD", vec![line("A", 5120, "KWD", 3)], Some(1000));
        assert_eq!(sent(&kwd).unwrap(), vec![(4790, 2), (4780, 1)]);
        assert!(sent(&checkout("KWD", vec![line("A", 5125, "KWD", 1)], None)).is_err());
    }

    #[test]
    fn stripe_amounts_come_back_as_our_money() {
        assert_eq!(
            from_stripe_amount(99_900, currency("ISK")),
            Some(Money::from_minor(999, currency("ISK")))
        );
        assert_eq!(
            from_stripe_amount(5000, currency("MGA")),
            Some(Money::from_minor(500_000, currency("MGA")))
        );
        assert_eq!(
            from_stripe_amount(4990, currency("EUR")),
            Some(Money::from_minor(4990, currency("EUR")))
        );
        assert_eq!(from_stripe_amount(99_950, currency("ISK")), None);
    }

    #[test]
    fn stripes_zero_decimal_currencies_have_no_iso_decimals_here_except_mga() {
        for code in [
            "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "PYG", "RWF", "VND", "VUV", "XAF", "XOF", "XPF",
        ] {
            assert_eq!(currency(code).exponent(), 0, "{code}");
            assert_eq!(wire_unit(currency(code)), WireUnit::Same, "{code}");
        }
        assert_eq!(currency("MGA").exponent(), 2);
    }

    #[test]
    fn shopper_locales_map_to_checkout_locales() {
        assert_eq!(checkout_locale("fr_FR"), "fr");
        assert_eq!(checkout_locale("en_GB"), "en-GB");
        assert_eq!(checkout_locale("en_US"), "en");
        assert_eq!(checkout_locale("pt-br"), "pt-BR");
        assert_eq!(checkout_locale("zh_TW"), "zh-TW");
        assert_eq!(checkout_locale("de"), "de");
        assert_eq!(checkout_locale("xx_YY"), "auto");
        assert_eq!(checkout_locale(""), "auto");
    }

    #[test]
    fn ids_that_could_escape_the_url_path_are_refused() {
        assert!(stripe_id("cs_test_a1YS1URlnyQ", "cs_").is_ok());
        for bad in [
            "",
            "cs_",
            "pi_123",
            "cs_../../v1/refunds",
            "cs_1?expand[]=x",
            "cs_1/expire",
        ] {
            assert!(stripe_id(bad, "cs_").is_err(), "{bad}");
        }
    }

    fn any_lines() -> impl Strategy<Value = Vec<(i64, u32)>> {
        proptest::collection::vec((0_i64..1_000_000, 1_u32..20), 1..10)
    }

    proptest! {
        #[test]
        fn a_spread_discount_takes_exactly_the_discount_off(lines in any_lines(), percent in 0_i64..=100) {
            let subtotal: i64 = lines.iter().map(|(u, q)| u * i64::from(*q)).sum();
            let discount = subtotal * percent / 100;
            let lines: Vec<CheckoutLine> = lines.iter().map(|(u, q)| line("A", *u, "EUR", *q)).collect();
            let req = checkout("EUR", lines.clone(), Some(discount));
            let out = req.stripe_lines().unwrap();
            let total: i64 = out.iter().map(|l| l.unit_amount * i64::try_from(l.quantity).unwrap()).sum();
            prop_assert_eq!(total, subtotal - discount);
            prop_assert!(out.len() <= 2 * lines.len());
            prop_assert!(out.iter().all(|l| l.unit_amount >= 0 && l.quantity > 0));
            let units: u64 = out.iter().map(|l| l.quantity).sum();
            prop_assert_eq!(units, lines.iter().map(|l| u64::from(l.quantity)).sum::<u64>());
        }
    }
}
