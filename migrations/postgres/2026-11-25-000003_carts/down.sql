DROP TABLE funnel_events;
DROP TABLE cart_lines;
DROP TABLE carts;
