ALTER TABLE pages DROP COLUMN profile_status;
ALTER TABLE threads DROP COLUMN away_sent_on;
ALTER TABLE merchants DROP COLUMN away_text;
ALTER TABLE merchants DROP COLUMN business_hours;
ALTER TABLE carts DROP COLUMN discount_id;
ALTER TABLE cart_lines DROP COLUMN offer_id;
DROP TABLE cart_offers;
DROP TABLE discounts;
DROP TABLE offers;
