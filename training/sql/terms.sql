-- The labels' candidates with the contract terms in force at T (features/sql/contract_terms.sql, over the
-- label rows as `term_pairs`). An account that cancelled before T, or whose renewal date passed more than
-- $grace_days days before T unrenewed, already churned: it is flagged here and never labelled, even if a
-- feature table built before those events arrived still lists it.
SELECT
    account_id,
    cutoff,
    cancelled OR coalesce(renewal_date + n_days($grace_days) < cutoff, FALSE) AS churned_before,
    renewal_date,
    seats_purchased AS seats,
    arr
FROM contract_terms
