//! The payments service: what Stripe's word means for an order, and the refunds a merchant asks for.
//!
//! - An order's Checkout Session is made ([`Payments::open_session`]), or the order fails and a person
//!   takes over.
//! - A Stripe event ([`Payments::apply_event`]) moves the order to what its session says at Stripe now
//!   (paid, processing, failed, expired; a payment of another amount than the order's total is left for
//!   review), records refunds (`charge.refunded` asks Stripe for the charge's refunds, `refund.*` carries
//!   one) and flags disputes. Sweeping ([`Payments::close_session`], [`Payments::expire_overdue`]) and
//!   reconciling ([`Payments::reconcile`]) reach the same ends without a webhook.
//! - A payment for an order that had already ended here is settled: honoured when its goods are still
//!   there, refunded in full otherwise.
//! - Refunds asked through the API, for an order ([`refund_order`]) or a cancelled stay ([`cancel_stay`]),
//!   go to Stripe under an idempotency key, then are recorded.
//!
//! Calls to Stripe happen outside any transaction: the order is the recorded intent, Stripe's answer is
//! recorded after. The payments worker only decides when (claims, retries, wakes); the HTTP handlers only
//! parse and call. What the shopper is told goes through [`Shopper`], so checkout does not depend on the
//! conversations.

use chrono::NaiveDateTime;
use uuid::Uuid;

use super::events::Outcome;
use super::orders::{self, LatePayment, MoveError, Order, OrderStatus, RefundError, SessionTry};
use super::stripe::{
    CheckoutLine, CheckoutSession, NewCheckout, PaymentStatus, Refund, RefundReason, SessionStatus,
    StripeClient, StripeError, from_stripe_amount,
};
use super::webhook::{EventKind, RefundObject, StripeEvent};
use crate::bookings::{self, Booking, BookingError, BookingStatus};
use crate::db::{Db, DbConnection, DbError, now};
use crate::kernel::{MerchantId, OrderId, ThreadId};
use crate::money::{Money, MoneyError};

/// Calls at creating a session before the order is given up.
const MAX_SESSION_TRIES: i32 = 5;

/// The margin added to a session's expiry, so that Stripe's 30-minute minimum still holds when the
/// request takes time or is repeated after a lost answer.
const EXPIRY_MARGIN: chrono::Duration = chrono::Duration::seconds(90);

