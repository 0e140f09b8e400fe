-- "When did X last happen before T", over all history.
-- Sessions are dense, so joining every day to every later cutoff would multiply them: instead each account's
-- daily rows and its cutoff rows are streamed in time order and the latest session carried forward (an
-- as-of join written as a window). A cutoff row sorts before the rows of its own day (ts >= T) and its
-- frame stops one row short of itself, so it sees only days before T.
-- Sponsor touches, payments and NPS answers are sparse: a plain join to every later cutoff is cheap.
WITH stream AS (
    SELECT account_id, day, 1 AS is_event, NULL AS cutoff, last_session_ts
    FROM daily
    WHERE last_session_ts IS NOT NULL
    UNION ALL
    SELECT account_id, day_of(cutoff) AS day, 0 AS is_event, cutoff, NULL AS last_session_ts
    FROM account_cutoffs
),

sessions AS (
    SELECT
        account_id,
        cutoff,
        is_event,
        max(last_session_ts) OVER (
            PARTITION BY account_id ORDER BY day, is_event ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS last_session_ts
    FROM stream
),

sparse AS (
    SELECT
        e.account_id,
        c.cutoff,
        max(e.ts) FILTER (WHERE e.event_type = 'sponsor.touch') AS last_sponsor_ts,
        max(e.ts) FILTER (WHERE e.event_type = 'billing.invoice' AND e.status = 'paid') AS last_paid_ts,
        max(e.ts) FILTER (WHERE e.event_type = 'survey.response' AND e.nps IS NOT NULL) AS last_nps_ts,
        max_by(e.nps, ordered(e.ts, e.event_id))
            FILTER (WHERE e.event_type = 'survey.response' AND e.nps IS NOT NULL) AS last_nps
    FROM cutoffs AS c
    JOIN sparse_events AS e ON e.ts < c.cutoff
    WHERE e.event_type IN ('sponsor.touch', 'billing.invoice', 'survey.response')
    GROUP BY e.account_id, c.cutoff
)

SELECT s.account_id, s.cutoff, s.last_session_ts, p.last_sponsor_ts, p.last_paid_ts, p.last_nps_ts, p.last_nps
FROM sessions AS s
LEFT JOIN sparse AS p ON p.account_id = s.account_id AND p.cutoff = s.cutoff
WHERE s.is_event = 0
