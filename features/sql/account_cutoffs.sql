-- The accounts active at each cutoff T, with the contract terms in force at T (contract_terms.sql).
-- Active at T: the contract started before T, no `subscription.cancelled` before T, and the renewal date in
-- force at T has not passed by more than $grace_days days (a renewal may be recorded a few days late).
-- Accounts without a contract start are never active. One row per (account_id, cutoff).
SELECT
    account_id, cutoff, tier, segment, region, industry, icp, contract_start,
    plan, seats_purchased, arr, renewal_date
FROM contract_terms
WHERE contract_start < cutoff
    AND NOT cancelled
    AND (renewal_date IS NULL OR cutoff <= renewal_date + n_days($grace_days))
