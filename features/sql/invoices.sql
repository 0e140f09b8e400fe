-- Billing state at the cutoff: an invoice is open when its latest status before T is overdue or failed.
-- Each invoice event holds until the invoice's next event ([ts, next_ts)).
WITH invoice_states AS (
    SELECT
        account_id,
        status,
        amount,
        ts,
        lead(ts) OVER (PARTITION BY account_id, invoice_id ORDER BY ts, event_id) AS next_ts
    FROM sparse_events
    WHERE event_type = 'billing.invoice' AND invoice_id IS NOT NULL
)

SELECT
    s.account_id,
    c.cutoff,
    count_if(s.status = 'overdue') AS invoices_overdue,
    count_if(s.status = 'failed') AS invoices_failed,
    sum(s.amount) AS open_invoice_amount
FROM cutoffs AS c
JOIN invoice_states AS s ON s.ts < c.cutoff AND coalesce(s.next_ts, forever()) >= c.cutoff
WHERE s.status IN ('overdue', 'failed')
GROUP BY s.account_id, c.cutoff