/// Why a payment operation failed. The worker retries; the HTTP edge maps each to its problem code.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    /// `STRIPE_SECRET_KEY` is not set: refunds go through Stripe.
    #[error("payments are disabled: STRIPE_SECRET_KEY is not set")]
    Disabled,
    /// No such order for this merchant.
    #[error("order not found")]
    OrderNotFound,
    /// Only a paid (or partly refunded) order can be refunded.
    #[error("only a paid order can be refunded")]
    NotRefundable,
    /// The amount is not more than zero and at most what is not yet refunded, in the order's currency.
    #[error("a refund is more than zero and at most the {remaining} not yet refunded")]
    InvalidRefund {
        /// What is not yet refunded.
        remaining: Money,
    },
    /// The `Idempotency-Key` was used for a refund of another amount.
    #[error("this Idempotency-Key was used for a refund of another amount")]
    KeyReused,
    /// A booking could not be cancelled or refunded.
    #[error(transparent)]
    Booking(#[from] BookingError),
    /// A paid order's stay can no longer be booked (see [`MoveError::StayTaken`]).
    #[error("a stay the order pays for can no longer be booked")]
    StayTaken(#[source] BookingError),
    /// Stripe made a refund that could not be recorded here; a retry with the same key records it.
    #[error("a refund made at Stripe was not recorded")]
    RefundNotRecorded(#[source] RefundError),
    /// Stripe failed or refused ([`StripeError::is_retryable`] tells which).
    #[error(transparent)]
    Stripe(#[from] StripeError),
    /// The order's money does not add up.
    #[error(transparent)]
    Money(#[from] MoneyError),
    /// The database failed or could not be reached.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for PaymentsError {
    fn from(e: diesel::result::Error) -> Self {
        PaymentsError::Db(e.into())
    }
}

impl From<MoveError> for PaymentsError {
    fn from(e: MoveError) -> Self {
        match e {
            MoveError::StayTaken(booking) => PaymentsError::StayTaken(booking),
            MoveError::Db(e) => e.into(),
        }
    }
}

/// What the shopper of an order's thread is told about its payment, and the locale Stripe's page opens
/// in. The conversations say it; the payments worker hands them in.
pub trait Shopper: Sync {
    /// The shopper's locale (`fr_FR`), when known.
    fn locale(&self, conn: &mut DbConnection, thread_id: ThreadId) -> diesel::QueryResult<Option<String>>;
    /// Stripe's page is ready at `url`: the Pay button.
    fn pay_button(&self, conn: &mut DbConnection, order: &Order, url: &str) -> diesel::QueryResult<()>;
    /// No payment page could be opened: a person takes over.
    fn payment_unavailable(&self, conn: &mut DbConnection, order: &Order) -> diesel::QueryResult<()>;
    /// The order moved to `next` (a receipt once paid).
    fn order_moved(
        &self,
        conn: &mut DbConnection,
        order: &Order,
        next: OrderStatus,
    ) -> diesel::QueryResult<()>;
    /// A late payment went back in full.
    fn late_payment_refunded(&self, conn: &mut DbConnection, order: &Order) -> diesel::QueryResult<()>;
}

/// The shopper of an order's thread was told something: the thread's sender has replies to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    /// The order told about.
    pub order_id: OrderId,
    /// Its thread.
    pub thread_id: ThreadId,
}

fn told(order: &Order) -> Option<Told> {
    order.thread_id.map(|thread_id| Told {
        order_id: order.id,
        thread_id,
    })
}

/// How an event was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// How the event ends, as its stored row keeps it.
    pub outcome: Outcome,
    /// The shopper told about it, if any.
    pub told: Option<Told>,
}

impl Applied {
    fn untold(outcome: Outcome) -> Applied {
        Applied { outcome, told: None }
    }
}

/// When a session asked for now ends: `ttl` (the configured 30 minutes to 24 hours) and a margin, within
/// Stripe's bounds.
pub fn session_expiry(ttl: std::time::Duration) -> NaiveDateTime {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(30));
    now() + (ttl + EXPIRY_MARGIN).min(chrono::Duration::hours(24) - EXPIRY_MARGIN)
}

fn unix(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp()
}

fn from_unix(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(now, |d| d.naive_utc())
}

/// The Stripe locale of a Messenger locale (`fr_FR` -> `fr`).
fn locale(messenger: Option<&str>) -> Option<String> {
    messenger.map(|l| l.replace('_', "-"))
}

/// The Checkout Session asked for the order: its lines at their prices, its discount, the claimed call's
/// expiry, and the pages Stripe sends the shopper back to.
fn checkout_request(
    order: &Order,
    call: &SessionTry,
    public_url: &str,
    locale: Option<String>,
) -> NewCheckout {
    NewCheckout {
        order_id: order.id,
        lines: order
            .lines
            .iter()
            .map(|l| CheckoutLine {
                name: if l.variant_name == l.title {
                    l.title.clone()
                } else {
                    format!("{} ({})", l.title, l.variant_name)
                },
                image_url: l.image_url.clone(),
                unit_amount: l.unit_price,
                quantity: l.quantity,
            })
            .collect(),
        discount: (!order.discount.is_negative() && order.discount.minor() > 0).then_some(order.discount),
        currency: order.currency,
        expires_at: unix(call.expires_at),
        success_url: format!("{public_url}/checkout/success?order={}", order.id),
        cancel_url: format!("{public_url}/checkout/cancel?order={}", order.id),
        locale,
    }
}

/// What a session's state at Stripe means for its order; `delayed_payment_failed` when Stripe said so
/// (`checkout.session.async_payment_failed`): a complete session is otherwise still processing.
fn next_status(session: &CheckoutSession, delayed_payment_failed: bool) -> Option<OrderStatus> {
    match (session.status, session.payment_status) {
        (SessionStatus::Complete, PaymentStatus::Paid | PaymentStatus::NoPaymentRequired) => {
            Some(OrderStatus::Paid)
        }
        (SessionStatus::Complete, _) if delayed_payment_failed => Some(OrderStatus::PaymentFailed),
        (SessionStatus::Complete, _) => Some(OrderStatus::Processing),
        (SessionStatus::Expired, _) => Some(OrderStatus::Expired),
        _ => None,
    }
}

/// The payments service as the payments worker uses it: Stripe's sessions and events applied to orders.
pub struct Payments<'a> {
    db: &'a Db,
    stripe: &'a StripeClient,
    shopper: &'static dyn Shopper,
    public_url: &'a str,
}

