ALTER TABLE threads DROP COLUMN place_told_at;
ALTER TABLE agents DROP COLUMN seen_at;
ALTER TABLE threads DROP COLUMN rule_id;
ALTER TABLE threads DROP COLUMN skill;
ALTER TABLE threads DROP COLUMN labels;
ALTER TABLE threads DROP COLUMN priority;
DROP TABLE rules;
ALTER TABLE bookables DROP COLUMN labels;
ALTER TABLE products DROP COLUMN labels;
