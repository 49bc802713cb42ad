//! The states of the conversation core's rows, stored as text (see `crate::db::types`).

use std::fmt;

/// Declares a text-stored state: its variants with their stored names, `as_str`, `parse` and the
/// column mapping.
macro_rules! state {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            diesel::expression::AsExpression,
            diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads a stored name.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        crate::text_enum_sql!($name);
    };
}

state! {
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

state! {
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

state! {
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

state! {
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
