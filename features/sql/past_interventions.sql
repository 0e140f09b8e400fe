-- Past interventions: counts by broad kind in the 90 days before T (from the first of those 90 UTC days: the
-- cutoff is a midnight), the latest one, and the usage response to the latest one whose follow-up fortnight
-- ended before T: the relative change in sessions between the 14 days after and the 14 days before the
-- intervention day (that day itself is in neither; days without sessions add nothing).
-- An action outside the catalogue counts in the total only; a holdout row (no play for a quarter) is no
-- action and counts nowhere.
WITH done AS (
    SELECT
        intervention_id,
        account_id,
        ts,
        day_of(ts) AS day,
        CASE
            WHEN action IN ('exec_sponsor_call', 'health_check_call', 'qbr_roi_review', 'reference_ask')
                THEN 'outreach'
            WHEN action IN (
                'hypercare_onboarding', 'integration_assist', 'training_session', 'office_hours_invite',
                'in_app_nudge'
            ) THEN 'enablement'
            WHEN action IN ('billing_outreach', 'save_offer', 'upgrade_offer') THEN 'commercial'
        END AS kind
    FROM interventions
    WHERE assignment IS DISTINCT FROM 'holdout'
),

history AS (
    SELECT
        d.account_id,
        c.cutoff,
        count(*) FILTER (WHERE d.day >= c.first_day) AS interventions_90d,
        count(*) FILTER (WHERE d.day >= c.first_day AND d.kind = 'outreach') AS outreach_90d,
        count(*) FILTER (WHERE d.day >= c.first_day AND d.kind = 'enablement') AS enablement_90d,
        count(*) FILTER (WHERE d.day >= c.first_day AND d.kind = 'commercial') AS commercial_90d,
        max(d.ts) AS last_intervention_ts
    FROM (SELECT cutoff, day_of(cutoff) - 90 AS first_day FROM cutoffs) AS c
    JOIN done AS d ON d.ts < c.cutoff
    GROUP BY d.account_id, c.cutoff
),

-- the latest intervention (by time, then id) whose follow-up fortnight ended before T
latest AS (
    SELECT d.account_id, c.cutoff, max(ordered(d.ts, d.intervention_id)) AS latest
    FROM cutoffs AS c
    JOIN done AS d ON d.day + 15 <= day_of(c.cutoff)
    GROUP BY d.account_id, c.cutoff
),

-- the usage response to each intervention some cutoff reads as its latest (about half of them)
responses AS (
    SELECT
        d.account_id,
        ordered(d.ts, d.intervention_id) AS latest,
        change(
            coalesce(sum(x.sessions) FILTER (WHERE w.shift > 0), 0),
            coalesce(sum(x.sessions) FILTER (WHERE w.shift < 0), 0)
        ) AS response
    FROM done AS d
    JOIN (SELECT DISTINCT account_id, latest FROM latest) AS l
        ON l.account_id = d.account_id AND l.latest = ordered(d.ts, d.intervention_id)
    CROSS JOIN (SELECT CAST(shift AS INTEGER) AS shift FROM (SELECT unnest(range(-14, 15)) AS shift)) AS w
    LEFT JOIN daily AS x ON x.account_id = d.account_id AND x.day = d.day + w.shift AND x.sessions > 0
    GROUP BY d.account_id, d.ts, d.intervention_id
)

SELECT
    h.account_id,
    h.cutoff,
    h.interventions_90d,
    h.outreach_90d,
    h.enablement_90d,
    h.commercial_90d,
    h.last_intervention_ts,
    r.response AS last_intervention_response
FROM history AS h
LEFT JOIN latest AS l ON l.account_id = h.account_id AND l.cutoff = h.cutoff
LEFT JOIN responses AS r ON r.account_id = l.account_id AND r.latest = l.latest
