-- "When did X last happen before T", over all history.
-- Sessions and critical errors (incidents) are dense, so joining every day to every later cutoff would
-- multiply them: instead each day with either goes to the first cutoff after it (a cutoff at midnight T sees
-- the days before T's day), the latest session and incident are kept per account and such period, and each
-- cutoff takes the latest of its own and the earlier periods (at most one row per earlier cutoff).
-- Sponsor touches, payments, NPS answers, tickets, deployments and acted nudges are sparse: a plain join to
-- every later cutoff is cheap.
WITH next_cutoff AS (
    SELECT d.day, min(c.cutoff) AS cutoff
    FROM (SELECT DISTINCT day FROM daily) AS d
    JOIN cutoffs AS c ON d.day < day_of(c.cutoff)
    GROUP BY d.day
),

last_in_period AS (
    SELECT
        s.account_id,
        n.cutoff,
        max(s.last_session_ts) AS last_session_ts,
        max(s.last_incident_ts) AS last_incident_ts
    FROM daily AS s
    JOIN next_cutoff AS n ON n.day = s.day
    WHERE s.last_session_ts IS NOT NULL OR s.last_incident_ts IS NOT NULL
    GROUP BY s.account_id, n.cutoff
),

sessions AS (
    SELECT
        k.account_id,
        k.cutoff,
        max(p.last_session_ts) AS last_session_ts,
        max(p.last_incident_ts) AS last_incident_ts
    FROM account_cutoffs AS k
    LEFT JOIN last_in_period AS p ON p.account_id = k.account_id AND p.cutoff <= k.cutoff
    GROUP BY k.account_id, k.cutoff
),

sparse AS (
    SELECT
        e.account_id,
        c.cutoff,
        max(e.ts) FILTER (WHERE e.event_type = 'sponsor.touch') AS last_sponsor_ts,
        max(e.ts) FILTER (WHERE e.event_type = 'billing.invoice' AND e.status = 'paid') AS last_paid_ts,
        max(e.ts) FILTER (WHERE e.event_type = 'survey.response' AND e.nps IS NOT NULL) AS last_nps_ts,
        max_by(e.nps, ordered(e.ts, e.event_id))
            FILTER (WHERE e.event_type = 'survey.response' AND e.nps IS NOT NULL) AS last_nps,
        max(e.ts) FILTER (WHERE e.event_type = 'ticket.created') AS last_ticket_ts,
        max(e.ts) FILTER (WHERE e.event_type = 'deployment.published') AS last_deployment_ts,
        max(e.ts) FILTER (WHERE e.event_type = 'nudge.acted') AS last_nudge_acted_ts
    FROM cutoffs AS c
    JOIN sparse_events AS e ON e.ts < c.cutoff
    WHERE e.event_type IN (
        'sponsor.touch', 'billing.invoice', 'survey.response', 'ticket.created', 'deployment.published',
        'nudge.acted'
    )
    GROUP BY e.account_id, c.cutoff
)

SELECT
    s.account_id, s.cutoff, s.last_session_ts, s.last_incident_ts, p.last_sponsor_ts, p.last_paid_ts,
    p.last_nps_ts, p.last_nps, p.last_ticket_ts, p.last_deployment_ts, p.last_nudge_acted_ts
FROM sessions AS s
LEFT JOIN sparse AS p ON p.account_id = s.account_id AND p.cutoff = s.cutoff
