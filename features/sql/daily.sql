-- Events rolled up once per account and UTC day. Windowed features sum these rows, never raw events;
-- `last_session_ts` feeds the as-of recency of sessions (recency.sql). Counts are 64-bit integers (a SUM
-- would otherwise widen to 128 bits and make every later sum slow).
SELECT
    account_id,
    day_of(ts) AS day,
    count(*) FILTER (WHERE event_type = 'user.session') AS sessions,
    sum(duration_min) FILTER (WHERE event_type = 'user.session') AS session_minutes,
    CAST(sum(count) FILTER (WHERE event_type = 'feature.used') AS BIGINT) AS feature_uses,
    CAST(sum(count) FILTER (WHERE event_type = 'error.raised') AS BIGINT) AS errors,
    CAST(sum(count) FILTER (WHERE event_type = 'job.retry') AS BIGINT) AS job_retries,
    count(*) FILTER (WHERE event_type = 'ticket.created') AS tickets_created,
    sum(sentiment) FILTER (WHERE event_type = 'ticket.resolved') AS sentiment_sum,
    count(sentiment) FILTER (WHERE event_type = 'ticket.resolved') AS sentiment_n,
    CAST(sum(csat) FILTER (WHERE event_type IN ('ticket.resolved', 'survey.response')) AS BIGINT) AS csat_sum,
    count(csat) FILTER (WHERE event_type IN ('ticket.resolved', 'survey.response')) AS csat_n,
    count(*) FILTER (WHERE event_type = 'nudge.sent') AS nudges_sent,
    count(*) FILTER (WHERE event_type = 'nudge.acted') AS nudges_acted,
    count(*) FILTER (WHERE event_type = 'recipe.completed') AS recipes_completed,
    count(*) FILTER (WHERE event_type = 'deployment.published') AS deployments,
    count(*) FILTER (WHERE event_type = 'sponsor.touch') AS sponsor_touches,
    count(*) FILTER (WHERE event_type = 'billing.invoice' AND status = 'failed') AS payment_failures,
    max(ts) FILTER (WHERE event_type = 'user.session') AS last_session_ts
FROM events
GROUP BY account_id, day_of(ts)
