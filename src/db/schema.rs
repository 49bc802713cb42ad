//! The tables, shared by both backends (see `migrations/sqlite` and `migrations/postgres`).

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    merchants (id) {
        id -> PortableUuid,
        name -> Text,
        currency -> Text,
        timezone -> Text,
        demo_slug -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    api_keys (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        role -> Text,
        label -> Nullable<Text>,
        prefix -> Text,
        key_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    pages (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        page_id -> Text,
        name -> Nullable<Text>,
        access_token -> Text,
        connected_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    products (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        retailer_id -> Text,
        title -> Text,
        description -> Nullable<Text>,
        image_url -> Nullable<Text>,
        url -> Nullable<Text>,
        brand -> Nullable<Text>,
        featured -> Bool,
        search_text -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    variants (id) {
        id -> PortableUuid,
        product_id -> PortableUuid,
        merchant_id -> PortableUuid,
        sku -> Text,
        name -> Text,
        options -> Text,
        price_minor -> BigInt,
        currency -> Text,
        stock -> BigInt,
        position -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(api_keys -> merchants (merchant_id));
diesel::joinable!(pages -> merchants (merchant_id));
diesel::joinable!(products -> merchants (merchant_id));
diesel::joinable!(variants -> products (product_id));

diesel::allow_tables_to_appear_in_same_query!(merchants, api_keys, pages, products, variants);
