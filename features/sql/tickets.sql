-- P1/P2 tickets open at the cutoff: created before T and not resolved before T. The priority is the one
-- the ticket was created with.
WITH tickets AS (
    SELECT
        account_id,
        ticket_id,
        min(ts) FILTER (WHERE event_type = 'ticket.created') AS opened,
        min(ts) FILTER (WHERE event_type = 'ticket.resolved') AS resolved,
        min_by(priority, ordered(ts, event_id)) FILTER (WHERE event_type = 'ticket.created') AS priority
    FROM sparse_events
    WHERE event_type IN ('ticket.created', 'ticket.resolved') AND ticket_id IS NOT NULL
    GROUP BY account_id, ticket_id
)

SELECT t.account_id, c.cutoff, count(*) AS open_p1p2_tickets
FROM cutoffs AS c
JOIN tickets AS t ON t.opened < c.cutoff AND coalesce(t.resolved, forever()) >= c.cutoff
WHERE t.priority IN ('P1', 'P2')
GROUP BY t.account_id, c.cutoff
