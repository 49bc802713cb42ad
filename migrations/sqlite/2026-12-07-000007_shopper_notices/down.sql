DROP TABLE shopper_notices;
