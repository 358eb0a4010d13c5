-- errands' durable jobs on PostgreSQL, in their own schema: the same table, states and
-- rules as on SQLite (see `errands::durable`). Times are Unix milliseconds.
CREATE TABLE errands.jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    args TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN
        ('held', 'available', 'running', 'succeeded', 'failed', 'cancelled', 'discarded', 'skipped')),
    attempt INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    -- The fencing token: a new one at every claim; writes of a running job must carry it.
    token BIGINT NOT NULL DEFAULT 0,
    run_at BIGINT NOT NULL,
    lease_until BIGINT,
    owner TEXT,
    unique_key TEXT,
    request_id TEXT,
    fields TEXT NOT NULL,
    last_error TEXT,
    -- 1 while the job's end (failed, skipped) has not been reported yet.
    report_owed INTEGER NOT NULL DEFAULT 0,
    -- Until when a process delivers the owed report (others leave it alone).
    report_claimed_until BIGINT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);

-- In the claim's order (`run_at`, then `id`), so that a claim reads the first due rows of its
-- queue from the index, whatever the planner knows of the table.
CREATE INDEX jobs_runnable ON errands.jobs (queue, run_at, id) WHERE state = 'available';
CREATE INDEX jobs_leases ON errands.jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_owed ON errands.jobs (id) WHERE report_owed = 1;
CREATE INDEX jobs_finished ON errands.jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_held ON errands.jobs (owner) WHERE state = 'held';
CREATE UNIQUE INDEX jobs_unique ON errands.jobs (kind, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('held', 'available', 'running');

-- The processes that own held jobs, with the time their heartbeat runs out.
CREATE TABLE errands.processes (
    owner TEXT PRIMARY KEY,
    alive_until BIGINT NOT NULL
);

-- A job that becomes runnable wakes the workers listening on `errands_jobs`, with its queue
-- as the payload. PostgreSQL delivers a transaction's identical notifications once: at most
-- one per queue per transaction, however many jobs it wrote.
CREATE FUNCTION errands.notify_runnable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('errands_jobs', NEW.queue);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_runnable_notify
    AFTER INSERT OR UPDATE OF state ON errands.jobs
    FOR EACH ROW WHEN (NEW.state = 'available')
    EXECUTE FUNCTION errands.notify_runnable();
