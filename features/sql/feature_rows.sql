-- The feature row of each active account at each cutoff: every family joined on (account_id, cutoff).
-- Counts with no rows in their window are 0; a value that cannot be known (no NPS ever, seats unknown,
-- a ratio over nothing) is NULL. features/definitions.py describes each column in this order.
-- `observed_since`: when telemetry on the account began, i.e. its contract start, or the store's first
-- event day when the contract is older than the telemetry (the cutoff itself when no event precedes it).
WITH observed AS (
    SELECT
        k.*,
        greatest(
            k.contract_start,
            CASE WHEN t.first_day < day_of(k.cutoff) THEN CAST(t.first_day AS TIMESTAMPTZ) ELSE k.cutoff END
        ) AS observed_since
    FROM account_cutoffs AS k
    CROSS JOIN (SELECT min(day) AS first_day FROM daily) AS t
)

SELECT
    k.account_id,
    k.cutoff,

    -- account: segment, terms in force, tenure, renewal
    k.tier,
    k.segment,
    k.region,
    k.industry,
    k.plan,
    CAST(k.icp AS DOUBLE) AS icp,
    CAST(k.seats_purchased AS DOUBLE) AS seats_purchased,
    CAST(k.arr AS DOUBLE) AS arr,
    days_between(k.contract_start, k.cutoff) AS tenure_days,
    days_between(k.observed_since, k.cutoff) AS days_observed,
    days_between(k.cutoff, k.renewal_date) AS days_to_renewal,

    -- usage: sessions, active users, stickiness (mean daily active users / distinct active users)
    count_or_zero(a.sessions_7d) AS sessions_7d,
    count_or_zero(a.sessions_30d) AS sessions_30d,
    count_or_zero(a.sessions_90d) AS sessions_90d,
    CAST(coalesce(a.session_minutes_30d, 0) AS DOUBLE) AS session_minutes_30d,
    change(coalesce(a.sessions_7d, 0), coalesce(a.sessions_prev_7d, 0)) AS sessions_wow,
    change(coalesce(a.sessions_30d, 0), coalesce(a.sessions_prev_30d, 0)) AS sessions_30v30,
    count_or_zero(u.active_users_7d) AS active_users_7d,
    count_or_zero(u.active_users_30d) AS active_users_30d,
    count_or_zero(u.active_users_90d) AS active_users_90d,
    change(coalesce(u.active_users_7d, 0), coalesce(u.active_users_prev_7d, 0)) AS active_users_wow,
    change(coalesce(u.active_users_30d, 0), coalesce(u.active_users_prev_30d, 0)) AS active_users_30v30,
    ratio(u.user_days_7d / 7.0, u.active_users_7d) AS stickiness_7d,
    ratio(u.user_days_30d / 30.0, u.active_users_30d) AS stickiness_30d,
    ratio(u.user_days_90d / 90.0, u.active_users_90d) AS stickiness_90d,
    ratio(coalesce(u.active_users_30d, 0), k.seats_purchased) AS seat_utilisation,
    days_between(r.last_session_ts, k.cutoff) AS days_since_last_session,
    CAST(coalesce(a.sessions_prev_7d, 0) > 0 AND coalesce(a.sessions_7d, 0) <= 0.5 * a.sessions_prev_7d AS BIGINT)
        AS usage_drop_alert,

    -- trajectory: the last 12 weeks' trend and volatility of use (unknown before 12 weeks of data), and the
    -- intensity of a session or a user, which does not grow with the account's size
    CASE WHEN days_between(k.observed_since, k.cutoff) >= 84
        THEN weekly_trend(coalesce(w.sessions_12w, 0), coalesce(w.sessions_by_week_12w, 0)) END
        AS sessions_trend_12w,
    CASE WHEN days_between(k.observed_since, k.cutoff) >= 84
        THEN weekly_volatility(coalesce(w.sessions_12w, 0), coalesce(w.sessions_squared_12w, 0)) END
        AS sessions_volatility_12w,
    CASE WHEN days_between(k.observed_since, k.cutoff) >= 84
        THEN weekly_trend(coalesce(w.feature_uses_12w, 0), coalesce(w.feature_uses_by_week_12w, 0)) END
        AS feature_uses_trend_12w,
    CASE WHEN days_between(k.observed_since, k.cutoff) >= 84
        THEN weekly_volatility(coalesce(w.feature_uses_12w, 0), coalesce(w.feature_uses_squared_12w, 0)) END
        AS feature_uses_volatility_12w,
    ratio(CAST(a.session_minutes_30d AS DOUBLE), a.sessions_30d) AS minutes_per_session_30d,
    ratio(CAST(coalesce(a.feature_uses_30d, 0) AS DOUBLE), a.sessions_30d) AS feature_uses_per_session_30d,
    ratio(CAST(coalesce(a.sessions_30d, 0) AS DOUBLE), u.active_users_30d) AS sessions_per_user_30d,

    -- adoption: depth (uses) and width (distinct features, core features)
    count_or_zero(a.feature_uses_7d) AS feature_uses_7d,
    count_or_zero(a.feature_uses_30d) AS feature_uses_30d,
    count_or_zero(a.feature_uses_90d) AS feature_uses_90d,
    change(coalesce(a.feature_uses_7d, 0), coalesce(a.feature_uses_prev_7d, 0)) AS feature_uses_wow,
    change(coalesce(a.feature_uses_30d, 0), coalesce(a.feature_uses_prev_30d, 0)) AS feature_uses_30v30,
    count_or_zero(f.features_used_7d) AS features_used_7d,
    count_or_zero(f.features_used_30d) AS features_used_30d,
    count_or_zero(f.features_used_90d) AS features_used_90d,
    ratio(coalesce(f.core_features_used_30d, 0), ck.core_features_known) AS core_feature_share_30d,
    CAST(CASE WHEN ck.core_features_known > 0
        THEN ck.core_features_known - coalesce(f.core_features_used_7d, 0) END AS DOUBLE)
        AS core_features_unused_7d,
    count_or_zero(a.recipes_completed_30d) AS recipes_completed_30d,
    count_or_zero(a.deployments_30d) AS deployments_30d,
    days_between(r.last_deployment_ts, k.cutoff) AS days_since_last_deployment,

    -- reliability: errors (per session, sessions floored at 1), spikes, retries, integrations, incidents
    count_or_zero(a.errors_7d) AS errors_7d,
    count_or_zero(a.errors_30d) AS errors_30d,
    count_or_zero(a.errors_90d) AS errors_90d,
    coalesce(a.errors_7d, 0) / greatest(coalesce(a.sessions_7d, 0), 1) AS error_rate_7d,
    coalesce(a.errors_30d, 0) / greatest(coalesce(a.sessions_30d, 0), 1) AS error_rate_30d,
    CAST(coalesce(a.max_daily_errors_7d, 0) > 0 AND coalesce(s.baseline_days_at_or_above, 0) <= 4 AS BIGINT)
        AS error_spike,
    count_or_zero(a.job_retries_7d) AS job_retries_7d,
    count_or_zero(a.job_retries_30d) AS job_retries_30d,
    count_or_zero(i.integrations_ok) AS integrations_ok,
    count_or_zero(i.integrations_failing) AS integrations_failing,
    days_between(r.last_incident_ts, k.cutoff) AS days_since_last_incident,

    -- onboarding: milestones, first value, stalls (> 72 h since the last milestone, first value not reached;
    -- the clock starts at contract start when no milestone was reached). Unknown (NULL) when the account
    -- onboarded before telemetry began and no milestone was seen.
    count_or_zero(o.onboarding_milestones) AS onboarding_milestones,
    CAST(CASE WHEN o.onboarding_milestones > 0 OR k.observed_since <= k.contract_start
        THEN o.first_value_ts IS NOT NULL END AS DOUBLE) AS first_value_reached,
    days_between(k.contract_start, o.first_value_ts) AS days_to_first_value,
    days_between(o.last_milestone_ts, k.cutoff) AS days_since_last_milestone,
    CAST(CASE WHEN o.onboarding_milestones > 0 OR k.observed_since <= k.contract_start
        THEN o.first_value_ts IS NULL AND days_between(coalesce(o.last_milestone_ts, k.contract_start), k.cutoff) > 3
    END AS DOUBLE) AS onboarding_stalled,

    -- support and voice of the customer
    count_or_zero(a.tickets_created_30d) AS tickets_created_30d,
    count_or_zero(a.tickets_created_90d) AS tickets_created_90d,
    count_or_zero(t.open_p1p2_tickets) AS open_p1p2_tickets,
    ratio(a.sentiment_sum_90d, a.sentiment_n_90d) AS ticket_sentiment_90d,
    ratio(CAST(a.csat_sum_90d AS DOUBLE), a.csat_n_90d) AS csat_90d,
    CAST(r.last_nps AS DOUBLE) AS nps_last,
    days_between(r.last_nps_ts, k.cutoff) AS days_since_nps,
    days_between(r.last_ticket_ts, k.cutoff) AS days_since_last_ticket,

    -- engagement: sponsor and nudges (disengaged: no sponsor touch seen for 60 days)
    days_between(r.last_sponsor_ts, k.cutoff) AS days_since_sponsor_touch,
    count_or_zero(a.sponsor_touches_90d) AS sponsor_touches_90d,
    CAST(days_between(coalesce(r.last_sponsor_ts, k.observed_since), k.cutoff) > 60 AS BIGINT)
        AS sponsor_disengaged,
    count_or_zero(a.nudges_sent_90d) AS nudges_sent_90d,
    count_or_zero(a.nudges_acted_90d) AS nudges_acted_90d,
    days_between(r.last_nudge_acted_ts, k.cutoff) AS days_since_nudge_acted,
    ratio(coalesce(a.nudges_acted_90d, 0), a.nudges_sent_90d) AS nudge_act_rate_90d,

    -- billing
    count_or_zero(b.invoices_overdue) AS invoices_overdue,
    count_or_zero(b.invoices_failed) AS invoices_failed,
    CAST(coalesce(b.open_invoice_amount, 0) AS DOUBLE) AS open_invoice_amount,
    count_or_zero(a.payment_failures_90d) AS payment_failures_90d,
    days_between(r.last_paid_ts, k.cutoff) AS days_since_last_payment,

    -- plan limits: seats (>= 80% used; consecutive 30-day periods, up to 3, with more active users than seats)
    CAST(ratio(coalesce(u.active_users_30d, 0), k.seats_purchased) >= 0.8 AS DOUBLE) AS seat_limit_near,
    CAST(CASE
        WHEN coalesce(k.seats_purchased, 0) <= 0 THEN NULL
        WHEN coalesce(u.active_users_30d, 0) <= k.seats_purchased THEN 0
        WHEN coalesce(u.active_users_prev_30d, 0) <= k.seats_purchased THEN 1
        WHEN coalesce(u.active_users_61_90d, 0) <= k.seats_purchased THEN 2
        ELSE 3
    END AS DOUBLE) AS months_over_seat_limit,

    -- past interventions
    count_or_zero(v.interventions_90d) AS interventions_90d,
    count_or_zero(v.outreach_90d) AS outreach_interventions_90d,
    count_or_zero(v.enablement_90d) AS enablement_interventions_90d,
    count_or_zero(v.commercial_90d) AS commercial_interventions_90d,
    days_between(v.last_intervention_ts, k.cutoff) AS days_since_last_intervention,
    v.last_intervention_response

