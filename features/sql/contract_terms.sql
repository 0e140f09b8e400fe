-- The contract terms in force at each cutoff T for the pairs in `term_pairs(account_id, cutoff)`, read from
-- history only: the accounts snapshot holds the values at contract start, and the latest `seats.changed`,
-- `plan.changed` or `subscription.renewed` before T overrides them; `cancelled` says a
-- `subscription.cancelled` came before T. The one definition of the terms: the feature build
-- (account_cutoffs.sql) and the labels (training/sql/terms.sql) both read it. Needs `sparse_events`.
WITH snapshot AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY account_id ORDER BY contract_start DESC, name) AS copy
    FROM accounts
),

changes AS (
    SELECT
        k.account_id,
        k.cutoff,
        max_by(e.seats_to, ordered(e.ts, e.event_id))
            FILTER (WHERE e.event_type = 'seats.changed' AND e.seats_to IS NOT NULL) AS seats,
        max_by(e.plan_to, ordered(e.ts, e.event_id))
            FILTER (WHERE e.event_type = 'plan.changed' AND e.plan_to IS NOT NULL) AS plan,
        max_by(e.arr_to, ordered(e.ts, e.event_id))
            FILTER (WHERE e.event_type IN ('plan.changed', 'subscription.renewed') AND e.arr_to IS NOT NULL) AS arr,
        max_by(e.renewal_date, ordered(e.ts, e.event_id))
            FILTER (WHERE e.event_type = 'subscription.renewed' AND e.renewal_date IS NOT NULL) AS renewal_date,
        count_if(e.event_type = 'subscription.cancelled') > 0 AS cancelled
    FROM term_pairs AS k
    JOIN sparse_events AS e ON e.account_id = k.account_id AND e.ts < k.cutoff
    WHERE e.event_type IN ('seats.changed', 'plan.changed', 'subscription.renewed', 'subscription.cancelled')
    GROUP BY k.account_id, k.cutoff
)

SELECT
    k.account_id,
    k.cutoff,
    a.tier,
    a.segment,
    a.region,
    a.industry,
    a.icp,
    a.contract_start,
    coalesce(ch.plan, a.plan) AS plan,
    coalesce(ch.seats, a.seats_purchased) AS seats_purchased,
    coalesce(ch.arr, a.arr) AS arr,
    coalesce(ch.renewal_date, a.renewal_date) AS renewal_date,
    coalesce(ch.cancelled, FALSE) AS cancelled
FROM term_pairs AS k
LEFT JOIN snapshot AS a ON a.account_id = k.account_id AND a.copy = 1
LEFT JOIN changes AS ch ON ch.account_id = k.account_id AND ch.cutoff = k.cutoff
