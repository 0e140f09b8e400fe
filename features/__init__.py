"""Point-in-time account features: defined once in SQL, served through Feast."""
