-- Until when a process delivers a job's owed report: several processes on one database
-- never deliver the same report at once.
ALTER TABLE errands_jobs ADD COLUMN report_claimed_until INTEGER;
