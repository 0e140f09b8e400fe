-- Active users per window, from each user's active days in the 90 days before the cutoff. Per user, the
-- active days within the last 7, 14, 30, 60 and 90 days: a user was active in ages 8-14 when the last 14 days
-- hold more of their days than the last 7 (likewise 31-60 and 61-90). user_days_* sum the daily active
-- users over a window (mean DAU = user_days / window length).
WITH per_user AS (
    SELECT
        u.account_id,
        l.cutoff,
        u.user_id,
        count(*) FILTER (WHERE l.age <= 7) AS days_7d,
        count(*) FILTER (WHERE l.age <= 14) AS days_14d,
        count(*) FILTER (WHERE l.age <= 30) AS days_30d,
        count(*) FILTER (WHERE l.age <= 60) AS days_60d,
        count(*) AS days_90d
    FROM user_days AS u
    JOIN lookback AS l ON l.day = u.day AND l.age <= 90
    GROUP BY u.account_id, l.cutoff, u.user_id
)

SELECT
    account_id,
    cutoff,
    count_if(days_7d > 0) AS active_users_7d,
    count_if(days_14d > days_7d) AS active_users_prev_7d,
    count_if(days_30d > 0) AS active_users_30d,
    count_if(days_60d > days_30d) AS active_users_prev_30d,
    count_if(days_90d > days_60d) AS active_users_61_90d,
    count(*) AS active_users_90d,
    sum(days_7d) AS user_days_7d,
    sum(days_30d) AS user_days_30d,
    sum(days_90d) AS user_days_90d
FROM per_user
GROUP BY account_id, cutoff
