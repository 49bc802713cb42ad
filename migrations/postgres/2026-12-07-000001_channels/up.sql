-- Every channel on one conversation core: Messenger, Instagram Direct and the merchant's own web chat.
--
-- A customer and its thread belong to a channel account: a Messenger Page's id, an Instagram
-- professional account's id, or the merchant's web chat id; `psid` is the shopper's id on that
-- account (PSID, IGSID, web chat visitor id). The durable inbox of events is channel-neutral: each event
-- keeps its raw form (`payload`, as delivered) and its neutral form (`event`, what the turn reads).

ALTER TABLE customers ADD COLUMN channel TEXT NOT NULL DEFAULT 'messenger';
ALTER TABLE threads ADD COLUMN channel TEXT NOT NULL DEFAULT 'messenger';
CREATE INDEX threads_merchant_channel_idx ON threads (merchant_id, channel, id);
ALTER TABLE messages ADD COLUMN channel TEXT NOT NULL DEFAULT 'messenger';
ALTER TABLE touches ADD COLUMN channel TEXT NOT NULL DEFAULT 'messenger';
ALTER TABLE touches ADD COLUMN page_url TEXT;
ALTER TABLE touches ADD COLUMN utm_source TEXT;
ALTER TABLE touches ADD COLUMN utm_medium TEXT;
ALTER TABLE touches ADD COLUMN utm_campaign TEXT;
ALTER TABLE touches ADD COLUMN utm_content TEXT;
ALTER TABLE touches ADD COLUMN utm_term TEXT;
ALTER TABLE funnel_events ADD COLUMN channel TEXT NOT NULL DEFAULT 'messenger';
ALTER TABLE orders ADD COLUMN channel TEXT NOT NULL DEFAULT 'messenger';
ALTER TABLE conversion_events ADD COLUMN channel TEXT NOT NULL DEFAULT 'messenger';

-- A Meta channel's queued send holds the neutral reply, rendered when it is sent; a long reply goes out
-- as several Send API messages, and `parts_sent` remembers how many went, so a retry sends the rest.
ALTER TABLE outbox ADD COLUMN parts_sent INTEGER NOT NULL DEFAULT 0;

ALTER TABLE messenger_events RENAME TO inbound_events;
ALTER TABLE inbound_events ADD COLUMN channel TEXT NOT NULL DEFAULT 'messenger';
ALTER TABLE inbound_events ADD COLUMN event TEXT;

-- A Page may have its Instagram professional account connected beside it.
ALTER TABLE pages ADD COLUMN instagram_account_id TEXT;
CREATE UNIQUE INDEX pages_instagram_account_idx ON pages (instagram_account_id);

-- The merchant's web chat: the public key its widget carries and the sites allowed to use it.
CREATE TABLE webchats (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL UNIQUE REFERENCES merchants (id) ON DELETE CASCADE,
  public_key TEXT NOT NULL UNIQUE,
  allowed_origins TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);

-- A web chat visitor is a customer of the web chat's account; the token the browser keeps is stored
-- hashed.
CREATE TABLE webchat_visitors (
  customer_id UUID PRIMARY KEY REFERENCES customers (id) ON DELETE CASCADE,
  webchat_id UUID NOT NULL REFERENCES webchats (id) ON DELETE CASCADE,
  token_hash TEXT NOT NULL UNIQUE,
  created_at TIMESTAMP NOT NULL
);

-- The daily rollup gains the channel among its dimensions.
ALTER TABLE funnel_daily ADD COLUMN channel TEXT NOT NULL DEFAULT 'messenger';
ALTER TABLE funnel_daily ALTER COLUMN channel DROP DEFAULT;
ALTER TABLE funnel_daily DROP CONSTRAINT funnel_daily_pkey;
ALTER TABLE funnel_daily ADD PRIMARY KEY
  (merchant_id, day, kind, organic, channel, ad_id, ref, source, campaign, product, currency);
