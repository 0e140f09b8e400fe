-- Windowed counts per account and cutoff. Windows end just before the cutoff: 7d = ages 1-7, prev_7d = 8-14,
-- 30d = 1-30, prev_30d = 31-60, 90d = 1-90. Sums are NULL when the window had no rows; feature_rows.sql
-- turns those into zeros.
-- The dense telemetry comes from the daily roll-up joined to each cutoff's lookback days, first summed per
-- period (ages 1-7, 8-14, 15-30, 31-60, 61-90, named by their last age) so that each window adds up a few
-- periods instead of filtering every day once per column. The occasional events (tickets, surveys, sponsor
-- touches, nudges, recipes, deployments, failed payments) are counted straight from sparse_events.
WITH periods AS (
    SELECT
        d.account_id,
        l.cutoff,
        CASE WHEN l.age <= 7 THEN 7 WHEN l.age <= 14 THEN 14 WHEN l.age <= 30 THEN 30 WHEN l.age <= 60 THEN 60 ELSE 90 END
            AS period,
        sum(d.sessions) AS sessions,
        sum(d.session_minutes) AS session_minutes,
        sum(d.feature_uses) AS feature_uses,
        sum(d.errors) AS errors,
        max(d.errors) AS max_daily_errors,
        sum(d.job_retries) AS job_retries
    FROM daily AS d
    JOIN lookback AS l ON l.day = d.day AND l.age <= 90
    GROUP BY d.account_id, l.cutoff, period
),

telemetry AS (
    SELECT
        account_id,
        cutoff,
        sum(sessions) FILTER (WHERE period = 7) AS sessions_7d,
        sum(sessions) FILTER (WHERE period = 14) AS sessions_prev_7d,
        sum(sessions) FILTER (WHERE period <= 30) AS sessions_30d,
        sum(sessions) FILTER (WHERE period = 60) AS sessions_prev_30d,
        sum(sessions) AS sessions_90d,
        sum(session_minutes) FILTER (WHERE period <= 30) AS session_minutes_30d,
        sum(feature_uses) FILTER (WHERE period = 7) AS feature_uses_7d,
        sum(feature_uses) FILTER (WHERE period = 14) AS feature_uses_prev_7d,
        sum(feature_uses) FILTER (WHERE period <= 30) AS feature_uses_30d,
        sum(feature_uses) FILTER (WHERE period = 60) AS feature_uses_prev_30d,
        sum(feature_uses) AS feature_uses_90d,
        sum(errors) FILTER (WHERE period = 7) AS errors_7d,
        sum(errors) FILTER (WHERE period <= 30) AS errors_30d,
        sum(errors) AS errors_90d,
        max(max_daily_errors) FILTER (WHERE period = 7) AS max_daily_errors_7d,
        sum(job_retries) FILTER (WHERE period = 7) AS job_retries_7d,
        sum(job_retries) FILTER (WHERE period <= 30) AS job_retries_30d
    FROM periods
    GROUP BY account_id, cutoff
),

occasional AS (
    SELECT
        e.account_id,
        l.cutoff,
        count(*) FILTER (WHERE e.event_type = 'recipe.completed' AND l.age <= 30) AS recipes_completed_30d,
        count(*) FILTER (WHERE e.event_type = 'deployment.published' AND l.age <= 30) AS deployments_30d,
        count(*) FILTER (WHERE e.event_type = 'ticket.created' AND l.age <= 30) AS tickets_created_30d,
        count(*) FILTER (WHERE e.event_type = 'ticket.created') AS tickets_created_90d,
        sum(e.sentiment) FILTER (WHERE e.event_type = 'ticket.resolved') AS sentiment_sum_90d,
        count(e.sentiment) FILTER (WHERE e.event_type = 'ticket.resolved') AS sentiment_n_90d,
        sum(e.csat) FILTER (WHERE e.event_type IN ('ticket.resolved', 'survey.response')) AS csat_sum_90d,
        count(e.csat) FILTER (WHERE e.event_type IN ('ticket.resolved', 'survey.response')) AS csat_n_90d,
        count(*) FILTER (WHERE e.event_type = 'sponsor.touch') AS sponsor_touches_90d,
        count(*) FILTER (WHERE e.event_type = 'nudge.sent') AS nudges_sent_90d,
        count(*) FILTER (WHERE e.event_type = 'nudge.acted') AS nudges_acted_90d,
        count(*) FILTER (WHERE e.event_type = 'billing.invoice' AND e.status = 'failed') AS payment_failures_90d
    FROM sparse_events AS e
    JOIN lookback AS l ON l.day = day_of(e.ts) AND l.age <= 90
    WHERE e.event_type IN (
        'recipe.completed', 'deployment.published', 'ticket.created', 'ticket.resolved', 'survey.response',
        'sponsor.touch', 'nudge.sent', 'nudge.acted', 'billing.invoice'
    )
    GROUP BY e.account_id, l.cutoff
)

SELECT
    coalesce(t.account_id, o.account_id) AS account_id,
    coalesce(t.cutoff, o.cutoff) AS cutoff,
    t.sessions_7d,
    t.sessions_prev_7d,
    t.sessions_30d,
    t.sessions_prev_30d,
    t.sessions_90d,
    t.session_minutes_30d,
    t.feature_uses_7d,
    t.feature_uses_prev_7d,
    t.feature_uses_30d,
    t.feature_uses_prev_30d,
    t.feature_uses_90d,
    t.errors_7d,
    t.errors_30d,
    t.errors_90d,
    t.max_daily_errors_7d,
    t.job_retries_7d,
    t.job_retries_30d,
    o.recipes_completed_30d,
    o.deployments_30d,
    o.tickets_created_30d,
    o.tickets_created_90d,
    o.sentiment_sum_90d,
    o.sentiment_n_90d,
    o.csat_sum_90d,
    o.csat_n_90d,
    o.sponsor_touches_90d,
    o.nudges_sent_90d,
    o.nudges_acted_90d,
    o.payment_failures_90d
FROM telemetry AS t
FULL JOIN occasional AS o ON o.account_id = t.account_id AND o.cutoff = t.cutoff
