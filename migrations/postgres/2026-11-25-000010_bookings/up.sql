-- Bookings: room types sold by the night (bookables), their per-night prices, one inventory row per
-- bookable and night (units held by unpaid holds, units booked by confirmed stays), and the holds and
-- bookings that take those nights. A night is the date of its evening, in the property's timezone.

CREATE TABLE bookables (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT,
  image_url TEXT,
  units INTEGER NOT NULL CHECK (units >= 0),
  max_guests INTEGER NOT NULL CHECK (max_guests > 0),
  base_price_minor BIGINT NOT NULL CHECK (base_price_minor >= 0),
  currency TEXT NOT NULL,
  min_nights INTEGER NOT NULL CHECK (min_nights >= 1),
  max_nights INTEGER NOT NULL CHECK (max_nights >= min_nights),
  check_in_time TEXT NOT NULL,
  check_out_time TEXT NOT NULL,
  timezone TEXT NOT NULL,
  active BOOLEAN NOT NULL DEFAULT TRUE,
  deleted_at TIMESTAMP,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX bookables_merchant_idx ON bookables (merchant_id, id);

-- A price for one night that replaces the base price (weekends, seasons).
CREATE TABLE bookable_rates (
  bookable_id UUID NOT NULL REFERENCES bookables (id) ON DELETE CASCADE,
  night DATE NOT NULL,
  price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
  PRIMARY KEY (bookable_id, night)
);

-- Nightly inventory, made on first use: held + booked never exceeds the bookable's units, because every
-- increment is one conditional UPDATE.
CREATE TABLE bookable_nights (
  bookable_id UUID NOT NULL REFERENCES bookables (id) ON DELETE CASCADE,
  night DATE NOT NULL,
  held INTEGER NOT NULL DEFAULT 0,
  booked INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (bookable_id, night),
  CHECK (held >= 0 AND booked >= 0)
);

-- A stay: held (nights taken until expires_at), then confirmed (paid), or expired, released, cancelled.
CREATE TABLE bookings (
  id UUID PRIMARY KEY,
  merchant_id UUID NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
  bookable_id UUID NOT NULL REFERENCES bookables (id) ON DELETE CASCADE,
  thread_id UUID REFERENCES threads (id) ON DELETE SET NULL,
  order_id UUID REFERENCES orders (id) ON DELETE SET NULL,
  arrival DATE NOT NULL,
  departure DATE NOT NULL,
  nights INTEGER NOT NULL CHECK (nights > 0),
  guests INTEGER NOT NULL CHECK (guests > 0),
  status TEXT NOT NULL,
  total_minor BIGINT NOT NULL CHECK (total_minor >= 0),
  currency TEXT NOT NULL,
  expires_at TIMESTAMP NOT NULL,
  created_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
CREATE INDEX bookings_merchant_idx ON bookings (merchant_id, id);
CREATE INDEX bookings_status_idx ON bookings (status, expires_at);
CREATE INDEX bookings_order_idx ON bookings (order_id);
CREATE INDEX bookings_bookable_idx ON bookings (bookable_id, arrival);
