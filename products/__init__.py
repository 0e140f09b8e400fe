"""What the offline jobs make from the floors below: the causal report, the weekly plan, the monitor, the
alerts, the store's upkeep, the weekly digest and the autopilot. Their own order is the import-linter's
"offline products" contract."""