impl<'a> Payments<'a> {
    /// The service over `db` and `stripe`, telling shoppers through `shopper`; Stripe sends shoppers back
    /// to `public_url`.
    pub fn new(
        db: &'a Db,
        stripe: &'a StripeClient,
        shopper: &'static dyn Shopper,
        public_url: &'a str,
    ) -> Payments<'a> {
        Payments {
            db,
            stripe,
            shopper,
            public_url,
        }
    }

    /// Makes the Checkout Session of an order awaiting payment with the call claimed for it (its
    /// `Idempotency-Key` and expiry: a repeated call gets the session Stripe made), records it and sends
    /// the Pay button. A retryable failure is left to the next claim; one Stripe refuses for good fails
    /// the order and hands the shopper to a person. A session made for an order that ended meanwhile is
    /// expired at Stripe at once.
    #[tracing::instrument(skip_all, fields(order.id = %order.id, tries = call.tries))]
    pub async fn open_session(&self, order: Order, call: SessionTry) -> Result<Option<Told>, PaymentsError> {
        let shopper = self.shopper;
        let customer_locale = match order.thread_id {
            Some(t) => self.db.query(move |conn| shopper.locale(conn, t)).await?,
            None => None,
        };
        let request = checkout_request(&order, &call, self.public_url, locale(customer_locale.as_deref()));
        let (order_id, told) = (order.id, told(&order));
        match self.stripe.create_checkout_session(&request, &call.key).await {
            Ok(session) => {
                let Some(url) = session.url.clone() else {
                    tracing::error!(order.id = %order_id, "Stripe answered a session without a URL");
                    return Ok(None);
                };
                let expires = session.expires_at.map_or(call.expires_at, from_unix);
                let session_id = session.id.clone();
                let attempt = call.attempt;
                let recorded = self
                    .db
                    .query(move |conn| {
                        let recorded =
                            orders::record_session(conn, order_id, &session.id, &url, expires, attempt)?;
                        if recorded {
                            shopper.pay_button(conn, &order, &url)?;
                        }
                        Ok(recorded)
                    })
                    .await?;
                if recorded {
                    tracing::info!(order.id = %order_id, "Checkout Session created");
                    return Ok(told);
                }
                if let Err(e) = self.stripe.expire_checkout_session(&session_id).await {
                    // The order ended while its session was being made: that page must not take a payment.
                    tracing::warn!(order.id = %order_id, error = %e, "session of an ended order not expired at Stripe");
                }
                Ok(None)
            }
            Err(e) if e.is_retryable() && call.tries < MAX_SESSION_TRIES => {
                // The same key goes again: if Stripe made the session, it answers with that one.
                tracing::warn!(order.id = %order_id, tries = call.tries, error = %e, "Checkout Session not created; will retry");
                Ok(None)
            }
            Err(StripeError::Api {
                status: 400,
                param: Some(param),
                ..
            }) if param == "expires_at" && call.tries < MAX_SESSION_TRIES => {
                // A repeated request whose expiry is now too close: Stripe never ran it (or it would have
                // replayed the session), so a new key with a new expiry makes no second session.
                tracing::warn!(order.id = %order_id, tries = call.tries, "session expiry too close for a repeat; a new request follows");
                self.db
                    .query(move |conn| orders::drop_session_key(conn, order_id))
                    .await?;
                Ok(None)
            }
            Err(e) => {
                tracing::error!(order.id = %order_id, tries = call.tries, error = %e, "Checkout Session could not be created");
                self.db
                    .run(move |conn| {
                        orders::transition(conn, order_id, OrderStatus::PaymentFailed, None, now())?;
                        shopper.payment_unavailable(conn, &order)?;
                        Ok::<_, PaymentsError>(())
                    })
                    .await?;
                Ok(told)
            }
        }
    }

    /// Applies a Stripe event: a session's event brings its order to what the session says at Stripe
    /// now (events can be late, repeated or out of order), a refund is recorded once per refund id, a
    /// dispute flags the order (one closed as `won` clears the flag). `ignored` when it names nothing of
    /// ours or is not an event threadcart acts on.
    #[tracing::instrument(skip_all, fields(stripe.event = %event.id, stripe.type = %event.kind.type_name()))]
    pub async fn apply_event(&self, event: StripeEvent) -> Result<Applied, PaymentsError> {
        match event.kind {
            EventKind::CheckoutSessionCompleted { session_id }
            | EventKind::CheckoutSessionAsyncPaymentSucceeded { session_id }
            | EventKind::CheckoutSessionExpired { session_id } => self.session_event(session_id, false).await,
            EventKind::CheckoutSessionAsyncPaymentFailed { session_id } => {
                self.session_event(session_id, true).await
            }
            EventKind::ChargeRefunded { payment_intent } => {
                self.sync_refunds(payment_intent).await.map(Applied::untold)
            }
            EventKind::RefundCreated(refund)
            | EventKind::RefundUpdated(refund)
            | EventKind::RefundFailed(refund) => self.record_refund_event(refund).await.map(Applied::untold),
            EventKind::DisputeCreated { payment_intent } => {
                self.set_disputed(payment_intent, true).await.map(Applied::untold)
            }
            EventKind::DisputeClosed {
                payment_intent,
                status,
            } if status.as_deref() == Some("won") => self
                .set_disputed(payment_intent, false)
                .await
                .map(Applied::untold),
            EventKind::DisputeClosed { .. } | EventKind::Other(_) => Ok(Applied::untold(Outcome::Ignored)),
        }
    }

    /// A `checkout.session.*` event; `ignored` when the session is not one of ours (another integration
    /// on the same Stripe account).
    async fn session_event(
        &self,
        session_id: String,
        delayed_payment_failed: bool,
    ) -> Result<Applied, PaymentsError> {
        let sid = session_id.clone();
        let Some(order) = self
            .db
            .query(move |conn| orders::find_by_session(conn, &sid))
            .await?
        else {
            return Ok(Applied::untold(Outcome::Ignored));
        };
        let session = self.stripe.retrieve_checkout_session(&session_id).await?;
        self.apply_session(order, delayed_payment_failed, &session).await
    }

    /// Brings the order to what its session says at Stripe now; `review` when Stripe charged another
    /// amount than the order's total (never accepted silently: a person looks at it).
    async fn apply_session(
        &self,
        order: Order,
        delayed_payment_failed: bool,
        session: &CheckoutSession,
    ) -> Result<Applied, PaymentsError> {
        let Some(next) = next_status(session, delayed_payment_failed) else {
            return Ok(Applied::untold(Outcome::Done));
        };
        if next == OrderStatus::Paid && session.total() != Some(order.total) {
            tracing::error!(
                order.id = %order.id,
                order.total = %order.total,
                stripe.total = ?session.total(),
                "paid amount differs from the order's total: left for review"
            );
            return Ok(Applied::untold(Outcome::Review));
        }
        let told = self
            .apply_status(order, next, session.payment_intent.clone())
            .await?;
        Ok(Applied {
            outcome: Outcome::Done,
            told,
        })
    }

    /// Moves an order and tells the shopper (a receipt once paid). A payment for an order that had ended
    /// here is settled (see [`Payments::settle_late`]).
    async fn apply_status(
        &self,
        order: Order,
        next: OrderStatus,
        payment_intent: Option<String>,
    ) -> Result<Option<Told>, PaymentsError> {
        let (order_id, shopper) = (order.id, self.shopper);
        let intent = payment_intent.clone();
        let snapshot = order.clone();
        let moved = self
            .db
            .run(move |conn| {
                let moved = orders::transition(conn, order_id, next, intent.as_deref(), now())?;
                if moved {
                    shopper.order_moved(conn, &snapshot, next)?;
                }
                Ok::<_, PaymentsError>(moved)
            })
            .await?;
        if moved {
            return Ok(told(&order));
        }
        if next == OrderStatus::Paid {
            return self.settle_late(order, payment_intent).await;
        }
        Ok(None)
    }

    /// A payment Stripe took for an order that had ended here (expired, superseded, failed): honoured
    /// when its stock can be taken again (the shopper gets the receipt), otherwise refunded in full at once
    /// (the shopper is told why). The shopper's money is never kept without the goods. Repeating it (a
    /// retried event, a later sweep) changes nothing more: the refund goes with a key of its own.
    async fn settle_late(
        &self,
        order: Order,
        payment_intent: Option<String>,
    ) -> Result<Option<Told>, PaymentsError> {
        let (order_id, shopper) = (order.id, self.shopper);
        let intent = payment_intent.clone();
        let outcome = self
            .db
            .query(move |conn| orders::settle_late_payment(conn, order_id, intent.as_deref(), now()))
            .await?;
        match outcome {
            LatePayment::NotLate => Ok(None),
            LatePayment::Honoured => {
                self.db
                    .query(move |conn| {
                        let paid = orders::load_order(conn, order_id)?;
                        shopper.order_moved(conn, &paid, OrderStatus::Paid)
                    })
                    .await?;
                Ok(told(&order))
            }
            LatePayment::RefundDue => {
                let Some(intent) = payment_intent.or(order.stripe_payment_intent_id.clone()) else {
                    tracing::error!(order.id = %order_id, "late payment to refund without its PaymentIntent");
                    return Ok(None);
                };
                let key = format!("order-{order_id}-late-refund");
                let refund = self
                    .stripe
                    .create_refund(
                        &intent,
                        order.total,
                        &key,
                        Some(RefundReason::RequestedByCustomer),
                    )
                    .await?;
                let amount = from_stripe_amount(refund.amount, order.currency).unwrap_or(order.total);
                self.db
                    .run(move |conn| {
                        let refunded =
                            orders::record_late_refund(conn, order_id, &refund.id, amount, &refund.status)
                                .map_err(PaymentsError::RefundNotRecorded)?;
                        shopper.late_payment_refunded(conn, &refunded)?;
                        Ok::<_, PaymentsError>(())
                    })
                    .await?;
                Ok(told(&order))
            }
        }
    }

    /// Ends an order awaiting payment whose hold ran out: Stripe is asked first, so a payment completed at
    /// the last moment is kept, and an open session is expired at Stripe before the stock is given back.
    /// An order that never had a session is expired here.
    #[tracing::instrument(skip_all, fields(order.id = %order.id))]
    pub async fn expire_overdue(&self, order: Order) -> Result<Option<Told>, PaymentsError> {
        let Some(session_id) = order.stripe_session_id.clone() else {
            // No session was ever recorded: nothing at Stripe can be paid through us.
            return self.apply_status(order, OrderStatus::Expired, None).await;
        };
        let session = match self.stripe.retrieve_checkout_session(&session_id).await {
            Ok(s) if s.status == SessionStatus::Open => {
                self.stripe.expire_checkout_session(&session_id).await
            }
            other => other,
        }?;
        Ok(self.apply_session(order, false, &session).await?.told)
    }

    /// Brings an order whose payment is not settled to what its session says at Stripe, as its webhook
    /// would have: a webhook lost for good, or a worker that was down, still ends in the right state.
    #[tracing::instrument(skip_all, fields(order.id = %order.id))]
    pub async fn reconcile(&self, order: Order) -> Result<Option<Told>, PaymentsError> {
        let session_id = order.stripe_session_id.clone().unwrap_or_default();
        let session = self.stripe.retrieve_checkout_session(&session_id).await?;
        Ok(self.apply_session(order, false, &session).await?.told)
    }

    /// Expires at Stripe the session of an order that ended here (superseded by a changed cart, expired,
    /// failed), so that it can no longer be paid, and remembers it is closed. One that was paid meanwhile
    /// is settled (honoured when its goods are still there, refunded in full otherwise). An error leaves it open, for the
    /// next sweep.
    #[tracing::instrument(skip_all, fields(order.id = %order_id))]
    pub async fn close_session(
        &self,
        order_id: OrderId,
        session_id: &str,
    ) -> Result<Option<Told>, PaymentsError> {
        let told = match self.stripe.expire_checkout_session(session_id).await {
            Ok(_) => None,
            Err(e) if e.is_retryable() => return Err(e.into()),
            // Already expired or completed: Stripe says which.
            Err(_) => {
                let session = self.stripe.retrieve_checkout_session(session_id).await?;
                if session.status == SessionStatus::Complete {
                    let order = self
                        .db
                        .query(move |conn| orders::load_order(conn, order_id))
                        .await?;
                    self.apply_session(order, false, &session).await?.told
                } else {
                    None
                }
            }
        };
        self.db
            .query(move |conn| orders::mark_session_closed(conn, order_id))
            .await?;
        Ok(told)
    }

    /// `charge.refunded` (sent for every refund, partial ones included, on every API version): the
    /// charge's refunds are read from Stripe and each recorded once by its id, so refunds made in Stripe's
    /// dashboard reach the order whether or not `refund.*` events are subscribed. `ignored` when it names
    /// no order.
    async fn sync_refunds(&self, payment_intent: String) -> Result<Outcome, PaymentsError> {
        let pi = payment_intent.clone();
        let Some(order) = self
            .db
            .query(move |conn| orders::find_by_payment_intent(conn, &pi))
            .await?
        else {
            return Ok(Outcome::Ignored);
        };
        let refunds = self.stripe.list_refunds(&payment_intent).await?;
        let order_id = order.id;
        self.db
            .query(move |conn| {
                for refund in refunds.iter().rev() {
                    let Some(amount) = from_stripe_amount(refund.amount, order.currency) else {
                        continue;
                    };
                    match orders::record_refund(conn, order_id, &refund.id, amount, &refund.status) {
                        Ok(_) => {}
                        Err(RefundError::Db(e)) => return Err(e),
                        Err(e) => {
                            tracing::error!(order.id = %order_id, error = %e, "refund from Stripe not recorded")
                        }
                    }
                }
                Ok(())
            })
            .await?;
        Ok(Outcome::Done)
    }

    /// `refund.*`: the refund (made through our API or in Stripe's dashboard) is recorded on its order,
    /// once per refund id; `ignored` when it names no order of ours or cannot be recorded.
    async fn record_refund_event(&self, refund: RefundObject) -> Result<Outcome, PaymentsError> {
        let outcome = self
            .db
            .query(move |conn| {
                let Some(order) = orders::find_by_payment_intent(conn, &refund.payment_intent)? else {
                    return Ok(Outcome::Ignored);
                };
                let Some(amount) = from_stripe_amount(refund.amount, order.currency) else {
                    return Ok(Outcome::Ignored);
                };
                match orders::record_refund(conn, order.id, &refund.id, amount, &refund.status) {
                    Ok(_) => Ok(Outcome::Done),
                    Err(RefundError::Db(e)) => Err(e),
                    Err(e) => {
                        tracing::error!(order.id = %order.id, error = %e, "refund event not recorded");
                        Ok(Outcome::Ignored)
                    }
                }
            })
            .await?;
        Ok(outcome)
    }

    /// Flags (or clears) a dispute on the order paid with `payment_intent`; `ignored` when it names no
    /// order of ours.
    async fn set_disputed(&self, payment_intent: String, disputed: bool) -> Result<Outcome, PaymentsError> {
        let outcome = self
            .db
            .query(move |conn| {
                let Some(order) = orders::find_by_payment_intent(conn, &payment_intent)? else {
                    return Ok(Outcome::Ignored);
                };
                orders::set_disputed(conn, order.id, disputed)?;
                Ok(Outcome::Done)
            })
            .await?;
        Ok(outcome)
    }
}

