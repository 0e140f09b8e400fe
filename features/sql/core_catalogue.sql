-- The product's core features known at each cutoff: every feature some account used, flagged core, before
-- the cutoff (first used on a day before the cutoff's day). It is the denominator of the core-feature share.
WITH core AS (
    SELECT feature, min(day) AS known_since
    FROM feature_days
    WHERE core
    GROUP BY feature
)

SELECT c.cutoff, count(k.feature) AS core_features_known
FROM cutoffs AS c
LEFT JOIN core AS k ON k.known_since < day_of(c.cutoff)
GROUP BY c.cutoff
