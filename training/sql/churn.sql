-- Churn within the horizon after cutoff T (docs/domain.md), looking only forward from T: a
-- `subscription.cancelled` in [T, T + horizon), or a renewal date due by T + horizon with no
-- `subscription.renewed` recorded from T until $grace_days days after that date. The feature build keeps an
-- account active for $grace_days days after its renewal date (a renewal may be recorded late), so a renewal
-- date already passed at T that is never renewed is churn too. Renewal dates are midnights, so one due at
-- exactly T + horizon is settled inside the horizon (as the simulator's truth counts it).
-- Matured (decided) once the store's events reach T + horizon + $grace_days days: a renewal due at the
-- horizon's end may still be recorded until then.
-- days_to_event: for a churn, the days from T to it (the first cancellation, or the renewal date that
-- lapsed, whichever came first; 0 for a renewal date already passed at T): the time-to-event learner's
-- input (training/hazard.py). NULL when the label is 0.
WITH ahead AS (
    SELECT
        t.account_id,
        t.cutoff,
        min(e.ts) FILTER (
            WHERE e.event_type = 'subscription.cancelled' AND e.ts < t.cutoff + n_days($horizon_days)
        ) AS cancelled_at,
        count_if(e.event_type = 'subscription.renewed' AND e.ts < t.renewal_date + n_days($grace_days)) > 0
            AS renewed
    FROM label_terms AS t
    JOIN events AS e ON e.account_id = t.account_id AND e.ts >= t.cutoff
    WHERE e.event_type IN ('subscription.cancelled', 'subscription.renewed')
    GROUP BY t.account_id, t.cutoff
),

last_event AS (
    SELECT max(ts) AS ts FROM events
),

decided AS (
    SELECT
        t.account_id,
        t.cutoff,
        a.cancelled_at,
        CASE
            WHEN t.renewal_date <= t.cutoff + n_days($horizon_days) AND NOT coalesce(a.renewed, FALSE)
                THEN t.renewal_date
        END AS lapsed_at,
        t.cutoff + n_days($horizon_days + $grace_days) <= l.ts AS matured
    FROM label_terms AS t
    CROSS JOIN last_event AS l
    LEFT JOIN ahead AS a ON a.account_id = t.account_id AND a.cutoff = t.cutoff
    WHERE NOT t.churned_before
)

SELECT
    account_id,
    cutoff,
    coalesce(cancelled_at, lapsed_at) IS NOT NULL AS label,
    matured,
    CASE
        WHEN coalesce(cancelled_at, lapsed_at) IS NOT NULL
            THEN greatest(elapsed_days(cutoff, least(cancelled_at, lapsed_at)), 0.0)
    END AS days_to_event
FROM decided
