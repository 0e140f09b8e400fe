-- The accounts active at each cutoff T, with the contract terms in force at T.
-- Terms: the accounts snapshot holds the values at contract start; the latest `seats.changed`,
-- `plan.changed` or `subscription.renewed` before T overrides them.
-- Active at T: the contract started before T, no `subscription.cancelled` before T, and the renewal date in
-- force at T has not passed by more than $grace_days days (a renewal may be recorded a few days late).
-- Accounts without a contract start are never active. One row per (account_id, cutoff).
WITH snapshot AS (
    SELECT
        *,
        row_number() OVER (PARTITION BY account_id ORDER BY contract_start DESC, name) AS copy
    FROM accounts
),

candidates AS (
    SELECT a.*, c.cutoff
    FROM snapshot AS a
    JOIN cutoffs AS c ON a.contract_start < c.cutoff
    WHERE a.copy = 1
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
    FROM candidates AS k
    JOIN sparse_events AS e ON e.account_id = k.account_id AND e.ts < k.cutoff
    WHERE e.event_type IN ('seats.changed', 'plan.changed', 'subscription.renewed', 'subscription.cancelled')
    GROUP BY k.account_id, k.cutoff
),

terms AS (
    SELECT
        k.account_id,
        k.cutoff,
        k.tier,
        k.segment,
        k.region,
        k.industry,
        k.icp,
        k.contract_start,
        coalesce(ch.plan, k.plan) AS plan,
        coalesce(ch.seats, k.seats_purchased) AS seats_purchased,
        coalesce(ch.arr, k.arr) AS arr,
        coalesce(ch.renewal_date, k.renewal_date) AS renewal_date,
        coalesce(ch.cancelled, FALSE) AS cancelled
    FROM candidates AS k
    LEFT JOIN changes AS ch ON ch.account_id = k.account_id AND ch.cutoff = k.cutoff
)

SELECT
    account_id, cutoff, tier, segment, region, industry, icp, contract_start,
    plan, seats_purchased, arr, renewal_date
FROM terms
WHERE NOT cancelled AND (renewal_date IS NULL OR cutoff <= renewal_date + n_days($grace_days))
