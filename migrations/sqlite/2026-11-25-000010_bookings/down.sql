DROP TABLE bookings;
DROP TABLE bookable_nights;
DROP TABLE bookable_rates;
DROP TABLE bookables;
