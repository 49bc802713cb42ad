//! The states of the conversation core's rows, stored as text (see `crate::db::types`).

crate::text_state! {
    /// Whether the channel's User Profile API was asked about a customer.
    ProfileStatus {
        /// Not asked yet: the next event asks first.
        Pending = "pending",
        /// Asked; what it said is kept.
        Ok = "ok",
        /// Refused (or no token): never asked again.
        Unavailable = "unavailable",
    }
}

crate::text_state! {
    /// A delivery of the durable inbox.
    DeliveryStatus {
        /// Stored whole, waiting to be split into events.
        Pending = "pending",
        /// Split.
        Done = "done",
        /// Unreadable, or its split failed too often.
        Dead = "dead",
    }
}

crate::text_state! {
    /// An event of the durable inbox.
    EventStatus {
        /// Waiting to be applied (or to be retried).
        Pending = "pending",
        /// Applied.
        Done = "done",
        /// Failed too often: the dead-letter list shows it, replay puts it back.
        Dead = "dead",
        /// For an account no merchant connected: kept, never applied.
        UnknownPage = "unknown_page",
    }
}

crate::text_state! {
    /// A queued send of a Meta channel.
    OutboxStatus {
        /// Waiting to be sent (or retried).
        Queued = "queued",
        /// Meta took it.
        Sent = "sent",
        /// Meta refused it for good.
        Failed = "failed",
        /// The channel's window closed before it could go.
        Expired = "expired",
        /// Retries exhausted.
        Dead = "dead",
    }
}