/// A refund of an order asked through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAsk {
    /// What to give back; the whole amount not yet refunded when `None`.
    pub amount: Option<Money>,
    /// Why, as Stripe records it.
    pub reason: Option<RefundReason>,
    /// The caller's `Idempotency-Key`: a repeated request answers the refund it made.
    pub request_key: Option<String>,
}

/// A refund as Stripe made it (now, or under the same key before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundMade {
    /// `re_...`.
    pub id: String,
    /// Stripe's status.
    pub status: String,
    /// The amount.
    pub amount: Money,
    /// The order it was made for.
    pub order_id: OrderId,
}

impl RefundMade {
    fn new(refund: Refund, amount: Money, order_id: OrderId) -> RefundMade {
        RefundMade {
            id: refund.id,
            status: refund.status,
            amount,
            order_id,
        }
    }
}

/// What refunding an order did: the refund and the order as it is now (as it was, for a repeated
/// request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRefunded {
    /// The refund.
    pub refund: RefundMade,
    /// The order.
    pub order: Order,
}

/// A cancelled stay, with its refund when one was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StayCancelled {
    /// The booking, cancelled.
    pub booking: Booking,
    /// The refund of its share of the paid order.
    pub refund: Option<RefundMade>,
}

/// Refunds the merchant's paid order through Stripe (outside any transaction), then records the refund:
/// the order becomes `partially_refunded` or `refunded`. Without an amount, all that is not yet refunded.
/// Under a `request_key`, a repeated request answers the refund it made and never refunds twice (the same
/// key with another amount is `KeyReused`); without one, a retry before the first refund was recorded is
/// still refunded once (the key sent to Stripe names what was refunded so far and the amount).
#[tracing::instrument(skip_all, fields(merchant.id = %merchant_id, order.id = %order_id))]
pub async fn refund_order(
    db: &Db,
    stripe: Option<&StripeClient>,
    merchant_id: MerchantId,
    order_id: OrderId,
    ask: RefundAsk,
) -> Result<OrderRefunded, PaymentsError> {
    let order = db
        .query(move |conn| orders::get(conn, merchant_id, order_id))
        .await?
        .ok_or(PaymentsError::OrderNotFound)?;
    // Asked only once the order is known to be the caller's: another merchant's is not found, whatever
    // the setup.
    let stripe = stripe.ok_or(PaymentsError::Disabled)?;
    if let Some(request_key) = ask.request_key.clone() {
        // A repeated request answers the refund it made, whatever happened to the order since.
        let made = db
            .query(move |conn| orders::refund_by_request_key(conn, order_id, &request_key))
            .await?;
        if let Some(made) = made {
            if ask.amount.is_some_and(|a| a != made.amount) {
                return Err(PaymentsError::KeyReused);
            }
            let refund = RefundMade {
                id: made.stripe_refund_id,
                status: made.status,
                amount: made.amount,
                order_id,
            };
            return Ok(OrderRefunded { refund, order });
        }
    }
    let remaining = order.total.checked_sub(order.refunded)?;
    let amount = ask.amount.unwrap_or(remaining);
    if amount.currency() != order.currency || amount.minor() <= 0 || amount.minor() > remaining.minor() {
        return Err(PaymentsError::InvalidRefund { remaining });
    }
    let (Some(intent), OrderStatus::Paid | OrderStatus::PartiallyRefunded) =
        (order.stripe_payment_intent_id.clone(), order.status)
    else {
        return Err(PaymentsError::NotRefundable);
    };
    // With the merchant's key, a repeated request reaches Stripe with the same key and is refunded once;
    // without one, a retry before the first refund was recorded still is.
    let key = match &ask.request_key {
        Some(k) => format!("refund-{order_id}-{k}"),
        None => format!("refund-{order_id}-{}-{}", order.refunded.minor(), amount.minor()),
    };
    let refund = stripe
        .create_refund(&intent, amount, &key, ask.reason)
        .await
        .map_err(|e| match e {
            StripeError::Api { kind, .. } if kind == "idempotency_error" => PaymentsError::KeyReused,
            e => PaymentsError::Stripe(e),
        })?;
    let refund = RefundMade::new(refund, amount, order_id);
    let order = record(db, &refund, ask.request_key).await?;
    tracing::info!(merchant.id = %merchant_id, order.id = %order_id, refund.id = %refund.id, "refund created");
    Ok(OrderRefunded { refund, order })
}

