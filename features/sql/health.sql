-- The rules-based health score (docs/domain.md) over any relation `feature_rows` holding the inputs below.
-- Components are 0-100. An unknown input (no NPS yet, seats unknown) counts as the middle of its scale, so
-- an account is neither rewarded nor punished for what is not known.
--   usage         40% seat utilisation (capped at 100%), 30% usage trend (sessions, last 30 days vs the
--                 30 before: steady or growing = full marks, a 50% fall = half, no sessions = none), 30% login
--                 recency (a session within 7 days = full marks, none for 30 days or ever = none)
--   engagement    40% stickiness (DAU/MAU, full marks at 0.5), 30% sponsor recency (a touch within 30 days
--                 = full marks, none for 90 days = none; counted from the start of telemetry when never),
--                 30% share of core features used in the last 30 days
--   satisfaction  40% last NPS (0-10), 30% CSAT (1-5), 30% ticket sentiment (-1..1), each rescaled to 0-1;
--                 minus 20 points per open P1/P2 ticket, floored at 0
--   payment       100 with no open overdue or failed invoice, else 0
-- Each component is clamped to 0-100, so values outside their scale (a caller's own features) cannot
-- push the score outside 0-100.
-- The score is the weighted sum ($w_* from Settings.health_weights), rounded to one decimal; the band is
-- read off the rounded score with the lower bounds $healthy / $neutral / $at_risk (Settings.health_bands).
WITH parts AS (
    SELECT
        *,
        clamp100(
            100 * (
                0.4 * least(coalesce(seat_utilisation, 0.5), 1.0)
                + 0.3 * clamp01(1 + sessions_30v30)
                + 0.3 * coalesce(clamp01((30 - days_since_last_session) / 23), 0)
            )
        ) AS health_usage,
        clamp100(
            100 * (
                0.4 * clamp01(coalesce(stickiness_30d, 0) / 0.5)
                + 0.3 * clamp01((90 - coalesce(days_since_sponsor_touch, days_observed)) / 60)
                + 0.3 * coalesce(core_feature_share_30d, 0.5)
            )
        ) AS health_engagement,
        least(
            100.0,
            greatest(
                0.0,
                100 * (
                    0.4 * coalesce(nps_last / 10, 0.5)
                    + 0.3 * coalesce((csat_90d - 1) / 4, 0.5)
                    + 0.3 * coalesce((ticket_sentiment_90d + 1) / 2, 0.5)
                ) - 20 * open_p1p2_tickets
            )
        ) AS health_satisfaction,
        CASE WHEN invoices_overdue + invoices_failed > 0 THEN 0.0 ELSE 100.0 END AS health_payment
    FROM feature_rows
),

scored AS (
    SELECT
        *,
        round(
            $w_usage * health_usage
            + $w_engagement * health_engagement
            + $w_satisfaction * health_satisfaction
            + $w_payment * health_payment,
            1
        ) AS health_score
    FROM parts
)

SELECT
    *,
    CASE
        WHEN health_score >= $healthy THEN 'healthy'
        WHEN health_score >= $neutral THEN 'neutral'
        WHEN health_score >= $at_risk THEN 'at_risk'
        ELSE 'critical'
    END AS health_band
FROM scored
