-- The dialect shim of macros.sql ported to Spark SQL, once: the same names as temporary SQL functions,
-- each computing what the DuckDB macro does, so the translated feature SQL (features/dialect.py) reads
-- the same on both engines. Typed arguments; DOUBLE literals (Spark reads 1.0 as a DECIMAL).
-- The session time zone is UTC (core/spark.py), as the DuckDB build sets it.

-- Fractional days from t0 to t1, as DuckDB's epoch() computes them: seconds as doubles, then subtracted.
CREATE OR REPLACE TEMPORARY FUNCTION days_between(t0 TIMESTAMP, t1 TIMESTAMP) RETURNS DOUBLE
RETURN (CAST(unix_micros(t1) AS DOUBLE) / 1000000.0D - CAST(unix_micros(t0) AS DOUBLE) / 1000000.0D) / 86400.0D;
-- The UTC calendar day of a timestamp.
CREATE OR REPLACE TEMPORARY FUNCTION day_of(t TIMESTAMP) RETURNS DATE RETURN CAST(t AS DATE);
-- An interval of n days.
CREATE OR REPLACE TEMPORARY FUNCTION n_days(n INT) RETURNS INTERVAL DAY RETURN make_dt_interval(n);
-- A far-future instant closing open-ended validity intervals.
CREATE OR REPLACE TEMPORARY FUNCTION forever() RETURNS TIMESTAMP RETURN TIMESTAMP '9999-12-31 00:00:00';
-- The sort key "latest first" uses: time, then event id (structs compare field by field, as DuckDB rows).
CREATE OR REPLACE TEMPORARY FUNCTION ordered(ts TIMESTAMP, id STRING) RETURNS STRUCT<ts: TIMESTAMP, id: STRING>
RETURN named_struct('ts', ts, 'id', id);
-- A count that had no rows is zero, as a 64-bit integer.
CREATE OR REPLACE TEMPORARY FUNCTION count_or_zero(x BIGINT) RETURNS BIGINT RETURN coalesce(x, 0);
-- num / den, NULL (unknown) when the denominator is missing or zero.
CREATE OR REPLACE TEMPORARY FUNCTION ratio(num DOUBLE, den DOUBLE) RETURNS DOUBLE
RETURN CASE WHEN den > 0 THEN num / den END;
-- Relative change of a count, with the earlier period floored at 1.
CREATE OR REPLACE TEMPORARY FUNCTION change(recent DOUBLE, prior DOUBLE) RETURNS DOUBLE
RETURN (recent - prior) / greatest(prior, 1.0D);
-- The least-squares slope of 12 weekly totals, per week forward, as a share of the mean week (floored at 1).
CREATE OR REPLACE TEMPORARY FUNCTION weekly_trend(total DOUBLE, by_week DOUBLE) RETURNS DOUBLE
RETURN ((6.5D * total - by_week) / 143.0D) / greatest(total / 12.0D, 1.0D);
-- The standard deviation of 12 weekly totals as a share of the mean week (floored at 1).
CREATE OR REPLACE TEMPORARY FUNCTION weekly_volatility(total DOUBLE, squared DOUBLE) RETURNS DOUBLE
RETURN sqrt(greatest(squared / 12.0D - (total / 12.0D) * (total / 12.0D), 0.0D)) / greatest(total / 12.0D, 1.0D);
-- x limited to [0, 1]; NULL stays NULL.
CREATE OR REPLACE TEMPORARY FUNCTION clamp01(x DOUBLE) RETURNS DOUBLE
RETURN CASE WHEN x < 0 THEN 0.0D WHEN x > 1 THEN 1.0D ELSE x END;
-- a health component on its 0-100 scale
CREATE OR REPLACE TEMPORARY FUNCTION clamp100(x DOUBLE) RETURNS DOUBLE
RETURN CASE WHEN x < 0 THEN 0.0D WHEN x > 100 THEN 100.0D ELSE x END
