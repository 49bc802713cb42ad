//! The words every module shares: the channels a shopper talks to the merchant through, a rule a field
//! broke, and how an instant is written on the wire.

use std::fmt;

mod ids;
mod labels;

pub use ids::{CustomerId, MerchantId, OrderId, PageId, Psid, RetailerId, ThreadId};
pub use labels::{Labels, MAX_LABELS, is_label};

/// Declares a text-stored state: its variants with their stored names, `as_str`, `parse` and the
/// column mapping.
#[macro_export]
macro_rules! text_state {
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

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::text_enum_sql!($name);
    };
}

/// A channel a conversation runs on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[serde(rename_all = "snake_case")]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum Channel {
    /// Messenger: a Facebook Page's conversations.
    Messenger,
    /// Instagram Direct, through the Facebook Page linked to the Instagram professional account.
    Instagram,
    /// The merchant's own web chat (the widget on its site).
    Webchat,
    /// WhatsApp, through a WhatsApp Business Account's phone number on Meta's Cloud API.
    Whatsapp,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 4] = [
        Channel::Messenger,
        Channel::Instagram,
        Channel::Webchat,
        Channel::Whatsapp,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Messenger => "messenger",
            Channel::Instagram => "instagram",
            Channel::Webchat => "webchat",
            Channel::Whatsapp => "whatsapp",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// True for Messenger and Instagram Direct: a Page's Send API, its messaging window and tags.
    pub fn is_meta(self) -> bool {
        matches!(self, Channel::Messenger | Channel::Instagram)
    }

    /// True for the channels Meta carries (Messenger, Instagram Direct, WhatsApp): replies go out through
    /// the outbox and the Graph API, within a 24-hour window after the shopper's last action.
    pub fn via_graph(self) -> bool {
        matches!(self, Channel::Messenger | Channel::Instagram | Channel::Whatsapp)
    }
}

crate::text_enum_sql!(Channel);

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule a field broke, reported to the caller with the field's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as the caller named it (`variants[2].price`).
    pub field: String,
    /// Stable snake_case code.
    pub code: &'static str,
    /// A sentence for humans.
    pub detail: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, code: &'static str, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            code,
            detail: detail.into(),
        }
    }
}

/// RFC 3339 UTC with microseconds, as every timestamp on the wire.
pub fn timestamp(t: chrono::NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_reads_back_its_own_name() {
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
        }
        assert_eq!(Channel::parse("fax"), None);
    }
}
