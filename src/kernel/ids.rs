//! The ids the domain passes around, each its own type: a thread's id cannot be given where a
//! merchant's is wanted. They are UUIDs stored in `PortableUuid` columns (see `crate::db::types`), and
//! serialised as plain UUID strings.

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
