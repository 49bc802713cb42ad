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
        business_hours -> Nullable<Text>,
        away_text -> Nullable<Text>,
        attribution_window_days -> Integer,
        bot_disclosure -> Nullable<Text>,
        bot_disclosure_after_hours -> Integer,
        cart_reminder_minutes -> Integer,
        booking_reminder_hour -> Integer,
        agent_answer_minutes -> Integer,
        vip_paid_orders -> Integer,
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
        agent_id -> Nullable<PortableUuid>,
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
        token_status -> Text,
        human_agent_enabled -> Bool,
        profile_status -> Text,
        capi_dataset_id -> Nullable<Text>,
        capi_access_token -> Nullable<Text>,
        instagram_account_id -> Nullable<Text>,
        token_last4 -> Text,
        kind -> Text,
        waba_id -> Nullable<Text>,
        display_phone_number -> Nullable<Text>,
        catalog_id -> Nullable<Text>,
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
        labels -> Text,
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

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    webhook_inbox (id) {
        id -> PortableUuid,
        source -> Text,
        body -> Text,
        status -> Text,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        received_at -> Timestamp,
        processed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    customers (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        page_id -> Text,
        psid -> Text,
        first_name -> Nullable<Text>,
        locale -> Nullable<Text>,
        timezone_offset -> Nullable<Integer>,
        profile_status -> Text,
        created_at -> Timestamp,
        channel -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    inbound_events (id) {
        id -> PortableUuid,
        inbox_id -> PortableUuid,
        merchant_id -> Nullable<PortableUuid>,
        customer_id -> Nullable<PortableUuid>,
        page_id -> Text,
        psid -> Text,
        dedup_key -> Text,
        kind -> Text,
        occurred_at -> Timestamp,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        processed_at -> Nullable<Timestamp>,
        channel -> Text,
        event -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    threads (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        customer_id -> PortableUuid,
        page_id -> Text,
        mode -> Text,
        human_active_until -> Nullable<Timestamp>,
        last_inbound_at -> Nullable<Timestamp>,
        window_ends_at -> Nullable<Timestamp>,
        ctm_pending -> Bool,
        first_touch_id -> Nullable<PortableUuid>,
        latest_touch_id -> Nullable<PortableUuid>,
        latest_ad_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        away_sent_on -> Nullable<Text>,
        stay_bookable_id -> Nullable<PortableUuid>,
        channel -> Text,
        disclosed_at -> Nullable<Timestamp>,
        has_held -> Bool,
        queued_at -> Nullable<Timestamp>,
        assigned_agent_id -> Nullable<PortableUuid>,
        assigned_at -> Nullable<Timestamp>,
        routing_reason -> Nullable<Text>,
        passed_over_agent_id -> Nullable<PortableUuid>,
        priority -> Integer,
        labels -> Text,
        skill -> Nullable<Text>,
        rule_id -> Nullable<PortableUuid>,
        place_told_at -> Nullable<Timestamp>,
        bot_missed -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    touches (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        thread_id -> PortableUuid,
        source -> Text,
        kind -> Text,
        #[sql_name = "ref"]
        ref_ -> Nullable<Text>,
        ad_id -> Nullable<Text>,
        ad_title -> Nullable<Text>,
        post_id -> Nullable<Text>,
        product_id -> Nullable<Text>,
        ads_context_data -> Nullable<Text>,
        occurred_at -> Timestamp,
        created_at -> Timestamp,
        channel -> Text,
        page_url -> Nullable<Text>,
        utm_source -> Nullable<Text>,
        utm_medium -> Nullable<Text>,
        utm_campaign -> Nullable<Text>,
        utm_content -> Nullable<Text>,
        utm_term -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    messages (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        thread_id -> PortableUuid,
        direction -> Text,
        author -> Text,
        kind -> Text,
        mid -> Nullable<Text>,
        text -> Nullable<Text>,
        payload -> Nullable<Text>,
        occurred_at -> Timestamp,
        created_at -> Timestamp,
        channel -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    outbox (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        thread_id -> PortableUuid,
        message_id -> Nullable<PortableUuid>,
        page_id -> Text,
        psid -> Text,
        kind -> Text,
        body -> Text,
        messaging_type -> Nullable<Text>,
        tag -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        provider_message_id -> Nullable<Text>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        parts_sent -> Integer,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    carts (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        thread_id -> PortableUuid,
        status -> Text,
        currency -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        discount_id -> Nullable<PortableUuid>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    cart_lines (id) {
        id -> PortableUuid,
        cart_id -> PortableUuid,
        variant_id -> Nullable<PortableUuid>,
        product_id -> Nullable<PortableUuid>,
        title -> Text,
        variant_name -> Text,
        sku -> Text,
        image_url -> Nullable<Text>,
        unit_price_minor -> BigInt,
        currency -> Text,
        quantity -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        offer_id -> Nullable<PortableUuid>,
        booking_id -> Nullable<PortableUuid>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    funnel_events (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        thread_id -> PortableUuid,
        kind -> Text,
        touch_id -> Nullable<PortableUuid>,
        ad_id -> Nullable<Text>,
        #[sql_name = "ref"]
        ref_ -> Nullable<Text>,
        product_id -> Nullable<PortableUuid>,
        value_minor -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        occurred_at -> Timestamp,
        bookable_id -> Nullable<PortableUuid>,
        first_touch_id -> Nullable<PortableUuid>,
        source -> Nullable<Text>,
        campaign -> Nullable<Text>,
        touch_product -> Nullable<Text>,
        order_id -> Nullable<PortableUuid>,
        organic -> Bool,
        channel -> Text,
        rolled_up -> Bool,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    funnel_daily (merchant_id, day, kind, organic, channel, ad_id, ref_, source, campaign, product, currency) {
        merchant_id -> PortableUuid,
        day -> Date,
        kind -> Text,
        organic -> Bool,
        channel -> Text,
        ad_id -> Text,
        #[sql_name = "ref"]
        ref_ -> Text,
        source -> Text,
        campaign -> Text,
        product -> Text,
        currency -> Text,
        events -> BigInt,
        value_minor -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    conversion_events (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        page_id -> Text,
        psid -> Text,
        order_id -> Nullable<PortableUuid>,
        event_id -> Text,
        event_name -> Text,
        event_time -> Timestamp,
        value_minor -> BigInt,
        currency -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        channel -> Text,
        account_id -> Nullable<Text>,
        click_id -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    offers (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        kind -> Text,
        trigger_product_id -> Nullable<PortableUuid>,
        offer_variant_id -> Nullable<PortableUuid>,
        discount_percent_bp -> Nullable<Integer>,
        discount_minor -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        text -> Text,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        trigger_bookable_id -> Nullable<PortableUuid>,
        offer_bookable_id -> Nullable<PortableUuid>,
        per_night -> Bool,
        night_delta_minor -> Nullable<BigInt>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    discounts (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        code -> Text,
        kind -> Text,
        percent_bp -> Nullable<Integer>,
        amount_minor -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        starts_at -> Nullable<Timestamp>,
        ends_at -> Nullable<Timestamp>,
        min_subtotal_minor -> Nullable<BigInt>,
        max_redemptions -> Nullable<Integer>,
        redemptions -> Integer,
        active -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    cart_offers (id) {
        id -> PortableUuid,
        cart_id -> PortableUuid,
        offer_id -> PortableUuid,
        status -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    order_counters (merchant_id) {
        merchant_id -> PortableUuid,
        last_number -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    orders (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        thread_id -> Nullable<PortableUuid>,
        cart_id -> Nullable<PortableUuid>,
        number -> Text,
        status -> Text,
        disputed -> Bool,
        currency -> Text,
        subtotal_minor -> BigInt,
        discount_minor -> BigInt,
        total_minor -> BigInt,
        refunded_minor -> BigInt,
        discount_id -> Nullable<PortableUuid>,
        discount_code -> Nullable<Text>,
        cart_fingerprint -> Text,
        attempt -> Integer,
        stripe_session_id -> Nullable<Text>,
        stripe_session_url -> Nullable<Text>,
        stripe_payment_intent_id -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        touch_id -> Nullable<PortableUuid>,
        ad_id -> Nullable<Text>,
        paid_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        session_closed -> Bool,
        session_key -> Nullable<Text>,
        session_tries -> Integer,
        checked_at -> Nullable<Timestamp>,
        receipt -> Nullable<Text>,
        late_payment -> Nullable<Text>,
        channel -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    order_lines (id) {
        id -> PortableUuid,
        order_id -> PortableUuid,
        variant_id -> Nullable<PortableUuid>,
        product_id -> Nullable<PortableUuid>,
        title -> Text,
        variant_name -> Text,
        sku -> Text,
        image_url -> Nullable<Text>,
        unit_price_minor -> BigInt,
        quantity -> Integer,
        total_minor -> BigInt,
        offer_id -> Nullable<PortableUuid>,
        booking_id -> Nullable<PortableUuid>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    reservations (id) {
        id -> PortableUuid,
        order_id -> PortableUuid,
        variant_id -> PortableUuid,
        quantity -> Integer,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    stripe_events (id) {
        id -> Text,
        kind -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        received_at -> Timestamp,
        processed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    refunds (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        order_id -> PortableUuid,
        stripe_refund_id -> Nullable<Text>,
        amount_minor -> BigInt,
        currency -> Text,
        status -> Text,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        request_key -> Nullable<Text>,
    }
}

diesel::joinable!(api_keys -> merchants (merchant_id));
diesel::joinable!(pages -> merchants (merchant_id));
diesel::joinable!(products -> merchants (merchant_id));
diesel::joinable!(variants -> products (product_id));

diesel::joinable!(customers -> merchants (merchant_id));
diesel::joinable!(threads -> customers (customer_id));
diesel::joinable!(touches -> threads (thread_id));
diesel::joinable!(messages -> threads (thread_id));
diesel::joinable!(outbox -> threads (thread_id));
diesel::joinable!(carts -> threads (thread_id));
diesel::joinable!(cart_lines -> carts (cart_id));
diesel::joinable!(order_lines -> orders (order_id));
diesel::joinable!(reservations -> orders (order_id));
diesel::joinable!(refunds -> orders (order_id));

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    webchats (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        public_key -> Text,
        allowed_origins -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    webchat_visitors (customer_id) {
        customer_id -> PortableUuid,
        webchat_id -> PortableUuid,
        token_hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(webchat_visitors -> customers (customer_id));

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    send_leases (thread_id) {
        thread_id -> PortableUuid,
        owner -> Text,
        lease_until -> Nullable<Timestamp>,
    }
}

diesel::joinable!(send_leases -> threads (thread_id));

diesel::allow_tables_to_appear_in_same_query!(
    merchants,
    api_keys,
    pages,
    products,
    variants,
    webhook_inbox,
    customers,
    inbound_events,
    threads,
    touches,
    messages,
    outbox,
    carts,
    cart_lines,
    funnel_events,
    funnel_daily,
    conversion_events,
    offers,
    discounts,
    cart_offers,
    order_counters,
    orders,
    order_lines,
    reservations,
    stripe_events,
    refunds,
    webchats,
    webchat_visitors,
    send_leases,
);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    bookables (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        name -> Text,
        description -> Nullable<Text>,
        image_url -> Nullable<Text>,
        units -> Integer,
        max_guests -> Integer,
        base_price_minor -> BigInt,
        currency -> Text,
        min_nights -> Integer,
        max_nights -> Integer,
        check_in_time -> Text,
        check_out_time -> Text,
        timezone -> Text,
        active -> Bool,
        deleted_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        labels -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    bookable_rates (bookable_id, night) {
        bookable_id -> PortableUuid,
        night -> Date,
        price_minor -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    bookable_nights (bookable_id, night) {
        bookable_id -> PortableUuid,
        night -> Date,
        held -> Integer,
        booked -> Integer,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    bookings (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        bookable_id -> PortableUuid,
        thread_id -> Nullable<PortableUuid>,
        order_id -> Nullable<PortableUuid>,
        arrival -> Date,
        departure -> Date,
        nights -> Integer,
        guests -> Integer,
        status -> Text,
        total_minor -> BigInt,
        currency -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        reminder -> Nullable<Text>,
        reminded_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    rate_limits (bucket, key) {
        bucket -> Text,
        key -> Text,
        hits -> Integer,
        resets_at -> Timestamp,
    }
}

diesel::joinable!(bookable_rates -> bookables (bookable_id));
diesel::joinable!(bookable_nights -> bookables (bookable_id));
diesel::joinable!(bookings -> bookables (bookable_id));

diesel::allow_tables_to_appear_in_same_query!(bookables, bookable_rates, bookable_nights, bookings);
// The shop's menu asks whether the merchant has rooms in the same round trip as the merchant.
diesel::allow_tables_to_appear_in_same_query!(merchants, bookables);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    message_templates (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        page_id -> Text,
        purpose -> Text,
        language -> Text,
        name -> Text,
        body -> Text,
        meta_template_id -> Nullable<Text>,
        status -> Text,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    scheduled_jobs (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        kind -> Text,
        subject_id -> PortableUuid,
        purpose -> Text,
        thread_id -> Nullable<PortableUuid>,
        due_at -> Nullable<Timestamp>,
        attempts -> Integer,
        done_at -> Nullable<Timestamp>,
        outcome -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    shopper_notices (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        thread_id -> Nullable<PortableUuid>,
        subject_id -> PortableUuid,
        purpose -> Text,
        told -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    agents (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        name -> Text,
        email -> Text,
        languages -> Text,
        skills -> Text,
        max_threads -> Integer,
        presence -> Text,
        presence_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        seen_at -> Nullable<Timestamp>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(agents, threads);

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    merchant_events (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        kind -> Text,
        thread_id -> Nullable<PortableUuid>,
        agent_id -> Nullable<PortableUuid>,
        for_agents -> Bool,
        data -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::db::PortableUuid;

    rules (id) {
        id -> PortableUuid,
        merchant_id -> PortableUuid,
        position -> Integer,
        name -> Text,
        enabled -> Bool,
        conditions -> Text,
        actions -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}
