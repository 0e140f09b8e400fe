-- Integration health at the cutoff: each integration's latest state before T. Heartbeats repeating a state
-- are dropped first, then each state change is valid until the next one ([ts, next_ts)); a state is the
-- latest before T when ts < T <= next_ts.
WITH ordered_states AS (
    SELECT
        account_id,
        integration,
        status,
        ts,
        event_id,
        lag(status) OVER (PARTITION BY account_id, integration ORDER BY ts, event_id) AS previous_status
    FROM sparse_events
    WHERE event_type = 'integration.state' AND integration IS NOT NULL
),

state_changes AS (
    SELECT
        account_id,
        status,
        ts,
        lead(ts) OVER (PARTITION BY account_id, integration ORDER BY ts, event_id) AS next_ts
    FROM ordered_states
    WHERE previous_status IS DISTINCT FROM status
)

SELECT
    s.account_id,
    c.cutoff,
    count_if(s.status = 'ok') AS integrations_ok,
    count_if(s.status IN ('failing', 'disconnected')) AS integrations_failing
FROM cutoffs AS c
JOIN state_changes AS s ON s.ts < c.cutoff AND coalesce(s.next_ts, forever()) >= c.cutoff
GROUP BY s.account_id, c.cutoff
