-- Error spikes: the worst day of the last 7 (x) against the account's own p95 of daily errors over the 90
-- days before those 7 (ages 8-97, the rest of the lookback; a day without errors counts as 0). With 90
-- baseline days the nearest-rank p95 is the 86th smallest value, so x > p95 exactly when at most 4
-- baseline days had >= x errors. This table counts those days; features.sql flags the spike.
SELECT a.account_id, a.cutoff, count(*) AS baseline_days_at_or_above
FROM daily AS d
JOIN lookback AS l ON l.day = d.day AND l.age >= 8
JOIN activity AS a ON a.account_id = d.account_id AND a.cutoff = l.cutoff
WHERE d.errors > 0 AND a.max_daily_errors_7d > 0 AND d.errors >= a.max_daily_errors_7d
GROUP BY a.account_id, a.cutoff
