-- Utility message templates: what the business may send a shopper after the messaging window closed
-- (Meta approves each, per Page, purpose and language). `status` follows Meta's answer and its
-- template status webhook.
CREATE TABLE message_templates (
  id TEXT PRIMARY KEY,
  merchant_id TEXT NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  page_id TEXT NOT NULL,
  purpose TEXT NOT NULL,
  language TEXT NOT NULL,
  name TEXT NOT NULL,
  body TEXT NOT NULL,
  meta_template_id TEXT,
  status TEXT NOT NULL,
  reason TEXT,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX message_templates_one_per_purpose ON message_templates (page_id, purpose, language);
CREATE INDEX message_templates_merchant_idx ON message_templates (merchant_id, id);
CREATE INDEX message_templates_meta_idx ON message_templates (meta_template_id);
