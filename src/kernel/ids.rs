//! The ids the domain passes around, each its own type: a thread's id cannot be given where a
//! merchant's is wanted, nor a shopper's where the Page's is. Our own ids are UUIDs stored in
//! `PortableUuid` columns (see `crate::db::types`); the channels' and the catalog's ids are text. Both
//! are serialised as plain strings.

/// Declares UUID ids: a transparent newtype over [`uuid::Uuid`] with its column mapping.
macro_rules! uuid_ids {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            diesel::expression::AsExpression,
            diesel::deserialize::FromSqlRow,
        )]
        #[serde(transparent)]
        #[diesel(sql_type = crate::db::PortableUuid)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7).
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for uuid::Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map(Self)
            }
        }

        crate::uuid_sql!($name);
    )+};
}

uuid_ids! {
    /// A merchant: the tenant every row belongs to.
    MerchantId,
    /// A shopper of one merchant on one channel account.
    CustomerId,
    /// A conversation: one per shopper.
    ThreadId,
    /// An order.
    OrderId,
}

/// Declares text ids (the channels' and the catalog's): a transparent newtype over `String` stored as
/// text.
macro_rules! text_ids {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            serde::Serialize,
            serde::Deserialize,
            diesel::expression::AsExpression,
            diesel::deserialize::FromSqlRow,
        )]
        #[serde(transparent)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub struct $name(pub String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Reads a stored id (any text is one).
            pub fn parse(s: &str) -> Option<Self> {
                Some(Self(s.to_owned()))
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        /// Read as text wherever text is wanted (a Graph API path, a log field); a function that
        /// wants this id still asks for the type, so another id cannot stand in for it.
        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        crate::text_enum_sql!($name);
    )+};
}

text_ids! {
    /// The channel account a shopper writes to: a Facebook Page's id, the id of the Instagram
    /// professional account linked to a Page, or a web chat's id.
    PageId,
    /// A shopper's id on one channel account: Messenger's page-scoped id, Instagram's IGSID, or a web
    /// chat visitor's id.
    Psid,
    /// A product's id in the merchant's catalog, as Meta's catalogs and ads name it
    /// (`ads_context_data.product_id`, `product_retailer_id`).
    RetailerId,
}
