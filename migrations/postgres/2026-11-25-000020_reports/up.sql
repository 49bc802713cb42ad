-- Attribution and funnel reports: the merchant's attribution window; funnel events keep the attributed
-- touch's dimensions (source, campaign, advertised product), the first touch and the order, and whether
-- the step was organic (no touch within the window); a daily rollup in the merchant's timezone, upserted
-- with each event, answers reports without scanning the events.

ALTER TABLE merchants ADD COLUMN attribution_window_days INTEGER NOT NULL DEFAULT 7;

ALTER TABLE funnel_events ADD COLUMN first_touch_id UUID;
ALTER TABLE funnel_events ADD COLUMN source TEXT;
ALTER TABLE funnel_events ADD COLUMN campaign TEXT;
ALTER TABLE funnel_events ADD COLUMN touch_product TEXT;
ALTER TABLE funnel_events ADD COLUMN order_id UUID;
ALTER TABLE funnel_events ADD COLUMN organic BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX funnel_events_kind_idx ON funnel_events (merchant_id, kind, occurred_at);
CREATE INDEX funnel_events_thread_idx ON funnel_events (thread_id);
CREATE INDEX funnel_events_order_idx ON funnel_events (order_id, kind);

CREATE INDEX touches_merchant_time_idx ON touches (merchant_id, occurred_at);
CREATE INDEX threads_merchant_created_idx ON threads (merchant_id, created_at);

CREATE TABLE funnel_daily (
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  day DATE NOT NULL,
  kind TEXT NOT NULL,
  organic BOOLEAN NOT NULL,
  ad_id TEXT NOT NULL,
  ref TEXT NOT NULL,
  source TEXT NOT NULL,
  campaign TEXT NOT NULL,
  product TEXT NOT NULL,
  currency TEXT NOT NULL,
  events BIGINT NOT NULL,
  value_minor BIGINT NOT NULL,
  PRIMARY KEY (merchant_id, day, kind, organic, ad_id, ref, source, campaign, product, currency)
);
CREATE INDEX funnel_daily_ad_idx ON funnel_daily (merchant_id, ad_id, day);
