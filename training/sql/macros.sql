-- Label helpers, on top of features/sql/macros.sql (n_days, ordered).
-- `new` is at least `share` above `old` (and above it at all, so a zero stays zero); NULL when either is unknown.
CREATE OR REPLACE TEMP MACRO rose_by(new, old, share) AS new > old AND new >= old * (1 + share);