/// Cancels the merchant's held or confirmed booking and gives its nights back. With `refund`, the stay's
/// share of its paid order is refunded through Stripe first (outside any transaction, with a key of the
/// booking's own, so a repeated cancel refunds once) and recorded on the order; a booking without a paid
/// order is `Booking(NothingToRefund)` and nothing changes.
#[tracing::instrument(skip_all, fields(merchant.id = %merchant_id, booking.id = %booking_id))]
pub async fn cancel_stay(
    db: &Db,
    stripe: Option<&StripeClient>,
    merchant_id: MerchantId,
    booking_id: Uuid,
    refund: bool,
) -> Result<StayCancelled, PaymentsError> {
    let refund = if refund {
        Some(refund_stay(db, stripe, merchant_id, booking_id).await?)
    } else {
        None
    };
    let booking = db
        .run(move |conn| bookings::cancel(conn, merchant_id, booking_id))
        .await?;
    Ok(StayCancelled { booking, refund })
}

/// Refunds a stay's share of its paid order (see [`stay_owed`]); a repeated cancel answers the refund
/// made the first time.
async fn refund_stay(
    db: &Db,
    stripe: Option<&StripeClient>,
    merchant_id: MerchantId,
    booking_id: Uuid,
) -> Result<RefundMade, PaymentsError> {
    let owed = db
        .run(move |conn| stay_owed(conn, merchant_id, booking_id))
        .await?;
    let (order_id, payment_intent, amount) = match owed {
        StayOwed::Made(made) => return Ok(made),
        StayOwed::Due {
            order_id,
            payment_intent,
            amount,
        } => (order_id, payment_intent, amount),
    };
    let stripe = stripe.ok_or(PaymentsError::Disabled)?;
    let key = stay_refund_key(booking_id);
    let refund = stripe
        .create_refund(
            &payment_intent,
            amount,
            &key,
            Some(RefundReason::RequestedByCustomer),
        )
        .await?;
    let refund = RefundMade::new(refund, amount, order_id);
    record(db, &refund, Some(key)).await?;
    tracing::info!(booking.id = %booking_id, order.id = %refund.order_id, refund.id = %refund.id, "stay refunded");
    Ok(refund)
}

