-- A WhatsApp purchase is told to the Conversions API with the WhatsApp Business Account and the
-- Click-to-WhatsApp ad's click id (`ctwa_clid`), kept on the event when it is queued.
ALTER TABLE conversion_events ADD COLUMN account_id TEXT;
ALTER TABLE conversion_events ADD COLUMN click_id TEXT;
