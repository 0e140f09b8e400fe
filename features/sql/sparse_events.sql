-- The low-volume event types, with only the columns their features need: those the state features read
-- (contract changes, integrations, invoices, tickets, surveys, sponsor touches, milestones) and the
-- occasional ones counted per window (nudges, recipes, deployments; activity.sql). Read once from the event
-- store, so these features never rescan the high-volume telemetry.
SELECT
    event_id, account_id, ts, event_type,
    status, amount, invoice_id, integration, ticket_id, priority, sentiment, csat, nps, milestone,
    seats_to, plan_to, arr_to, renewal_date
FROM events
WHERE event_type IN (
    'seats.changed', 'plan.changed', 'subscription.renewed', 'subscription.cancelled',
    'integration.state', 'billing.invoice', 'ticket.created', 'ticket.resolved', 'survey.response',
    'sponsor.touch', 'onboarding.milestone', 'nudge.sent', 'nudge.acted', 'recipe.completed',
    'deployment.published'
)
