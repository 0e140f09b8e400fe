-- Each account's last 12 weeks of use (ages 1-84; week 1 holds ages 1-7, the latest), reduced to the sums
-- a trend and a volatility need: per quantity the total, the total weighted by week number and the sum of
-- squared weekly totals. A week without rows adds nothing to any sum, which is exactly a week of zero use.
-- feature_rows.sql turns the sums into a least-squares slope and a coefficient of variation.
WITH weeks AS (
    SELECT
        d.account_id,
        l.cutoff,
        CAST(floor((l.age - 1) / 7.0) AS INTEGER) + 1 AS week,
        CAST(sum(d.sessions) AS DOUBLE) AS sessions,
        CAST(sum(d.feature_uses) AS DOUBLE) AS feature_uses
    FROM daily AS d
    JOIN lookback AS l ON l.day = d.day AND l.age <= 84
    GROUP BY d.account_id, l.cutoff, week
)

SELECT
    account_id,
    cutoff,
    sum(sessions) AS sessions_12w,
    sum(week * sessions) AS sessions_by_week_12w,
    sum(sessions * sessions) AS sessions_squared_12w,
    sum(feature_uses) AS feature_uses_12w,
    sum(week * feature_uses) AS feature_uses_by_week_12w,
    sum(feature_uses * feature_uses) AS feature_uses_squared_12w
FROM weeks
GROUP BY account_id, cutoff
