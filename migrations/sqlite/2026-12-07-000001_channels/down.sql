CREATE TABLE funnel_daily_old (
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
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
INSERT INTO funnel_daily_old
  SELECT merchant_id, day, kind, organic, ad_id, ref, source, campaign, product, currency,
         SUM(events), SUM(value_minor)
  FROM funnel_daily
  GROUP BY merchant_id, day, kind, organic, ad_id, ref, source, campaign, product, currency;
DROP TABLE funnel_daily;
ALTER TABLE funnel_daily_old RENAME TO funnel_daily;
CREATE INDEX funnel_daily_ad_idx ON funnel_daily (merchant_id, ad_id, day);

DROP TABLE webchat_visitors;
DROP TABLE webchats;
DROP INDEX pages_instagram_account_idx;
ALTER TABLE pages DROP COLUMN instagram_account_id;

ALTER TABLE inbound_events DROP COLUMN event;
ALTER TABLE inbound_events DROP COLUMN channel;
ALTER TABLE inbound_events RENAME TO messenger_events;

ALTER TABLE outbox DROP COLUMN parts_sent;
ALTER TABLE conversion_events DROP COLUMN channel;
ALTER TABLE orders DROP COLUMN channel;
ALTER TABLE funnel_events DROP COLUMN channel;
ALTER TABLE touches DROP COLUMN utm_term;
ALTER TABLE touches DROP COLUMN utm_content;
ALTER TABLE touches DROP COLUMN utm_campaign;
ALTER TABLE touches DROP COLUMN utm_medium;
ALTER TABLE touches DROP COLUMN utm_source;
ALTER TABLE touches DROP COLUMN page_url;
ALTER TABLE touches DROP COLUMN channel;
ALTER TABLE messages DROP COLUMN channel;
DROP INDEX threads_merchant_channel_idx;
ALTER TABLE threads DROP COLUMN channel;
ALTER TABLE customers DROP COLUMN channel;
