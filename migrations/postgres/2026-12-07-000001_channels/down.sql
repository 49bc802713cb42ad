DELETE FROM funnel_daily WHERE channel <> 'messenger';
ALTER TABLE funnel_daily DROP CONSTRAINT funnel_daily_pkey;
ALTER TABLE funnel_daily DROP COLUMN channel;
ALTER TABLE funnel_daily ADD PRIMARY KEY
  (merchant_id, day, kind, organic, ad_id, ref, source, campaign, product, currency);

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
