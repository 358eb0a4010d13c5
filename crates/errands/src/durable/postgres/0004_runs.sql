-- The attempts a job had before its current run: an operator's retry starts a new run, whose
-- attempts go on counting from there, so that no two attempts of a job share a number.
ALTER TABLE errands.jobs ADD COLUMN run_from INTEGER NOT NULL DEFAULT 0;
