-- Placeholder for schema version 2 (owned by another branch). The migration loader needs versions
-- 1..N without gaps; this file is replaced by the real 002 at merge.
SELECT 1;
