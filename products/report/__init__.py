"""Reports for leadership: each one a self-contained HTML page beside its JSON (`retain report ...`)."""
