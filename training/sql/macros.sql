-- Label helpers, on top of features/sql/macros.sql (n_days, ordered); ported to Spark SQL in
-- training/causal/spark_design.py.
-- `new` is at least `share` above `old` (and above it at all, so a zero stays zero); NULL when either is unknown.
CREATE OR REPLACE TEMP MACRO rose_by(new, old, share) AS new > old AND new >= old * (1 + share);
-- Fractional days from t0 to t1: the exact microseconds between them, in days (days_between subtracts the
-- instants' seconds as doubles, which rounds differently).
CREATE OR REPLACE TEMP MACRO elapsed_days(t0, t1) AS epoch(t1 - t0) / 86400.0;
