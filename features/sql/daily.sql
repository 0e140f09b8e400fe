-- The dense telemetry (sessions, feature uses, errors, retries) rolled up once per account and UTC day, and
-- a row for every day the account sent any event (feature_rows.sql reads the first one). Windowed features
-- sum these rows, never raw events; `last_session_ts` and `last_incident_ts` (the
-- last critical error) feed the as-of recencies of recency.sql.
-- The occasional events are counted from sparse_events instead (activity.sql): a rollup pays for every
-- column on every day of every account, however rare the event. Counts are 64-bit integers (a SUM would
-- otherwise widen to 128 bits and make every later sum slow).
SELECT
    account_id,
    day_of(ts) AS day,
    count(*) FILTER (WHERE event_type = 'user.session') AS sessions,
    sum(duration_min) FILTER (WHERE event_type = 'user.session') AS session_minutes,
    CAST(sum(count) FILTER (WHERE event_type = 'feature.used') AS BIGINT) AS feature_uses,
    CAST(sum(count) FILTER (WHERE event_type = 'error.raised') AS BIGINT) AS errors,
    CAST(sum(count) FILTER (WHERE event_type = 'job.retry') AS BIGINT) AS job_retries,
    max(ts) FILTER (WHERE event_type = 'user.session') AS last_session_ts,
    max(ts) FILTER (WHERE event_type = 'error.raised' AND severity = 'critical') AS last_incident_ts
FROM events
GROUP BY account_id, day_of(ts)
