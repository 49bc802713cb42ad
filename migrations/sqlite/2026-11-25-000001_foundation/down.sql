DROP TABLE variants;
DROP TABLE products;
DROP TABLE pages;
DROP TABLE api_keys;
DROP TABLE merchants;
