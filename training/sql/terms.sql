-- The candidates and their contract terms at each cutoff T, read from history only (events before T), by the
-- rules of features/sql/account_cutoffs.sql: the accounts snapshot holds the values at contract start and the
-- latest change before T overrides them. An account that cancelled before T, or whose renewal date passed
-- more than $grace_days days before T unrenewed, already churned: it is flagged here and never labelled, even
-- if a feature table built before those events arrived still lists it.
-- Input `label_rows(account_id, cutoff)`; one row per distinct pair.
WITH snapshot AS (
    SELECT
        account_id,
        seats_purchased,
        arr,
        renewal_date,
        row_number() OVER (PARTITION BY account_id ORDER BY contract_start DESC, name) AS copy
    FROM accounts
),

candidates AS (
    SELECT DISTINCT account_id, cutoff FROM label_rows
),

contract_events AS (
    SELECT account_id, ts, event_id, event_type, seats_to, arr_to, renewal_date
    FROM events
    WHERE event_type IN ('seats.changed', 'plan.changed', 'subscription.renewed', 'subscription.cancelled')
),

history AS (
    SELECT
        c.account_id,
        c.cutoff,
        count_if(e.event_type = 'subscription.cancelled') > 0 AS cancelled,
        max_by(e.seats_to, ordered(e.ts, e.event_id))
            FILTER (WHERE e.event_type = 'seats.changed' AND e.seats_to IS NOT NULL) AS seats,
        max_by(e.arr_to, ordered(e.ts, e.event_id))
            FILTER (WHERE e.event_type IN ('plan.changed', 'subscription.renewed') AND e.arr_to IS NOT NULL) AS arr,
        max_by(e.renewal_date, ordered(e.ts, e.event_id))
            FILTER (WHERE e.event_type = 'subscription.renewed' AND e.renewal_date IS NOT NULL) AS renewal_date
    FROM candidates AS c
    JOIN contract_events AS e ON e.account_id = c.account_id AND e.ts < c.cutoff
    GROUP BY c.account_id, c.cutoff
)

SELECT
    c.account_id,
    c.cutoff,
    coalesce(h.cancelled, FALSE)
    OR coalesce(coalesce(h.renewal_date, s.renewal_date) + n_days($grace_days) < c.cutoff, FALSE)
        AS churned_before,
    coalesce(h.renewal_date, s.renewal_date) AS renewal_date,
    coalesce(h.seats, s.seats_purchased) AS seats,
    coalesce(h.arr, s.arr) AS arr
FROM candidates AS c
LEFT JOIN snapshot AS s ON s.account_id = c.account_id AND s.copy = 1
LEFT JOIN history AS h ON h.account_id = c.account_id AND h.cutoff = c.cutoff
