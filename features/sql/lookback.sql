-- Every day a window can look at, per cutoff: the $lookback_days UTC days before it (LOOKBACK_DAYS: the
-- error spike's last 7 days plus its 90-day baseline), with their age in days (age 1 is the day just
-- before the cutoff). Joining the daily roll-ups to this table on `day` is an equi-join: no events x
-- cutoffs product.
SELECT c.cutoff, day_of(c.cutoff) - r.age AS day, r.age
FROM cutoffs AS c
CROSS JOIN (SELECT CAST(age AS INTEGER) AS age FROM (SELECT unnest(range(1, $lookback_days + 1)) AS age)) AS r
