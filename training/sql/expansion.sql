-- Expansion within the horizon after cutoff T (docs/domain.md): seats or plan ARR up by at least $min_rise
-- (10%), looking only forward from T. A `seats.changed` or `plan.changed` in [T, T + horizon) counts when it
-- raises seats or ARR by that much in one step, or to that much above the terms in force at T (several
-- smaller steps). Renewal price uplifts are not plan changes and do not count.
-- Matured (decided) once the store's events reach T + horizon.
WITH ahead AS (
    SELECT
        t.account_id,
        t.cutoff,
        bool_or(
            e.event_type = 'seats.changed'
            AND (rose_by(e.seats_to, e.seats_from, $min_rise) OR rose_by(e.seats_to, t.seats, $min_rise))
        ) AS seats_up,
        bool_or(
            e.event_type = 'plan.changed'
            AND (rose_by(e.arr_to, e.arr_from, $min_rise) OR rose_by(e.arr_to, t.arr, $min_rise))
        ) AS arr_up
    FROM label_terms AS t
    JOIN events AS e
        ON e.account_id = t.account_id AND e.ts >= t.cutoff AND e.ts < t.cutoff + n_days($horizon_days)
    WHERE e.event_type IN ('seats.changed', 'plan.changed')
    GROUP BY t.account_id, t.cutoff
),

last_event AS (
    SELECT max(ts) AS ts FROM events
)

SELECT
    t.account_id,
    t.cutoff,
    coalesce(a.seats_up, FALSE) OR coalesce(a.arr_up, FALSE) AS label,
    t.cutoff + n_days($horizon_days) <= l.ts AS matured,
    NULL::DOUBLE AS days_to_event
FROM label_terms AS t
CROSS JOIN last_event AS l
LEFT JOIN ahead AS a ON a.account_id = t.account_id AND a.cutoff = t.cutoff
WHERE NOT t.churned_before
