-- Which product features each account used on which UTC day, and whether the feature is a core one.
SELECT account_id, feature, day_of(ts) AS day, bool_or(coalesce(core, FALSE)) AS core
FROM events
WHERE event_type = 'feature.used' AND feature IS NOT NULL
GROUP BY account_id, feature, day_of(ts)
