-- The attempts of each job that ended with an error (a failure, or a lease that expired),
-- for operators: the job's own row keeps only the last error. Written by triggers, in the
-- statement that ends the attempt; removed with the job.
CREATE TABLE errands_attempts (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX errands_attempts_job ON errands_attempts (job_id, id);

-- A running job leaves `running` with its attempt counted: it failed, or its lease expired
-- (a shutdown's requeue takes the attempt back, and is not one).
CREATE TRIGGER errands_attempt_ended AFTER UPDATE OF state ON errands_jobs
WHEN OLD.state = 'running' AND NEW.state IN ('available', 'failed') AND NEW.attempt = OLD.attempt
BEGIN
    INSERT INTO errands_attempts (job_id, attempt, finished_at, error)
    VALUES (NEW.id, NEW.attempt,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER),
            COALESCE(NEW.last_error, ''));
END;

CREATE TRIGGER errands_job_removed AFTER DELETE ON errands_jobs
BEGIN
    DELETE FROM errands_attempts WHERE job_id = OLD.id;
END;