FROM observed AS k
LEFT JOIN activity AS a ON a.account_id = k.account_id AND a.cutoff = k.cutoff
LEFT JOIN trajectory AS w ON w.account_id = k.account_id AND w.cutoff = k.cutoff
LEFT JOIN users AS u ON u.account_id = k.account_id AND u.cutoff = k.cutoff
LEFT JOIN adoption AS f ON f.account_id = k.account_id AND f.cutoff = k.cutoff
LEFT JOIN core_catalogue AS ck ON ck.cutoff = k.cutoff
LEFT JOIN error_spikes AS s ON s.account_id = k.account_id AND s.cutoff = k.cutoff
LEFT JOIN integrations AS i ON i.account_id = k.account_id AND i.cutoff = k.cutoff
LEFT JOIN invoices AS b ON b.account_id = k.account_id AND b.cutoff = k.cutoff
LEFT JOIN tickets AS t ON t.account_id = k.account_id AND t.cutoff = k.cutoff
LEFT JOIN onboarding AS o ON o.account_id = k.account_id AND o.cutoff = k.cutoff
LEFT JOIN recency AS r ON r.account_id = k.account_id AND r.cutoff = k.cutoff
LEFT JOIN past_interventions AS v ON v.account_id = k.account_id AND v.cutoff = k.cutoff
