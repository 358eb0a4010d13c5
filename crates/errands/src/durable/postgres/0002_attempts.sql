-- The attempts of each job that ended with an error (a failure, or a lease that expired),
-- for operators: the job's own row keeps only the last error. Written by triggers, in the
-- statement that ends the attempt; removed with the job.
CREATE TABLE errands.attempts (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    finished_at BIGINT NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX attempts_job ON errands.attempts (job_id, id);

CREATE FUNCTION errands.attempt_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO errands.attempts (job_id, attempt, finished_at, error)
    VALUES (NEW.id, NEW.attempt,
            (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT,
            COALESCE(NEW.last_error, ''));
    RETURN NULL;
END
$$;

-- A running job leaves `running` with its attempt counted: it failed, or its lease expired
-- (a shutdown's requeue takes the attempt back, and is not one).
CREATE TRIGGER jobs_attempt_ended AFTER UPDATE OF state ON errands.jobs FOR EACH ROW
WHEN (OLD.state = 'running' AND NEW.state IN ('available', 'failed') AND NEW.attempt = OLD.attempt)
EXECUTE FUNCTION errands.attempt_ended();

CREATE FUNCTION errands.job_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM errands.attempts WHERE job_id = OLD.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_removed AFTER DELETE ON errands.jobs FOR EACH ROW
EXECUTE FUNCTION errands.job_removed();
