-- Churn within the horizon after cutoff T (docs/domain.md), looking only forward from T: a
-- `subscription.cancelled` in [T, T + horizon), or a renewal date due by T + horizon with no
-- `subscription.renewed` recorded from T until $grace_days days after that date. The feature build keeps an
-- account active for $grace_days days after its renewal date (a renewal may be recorded late), so a renewal
-- date already passed at T that is never renewed is churn too. Renewal dates are midnights, so one due at
-- exactly T + horizon is settled inside the horizon (as the simulator's truth counts it).
-- Matured (decided) once the store's events reach T + horizon + $grace_days days: a renewal due at the
-- horizon's end may still be recorded until then.
WITH ahead AS (
    SELECT
        t.account_id,
        t.cutoff,
        count_if(e.event_type = 'subscription.cancelled' AND e.ts < t.cutoff + n_days($horizon_days)) > 0
            AS cancelled,
        count_if(e.event_type = 'subscription.renewed' AND e.ts < t.renewal_date + n_days($grace_days)) > 0
            AS renewed
    FROM label_terms AS t
    JOIN events AS e ON e.account_id = t.account_id AND e.ts >= t.cutoff
    WHERE e.event_type IN ('subscription.cancelled', 'subscription.renewed')
    GROUP BY t.account_id, t.cutoff
),

last_event AS (
    SELECT max(ts) AS ts FROM events
)

SELECT
    t.account_id,
    t.cutoff,
    coalesce(a.cancelled, FALSE)
    OR coalesce(t.renewal_date <= t.cutoff + n_days($horizon_days) AND NOT coalesce(a.renewed, FALSE), FALSE)
        AS label,
    t.cutoff + n_days($horizon_days + $grace_days) <= l.ts AS matured
FROM label_terms AS t
CROSS JOIN last_event AS l
LEFT JOIN ahead AS a ON a.account_id = t.account_id AND a.cutoff = t.cutoff
WHERE NOT t.churned_before
