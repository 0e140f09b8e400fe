-- Onboarding progress at the cutoff, from the first time each milestone was reached before T.
WITH firsts AS (
    SELECT account_id, milestone, min(ts) AS reached
    FROM sparse_events
    WHERE event_type = 'onboarding.milestone' AND milestone IS NOT NULL
    GROUP BY account_id, milestone
)

SELECT
    f.account_id,
    c.cutoff,
    count(*) AS onboarding_milestones,
    max(f.reached) AS last_milestone_ts,
    min(f.reached) FILTER (WHERE f.milestone = 'first_value') AS first_value_ts
FROM cutoffs AS c
JOIN firsts AS f ON f.reached < c.cutoff
GROUP BY f.account_id, c.cutoff
