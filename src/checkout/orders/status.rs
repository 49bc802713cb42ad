//! Where an order stands, and the moves the state machine allows between statuses.

use std::fmt;

crate::text_state! {
    /// How a payment that arrived after the order had ended here was settled.
    LateSettlement {
        /// The stock was still there: the order is paid after all.
        Honoured = "honoured",
        /// Some of it was gone: the payment goes back in full (final once decided).
        RefundDue = "refund_due",
        /// The payment went back in full.
        Refunded = "refunded",
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Frozen, stock held, waiting for the shopper to pay on Stripe's page.
    AwaitingPayment,
    /// Paid with a delayed method (bank debit ...): Stripe has not confirmed the money yet.
    Processing,
    /// Paid: stock committed, cart closed.
    Paid,
    /// The delayed payment failed: stock given back.
    PaymentFailed,
    /// Never paid (session expired or cart changed): stock given back.
    Expired,
    /// Part of the total refunded.
    PartiallyRefunded,
    /// The whole total refunded.
    Refunded,
}

impl OrderStatus {
    /// Every status, in the order an order can pass through them.
    pub const ALL: [OrderStatus; 7] = [
        OrderStatus::AwaitingPayment,
        OrderStatus::Processing,
        OrderStatus::Paid,
        OrderStatus::PaymentFailed,
        OrderStatus::Expired,
        OrderStatus::PartiallyRefunded,
        OrderStatus::Refunded,
    ];

    /// The stored (and wire) name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::Processing => "processing",
            OrderStatus::Paid => "paid",
            OrderStatus::PaymentFailed => "payment_failed",
            OrderStatus::Expired => "expired",
            OrderStatus::PartiallyRefunded => "partially_refunded",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether moving to `next` is allowed. Only forward, never to the same status, never out of
    /// `expired`, `payment_failed` or `refunded`:
    /// awaiting_payment -> processing | paid | payment_failed | expired; processing -> paid |
    /// payment_failed; paid -> partially_refunded | refunded; partially_refunded -> refunded.
    /// (A second partial refund changes the refunded amount, not the status: see [`super::record_refund`].)
    pub fn can_become(self, next: OrderStatus) -> bool {
        use OrderStatus::*;
        matches!(
            (self, next),
            (AwaitingPayment, Processing | Paid | PaymentFailed | Expired)
                | (Processing, Paid | PaymentFailed)
                | (Paid, PartiallyRefunded | Refunded)
                | (PartiallyRefunded, Refunded)
        )
    }

    /// No move leaves this status.
    pub fn is_final(self) -> bool {
        OrderStatus::ALL.into_iter().all(|next| !self.can_become(next))
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus::*;

    /// Every allowed move; every other pair is forbidden.
    const ALLOWED: [(OrderStatus, OrderStatus); 9] = [
        (AwaitingPayment, Processing),
        (AwaitingPayment, Paid),
        (AwaitingPayment, PaymentFailed),
        (AwaitingPayment, Expired),
        (Processing, Paid),
        (Processing, PaymentFailed),
        (Paid, PartiallyRefunded),
        (Paid, Refunded),
        (PartiallyRefunded, Refunded),
    ];

    #[test]
    fn exactly_the_forward_moves_are_allowed() {
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    ALLOWED.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn no_status_can_become_itself() {
        for s in OrderStatus::ALL {
            assert!(!s.can_become(s), "{s}");
        }
    }

    #[test]
    fn expired_payment_failed_and_refunded_are_final_and_nothing_else_is() {
        let finals: Vec<OrderStatus> = OrderStatus::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [PaymentFailed, Expired, Refunded]);
    }

    #[test]
    fn a_paid_order_can_never_go_back_to_awaiting_payment_expired_or_failed() {
        for later in [Paid, PartiallyRefunded, Refunded] {
            for earlier in [AwaitingPayment, Processing, Expired, PaymentFailed] {
                assert!(!later.can_become(earlier), "{later} -> {earlier}");
            }
        }
    }

    #[test]
    fn expired_can_never_become_paid() {
        assert!(!Expired.can_become(Paid));
        assert!(!PaymentFailed.can_become(Paid));
    }

    #[test]
    fn every_status_reads_back_from_its_name() {
        let names: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "awaiting_payment",
                "processing",
                "paid",
                "payment_failed",
                "expired",
                "partially_refunded",
                "refunded"
            ]
        );
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(OrderStatus::parse("Paid"), None);
        assert_eq!(OrderStatus::parse(""), None);
    }
}