/// What cancelling a stay gives back.
enum StayOwed {
    /// A repeated cancel: the refund made the first time.
    Made(RefundMade),
    /// The stay's share of what its order was paid (its line, less its part of the order's discount), at
    /// most what the order has not had refunded yet.
    Due {
        /// The order that paid for the stay.
        order_id: OrderId,
        /// Its PaymentIntent.
        payment_intent: String,
        /// The amount to refund.
        amount: Money,
    },
}

/// The `Idempotency-Key` of the refund of a cancelled stay, also recorded with the refund.
fn stay_refund_key(booking_id: Uuid) -> String {
    format!("booking-{booking_id}-cancel-refund")
}

/// The refund owed when the merchant's booking `booking_id` is cancelled: `NothingToRefund` when no paid
/// order holds it (a hold, an unpaid order) or its order has nothing left to refund; a booking already
/// expired or released is `WrongStatus`.
fn stay_owed(
    conn: &mut DbConnection,
    merchant_id: MerchantId,
    booking_id: Uuid,
) -> Result<StayOwed, BookingError> {
    let booking = bookings::get_booking(conn, merchant_id, booking_id)?.ok_or(BookingError::NotFound)?;
    if matches!(booking.status, BookingStatus::Expired | BookingStatus::Released) {
        return Err(BookingError::WrongStatus(booking.status));
    }
    if let Some(order_id) = booking.order_id
        && let Some(made) = orders::refund_by_request_key(conn, order_id, &stay_refund_key(booking_id))?
    {
        return Ok(StayOwed::Made(RefundMade {
            id: made.stripe_refund_id,
            status: made.status,
            amount: made.amount,
            order_id,
        }));
    }
    let order = match booking.order_id {
        Some(order_id) => orders::get(conn, merchant_id, order_id)?,
        None => None,
    };
    let Some(order) =
        order.filter(|o| matches!(o.status, OrderStatus::Paid | OrderStatus::PartiallyRefunded))
    else {
        return Err(BookingError::NothingToRefund);
    };
    let Some(payment_intent) = order.stripe_payment_intent_id.clone() else {
        return Err(BookingError::NothingToRefund);
    };
    let line: i64 = order
        .lines
        .iter()
        .filter(|l| l.booking_id == Some(booking_id))
        .map(|l| l.total.minor())
        .sum();
    // The order's discount was spread over its lines: the stay gets back what was paid for it.
    let subtotal = order.subtotal.minor();
    let paid_share = if subtotal > 0 {
        i64::try_from(i128::from(line) * i128::from(order.total.minor()) / i128::from(subtotal))
            .unwrap_or(line)
    } else {
        0
    };
    let left = order.total.minor().saturating_sub(order.refunded.minor());
    let amount = paid_share.min(left);
    if amount <= 0 {
        return Err(BookingError::NothingToRefund);
    }
    Ok(StayOwed::Due {
        order_id: order.id,
        payment_intent,
        amount: Money::from_minor(amount, order.currency),
    })
}

/// Records a refund Stripe made on its order, with the key it was asked under.
async fn record(db: &Db, refund: &RefundMade, request_key: Option<String>) -> Result<Order, PaymentsError> {
    let (order_id, refund_id, amount, status) = (
        refund.order_id,
        refund.id.clone(),
        refund.amount,
        refund.status.clone(),
    );
    db.run(move |conn| {
        let order = orders::record_refund(conn, order_id, &refund_id, amount, &status)
            .map_err(PaymentsError::RefundNotRecorded)?;
        if let Some(key) = &request_key {
            orders::set_refund_request_key(conn, &refund_id, key)
                .map_err(|e| PaymentsError::RefundNotRecorded(e.into()))?;
        }
        Ok::<_, PaymentsError>(order)
    })
    .await
}
