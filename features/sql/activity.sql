-- Windowed counts per account and cutoff, from the daily roll-up joined to each cutoff's lookback days.
-- Windows end just before the cutoff: 7d = ages 1-7, prev_7d = 8-14, 30d = 1-30, prev_30d = 31-60,
-- 90d = 1-90. Sums are NULL when the window had no rows; features.sql turns those into zeros.
SELECT
    d.account_id,
    l.cutoff,
    sum(d.sessions) FILTER (WHERE l.age <= 7) AS sessions_7d,
    sum(d.sessions) FILTER (WHERE l.age BETWEEN 8 AND 14) AS sessions_prev_7d,
    sum(d.sessions) FILTER (WHERE l.age <= 30) AS sessions_30d,
    sum(d.sessions) FILTER (WHERE l.age BETWEEN 31 AND 60) AS sessions_prev_30d,
    sum(d.sessions) FILTER (WHERE l.age <= 90) AS sessions_90d,
    sum(d.session_minutes) FILTER (WHERE l.age <= 30) AS session_minutes_30d,
    sum(d.feature_uses) FILTER (WHERE l.age <= 7) AS feature_uses_7d,
    sum(d.feature_uses) FILTER (WHERE l.age BETWEEN 8 AND 14) AS feature_uses_prev_7d,
    sum(d.feature_uses) FILTER (WHERE l.age <= 30) AS feature_uses_30d,
    sum(d.feature_uses) FILTER (WHERE l.age BETWEEN 31 AND 60) AS feature_uses_prev_30d,
    sum(d.feature_uses) FILTER (WHERE l.age <= 90) AS feature_uses_90d,
    sum(d.recipes_completed) FILTER (WHERE l.age <= 30) AS recipes_completed_30d,
    sum(d.deployments) FILTER (WHERE l.age <= 30) AS deployments_30d,
    sum(d.errors) FILTER (WHERE l.age <= 7) AS errors_7d,
    sum(d.errors) FILTER (WHERE l.age <= 30) AS errors_30d,
    sum(d.errors) FILTER (WHERE l.age <= 90) AS errors_90d,
    max(d.errors) FILTER (WHERE l.age <= 7) AS max_daily_errors_7d,
    sum(d.job_retries) FILTER (WHERE l.age <= 7) AS job_retries_7d,
    sum(d.job_retries) FILTER (WHERE l.age <= 30) AS job_retries_30d,
    sum(d.tickets_created) FILTER (WHERE l.age <= 30) AS tickets_created_30d,
    sum(d.tickets_created) FILTER (WHERE l.age <= 90) AS tickets_created_90d,
    sum(d.sentiment_sum) FILTER (WHERE l.age <= 90) AS sentiment_sum_90d,
    sum(d.sentiment_n) FILTER (WHERE l.age <= 90) AS sentiment_n_90d,
    sum(d.csat_sum) FILTER (WHERE l.age <= 90) AS csat_sum_90d,
    sum(d.csat_n) FILTER (WHERE l.age <= 90) AS csat_n_90d,
    sum(d.sponsor_touches) FILTER (WHERE l.age <= 90) AS sponsor_touches_90d,
    sum(d.nudges_sent) FILTER (WHERE l.age <= 90) AS nudges_sent_90d,
    sum(d.nudges_acted) FILTER (WHERE l.age <= 90) AS nudges_acted_90d,
    sum(d.payment_failures) FILTER (WHERE l.age <= 90) AS payment_failures_90d
FROM daily AS d
JOIN lookback AS l ON l.day = d.day
GROUP BY d.account_id, l.cutoff
