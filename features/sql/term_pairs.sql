-- The (account, cutoff) pairs whose contract terms the feature build needs: accounts started before T.
SELECT DISTINCT a.account_id, c.cutoff
FROM accounts AS a
JOIN cutoffs AS c ON a.contract_start < c.cutoff
