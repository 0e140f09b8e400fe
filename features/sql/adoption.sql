-- Adoption width: distinct features used per window, and core features among them.
WITH per_feature AS (
    SELECT
        f.account_id,
        l.cutoff,
        f.feature,
        bool_or(f.core) AS core,
        min(l.age) AS last_used_age
    FROM feature_days AS f
    JOIN lookback AS l ON l.day = f.day AND l.age <= 90
    GROUP BY f.account_id, l.cutoff, f.feature
)

SELECT
    account_id,
    cutoff,
    count_if(last_used_age <= 7) AS features_used_7d,
    count_if(last_used_age <= 30) AS features_used_30d,
    count(*) AS features_used_90d,
    count_if(core AND last_used_age <= 7) AS core_features_used_7d,
    count_if(core AND last_used_age <= 30) AS core_features_used_30d
FROM per_feature
GROUP BY account_id, cutoff
