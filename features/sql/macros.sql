-- The dialect shim: the few helpers whose spelling differs between engines. macros_spark.sql defines the
-- same names for Spark, and features/dialect.py translates the rest of features/sql, which is plain SQL
-- with window functions and FILTER clauses.
-- All timestamps are read in UTC: the build sets the session time zone to UTC before running these.

-- Fractional days from t0 to t1 (negative when t1 is earlier).
CREATE OR REPLACE TEMP MACRO days_between(t0, t1) AS (epoch(t1) - epoch(t0)) / 86400.0;
-- The UTC calendar day of a timestamp. Read as a timestamp without time zone first, so the cast to DATE is
-- plain arithmetic rather than a time zone conversion (several times slower, on every event).
CREATE OR REPLACE TEMP MACRO day_of(t) AS CAST(make_timestamp(epoch_us(t)) AS DATE);
-- An interval of n days.
CREATE OR REPLACE TEMP MACRO n_days(n) AS to_days(CAST(n AS INTEGER));
-- A far-future instant closing open-ended validity intervals (a NULL would defeat the range join).
CREATE OR REPLACE TEMP MACRO forever() AS TIMESTAMPTZ '9999-12-31 00:00:00+00';
-- The sort key "latest first" uses: time, then event id, so ties resolve the same way every run.
CREATE OR REPLACE TEMP MACRO ordered(ts, id) AS row(ts, id);
-- A count that had no rows is zero, as a 64-bit integer.
CREATE OR REPLACE TEMP MACRO count_or_zero(x) AS CAST(coalesce(x, 0) AS BIGINT);
-- num / den, NULL (unknown) when the denominator is missing or zero.
CREATE OR REPLACE TEMP MACRO ratio(num, den) AS CASE WHEN den > 0 THEN num / den END;
-- Relative change of a count, with the earlier period floored at 1 so a zero baseline stays finite.
CREATE OR REPLACE TEMP MACRO change(recent, prior) AS (recent - prior) / greatest(prior, 1);
-- The least-squares slope of 12 weekly totals (week 1 the latest), per week forward in time, as a share of
-- the mean week (floored at 1): from their total and their total weighted by week number.
CREATE OR REPLACE TEMP MACRO weekly_trend(total, by_week) AS
    ((6.5 * total - by_week) / 143.0) / greatest(total / 12.0, 1);
-- The standard deviation of 12 weekly totals as a share of the mean week (floored at 1): from their total
-- and their sum of squares.
CREATE OR REPLACE TEMP MACRO weekly_volatility(total, squared) AS
    sqrt(greatest(squared / 12.0 - (total / 12.0) * (total / 12.0), 0.0)) / greatest(total / 12.0, 1);
-- x limited to [0, 1]; NULL stays NULL (least/greatest would skip it and answer a bound).
CREATE OR REPLACE TEMP MACRO clamp01(x) AS CASE WHEN x < 0 THEN 0.0 WHEN x > 1 THEN 1.0 ELSE x END;
-- a health component on its 0-100 scale
CREATE OR REPLACE TEMP MACRO clamp100(x) AS CASE WHEN x < 0 THEN 0.0 WHEN x > 100 THEN 100.0 ELSE x END;
