-- Who was active on which UTC day: one row per account, user and day with at least one session.
SELECT DISTINCT account_id, user_id, day_of(ts) AS day
FROM events
WHERE event_type = 'user.session' AND user_id IS NOT NULL
