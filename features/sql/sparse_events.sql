-- The low-volume event types the state features read (contract changes, integrations, invoices, tickets,
-- surveys, sponsor touches, milestones), with only the columns they need: read once from the event store,
-- so the state features never rescan the high-volume telemetry.
SELECT
    event_id, account_id, ts, event_type,
    status, amount, invoice_id, integration, ticket_id, priority, nps, milestone,
    seats_to, plan_to, arr_to, renewal_date
FROM events
WHERE event_type IN (
    'seats.changed', 'plan.changed', 'subscription.renewed', 'subscription.cancelled',
    'integration.state', 'billing.invoice', 'ticket.created', 'ticket.resolved', 'survey.response',
    'sponsor.touch', 'onboarding.milestone'
)
